"""Global statistics as lazy, mergeable dask reductions (float64 accumulation, nodata excluded).

Methods' ``estimate`` functions build their global quantities from these helpers only, so that every
statistic is computed once over the whole image, never per chunk. Each helper is a single pass: every
block reduces to a few numbers (count, mean, centred cross-products) and the blocks' numbers are merged
exactly (Chan, Golub & LeVeque 1983, doi:10.1080/00031305.1983.10483115), so no block has to stay in
memory until a global mean is known, and no large sums cancel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np


@dataclass(frozen=True)
class Moments:
    """Lazy first and second moments of stacked bands over the valid pixels.

    Attributes are 0-d / 1-d / 2-d dask arrays (float64): ``n`` valid pixel count, ``mean`` (B,),
    ``cov`` (B, B) with the N-1 normalisation of MATLAB's ``cov`` / ``std2``.
    """

    n: da.Array
    mean: da.Array
    cov: da.Array

    @property
    def std(self) -> da.Array:
        return da.sqrt(da.diagonal(self.cov))


def _stack(arrays) -> list[da.Array]:
    """The arrays as (B_i, H, W) on the first one's spatial chunks (stacked inside the block task)."""
    arrays = [a if a.ndim == 3 else a[None] for a in arrays]
    base = arrays[0].chunks[1:]
    return [a.rechunk(((a.shape[0],),) + base) for a in arrays]


#: Pixels per slab in :func:`_block_moments` (the float64 copy of a slab stays in the CPU cache).
SLAB_PIXELS = 1 << 14


