"""Global statistics as lazy, mergeable dask reductions (float64 accumulation, nodata excluded).

Methods' ``estimate`` functions build their global quantities from these helpers only, so that every
statistic is computed once over the whole image, never per chunk. Each helper is a single pass: every
block reduces to a few numbers (count, mean, centred cross-products) and the blocks' numbers are merged
exactly (Chan, Golub & LeVeque 1983, doi:10.1080/00031305.1983.10483115), so no block has to stay in
memory until a global mean is known, and no large sums cancel.
"""

from __future__ import annotations

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


def _stack(arrays) -> da.Array:
    arrays = [a if a.ndim == 3 else a[None] for a in arrays]
    if len(arrays) == 1:
        return arrays[0]
    base = arrays[0].chunks[1:]
    return da.concatenate([a.rechunk((a.shape[0],) + base) for a in arrays], axis=0)


def _block_moments(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """(K, 1, 1) block summary: [n, mean (B), centred cross-products (B*B)]."""
    B = x.shape[0]
    x = x.reshape(B, -1).astype(np.float64)
    if w is not None:
        keep = w.reshape(-1).astype(bool)
        x = x[:, keep]
    n = x.shape[1]
    out = np.zeros(1 + B + B * B)
    out[0] = n
    if n:
        m = x.mean(axis=1)
        xc = x - m[:, None]
        out[1:1 + B] = m
        out[1 + B:] = (xc @ xc.T).ravel()
    return out[:, None, None]


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


def moments(arrays, valid: da.Array | None = None) -> Moments:
    """Means and covariance of the bands of ``arrays`` (each (B_i, H, W), same grid), in one pass.

    ``valid`` (H, W) bool excludes nodata pixels.
    """
    x = _stack(list(arrays))
    B = x.shape[0]
    x = x.rechunk((B,) + x.chunks[1:])
    K = 1 + B + B * B
    out_chunks = ((K,), (1,) * x.numblocks[1], (1,) * x.numblocks[2])
    args = [x] if valid is None else [x, valid.rechunk(x.chunks[1:])[None]]
    parts = da.map_blocks(_block_moments, *args, chunks=out_chunks, dtype=np.float64, meta=np.empty((0, 0, 0)))
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


def _lstsq(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(A, v, rcond=None)[0]


def _solve(a: da.Array, b: da.Array) -> da.Array:
    """Solve the small system ``a x = b`` lazily (least squares, robust to rank deficiency)."""
    return da.from_delayed(dask.delayed(_lstsq)(a, b), shape=(a.shape[1],), dtype=np.float64)
