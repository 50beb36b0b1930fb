"""BDSD and BDSD-PC: band-dependent spatial-detail injection with gains fitted at reduced scale.

Both methods fit, at the scale of the MS, how each band's missing detail
(``imresize(MS, 1/r) - MTF(imresize(MS, 1/r))``) is explained by the MTF-degraded bands and the
MTF-degraded, decimated PAN, then apply those gains at full scale (:mod:`geofuse.kernels.bdsd`).

The reduced-scale images are derived lazily, tile by tile (``ctx.tile_map`` on the LR grid for the
bicubic reduction of the MS and the filtered, decimated PAN; :func:`geofuse.engine.map_tiles` for the
MTF filter at the LR scale), and the normal equations are one mergeable reduction over them: raw sums
of ``z z^T`` per LR chunk, per statistics block when ``block_size`` is set, summed over the image.
The statistics blocks are the method's own grid, aligned to the image origin, not the dask chunks.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import dask
import dask.array as da
import numpy as np
import torch

from ..engine import Block, map_tiles
from ..errors import ParameterError
from ..kernels import bdsd as kb
from ..kernels.filters import correlate2d, imresize_down, imresize_down_halo, mtf_kernel, mtf_kernels
from ..kernels.resample import decimation_kernel
from ..registry import MethodSpec, Parameter, register

VIVONE_2021 = "10.1109/MGRS.2020.3019315"
GARZELLI_2008 = "10.1109/TGRS.2007.907604"
VIVONE_2019 = "10.1109/TGRS.2019.2900581"

#: Radius of the 41 x 41 MTF-matched kernels.
_MTF_RADIUS = 20
#: LR rows/cols per chunk when the LR arrays are regrouped onto whole statistics blocks.
_GROUP_LR = 256
#: Whether the engine tells each block where its tile starts (needed for ``block_size`` > 0 with
#: several chunks): ``Block.origin`` = (row, col) of the tile's first LR sample, halo included.
_ENGINE_HAS_ORIGIN = "origin" in {f.name for f in dataclasses.fields(Block)}


# -------------------------------------------------------------------------------------------------- reduced scale


def _pan_lp_d(block, est, params) -> torch.Tensor:
    """``MTF_PAN(PAN)`` decimated onto the LR grid at the grid phase (the toolbox's ``(3:r:end)``)."""
    k, offset = decimation_kernel(mtf_kernel(block.sensor.pan_gnyq, block.ratio), block.phase)
    return correlate2d(block.pan, k, mode="replicate", stride=block.ratio, offset=offset)


def _ms_orig(block, est, params) -> torch.Tensor:
    """``imresize(MS~, 1/r)``: bicubic, antialiased reduction of the interpolated MS."""
    return imresize_down(block.ms, block.ratio)


def _lr_mtf(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    return correlate2d(x, kernel, mode="replicate")


def _lr_valid(ctx):
    """LR pixels whose whole r x r PAN footprint is valid (and whose MS is valid), or None."""
    if ctx.valid_hr is None:
        return ctx.valid_lr
    r = ctx.ratio
    return da.coarsen(np.all, ctx.valid_hr, {0: r, 1: r}).rechunk(ctx.layout.lr_chunks)


def reduced_scale(ctx):
    """Lazy ``(M^L, P^L, M^o)`` on the LR grid: MTF(imresize(MS~)), decimated MTF_PAN(PAN), imresize(MS~)."""
    C = ctx.ms_lr.shape[0]
    ms_orig = ctx.tile_map(_ms_orig, bands=C, grid="lr", use_pan=False)
    pan_lp_d = ctx.tile_map(_pan_lp_d, bands=1, grid="lr")
    k = mtf_kernels(ctx.sensor.gains(C), ctx.ratio)
    ms_lp_d = map_tiles(ms_orig, partial(_lr_mtf, kernel=k), depth=_MTF_RADIUS, device=ctx.device, work=ctx.work)
    return ms_lp_d.rechunk(ms_orig.chunks), pan_lp_d, ms_orig


# -------------------------------------------------------------------------------------------------- normal equations


def _chunk_sums(z: np.ndarray, *valid, edges_y=None, edges_x=None, block_info=None) -> np.ndarray:
    """Raw sums of z z^T over the valid pixels of each statistics block inside this chunk.

    Returns (K*K, nby_chunk, nbx_chunk); without edges the whole chunk is one block."""
    K = z.shape[0]
    z = z.astype(np.float64)
    if valid:
        z = z * valid[0].astype(np.float64)[None]
    if edges_y is None:
        ly, lx = np.array([0, z.shape[1]]), np.array([0, z.shape[2]])
    else:
        (y0, y1), (x0, x1) = block_info[0]["array-location"][1:]
        ly = edges_y[(edges_y >= y0) & (edges_y <= y1)] - y0
        lx = edges_x[(edges_x >= x0) & (edges_x <= x1)] - x0
    out = np.zeros((K * K, len(ly) - 1, len(lx) - 1))
    for i in range(len(ly) - 1):
        for j in range(len(lx) - 1):
            zb = z[:, ly[i]:ly[i + 1], lx[j]:lx[j + 1]].reshape(K, -1)
            out[:, i, j] = (zb @ zb.T).ravel()
    return out


def normal_sums(z: da.Array, valid, edges_y: np.ndarray, edges_x: np.ndarray) -> da.Array:
    """Lazy raw sums ``sum z z^T`` per statistics block: (nby, nbx, K, K) float64.

    One block (global fit): each chunk reduces to one K x K sum. Several blocks: the LR arrays are
    regrouped into chunks made of whole blocks, each chunk yields its blocks' sums."""
    K = z.shape[0]
    extra = [] if valid is None else [valid]
    if len(edges_y) == 2 and len(edges_x) == 2:
        extra = [v.rechunk(z.chunks[1:]) for v in extra]
        parts = da.map_blocks(_chunk_sums, z, *extra, chunks=((K * K,),) + tuple((1,) * n for n in z.numblocks[1:]),
                              dtype=np.float64, meta=np.empty((0, 0, 0)))
        return parts.sum(axis=(1, 2)).reshape(1, 1, K, K)
    groups = []
    for edges in (edges_y, edges_x):
        nb = len(edges) - 1
        step = max(1, _GROUP_LR // max(1, int(edges[1] - edges[0])))
        starts = list(range(0, nb, step))
        groups.append((tuple(int(edges[min(s + step, nb)] - edges[s]) for s in starts),
                       tuple(min(step, nb - s) for s in starts)))
    (cy, by), (cx, bx) = groups
    zr = z.rechunk(((K,), cy, cx))
    extra = [v.rechunk((cy, cx)) for v in extra]
    parts = da.map_blocks(_chunk_sums, zr, *extra, edges_y=edges_y, edges_x=edges_x, chunks=((K * K,), by, bx),
                          dtype=np.float64, meta=np.empty((0, 0, 0)))
    return parts.transpose(1, 2, 0).reshape(len(edges_y) - 1, len(edges_x) - 1, K, K)


def _block_layout(ctx, block_size: int):
    """LR block edges per axis for ``block_size`` (HR pixels; 0 = one global block)."""
    r = ctx.ratio
    h, w = ctx.ms_lr.shape[1:]
    if block_size:
        if block_size % r or block_size % 2:
            raise ParameterError("BDSD block size must be an even multiple of the ratio",
                                 expected=f"block_size = 0 (global) or an even multiple of {r}",
                                 got=f"block_size={block_size}", fix=f"use e.g. block_size={32 * r}")
        s = block_size // r
        ey, ex = kb.block_edges(h, s), kb.block_edges(w, s)
    else:
        ey, ex = np.array([0, h]), np.array([0, w])
    several = len(ey) > 2 or len(ex) > 2
    chunked = any(len(c) > 1 for c in ctx.layout.lr_chunks)
    if several and chunked and not _ENGINE_HAS_ORIGIN:
        raise ParameterError("BDSD with local statistics blocks needs the whole image in one chunk in this "
                             "version (the engine does not yet tell a chunk where it lies)",
                             expected="chunks covering the fused window, or block_size=0 (global)",
                             got=f"block_size={block_size} with chunks {ctx.layout.hr_chunks}",
                             fix="pass chunks=None/a chunk size >= the image, or block_size=0")
    return ey, ex


def _sums_and_layout(ctx, block_size: int):
    ey, ex = _block_layout(ctx, block_size)
    ms_lp_d, pan_lp_d, ms_orig = reduced_scale(ctx)
    base = ms_orig.chunks[1:]
    z = da.concatenate([ms_lp_d, pan_lp_d.rechunk((1,) + base), ms_orig], axis=0)
    z = z.rechunk((z.shape[0],) + base)
    return normal_sums(z, _lr_valid(ctx), ey, ex), ey, ex


# -------------------------------------------------------------------------------------------------- BDSD


def _bdsd_estimate(ctx, params):
    C = ctx.ms_lr.shape[0]
    sums, ey, ex = _sums_and_layout(ctx, int(params["block_size"]))
    nby, nbx = len(ey) - 1, len(ex) - 1
    gamma = da.from_delayed(dask.delayed(kb.bdsd_gains)(sums, C), shape=(nby, nbx, C + 1, C), dtype=np.float64)
    r = ctx.ratio
    # HR block edges (float in the est dict, exact below 2**24 pixels)
    return {"gamma": gamma, "edges_y": np.asarray(r * ey, np.float64), "edges_x": np.asarray(r * ex, np.float64)}


def _block_index(edges: torch.Tensor, start: int, n: int, device) -> torch.Tensor:
    inner = edges[1:-1].round().long().to(device)
    pos = torch.arange(start, start + n, device=device)
    return torch.searchsorted(inner, pos, right=True)


def _bdsd_apply(block, est, params) -> torch.Tensor:
    gamma = est["gamma"]
    if gamma.shape[0] == 1 and gamma.shape[1] == 1:
        return kb.bdsd(block.ms, block.pan, gamma[0, 0])
    # local statistics blocks: the tile's place in the image (single chunk: the origin)
    oy, ox = getattr(block, "origin", (0, 0))
    r = block.ratio
    H, W = block.pan.shape[-2:]
    rows = _block_index(est["edges_y"], r * int(oy), H, block.device)
    cols = _block_index(est["edges_x"], r * int(ox), W, block.device)
    return kb.bdsd_blocks(block.ms, block.pan, gamma, rows, cols)


def _bdsd_halo(params, ratio: int) -> int:
    """The 41 x 41 MTF_PAN filter before decimation (+1 for a half-integer phase), and the bicubic
    reduction of the interpolated MS (its taps plus a margin of two LR samples)."""
    return max(_MTF_RADIUS + 1, imresize_down_halo(ratio) + 2 * ratio)


register(MethodSpec(
    name="bdsd", title="BDSD (band-dependent spatial detail)", family="CS", scenario="pansharpening",
    inputs=("ms", "pan"),
    parameters=(Parameter("block_size", "int", 0, "statistics block size S in PAN pixels (0 = one global "
                          "fit, as the official scripts; else an even multiple of the ratio, e.g. 128)", min=0),),
    references=(GARZELLI_2008, VIVONE_2021),
    summary="MMSE component substitution: each band receives a linear combination of all the MS bands and "
            "the PAN, F_b = MS_b + sum_c g_cb MS_c + g_Pb P, with gains fitted by least squares at reduced "
            "scale so that the MTF-degraded bands and PAN predict the detail the degradation removed. "
            "Strong spatial and spectral quality on most sensors; block_size > 0 adapts the gains locally.",
    estimate=_bdsd_estimate, apply=_bdsd_apply, halo=_bdsd_halo, tags=("mtf",)))


# -------------------------------------------------------------------------------------------------- BDSD-PC


def _bdsd_pc_estimate(ctx, params):
    C = ctx.ms_lr.shape[0]
    sums, _, _ = _sums_and_layout(ctx, 0)
    gamma = da.from_delayed(dask.delayed(kb.bdsd_pc_gains)(sums[0, 0], C), shape=(C + 1, C), dtype=np.float64)
    return {"gamma": gamma}


def _bdsd_pc_apply(block, est, params) -> torch.Tensor:
    return kb.bdsd(block.ms, block.pan, est["gamma"])


register(MethodSpec(
    name="bdsd_pc", title="BDSD-PC (BDSD with physical constraints)", family="CS", scenario="pansharpening",
    inputs=("ms", "pan"), parameters=(), references=(VIVONE_2019, VIVONE_2021),
    summary="BDSD whose reduced-scale least squares is constrained to physically meaningful gains (the "
            "PAN weight non-negative, the MS weights non-positive: F_b = MS_b + g_Pb P - sum_c |g_cb| MS_c, "
            "i.e. PAN minus a synthetic intensity). More robust than BDSD when the fit is ill-conditioned "
            "(few bands, correlated bands, small or flat scenes); one global fit.",
    estimate=_bdsd_pc_estimate, apply=_bdsd_pc_apply, halo=_bdsd_halo, tags=("mtf",)))
