"""Classical MRA pansharpening methods of the 2015 toolbox (v1.3): HPF, SFIM, Indusion, ATWT.

They follow "A Critical Comparison Among Pansharpening Algorithms" (Vivone et al., IEEE TGRS 2015,
toolbox v1.3); the 2021 distribution dropped them. Each method is one estimate/apply pair and one
registry entry; the pure kernels live in :mod:`geofuse.kernels.mra_classic`.
"""

from __future__ import annotations

import torch

from .. import stats
from ..kernels import mra, mra_classic as K
from ..kernels.filters import correlate_separable
from ..kernels.resample import INTERPOLATORS, polyphase_taps
from ..registry import MethodSpec, register
from .pansharpening import pan_equalisation, v13_equalisation as _pan_equalisation

VIVONE_2015 = "10.1109/TGRS.2014.2361734"

#: Default-mode guards of the SFIM ratio, the same as MTF-GLP-HPM's (compat="toolbox" keeps the plain
#: ratio): below this fraction of the band mean the low-passed PAN counts as non-positive and the detail
#: is injected additively, and the local gain is clipped to [0, SFIM_MAX_GAIN].
SFIM_FLOOR = 0.01
SFIM_MAX_GAIN = 4.0


# -------------------------------------------------------------------------------------------------- HPF


def _hpf_apply(block, est, params) -> torch.Tensor:
    return K.hpf(block.ms, block.pan, est["scale"], block.ratio)


def _box_halo(params, ratio: int) -> int:
    return K.box_size(ratio) // 2


register(MethodSpec(
    name="hpf", title="HPF (high-pass filtering, toolbox v1.3)", family="MRA", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=(VIVONE_2015,),
    summary="Each band receives the PAN's high pass, PAN_b - box(PAN_b), where PAN_b is the PAN matched to "
            "the band's mean and standard deviation and box is a moving average of ratio (+1 if even) "
            "pixels (2015 toolbox, v1.3). The simplest MRA method: fast, sharp, but the box filter does "
            "not match the sensor MTF; prefer MTF-GLP for quality.",
    estimate=_pan_equalisation, apply=_hpf_apply, halo=_box_halo))


# -------------------------------------------------------------------------------------------------- SFIM


def _sfim_apply(block, est, params) -> torch.Tensor:
    if block.compat == "toolbox":
        return K.sfim(block.ms, block.pan, est["scale"], est["offset"], block.ratio)
    a, o = est["scale"][:, None, None], est["offset"][:, None, None]
    pan_eq = a * block.pan + o
    pan_lp = a * K.box_lowpass(block.pan, block.ratio) + o
    return mra.hpm(block.ms, pan_eq, pan_lp, floor=SFIM_FLOOR * est["ms_mean"].abs(), max_gain=SFIM_MAX_GAIN)


register(MethodSpec(
    name="sfim", title="SFIM (smoothing-filter intensity modulation, toolbox v1.3)", family="MRA",
    scenario="pansharpening", inputs=("ms", "pan"), parameters=(),
    references=("10.1080/014311600750037499", VIVONE_2015),
    summary="Each band is multiplied by PAN_b / box(PAN_b): the PAN matched to the band's mean and std over "
            "its moving average of ratio (+1 if even) pixels (high-pass modulation, 2015 toolbox, v1.3). "
            "Multiplicative injection keeps the band ratios (spectra) better than HPF; default mode guards "
            "the ratio where the smoothed PAN is near zero (compat='toolbox': the plain ratio).",
    estimate=_pan_equalisation, apply=_sfim_apply, halo=_box_halo))


# -------------------------------------------------------------------------------------------------- ATWT


def _atwt_apply(block, est, params) -> torch.Tensor:
    return K.atwt(block.ms, block.pan, est["scale"], block.ratio)


def _atwt_halo(params, ratio: int) -> int:
    return K.atwt_halo(ratio)


register(MethodSpec(
    name="atwt", title="ATWT (additive à trous wavelet, toolbox v1.3)", family="MRA", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=("10.1109/36.763274", VIVONE_2015),
    summary="Each band receives the detail planes of the undecimated (à trous) B3-spline wavelet transform "
            "of the PAN matched to the band's mean and std, ceil(log2 ratio) levels (2015 toolbox, v1.3). "
            "Smoother, better-localised details than HPF's box filter; choose it as a simple additive MRA "
            "baseline.",
    estimate=_pan_equalisation, apply=_atwt_apply, halo=_atwt_halo))


