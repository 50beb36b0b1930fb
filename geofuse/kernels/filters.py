"""Low-level filters: padding, correlation, MTF-matched kernels, MATLAB-style decimation, à trous.

Pure functions on torch tensors shaped ``(C, H, W)`` (``(H, W)`` where stated). They run on any float
dtype (float32 in production, float64 for reference tests) and on any device: every tensor created
here takes ``x.device`` and ``x.dtype``. Nothing here knows about chunks, but every filter is local:
filtering a tile that carries at least the filter's halo of context and cropping the halo off gives
exactly the whole-image result (the ``*_halo`` helpers and :func:`kernel_radius` give the context).

2-D filtering is a depthwise ``conv2d`` over ``(1, C, H, W)`` with ``groups=C``; short 1-D filters
(separable, à trous, ``imresize``) are multiply-adds of strided views of the padded image, one pass per
tap (memory-bound, much faster than a thin depthwise ``conv2d`` on CPU). Decimating filters compute only
the kept samples (strided convolution / strided views), never a full-size filtered image followed by
sub-sampling, and no zero-inserted array or kernel is ever built.

Kernel design (``mtf_kernel``, ``lp_filter_gauss_kernel``) is plain float64 numpy: kernels are tiny
and are designed once.

References
----------
G. Vivone et al., "A New Benchmarking of Pansharpening Methods", IEEE Geoscience and Remote Sensing
Magazine 9(1), 53-81, 2021, doi:10.1109/MGRS.2020.3019315.

B. Aiazzi, L. Alparone, S. Baronti, A. Garzelli, M. Selva, "MTF-tailored multiscale fusion of
high-resolution MS and Pan imagery", Photogrammetric Engineering & Remote Sensing 72(5), 591-596,
2006, doi:10.14358/PERS.72.5.591.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, ParameterError

__all__ = [
    "correlate2d_fft",
    "PAD_MODES",
    "pad",
    "kernel_radius",
    "mtf_kernel",
    "mtf_kernels",
    "lp_filter_gauss_kernel",
    "correlate2d",
    "correlate_separable",
    "imresize_down",
    "imresize_down_weights",
    "imresize_down_halo",
    "atrous_lowpass",
    "atrous_halo",
    "B3_SPLINE",
    "undecimated_lowpass",
    "undecimated_lowpass_halo",
]

PAD_MODES = ("replicate", "symmetric", "reflect", "circular", "zeros")

#: The B3-spline scaling filter of the à trous wavelet transform (Starck & Murtagh).
B3_SPLINE = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


# --------------------------------------------------------------------------------------------------
# padding
# --------------------------------------------------------------------------------------------------

def _check_mode(mode: str) -> None:
    if mode not in PAD_MODES:
        raise ParameterError(
            f"Unknown boundary mode {mode!r}",
            expected="one of " + ", ".join(repr(m) for m in PAD_MODES),
            got=repr(mode),
            fix="pass mode='replicate' (MATLAB imfilter 'replicate'), 'symmetric' (half-sample mirror, "
                "MATLAB imresize), 'reflect' (whole-sample mirror), 'circular' or 'zeros'")


def _axis_index(n: int, a: int, b: int, mode: str, device: torch.device) -> Tensor:
    """Source indices of virtual positions ``a .. b-1`` of an axis of length ``n`` extended by ``mode``
    (any ``a < b``, inside or outside ``[0, n)``; not used for 'zeros')."""
    i = torch.arange(a, b, device=device, dtype=torch.long)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "circular":
        return i.remainder(n)
    if mode == "symmetric":  # half-sample: ... x1 x0 | x0 x1 ... x_{n-1} | x_{n-1} x_{n-2} ...
        m = i.remainder(2 * n)
        return torch.where(m >= n, 2 * n - 1 - m, m)
    # reflect, whole-sample: ... x2 x1 | x0 x1 ... x_{n-1} | x_{n-2} ...
    if n == 1:
        return torch.zeros_like(i)
    p = 2 * n - 2
    m = i.remainder(p)
    return torch.where(m >= n, p - m, m)


def pad(x: Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> Tensor:
    r"""Pad the last two dimensions of ``x``.

    Unlike :func:`torch.nn.functional.pad`, any pad width works for every mode, including pads wider
    than the image (the boundary extension is periodic for the mirror modes, as in ``numpy.pad``).

    Parameters
    ----------
    x : Tensor
        ``(..., H, W)`` with ``H, W >= 1``.
    top, bottom, left, right : int
        Non-negative pad widths on rows (``top``, ``bottom``) and columns (``left``, ``right``).
    mode : {"replicate", "symmetric", "reflect", "circular", "zeros"}
        * ``"replicate"``: repeat the edge sample (``numpy`` 'edge', MATLAB ``'replicate'``).
        * ``"symmetric"``: half-sample mirror, the edge sample is repeated
          (``numpy`` 'symmetric', MATLAB ``padarray(...,'symmetric')`` and ``imresize``):
          :math:`x_{-1-i} = x_i`.
        * ``"reflect"``: whole-sample mirror, the edge sample is not repeated (``numpy`` 'reflect'):
          :math:`x_{-i} = x_i`.
        * ``"circular"``: periodic (MATLAB ``'circular'``, ``numpy`` 'wrap').
        * ``"zeros"``: constant zero (MATLAB ``imfilter`` default).

    Returns
    -------
    Tensor
        ``(..., H + top + bottom, W + left + right)``, same dtype and device as ``x``.
    """
    _check_mode(mode)
    pads = (top, bottom, left, right)
    if any(int(p) != p or p < 0 for p in pads):
        raise ParameterError("Pad widths must be non-negative integers", expected="ints >= 0",
                             got=str(pads), fix="pass non-negative pad widths")
    if x.dim() < 2:
        raise InputError("pad needs at least two dimensions", expected="(..., H, W)",
                         got=f"shape {tuple(x.shape)}", fix="add the missing image dimensions")
    h, w = x.shape[-2], x.shape[-1]
    if h == 0 or w == 0:
        raise InputError("Cannot pad an empty image", expected="H, W >= 1", got=f"shape {tuple(x.shape)}",
                         fix="pass a non-empty image")
    if not any(pads):
        return x
    return _window(x, -top, h + bottom, -left, w + right, mode)


def _window(x: Tensor, y0: int, y1: int, x0: int, x1: int, mode: str) -> Tensor:
    """Rows ``y0:y1`` and columns ``x0:x1`` of ``x`` extended infinitely by ``mode`` (bounds may lie
    outside the image)."""
    h, w = x.shape[-2], x.shape[-1]
    if mode == "zeros":
        out = x.new_zeros(x.shape[:-2] + (y1 - y0, x1 - x0))
        sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if sy1 > sy0 and sx1 > sx0:
            out[..., sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = x[..., sy0:sy1, sx0:sx1]
        return out
    return _extend(_extend(x, y0, y1, -2, mode), x0, x1, -1, mode)


def _extend(x: Tensor, a: int, b: int, axis: int, mode: str) -> Tensor:
    """Positions ``a .. b-1`` of ``x`` along ``axis``, extended by ``mode`` (not 'zeros').

    The part inside the image is a slice; only the outside strips are gathered with ``index_select``,
    so the cost is one copy (``torch.cat``) plus the strips, not a gather of the whole image.
    """
    n = x.shape[axis]
    ia, ib = min(max(a, 0), n), max(min(b, n), 0)
    if a >= 0 and b <= n:
        return x.narrow(axis, a, b - a)
    if ib <= ia:  # window entirely outside the image
        return x.index_select(axis, _axis_index(n, a, b, mode, x.device))
    parts = []
    if a < ia:
        parts.append(x.index_select(axis, _axis_index(n, a, ia, mode, x.device)))
    parts.append(x.narrow(axis, ia, ib - ia))
    if b > ib:
        parts.append(x.index_select(axis, _axis_index(n, ib, b, mode, x.device)))
    return torch.cat(parts, dim=axis)


# --------------------------------------------------------------------------------------------------
# kernel design (numpy, float64)
# --------------------------------------------------------------------------------------------------

def kernel_radius(k: Tensor | np.ndarray) -> int:
    """Radius (half-width) of an odd-sized kernel, the larger of its two spatial dims.

    Parameters
    ----------
    k : array-like
        ``(kh, kw)`` or ``(C, kh, kw)`` (or a 1-D ``(k,)`` kernel).

    Returns
    -------
    int
        ``max(kh, kw) // 2``: the context (halo) a correlation with ``k`` needs on each side.
    """
    shape = tuple(k.shape)
    spatial = shape[-2:] if len(shape) >= 2 else shape
    return int(max(spatial)) // 2


def _fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', n, sigma)``: sampled, tiny values zeroed, sum-normalised."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    xx, yy = np.meshgrid(x, x)
    h = np.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    s = h.sum()
    if s != 0:
        h = h / s
    return h


def _huang_window(w1: np.ndarray) -> np.ndarray:
    """Rotationally symmetric 2-D window from a 1-D one (Huang's method, as in MATLAB ``fwind1``).

    The 1-D window is placed on ``t = linspace(-1, 1, n)``; the 2-D window at radius
    :math:`\\rho = \\sqrt{t_1^2 + t_2^2}` is its linear interpolation for :math:`\\rho \\le 1`, zero outside.
    """
    n = w1.size
    t = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * (2.0 / (n - 1))
    t1, t2 = np.meshgrid(t, t)
    rho = np.sqrt(t1 * t1 + t2 * t2)
    inside = rho <= 1.0
    w = np.zeros((n, n))
    w[inside] = np.interp(rho[inside], t, w1)
    return w


def _fsamp2(hd: np.ndarray) -> np.ndarray:
    """MATLAB ``fsamp2``: impulse response from a centred, sampled 2-D frequency response (complex)."""
    r2 = lambda a: np.rot90(a, 2)  # noqa: E731
    hd = r2(np.fft.fftshift(r2(hd)))
    return r2(np.fft.fftshift(np.fft.ifft2(hd)))


def mtf_kernel(gnyq: float, ratio: int, n: int = 41, legacy: bool = False) -> np.ndarray:
    r"""MTF-matched low-pass kernel of the reference toolbox (``genMTF`` / ``MTF_PAN``).

    A Gaussian frequency response whose gain at the Nyquist frequency of the low-resolution grid,
    :math:`f = 1 / (2\,\mathrm{ratio})` cycles/pixel, is (about) ``gnyq``, designed by the window
    method with a Kaiser window (:math:`\beta = 0.5`) made rotationally symmetric (Huang).

    .. math::

        f_c = 1/\mathrm{ratio},\qquad
        \alpha = \sqrt{\frac{\left((n-1)\,f_c/2\right)^2}{-2\ln g_\mathrm{Nyq}}},\qquad
        H_d = \frac{G_{n,\alpha}}{\max G_{n,\alpha}},\qquad
        h = \operatorname{Re}\left(\mathcal{F}^{-1}\{H_d\}\cdot w_\mathrm{Huang}\right)

    where :math:`G_{n,\alpha}` is MATLAB ``fspecial('gaussian', n, alpha)`` read as a sampled
    frequency response, :math:`\mathcal{F}^{-1}` is MATLAB ``fsamp2`` and :math:`w_\mathrm{Huang}` the
    2-D window ``fwind1`` builds from ``kaiser(n, 0.5)``. The kernel is not renormalised: its DC gain
    is ``sum(h)`` :math:`\approx 0.9985` for ``n = 41``, as in the toolbox. Because of the
    :math:`(n-1)` the gain exactly at Nyquist is :math:`g_\mathrm{Nyq}^{(n/(n-1))^2}`.

    Parameters
    ----------
    gnyq : float
        MTF gain at Nyquist, ``0 < gnyq < 1``.
    ratio : int
        Resolution ratio (low pixel size / high pixel size), ``>= 1``.
    n : int, default 41
        Kernel size (odd).
    legacy : bool, default False
        Use :math:`n\,f_c/2` instead of :math:`(n-1)\,f_c/2` (toolbox v1.3 and ``LPfilterGauss``).

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64 correlation kernel (for :func:`correlate2d`, replicate border).

    References
    ----------
    Aiazzi et al. 2006, doi:10.14358/PERS.72.5.591; Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315.
    """
    gnyq = float(gnyq)
    if not 0.0 < gnyq < 1.0:
        raise ParameterError("MTF gain at Nyquist out of range", expected="0 < gnyq < 1", got=repr(gnyq),
                             fix="pass the sensor's MTF gain at Nyquist, e.g. 0.3")
    if int(ratio) != ratio or ratio < 1:
        raise ParameterError("ratio must be a positive integer", expected="int >= 1", got=repr(ratio),
                             fix="pass the integer resolution ratio, e.g. 4")
    if int(n) != n or n < 3 or n % 2 == 0:
        raise ParameterError("Kernel size must be an odd integer >= 3", expected="odd n >= 3", got=repr(n),
                             fix="use the toolbox default n=41")
    n = int(n)
    fcut = 1.0 / ratio
    m = n if legacy else n - 1
    alpha = math.sqrt((m * (fcut / 2.0)) ** 2 / (-2.0 * math.log(gnyq)))
    g = _fspecial_gaussian(n, alpha)
    hd = g / g.max()
    h = _fsamp2(hd) * _huang_window(np.kaiser(n, 0.5))
    return np.ascontiguousarray(np.real(h), dtype=np.float64)


def mtf_kernels(gains: Sequence[float], ratio: int, n: int = 41, legacy: bool = False) -> np.ndarray:
    """Stack of :func:`mtf_kernel` for per-band gains.

    Parameters
    ----------
    gains : sequence of float
        MTF gain at Nyquist of each band.
    ratio, n, legacy
        As in :func:`mtf_kernel`.

    Returns
    -------
    numpy.ndarray
        ``(B, n, n)`` float64, one kernel per band (for a depthwise :func:`correlate2d`).
    """
    gains = [float(g) for g in np.atleast_1d(np.asarray(gains, dtype=np.float64))]
    if not gains:
        raise ParameterError("No MTF gains given", expected="one gain per band", got="an empty sequence",
                             fix="pass the sensor's per-band gains")
    cache: dict[float, np.ndarray] = {}
    for g in gains:
        if g not in cache:
            cache[g] = mtf_kernel(g, ratio, n, legacy)
    return np.stack([cache[g] for g in gains])


def lp_filter_gauss_kernel(ratio: int, n: int = 41) -> np.ndarray:
    """Kernel of the toolbox's ``LPfilterGauss`` (PAN equalisation in MTF-GLP, MTF-GLP-HPM, BT-H).

    :func:`mtf_kernel` with the fixed gain 0.3 and the legacy :math:`n\\,f_c/2` width.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64.

    References
    ----------
    Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315.
    """
    return mtf_kernel(0.3, ratio, n, legacy=True)


# --------------------------------------------------------------------------------------------------
# correlation
# --------------------------------------------------------------------------------------------------

def _as_kernel(k: Tensor | np.ndarray, like: Tensor) -> Tensor:
    if isinstance(k, Tensor):
        return k.to(device=like.device, dtype=like.dtype)
    return torch.as_tensor(np.asarray(k), dtype=like.dtype, device=like.device)


def _check_image(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise InputError(f"{name} must be a (C, H, W) tensor", expected="a 3-D torch tensor (C, H, W)",
                         got=f"{type(x).__name__} with shape {tuple(getattr(x, 'shape', ()))}",
                         fix="add a leading band axis with x[None] for a single image")
    if not x.is_floating_point():
        raise InputError(f"{name} must be floating point", expected="float32 or float64",
                         got=str(x.dtype), fix="convert with x.float()")


def correlate2d(x: Tensor, k: Tensor | np.ndarray, mode: str = "replicate", stride: int = 1,
                offset: tuple[int, int] = (0, 0)) -> Tensor:
    r"""2-D correlation (MATLAB ``imfilter``), depthwise, optionally decimating.

    .. math::

        y_c[i, j] = \sum_{u=-r_h}^{r_h} \sum_{v=-r_w}^{r_w} k_c[u + r_h, v + r_w]\,
                    \tilde x_c[i + u, j + v]

    where :math:`\tilde x` is ``x`` extended by :func:`pad` with ``mode``. With ``stride`` ``s`` and
    ``offset`` ``(oy, ox)`` only ``y[:, oy::s, ox::s]`` is returned, computed directly as a strided
    convolution.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)`` float image.
    k : Tensor or numpy.ndarray
        ``(kh, kw)`` or ``(1, kh, kw)`` kernel shared by all channels, or ``(C, kh, kw)`` one kernel
        per channel; ``kh`` and ``kw`` odd. If ``x`` has one channel and ``k`` has ``C`` kernels, the
        single channel is filtered by each kernel (output ``C`` channels), e.g. one PAN by per-band
        MTF kernels.
    mode : str, default "replicate"
        Boundary extension, see :func:`pad`.
    stride : int, default 1
        Decimation step ``s`` (``1``: same-size output).
    offset : tuple of int, default (0, 0)
        Row and column of the first kept sample, ``0 <= oy < H``, ``0 <= ox < W``. For the toolbox's
        ``imresize(., 1/4, 'nearest')`` after the filter use ``stride=4, offset=(2, 2)``.

    Returns
    -------
    Tensor
        ``(C', ceil((H - oy) / s), ceil((W - ox) / s))``, dtype and device of ``x``.
    """
    _check_image(x)
    _check_mode(mode)
    kt = _as_kernel(k, x)
    if kt.dim() not in (2, 3) or kt.shape[-1] % 2 == 0 or kt.shape[-2] % 2 == 0:
        raise ParameterError("Kernel must be (kh, kw) or (C, kh, kw) with odd sizes",
                             expected="odd kernel sizes", got=f"shape {tuple(kt.shape)}",
                             fix="use an odd-sized kernel (pad an even one with a zero row/column)")
    stride = int(stride)
    oy, ox = (int(o) for o in offset)
    c, h, w = x.shape
    if stride < 1:
        raise ParameterError("stride must be >= 1", expected="int >= 1", got=repr(stride),
                             fix="pass stride=1 for a same-size output")
    if not (0 <= oy < h and 0 <= ox < w):
        raise ParameterError("offset outside the image", expected=f"0 <= oy < {h}, 0 <= ox < {w}",
                             got=repr(offset), fix="pass an offset within the first stride cell")
    kh, kw = kt.shape[-2:]
    ry, rx = kh // 2, kw // 2
    if kt.dim() == 3 and kt.shape[0] == 1 and c > 1:
        kt = kt[0]
    if kt.dim() == 2:
        weight, groups = kt.expand(c, kh, kw).unsqueeze(1), c
    elif kt.shape[0] == c:
        weight, groups = kt.unsqueeze(1), c
    elif c == 1:
        weight, groups = kt.unsqueeze(1), 1
    else:
        raise ParameterError("Kernel count does not match the band count",
                             expected=f"{c} kernels (one per band), one shared kernel, or a 1-band image",
                             got=f"{kt.shape[0]} kernels for {c} bands",
                             fix="pass one kernel per band")
    # Only the (virtual, mode-extended) rows/cols the kept outputs read: output m reads rows
    # oy + m*s - ry .. oy + m*s + ry.
    ny, nx = -(-(h - oy) // stride), -(-(w - ox) // stride)
    last_y, last_x = oy + (ny - 1) * stride, ox + (nx - 1) * stride
    xp = _window(x, oy - ry, last_y + ry + 1, ox - rx, last_x + rx + 1, mode)
    out = F.conv2d(xp.unsqueeze(0), weight.contiguous(), stride=stride, groups=groups)
    return out[0]


def fft_size(n: int, multiple: int = 1) -> int:
    """The smallest ``m >= n`` that is a multiple of ``multiple`` and has no prime factor above 5 (FFT
    lengths with a large prime factor are several times slower: 376 = 8 x 47 vs 384 = 2^7 x 3)."""
    m = max(1, -(-n // multiple) * multiple)
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += multiple


@lru_cache(maxsize=8)
def _kernel_spectrum(key: bytes, shape: tuple[int, int], fh: int, fw: int, dtype: torch.dtype) -> Tensor:
    k = np.frombuffer(key, dtype=np.float64).reshape(shape)
    K = torch.zeros((fh, fw), dtype=dtype)
    K[: shape[0], : shape[1]] = torch.as_tensor(k[::-1, ::-1].copy(), dtype=dtype)  # correlation = convolution
    return torch.fft.rfft2(K)                                                  # with the flipped kernel


def correlate2d_fft(x: Tensor, k: Tensor | np.ndarray, mode: str = "replicate") -> Tensor:
    r"""Same-size 2-D correlation of every channel of ``x`` (C, H, W) with one odd-sized kernel, by FFT.

    The tile is extended by ``mode`` (:func:`pad`) and linearly convolved (FFT length of at least the
    extended size, so nothing wraps); the tile mean is taken out first and added back times the
    kernel sum, so the FFT's round-off is relative to the tile's contrast, not its level. The FFT
    runs in float64 whatever ``x``'s dtype: equal to :func:`correlate2d` to ~1e-15 of the contrast,
    i.e. to the last bit of a float32 result except at rare rounding ties. Its cost does not depend on
    the kernel size: 2.2x faster than the 6-term separable form of the 41 x 41 ``LPfilterGauss`` on
    a 1104^2 float32 tile (37 vs 84 ms). The round-off depends on the tile's size (the FFT length),
    so use it for global statistics, not for output pixels that must not depend on the chunking.
    (A float32 FFT is 3x faster still, but its ~1e-7 round-off moved the statistics enough to flip
    the rounding of a few output pixels between chunkings.)

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``, float32 or float64 (the FFT runs in float64 on its device).
    k : Tensor or numpy.ndarray
        ``(kh, kw)``, odd sizes.
    mode : str, default "replicate"
        Boundary extension, see :func:`pad`.

    Returns
    -------
    Tensor
        ``(C, H, W)``, ``x``'s dtype.
    """
    _check_image(x)
    _check_mode(mode)
    kn = np.ascontiguousarray(k.detach().cpu().numpy() if isinstance(k, Tensor) else k, dtype=np.float64)
    if kn.ndim != 2 or kn.shape[0] % 2 == 0 or kn.shape[1] % 2 == 0:
        raise ParameterError("FFT correlation needs one 2-D kernel of odd size", expected="(kh, kw), both odd",
                             got=f"shape {kn.shape}", fix="pass an odd-sized 2-D kernel")
    ry, rx = kn.shape[0] // 2, kn.shape[1] // 2
    H, W = x.shape[-2:]
    x64 = x.to(torch.float64)
    mu = x64.mean(dim=(-2, -1), keepdim=True)
    xp = pad(x64 - mu, ry, ry, rx, rx, mode)
    fh, fw = fft_size(xp.shape[-2]), fft_size(xp.shape[-1])
    spec = _kernel_spectrum(kn.tobytes(), kn.shape, fh, fw, torch.float64).to(x.device)
    y = torch.fft.irfft2(torch.fft.rfft2(xp, s=(fh, fw)) * spec, s=(fh, fw))
    return (y[..., 2 * ry:2 * ry + H, 2 * rx:2 * rx + W] + mu * float(kn.sum())).to(x.dtype)


def correlate_separable(x: Tensor, kv: Tensor | np.ndarray, kh: Tensor | np.ndarray,
                        mode: str = "replicate") -> Tensor:
    r"""Separable correlation: ``kv`` along the rows (vertical) then ``kh`` along the columns.

    Equivalent to :func:`correlate2d` with the outer product ``kv[:, None] * kh[None, :]`` and the same
    ``mode`` (exactly so for every ``mode``: both padding and filtering are separable).

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.
    kv, kh : Tensor or numpy.ndarray
        Odd-length 1-D kernels ``(k,)`` shared by all channels, or ``(C, k)`` one per channel.
    mode : str, default "replicate"
        Boundary extension, see :func:`pad`.

    Returns
    -------
    Tensor
        ``(C, H, W)``.
    """
    _check_image(x)
    _check_mode(mode)
    y = _correlate1d(x, _as_kernel(kv, x), axis=-2, mode=mode)
    return _correlate1d(y, _as_kernel(kh, x), axis=-1, mode=mode)


def _depthwise_1d(k: Tensor, c: int) -> Tensor:
    if k.dim() == 1:
        k = k.expand(c, k.shape[0])
    elif k.dim() != 2 or k.shape[0] != c:
        raise ParameterError("1-D kernel must be (k,) or (C, k)", expected=f"(k,) or ({c}, k)",
                             got=f"shape {tuple(k.shape)}", fix="pass one kernel per band or a shared one")
    return k


def _correlate1d(x: Tensor, k: Tensor, axis: int, mode: str, stride: int = 1, dilation: int = 1,
                 before: int | None = None, after: int | None = None) -> Tensor:
    """Depthwise 1-D correlation of ``(C, H, W)`` along rows (axis -2) or columns (axis -1).

    ``before``/``after`` default to the centred radius ``dilation * (len - 1) // 2`` (odd length).
    """
    c = x.shape[0]
    k = _depthwise_1d(k, c)
    n = k.shape[-1]
    if before is None:
        if n % 2 == 0:
            raise ParameterError("1-D kernel must have odd length", expected="odd length",
                                 got=str(n), fix="use an odd-length kernel")
        before = after = dilation * (n - 1) // 2
    if axis == -2:
        xp = pad(x, before, after, 0, 0, mode)
    else:
        xp = pad(x, 0, 0, before, after, mode)
    span = dilation * (n - 1) + 1
    nout = (xp.shape[axis] - span) // stride + 1
    if n > _MAX_TAP_LOOP:
        if axis == -2:
            weight, st, dl = k.reshape(c, 1, n, 1), (stride, 1), (dilation, 1)
        else:
            weight, st, dl = k.reshape(c, 1, 1, n), (1, stride), (1, dilation)
        return F.conv2d(xp.unsqueeze(0), weight.contiguous(), stride=st, dilation=dl, groups=c)[0]
    shared = bool((k == k[:1]).all())
    if shared and stride == 1 and dilation == 1 and n >= _MIN_TAPS_GEMM:
        return _correlate1d_banded(xp, k[0], axis, nout)
    # Short kernels: multiply-add of strided views, one pass per tap (memory-bound, far faster on CPU
    # than a depthwise (n, 1) conv2d, and never builds a dilated / zero-inserted kernel).

    def tap(u: int) -> Tensor:
        v = xp.narrow(axis, u * dilation, (nout - 1) * stride + 1)
        if stride > 1:
            v = v[:, ::stride, :] if axis == -2 else v[:, :, ::stride]
        return v

    if shared:
        taps = k[0].tolist()
        out = tap(0) * taps[0]
        for u in range(1, n):
            if taps[u] != 0.0:
                out.add_(tap(u), alpha=taps[u])
    else:
        kc = k.reshape(c, n, 1, 1)
        out = tap(0) * kc[:, 0]
        for u in range(1, n):
            out.addcmul_(tap(u), kc[:, u])
    return out


_MAX_TAP_LOOP = 64
#: From this many taps, a shared 1-D kernel (stride 1) is applied as one banded matrix product.
_MIN_TAPS_GEMM = 9
#: Outputs per window of that product.
_GEMM_GROUP = 32


@lru_cache(maxsize=64)
def _band_matrix_1d(taps: tuple[float, ...], group: int) -> np.ndarray:
    n = len(taps)
    A = np.zeros((group + n - 1, group))
    for i in range(group):
        A[i:i + n, i] = taps
    return A


def _correlate1d_banded(xp: Tensor, k: Tensor, axis: int, nout: int) -> Tensor:
    """Valid correlation of the padded ``xp`` with the shared kernel ``k`` along ``axis``, as one matrix
    product: windows of ``_GEMM_GROUP + len(k) - 1`` samples (stride ``_GEMM_GROUP``) copied into a
    contiguous matrix, times the banded matrix of the kernel. Compute-bound instead of one memory pass
    per tap (2-4x faster on the CPU for 17-41 taps). Each output is the same dot product of its own
    window whatever the tile's extent (the band's zeros add exact zeros), so chunked == whole image.
    """
    n = k.shape[-1]
    g = _GEMM_GROUP
    C = xp.shape[0]
    npad = -(-nout // g) * g
    extra = npad - nout
    if extra:
        xp = F.pad(xp, (0, 0, 0, extra) if axis == -2 else (0, extra))
    A = torch.as_tensor(_band_matrix_1d(tuple(float(v) for v in k.tolist()), g), dtype=xp.dtype, device=xp.device)
    G = npad // g
    if axis == -1:
        H = xp.shape[1]
        u = xp.unfold(2, g + n - 1, g).contiguous().view(C * H * G, g + n - 1)
        y = torch.mm(u, A).view(C, H, npad)
        return y[..., :nout] if extra else y
    W = xp.shape[2]
    u = xp.unfold(1, g + n - 1, g).contiguous().view(C * G * W, g + n - 1)
    y = torch.mm(u, A).view(C, G, W, g).transpose(2, 3).reshape(C, npad, W)
    return y[:, :nout] if extra else y


# --------------------------------------------------------------------------------------------------
# MATLAB imresize(x, 1/ratio) (bicubic, antialiased)
# --------------------------------------------------------------------------------------------------

def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel (MATLAB ``imresize`` 'bicubic' uses a = -0.5)."""
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    return np.where(t <= 1, (a + 2) * t3 - (a + 3) * t2 + 1,
                    np.where(t < 2, a * t3 - 5 * a * t2 + 8 * a * t - 4 * a, 0.0))


