"""More reduced-resolution (reference-based) indexes: Q (UIQI), SCC, PSNR, RMSE, CC, SSIM.

Same conventions as :mod:`geofuse.metrics.reduced`: images are ``(bands, rows, cols)`` numpy arrays,
dask arrays or DataArrays, the argument order is ``(fused, ref)``, numpy in gives a ``float``, dask in
gives a lazy 0-d dask array (nothing is computed until asked), and sums are accumulated in float64.

Per band
--------
Every metric here also has a value per band. With ``per_band=True`` the function returns a 1-d array of
``bands + 1`` values (numpy, or a lazy dask array): the value of each band followed by the global value
(the one returned by default). :func:`geofuse.metrics.evaluate.reduced_resolution` turns these into
tidy rows ``band=<name>`` and ``band="all"``.

Windows on chunked data
-----------------------
The sliding-window indexes (Q: 32x32 box, SSIM: 11x11 Gaussian) and the Sobel filter of SCC are
computed chunk by chunk: each chunk receives ``window - 1`` pixels (SCC: 1 pixel) of its neighbours
(``dask.array.overlap``, no padding beyond the image) and sums the index map over the window positions
whose *top-left corner* lies in the chunk, so every valid window position is counted exactly once
whatever the chunking: chunks need not be aligned with the windows. Chunks smaller than the overlap
are **rechunked inside** to at least 256 pixels per side (the band axis always goes to one chunk).
Memory per task is a few float64 copies of one chunk plus its halo.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import ParameterError
from . import Metric, register
from .reduced import _check_compat, _check_positive, _pair_valid, valid_mean

__all__ = ["cc", "psnr", "q_index", "rmse", "scc", "ssim", "uiqi_map"]

_MIN_CHUNK = 256


# --------------------------------------------------------------------------------------------------
# chunk machinery
# --------------------------------------------------------------------------------------------------

def _axis_chunks(n: int, size: int, min_size: int) -> tuple[int, ...]:
    """Uniform chunks of ``size`` with the remainder merged into the last one when below ``min_size``."""
    size = max(size, min_size, 1)
    out = [size] * (n // size)
    rest = n - size * len(out)
    if rest:
        if out and rest < min_size:
            out[-1] += rest
        else:
            out.append(rest)
    return tuple(out) or (n,)


def _rechunk_for_halo(arrays: list, halo: int) -> list:
    """One band chunk; every spatial chunk >= ``halo`` (else uniform chunks of >= 256 pixels)."""
    first = arrays[0]
    new: dict[int, Any] = {0: -1}
    for ax in (1, 2):
        chunks = first.chunks[ax]
        n = first.shape[ax]
        if len(chunks) > 1 and min(chunks) < halo:
            new[ax] = _axis_chunks(n, max(max(chunks), _MIN_CHUNK), halo)
        else:
            new[ax] = chunks
    return [a.rechunk(new) for a in arrays]


def _reduce_chunks(kernel: Callable, arrays: list, halo: int, nstat: int, lazy: bool,
                   boundary: str = "none", small: tuple = ()) -> Any:
    """Sum per-chunk statistics ``kernel(*blocks, core=(top, left, rows, cols), shape=(H, W), origin=(y, x))``.

    ``kernel`` returns ``nstat`` float64 sums for the pixels (or window corners) of the chunk's core;
    ``core`` locates the core inside the blocks, which carry ``halo`` extra pixels on each side where
    the image continues (``boundary="none"``) or on every side, zeros beyond the image
    (``boundary="zeros"``). ``small`` are ``(bands, 1, 1)`` arrays handed whole to every call after
    the blocks (per-band constants computed lazily beforehand).
    """
    shape = arrays[0].shape[1:]
    if not lazy:
        blocks = [np.asarray(a) for a in arrays]
        if boundary == "zeros" and halo:
            blocks = [np.pad(b, ((0, 0), (halo, halo), (halo, halo))) for b in blocks]
            core = (halo, halo, shape[0], shape[1])
        else:
            core = (0, 0, shape[0], shape[1])
        return np.asarray(kernel(*blocks, *small, core=core, shape=shape, origin=(0, 0)), dtype=np.float64)

    import dask.array as da

    arrays = _rechunk_for_halo(arrays, halo)
    rows, cols = arrays[0].chunks[1], arrays[0].chunks[2]
    if halo:
        bnd = "none" if boundary == "none" else 0
        arrays = [da.overlap.overlap(a, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: bnd, 2: bnd})
                  for a in arrays]
    ro = np.concatenate([[0], np.cumsum(rows)])
    co = np.concatenate([[0], np.cumsum(cols)])

    def block(*blocks, block_info=None):  # blocks = the overlapped chunks, then the small arrays
        _, i, j = block_info[0]["chunk-location"]
        if boundary == "zeros" or not halo:
            top = left = halo
        else:
            top = halo if i > 0 else 0
            left = halo if j > 0 else 0
        core = (top, left, int(rows[i]), int(cols[j]))
        out = kernel(*blocks, core=core, shape=shape, origin=(int(ro[i]), int(co[j])))
        return np.asarray(out, dtype=np.float64).reshape(nstat, 1, 1)

    small = tuple(da.asarray(a).rechunk(-1) for a in small)
    parts = da.map_blocks(block, *arrays, *small, dtype=np.float64,
                          chunks=((nstat,), (1,) * len(rows), (1,) * len(cols)), token="geofuse-metric-chunk-sums")
    return parts.sum(axis=(1, 2))


def _invalid_image(ok: Any) -> list:
    """[] without a mask, else [(1, rows, cols) float64 image, 1 where the pixel is invalid] for the kernels."""
    if ok is None:
        return []
    return [(~ok[None]).astype(np.float64)]


def _windows_kept(ib: np.ndarray | None, w: int) -> np.ndarray | None:
    """Per ``w x w`` window ('valid' positions) of the invalid image ``ib`` (1, h, w): True where none is invalid."""
    if ib is None:
        return None
    return _box_valid(ib, w)[0] < 0.5


def _window_sums(values: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """Per-band sums of a window map, then the number of windows summed (all, or the kept ones)."""
    if kept is None:
        return np.concatenate([values.sum(axis=(1, 2)), [values.shape[1] * values.shape[2]]])
    return np.concatenate([np.where(kept, values, 0.0).sum(axis=(1, 2)), [np.count_nonzero(kept)]])


def _window_corners(core, shape, origin, w):
    """Local index range of the window corners (top-left) a block owns: (t0, ny, l0, nx)."""
    top, left, rows, cols = core
    ny = min(origin[0] + rows, shape[0] - w + 1) - origin[0]
    nx = min(origin[1] + cols, shape[1] - w + 1) - origin[1]
    return top, max(ny, 0), left, max(nx, 0)


def _box_valid(x: np.ndarray, w: int) -> np.ndarray:
    """Sums over every ``w x w`` window (MATLAB ``filter2(ones(w), x, 'valid')``), float64.

    Running sums along each axis (``scipy.ndimage.uniform_filter1d``, C loops) cropped to the windows that
    lie inside: the filter centres a window of even size ``w`` on its element ``w // 2``.
    """
    from scipy.ndimage import uniform_filter1d

    h = w // 2
    x = np.asarray(x, dtype=np.float64)
    y = uniform_filter1d(x, w, axis=-2)[..., h:x.shape[-2] - (w - h) + 1, :]
    y = uniform_filter1d(y, w, axis=-1)[..., :, h:x.shape[-1] - (w - h) + 1]
    y *= float(w * w)
    return y


def _sep_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with the odd-length 1-d kernel ``k`` along rows and columns."""
    from scipy.ndimage import correlate1d

    h = len(k) // 2
    y = correlate1d(np.asarray(x, dtype=np.float64), k, axis=-2, mode="constant")[..., h:x.shape[-2] - h, :]
    return correlate1d(y, k, axis=-1, mode="constant")[..., :, h:x.shape[-1] - h]


