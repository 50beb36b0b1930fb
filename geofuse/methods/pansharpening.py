"""Pansharpening methods (PAN + MS): one small estimate/apply pair and one registry entry each.

``estimate(ctx, params)`` receives the engine's prepared inputs (:class:`geofuse.engine.Prepared`:
lazy float32 dask arrays ``ctx.pan`` (1,H,W), ``ctx.ms_lr`` (C,h,w), the lazily upsampled ``ctx.ms``,
validity masks, and ``ctx.tile_map`` to derive filtered arrays chunk by chunk) and returns small lazy
arrays. ``apply(block, est, params)`` works on one :class:`geofuse.engine.Block` with torch.
"""

from __future__ import annotations

import math

import torch

from .. import stats
from ..kernels import cs, mra
from ..kernels.cs_classic import lp_filter_gauss
from ..kernels.filters import correlate2d, mtf_kernels, undecimated_lowpass_decimated, undecimated_lowpass_halo
from ..kernels.resample import decimation_kernel
from ..registry import MethodSpec, register

VIVONE_2021 = "10.1109/MGRS.2020.3019315"
VIVONE_2015 = "10.1109/TGRS.2014.2361734"


def _no_halo(params, ratio: int) -> int:
    return 0


# -------------------------------------------------------------------------------------------------- EXP


def _exp_apply(block, est, params) -> torch.Tensor:
    return block.ms


register(MethodSpec(
    name="exp", title="EXP (interpolated MS)", family="baseline", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(VIVONE_2021,),
    summary="The MS interpolated onto the PAN grid (23-tap polynomial interpolator), with no PAN detail. "
            "The reference point every method must beat; useful to check alignment.",
    apply=_exp_apply, halo=_no_halo, tags=("demo",)))


# -------------------------------------------------------------------------------------------------- GSA


def _lowpass_levels(ratio: int) -> int:
    return max(1, math.ceil(math.log2(ratio)))


def _gsa_pan_lr(block, est, params) -> torch.Tensor:
    """LPfilterPlusDec: undecimated Starck-Murtagh wavelet low pass (ceil(log2(ratio)) levels, details
    zeroed, ``ndwt2_working``/``indwt2_working``) of the PAN, then decimation onto the LR grid."""
    return undecimated_lowpass_decimated(block.pan, _lowpass_levels(block.ratio), block.ratio, block.phase,
                                         mode="symmetric")


def _gsa_estimate(ctx, params):
    pan_lr = ctx.tile_map(_gsa_pan_lr, bands=1, grid="lr")
    alpha, _ = stats.regress(pan_lr, ctx.ms_lr, ctx.valid_lr, intercept=True)
    C = ctx.ms_lr.shape[0]
    m = stats.moments([ctx.ms, ctx.pan], ctx.valid_hr)  # one pass: the MS statistics and the PAN mean
    cov_ia = m.cov[:C, :C] @ alpha  # cov(I0, MS_b) for every band
    var_i = alpha @ cov_ia
    return {"alpha": alpha, "gains": cov_ia / var_i, "ms_mean": m.mean[:C], "pan_mean": m.mean[C:]}


def _gsa_apply(block, est, params) -> torch.Tensor:
    return cs.gsa(block.ms, block.pan, est["alpha"], est["gains"], est["ms_mean"], est["pan_mean"])


def _gsa_halo(params, ratio: int) -> int:
    return undecimated_lowpass_halo(_lowpass_levels(ratio))


register(MethodSpec(
    name="gsa", title="GSA (Gram-Schmidt adaptive)", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=("10.1109/TGRS.2007.901007", VIVONE_2021),
    summary="Component substitution: an intensity I is the weighted sum of the MS bands whose weights come "
            "from a least-squares fit of the low-passed PAN on the low-resolution MS; each band receives "
            "g_b (P - I) with g_b = cov(I, MS_b) / var(I). Fast and spatially sharp; a good default for "
            "CS fusion when the PAN overlaps the MS bands spectrally.",
    estimate=_gsa_estimate, apply=_gsa_apply, halo=_gsa_halo, tags=("demo",)))


# -------------------------------------------------------------------------------------------------- MTF-GLP-HPM


def _lpgauss_pan(block, est, params) -> torch.Tensor:
    """LPfilterGauss(PAN) (GNyq 0.3 Gaussian, replicate border), as a low-rank separable filter."""
    return lp_filter_gauss(block.pan, block.ratio)


def pan_equalisation(band_mean, band_std, pan_std, pan_mean):
    """Gains and offsets of the per-band PAN equalisation ``P_b = a_b P + o_b`` (lazy arrays).

    ``a_b = std_b / pan_std`` and ``o_b = mean_b - a_b pan_mean``: the PAN matched to band ``b``'s mean
    and standard deviation. The methods differ only in which std stands for the PAN's (its own: the v1.3
    methods and MF; its Gaussian low pass: MTF-GLP; its bicubic down/up version: AWLP; Indusion at two
    scales) and in the band statistics (interpolated MS or LR MS).
    """
    scale = band_std / pan_std
    return scale, band_mean - scale * pan_mean