def imresize_down_weights(ratio: int) -> tuple[np.ndarray, int]:
    r"""Taps of MATLAB ``imresize(x, 1/ratio)`` (bicubic, antialiased) along one axis.

    Output sample ``k`` (0-based) is centred at input position :math:`c_k = r k + (r-1)/2` and is

    .. math::

        y_k = \sum_j w_j\, x_{rk + d_0 + j},\qquad
        w_j \propto \frac{1}{r}\,\mathrm{cubic}\!\left(\frac{c_k - (rk + d_0 + j)}{r}\right),
        \qquad \sum_j w_j = 1,

    the Keys cubic (:math:`a=-0.5`) stretched by ``r`` (support :math:`4r`), zero end taps dropped.

    Parameters
    ----------
    ratio : int
        Integer decimation factor ``r >= 1``.

    Returns
    -------
    weights : numpy.ndarray
        float64 taps (length ``4r`` for even ``r``, ``4r - 1`` for odd ``r``; ``[1.]`` for ``r = 1``).
    d0 : int
        Offset of the first tap relative to ``r k`` (negative).
    """
    r = int(ratio)
    if r != ratio or r < 1:
        raise ParameterError("imresize_down needs an integer ratio", expected="int >= 1", got=repr(ratio),
                             fix="pass the integer resolution ratio")
    if r == 1:
        return np.ones(1), 0
    centre = (r - 1) / 2.0
    d = np.arange(math.floor(centre - 2 * r), math.ceil(centre + 2 * r) + 1)
    w = _cubic((centre - d) / r) / r
    nz = np.flatnonzero(w)  # drop zero end taps only (interior zeros at |t| = 1 must stay)
    d, w = d[nz[0]:nz[-1] + 1], w[nz[0]:nz[-1] + 1]
    return w / w.sum(), int(d[0])