def _finish(vals: Any, lazy: bool, per_band: bool) -> Any:
    """``vals`` = (bands + 1,) values; the last one is the global value."""
    if per_band:
        return vals if lazy else np.asarray(vals, dtype=np.float64)
    return vals[-1] if lazy else float(vals[-1])


def _stack(band_values: Any, overall: Any, lazy: bool) -> Any:
    if lazy:
        import dask.array as da

        return da.concatenate([band_values, da.reshape(overall, (1,))])
    return np.concatenate([np.asarray(band_values, dtype=np.float64), [float(overall)]])


# --------------------------------------------------------------------------------------------------
# Q (UIQI, sliding window)
# --------------------------------------------------------------------------------------------------

def uiqi_map(fused: np.ndarray, ref: np.ndarray, block: int = 32) -> np.ndarray:
    r"""Map of the universal image quality index over every ``block x block`` window ('valid').

    Wang & Bovik's UIQI of each window, written with the window sums :math:`s_f, s_g, s_{ff}, s_{gg},
    s_{fg}` of :math:`N = \mathrm{block}^2` pixels (the toolbox's ``img_qi.m`` conventions):

    .. math::

        Q = \frac{4\,(N s_{fg} - s_f s_g)\, s_f s_g}
                 {\big(N(s_{ff} + s_{gg}) - s_f^2 - s_g^2\big)\big(s_f^2 + s_g^2\big)}

    If the first factor of the denominator is zero (both windows constant) and the means are not both
    zero, :math:`Q = 2 s_f s_g / (s_f^2 + s_g^2)`; if both factors are zero, :math:`Q = 1`. The second
    moments are computed on data shifted by a per-band constant (exact in exact arithmetic, less
    cancellation in floating point).

    Parameters
    ----------
    fused, ref : numpy.ndarray (bands, rows, cols)
    block : int

    Returns
    -------
    numpy.ndarray (bands, rows - block + 1, cols - block + 1), float64.
    """
    f = np.asarray(fused, dtype=np.float64)
    g = np.asarray(ref, dtype=np.float64)
    n = float(block * block)
    cf = f.reshape(f.shape[0], -1)[:, :1, None] if f.size else 0.0
    cg = g.reshape(g.shape[0], -1)[:, :1, None] if g.size else 0.0
    fs, gs = f - cf, g - cg
    s_f0, s_g0 = _box_valid(fs, block), _box_valid(gs, block)
    s_ff = _box_valid(fs * fs, block)
    s_gg = _box_valid(gs * gs, block)
    s_fg = _box_valid(fs * gs, block)
    # in place, few temporaries: var_f -> den1, s_fg -> numerator, s_ff -> (s_f^2 + s_g^2)
    s_ff *= n
    s_ff -= s_f0 * s_f0
    s_gg *= n
    s_gg -= s_g0 * s_g0
    den1 = s_ff
    den1 += s_gg                                   # N (s_ff + s_gg) - s_f^2 - s_g^2 (shift invariant)
    cov = s_fg
    cov *= n
    cov -= s_f0 * s_g0                             # N s_fg - s_f s_g
    s_f = s_f0
    s_f += n * cf
    s_g = s_g0
    s_g += n * cg
    mul = s_f * s_g
    sq = s_f
    sq *= s_f
    sq += s_g * s_g                                # s_f^2 + s_g^2
    den = den1 * sq
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.divide(2.0 * mul, sq, out=np.ones_like(den), where=(den1 == 0) & (sq != 0))
        cov *= 4.0
        cov *= mul
        np.divide(cov, den, out=q, where=den != 0)
    return q


