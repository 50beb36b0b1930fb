"""MRA pansharpening methods of the MTF-GLP family (MTF-GLP, MTF-GLP-FS, MTF-GLP-HPM-R) and AWLP.

They share the GLP low pass of :mod:`geofuse.methods.pansharpening` (MTF-matched per-band filter,
decimation at the grid phase, re-interpolation) and its PAN equalisation; the global gains come from
one-pass lazy moments (:mod:`geofuse.stats`).
"""

from __future__ import annotations

import math

import dask.array as da

from .. import stats
from ..kernels import mra, mra_glp
from ..kernels.resample import upsample
from ..kernels.filters import imresize_down, imresize_down_halo, undecimated_lowpass, undecimated_lowpass_halo
from ..registry import MethodSpec, register
from .pansharpening import (HPM_FLOOR, HPM_MAX_GAIN, VIVONE_2021, _glp_equalisation, _mtf_decimate, _mtf_halo,
                            equalised_pan_lowpass, pan_equalisation)

AIAZZI_2006 = "10.14358/PERS.72.5.591"
VIVONE_2018 = "10.1109/TIP.2018.2819501"
OTAZU_2005 = "10.1109/TGRS.2005.856106"


def _pan_lp(block, est, params):
    """The PAN low-passed by each band's MTF-matched filter, decimated and re-interpolated (C, H, W)."""
    return block.upsample(_mtf_decimate(block, block.pan))


# -------------------------------------------------------------------------------------------------- MTF-GLP


def _mtf_glp_apply(block, est, params):
    pan_eq, pan_lp = equalised_pan_lowpass(block, est)
    return mra_glp.glp(block.ms, pan_eq, pan_lp)


register(MethodSpec(
    name="mtf_glp", title="MTF-GLP", family="MRA", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(AIAZZI_2006, VIVONE_2021),
    summary="Generalized Laplacian pyramid with MTF-matched filters, additive injection: the PAN, "
            "equalised to each band (mean, and std against its Gaussian low pass), minus its version "
            "low-passed with the band's MTF filter, decimated and re-interpolated, is added to the "
            "band: F = MS + P_b - P_b,low. Simple and sharp; prefer the HPM or FS variants when the "
            "bands' detail gains differ much from the PAN's.",
    estimate=_glp_equalisation, apply=_mtf_glp_apply, halo=_mtf_halo, tags=("mtf",)))


# -------------------------------------------------------------------------------------------------- MTF-GLP-FS


def _fs_estimate(ctx, params):
    nb = ctx.ms_lr.shape[0]
    pan_lp = ctx.tile_map(_pan_lp, bands=nb)
    m = stats.moments([ctx.ms, pan_lp, ctx.pan], ctx.valid_hr)
    cov_ms_p = m.cov[:nb, 2 * nb]
    cov_lp_p = m.cov[nb:2 * nb, 2 * nb]
    return {"gains": cov_ms_p / cov_lp_p}


def _fs_apply(block, est, params):
    return mra_glp.glp_fs(block.ms, block.pan, _pan_lp(block, est, params), est["gains"])


register(MethodSpec(
    name="mtf_glp_fs", title="MTF-GLP-FS", family="MRA", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(VIVONE_2018, VIVONE_2021),
    summary="MTF-GLP with full-scale regression gains: F = MS + g_b (P - P_low,b), where P_low,b is the PAN "
            "filtered with band b's MTF, decimated and re-interpolated, and g_b = cov(MS_b, P) / "
            "cov(P_low,b, P) over the whole image (no PAN equalisation). One of the best additive MRA "
            "methods at full resolution; choose it when the PAN and MS radiometries differ.",
    estimate=_fs_estimate, apply=_fs_apply, halo=_mtf_halo, tags=("mtf",)))


# -------------------------------------------------------------------------------------------------- MTF-GLP-HPM-R


def _hpm_r_estimate(ctx, params):
    nb = ctx.ms_lr.shape[0]
    pan_lp = ctx.tile_map(_pan_lp, bands=nb)
    m = stats.moments([ctx.ms, pan_lp], ctx.valid_hr)
    gain = da.diagonal(m.cov[:nb, nb:]) / da.diagonal(m.cov[nb:, nb:])
    pan_mean = stats.valid_mean(ctx.pan, ctx.valid_hr)[0]
    ms_mean = m.mean[:nb]
    return {"gain": gain, "cb": ms_mean / gain - pan_mean, "offset": ms_mean - gain * pan_mean, "ms_mean": ms_mean}