# -------------------------------------------------------------------------------------------------- Indusion


def _toolbox_layout(block) -> bool:
    """The toolbox's own pyramid (deg9tap picking r k + 1, circular upsampling7tap landing on r k + r/2)."""
    r = block.ratio
    return block.compat == "toolbox" and K.is_dyadic(r) and all(abs(p - r // 2) < 1e-9 for p in block.phase)


def _phase_ok(block) -> bool:
    return K.is_dyadic(block.ratio) and all(abs(2 * p - round(2 * p)) < 1e-9 for p in block.phase)


def _ind_up(block, x_lr: torch.Tensor) -> torch.Tensor:
    """The 7-tap synthesis interpolator at the grid phase (engine interpolator for non-dyadic ratios)."""
    if _toolbox_layout(block):
        return K.upsampling7tap(x_lr, block.ratio, block.phase, mode="circular")
    if _phase_ok(block):
        return K.upsampling7tap(x_lr, block.ratio, block.phase, mode="symmetric")
    return block.upsample(x_lr)


def _ind_down(block, x: torch.Tensor) -> torch.Tensor:
    """The 9-tap analysis reduction of the PAN onto the LR grid."""
    if _toolbox_layout(block):
        return K.deg9tap(x, block.ratio, mode="replicate")
    h = K.deg9tap_filter(block.ratio)
    return block.decimate(correlate_separable(x, h, h, mode="symmetric"))


def _ind_pan_lr(block, est, params) -> torch.Tensor:
    return _ind_down(block, block.pan)


def _ind_ms_up(block, est, params) -> torch.Tensor:
    return _ind_up(block, block.ms_lr)


def _indusion_estimate(ctx, params):
    pan_lr = ctx.tile_map(_ind_pan_lr, bands=1, grid="lr")
    ms_up = ctx.tile_map(_ind_ms_up, bands=ctx.ms_lr.shape[0], use_pan=False)
    C = ctx.ms_lr.shape[0]
    lo = stats.moments([ctx.ms_lr, pan_lr], ctx.valid_lr)
    hi = stats.moments([ms_up, ctx.pan], ctx.valid_hr)
    lr_scale, lr_offset = pan_equalisation(lo.mean[:C], lo.std[:C], lo.std[C], lo.mean[C])
    hr_scale, hr_offset = pan_equalisation(hi.mean[:C], hi.std[:C], hi.std[C], hi.mean[C])
    return {"lr_scale": lr_scale, "lr_offset": lr_offset, "hr_scale": hr_scale, "hr_offset": hr_offset}


def _indusion_apply(block, est, params) -> torch.Tensor:
    ms_up = _ind_up(block, block.ms_lr)
    pan_lr_up = _ind_up(block, _ind_down(block, block.pan))
    return K.indusion(ms_up, block.pan, pan_lr_up, est["lr_scale"], est["lr_offset"], est["hr_scale"],
                      est["hr_offset"])


def _indusion_halo(params, ratio: int) -> int:
    # The PAN reduction: the radius of the 9-tap cascade, +1 for a half-integer pick. Its LR samples are
    # then re-interpolated like the MS: the engine adds its interpolator's LR support to every tile; the
    # 7-tap cascade may reach further than the shortest engine interpolator (bicubic), by this many LR
    # samples.
    extra = 0
    if K.is_dyadic(ratio):
        m7 = max(K.upsampling7tap_taps(ratio, p)[1] for p in (ratio // 2, (ratio - 1) / 2))
        shortest = min(polyphase_taps(ratio, p, kind)[1] for kind in INTERPOLATORS
                       for p in (ratio // 2, (ratio - 1) / 2))
        extra = max(0, m7 - shortest)
    return K.deg9tap_halo(ratio) + 1 + ratio * extra


register(MethodSpec(
    name="indusion", title="Indusion (induction scaling, toolbox v1.3)", family="MRA", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=("10.1109/LGRS.2007.909934", VIVONE_2015),
    summary="Induction scaling with the 9/7 biorthogonal pyramid: the MS is upsampled with the 7-tap "
            "synthesis filter, and each band receives PAN_b - U(D(PAN)_b), where D reduces the PAN with the "
            "9-tap analysis filter, U is the same 7-tap interpolator, and both PANs are matched to the "
            "band's mean and std at their own scale (2015 toolbox, v1.3). A fast, filter-bank MRA "
            "baseline; the 9/7 filters do not match the sensor MTF.",
    estimate=_indusion_estimate, apply=_indusion_apply, halo=_indusion_halo))
