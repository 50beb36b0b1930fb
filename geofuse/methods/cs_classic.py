"""Classic component-substitution methods: IHS, Brovey, PCA, GS and BT-H (haze-corrected Brovey).

IHS, Brovey and PCA follow the 2015 toolbox (v1.3), GS and BT-H the 2021 distribution (SPEC section 7).
Every global quantity (band means and covariance, the PAN equalisation, the principal component, the
regression weights, the haze percentiles) is a lazy reduction over the whole image made in ``estimate``;
``apply`` only does per-pixel arithmetic (no halo, except BT-H, whose estimate low-passes the PAN).

Differences from the toolbox, kept only under ``compat="toolbox"``:

* Brovey and BT-H divide by the intensity plus MATLAB's ``eps``; in the default mode the ratio is
  guarded like MTF-GLP-HPM's (additive injection where the intensity is below 1 % of its mean, local
  gain clipped to ``[0, 4]``).
* PCA: the toolbox's ``princomp`` makes the largest-magnitude loading of PC1 positive; the default mode
  orients PC1 so that it correlates positively with the PAN (the same choice on ordinary data, but a
  PC1 anti-correlated with the PAN would otherwise be replaced by an inverted PAN).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import dask
import dask.array as da
import numpy as np
import torch

from .. import stats
from ..kernels import cs_classic as k
from ..registry import MethodSpec, Parameter, register

VIVONE_2015 = "10.1109/TGRS.2014.2361734"
VIVONE_2021 = "10.1109/MGRS.2020.3019315"
TU_2001 = "10.1016/S1566-2535(01)00036-7"
GILLESPIE_1987 = "10.1016/0034-4257(87)90088-5"
AIAZZI_2007 = "10.1109/TGRS.2007.901007"

#: Default-mode guards of the Brovey ratio (compat="toolbox" keeps the plain ratio): where the intensity
#: is below this fraction of its global mean the detail is injected additively ...
RATIO_FLOOR = 0.01
#: ... and the local gain MS_b / I is clipped to [0, RATIO_MAX_GAIN].
RATIO_MAX_GAIN = 4.0

#: BT-H haze coefficients for 4-band (B, G, R, NIR) images: L_b = c_b * percentile(MS_b) (Lolli et al.).
HAZE_COEFFS_4 = (0.95, 0.45, 0.40, 0.05)


def _no_halo(params, ratio: int) -> int:
    return 0


def _equalisation(mean_i, var_i, mean_p, var_p) -> tuple[da.Array, da.Array]:
    """The gain and offset matching the PAN (mean_p, var_p) to the component (mean_i, var_i)."""
    scale = da.sqrt(var_i / var_p)
    return da.reshape(scale, (1,)), da.reshape(mean_i - scale * mean_p, (1,))


def _ms_pan_moments(ctx):
    """One pass: means and covariance of the interpolated MS bands and the PAN (PAN last)."""
    return stats.moments([ctx.ms, ctx.pan], ctx.valid_hr)


def _mean_weights(nb: int) -> np.ndarray:
    return np.full(nb, 1.0 / nb)


def _ratio_guard(block, est):
    if block.compat == "toolbox":
        return {}
    return {"floor": est["floor"], "max_gain": RATIO_MAX_GAIN}


# -------------------------------------------------------------------------------------------------- IHS, Brovey


def _band_mean_estimate(ctx, params):
    """PAN matched to the band-mean intensity I (mean and std), and the ratio floor."""
    nb = ctx.ms_lr.shape[0]
    m = _ms_pan_moments(ctx)
    w = _mean_weights(nb)
    mean_i = (m.mean[:nb] * w).sum()
    var_i = (m.cov[:nb, :nb] * np.outer(w, w)).sum()
    scale, offset = _equalisation(mean_i, var_i, m.mean[nb], m.cov[nb, nb])
    return {"scale": scale, "offset": offset, "floor": da.reshape(RATIO_FLOOR * abs(mean_i), (1,))}


def _ihs_apply(block, est, params) -> torch.Tensor:
    return k.ihs(block.ms, block.pan, est["scale"], est["offset"])


def _brovey_apply(block, est, params) -> torch.Tensor:
    return k.brovey(block.ms, block.pan, est["scale"], est["offset"], **_ratio_guard(block, est))


register(MethodSpec(
    name="ihs", title="IHS (generalised, additive)", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(TU_2001, VIVONE_2015),
    summary="Component substitution with the band mean as intensity: F_b = MS_b + (P - I), the PAN matched "
            "to the mean and standard deviation of I = mean of the bands. Very sharp and fast, but the same "
            "detail goes into every band, so spectral distortion is high when the PAN does not cover the "
            "bands evenly; a baseline (toolbox v1.3).",
    estimate=_band_mean_estimate, apply=_ihs_apply, halo=_no_halo))

register(MethodSpec(
    name="brovey", title="Brovey transform", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(GILLESPIE_1987, VIVONE_2015),
    summary="Multiplicative component substitution: F_b = MS_b * P / I with I the band mean and the PAN "
            "matched to the mean and standard deviation of I. Keeps the band ratios (hue) of the MS, sharp; "
            "radiometry follows the PAN, so choose it for visual products rather than for spectral analysis "
            "(toolbox v1.3).",
    estimate=_band_mean_estimate, apply=_brovey_apply, halo=_no_halo))


# -------------------------------------------------------------------------------------------------- PCA


def _first_component(cov: np.ndarray, nb: int, toolbox: bool) -> np.ndarray:
    """Unit eigenvector of the largest eigenvalue of the MS covariance, with a fixed sign.

    Toolbox: MATLAB ``princomp``/``pca``'s convention, the largest-magnitude loading positive.
    Default: PC1 positively correlated with the PAN (the MATLAB convention where the covariance is 0).
    """
    cov = np.asarray(cov, dtype=np.float64)
    _, vecs = np.linalg.eigh(cov[:nb, :nb])
    v = vecs[:, -1]
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    if not toolbox and float(v @ cov[:nb, nb]) < 0:
        v = -v
    return v


def _pca_estimate(ctx, params):
    nb = ctx.ms_lr.shape[0]
    m = _ms_pan_moments(ctx)
    v = da.map_blocks(_first_component, m.cov.rechunk(-1), nb, ctx.compat == "toolbox", drop_axis=1,
                      chunks=((nb,),), dtype=np.float64, meta=np.empty((0,)))
    var_pc1 = (m.cov[:nb, :nb] * v[:, None] * v[None, :]).sum()
    scale, offset = _equalisation(0.0, var_pc1, m.mean[nb], m.cov[nb, nb])
    return {"pc1": v, "ms_mean": m.mean[:nb], "scale": scale, "offset": offset}


def _pca_apply(block, est, params) -> torch.Tensor:
    return k.pca(block.ms, block.pan, est["pc1"], est["ms_mean"], est["scale"], est["offset"])


register(MethodSpec(
    name="pca", title="PCA substitution", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(), references=(VIVONE_2015,),  # Chavez & Kwarteng 1989 (PE&RS 55(3)) has no DOI
    summary="Component substitution in the principal-component space: the first principal component of "
            "the MS bands (global covariance) is replaced by the PAN matched to its mean and standard "
            "deviation, F_b = MS_b + v_b (P - PC1). Sharp; spectral distortion when PC1 is not PAN-like "
            "(few or spectrally diverse bands); a baseline (toolbox v1.3).",
    estimate=_pca_estimate, apply=_pca_apply, halo=_no_halo))


# -------------------------------------------------------------------------------------------------- GS


def _gs_estimate(ctx, params):
    nb = ctx.ms_lr.shape[0]
    m = _ms_pan_moments(ctx)
    w = _mean_weights(nb)
    cov_ms = m.cov[:nb, :nb]
    cov_i = (cov_ms * w[None, :]).sum(axis=1)  # cov(I0, MS_b)
    var_i = (cov_i * w).sum()
    scale, offset = _equalisation(0.0, var_i, m.mean[nb], m.cov[nb, nb])
    return {"gains": cov_i / var_i, "ms_mean": m.mean[:nb], "scale": scale, "offset": offset}


def _gs_apply(block, est, params) -> torch.Tensor:
    return k.gs(block.ms, block.pan, est["gains"], est["ms_mean"], est["scale"], est["offset"])


register(MethodSpec(
    name="gs", title="GS (Gram-Schmidt, mode average)", family="CS", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=(AIAZZI_2007, VIVONE_2015, VIVONE_2021),
    summary="Gram-Schmidt spectral sharpening with the band mean as the low-resolution PAN: the PAN, matched "
            "to the mean-free intensity I0, replaces it and each band receives g_b (P - I0) with "
            "g_b = cov(I0, MS_b) / var(I0). Sharp, less spectral distortion than IHS; prefer GSA when the "
            "bands do not contribute equally to the PAN.",
    estimate=_gs_estimate, apply=_gs_apply, halo=_no_halo))


# -------------------------------------------------------------------------------------------------- BT-H


def _ms_tile(block, est, params) -> torch.Tensor:
    return block.ms


def _bt_h_stack(block, est, params) -> torch.Tensor:
    """[MS~ (C), LPfilterGauss(PAN)] of one tile: the inputs of every BT-H statistic, in one task."""
    return torch.cat([block.ms, k.lp_filter_gauss(block.pan, block.ratio)])


def _bt_h_coefficients(merged: np.ndarray, haze: np.ndarray, nb: int) -> dict:
    """alpha (least squares through the origin of L(PAN) on MS~, as :func:`stats.regress`), the PAN
    equalisation to I = sum alpha_b (MS~_b - L_b) and the ratio floor, from the merged moments of
    [MS~, L(PAN)]."""
    n, mean, cov = stats.moments_of(merged)
    kk = (n - 1) / n
    raw = cov * kk + mean[:, None] * mean[None, :]
    alpha = stats._lstsq(raw[:nb, :nb], raw[:nb, nb])
    haze = np.asarray(haze, np.float64)
    mean_i = (alpha * (mean[:nb] - haze)).sum()
    var_i = (cov[:nb, :nb] * alpha[:, None] * alpha[None, :]).sum()
    scale = np.sqrt(var_i / cov[nb, nb])
    return {"alpha": alpha, "haze": haze, "scale": np.reshape(scale, (1,)),
            "offset": np.reshape(mean_i - scale * mean[nb], (1,)),
            "floor": np.reshape(RATIO_FLOOR * abs(mean_i), (1,))}


def _bt_h_estimate(ctx, params):
    """One pass of moments over [MS~, L(PAN)] (both made in one task per block), and the haze: the
    percentile's passes over the interpolated MS (4 bands) or its band minima. Every pass enters the
    delayed merges once (:func:`block_summaries`, :func:`single`), so no block is computed twice."""
    nb = ctx.ms_lr.shape[0]
    z = ctx.tile_map(_bt_h_stack, bands=nb + 1)
    merged = stats.merged_moments([z], ctx.valid_hr)
    if nb == len(HAZE_COEFFS_4):
        haze = dask.delayed(np.multiply)(np.asarray(HAZE_COEFFS_4), _percentile_delayed(
            ctx.ms, params["percentile"], ctx.valid_hr,
            reread=lambda barrier: ctx.tile_map(_ms_tile, bands=nb, use_pan=False, est=barrier)))
    else:
        haze = stats.single(masked_min(ctx.ms, ctx.valid_hr))
    co = dask.delayed(_bt_h_coefficients)(merged, haze, nb)
    shapes = {"alpha": (nb,), "haze": (nb,), "scale": (1,), "offset": (1,), "floor": (1,)}
    return {key: da.from_delayed(co[key], shape=shp, dtype=np.float64) for key, shp in shapes.items()}


def _bt_h_apply(block, est, params) -> torch.Tensor:
    return k.bt_h(block.ms, block.pan, est["alpha"], est["haze"], est["scale"], est["offset"],
                  **_ratio_guard(block, est))


def _bt_h_halo(params, ratio: int) -> int:
    return k.lp_filter_gauss_radius(ratio)  # the estimate's LPfilterGauss of the PAN


register(MethodSpec(
    name="bt_h", title="BT-H (haze-corrected Brovey)", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
    parameters=(Parameter("percentile", "float", 1.0,
                          "percentile of each band giving its haze (4-band B,G,R,NIR images; others: band minimum)",
                          min=0.0, max=100.0),),
    references=(VIVONE_2021,),  # + Lolli et al., IEEE GRSL 14(12):2255-2259, 2017 (IEEE Xplore 8091124; DOI unverified)
    summary="Brovey with haze correction and regression weights: F_b = (MS_b - L_b)+ * P / I + L_b, with "
            "I = sum alpha_b (MS_b - L_b), alpha the least-squares weights of the MS on the low-passed PAN, "
            "L_b the path radiance (for B,G,R,NIR: [0.95 0.45 0.40 0.05] x the 1st percentile of each band; "
            "otherwise the band minimum) and the PAN matched to I with its low-pass statistics. Among the "
            "best CS methods on VNIR data, spectrally much better than plain Brovey; band order B,G,R,NIR "
            "assumed for 4-band images.",
    estimate=_bt_h_estimate, apply=_bt_h_apply, halo=_bt_h_halo))


# --------------------------------------------------------------------------------------------------
# exact global percentiles (radix selection over histograms of the float bits)

_DIGIT_BITS = 16
_NBINS = 1 << _DIGIT_BITS


def _sortable_keys(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Unsigned integer keys ordered like the float values (IEEE 754 sign flip), and their bit width."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.float32:
        u, width = x.view(np.uint32), 32
    else:
        u, width = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64), 64
    sign = u.dtype.type(1) << u.dtype.type(width - 1)
    return np.where(u & sign, ~u, u | sign), width


def _keys_to_float(keys: np.ndarray, width: int) -> np.ndarray:
    ut = np.uint32 if width == 32 else np.uint64
    keys = keys.astype(ut)
    sign = ut(1) << ut(width - 1)
    u = np.where(keys & sign, keys ^ sign, ~keys).astype(ut)
    return u.view(np.float32 if width == 32 else np.float64).astype(np.float64)


def _top_digits(x: np.ndarray) -> np.ndarray:
    """(B, N) uint16: the first (highest) 16-bit digit of the sortable keys of ``x`` (B, N), read from
    the float's top 16 bits only (the sign flip of :func:`_sortable_keys` restricted to them)."""
    x = np.ascontiguousarray(x)
    if x.dtype != np.float32:
        x = np.ascontiguousarray(x, dtype=np.float64)
    if sys.byteorder != "little":
        keys, width = _sortable_keys(x)
        return (keys >> keys.dtype.type(width - _DIGIT_BITS)).astype(np.uint16)
    step = x.dtype.itemsize // 2
    h = x.view(np.uint16).reshape(x.shape[0], -1, step)[:, :, step - 1]
    return np.where(h & np.uint16(0x8000), ~h, h | np.uint16(0x8000))


