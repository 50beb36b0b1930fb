"""Generic image-fusion metrics (two sources A, B and a fused image F), VIFB conventions (SPEC §10).

These are the no-reference metrics of the infrared–visible, multi-focus, multi-exposure and medical
fusion literature, as benchmarked by VIFB (Zhang, Ye & Xiao, CVPRW 2020,
doi:10.1109/CVPRW50498.2020.00060). Every function has the signature ``func(fused, a, b, *, compat=...)``
and returns a Python ``float``; the registry entries declare ``inputs=("fused", "a", "b")`` so that
generic tables (:func:`evaluate_fusion`) know how to call them.

Images
------
``fused``, ``a`` and ``b`` are 2-D ``(rows, cols)`` or band-first 3-D ``(bands, rows, cols)`` arrays on the
8-bit grey scale (0..255; integer or float), as numpy, dask or xarray (dims ``("band", "y", "x")``).
These metrics are global-histogram / global-FFT statistics of images of a few hundred pixels: dask and
xarray inputs are **computed** (``np.asarray``) image by image, which is fine at that size and is the
only honest way to get an FFT or a joint histogram of a whole image.

Multi-band images follow what VIFB's code actually does (``compute_metrics.m`` and every
``metrics*.m``): the metric is computed **per band**, pairing fused band ``k`` with band ``k`` of each
source (a single-band source is paired with every fused band), and the per-band values are **averaged**.
The ``rgb2gray`` calls inside VIFB's metric functions are dead code for RGB inputs, because the wrapper
has already split the channels. When the fused image has one band and a source has three, the source is
converted with MATLAB's ``rgb2gray`` weights (rounded for integer inputs, as MATLAB does for uint8).

``compat``
----------
``compat="vifb"`` reproduces VIFB's MATLAB code including its quirks, so that the published VIFB values
can be matched (tests/test_metrics_generic.py checks all 25 published "fight" results within 1e-3).
``compat="default"`` is the same mathematics without the quirks. The quirks (``compat="vifb"`` only):

* **SF**: VIFB indexes the ``rows x cols x 3`` array as a ``rows x 3*cols`` matrix (``[m,n]=size(F)``),
  i.e. the three bands side by side, so its row frequency includes the two seams between bands and both
  sums are divided by ``rows*3*cols``. Default: per-band SF, averaged.
* **Qabf**: where the source and fused Sobel magnitudes are exactly equal, VIFB sets the strength ratio
  to the (255-times scaled) magnitude itself instead of 1 (``GAF(i,j) = gF(i,j)``). Default: ratio 1.
* **Qcv**: ``blkproc`` zero-pads the partial 16x16 blocks at the right/bottom border and ``mean2`` then
  divides by 256 rather than by the number of real pixels. Default: the mean over the real pixels.

PSNR and RMSE are separate metrics, because VIFB's definitions are not the usual ones:

* ``RMSE_VIFB`` = mean over the two sources of ``sqrt(sum((X - F)**2)) / (rows*cols)`` (a root of the
  summed squared error divided by the pixel count, i.e. the usual RMSE divided by ``sqrt(rows*cols)``);
* ``PSNR_VIFB`` = ``20*log10(255 / sqrt(RMSE_VIFB))`` computed from that quantity (so ~58 dB for
  ordinary images);
* ``RMSE_AB`` = mean of the standard RMSE(A, F) and RMSE(B, F);
* ``PSNR_AB`` = ``10*log10(peak**2 / MSE)`` with ``MSE`` the mean of MSE(A, F) and MSE(B, F) (Ma et al.,
  Information Fusion 45, 2019, doi:10.1016/j.inffus.2018.02.004).

``SSIM_VIFB`` is VIFB's sum ``SSIM(A, F) + SSIM(B, F)`` (Gaussian 11x11, sigma 1.5, K = 0.01/0.03,
L = 255, 'valid' filtering; ideal 2). Metrics that VIFB does not compute (NMI, VIF, SCD, FMI, Nabf) follow
their papers (see each docstring); they have no published VIFB value to match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InputError, ParameterError
from . import Metric, get, register

__all__ = [
    "GENERIC_METRICS", "QABF_SELF", "VIFB_NAMES", "ag", "ce", "ei", "en", "evaluate_fusion", "fmi", "mi", "nabf", "nmi",
    "psnr_ab", "psnr_vifb", "qabf", "qcb", "qcv", "rmse_ab", "rmse_vifb", "scd", "sd", "sf", "ssim_vifb", "vif",
]

_COMPAT = ("default", "vifb")
#: MATLAB rgb2gray weights (the inverse of the NTSC YIQ transform, as rgb2gray computes them).
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------

def _check_compat(compat: str) -> str:
    if compat not in _COMPAT:
        raise ParameterError("Unknown compat mode", expected=" or ".join(map(repr, _COMPAT)), got=repr(compat),
                             fix='use "vifb" to reproduce VIFB\'s MATLAB code, else "default"')
    return compat


def _image(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """-> (float64 (bands, rows, cols), was_integer). xarray/dask are computed (global metrics)."""
    x = _materialize(x)  # dask: a global statistic of a small image, computed
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"{name} is not numeric", expected="an integer or floating image", got=f"dtype {x.dtype}",
                         fix="convert the image to a numeric dtype")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise InputError(f"{name} is not an image", expected="(rows, cols) or (bands, rows, cols)",
                         got=f"shape {x.shape}", fix="pass band-first arrays, e.g. np.moveaxis(rgb, -1, 0)")
    return x.astype(np.float64), bool(np.issubdtype(x.dtype, np.integer))


def _materialize(x: Any) -> Any:
    """xarray -> band-first data; dask -> numpy (dtype kept, so integer sources stay integer)."""
    if hasattr(x, "dims") and hasattr(x, "data") and hasattr(x, "transpose"):
        if set(x.dims) == {"band", "y", "x"}:
            x = x.transpose("band", "y", "x")
        x = x.data
    if hasattr(x, "compute") and hasattr(x, "chunks"):
        x = x.compute()
    return np.asarray(x)


def _to_gray(x: np.ndarray, integer: bool) -> np.ndarray:
    g = np.tensordot(_RGB2GRAY, x, axes=(0, 0))[None]
    return np.floor(g + 0.5) if integer else g


def _triplets(fused: Any, a: Any, b: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-band (f, a, b) 2-D float64 triplets, paired as VIFB pairs them."""
    f, _ = _image(fused, "fused")
    srcs = []
    for x, name in ((a, "a"), (b, "b")):
        s, integer = _image(x, name)
        if s.shape[1:] != f.shape[1:]:
            raise InputError(f"fused and {name} have different sizes", expected="the same rows x cols",
                             got=f"{f.shape[1:]} vs {s.shape[1:]}", fix="register / resample the sources first")
        if f.shape[0] == 1 and s.shape[0] == 3:
            s = _to_gray(s, integer)
        if s.shape[0] not in (1, f.shape[0]):
            raise InputError(f"{name} has a band count that does not pair with the fused image",
                             expected=f"1 or {f.shape[0]} bands", got=f"{s.shape[0]} bands",
                             fix="pass single-band sources or sources with the fused image's bands")
        srcs.append(s)
    return [(f[k], srcs[0][min(k, srcs[0].shape[0] - 1)], srcs[1][min(k, srcs[1].shape[0] - 1)])
            for k in range(f.shape[0])]


