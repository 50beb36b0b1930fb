"""Global statistics as lazy, mergeable dask reductions (float64 accumulation, nodata excluded).

Methods' ``estimate`` functions build their global quantities from these helpers only, so that every
statistic is computed once over the whole image, never per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return arrays[0] if len(arrays) == 1 else da.concatenate(arrays, axis=0)


def moments(arrays, valid: da.Array | None = None) -> Moments:
    """Means and covariance of the bands of ``arrays`` (each (B_i, H, W), same grid and chunks).

    ``valid`` (H, W) bool excludes nodata pixels. Sums and cross-products are accumulated in float64
    around a shift (the per-band first-chunk mean would need a pass; the shift used is the lazily
    computed plain mean, which keeps cancellation negligible for DN-scaled data).
    """
    x = _stack(list(arrays))
    if valid is not None:
        w = valid.astype(np.float64)[None]
        n = w.sum()
        s = (x.astype(np.float64) * w).sum(axis=(1, 2))
        mean = s / n
        xc = (x.astype(np.float64) - mean[:, None, None]) * w
    else:
        n = da.asarray(float(x.shape[1] * x.shape[2]))
        mean = x.astype(np.float64).mean(axis=(1, 2))
        xc = x.astype(np.float64) - mean[:, None, None]
    cross = da.einsum("ihw,jhw->ij", xc, xc)
    cov = cross / (n - 1)
    return Moments(n=n, mean=mean, cov=cov)


def valid_mean(x: da.Array, valid: da.Array | None) -> da.Array:
    """Per-band mean of ``x`` (B,H,W) over ``valid`` (H,W), float64."""
    if valid is None:
        return x.astype(np.float64).mean(axis=(1, 2))
    w = valid.astype(np.float64)[None]
    return (x.astype(np.float64) * w).sum(axis=(1, 2)) / w.sum()


def regress(y: da.Array, X: da.Array, valid: da.Array | None = None, intercept: bool = True):
    """Lazy least squares ``y ~ X`` (y (1,H,W), X (B,H,W)) through the normal equations.

    Returns ``(coef (B,), intercept)`` as dask arrays; with ``intercept=False`` the intercept is 0.
    """
    if intercept:
        m = moments([X, y], valid)
        B = X.shape[0]
        sxx, sxy = m.cov[:B, :B], m.cov[:B, B]
        coef = _solve(sxx, sxy)
        return coef, m.mean[B] - (coef * m.mean[:B]).sum()
    x = X.astype(np.float64)
    t = y.astype(np.float64)
    if valid is not None:
        w = valid.astype(np.float64)[None]
        x, t = x * w, t * w
    xtx = da.einsum("ihw,jhw->ij", x, x)
    xty = da.einsum("ihw,jhw->ij", x, t)[:, 0]
    return _solve(xtx, xty), da.zeros((), dtype=np.float64)


def _lstsq(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(A, v, rcond=None)[0]


def _solve(a: da.Array, b: da.Array) -> da.Array:
    """Solve the small system ``a x = b`` lazily (least squares, robust to rank deficiency)."""
    import dask

    return da.from_delayed(dask.delayed(_lstsq)(a, b), shape=(a.shape[1],), dtype=np.float64)