def imresize_down_halo(ratio: int) -> int:
    """Input pixels of context :func:`imresize_down` needs on each side of a block of ``ratio`` pixels.

    For a tile whose first row is a multiple of ``ratio`` away from the image origin, pad the tile with
    this many real pixels on each side; the result then equals the whole-image result.
    """
    w, d0 = imresize_down_weights(ratio)
    right = d0 + len(w) - 1 - (int(ratio) - 1)
    return max(-d0, right, 0)


def imresize_down(x: Tensor, ratio: int, mode: str = "symmetric") -> Tensor:
    r"""MATLAB ``imresize(x, 1/ratio)``: bicubic (:math:`a=-0.5`) with antialiasing, integer ratio.

    Separable strided correlation with the fixed taps of :func:`imresize_down_weights` after padding
    with ``mode`` (MATLAB mirrors out-of-range indices: ``"symmetric"``). Output pixel ``k`` is centred
    at input position :math:`r k + (r-1)/2` (0-based).

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.
    ratio : int
        Decimation factor ``r``.
    mode : str, default "symmetric"
        Boundary extension, see :func:`pad`.

    Returns
    -------
    Tensor
        ``(C, ceil(H / r), ceil(W / r))``.
    """
    _check_image(x)
    _check_mode(mode)
    w, d0 = imresize_down_weights(ratio)
    r = int(ratio)
    if r == 1:
        return x
    k = torch.as_tensor(w, dtype=x.dtype, device=x.device)
    n = len(w)
    y = x
    for axis in (-2, -1):
        size = y.shape[axis]
        nout = -(-size // r)
        before = -d0
        after = max((nout - 1) * r + d0 + n - 1 - (size - 1), 0)
        y = _correlate1d(y, k, axis=axis, mode=mode, stride=r, before=before, after=after)
        # 'after' may exceed what the last output needs by < r samples: trim to ceil(size / r)
        y = y.narrow(axis, 0, nout)
    return y


# --------------------------------------------------------------------------------------------------
# à trous (undecimated) B3-spline low pass
# --------------------------------------------------------------------------------------------------

def atrous_halo(levels: int) -> int:
    """Context needed by :func:`atrous_lowpass` on each side: :math:`\\sum_{j=1}^{L} 2 \\cdot 2^{j-1}`."""
    return 2 * (2 ** int(levels) - 1)


def atrous_lowpass(x: Tensor, levels: int, mode: str = "symmetric") -> Tensor:
    r"""Approximation of the undecimated (à trous) B3-spline wavelet transform after ``levels`` levels.

    Level :math:`j = 1..L` filters the previous approximation separably with
    :math:`h = [1, 4, 6, 4, 1]/16` dilated by :math:`2^{j-1}` (holes, never materialised):

    .. math::

        c_j[i] = \sum_{u=-2}^{2} h[u]\, \tilde c_{j-1}[i + 2^{j-1} u]\quad\text{(rows, then columns)}

    with :math:`\tilde c` the boundary extension by ``mode`` at every level.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.
    levels : int
        Number of levels :math:`L \ge 0` (the toolbox uses :math:`\lceil \log_2 r \rceil`).
    mode : str, default "symmetric"
        Boundary extension, see :func:`pad`.

    Returns
    -------
    Tensor
        ``(C, H, W)`` low-pass approximation :math:`c_L`.

    References
    ----------
    J.-L. Starck, F. Murtagh, "Image restoration with noise suppression using the wavelet transform",
    Astronomy and Astrophysics 288, 342-348, 1994. Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315.
    """
    _check_image(x)
    _check_mode(mode)
    if int(levels) != levels or levels < 0:
        raise ParameterError("levels must be a non-negative integer", expected="int >= 0", got=repr(levels),
                             fix="pass e.g. ceil(log2(ratio))")
    k = torch.as_tensor(B3_SPLINE, dtype=x.dtype, device=x.device)
    y = x
    for j in range(1, int(levels) + 1):
        dil = 2 ** (j - 1)
        y = _correlate1d(y, k, axis=-2, mode=mode, dilation=dil)
        y = _correlate1d(y, k, axis=-1, mode=mode, dilation=dil)
    return y


# --------------------------------------------------------------------------------------------------
# undecimated wavelet low pass of the toolbox (ndwt2_working / indwt2_working, details zeroed)
# --------------------------------------------------------------------------------------------------

def undecimated_lowpass_halo(levels: int) -> int:
    """Context needed by :func:`undecimated_lowpass` on each side: :math:`4L` (``2L`` passes of radius 2).

    A tile carrying at least this many real pixels beyond the part that is kept gives exactly the
    whole-image result there.
    """
    return 4 * int(levels)


def undecimated_lowpass(x: Tensor, levels: int, mode: str = "symmetric") -> Tensor:
    r"""Approximation of the toolbox's undecimated wavelet transform, reconstructed with zero details.

    The reference toolbox (``LPfilterPlusDec`` for GSA, ``AWLP``) decomposes an image with its
    ``ndwt2_working`` (Starck-Murtagh filter bank :math:`h = \sqrt2\,[1, 4, 6, 4, 1]/16`), zeroes every
    detail sub-band and inverts with ``indwt2_working``. With the details zeroed this is a linear
    low pass, computed here exactly, borders included:

    * analysis, :math:`L` times: extend the current approximation by 4 samples per side (``mode``,
      half-sample mirror in the toolbox), correlate separably with :math:`b = [1, 4, 6, 4, 1]/16`
      keeping every fully covered sample, so the approximation *grows* by 4 samples per axis per level
      (its border samples are filtered values of the extension);
    * synthesis, :math:`L` times: correlate separably with :math:`b` keeping only fully covered
      samples (the toolbox's full convolution then centred crop), shrinking by 4 per axis per level.

    The :math:`\sqrt2` factors of the filters and the toolbox's division by 4 per synthesis level
    cancel (unit DC gain). The filter is *not* dilated between levels, so away from the borders the
    result is the correlation with the separable binomial kernel :math:`b^{*2L}`, i.e. the 1-D profile
    :math:`\binom{8L}{k} / 2^{8L}`, :math:`k = 0..8L` (17 taps for :math:`L = 2`); near the borders it
    differs from any single-extension filtering because every analysis level re-extends its own,
    already grown, approximation.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)`` float image.
    levels : int
        Number of decomposition levels :math:`L \ge 0` (the toolbox uses :math:`\lceil\log_2 r\rceil`);
        ``0`` returns ``x``.
    mode : str, default "symmetric"
        Boundary extension of each analysis level, see :func:`pad` (the toolbox: ``"symmetric"``).

    Returns
    -------
    Tensor
        ``(C, H, W)`` low-pass image, dtype and device of ``x``. Local: see
        :func:`undecimated_lowpass_halo`.

    References
    ----------
    J.-L. Starck, J. Fadili, F. Murtagh, "The undecimated wavelet decomposition and its
    reconstruction", IEEE Transactions on Image Processing 16(2), 297-309, 2007,
    doi:10.1109/TIP.2006.887733. Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315.
    """
    _check_image(x)
    _check_mode(mode)
    if int(levels) != levels or levels < 0:
        raise ParameterError("levels must be a non-negative integer", expected="int >= 0", got=repr(levels),
                             fix="pass e.g. ceil(log2(ratio))")
    levels = int(levels)
    k = torch.as_tensor(B3_SPLINE, dtype=x.dtype, device=x.device)
    e = len(B3_SPLINE) - 1  # extension per side, the toolbox's lf - 1
    y = x
    for _ in range(levels):
        y = pad(y, e, e, e, e, mode)
        y = _correlate1d(y, k, axis=-2, mode=mode, before=0, after=0)
        y = _correlate1d(y, k, axis=-1, mode=mode, before=0, after=0)
    for _ in range(levels):
        y = _correlate1d(y, k, axis=-2, mode=mode, before=0, after=0)
        y = _correlate1d(y, k, axis=-1, mode=mode, before=0, after=0)
    return y


@lru_cache(maxsize=32)
def _decimated_lowpass_band(n: int, levels: int, mode: str, ratio: int, phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the 1-D operator of :func:`undecimated_lowpass` on ``n`` samples, picked at the
    decimation positions ``ratio*k + phase`` (half-integer phases average two rows), as a band:
    ``(index (m, K), weight (m, K))`` with ``out[k] = sum_j weight[k, j] * x[index[k, j]]``.

    The operator is separable (each level extends and filters the axes independently), so its 1-D
    matrix is the response to the ``n`` unit impulses; the impulses' values stay dyadic, so it is
    exact in float64.
    """
    k = torch.as_tensor(B3_SPLINE, dtype=torch.float64)
    e = len(B3_SPLINE) - 1
    y = torch.eye(n, dtype=torch.float64)[None]  # column i: the unit impulse at sample i
    for _ in range(levels):  # the row passes of undecimated_lowpass
        y = _correlate1d(pad(y, e, e, 0, 0, mode), k, axis=-2, mode=mode, before=0, after=0)
    for _ in range(levels):
        y = _correlate1d(y, k, axis=-2, mode=mode, before=0, after=0)
    L = y[0].numpy()  # (n out, n in)
    m = n // ratio
    a = int(math.floor(phase + 1e-9))
    rows = L[a::ratio][:m] if abs(phase - a) < 1e-9 else 0.5 * (L[a::ratio][:m] + L[a + 1::ratio][:m])
    nz = rows != 0
    lo = nz.argmax(axis=1)
    hi = n - 1 - nz[:, ::-1].argmax(axis=1)
    K = int((hi - lo).max()) + 1
    lo = np.minimum(lo, n - K)  # keep every window inside the axis (extra columns weigh 0)
    index = lo[:, None] + np.arange(K)[None, :]
    weight = np.take_along_axis(rows, index, axis=1)
    return index, weight


def undecimated_lowpass_decimated(x: Tensor, levels: int, ratio: int, phase: tuple[float, float],
                                  mode: str = "symmetric") -> Tensor:
    r"""``decimate(undecimated_lowpass(x, levels, mode), ratio, phase)`` evaluated only where it is kept.

    :func:`undecimated_lowpass` is separable, so the decimated result is :math:`P_y X P_x^T` with
    :math:`P` the decimated rows of its 1-D operator (a band of ``8 levels + 1`` taps away from the
    borders, exact near them); each axis is one weighted sum of gathered rows / columns in float64.
    This needs about ``(8L+1)(1/r + 1/r^2)`` multiply-adds per input pixel instead of the ``20 L``
    of the undecimated passes. Same values (to float32 rounding) as the two-step form, and each output
    depends only on its own window of samples, in a fixed order, so chunked and whole-image results agree.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)`` with ``H, W`` multiples of ``ratio``.
    levels, mode
        As in :func:`undecimated_lowpass`.
    ratio : int
        Decimation factor.
    phase : (float, float)
        HR position of LR sample 0 per axis (see :func:`geofuse.kernels.resample.decimate`).

    Returns
    -------
    Tensor
        ``(C, H // ratio, W // ratio)``, dtype and device of ``x``.
    """
    _check_image(x)
    _check_mode(mode)
    C, H, W = x.shape
    f64 = dict(dtype=torch.float64, device=x.device)
    iy, wy = (torch.as_tensor(a, device=x.device) if i == 0 else torch.as_tensor(a, **f64) for i, a in
              enumerate(_decimated_lowpass_band(H, int(levels), mode, int(ratio), float(phase[0]))))
    ix, wx = (torch.as_tensor(a, device=x.device) if i == 0 else torch.as_tensor(a, **f64) for i, a in
              enumerate(_decimated_lowpass_band(W, int(levels), mode, int(ratio), float(phase[1]))))
    # rows: one gathered (C, m, W) row set per tap, accumulated in float64 (only the decimated rows are
    # ever float64, never the whole tile); then the columns the same way. Pure torch: runs on x's device.
    acc = x.index_select(1, iy[:, 0]).double().mul_(wy[:, 0][None, :, None])
    for j in range(1, iy.shape[1]):
        acc.add_(x.index_select(1, iy[:, j]).double().mul_(wy[:, j][None, :, None]))
    out = acc.index_select(2, ix[:, 0]).mul_(wx[:, 0][None, None, :])
    for j in range(1, ix.shape[1]):
        out.add_(acc.index_select(2, ix[:, j]).mul_(wx[:, j][None, None, :]))
    return out.to(x.dtype)