def _block_moments(*xs: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """(K, 1, 1) block summary of the stacked bands of ``xs``: [n, mean (B), centred cross-products (B*B)].

    The block is reduced slab by slab (``SLAB_PIXELS`` pixels at a time, converted to float64 in the
    cache rather than copying the whole block): sums and cross-products of the samples minus a shift
    (the first slab's mean), accumulated in float64, then centred exactly,
    ``M2 = S2 - S1 S1^T / n``; with the shift close to the mean nothing large cancels. The products
    run in torch (one thread per dask task), not numpy's threaded BLAS, whose worker threads spin
    on every one of the many small calls.
    """
    import threading

    import torch

    from .engine import _configure_torch_threads

    _configure_torch_threads()
    if threading.current_thread() is threading.main_thread() and torch.get_num_threads() > 1:
        # synchronous scheduler: these many small products are slower with an intra-op thread pool
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _block_moments(*xs, w=w)
        finally:
            torch.set_num_threads(prev)
    # (B_i, rows, cols) views, strided as they come (trimmed tiles are not contiguous): slabs of whole
    # rows are copied straight from them into the float64 buffer
    ts = [torch.from_numpy(x.reshape((x.shape[0], 1, -1) if x.ndim < 3 else (x.shape[0],) + x.shape[-2:]))
          for x in xs]
    B = sum(t.shape[0] for t in ts)
    R, W = ts[0].shape[1], ts[0].shape[2]
    keep = None if w is None else torch.from_numpy(np.asarray(w, dtype=bool).reshape(R, W))
    rows = max(1, max(1024, SLAB_PIXELS * 4 // max(B, 1)) // max(W, 1))
    n = 0
    shift = None
    s1 = torch.zeros(B, dtype=torch.float64)
    s2 = torch.zeros((B, B), dtype=torch.float64)
    slab = torch.empty((B, min(rows, R), W), dtype=torch.float64)
    for r0 in range(0, R, rows):
        r1 = min(R, r0 + rows)
        b = 0
        for t in ts:
            slab[b:b + t.shape[0], :r1 - r0].copy_(t[:, r0:r1])
            b += t.shape[0]
        v = slab[:, :r1 - r0].reshape(B, -1)
        if keep is not None:
            v = v[:, keep[r0:r1].reshape(-1)]
        if v.shape[1] == 0:
            continue
        if shift is None:
            shift = v.mean(dim=1, keepdim=True)
        v = v - shift
        n += v.shape[1]
        s1 += v.sum(dim=1)
        s2 += v @ v.T
    out = np.zeros(1 + B + B * B)
    out[0] = n
    if n:
        s1n, s2n = s1.numpy(), s2.numpy()
        d = s1n / n
        out[1:1 + B] = shift[:, 0].numpy() + d
        out[1 + B:] = (s2n - np.outer(s1n, d)).ravel()
    return out[:, None, None]


def _block_moments_masked(*args: np.ndarray) -> np.ndarray:
    """:func:`_block_moments` of ``args[:-1]`` over the pixels where the mask ``args[-1]`` is True."""
    return _block_moments(*args[:-1], w=args[-1])


def _merge_moments(parts: np.ndarray, B: int) -> np.ndarray:
    """Merge block summaries exactly (pairwise-update formula), returning [n, mean, M2] flattened."""
    parts = parts.reshape(1 + B + B * B, -1).T
    n = 0.0
    mean = np.zeros(B)
    m2 = np.zeros((B, B))
    for p in parts:
        nb = p[0]
        if nb == 0:
            continue
        mb, m2b = p[1:1 + B], p[1 + B:].reshape(B, B)
        tot = n + nb
        d = mb - mean
        m2 = m2 + m2b + np.outer(d, d) * (n * nb / tot)
        mean = mean + d * (nb / tot)
        n = tot
    return np.concatenate([[n], mean, m2.ravel()])


def _moment_parts(arrays, valid: da.Array | None) -> tuple[da.Array, int]:
    """Per-block summaries ``(K, ny, nx)`` of :func:`_block_moments` and the band count ``B``."""
    xs = _stack(list(arrays))
    B = sum(x.shape[0] for x in xs)
    K = 1 + B + B * B
    out_chunks = ((K,), (1,) * xs[0].numblocks[1], (1,) * xs[0].numblocks[2])
    if valid is None:
        parts = da.map_blocks(_block_moments, *xs, chunks=out_chunks, dtype=np.float64, meta=np.empty((0, 0, 0)))
    else:
        parts = da.map_blocks(_block_moments_masked, *xs, valid.rechunk(xs[0].chunks[1:])[None], chunks=out_chunks,
                              dtype=np.float64, meta=np.empty((0, 0, 0)))
    return parts, B


def moments(arrays, valid: da.Array | None = None) -> Moments:
    """Means and covariance of the bands of ``arrays`` (each (B_i, H, W), same grid), in one pass.

    ``valid`` (H, W) bool excludes nodata pixels.
    """
    parts, B = _moment_parts(arrays, valid)
    K = 1 + B + B * B
    merged = da.from_delayed(dask.delayed(_merge_moments)(parts, B), shape=(K,), dtype=np.float64)
    n = merged[0]
    return Moments(n=n, mean=merged[1:1 + B], cov=merged[1 + B:].reshape(B, B) / (n - 1))


def valid_mean(x: da.Array, valid: da.Array | None) -> da.Array:
    """Per-band mean of ``x`` (B,H,W) over ``valid`` (H,W), float64, in one pass."""
    return moments([x], valid).mean


def regress(y: da.Array, X: da.Array, valid: da.Array | None = None, intercept: bool = True):
    """Lazy least squares ``y ~ X`` (y (1,H,W), X (B,H,W)) from one pass of moments.

    Returns ``(coef (B,), intercept)`` as dask arrays; with ``intercept=False`` the fit goes through
    the origin (the normal equations are rebuilt from the centred moments).
    """
    m = moments([X, y], valid)
    B = X.shape[0]
    if intercept:
        sxx, sxy = m.cov[:B, :B], m.cov[:B, B]
        coef = _solve(sxx, sxy)
        return coef, m.mean[B] - (coef * m.mean[:B]).sum()
    # raw second moments E[x x^T] = cov*(n-1)/n + mean mean^T
    k = (m.n - 1) / m.n
    raw = m.cov * k + m.mean[:, None] * m.mean[None, :]
    return _solve(raw[:B, :B], raw[:B, B]), da.zeros((), dtype=np.float64)


def _unpack_call(fn, layout, flat, *rest):
    """Inverse of :func:`delayed_on`'s packing: rebuild the arrays, then call ``fn``."""
    parts, i = [], 0
    for shape, dtype in layout:
        n = int(np.prod(shape, dtype=np.int64))
        parts.append(np.asarray(flat[i:i + n]).reshape(shape).astype(dtype, copy=False))
        i += n
    args, kw = rest[0], rest[1]
    it = iter(parts)
    return fn(*[next(it) if isinstance(a, _Packed) else a for a in args],
              **{k: (next(it) if isinstance(v, _Packed) else v) for k, v in kw.items()})


class _Packed:
    """Placeholder of a packed argument (a class, so that it survives pickling to dask workers)."""


def delayed_on(fn, *args, _nout: int | None = None, **kwargs):
    """``dask.delayed(fn)(*args, **kwargs)`` for small dask arrays of known shape, as ONE graph input.

    ``dask.delayed`` optimises each dask-array argument on its own (and prevents key reuse between
    them), so two arguments with a shared upstream graph had it computed twice: a whole pass over the
    image (reads, upsampling, filters) per extra argument. Here every dask-array argument is flattened
    into one float64 vector (lossless for float32/64, bool and integers below 2**53) that is the single
    collection the delayed call sees; it is split and cast back before ``fn`` runs. Other arguments
    (numbers, ``Delayed`` objects) pass through. ``_nout`` is ``dask.delayed``'s ``nout``.
    """
    arrays, layout = [], []

    def take(a):
        if isinstance(a, da.Array):
            if any(math.isnan(c) for c in a.shape):
                raise ValueError("delayed_on needs dask arrays of known shape")
            arrays.append(a.astype(np.float64).ravel())
            layout.append((tuple(int(c) for c in a.shape), a.dtype))
            return _Packed()
        return a

    pargs = tuple(take(a) for a in args)
    pkw = {k: take(v) for k, v in kwargs.items()}
    flat = da.concatenate(arrays) if len(arrays) > 1 else (arrays[0] if arrays else np.empty(0))
    return dask.delayed(_unpack_call, nout=_nout)(fn, tuple(layout), flat, pargs, pkw)


def _lstsq(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(A, v, rcond=None)[0]


def _solve(a: da.Array, b: da.Array) -> da.Array:
    """Solve the small system ``a x = b`` lazily (least squares, robust to rank deficiency).

    ``a`` and ``b`` reach the solver as one graph input (:func:`delayed_on`): passed separately, GSA's
    whole regression pass (low-passed PAN included) ran twice.
    """
    return da.from_delayed(delayed_on(_lstsq, a, b), shape=(a.shape[1],), dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# statistics as Delayed values, for estimates whose passes feed several delayed consumers


def single(x: da.Array):
    """A small dask array (e.g. a finished reduction) as one Delayed of the whole array, for a delayed
    consumer (see :func:`block_summaries`)."""
    return x.rechunk(-1).to_delayed().ravel()[0]


def block_summaries(parts: da.Array) -> list:
    """The blocks of a per-block summary array (K, ny, nx) as a list of Delayed (row-major), for a
    delayed merge.

    A dask array handed to ``dask.delayed`` is finalised (and its blockwise chain fused and renamed)
    separately for every delayed consumer downstream, so a statistics pass whose result feeds both a
    later pass and the estimate would be computed twice or more; the graph of ``to_delayed`` is
    optimised once, and Delayed arguments are never finalised again."""
    return list(parts.to_delayed().ravel())


def merged_moments(arrays, valid: da.Array | None = None):
    """:func:`moments` of ``arrays`` as a Delayed ``[n, mean (B), M2 (B*B)]`` (the same block
    reductions and merge), entering the delayed merge through :func:`block_summaries`; see
    :func:`moments_of` for the mean and covariance."""
    parts, B = _moment_parts(arrays, valid)
    return dask.delayed(_merge_moment_blocks)(block_summaries(parts), B)


def _merge_moment_blocks(parts: list, B: int) -> np.ndarray:
    return _merge_moments(stack_summaries(parts), B)


def moments_of(merged: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(n, mean, cov)`` (covariance with N - 1, as :class:`Moments`) of a merged moment vector."""
    B = int(round((np.sqrt(4 * merged.size - 3) - 1) / 2))
    n = merged[0]
    return n, merged[1:1 + B], merged[1 + B:].reshape(B, B) / (n - 1)


def stack_summaries(parts: list) -> np.ndarray:
    """(K, n_blocks) from the list of (K, 1, 1) block summaries."""
    return np.stack([np.asarray(p).reshape(-1) for p in parts], axis=1)