def q_index(fused: Any, ref: Any, block: int = 32, per_band: bool = False, valid: Any = None) -> Any:
    r"""Q: the universal image quality index (Wang & Bovik 2002) on a sliding window, mean over bands.

    For each band, the UIQI of every ``block x block`` window position inside the image (MATLAB
    ``filter2(..., 'valid')``, i.e. :math:`(R - b + 1)(C - b + 1)` windows with step 1) is averaged
    (:func:`uiqi_map`); Q is the mean over bands. This is the toolbox's ``Q.m`` / ``img_qi.m`` with
    ``block = 32``. No uint16 cast is involved (the toolbox has none here either).

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
        numpy, dask or DataArray; same shape, at least ``block`` rows and columns.
    block : int
        Window side (toolbox: 32).
    per_band : bool
        Return the ``bands + 1`` values (each band's Q, then the mean) instead of the mean.
    valid : array (rows, cols) of bool, optional
        Pixels to evaluate; default from the declared nodata
        (:func:`~geofuse.metrics.reduced.valid_mask`). Windows that contain an invalid pixel are left out.

    Returns
    -------
    float or lazy 0-d dask array (1-d with ``per_band``). Ideal 1, higher is better.

    Notes
    -----
    On dask input each chunk gets ``block - 1`` pixels of its neighbours and sums the window positions
    whose top-left corner it owns (see the module docstring): chunks need not align with anything;
    chunks smaller than ``block - 1`` pixels are rechunked inside.

    References
    ----------
    Wang, Bovik (2002), "A universal image quality index", IEEE SPL 9(3), doi:10.1109/97.995823.
    Vivone et al. (2015), doi:10.1109/TGRS.2014.2361734.
    """
    block = _check_positive(block, "block", integer=True)
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    bands, rows, cols = g.shape
    if rows < block or cols < block:
        raise ParameterError("The image is smaller than the Q window", expected=f"at least {block}x{block} pixels",
                             got=f"{rows}x{cols}", fix="use a smaller block= or a larger image")

    def kernel(fb, gb, *ib, core, shape, origin):
        t0, ny, l0, nx = _window_corners(core, shape, origin, block)
        if ny == 0 or nx == 0:
            return np.zeros(bands + 1)
        win = (slice(None), slice(t0, t0 + ny + block - 1), slice(l0, l0 + nx + block - 1))
        kept = _windows_kept(ib[0][win] if ib else None, block)
        return _window_sums(uiqi_map(fb[win], gb[win], block), kept)

    sums = _reduce_chunks(kernel, [f, g, *_invalid_image(ok)], block - 1, bands + 1, lazy)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = sums[:bands] / sums[bands]
    return _finish(_stack(per, per.mean(), lazy), lazy, per_band)