def _raw_top(x: np.ndarray) -> np.ndarray:
    """(B, N) uint16: the raw top 16 bits of the floats ``x`` (B, N), a view where the byte order allows
    (their sortable first digit is ``_RAW_TO_KEY[raw]``)."""
    x = np.ascontiguousarray(x)
    if x.dtype != np.float32:
        x = np.ascontiguousarray(x, dtype=np.float64)
    if sys.byteorder != "little":
        return _KEY_TO_RAW[_top_digits(x)]
    step = x.dtype.itemsize // 2
    return x.view(np.uint16).reshape(x.shape[0], -1, step)[:, :, step - 1]


#: The sortable first digit of each raw top-16-bit pattern (the sign flip of :func:`_sortable_keys`),
#: and its inverse.
_RAW_TO_KEY = np.where(np.arange(1 << 16, dtype=np.uint16) & np.uint16(0x8000),
                       ~np.arange(1 << 16, dtype=np.uint16), np.arange(1 << 16, dtype=np.uint16) | np.uint16(0x8000))
_KEY_TO_RAW = np.argsort(_RAW_TO_KEY).astype(np.uint16)


def _digit_histograms(x: np.ndarray, valid: np.ndarray | None, state: dict | None, level: int) -> np.ndarray:
    """(B*R*NBINS, 1, 1) counts of the ``level``-th 16-bit digit of the keys of each band's valid values,
    among those whose higher digits equal the state's prefix for each of the R order statistics.

    The first digit's histogram is counted on the floats' raw top 16 bits and its bins permuted to key
    order; later levels build the full keys of only the values whose first digit matches one of the
    prefixes (a small fraction of the block)."""
    B = x.shape[0]
    v = x.reshape(B, -1)
    if valid is not None:
        v = v[:, valid.reshape(-1).astype(bool)]
    raw = _raw_top(v)
    if state is None:
        out = np.zeros((B, 1, _NBINS), dtype=np.int64)
        for b in range(B):
            out[b, 0, _RAW_TO_KEY] = np.bincount(raw[b], minlength=_NBINS)
        return out.reshape(-1, 1, 1)
    prefix = state["prefix"]
    R = prefix.shape[1]
    width = 32 if v.dtype == np.float32 else 64
    shift = np.uint64(_DIGIT_BITS * (level - 1))
    out = np.zeros((B, R, _NBINS), dtype=np.int64)
    for b in range(B):
        first = (prefix[b].astype(np.uint64) >> shift).astype(np.uint16)  # the prefixes' first digits
        sel = np.flatnonzero(np.isin(raw[b], _KEY_TO_RAW[np.unique(first)]))
        keys, _ = _sortable_keys(v[b, sel])
        kt = keys.dtype.type
        lo = width - _DIGIT_BITS * (level + 1)
        digits = (keys >> kt(lo)) & kt(_NBINS - 1)
        head = keys >> kt(width - _DIGIT_BITS * level)
        for r in range(R):
            out[b, r] = np.bincount(digits[head == kt(prefix[b, r])].astype(np.int64), minlength=_NBINS)
    return out.reshape(-1, 1, 1)