def _band_mean(func: Callable[..., float], fused: Any, a: Any, b: Any, **kw: Any) -> float:
    return float(np.mean([func(f, x, y, **kw) for f, x, y in _triplets(fused, a, b)]))


def _round(x: np.ndarray) -> np.ndarray:
    """MATLAB round (half away from zero)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _levels(x: np.ndarray, name: str) -> np.ndarray:
    """Integer grey levels 0..255 (floor), as VIFB's histogram loops index them."""
    lv = np.floor(x)
    if lv.min() < 0 or lv.max() > 255:
        raise InputError(f"{name} is outside the 8-bit grey range", expected="values in 0..255",
                         got=f"range [{x.min():g}, {x.max():g}]", fix="rescale the image to 0..255 first")
    return lv.astype(np.int64)


def _corr_same(x: np.ndarray, k: np.ndarray, mode: str = "constant") -> np.ndarray:
    """MATLAB filter2(k, x, 'same') (correlation, zero padding) / imfilter(..., 'replicate')."""
    return ndimage.correlate(x, k, mode=mode, cval=0.0)


def _gauss_valid(x: np.ndarray, n: int, sigma: float) -> np.ndarray:
    """MATLAB filter2(fspecial('gaussian', n, sigma), x, 'valid'), as two separable 1-D passes.

    (fspecial's zeroing of values below eps*max never triggers for the windows used here.)
    """
    r = (n - 1) // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-t * t / (2.0 * sigma * sigma))
    g /= g.sum()
    out = ndimage.correlate1d(x, g, axis=0, mode="constant", cval=0.0)[r:x.shape[0] - r]
    return ndimage.correlate1d(out, g, axis=1, mode="constant", cval=0.0)[:, r:x.shape[1] - r]


def _sobel(x: np.ndarray, mode: str = "constant") -> tuple[np.ndarray, np.ndarray]:
    """(horizontal-gradient, vertical-gradient) Sobel responses, correlation, zero padding by default."""
    sx = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    return _corr_same(x, sx, mode), _corr_same(x, sx.T, mode)


def _fft_filter(x: np.ndarray, H: np.ndarray) -> np.ndarray:
    """ifft2(ifftshift(fftshift(fft2(x)) .* H)) with H on the freqspace grid (real part)."""
    return np.real(np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(x)) * H)))


