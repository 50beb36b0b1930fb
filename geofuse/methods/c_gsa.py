"""C-GSA: context-adaptive (segment-wise) Gram-Schmidt adaptive pansharpening.

The 2021 toolbox runs ``GS_Segm(I_MS, I_PAN, gen_LP_image('GSA', ...), k_means_clustering(I_MS, 5))``:
the GSA intensity (weights from a least-squares fit of the Gaussian-low-passed, decimated PAN on the
low-resolution MS, with a constant) and one injection gain per band and k-means segment of the
interpolated MS. Here the k-means is a seeded k-means++/Lloyd fit on a global sample of the normalised
interpolated MS (MATLAB's ``kmeans`` is randomly seeded, so the toolbox itself is not reproducible: the
reference is matched on quality indexes, not pixels); its centroids are an estimate output and every
chunk labels its pixels by the nearest centroid. The per-segment gains are global per-segment
reductions.
"""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import torch

from .. import stats
from ..kernels import segment
from ..kernels.filters import correlate2d, lp_filter_gauss_kernel
from ..kernels.resample import decimation_kernel
from ..registry import MethodSpec, Parameter, register

VIVONE_2021 = "10.1109/MGRS.2020.3019315"
RESTAINO_2017 = "10.1109/TGRS.2016.2614367"

#: At most this many pixels (a regular global grid of the HR image) feed the k-means fit.
KMEANS_SAMPLES = 65536


def _pan_lr(block, est, params) -> torch.Tensor:
    """LPfilterGauss(PAN) (GNyq 0.3, replicate border) sampled on the LR grid (toolbox: 'nearest')."""
    k, offset = decimation_kernel(lp_filter_gauss_kernel(block.ratio), block.phase)
    return correlate2d(block.pan, k, mode="replicate", stride=block.ratio, offset=offset)