def _select_digit(hist: np.ndarray, state: dict | None, B: int, q: float) -> dict:
    """Choose the next digit of each wanted order statistic from the merged histograms."""
    if state is None:
        counts = hist.reshape(B, 1, _NBINS)
        n = counts.sum(axis=(1, 2)).astype(np.float64)
        pos = n * q / 100.0 + 0.5  # MATLAB/Octave prctile: sorted x(k) sits at 100 (k - 0.5) / n
        k1 = np.clip(np.floor(pos), 1, np.maximum(n, 1))
        frac = np.where((pos >= 1) & (pos < n), pos - k1, 0.0)
        k2 = np.minimum(k1 + 1, np.maximum(n, 1))
        ranks = np.stack([k1, k2], axis=1).astype(np.int64)  # (B, 2), 1-based
        counts = np.repeat(counts, 2, axis=1)
        prefix = np.zeros_like(ranks, dtype=np.uint64)
        state = {"n": n, "frac": frac}
    else:
        ranks, prefix = state["rank"], state["prefix"]
        counts = hist.reshape(B, ranks.shape[1], _NBINS)
    cum = np.cumsum(counts, axis=2)
    digit = np.empty_like(ranks)
    rest = np.empty_like(ranks)
    for b in range(B):
        for r in range(ranks.shape[1]):
            d = int(np.searchsorted(cum[b, r], ranks[b, r], side="left"))
            d = min(d, _NBINS - 1)
            digit[b, r] = d
            rest[b, r] = ranks[b, r] - (cum[b, r, d - 1] if d > 0 else 0)
    return {**state, "rank": rest,
            "prefix": (prefix.astype(np.uint64) << np.uint64(_DIGIT_BITS)) | digit.astype(np.uint64)}