# --------------------------------------------------------------------------------------------------
# SCC
# --------------------------------------------------------------------------------------------------

_SCC_VARIANTS = ("2021", "v1.3")


def _sobel_sums(fb: np.ndarray, gb: np.ndarray, core, variant: str, ib: np.ndarray | None = None) -> np.ndarray:
    """Per band: sum(GF*GG), sum(GF^2), sum(GG^2) over the core (blocks carry a 1-pixel halo).

    With the invalid image ``ib`` (1 = invalid, 0 beyond the image) only the pixels whose 3x3
    neighbourhood (the Sobel support) is valid are summed.
    """
    top, left, rows, cols = core

    def grad(x):
        x = np.asarray(x, dtype=np.float64)[:, top - 1:top + rows + 1, left - 1:left + cols + 1]
        # fspecial('sobel') = [1 2 1; 0 0 0; -1 -2 -1], correlation (imfilter)
        sm_x = x[:, :, :-2] + 2.0 * x[:, :, 1:-1] + x[:, :, 2:]            # horizontal smoothing
        gy = sm_x[:, :-2, :] - sm_x[:, 2:, :]
        if variant == "v1.3":
            return gy
        sm_y = x[:, :-2, :] + 2.0 * x[:, 1:-1, :] + x[:, 2:, :]            # vertical smoothing
        gx = sm_y[:, :, :-2] - sm_y[:, :, 2:]
        return np.sqrt(gy * gy + gx * gx)

    a, b = grad(fb), grad(gb)
    if ib is not None:
        nb = np.asarray(ib)[0, top - 1:top + rows + 1, left - 1:left + cols + 1]
        bad = sum(nb[dy:dy + rows, dx:dx + cols] for dy in range(3) for dx in range(3))
        keep = (bad < 0.5)[None]
        a, b = a * keep, b * keep
    return np.concatenate([(a * b).sum(axis=(1, 2)), (a * a).sum(axis=(1, 2)), (b * b).sum(axis=(1, 2))])


