"""Reduced-resolution (Wald protocol) quality indexes: SAM, ERGAS, Q2n, and the border cut.

Every function accepts ``(bands, rows, cols)`` images as numpy arrays, dask arrays or xarray
DataArrays (dims ``("band", "y", "x")``; the underlying ``.data`` is used). The result has the
backend of the input:

* numpy in -> a Python ``float``;
* dask in (either argument) -> a lazy 0-d dask array. Nothing is computed until the caller asks
  (``.compute()``, ``float(...)``, or one ``dask.compute(...)`` over several metrics, which is what
  :func:`geofuse.metrics.evaluate.reduced_resolution` does). The graphs are chunk-wise reductions:
  no task ever holds more than a chunk (plus, for Q2n, the alignment to the block grid).

Sums are accumulated in float64 whatever the input dtype.

The argument order is ``(fused, ref)`` everywhere; ``ref`` is the ground truth (the original MS in
the Wald protocol).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any, Sequence

import numpy as np

from ..errors import InputError, ParameterError

__all__ = ["cayley_dickson_conj", "cayley_dickson_mul", "cut_border", "ergas", "q2n", "sam", "valid_mask"]

_COMPAT = ("default", "toolbox")
_EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps, used by the toolbox for std == 0


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------

def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks")


def _unwrap(x: Any, name: str) -> Any:
    """DataArray -> its data (band, y, x); numpy/dask pass through; anything else -> numpy."""
    if hasattr(x, "dims") and hasattr(x, "data") and hasattr(x, "transpose"):  # xarray.DataArray
        dims = tuple(x.dims)
        if set(dims) == {"band", "y", "x"}:
            x = x.transpose("band", "y", "x")
        elif len(dims) != 3:
            raise InputError(f"{name} has the wrong dimensions",
                             expected='3 dims ("band", "y", "x")', got=f"dims {dims}",
                             fix='pass a (band, y, x) DataArray, e.g. da.expand_dims("band") for one band')
        x = x.data
    if not (_is_dask(x) or isinstance(x, np.ndarray)):
        x = np.asarray(x)
    if x.ndim != 3:
        raise InputError(f"{name} is not a (bands, rows, cols) image",
                         expected="a 3-d array (bands, rows, cols)", got=f"shape {tuple(x.shape)}",
                         fix="add a leading band axis for single-band images (x[None])")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"{name} is not numeric", expected="an integer or floating dtype",
                         got=f"dtype {x.dtype}", fix="convert the image to a numeric dtype")
    return x


def _pair(fused: Any, ref: Any) -> tuple[Any, Any, bool]:
    """Unwrap both images, check the shapes agree, and put both on the same backend."""
    f = _unwrap(fused, "fused")
    g = _unwrap(ref, "ref")
    if tuple(f.shape) != tuple(g.shape):
        raise InputError("fused and ref have different shapes",
                         expected="the same (bands, rows, cols) shape",
                         got=f"{tuple(f.shape)} vs {tuple(g.shape)}",
                         fix="compare images on the same grid (crop / resample first)")
    if any(s == 0 for s in f.shape):
        raise InputError("The images are empty", expected="at least one band, row and column",
                         got=f"shape {tuple(f.shape)}", fix="check the crop / border cut")
    lazy = _is_dask(f) or _is_dask(g)
    if lazy:
        import dask.array as da

        if not _is_dask(f):
            f = da.asarray(f, chunks=g.chunks)
        if not _is_dask(g):
            g = da.asarray(g, chunks=f.chunks)
    return f, g, lazy


def valid_mask(x: Any, nodata: float | None = None) -> Any:
    """``(rows, cols)`` boolean mask of the pixels that are valid in every band, or None.

    A pixel is invalid where any band equals the raster's declared nodata (``.rio.nodata`` or
    ``_FillValue`` of a DataArray, or the ``nodata`` argument); a NaN nodata (rioxarray's
    ``masked=True``) makes NaN pixels invalid. Without a declared nodata there is no mask (None): a NaN
    the fusion produced is *not* hidden, it makes the metric NaN.

    Parameters
    ----------
    x : numpy/dask array or DataArray (bands, rows, cols)
    nodata : float, optional
        Overrides the declared value.

    Returns
    -------
    numpy or dask bool array (rows, cols), or None.
    """
    from ..raster import nodata_of

    nd = nodata if nodata is not None else nodata_of(x)
    if nd is None:
        return None
    a = _unwrap(x, "image")
    bad = np.isnan(a) if math.isnan(nd) else (a == nd)
    return ~bad.any(axis=0)


def joint_valid(*images: Any) -> Any:
    """The pixels valid in all ``images`` (:func:`valid_mask` of each, combined), or None if none declares nodata."""
    masks = [m for m in (valid_mask(x) for x in images) if m is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return out


def _pair_valid(fused: Any, ref: Any, valid: Any = None) -> tuple[Any, Any, bool, Any]:
    """:func:`_pair` plus the mask of the pixels valid in both images (None: all valid).

    ``valid`` (rows, cols) is used when given, else it comes from the declared nodata of the two images
    (:func:`valid_mask`). Invalid pixels are set to 0 in both images, so that a sum over all pixels is the
    sum over the valid ones and no nodata value or NaN reaches a statistic; callers exclude every pixel,
    window or block that touches an invalid pixel.
    """
    if valid is None:
        valid = joint_valid(fused, ref)
    f, g, lazy = _pair(fused, ref)
    if valid is None:
        return f, g, lazy, None
    if hasattr(valid, "dims") and hasattr(valid, "data"):
        valid = valid.data
    if tuple(valid.shape) != tuple(f.shape[1:]):
        raise InputError("The valid-pixel mask does not match the images",
                         expected=f"a (rows, cols) mask of shape {tuple(f.shape[1:])}",
                         got=f"shape {tuple(valid.shape)}", fix="pass valid= on the images' grid (after any crop)")
    if lazy:
        import dask.array as da

        valid = da.asarray(valid).astype(bool).rechunk(f.chunks[1:])
        # the fill makes the invalid pixels 0 in the image's own dtype
        f = da.where(valid[None], f, f.dtype.type(0))
        g = da.where(valid[None], g, g.dtype.type(0))
    else:
        valid = np.asarray(valid, dtype=bool)
        f = np.where(valid[None], f, f.dtype.type(0))
        g = np.where(valid[None], g, g.dtype.type(0))
    return f, g, lazy, valid


def valid_mean(x: Any, valid: Any) -> Any:
    """Per-band mean over the valid pixels of ``x`` (bands, rows, cols), which is 0 at invalid pixels."""
    if valid is None:
        return x.mean(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return x.sum(axis=(1, 2)) / valid.sum(dtype=np.float64)


def _result(x: Any, lazy: bool) -> Any:
    return x if lazy else float(x)


def _check_compat(compat: str) -> str:
    if compat not in _COMPAT:
        raise ParameterError("Unknown compat mode", expected=" or ".join(map(repr, _COMPAT)),
                             got=repr(compat),
                             fix='use "toolbox" to reproduce the MATLAB toolbox, else "default"')
    return compat


def _check_positive(value: Any, name: str, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not value > 0 or not math.isfinite(value):
        raise ParameterError(f"{name} must be a positive {'integer' if integer else 'number'}",
                             expected=f"{name} > 0", got=repr(value),
                             fix=f"pass e.g. {name}=4" if name == "ratio" else f"pass e.g. {name}=32")
    return int(value) if integer else value


# --------------------------------------------------------------------------------------------------
# border cut
# --------------------------------------------------------------------------------------------------

def cut_border(x: Any, dim_cut: int) -> Any:
    """Cut the image border as the reference toolbox does before computing indexes.

    MATLAB ``I(dim_cut:end-dim_cut, dim_cut:end-dim_cut, :)`` (1-based, inclusive): removes
    ``dim_cut - 1`` pixels at the top and left and ``dim_cut`` pixels at the bottom and right, i.e.
    0-based rows/cols ``dim_cut-1 .. size-dim_cut-1`` are kept. ``dim_cut = 0`` means no cut (the
    toolbox's ``flag_cut_bounds = 0``).

    Parameters
    ----------
    x : numpy/dask array or xarray.DataArray, shape (..., rows, cols)
    dim_cut : int >= 0

    Returns
    -------
    The cut image, same type (DataArrays keep their coordinates).
    """
    if isinstance(dim_cut, bool) or not isinstance(dim_cut, (int, np.integer)) or dim_cut < 0:
        raise ParameterError("dim_cut must be a non-negative integer", expected="dim_cut >= 0 (0 = no cut)",
                             got=repr(dim_cut), fix="pass e.g. dim_cut=21 (2021 toolbox demos) or 0")
    if dim_cut == 0:
        return x
    rows, cols = x.shape[-2], x.shape[-1]
    lo = int(dim_cut) - 1
    if rows - dim_cut <= lo or cols - dim_cut <= lo:
        raise ParameterError("dim_cut leaves nothing of the image",
                             expected=f"2*dim_cut - 1 < min(rows, cols) = {min(rows, cols)}",
                             got=f"dim_cut={dim_cut}", fix="use a smaller dim_cut")
    if hasattr(x, "dims") and hasattr(x, "isel"):
        ydim, xdim = (("y", "x") if {"y", "x"} <= set(x.dims) else tuple(x.dims[-2:]))
        return x.isel({ydim: slice(lo, x.sizes[ydim] - dim_cut), xdim: slice(lo, x.sizes[xdim] - dim_cut)})
    return x[..., lo:rows - dim_cut, lo:cols - dim_cut]


# --------------------------------------------------------------------------------------------------
# SAM
# --------------------------------------------------------------------------------------------------

def sam(fused: Any, ref: Any, valid: Any = None) -> Any:
    r"""Spectral Angle Mapper, in degrees (mean over pixels).

    .. math::

        \mathrm{SAM} = \frac{180}{\pi}\,\frac{1}{|P|}\sum_{p \in P}
        \angle\big(\mathbf{f}(p), \mathbf{g}(p)\big),
        \qquad P = \{p : \|\mathbf{f}(p)\|\,\|\mathbf{g}(p)\| \neq 0\}

    where :math:`\mathbf{f}(p)`, :math:`\mathbf{g}(p)` are the spectra (band vectors) of the fused
    and reference images at pixel :math:`p`. Pixels where either spectrum is zero are excluded, as in
    the reference toolbox (``SAM.m``). The angle is computed with Kahan's formula
    :math:`2\,\mathrm{atan2}(\|\,\|g\|f - \|f\|g\,\|,\ \|\,\|g\|f + \|f\|g\,\|)`, which equals the
    toolbox's ``acos(<f,g>/(|f||g|))`` (real part) but stays accurate for tiny angles, so that
    ``sam(x, x) == 0`` exactly. If no pixel is valid the result is NaN.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
        numpy, dask or DataArray; same shape.
    valid : array (rows, cols) of bool, optional
        Pixels to evaluate; default: those that are not the declared nodata of either image
        (:func:`valid_mask`). Invalid pixels are excluded like zero spectra.

    Returns
    -------
    float, or a lazy 0-d dask array for dask input. Ideal 0, lower is better.

    References
    ----------
    Yuhas, Goetz, Boardman (1992), JPL AVIRIS workshop. Vivone et al. (2015),
    doi:10.1109/TGRS.2014.2361734.
    """
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    if lazy:
        f = f.rechunk({0: -1})
        g = g.rechunk({0: -1})
    a = f.astype(np.float64)
    b = g.astype(np.float64)
    na = np.sqrt((a * a).sum(axis=0))
    nb = np.sqrt((b * b).sum(axis=0))
    u = nb * a - na * b
    v = nb * a + na * b
    ang = 2.0 * np.arctan2(np.sqrt((u * u).sum(axis=0)), np.sqrt((v * v).sum(axis=0)))
    keep = (na * nb) != 0     # invalid pixels were zeroed by _pair_valid: excluded here too
    total = np.where(keep, ang, 0.0).sum(dtype=np.float64)
    count = keep.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count * (180.0 / np.pi)
    return _result(out, lazy)


# --------------------------------------------------------------------------------------------------
# ERGAS
# --------------------------------------------------------------------------------------------------

def ergas(fused: Any, ref: Any, ratio: float, valid: Any = None) -> Any:
    r"""ERGAS (erreur relative globale adimensionnelle de synthèse).

    .. math::

        \mathrm{ERGAS} = \frac{100}{r}\sqrt{\frac{1}{B}\sum_{b=1}^{B}
        \frac{\mathrm{MSE}(f_b, g_b)}{\mu(g_b)^2}}

    with :math:`r` the resolution ratio (e.g. 4), :math:`\mathrm{MSE}` the mean squared error over
    the pixels of band :math:`b`, :math:`\mu(g_b)` the mean of the reference band. Same as the
    toolbox's ``ERGAS.m``.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
    ratio : float > 0
        Pixel-size ratio of low- to high-resolution images (the toolbox passes ``ratio``; no default
        on purpose).
    valid : array (rows, cols) of bool, optional
        Pixels to evaluate (means over them only); default from the declared nodata (:func:`valid_mask`).

    Returns
    -------
    float, or a lazy 0-d dask array. Ideal 0, lower is better.

    References
    ----------
    Wald (2002), "Data Fusion. Definitions and Architectures", Presses de l'Ecole des Mines.
    Vivone et al. (2015), doi:10.1109/TGRS.2014.2361734.
    """
    ratio = _check_positive(ratio, "ratio")
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    a = f.astype(np.float64)
    b = g.astype(np.float64)
    d = b - a
    mse = valid_mean(d * d, ok)
    mu = valid_mean(b, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (100.0 / float(ratio)) * np.sqrt((mse / (mu * mu)).mean())
    return _result(out, lazy)


# --------------------------------------------------------------------------------------------------
# hypercomplex (Cayley-Dickson) algebra
# --------------------------------------------------------------------------------------------------

def cayley_dickson_conj(a: np.ndarray) -> np.ndarray:
    """Conjugate of hypercomplex numbers stored along axis 0: ``(a0, -a1, ..., -a_{n-1})``."""
    out = -np.asarray(a)
    out[0] = a[0]
    return out


def cayley_dickson_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Product of hypercomplex numbers with :math:`2^n` components stored along axis 0.

    Recursive Cayley-Dickson construction: with :math:`a = (a_1, a_2)`, :math:`b = (b_1, b_2)` the
    two halves of the components,

    .. math:: (a_1, a_2)(b_1, b_2) = (a_1 b_1 - b_2^{*} a_2,\; b_2 a_1 + a_2 b_1^{*}),

    so 1 component = reals, 2 = complex, 4 = quaternions (``1, i, j, k``), 8 = octonions, ...
    Component 0 is the real part. Vectorised over the trailing axes.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    n = a.shape[0]
    if n != b.shape[0] or n & (n - 1):
        raise ParameterError("Hypercomplex numbers need the same power-of-two number of components",
                             expected="2**k components on axis 0", got=f"{n} and {b.shape[0]}",
                             fix="zero-pad the components to the next power of two")
    if n == 1:
        return a * b
    h = n // 2
    a1, a2, b1, b2 = a[:h], a[h:], b[:h], b[h:]
    return np.concatenate([
        cayley_dickson_mul(a1, b1) - cayley_dickson_mul(cayley_dickson_conj(b2), a2),
        cayley_dickson_mul(b2, a1) + cayley_dickson_mul(a2, cayley_dickson_conj(b1)),
    ])


@cache
@cache
def _structure(n: int) -> np.ndarray:
    """T[i, j, :] = e_i * conj(e_j) for the 2^k basis units (read-only, cached).

    All n^2 unit products in one vectorised :func:`cayley_dickson_mul` call (the products are vectorised
    over the trailing axes), so 256 components (a 198-band cube) take about a second instead of the
    hours of n^2 separate recursive products.
    """
    e = np.eye(n)
    a = np.repeat(e, n, axis=1)                     # column i*n + j holds e_i
    b = cayley_dickson_conj(np.tile(e, (1, n)))     # column i*n + j holds conj(e_j)
    t = np.ascontiguousarray(cayley_dickson_mul(a, b).reshape(n, n, n).transpose(1, 2, 0))
    t.setflags(write=False)
    return t


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


# --------------------------------------------------------------------------------------------------
# Q2n
# --------------------------------------------------------------------------------------------------

def _to_uint16_values(x: Any) -> Any:
    """MATLAB ``double(uint16(x))``: round half away from zero, saturate to [0, 65535], NaN -> 0."""
    x = x.astype(np.float64)
    x = np.where(np.isnan(x), 0.0, x)
    r = np.floor(x)
    r = r + ((x - r) >= 0.5)
    return np.clip(r, 0.0, 65535.0)


def _block_moments(arrays: Sequence[np.ndarray], block: int, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Means and (N-1) covariance matrix of the channels of ``arrays`` stacked, per ``block x block`` block.

    ``arrays`` are (C_k, h, w) with h, w multiples of ``block``. Returns ``mu`` (nby, nbx, K) and ``cov``
    (nby, nbx, K, K), K = sum of C_k, in the order of the arrays. Two passes (block means, then the Gram
    matrix of the centred values as one batched matmul) in ``dtype`` (float64 unless asked otherwise).
    """
    h, w = arrays[0].shape[-2:]
    nby, nbx, npx = h // block, w // block, block * block
    k = sum(a.shape[0] for a in arrays)
    z = np.empty((nby, nbx, k, npx), dtype=dtype)
    z5 = z.reshape(nby, nbx, k, block, block)
    at = 0
    for a in arrays:
        c = a.shape[0]
        # one strided copy (with the dtype conversion) straight into the block-major layout
        z5[:, :, at:at + c] = np.asarray(a).reshape(c, nby, block, nbx, block).transpose(1, 3, 0, 2, 4)
        at += c
    mu = z.mean(axis=-1)
    z -= mu[..., None]
    cov = np.matmul(z, z.swapaxes(-1, -2))
    cov /= max(npx - 1, 1)
    return mu, cov


def _mean_kept(q: Any) -> Any:
    """Mean of the non-NaN values of a numpy or dask array (NaN if there are none)."""
    kept = ~np.isnan(q)
    total, count = np.where(kept, q, 0.0).sum(), kept.sum()
    if isinstance(total, np.generic | np.ndarray):
        return total / count if count else math.nan
    return total / count


def _q2n_blocks_valid(f: np.ndarray, g: np.ndarray, ok: np.ndarray, block: int) -> np.ndarray:
    """:func:`_q2n_blocks`, NaN for the blocks that contain an invalid pixel (``ok`` (1, h, w) False)."""
    q = _q2n_blocks(f, g, block)
    c, h, w = np.shape(ok)
    full = np.asarray(ok).reshape(h // block, block, w // block, block).all(axis=(1, 3))
    return np.where(full, q, np.nan)


def _q2n_blocks(f: np.ndarray, g: np.ndarray, block: int) -> np.ndarray:
    r"""Per-block hypercomplex quality of one chunk whose rows/cols are multiples of ``block``.

    ``f`` (fused) and ``g`` (reference) are (C, h, w); returns (h // block, w // block) float64.

    Written with block moments instead of normalised copies: with the reference statistics
    :math:`\mu_i, s_i` (N-1) of band :math:`i`, the normalised reference :math:`x_i = (g_i - \mu_i)/s_i + 1`
    has mean 1, the normalised fused :math:`y_i = (f_i - \mu_i)/s_i + 1` has mean
    :math:`(\bar f_i - \mu_i)/s_i + 1`, and :math:`\mathrm{cov}(x_i, y_j) = \mathrm{cov}(g_i, f_j)/(s_i s_j)`;
    zero-padded bands are the constant 1 in both. Same values as normalising the pixels (to rounding).
    """
    c = g.shape[0]
    n = _next_pow2(c)
    mu, cov = _block_moments([g, f], block)
    idx = np.arange(c)
    mg, mf = mu[..., :c], mu[..., c:]
    vg = cov[..., idx, idx]
    sd = np.sqrt(vg)
    sd = np.where(sd == 0, _EPS, sd)
    my = (mf - mg) / sd + 1.0                                  # mean of the normalised fused bands
    cxy = cov[..., :c, c:] / (sd[..., :, None] * sd[..., None, :])
    vx = (vg / (sd * sd)).sum(axis=-1)
    vy = (cov[..., c + idx, c + idx] / (sd * sd)).sum(axis=-1)
    sxy = np.einsum("...ij,ijk->...k", cxy, _structure(n)[:c, :c])   # hypercomplex covariance
    nmx2 = float(n)                                            # |mean x|^2: n components equal to 1
    nmy2 = (my * my).sum(axis=-1) + (n - c)
    nmxy = np.sqrt(nmx2 * nmy2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_term = 2.0 * nmxy / (nmx2 + nmy2)
        vsum = vx + vy
        q = np.where(vsum == 0, mean_term,
                     np.sqrt(np.einsum("...k,...k->...", sxy, sxy)) * mean_term * 2.0 / vsum)
    return q


_MIN_ALIGNED = 256  # smallest chunk side (pixels) produced when rechunking to the block grid


def _aligned_chunk(chunks: tuple[int, ...], block: int) -> int | None:
    """None if every chunk is a multiple of ``block``, else a block-aligned uniform chunk size.

    The size is the largest input chunk rounded up to a multiple of ``block``, but at least
    ``_MIN_ALIGNED`` pixels (tiny odd chunks would otherwise make thousands of tasks).
    """
    if all(c % block == 0 for c in chunks):
        return None
    size = -(-max(chunks) // block) * block
    return max(size, -(-_MIN_ALIGNED // block) * block)


def q2n(fused: Any, ref: Any, block: int = 32, shift: int | None = None, compat: str = "default",
        valid: Any = None) -> Any:
    r"""Q2n: the hypercomplex (Cayley-Dickson) universal image quality index, mean over blocks.

    For each ``block x block`` window (non-overlapping when ``shift == block``, the toolbox's
    ``q2n(I_GT, I_F, 32, 32)``), every pixel's spectrum is a hypercomplex number with :math:`2^k`
    components (bands zero-padded to the next power of two). Each band of the reference block is
    normalised with its own mean and (N-1) standard deviation as :math:`(x-\mu)/\sigma + 1`
    (:math:`\sigma = 0 \to` eps), the fused block with the *reference* statistics. With
    :math:`z_1` the reference and :math:`z_2` the fused block of :math:`N` pixels,

    .. math::

        Q = \frac{4\,|\sigma_{z_1 z_2}|\;|\bar z_1|\,|\bar z_2|}
                 {(\sigma_{z_1}^2 + \sigma_{z_2}^2)(|\bar z_1|^2 + |\bar z_2|^2)},
        \qquad
        \sigma_{z_1 z_2} = \tfrac{N}{N-1}\big(\overline{z_1 z_2^{*}} - \bar z_1 \bar z_2^{*}\big),

    :math:`\sigma_z^2 = \tfrac{N}{N-1}(\overline{|z|^2} - |\bar z|^2)` and the product is the
    Cayley-Dickson product of :func:`cayley_dickson_mul`. When both variances are zero,
    :math:`Q = 2|\bar z_1||\bar z_2| / (|\bar z_1|^2 + |\bar z_2|^2)`. Q2n is the mean of :math:`Q`
    over all blocks. Images are padded at the bottom/right by mirroring (the edge sample included,
    numpy ``mode="symmetric"``) to ``(k - 1) * shift + block`` rows/cols.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
        numpy, dask or DataArray; same shape. ``ref`` is the ground truth.
    block : int
        Block size (toolbox: 32).
    shift : int, optional
        Block step; defaults to ``block`` (non-overlapping). Overlapping blocks (``shift < block``)
        are supported for numpy input only.
    compat : {"default", "toolbox"}
        ``"toolbox"`` reproduces the MATLAB toolbox's ``q2n.m`` exactly, which casts both images to
        uint16 first (round half away from zero, clip to [0, 65535], NaN -> 0): use it for images in
        digital numbers and to compare with published tables. ``"default"`` uses the same math on the
        values as given (no quantisation; works for reflectances in [0, 1]).
    valid : array (rows, cols) of bool, optional
        Pixels to evaluate; default from the declared nodata (:func:`valid_mask`). A block that contains
        an invalid pixel (after the mirror padding) is left out of the mean.

    Returns
    -------
    float, or a lazy 0-d dask array. Ideal 1, higher is better.

    Notes
    -----
    Blocks are independent, so on dask input each chunk computes its own block values
    (``map_blocks``) and the mean is a lazy reduction. This needs chunks aligned to the block grid:
    when the row/column chunks are not all multiples of ``block``, the input is **rechunked inside**
    to uniform chunks of the largest input chunk rounded up to a multiple of ``block`` (at least 256
    pixels); the band axis always goes to a single chunk. Pass block-aligned chunks (e.g. 512 or
    1024) to avoid that rechunk.
    Memory per task is about ten float64 copies of one chunk.

    References
    ----------
    Garzelli, Nencini (2009), "Hypercomplex quality assessment of multi/hyperspectral images",
    IEEE GRSL 6(4), doi:10.1109/LGRS.2009.2022650.
    Alparone et al. (2004), Q4, doi:10.1109/LGRS.2004.836784.
    """
    compat = _check_compat(compat)
    block = _check_positive(block, "block", integer=True)
    shift = block if shift is None else _check_positive(shift, "shift", integer=True)
    if shift > block:
        raise ParameterError("shift larger than block skips pixels", expected=f"shift <= block ({block})",
                             got=f"shift={shift}",
                             fix="use shift == block (non-overlapping, the toolbox default)")
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    if compat == "toolbox":
        f, g = _to_uint16_values(f), _to_uint16_values(g)
    if ok is not None:
        ok = ok[None]
    _, rows, cols = g.shape
    ny, nx = -(-rows // shift), -(-cols // shift)
    pad_r = (ny - 1) * shift + block - rows
    pad_c = (nx - 1) * shift + block - cols
    pad = ((0, 0), (0, pad_r), (0, pad_c))

    if not lazy:
        f = np.pad(np.asarray(f, dtype=np.float64), pad, mode="symmetric")
        g = np.pad(np.asarray(g, dtype=np.float64), pad, mode="symmetric")
        if ok is not None:
            ok = np.pad(ok, pad, mode="symmetric")
        if shift == block:
            if ok is not None:
                return float(_mean_kept(_q2n_blocks_valid(f, g, ok, block)))
            return float(_q2n_blocks(f, g, block).mean())
        # overlapping blocks: gather the windows, then one (C, block, n*block) strip per block row
        from numpy.lib.stride_tricks import sliding_window_view

        def windows(a: np.ndarray) -> np.ndarray:
            w = sliding_window_view(a, (block, block), axis=(1, 2))[:, ::shift, ::shift]
            c, wy, wx = w.shape[:3]
            return w.transpose(0, 1, 3, 2, 4).reshape(c, wy * block, wx * block)
        if ok is not None:
            return float(_mean_kept(_q2n_blocks_valid(windows(f), windows(g), windows(ok), block)))
        return float(_q2n_blocks(windows(f), windows(g), block).mean())

    if shift != block:
        raise ParameterError("Overlapping Q2n blocks are not supported on dask arrays",
                             expected=f"shift == block ({block})", got=f"shift={shift}",
                             fix="use non-overlapping blocks or compute the (small) input to numpy first")
    import dask.array as da

    if pad_r or pad_c:
        f = da.pad(f, pad, mode="symmetric")
        g = da.pad(g, pad, mode="symmetric")
        if ok is not None:
            ok = da.pad(ok, pad, mode="symmetric")
    new = {0: -1}
    for ax in (1, 2):
        aligned = _aligned_chunk(g.chunks[ax], block)
        if aligned is not None:
            new[ax] = aligned
    g = g.rechunk(new)
    f = f.rechunk(g.chunks)
    out_chunks = tuple(tuple(c // block for c in cs) for cs in g.chunks[1:])
    if ok is None:
        qmap = da.map_blocks(_q2n_blocks, f, g, block=block, drop_axis=0, dtype=np.float64,
                             chunks=out_chunks, token="geofuse-q2n-blocks")
        return qmap.mean()
    ok = ok.rechunk(((1,),) + g.chunks[1:])
    qmap = da.map_blocks(_q2n_blocks_valid, f, g, ok, block=block, drop_axis=0, dtype=np.float64,
                         chunks=out_chunks, token="geofuse-q2n-blocks-valid")
    return _mean_kept(qmap)
