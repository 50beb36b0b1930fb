"""MF: pansharpening by the half-gradient morphological pyramid (Restaino et al. 2016)."""

from __future__ import annotations

from ..kernels import mra
from ..kernels.morph import half_gradient_lowpass, half_gradient_lowpass_halo, mf_levels
from ..registry import MethodSpec, register
from .pansharpening import HPM_FLOOR, HPM_MAX_GAIN, VIVONE_2021, v13_equalisation

RESTAINO_2016 = "10.1109/TIP.2016.2556944"


#: PAN equalised to each band with the PAN's own std, P_b = s_b (P - mean P) + mean MS_b: the v1.3 methods'
#: equalisation (one pass of moments of the interpolated MS and the PAN).
_mf_estimate = v13_equalisation


def _lattice_shift(ratio: int):
    """Tiles start on multiples of the ratio: for a power of two that is the pyramid's lattice period,
    so the toolbox's origin-anchored lattice is exact per tile; otherwise average over all lattice
    positions (shift-invariant)."""
    return (0, 0) if ratio & (ratio - 1) == 0 else None


def _mf_apply(block, est, params):
    r = block.ratio
    scale, offset = est["scale"][:, None, None], est["offset"][:, None, None]
    # The half-gradient pyramid commutes with the affine equalisation: one pyramid for all bands.
    lp = half_gradient_lowpass(block.pan, mf_levels(r), _lattice_shift(r))
    pan_eq, pan_lp = scale * block.pan + offset, scale * lp + offset
    if block.compat == "toolbox":
        return mra.hpm(block.ms, pan_eq, pan_lp)
    return mra.hpm(block.ms, pan_eq, pan_lp, floor=HPM_FLOOR * est["ms_mean"].abs(), max_gain=HPM_MAX_GAIN)


def _mf_halo(params, ratio: int) -> int:
    return half_gradient_lowpass_halo(mf_levels(ratio))


register(MethodSpec(
    name="mf", title="MF (morphological half-gradient pyramid)", family="MRA", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=(RESTAINO_2016, VIVONE_2021),
    summary="Morphological pyramid: the PAN, equalised to each band, is smoothed by the half-gradient "
            "operator (mean of dilation and erosion by a 3x3 cross) and decimated by 2, ceil(log2 ratio) "
            "times, then enlarged back bilinearly; each band is modulated by P_b / P_b,low. Nonlinear "
            "low pass that keeps edges sharp with few ringing artefacts; a good HPM alternative on "
            "urban scenes.",
    estimate=_mf_estimate, apply=_mf_apply, halo=_mf_halo))