def scc(fused: Any, ref: Any, variant: str = "2021", per_band: bool = False, valid: Any = None) -> Any:
    r"""Spatial correlation coefficient (SCC) of the Sobel gradient magnitudes.

    ``variant="2021"`` (toolbox ``SCC.m``): the image interior ``I[1:-1, 1:-1]`` of each band is
    filtered with MATLAB ``fspecial('sobel')`` and its transpose (``imfilter``: correlation, zero
    padding), :math:`G = \sqrt{G_y^2 + G_x^2}`, and

    .. math:: \mathrm{SCC} = \frac{\sum G_F G_R}{\sqrt{\sum G_F^2}\sqrt{\sum G_R^2}}

    with the sums over all pixels **and bands** (an uncentred correlation). ``variant="v1.3"`` (the 2015
    toolbox's inline SCC): only the first Sobel direction (no magnitude) on the whole image.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
    variant : {"2021", "v1.3"}
    per_band : bool
        Return the ``bands + 1`` values (the same formula with the sums of one band; last: all bands).
    valid : array (rows, cols) of bool, optional
        Pixels to evaluate; default from the declared nodata
        (:func:`~geofuse.metrics.reduced.valid_mask`). Only pixels whose 3x3 Sobel support is valid are
        summed.

    Returns
    -------
    float or lazy 0-d dask array (1-d with ``per_band``). Ideal 1, higher is better. NaN when an image
    has no gradient at all.

    References
    ----------
    Zhou, Civco, Silander (1998), "A wavelet transform method to merge Landsat TM and SPOT panchromatic
    data", IJRS 19(4), doi:10.1080/014311698215973. Vivone et al. (2021), doi:10.1109/MGRS.2020.3019315.
    """
    if variant not in _SCC_VARIANTS:
        raise ParameterError("Unknown SCC variant", expected=" or ".join(map(repr, _SCC_VARIANTS)), got=repr(variant),
                             fix='use "2021" (toolbox 2021, Sobel magnitude) or "v1.3"')
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    bands = g.shape[0]
    if variant == "2021":
        if min(g.shape[1:]) < 3:
            raise ParameterError("SCC needs an interior", expected="at least 3x3 pixels", got=f"{g.shape[1:]}",
                                 fix="use a larger image")
        f, g = f[:, 1:-1, 1:-1], g[:, 1:-1, 1:-1]
        ok = None if ok is None else ok[1:-1, 1:-1]

    def kernel(fb, gb, *ib, core, shape, origin):
        return _sobel_sums(fb, gb, core, variant, ib[0] if ib else None)

    s = _reduce_chunks(kernel, [f, g, *_invalid_image(ok)], 1, 3 * bands, lazy, boundary="zeros")
    fg, ff, gg = s[:bands], s[bands:2 * bands], s[2 * bands:]
    with np.errstate(invalid="ignore", divide="ignore"):
        per = fg / np.sqrt(ff) / np.sqrt(gg)
        overall = fg.sum() / np.sqrt(ff.sum()) / np.sqrt(gg.sum())
    return _finish(_stack(per, overall, lazy), lazy, per_band)


# --------------------------------------------------------------------------------------------------
# pixel-wise: RMSE, PSNR, CC
# --------------------------------------------------------------------------------------------------

def _valid_extreme(x: Any, ok: Any, which: str) -> Any:
    """Per-band maximum (``which="max"``) or minimum of ``x`` over the valid pixels, float64."""
    x = x.astype(np.float64)
    if ok is not None:
        x = np.where(ok[None], x, -np.inf if which == "max" else np.inf)
    return x.max(axis=(1, 2)) if which == "max" else x.min(axis=(1, 2))


def _band_moments(f, g, lazy: bool, ok: Any = None):
    """Per band (float64), over the valid pixels: mean f, mean g, mean (f-g)^2, cov(f, g), var f, var g
    (population). ``f``, ``g`` are 0 at the invalid pixels (:func:`~geofuse.metrics.reduced._pair_valid`)."""
    a = f.astype(np.float64)
    b = g.astype(np.float64)
    mf = valid_mean(a, ok)
    mg = valid_mean(b, ok)
    d = a - b
    mse = valid_mean(d * d, ok)
    ac = a - mf[:, None, None]
    bc = b - mg[:, None, None]
    if ok is not None:
        ac = np.where(ok[None], ac, 0.0)
        bc = np.where(ok[None], bc, 0.0)
    cov = valid_mean(ac * bc, ok)
    vf = valid_mean(ac * ac, ok)
    vg = valid_mean(bc * bc, ok)
    return mf, mg, mse, cov, vf, vg


def rmse(fused: Any, ref: Any, per_band: bool = False, valid: Any = None) -> Any:
    r"""Root mean squared error :math:`\sqrt{\frac{1}{BN}\sum_{b,p} (f_b(p) - g_b(p))^2}` (image units).

    Per band: :math:`\sqrt{\mathrm{MSE}_b}`; the global value is :math:`\sqrt{\mathrm{mean}_b\,
    \mathrm{MSE}_b}` (not the mean of the band RMSEs). Ideal 0, lower is better. Over the ``valid``
    pixels (default: not the declared nodata of either image), as every index here.
    """
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    a = f.astype(np.float64) - g.astype(np.float64)
    mse = valid_mean(a * a, ok)
    return _finish(_stack(np.sqrt(mse), np.sqrt(mse.mean()), lazy), lazy, per_band)