def _freq_radius(rows: int, cols: int, scale_u: float, scale_v: float) -> np.ndarray:
    """sqrt(u^2 + v^2) on MATLAB's freqspace([rows, cols], 'meshgrid') grid, u scaled by scale_u, v by scale_v."""
    fu = (np.arange(cols) - cols // 2) * (2.0 / cols) * scale_u
    fv = (np.arange(rows) - rows // 2) * (2.0 / rows) * scale_v
    return np.sqrt(fu[None, :] ** 2 + fv[:, None] ** 2)


def _normalize255(x: np.ndarray) -> np.ndarray:
    """Min-max to 0..255 and round (Z. Liu's normalize1, used by Qcb/Qcv)."""
    hi, lo = x.max(), x.min()
    if hi == 0 and lo == 0:
        return x
    return _round((x - lo) / (hi - lo) * 255.0)


# --------------------------------------------------------------------------------------------------
# information-theory metrics
# --------------------------------------------------------------------------------------------------

def _entropy_bits(levels: np.ndarray) -> float:
    p = np.bincount(levels.ravel(), minlength=256) / levels.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def en(fused: Any, a: Any = None, b: Any = None, *, compat: str = "default") -> float:
    """Entropy EN of the fused image in bits (256 grey-level bins), averaged over bands.

    Roberts, van Aardt & Ahmed, J. Appl. Remote Sens. 2(1) 023522, 2008, doi:10.1117/1.2945910.
    """
    _check_compat(compat)
    f, _ = _image(fused, "fused")
    return float(np.mean([_entropy_bits(_levels(band, "fused")) for band in f]))


def _ce_band(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    pf = np.bincount(_levels(f, "fused").ravel(), minlength=256) / f.size
    out = []
    for s in (x, y):
        ps = np.bincount(_levels(s, "source").ravel(), minlength=256) / s.size
        ok = (ps > 0) & (pf > 0)
        out.append(float((ps[ok] * np.log2(ps[ok] / pf[ok])).sum()))
    return (out[0] + out[1]) / 2.0


def ce(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Cross entropy CE (bits): mean of the relative entropies D(p_A || p_F) and D(p_B || p_F).

    256 grey-level histograms; as in VIFB, bins where either probability is 0 are skipped.
    Lower is better; 0 for F = A = B. Bulanon, Burks & Alchanatis, Biosyst. Eng. 103(1), 2009,
    doi:10.1016/j.biosystemseng.2009.02.009.
    """
    _check_compat(compat)
    return _band_mean(_ce_band, fused, a, b)


def _mi_levels(x: np.ndarray) -> np.ndarray:
    hi, lo = x.max(), x.min()
    x = (x - lo) / (hi - lo) if hi != lo else np.zeros_like(x)
    return _round(x * 255.0).astype(np.int64)


def _mi_terms(x: np.ndarray, f: np.ndarray) -> tuple[float, float, float]:
    """(H(x), H(f), MI(x, f)) in nats, 256 bins after min-max normalisation and rounding."""
    lx, lf = _mi_levels(x), _mi_levels(f)
    joint = np.bincount((lx * 256 + lf).ravel(), minlength=256 * 256).astype(np.float64) / lx.size

    def h(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    hx, hf, hxf = h(joint.reshape(256, 256).sum(1)), h(joint.reshape(256, 256).sum(0)), h(joint)
    return hx, hf, hx + hf - hxf


def mi(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Mutual information MI = MI(A, F) + MI(B, F) in nats (natural log, as VIFB's ``mutinf``).

    Each image is min-max normalised to [0, 1], scaled by 255 and rounded (half away from zero) to
    256 bins. Qu, Zhang & Yan, Electron. Lett. 38(7), 2002, doi:10.1049/el:20020212.
    """
    _check_compat(compat)
    return _band_mean(lambda f, x, y: _mi_terms(x, f)[2] + _mi_terms(y, f)[2], fused, a, b)


def nmi(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Normalised mutual information (Hossny et al.): 2 [MI(A,F)/(H(A)+H(F)) + MI(B,F)/(H(B)+H(F))].

    Same histograms as :func:`mi`; 2 for F = A = B. Hossny, Nahavandi & Creighton, Electron. Lett.
    44(18), 2008, doi:10.1049/el:20081754.
    """
    _check_compat(compat)

    def one(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        out = 0.0
        for s in (x, y):
            hs, hf, m = _mi_terms(s, f)
            out += m / (hs + hf) if hs + hf > 0 else 1.0
        return 2.0 * out

    return _band_mean(one, fused, a, b)


# --------------------------------------------------------------------------------------------------
# statistics of the fused image
# --------------------------------------------------------------------------------------------------

def sd(fused: Any, a: Any = None, b: Any = None, *, compat: str = "default") -> float:
    """Standard deviation SD of the fused image (population, divisor rows*cols), averaged over bands.

    VIFB calls it "Variance" but returns the standard deviation. Rao, Meas. Sci. Technol. 8(4), 1997,
    doi:10.1088/0957-0233/8/4/002.
    """
    _check_compat(compat)
    f, _ = _image(fused, "fused")
    return float(np.mean([band.std() for band in f]))


def _sf_matrix(x: np.ndarray) -> float:
    n = x.size
    rf = float((np.diff(x, axis=1) ** 2).sum()) / n
    cf = float((np.diff(x, axis=0) ** 2).sum()) / n
    return math.sqrt(rf + cf)


def sf(fused: Any, a: Any = None, b: Any = None, *, compat: str = "default") -> float:
    """Spatial frequency SF = sqrt(RF^2 + CF^2), squared neighbour differences summed and divided by rows*cols.

    ``compat="vifb"``: bands side by side as one ``rows x (bands*cols)`` matrix (VIFB's 2-D indexing of a
    3-D array; see the module docstring). Eskicioglu & Fisher, IEEE Trans. Commun. 43(12), 1995,
    doi:10.1109/26.477498.
    """
    compat = _check_compat(compat)
    f, _ = _image(fused, "fused")
    if compat == "vifb":
        return _sf_matrix(np.concatenate(list(f), axis=1))
    return float(np.mean([_sf_matrix(band) for band in f]))


def ag(fused: Any, a: Any = None, b: Any = None, *, compat: str = "default") -> float:
    """Average gradient AG = sum(sqrt((Gx^2 + Gy^2) / 2)) / ((rows-1)(cols-1)), averaged over bands.

    Gradients as MATLAB's ``gradient`` (central differences inside, one-sided at the border).
    Cui et al., Opt. Commun. 341, 2015, doi:10.1016/j.optcom.2014.12.032.
    """
    _check_compat(compat)
    f, _ = _image(fused, "fused")
    out = []
    for band in f:
        r, c = band.shape
        gy, gx = np.gradient(band)
        out.append(float(np.sqrt((gx ** 2 + gy ** 2) / 2.0).sum()) / ((r - 1) * (c - 1)))
    return float(np.mean(out))


def ei(fused: Any, a: Any = None, b: Any = None, *, compat: str = "default") -> float:
    """Edge intensity EI: mean Sobel gradient magnitude (replicated border), averaged over bands.

    Rajalingam & Priya, Int. J. Eng. Sci. Invention, 2018 (as used by VIFB).
    """
    _check_compat(compat)
    f, _ = _image(fused, "fused")
    return float(np.mean([np.hypot(*_sobel(band, "nearest")).mean() for band in f]))


# --------------------------------------------------------------------------------------------------
# error metrics: VIFB's and the standard ones
# --------------------------------------------------------------------------------------------------

def _vifb_err(f: np.ndarray, x: np.ndarray) -> float:
    return math.sqrt(float(((x - f) ** 2).sum())) / f.size


def rmse_vifb(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """VIFB's "RMSE": mean over A, B of sqrt(sum((X - F)^2)) / (rows*cols) (not the usual RMSE).

    Jagalingam & Hegde, Aquatic Procedia 4, 2015, doi:10.1016/j.aqpro.2015.02.019, as coded in VIFB.
    """
    _check_compat(compat)
    return _band_mean(lambda f, x, y: (_vifb_err(f, x) + _vifb_err(f, y)) / 2.0, fused, a, b)


def psnr_vifb(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """VIFB's "PSNR": 20*log10(255 / sqrt(e)) with e the VIFB "RMSE" of one band (then averaged over bands)."""
    _check_compat(compat)

    def one(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        e = (_vifb_err(f, x) + _vifb_err(f, y)) / 2.0
        return 20.0 * math.log10(255.0 / math.sqrt(e)) if e > 0 else math.inf

    return _band_mean(one, fused, a, b)


def rmse_ab(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Standard RMSE against both sources: (RMSE(A, F) + RMSE(B, F)) / 2, averaged over bands."""
    _check_compat(compat)
    return _band_mean(lambda f, x, y: (math.sqrt(((x - f) ** 2).mean()) + math.sqrt(((y - f) ** 2).mean())) / 2.0,
                      fused, a, b)


def psnr_ab(fused: Any, a: Any, b: Any, *, compat: str = "default", peak: float = 255.0) -> float:
    """Standard PSNR against both sources: 10*log10(peak^2 / ((MSE(A,F) + MSE(B,F)) / 2)), averaged over bands."""
    _check_compat(compat)

    def one(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        m = (((x - f) ** 2).mean() + ((y - f) ** 2).mean()) / 2.0
        return 10.0 * math.log10(peak * peak / m) if m > 0 else math.inf

    return _band_mean(one, fused, a, b)


# --------------------------------------------------------------------------------------------------
# structural metrics
# --------------------------------------------------------------------------------------------------

def _ssim(x: np.ndarray, f: np.ndarray) -> float:
    def w(img: np.ndarray) -> np.ndarray:
        return _gauss_valid(img, 11, 1.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, mf = w(x), w(f)
    sxx = w(x * x) - mx * mx
    sff = w(f * f) - mf * mf
    sxf = w(x * f) - mx * mf
    m = ((2 * mx * mf + c1) * (2 * sxf + c2)) / ((mx * mx + mf * mf + c1) * (sxx + sff + c2))
    return float(m.mean())


def ssim_vifb(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """VIFB's SSIM: the SUM SSIM(A, F) + SSIM(B, F) (ideal 2), per band then averaged.

    Wang et al., IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861: Gaussian 11x11 window, sigma 1.5,
    K1 = 0.01, K2 = 0.03, L = 255, mean of the SSIM map over the 'valid' region.
    """
    _check_compat(compat)
    return _band_mean(lambda f, x, y: _ssim(x, f) + _ssim(y, f), fused, a, b)


def _edge_strength_angle(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Xydeas–Petrovic's Sobel pair as convolutions (zero padding). The sign convention matters: the
    # orientation is atan(sy/sx) with pi/2 where sx == 0, so flipping one of the two signs changes the
    # orientation difference next to vertical edges.
    gx = ndimage.convolve(x, np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="constant", cval=0.0)
    gy = ndimage.convolve(x, np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="constant", cval=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ang = np.where(gx == 0, np.pi / 2, np.arctan(gy / np.where(gx == 0, 1.0, gx)))
    return np.hypot(gx, gy), ang


_QABF = dict(tg=0.9994, kg=-15.0, dg=0.5, ta=0.9879, ka=-22.0, da=0.8)
#: Qabf of an image against itself (strength ratio 1, orientation agreement 1): the attainable maximum.
QABF_SELF = (_QABF["tg"] / (1 + math.exp(_QABF["kg"] * (1 - _QABF["dg"])))
             * _QABF["ta"] / (1 + math.exp(_QABF["ka"] * (1 - _QABF["da"]))))


def _edge_preservation(gs: np.ndarray, as_: np.ndarray, gf: np.ndarray, af: np.ndarray, vifb: bool) -> np.ndarray:
    """Q^{SF}: Xydeas–Petrovic edge strength & orientation preservation per pixel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gs > gf, gf / gs, gs / gf)
    ratio = np.where(gs == gf, gf if vifb else 1.0, ratio)
    align = 1.0 - np.abs(as_ - af) / (np.pi / 2)
    p = _QABF
    qg = p["tg"] / (1.0 + np.exp(p["kg"] * (ratio - p["dg"])))
    qa = p["ta"] / (1.0 + np.exp(p["ka"] * (align - p["da"])))
    return qg * qa


def _qabf_maps(f: np.ndarray, x: np.ndarray, y: np.ndarray, vifb: bool):
    s = 255.0 if vifb else 1.0  # VIFB's 255*im2double(double image): only visible through the tie quirk
    gf, af = _edge_strength_angle(s * f)
    ga, aa = _edge_strength_angle(s * x)
    gb, ab = _edge_strength_angle(s * y)
    qaf = _edge_preservation(ga, aa, gf, af, vifb)
    qbf = _edge_preservation(gb, ab, gf, af, vifb)
    return ga, gb, gf, qaf, qbf


def qabf(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Qabf (Q^{AB/F}): gradient-weighted edge preservation from A and B into F.

    Sobel 3x3 (zero padding), L = 1, Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8.
    Xydeas & Petrović, Electron. Lett. 36(4), 2000, doi:10.1049/el:20000267.
    """
    vifb = _check_compat(compat) == "vifb"

    def one(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        ga, gb, _, qaf, qbf = _qabf_maps(f, x, y, vifb)
        den = float((ga + gb).sum())
        return float((qaf * ga + qbf * gb).sum()) / den if den > 0 else 1.0

    return _band_mean(one, fused, a, b)


def nabf(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Nabf: fusion artefacts (noise) added to F, Kumar's modified form; lower is better, 0 ideal.

    ``sum(AN * ((1 - Q^{AF}) g_A + (1 - Q^{BF}) g_B)) / sum(g_A + g_B)`` with ``AN = 1`` where the fused
    gradient exceeds both source gradients (``g_F > g_A`` and ``g_F > g_B``), Qabf's edge-preservation
    maps. Kumar, Signal Image Video Process. 7, 2013, doi:10.1007/s11760-012-0361-x; Petrović & Xydeas,
    Proc. ICCV 2005, doi:10.1109/ICCV.2005.175.
    """
    _check_compat(compat)

    def one(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        ga, gb, gf, qaf, qbf = _qabf_maps(f, x, y, False)
        an = (gf > ga) & (gf > gb)
        den = float((ga + gb).sum())
        return float((an * ((1 - qaf) * ga + (1 - qbf) * gb)).sum()) / den if den > 0 else 0.0

    return _band_mean(one, fused, a, b)


# --------------------------------------------------------------------------------------------------
# human-perception metrics: Qcb, Qcv, VIF
# --------------------------------------------------------------------------------------------------

def _gauss31(img: np.ndarray, sigma: float) -> np.ndarray:
    """filter2 (zero padding) with Chen–Blum's un-normalised 31x31 Gaussian exp(-r^2/2s^2)/(2 pi s^2).

    The kernel is separable: two 1-D passes of exp(-x^2/2s^2)/sqrt(2 pi s^2), x = -15..15.
    """
    x = np.arange(-15, 16, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma)) / math.sqrt(2 * np.pi * sigma * sigma)
    out = ndimage.correlate1d(img, g, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(out, g, axis=1, mode="constant", cval=0.0)


def _qcb_band(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    f0, f1, a_ = 15.3870, 1.3456, 0.7622
    k = h = 1.0
    p, q, z = 3.0, 2.0, 1e-4
    rows, cols = x.shape
    r = _freq_radius(rows, cols, cols / 30.0, rows / 30.0)
    csf = np.exp(-(r / f0) ** 2) - a_ * np.exp(-(r / f1) ** 2)

    def contrast(img: np.ndarray) -> np.ndarray:
        im = _fft_filter(_normalize255(img), csf)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.abs(_gauss31(im, 2.0) / _gauss31(im, 4.0) - 1.0)
        return k * c ** p / (h * c ** q + z)

    c1, c2, cf = contrast(x), contrast(y), contrast(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = np.where(c1 < cf, c1 / cf, cf / c1)
        q2 = np.where(c2 < cf, c2 / cf, cf / c2)
        lam1 = c1 * c1 / (c1 * c1 + c2 * c2)
    return float(np.mean(lam1 * q1 + (1.0 - lam1) * q2))


def qcb(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Qcb (Chen–Blum): contrast preservation under a contrast-sensitivity (DoG) filter.

    Images min-max normalised to 0..255 (rounded); CSF ``exp(-(r/f0)^2) - a exp(-(r/f1)^2)`` with
    f0 = 15.3870, f1 = 1.3456, a = 0.7622 on the frequency grid scaled by (cols/30, rows/30); local contrast
    from 31x31 Gaussians with sigma 2 and 4; k = h = 1, p = 3, q = 2, Z = 1e-4; saliency-weighted mean.
    Chen & Blum, Image Vis. Comput. 27(10), 2009, doi:10.1016/j.imavis.2007.12.002.
    """
    _check_compat(compat)
    return _band_mean(_qcb_band, fused, a, b)


def _block_reduce(x: np.ndarray, size: int, func: str, pad_mean: bool) -> np.ndarray:
    rows, cols = x.shape
    hb, wb = -(-rows // size), -(-cols // size)
    padded = np.zeros((hb * size, wb * size))
    padded[:rows, :cols] = x
    blocks = padded.reshape(hb, size, wb, size)
    s = blocks.sum(axis=(1, 3))
    if func == "sum":
        return s
    if pad_mean:
        return s / (size * size)
    cnt = np.zeros_like(padded)
    cnt[:rows, :cols] = 1.0
    return s / cnt.reshape(hb, size, wb, size).sum(axis=(1, 3))


def _qcv_band(f: np.ndarray, x: np.ndarray, y: np.ndarray, vifb: bool) -> float:
    window, alpha = 16, 5
    f, x, y = _normalize255(f), _normalize255(x), _normalize255(y)
    rows, cols = x.shape
    lam = [_block_reduce(np.hypot(*_sobel(s)) ** alpha, window, "sum", vifb) for s in (x, y)]
    r = _freq_radius(rows, cols, cols / 8.0, rows / 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))  # Mannos–Sakrison
    d = [_block_reduce(_fft_filter(s - f, csf) ** 2, window, "mean", vifb) for s in (x, y)]
    den = float((lam[0] + lam[1]).sum())
    return float((lam[0] * d[0] + lam[1] * d[1]).sum()) / den if den > 0 else 0.0


def qcv(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """Qcv (Chen–Varshney): saliency-weighted, CSF-filtered squared difference over 16x16 regions; lower is better.

    Images min-max normalised to 0..255 (rounded); region saliency = sum of Sobel magnitude^alpha
    (alpha = 5); Mannos–Sakrison CSF on the frequency grid scaled by (cols/8, rows/8); regions of
    16x16 pixels. ``compat="vifb"``: partial border regions averaged over 256 (blkproc's zero padding).
    Chen & Varshney, Inf. Fusion 8(2), 2007, doi:10.1016/j.inffus.2005.10.001.
    """
    vifb = _check_compat(compat) == "vifb"
    return _band_mean(lambda f, x, y: _qcv_band(f, x, y, vifb), fused, a, b)


def _vif_maps(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float):
    """Per scale (VID map, VIND map, gain map), Sheikh & Bovik's pixel-domain VIF with Han's noise."""
    out = []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1

        def win(img: np.ndarray, n: int = n) -> np.ndarray:
            return _gauss_valid(img, n, n / 5.0)

        if scale > 1:
            ref = win(ref)[::2, ::2]
            dist = win(dist)[::2, ::2]
        mu1, mu2 = win(ref), win(dist)
        if mu1.size == 0:
            raise InputError("The image is too small for VIF's four scales", expected="at least ~64 x 64 pixels",
                             got=f"an empty map at scale {scale}", fix="evaluate VIF on a larger image")
        s1 = np.maximum(win(ref * ref) - mu1 * mu1, 0.0)
        s2 = np.maximum(win(dist * dist) - mu2 * mu2, 0.0)
        s12 = win(ref * dist) - mu1 * mu2
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        low1 = s1 < 1e-10
        g[low1] = 0.0
        sv[low1] = s2[low1]
        s1[low1] = 0.0
        low2 = s2 < 1e-10
        g[low2] = 0.0
        sv[low2] = 0.0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0.0
        sv[sv <= 1e-10] = 1e-10
        vid = np.log10(1.0 + g * g * s1 / (sv + sigma_nsq))
        vind = np.log10(1.0 + s1 / sigma_nsq)
        out.append((vid, vind, g))
    return out


def _vif_band(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    sigma_nsq, c = 0.005 * 255 * 255, 1e-7
    weights = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
    m1, m2 = _vif_maps(x, f, sigma_nsq), _vif_maps(y, f, sigma_nsq)
    vals = []
    for (vid1, vind1, g1), (vid2, vind2, g2) in zip(m1, m2, strict=True):
        pick1 = g1 < g2  # Han: per pixel, the source with the smaller gain
        vid = np.where(pick1, vid1, vid2)
        vind = np.where(pick1, vind1, vind2)
        vals.append(float((vid + c).sum()) / float((vind + c).sum()))
    return float((np.array(vals) * weights).sum())


def vif(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """VIF for fusion (VIFF, Han et al. 2013): multi-scale visual information fidelity of F w.r.t. A and B.

    Four scales with Gaussian windows N = 17, 9, 5, 3 (sigma N/5), dyadic down-sampling after 'valid'
    filtering, visual noise sigma_n^2 = 0.005*255^2, per pixel the source with the smaller gain, scale
    weights (1, 0, 0.15, 1)/2.15, C = 1e-7. Multi-band images: per band and averaged (Han's code uses the
    CIELAB L* channel of RGB inputs instead). Han, Cai, Cao & Xu, Inf. Fusion 14(2), 2013,
    doi:10.1016/j.inffus.2011.08.002.
    """
    _check_compat(compat)
    return _band_mean(_vif_band, fused, a, b)


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    den = math.sqrt(float((u * u).sum()) * float((v * v).sum()))
    return float((u * v).sum()) / den if den > 0 else 0.0


def scd(fused: Any, a: Any, b: Any, *, compat: str = "default") -> float:
    """SCD, sum of the correlations of differences: r(F - B, A) + r(F - A, B) (Pearson r; at most 2).

    A difference image with zero variance contributes 0. Aslantas & Bendes, AEU Int. J. Electron. Commun.
    69(12), 2015, doi:10.1016/j.aeue.2015.09.004.
    """
    _check_compat(compat)
    return _band_mean(lambda f, x, y: _pearson(f - y, x) + _pearson(f - x, y), fused, a, b)


def _fmi_windows(x: np.ndarray, w: int) -> np.ndarray:
    """All w x w windows as rows, each flattened column-major (MATLAB's ``X(:)``), shape (n_windows, w*w)."""
    v = np.lib.stride_tricks.sliding_window_view(x, (w, w))
    return np.ascontiguousarray(v.transpose(0, 1, 3, 2)).reshape(-1, w * w)


def _xlog2x(p: np.ndarray) -> np.ndarray:
    """-p log2|p| with 0 for p == 0 (the real part MATLAB keeps for slightly negative joint masses)."""
    out = np.zeros_like(p)
    nz = p != 0
    out[nz] = -p[nz] * np.log2(np.abs(p[nz]))
    return out


def _fmi_pair(sw: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """Per-window normalised feature MI between source windows ``sw`` and fused windows ``fw``."""
    equal = (sw == fw).all(axis=1)

    def pdf(x: np.ndarray) -> np.ndarray:
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(hi == lo, 1.0, (x - lo) / (hi - lo))
        return y / y.sum(axis=1, keepdims=True)

    a, f = pdf(sw), pdf(fw)
    n = a.shape[1]
    ca, cf = np.cumsum(a, axis=1), np.cumsum(f, axis=1)
    at, ft = a - a.mean(axis=1, keepdims=True), f - f.mean(axis=1, keepdims=True)
    num = (at * ft).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt((at * at).sum(axis=1) * (ft * ft).sum(axis=1)))
    idx = np.arange(1, n + 1, dtype=np.float64)

    def sd(p: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum((p * idx * idx).sum(axis=1) - (p * idx).sum(axis=1) ** 2, 0.0))

    sa, sf_ = sd(a), sd(f)
    F, A = cf[:, :, None], ca[:, None, :]  # F along i, A along j
    upper = np.minimum(F, A)  # Frechet upper bound copula M(F_i, A_j)
    lower = np.maximum(F + A - 1.0, 0.0)  # Frechet lower bound copula W(F_i, A_j)
    prod = F * A
    pos = c >= 0
    bound = np.where(pos[:, None, None], upper, lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr_b = (bound - prod).sum(axis=(1, 2)) / (sf_ * sa)
        weight = np.where((sa == 0) | (sf_ == 0) | (pos & (c == 0)), 0.0, c / corr_b)
    # probability mass of each cell (i, j) of the bound copula: 2-D differences with C(0, .) = C(., 0) = 0
    padded = np.pad(bound, ((0, 0), (1, 0), (1, 0)))
    mass = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    joint = weight[:, None, None] * mass + (1.0 - weight[:, None, None]) * f[:, :, None] * a[:, None, :]
    hj = _xlog2x(joint).sum(axis=(1, 2))
    ha, hf = _xlog2x(a).sum(axis=1), _xlog2x(f).sum(axis=1)
    m = ha + hf - hj
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(m == 0, 0.0, 2.0 * m / (ha + hf))
    return np.where(equal, 1.0, out)


def _fmi_band(f: np.ndarray, x: np.ndarray, y: np.ndarray, feature: str, window: int) -> float:
    from scipy.fft import dctn

    feats = []
    for img in (x, y, f):
        if feature == "none":
            feats.append(img)
        elif feature == "gradient":  # MATLAB gradient() with one output: the horizontal derivative
            feats.append(np.gradient(img, axis=1))
        else:  # "dct": MATLAB dct2 (orthonormal 2-D DCT-II)
            feats.append(dctn(img, type=2, norm="ortho"))
    fx, fy, ff = (_fmi_windows(t, window) for t in feats)
    total, count = 0.0, 0
    step = 8192  # windows per batch: (step, w^2, w^2) float64 temporaries stay small
    for s0 in range(0, ff.shape[0], step):
        sl = slice(s0, s0 + step)
        total += float((_fmi_pair(fx[sl], ff[sl]) + _fmi_pair(fy[sl], ff[sl])).sum()) / 2.0
        count += ff[sl].shape[0]
    return total / count


def fmi(fused: Any, a: Any, b: Any, *, compat: str = "default", feature: str = "none", window: int = 3) -> float:
    """Feature mutual information FMI (fast-FMI): mean over w x w windows of the normalised MI of features.

    In every sliding ``window x window`` window the features of a source and of F are min-max normalised
    and divided by their sum to give two marginal PDFs; their joint PDF is Nelsen's mixture of the
    independence copula and the Frechet upper (correlation c >= 0) or lower (c < 0) bound, weighted by c
    over the bound's correlation; per window NMI = 2 MI / (H_s + H_F) (1 where the windows are equal), and
    FMI = mean over windows of (NMI_AF + NMI_BF) / 2. ``feature``: ``"none"`` (pixels, FMI_pixel; the
    default here), ``"gradient"`` (the horizontal derivative, as Haghighat's code computes MATLAB's
    one-output ``gradient``) or ``"dct"`` (orthonormal 2-D DCT). 1 for F = A = B.
    Haghighat, Aghagolzadeh & Seyedarabi, Comput. Electr. Eng. 37(5), 2011,
    doi:10.1016/j.compeleceng.2011.07.012; Haghighat & Razian, Proc. AICT 2014,
    doi:10.1109/ICAICT.2014.7035817.
    """
    _check_compat(compat)
    if feature not in ("none", "gradient", "dct"):
        raise ParameterError("Unknown FMI feature", expected="'none', 'gradient' or 'dct'", got=repr(feature),
                             fix="use feature='none' (pixels)")
    if int(window) != window or window < 2:
        raise ParameterError("FMI window must be an integer >= 2", expected="e.g. 3", got=repr(window),
                             fix="use window=3")
    return _band_mean(lambda f, x, y: _fmi_band(f, x, y, feature, int(window)), fused, a, b)


# --------------------------------------------------------------------------------------------------
# registry and table
# --------------------------------------------------------------------------------------------------

_FAB = ("fused", "a", "b")
_SPECS: list[tuple[str, str, bool, float, Callable, str]] = [
    ("EN", "Entropy of the fused image (256 bins)", True, math.nan, en, "bit"),
    ("SD", "Standard deviation of the fused image (population)", True, math.nan, sd, ""),
    ("SF", "Spatial frequency of the fused image", True, math.nan, sf, ""),
    ("AG", "Average gradient of the fused image", True, math.nan, ag, ""),
    ("EI", "Edge intensity (mean Sobel magnitude) of the fused image", True, math.nan, ei, ""),
    ("MI", "Mutual information MI(A,F) + MI(B,F), 256 bins after min-max", True, math.nan, mi, "nat"),
    ("NMI", "Normalised mutual information (Hossny), 2 for F = A = B", True, 2.0, nmi, ""),
    ("CE", "Cross entropy (mean of D(p_A||p_F), D(p_B||p_F)), VIFB", False, 0.0, ce, "bit"),
    ("PSNR_VIFB", "VIFB's PSNR: 20 log10(255 / sqrt(RMSE_VIFB))", True, math.inf, psnr_vifb, "dB"),
    ("RMSE_VIFB", "VIFB's RMSE: sqrt(sum of squared errors) / pixels, mean over A and B", False, 0.0,
     rmse_vifb, ""),
    ("PSNR_AB", "Standard PSNR against both sources (mean MSE of A and B)", True, math.inf, psnr_ab, "dB"),
    ("RMSE_AB", "Standard RMSE, mean of RMSE(A,F) and RMSE(B,F)", False, 0.0, rmse_ab, ""),
    ("SSIM_VIFB", "VIFB's SSIM: SSIM(A,F) + SSIM(B,F), Gaussian 11x11 sigma 1.5", True, 2.0, ssim_vifb, ""),
    ("Qabf", "Xydeas-Petrovic edge preservation Q^{AB/F}", True, QABF_SELF, qabf, ""),
    ("Qcb", "Chen-Blum contrast-preservation quality", True, 1.0, qcb, ""),
    ("Qcv", "Chen-Varshney regional CSF-weighted error (lower is better)", False, 0.0, qcv, ""),
    ("VIF", "Visual information fidelity for fusion (Han et al. 2013)", True, 1.0, vif, ""),
    ("FMI", "Feature (pixel) mutual information, fast-FMI, 3x3 windows", True, 1.0, fmi, ""),
    ("SCD", "Sum of the correlations of differences (2 for F = A + B)", True, math.nan, scd, ""),
    ("Nabf", "Fusion artefacts (modified Nabf, Kumar)", False, 0.0, nabf, ""),
]

# ``ideal`` is the value when F = A = B (NaN where that is not a meaningful optimum: statistics of F alone
# such as EN/SD/SF/AG/EI, MI which equals the source entropy, SCD whose optimum 2 needs F = A + B).
for _name, _title, _hib, _ideal, _func, _unit in _SPECS:
    register(Metric(_name, _title, higher_is_better=_hib, ideal=_ideal, needs_reference=False, per_band=False,
                    func=_func, unit=_unit, inputs=_FAB))

#: The generic fusion metrics, in table order.
GENERIC_METRICS: tuple[str, ...] = tuple(s[0] for s in _SPECS)

#: The 13 metrics VIFB computes, VIFB file name -> geofuse metric.
VIFB_NAMES: dict[str, str] = {
    "Avg_gradient": "AG", "Cross_entropy": "CE", "Edge_intensity": "EI", "Entropy": "EN", "Mutinf": "MI",
    "Psnr": "PSNR_VIFB", "Qabf": "Qabf", "Qcb": "Qcb", "Qcv": "Qcv", "Rmse": "RMSE_VIFB",
    "Spatial_frequency": "SF", "Ssim": "SSIM_VIFB", "Variance": "SD",
}


def evaluate_fusion(fused: Any, a: Any, b: Any, metrics: Iterable[str] | None = None,
                    compat: str = "default") -> pd.DataFrame:
    """All (or the chosen) generic fusion metrics of ``fused`` against the sources ``a`` and ``b``.

    Parameters
    ----------
    fused, a, b : array
        ``(rows, cols)`` or ``(bands, rows, cols)`` on the 0..255 grey scale; numpy, dask or xarray
        (dask/xarray are computed image by image: these are global statistics of small images).
    metrics : iterable of str, optional
        Names from :data:`GENERIC_METRICS` (case-insensitive); default all of them.
    compat : {"default", "vifb"}
        ``"vifb"`` reproduces VIFB's MATLAB quirks (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``metric, value, higher_is_better, ideal, unit``.
    """
    _check_compat(compat)
    chosen = [get(m) for m in (GENERIC_METRICS if metrics is None else metrics)]
    for m in chosen:
        if tuple(getattr(m, "inputs", ())) != _FAB:
            raise ParameterError(f"Metric {m.name!r} is not a two-source fusion metric",
                                 expected=f"one of {', '.join(GENERIC_METRICS)}", got=repr(m.name),
                                 fix="use geofuse.evaluate for reference / pansharpening metrics")
    f, a_, b_ = (_materialize(x) for x in (fused, a, b))  # read dask / xarray once, keep the dtype
    rows = [{"metric": m.name, "value": float(m.func(f, a_, b_, compat=compat)),
             "higher_is_better": m.higher_is_better, "ideal": m.ideal, "unit": m.unit} for m in chosen]
    return pd.DataFrame(rows, columns=["metric", "value", "higher_is_better", "ideal", "unit"])