def _finish(state: dict, width: int) -> np.ndarray:
    v = _keys_to_float(state["prefix"], width)
    out = v[:, 0] + state["frac"] * (v[:, 1] - v[:, 0])
    return np.where(state["n"] > 0, out, np.nan)


def percentile(x: da.Array, q: float, valid: da.Array | None = None,
               reread: Callable[[Any], da.Array] | None = None) -> da.Array:
    r"""Exact per-band percentile of ``x`` (B, H, W) over the ``valid`` (H, W) pixels, lazily.

    The definition of MATLAB's ``prctile`` (and Octave's, quantile method 5): the sorted values
    :math:`x_{(k)}` sit at the percentages :math:`100 (k - 0.5) / n`; in between the percentile is
    interpolated linearly, beyond them it is the minimum or the maximum:

    .. math::
        p = n q / 100 + 1/2,\qquad
        \mathrm{prctile}(x, q) = x_{(\lfloor p \rfloor)} + (p - \lfloor p \rfloor)
        (x_{(\lfloor p \rfloor + 1)} - x_{(\lfloor p \rfloor)}).

    The two order statistics are found exactly by radix selection: the floats are mapped to
    order-preserving unsigned keys and each pass merges per-block histograms of one 16-bit digit of
    the keys (2 passes for float32, 4 for float64), among the values whose higher digits are already
    known.

    Parameters
    ----------
    x : dask.array.Array
        (B, H, W) float32 or float64, no NaN among the valid pixels.
    q : float
        Percentage in [0, 100].
    valid : dask.array.Array, optional
        (H, W) bool.
    reread : callable, optional
        ``reread(barrier) -> x`` rebuilds ``x`` from tasks that depend on ``barrier`` (a Delayed), so
        that a derived ``x`` (e.g. the interpolated MS) is recomputed in each pass instead of being
        held in memory between passes. Without it, the blocks of ``x`` are shared by the passes.

    Returns
    -------
    dask.array.Array
        (B,) float64 (NaN for a band without valid pixels).
    """
    B = x.shape[0]
    return da.from_delayed(_percentile_delayed(x, q, valid, reread), shape=(B,), dtype=np.float64)