def _hpm_r_apply(block, est, params):
    pan_lp = _pan_lp(block, est, params)
    if block.compat == "toolbox":
        return mra_glp.glp_hpm_r(block.ms, block.pan, pan_lp, est["cb"])
    # Default mode: the same modulation written without dividing by the gain, g (P + c) = g P + mu - g mu_P
    # (finite for g -> 0 and for anti-correlated bands), through the guarded HPM of MTF-GLP-HPM.
    g, off = est["gain"][:, None, None], est["offset"][:, None, None]
    return mra.hpm(block.ms, g * block.pan + off, g * pan_lp + off, floor=HPM_FLOOR * est["ms_mean"].abs(),
                   max_gain=HPM_MAX_GAIN)


register(MethodSpec(
    name="mtf_glp_hpm_r", title="MTF-GLP-HPM-R", family="MRA", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(VIVONE_2018, VIVONE_2021),
    summary="MTF-GLP high-pass modulation with regression-based equalisation: F = MS (P + c_b) / "
            "(P_low,b + c_b), where P_low,b is the PAN filtered with band b's MTF, decimated and "
            "re-interpolated, g_b = cov(MS_b, P_low,b) / var(P_low,b) and c_b = mean(MS_b)/g_b - mean(P). "
            "Spectrally faithful like MTF-GLP-HPM, with an offset that handles haze and PAN/MS "
            "radiometric differences; choose it for spectral quality on real full-scale data.",
    estimate=_hpm_r_estimate, apply=_hpm_r_apply, halo=_mtf_halo, tags=("mtf",)))


# -------------------------------------------------------------------------------------------------- AWLP


def _awlp_levels(ratio: int) -> int:
    return max(1, math.ceil(math.log2(ratio)))


def _bicubic_down_up(block, est, params):
    """MATLAB ``imresize(imresize(PAN, 1/r), r)``: bicubic with antialiasing down, plain bicubic up.

    The enlarging ``imresize`` by an integer ``r`` maps output pixel ``i`` to input position
    ``(i + 0.5)/r - 0.5``: the Keys cubic (a = -0.5) polyphase interpolator at phase ``(r-1)/2``,
    half-sample mirror borders, i.e. :func:`geofuse.kernels.resample.upsample` with ``kind="bicubic"``.
    """
    r = block.ratio
    low = imresize_down(block.pan, r, mode="symmetric")
    p = (r - 1) / 2
    return upsample(low, r, (p, p), "bicubic", "symmetric")


def _awlp_estimate(ctx, params):
    nb = ctx.ms_lr.shape[0]
    down_up = ctx.tile_map(_bicubic_down_up, bands=1)
    m = stats.moments([ctx.ms, down_up], ctx.valid_hr)
    pan_mean = stats.valid_mean(ctx.pan, ctx.valid_hr)[0]
    scale, offset = pan_equalisation(m.mean[:nb], m.std[:nb], m.std[nb], pan_mean)
    return {"scale": scale, "offset": offset}


def _awlp_apply(block, est, params):
    # P_b = s_b P + o_b and the low pass is linear with unit DC gain, so P_b - LP(P_b) = s_b (P - LP(P)):
    # one low pass of the PAN instead of one per band.
    lp = undecimated_lowpass(block.pan, _awlp_levels(block.ratio), mode="symmetric")
    details = est["scale"][:, None, None] * (block.pan - lp)
    return mra_glp.awlp(block.ms, details)


def _awlp_halo(params, ratio: int) -> int:
    # apply: the wavelet low pass; estimate: bicubic down (its taps) then up (2 LR samples + 1 of phase)
    return max(undecimated_lowpass_halo(_awlp_levels(ratio)), imresize_down_halo(ratio) + 3 * ratio)


register(MethodSpec(
    name="awlp", title="AWLP (additive wavelet luminance proportional)", family="MRA", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=(OTAZU_2005, VIVONE_2021),
    summary="Undecimated (a trous, Starck-Murtagh) wavelet details of the PAN, equalised to each band "
            "(std against the PAN's bicubic down/up-sampled version), injected in proportion to the "
            "band's share of the mean intensity: F_b = MS_b + D_b MS_b / mean_c(MS_c). Preserves the "
            "spectral angle of the MS; a robust MRA choice without sensor MTF knowledge.",
    estimate=_awlp_estimate, apply=_awlp_apply, halo=_awlp_halo))