def v13_equalisation(ctx, params):
    """The v1.3 per-band equalisation P_b = a_b (P - mean P) + mean MS_b with a_b = std(MS_b) / std(P),
    statistics of the interpolated MS and of the PAN itself (one pass)."""
    m = stats.moments([ctx.ms, ctx.pan], ctx.valid_hr)
    C = ctx.ms_lr.shape[0]
    scale, offset = pan_equalisation(m.mean[:C], m.std[:C], m.std[C], m.mean[C])
    return {"scale": scale, "offset": offset, "ms_mean": m.mean[:C]}


def _glp_equalisation(ctx, params):
    """Per-band PAN equalisation P_b = a_b (P - mean P) + mean MS_b, with a_b = std(MS_b)/std(LPG(P))."""
    pan_lp = ctx.tile_map(_lpgauss_pan, bands=1)
    m_ms = stats.moments([ctx.ms], ctx.valid_hr)
    m_lp = stats.moments([pan_lp], ctx.valid_hr)
    pan_mean = stats.valid_mean(ctx.pan, ctx.valid_hr)
    scale, offset = pan_equalisation(m_ms.mean, m_ms.std, m_lp.std[0], pan_mean[0])
    return {"scale": scale, "offset": offset, "ms_mean": m_ms.mean}


def _mtf_decimate(block, x: torch.Tensor) -> torch.Tensor:
    """MTF-matched per-band filter of ``x`` ((1,H,W) or (C,H,W)) and decimation at the grid phase."""
    k, offset = decimation_kernel(mtf_kernels(block.gains, block.ratio), block.phase)
    return correlate2d(x, k, mode="replicate", stride=block.ratio, offset=offset)


def equalised_pan_lowpass(block, est) -> tuple[torch.Tensor, torch.Tensor]:
    """The PAN equalised to each band, ``P_b = a_b P + c_b``, and its MTF-GLP low pass
    ``interp(decimate(MTF_b(P_b)))``.

    By linearity (and the replicate border, which keeps constants constant) the MTF filtering runs on
    the one PAN with each band's kernel, ``MTF_b(a_b P + c_b) = a_b MTF_b(P) + c_b sum(h_b)``: one
    input channel instead of C (about 6x less work than filtering the C equalised copies).
    """
    scale, offset = est["scale"][:, None, None], est["offset"][:, None, None]
    k, pick = decimation_kernel(mtf_kernels(block.gains, block.ratio), block.phase)
    low = correlate2d(block.pan, k, mode="replicate", stride=block.ratio, offset=pick)  # (C, h, w)
    dc = torch.as_tensor(k.reshape(k.shape[0], -1).sum(axis=1), dtype=low.dtype, device=low.device)
    pan_lp = block.upsample(scale * low + offset * dc[:, None, None])
    return scale * block.pan + offset, pan_lp


def _mtf_glp_hpm_apply(block, est, params) -> torch.Tensor:
    pan_eq, pan_lp = equalised_pan_lowpass(block, est)
    if block.compat == "toolbox":
        return mra.hpm(block.ms, pan_eq, pan_lp)
    return mra.hpm(block.ms, pan_eq, pan_lp, floor=HPM_FLOOR * est["ms_mean"].abs(), max_gain=HPM_MAX_GAIN)


#: Default-mode guards of the HPM ratio (compat="toolbox" keeps the plain ratio): below this fraction
#: of the band mean the low-pass PAN counts as non-positive and the detail is injected additively ...
HPM_FLOOR = 0.01
#: ... and the local injection gain MS / PAN_low (about 1 on average, since the equalised PAN has the
#: band's mean) is clipped to [0, HPM_MAX_GAIN].
HPM_MAX_GAIN = 4.0


def _mtf_halo(params, ratio: int) -> int:
    return 20 + 1  # 41x41 MTF kernel, +1 for a half-integer decimation phase


register(MethodSpec(
    name="mtf_glp_hpm", title="MTF-GLP-HPM", family="MRA", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=("10.14358/PERS.72.5.591", "10.1109/TIP.2018.2819501", VIVONE_2021),
    summary="Generalized Laplacian pyramid with MTF-matched filters and high-pass modulation: the PAN, "
            "equalised to each band, is low-passed with the band's MTF-matched Gaussian, decimated and "
            "re-interpolated; each band is multiplied by PAN / PAN_low. Spectrally faithful, robust to "
            "misregistration; choose it when spectral quality matters most.",
    estimate=_glp_equalisation, apply=_mtf_glp_hpm_apply, halo=_mtf_halo, tags=("mtf", "demo")))