def psnr(fused: Any, ref: Any, data_range: float | None = None, per_band: bool = False,
         valid: Any = None) -> Any:
    r"""Peak signal-to-noise ratio in dB, per band, averaged over bands.

    .. math:: \mathrm{PSNR}_b = 10 \log_{10} \frac{P_b^2}{\mathrm{MSE}_b},\qquad
              \mathrm{PSNR} = \frac{1}{B}\sum_b \mathrm{PSNR}_b

    with the peak :math:`P_b` the maximum of the reference band (the hyperspectral convention of
    Yokoya et al. 2017, SPEC section 9) unless ``data_range`` gives one peak for all bands (e.g. 2047
    for 11-bit data, 1 for reflectances). A band with MSE 0 has PSNR ``inf``. This is the standard PSNR
    against a reference, not VIFB's fusion PSNR (``PSNR_VIFB``). Ideal ``inf``, higher is better.

    References
    ----------
    Yokoya, Grohnfeldt, Chanussot (2017), doi:10.1109/MGRS.2016.2637824.
    """
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    a = f.astype(np.float64) - g.astype(np.float64)
    mse = valid_mean(a * a, ok)
    if data_range is None:
        peak = _valid_extreme(g, ok, "max")
    else:
        peak = float(_check_positive(data_range, "data_range"))
    with np.errstate(divide="ignore", invalid="ignore"):
        per = 10.0 * np.log10(peak * peak / mse)
    return _finish(_stack(per, per.mean(), lazy), lazy, per_band)