def _percentile_delayed(x: da.Array, q: float, valid: da.Array | None = None,
                        reread: Callable[[Any], da.Array] | None = None):
    """:func:`percentile` as a Delayed (B,) float64 array: each pass's block histograms are summed by a
    tree reduction (memory bounded by the chunk size) and enter the delayed selection once."""
    B = x.shape[0]
    width = 32 if x.dtype == np.float32 else 64
    state = None
    for level in range(width // _DIGIT_BITS):
        xs = x if (level == 0 or reread is None) else reread(dask.delayed(_barrier)(state))
        hist = stats.single(_histogram_pass(xs, valid, state, level).sum(axis=(1, 2)))
        state = dask.delayed(_select_digit)(hist, state, B, float(q))
    return dask.delayed(_finish)(state, width)


def _histogram_pass(xs: da.Array, valid: da.Array | None, state, level: int) -> da.Array:
    """(B*R*NBINS, ny, nx) per-block digit histograms of one radix-selection pass."""
    B = xs.shape[0]
    xs = xs.rechunk((B,) + xs.chunks[1:])
    R = 1 if level == 0 else 2
    out_chunks = ((B * R * _NBINS,), (1,) * xs.numblocks[1], (1,) * xs.numblocks[2])
    args = [xs] if valid is None else [xs, valid.rechunk(xs.chunks[1:])[None]]
    fn = _hist_x if valid is None else _hist_xv
    return da.map_blocks(fn, *args, state=state, level=level, chunks=out_chunks, dtype=np.int64,
                         meta=np.empty((0, 0, 0), np.int64))


def _barrier(state) -> dict:
    """An empty estimate that exists only after ``state`` (orders a re-read after the previous pass)."""
    return {}


def _hist_x(x, state=None, level=0):
    return _digit_histograms(x, None, state, level)


def _hist_xv(x, v, state=None, level=0):
    return _digit_histograms(x, v[0], state, level)


def masked_min(x: da.Array, valid: da.Array | None = None) -> da.Array:
    """Per-band minimum of ``x`` (B, H, W) over the ``valid`` (H, W) pixels (float64, lazy)."""
    if valid is not None:
        x = da.where(valid.rechunk(x.chunks[1:])[None], x, np.inf)
    return x.min(axis=(1, 2)).astype(np.float64)
