"""PRACS: partial replacement adaptive component substitution (Choi, Yu & Kim 2011).

``estimate`` makes two single passes of mergeable moments: the interpolated MS and the PAN (for the
histogram matching), then, lazily derived tile by tile from those statistics, the interpolated MS, the
matched MS, and the bicubic low passes of the PAN and of the matched MS. Every regression and
correlation of the method is a closed form of those moments (:func:`geofuse.kernels.pracs.pracs_coefficients`);
``apply`` is per pixel.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import torch

from .. import stats
from ..kernels import pracs as kp
from ..kernels.filters import imresize_down_halo
from ..registry import MethodSpec, Parameter, register

CHOI_2011 = "10.1109/TGRS.2010.2051674"
VIVONE_2021 = "10.1109/MGRS.2020.3019315"

_APPLY_KEYS = ("ms_mean", "scale", "pan_mean", "cc", "lint", "lcoef", "dmean", "w", "c_int")


def _match(merged1: np.ndarray, C: int) -> dict:
    """Histogram matching of the MS to the PAN from the first pass's moments of [MS~, P]."""
    _, mean, cov = stats.moments_of(merged1)
    std = np.sqrt(np.diagonal(cov))
    return {"ms_mean": mean[:C], "scale": std[C] / std[:C], "pan_mean": mean[C:]}


def _stage2(block, est, params) -> torch.Tensor:
    """[MS~, matched MS, L(PAN), L(matched MS)] of one tile (3C + 1 bands)."""
    hm = kp.histogram_match(block.ms, est["ms_mean"], est["scale"], est["pan_mean"])
    return torch.cat([block.ms, hm, kp.bicubic_lowpass(block.pan, block.ratio),
                      kp.bicubic_lowpass(hm, block.ratio)])


def _coefficients(match: dict, merged1: np.ndarray, merged2: np.ndarray, beta: float) -> dict:
    _, mean1, _ = stats.moments_of(merged1)
    C = match["ms_mean"].shape[0]
    _, mean2, cov2 = stats.moments_of(merged2)
    return {**match, **kp.pracs_coefficients(mean2, cov2, mean1[C], beta)}


def _pracs_estimate(ctx, params):
    """Two passes, each one task per block and one delayed merge (no pass is computed twice)."""
    C = ctx.ms_lr.shape[0]
    m1 = stats.merged_moments([ctx.ms, ctx.pan], ctx.valid_hr)
    match = dask.delayed(_match)(m1, C)
    z = ctx.tile_map(_stage2, bands=3 * C + 1, est=match)
    m2 = stats.merged_moments([z], ctx.valid_hr)
    coef = dask.delayed(_coefficients)(match, m1, m2, float(params["beta"]))
    shapes = {"ms_mean": (C,), "scale": (C,), "pan_mean": (1,), "cc": (C,), "lint": (C,), "lcoef": (C, C),
              "dmean": (C,), "w": (C,), "c_int": (C,)}
    return {k: da.from_delayed(coef[k], shape=shp, dtype=np.float64) for k, shp in shapes.items()}


def _pracs_apply(block, est, params) -> torch.Tensor:
    return kp.pracs(block.ms, block.pan, **{k: est[k] for k in _APPLY_KEYS})


def _pracs_halo(params, ratio: int) -> int:
    """The bicubic low pass: the antialiased reduction's taps, two LR samples of the bicubic expansion
    on each side, and one LR sample of margin."""
    return imresize_down_halo(ratio) + 3 * ratio


register(MethodSpec(
    name="pracs", title="PRACS (partial replacement adaptive CS)", family="CS", scenario="pansharpening",
    inputs=("ms", "pan"),
    parameters=(Parameter("beta", "float", 0.95, "injection scale beta (0.95 for 11-bit data; the toolbox "
                          "suggests 1.95 for 8-bit data)", min=0.0),),
    references=(CHOI_2011, VIVONE_2021),
    summary="Adaptive component substitution with partial replacement: each band gets its own high-"
            "resolution component, a mix c_b PAN + (1 - c_b) MS_b weighted by the band's correlation with "
            "the intensity, minus its low-resolution regression on the MS; the detail is injected with a "
            "global gain and a local weight that tempers spectral distortion. Choose it for a spectrally "
            "faithful CS result when the PAN does not cover every band equally.",
    estimate=_pracs_estimate, apply=_pracs_apply, halo=_pracs_halo))