def cc(fused: Any, ref: Any, per_band: bool = False, valid: Any = None) -> Any:
    r"""Correlation coefficient (Pearson) of each band with its reference band, mean over bands.

    .. math:: \mathrm{CC}_b = \frac{\mathrm{cov}(f_b, g_b)}{\sigma_{f_b}\sigma_{g_b}}

    computed with two passes (means first) in float64. A constant band has no correlation (NaN).
    Ideal 1, higher is better.

    References
    ----------
    Loncan et al. (2015), "Hyperspectral pansharpening: a review", IEEE GRSM 3(3),
    doi:10.1109/MGRS.2015.2440094.
    """
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    _, _, _, cov, vf, vg = _band_moments(f, g, lazy, ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = cov / np.sqrt(vf * vg)
    return _finish(_stack(per, per.mean(), lazy), lazy, per_band)


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------

def _gauss1d(n: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def ssim_map(fused: np.ndarray, ref: np.ndarray, c1: np.ndarray, c2: np.ndarray, win: int = 11,
             sigma: float = 1.5) -> np.ndarray:
    """SSIM map over every ``win x win`` Gaussian window inside the image ('valid'); c1, c2 per band."""
    k = _gauss1d(win, sigma)
    f = np.asarray(fused, dtype=np.float64)
    g = np.asarray(ref, dtype=np.float64)
    cf = f.reshape(f.shape[0], -1)[:, :1, None]
    cg = g.reshape(g.shape[0], -1)[:, :1, None]
    fs, gs = f - cf, g - cg
    mf0, mg0 = _sep_valid(fs, k), _sep_valid(gs, k)
    vf = _sep_valid(fs * fs, k) - mf0 * mf0
    vg = _sep_valid(gs * gs, k) - mg0 * mg0
    cov = _sep_valid(fs * gs, k) - mf0 * mg0
    mf, mg = mf0 + cf, mg0 + cg
    c1 = np.asarray(c1, dtype=np.float64).reshape(-1, 1, 1)
    c2 = np.asarray(c2, dtype=np.float64).reshape(-1, 1, 1)
    return ((2 * mf * mg + c1) * (2 * cov + c2)) / ((mf * mf + mg * mg + c1) * (vf + vg + c2))


def ssim(fused: Any, ref: Any, data_range: float | None = None, per_band: bool = False,
         valid: Any = None) -> Any:
    r"""Structural similarity (Wang et al. 2004), per band, averaged over bands.

    The standard form: an 11x11 Gaussian window (:math:`\sigma = 1.5`, normalised), population
    (weighted) moments, :math:`C_1 = (0.01 L)^2`, :math:`C_2 = (0.03 L)^2`,

    .. math:: \mathrm{SSIM} = \frac{(2\mu_f\mu_g + C_1)(2\sigma_{fg} + C_2)}
                                   {(\mu_f^2 + \mu_g^2 + C_1)(\sigma_f^2 + \sigma_g^2 + C_2)}

    averaged over every window position inside the band ('valid', as Wang's ``ssim_index.m``; equal to
    scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``). The
    dynamic range :math:`L` is ``data_range`` if given, else the range (max - min) of each reference
    band (1 where that range is 0). This is the usual SSIM against a reference, not VIFB's sum
    (``SSIM_VIFB``).

    Returns
    -------
    float or lazy 0-d dask array (1-d with ``per_band``). Ideal 1, higher is better.

    Notes
    -----
    Chunked input: each chunk gets 10 pixels of its neighbours (see the module docstring).

    References
    ----------
    Wang, Bovik, Sheikh, Simoncelli (2004), "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), doi:10.1109/TIP.2003.819861.
    """
    f, g, lazy, ok = _pair_valid(fused, ref, valid)
    bands, rows, cols = g.shape
    win = 11
    if rows < win or cols < win:
        raise ParameterError("The image is smaller than the SSIM window", expected=f"at least {win}x{win} pixels",
                             got=f"{rows}x{cols}", fix="use a larger image")
    if data_range is None:
        rng = _valid_extreme(g, ok, "max") - _valid_extreme(g, ok, "min")
        rng = np.where(rng > 0, rng, 1.0)
    else:
        rng = np.full(bands, float(_check_positive(data_range, "data_range")))
    c1 = ((0.01 * rng) ** 2).reshape(bands, 1, 1)
    c2 = ((0.03 * rng) ** 2).reshape(bands, 1, 1)

    def kernel(fb, gb, *rest, core, shape, origin):
        *ib, c1b, c2b = rest
        t0, ny, l0, nx = _window_corners(core, shape, origin, win)
        if ny == 0 or nx == 0:
            return np.zeros(bands + 1)
        sl = (slice(None), slice(t0, t0 + ny + win - 1), slice(l0, l0 + nx + win - 1))
        kept = _windows_kept(ib[0][sl] if ib else None, win)
        return _window_sums(ssim_map(fb[sl], gb[sl], c1b, c2b, win), kept)

    sums = _reduce_chunks(kernel, [f, g, *_invalid_image(ok)], win - 1, bands + 1, lazy, small=(c1, c2))
    with np.errstate(invalid="ignore", divide="ignore"):
        per = sums[:bands] / sums[bands]
    return _finish(_stack(per, per.mean(), lazy), lazy, per_band)


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------

def _q_metric(fused: Any, ref: Any, block: int = 32, per_band: bool = False, valid: Any = None) -> Any:
    return q_index(fused, ref, block=block, per_band=per_band, valid=valid)


def _scc_metric(fused: Any, ref: Any, compat: str = "default", scc_variant: str = "2021",
                per_band: bool = False, valid: Any = None) -> Any:
    _check_compat(compat)
    return scc(fused, ref, variant=scc_variant, per_band=per_band, valid=valid)


register(Metric("Q", "Universal image quality index (UIQI), 32x32 sliding window, mean over bands",
                higher_is_better=True, ideal=1.0, needs_reference=True, per_band=True, func=_q_metric))
register(Metric("SCC", "Spatial correlation coefficient of Sobel gradient magnitudes", higher_is_better=True,
                ideal=1.0, needs_reference=True, per_band=True, func=_scc_metric))
register(Metric("PSNR", "Peak signal-to-noise ratio (peak = reference band maximum), mean over bands",
                higher_is_better=True, ideal=math.inf, needs_reference=True, per_band=True, func=psnr, unit="dB"))
register(Metric("RMSE", "Root mean squared error (image units)", higher_is_better=False, ideal=0.0,
                needs_reference=True, per_band=True, func=rmse))
register(Metric("CC", "Pearson correlation coefficient per band, mean over bands", higher_is_better=True,
                ideal=1.0, needs_reference=True, per_band=True, func=cc))
register(Metric("SSIM", "Structural similarity (Gaussian 11x11, sigma 1.5), mean over bands",
                higher_is_better=True, ideal=1.0, needs_reference=True, per_band=True, func=ssim))