def _intensity(ms: torch.Tensor, weights: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
    """I = sum_b w_b MS_b + w_0, summed band by band (elementwise: independent of the tile)."""
    out = torch.zeros_like(ms[:1]) + intercept.reshape(1, 1, 1)
    for b in range(ms.shape[0]):
        out = out + weights[b] * ms[b:b + 1]
    return out


def _labels(ms: torch.Tensor, est) -> torch.Tensor:
    return segment.assign_segments(ms, est["centroids"], divisor=est["ms_max"])


def _segment_stats_block(block, est, params) -> torch.Tensor:
    """[label, I, MS_1..MS_C] per HR pixel (the inputs of the per-segment reductions)."""
    ms = block.ms
    inten = _intensity(ms, est["weights"], est["intercept"])
    lab = _labels(ms, est).to(ms.dtype)[None]
    return torch.cat([lab, inten, ms])


def _fit_centroids(sample: np.ndarray, valid: np.ndarray | None, ms_max: np.ndarray, k: int,
                   seed: int) -> np.ndarray:
    x = sample.reshape(sample.shape[0], -1).astype(np.float64)
    if valid is not None:
        x = x[:, valid.reshape(-1)]
    x = x / ms_max[:, None]
    c = segment.kmeans_fit(torch.from_numpy(np.ascontiguousarray(x.T)), k, seed=seed)
    return c.numpy()


def _grouped_block(x: np.ndarray, valid: np.ndarray | None = None, *, k: int) -> np.ndarray:
    """Per-block, per-segment summaries [n, mean (B), centred cross-products (B*B)] of x[1:] by x[0].

    Each segment's values are gathered in the block's dtype and only then converted to float64, into
    buffers reused by every segment (the same float64 (B, n) arrays, in the same memory order, as
    converting the whole block first and gathering; no float64 copy of the block, no fresh float64
    allocation per segment)."""
    lab = x[0].reshape(-1)
    v = x[1:].reshape(x.shape[0] - 1, -1)
    B = v.shape[0]
    keep = None if valid is None else valid.reshape(-1).astype(bool)
    out = np.zeros((k, 1 + B + B * B))
    sels = []
    for s in range(k):
        sel = lab == s
        if keep is not None:
            sel &= keep
        sels.append((sel, int(np.count_nonzero(sel))))
    size = B * max((n for _, n in sels), default=0)
    buf = np.empty(size, dtype=np.float64)
    cen = np.empty(size, dtype=np.float64)
    for s, (sel, n) in enumerate(sels):
        if n:
            # (B, n) views laid out like v[:, sel] (Fortran order): the reductions below then run in the
            # same order as on the gathered array itself, so the sums are the same bit for bit
            xr = v[:, sel]
            xs = buf[:B * n].reshape(n, B).T
            xs[...] = xr
            m = xs.mean(axis=1)
            xc = cen[:B * n].reshape(n, B).T
            np.subtract(xs, m[:, None], out=xc)
            out[s, 0], out[s, 1:1 + B], out[s, 1 + B:] = n, m, (xc @ xc.T).ravel()
    return out.reshape(-1)[:, None, None]


def _grouped_blocks(parts: list) -> np.ndarray:
    """(K, n_blocks) stacked block summaries for :func:`_merge_gains`."""
    return stats.stack_summaries(parts)


def _merge_gains(parts: np.ndarray, k: int, B: int) -> np.ndarray:
    """Merge the per-block summaries per segment (Chan et al. pairwise update) and return the gains
    cov(I, MS_b) / var(I) of each segment, (k, B - 1); a segment without enough pixels (or with a
    constant intensity) takes the gain of the whole image."""
    K = 1 + B + B * B
    parts = parts.reshape(k, K, -1)
    n = np.zeros(k + 1)
    mean = np.zeros((k + 1, B))
    m2 = np.zeros((k + 1, B, B))
    for s in range(k):
        for p in parts[s].T:
            nb = p[0]
            if nb == 0:
                continue
            for t in (s, k):  # the segment and the whole image
                tot = n[t] + nb
                d = p[1:1 + B] - mean[t]
                m2[t] += p[1 + B:].reshape(B, B) + np.outer(d, d) * (n[t] * nb / tot)
                mean[t] += d * (nb / tot)
                n[t] = tot
    var_i, cov_ib = m2[:, 0, 0], m2[:, 0, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = cov_ib / var_i[:, None]
    ok = (n[:k] >= 2) & (var_i[:k] > 0)
    glob = gains[k] if (n[k] >= 2 and var_i[k] > 0) else np.ones(B - 1)
    return np.where(ok[:, None], gains[:k], glob[None, :])


def _sample_offsets(chunks: tuple[int, ...], step: int) -> list[tuple[int, int]]:
    """(first local index, count) of the global grid ``::step`` in each chunk along one axis."""
    out, a = [], 0
    for c in chunks:
        o = (-a) % step
        out.append((o, len(range(o, c, step))))
        a += c
    return out


def _ms_pass(ms: np.ndarray, valid: np.ndarray | None = None, *, step: int, rmax: int, cmax: int,
             block_info=None) -> np.ndarray:
    """One HR block of the interpolated MS -> (K, 1, 1): its per-band maximum over the valid pixels, then
    its samples on the global grid ``[::step, ::step]`` (and their validity), padded to rmax x cmax."""
    loc = block_info[0]["array-location"]
    oy, ox = (-loc[1][0]) % step, (-loc[2][0]) % step
    C = ms.shape[0]
    sample = ms[:, oy::step, ox::step]
    pad = np.zeros((C + (valid is not None), rmax, cmax))
    pad[:C, :sample.shape[1], :sample.shape[2]] = sample
    if valid is None:
        mx = ms.reshape(C, -1).max(axis=1)
    else:
        v = valid[0]
        mx = np.where(v[None], ms, -np.inf).reshape(C, -1).max(axis=1)
        pad[C, :sample.shape[1], :sample.shape[2]] = v[oy::step, ox::step]
    return np.concatenate([mx.astype(np.float64), pad.ravel()])[:, None, None]


def _first(moms_lr: np.ndarray, parts: list, rows: list, cols: list, masked: bool, dtype, k: int,
           seed: int) -> dict:
    """GSA weights (least squares of L(PAN) on [1, MS] on the LR grid, as :func:`stats.regress`), the
    normalisation maxima and the k-means centroids from the first pass."""
    _, mean, cov = stats.moments_of(moms_lr)
    C = mean.size - 1
    weights = stats._lstsq(cov[:C, :C], cov[:C, C])
    intercept = np.reshape(mean[C] - (weights * mean[:C]).sum(), (1,))
    ny, nx = len(rows), len(cols)
    rmax, cmax = max(r for _, r in rows), max(c for _, c in cols)
    blocks = [np.asarray(p).reshape(-1) for p in parts]
    ms_max = np.max(np.stack([b[:C] for b in blocks]), axis=0)
    pads = [b[C:].reshape(C + masked, rmax, cmax) for b in blocks]
    full = np.concatenate([np.concatenate([pads[i * nx + j][:, :rows[i][1], :cols[j][1]] for j in range(nx)], axis=2)
                           for i in range(ny)], axis=1)
    sample = full[:C].astype(dtype)  # the samples' own values (exact: float32 -> float64 -> float32)
    vs = full[C].astype(bool) if masked else None
    centroids = _fit_centroids(sample, vs, ms_max, k, seed)
    return {"weights": weights, "intercept": intercept, "ms_max": ms_max, "centroids": centroids}


def _final(first: dict, parts: list, k: int, B: int) -> dict:
    return {**first, "gains": _merge_gains(_grouped_blocks(parts), k, B)}


def _c_gsa_estimate(ctx, params):
    """Pass 1: the LR moments of [MS, L(PAN)] (GSA weights) and, per HR block, the MS maxima and the
    k-means sample; pass 2: the per-segment moments. Each pass computes every block once (its blocks
    enter the delayed merges through ``to_delayed``)."""
    k, seed = int(params["n_segments"]), int(params["seed"])
    C = ctx.ms_lr.shape[0]
    pan_lr = ctx.tile_map(_pan_lr, bands=1, grid="lr")
    moms_lr = stats.merged_moments([ctx.ms_lr, pan_lr], ctx.valid_lr)
    ms = ctx.ms
    H, W = ms.shape[1:]
    step = max(1, math.ceil(math.sqrt(H * W / KMEANS_SAMPLES)))
    rows, cols = _sample_offsets(ms.chunks[1], step), _sample_offsets(ms.chunks[2], step)
    rmax, cmax = max(r for _, r in rows), max(c for _, c in cols)
    masked = ctx.valid_hr is not None
    Ka = C + (C + masked) * rmax * cmax
    out_chunks = ((Ka,), (1,) * ms.numblocks[1], (1,) * ms.numblocks[2])
    args = [ms] if not masked else [ms, ctx.valid_hr.rechunk(ms.chunks[1:])[None]]
    parts_a = da.map_blocks(_ms_pass, *args, step=step, rmax=rmax, cmax=cmax, chunks=out_chunks,
                            dtype=np.float64, meta=np.empty((0, 0, 0)))
    first = dask.delayed(_first)(moms_lr, stats.block_summaries(parts_a), rows, cols, masked, ms.dtype, k, seed)
    x = ctx.tile_map(_segment_stats_block, bands=2 + C, est=first, use_pan=False)  # MS only: no PAN read
    B = 1 + C
    Kb = k * (1 + B + B * B)
    valid = ctx.valid_hr
    args = [x] if valid is None else [x, valid.rechunk(x.chunks[1:])[None]]
    parts = da.map_blocks(_grouped_block, *args, k=k, chunks=((Kb,),) + tuple((1,) * len(c) for c in x.chunks[1:]),
                          dtype=np.float64, meta=np.empty((0, 0, 0)))
    final = dask.delayed(_final)(first, stats.block_summaries(parts), k, B)
    shapes = {"weights": (C,), "intercept": (1,), "ms_max": (C,), "centroids": (k, C), "gains": (k, C)}
    return {key: da.from_delayed(final[key], shape=shp, dtype=np.float64) for key, shp in shapes.items()}


def _c_gsa_apply(block, est, params) -> torch.Tensor:
    ms = block.ms
    inten = _intensity(ms, est["weights"], est["intercept"])
    return segment.c_gsa(ms, block.pan, inten, _labels(ms, est), est["gains"])


def _c_gsa_halo(params, ratio: int) -> int:
    return 20 + 1  # the 41x41 LPfilterGauss of the weight estimation, +1 for a half-integer phase


register(MethodSpec(
    name="c_gsa", title="C-GSA (context-adaptive GSA, k-means segments)", family="CS", scenario="pansharpening",
    inputs=("ms", "pan"),
    parameters=(Parameter("n_segments", "int", 5, "number of k-means segments of the interpolated MS", min=1,
                          max=64),
                Parameter("seed", "int", 0, "seed of the k-means++ initialisation (deterministic)", min=0)),
    references=(RESTAINO_2017, VIVONE_2021),
    summary="GSA with one injection gain per band and segment: the interpolated MS is clustered by a seeded "
            "k-means (5 segments), the GSA intensity I (least-squares weights of the low-passed PAN on the "
            "MS) is computed once, and each band receives g_{s,b} (P - I) with g_{s,b} = cov(I, MS_b) / "
            "var(I) within segment s. Adapts the injection to land-cover classes; choose it over GSA on "
            "heterogeneous scenes.",
    estimate=_c_gsa_estimate, apply=_c_gsa_apply, halo=_c_gsa_halo))
