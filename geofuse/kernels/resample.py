"""Upsampling and decimation between a low- and a high-resolution grid, for any sub-pixel phase.

Grid convention (see :mod:`geofuse.grid`): low-resolution (LR) sample ``k`` sits at high-resolution (HR)
index position ``ratio * k + phase`` (HR pixel ``i`` has its centre at ``i``). Corner-aligned products
have ``phase = (ratio - 1) / 2``; the reference toolbox's ``interp23tap`` and 'nearest' decimation
assume ``phase = ratio // 2`` (SPEC section 3).

The interpolators are separable polyphase FIR filters: for each of the ``ratio`` output phases one
short 1-D filter is applied to the LR samples (multiply-adds of shifted views, float32), and the phases
are interleaved. The zero-inserted array is never formed.

References
----------
B. Aiazzi, L. Alparone, S. Baronti, A. Garzelli, "Context-driven fusion of high spatial and spectral
resolution images based on oversampled multiresolution analysis", IEEE TGRS 40(10), 2002,
doi:10.1109/TGRS.2002.803623 (the 23-tap interpolator).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..errors import ParameterError

# Half of the 23-tap half-band filter (Aiazzi et al. 2002): the odd-indexed coefficients, index 0 = centre.
_CDF23_HALF = (0.5, 0.305334091185, 0.0, -0.072698593239, 0.0, 0.021809577942, 0.0, -0.005192756653, 0.0,
               0.000807762146, 0.0, -0.000060081482)

INTERPOLATORS = ("interp23tap", "bicubic", "lanczos3")


def _base23() -> np.ndarray:
    half = 2.0 * np.asarray(_CDF23_HALF)
    return np.concatenate([half[:0:-1], half])  # 23 taps, symmetric, sum 2


def _is_pow2(r: int) -> bool:
    return r >= 1 and (r & (r - 1)) == 0


@lru_cache(maxsize=None)
def _cascade_response(R: int) -> np.ndarray:
    """Impulse response of the interp23tap cascade for ratio ``R`` (a power of two).

    Returns ``g`` with ``g[c + u]`` the response at HR offset ``u`` from the landing position of the
    impulse (``c = len(g)//2``). Passes: zero insertion x2 (first pass at odd positions, later passes at
    even ones) followed by the 23-tap filter.
    """
    base = _base23()
    n_lr = 64
    x = np.zeros(n_lr)
    c0 = n_lr // 2
    x[c0] = 1.0
    for z in range(int(math.log2(R))):
        y = np.zeros(2 * len(x))
        if z == 0:
            y[1::2] = x
        else:
            y[0::2] = x
        # symmetric kernel: correlation == convolution; the array is long enough for no wrap-around
        x = np.convolve(y, base, mode="same")
    land = R * c0 + R // 2
    nz = np.nonzero(np.abs(x) > 0)[0]
    half = int(max(land - nz.min(), nz.max() - land))
    return x[land - half: land + half + 1]


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def _lanczos3(t: np.ndarray) -> np.ndarray:
    return np.where(np.abs(t) < 3, np.sinc(t) * np.sinc(t / 3.0), 0.0)


def cascade_taps(response, ratio: int, phase: float, name: str = "the cascade") -> np.ndarray:
    """Polyphase taps of a dyadic interpolation cascade, for an integer or half-integer phase.

    ``response(R)`` gives the cascade's impulse response for ratio ``R`` (centred on the landing
    position of the impulse, as :func:`_cascade_response`). An integer phase samples the cascade for
    ``ratio``; a half-integer phase samples the cascade for ``2 * ratio`` at the odd offsets.
    Returns ``taps`` (ratio, 2M+1) with ``out[ratio*k + j] = sum_m x[k + m] * taps[j, m + M]``.
    """
    twice = 2 * phase
    if not _is_pow2(ratio) or abs(twice - round(twice)) > 1e-9:
        raise ParameterError(f"{name} needs a power-of-two ratio and an integer or half-integer phase",
                             expected="ratio in 2, 4, 8, ... and phase k/2", got=f"ratio={ratio}, phase={phase}",
                             fix="use interpolation='lanczos3' or 'bicubic' for this grid")
    R = ratio if abs(phase - round(phase)) < 1e-9 else 2 * ratio
    g = response(R)
    c = len(g) // 2
    M = int(math.ceil(c / R)) + 1
    taps = np.zeros((ratio, 2 * M + 1))
    for j in range(ratio):
        d = (j - phase) / ratio
        for m in range(-M, M + 1):
            u = round(R * (d - m))
            if -c <= u <= c:
                taps[j, m + M] = g[c + u]
    return taps


@lru_cache(maxsize=None)
def polyphase_taps(ratio: int, phase: float, kind: str = "interp23tap") -> tuple[np.ndarray, int]:
    """Polyphase taps of the LR -> HR interpolator.

    Parameters
    ----------
    ratio : int
        Upsampling factor.
    phase : float
        HR position of LR sample 0 (see module docstring).
    kind : {"interp23tap", "bicubic", "lanczos3"}
        ``interp23tap`` needs a power-of-two ratio and an integer or half-integer phase (a
        half-integer phase uses the cascade for ``2 * ratio`` and keeps every other sample).

    Returns
    -------
    taps : ndarray, shape (ratio, 2M+1)
        ``out[ratio*k + j] = sum_m x[k + m] * taps[j, m + M]``.
    M : int
        One-sided support in LR samples.
    """
    if kind not in INTERPOLATORS:
        raise ParameterError("Unknown interpolator", expected=" / ".join(INTERPOLATORS), got=repr(kind),
                             fix="use interpolation='interp23tap'")
    deltas = [(j - phase) / ratio for j in range(ratio)]  # fractional LR offset of each output phase
    if kind == "interp23tap":
        taps = cascade_taps(_cascade_response, ratio, phase, "interp23tap")
        M = (taps.shape[1] - 1) // 2
    else:
        fn, support = (_cubic, 2) if kind == "bicubic" else (_lanczos3, 3)
        M = support + 1
        m = np.arange(-M, M + 1)
        taps = np.stack([fn(m - d) for d in deltas])
        taps /= taps.sum(axis=1, keepdims=True)
    # trim all-zero outer columns symmetrically
    while taps.shape[1] > 1 and not taps[:, 0].any() and not taps[:, -1].any():
        taps = taps[:, 1:-1]
    return taps, (taps.shape[1] - 1) // 2


def upsample_halo(ratio: int, phase: tuple[float, float] | float, kind: str = "interp23tap") -> int:
    """LR samples of context needed on each side of a tile to upsample it exactly."""
    ph = phase if isinstance(phase, tuple) else (phase, phase)
    return max(polyphase_taps(ratio, float(p), kind)[1] for p in ph)


#: Input samples per group of the banded matrix product in :func:`apply_polyphase`.
POLYPHASE_GROUP = 8


@lru_cache(maxsize=64)
def _band_matrix(taps_key: bytes, ratio: int, K: int, group: int) -> np.ndarray:
    """(group + K - 1, ratio * group) matrix: column ``ratio*i + j`` holds phase ``j``'s taps at row ``i``."""
    taps = np.frombuffer(taps_key, dtype=np.float64).reshape(ratio, K)
    A = np.zeros((group + K - 1, ratio * group))
    for i in range(group):
        for j in range(ratio):
            A[i:i + K, ratio * i + j] = taps[j]
    return A


def apply_polyphase(x: torch.Tensor, taps: np.ndarray, M: int, axis: int, mode: str) -> torch.Tensor:
    """Upsample ``x`` (C, H, W) along ``axis`` (0 = rows, 1 = columns) by the polyphase filter ``taps``
    (ratio x (2M+1): row j gives output phase j from LR samples -M..M), with border rule ``mode``.

    The padded input is cut into overlapping windows of ``POLYPHASE_GROUP + 2M`` samples (a strided
    view, stride ``POLYPHASE_GROUP``), and each window is multiplied by one small banded matrix whose
    columns are the taps of the ``ratio * POLYPHASE_GROUP`` outputs it produces, already interleaved.
    One matrix product per axis replaces a multiply-add per tap over the whole tile (3-4x faster on
    the CPU, measured on 4 x 256^2 -> 1024^2 tiles). Every output is the same dot product of its
    ``2M+1`` inputs whatever the tile's size (the zero entries of the band add exact zeros), so chunked
    and whole-image results agree.
    """
    from .filters import pad

    ratio, K = taps.shape
    C, H, W = x.shape
    n = H if axis == 0 else W
    g = POLYPHASE_GROUP
    n_pad = -(-n // g) * g
    xp = pad(x, M, M, 0, 0, mode) if axis == 0 else pad(x, 0, 0, M, M, mode)
    if n_pad > n:  # whole groups; the extra outputs are dropped below
        extra = (0, 0, 0, n_pad - n) if axis == 0 else (0, n_pad - n)
        xp = torch.nn.functional.pad(xp, extra)
    A = torch.as_tensor(_band_matrix(np.ascontiguousarray(taps, dtype=np.float64).tobytes(), ratio, K, g),
                        dtype=x.dtype, device=x.device)
    G = n_pad // g
    # the windows are copied into one contiguous (rows, g + 2M) matrix before the product, so that
    # every tile takes the same GEMM path (a strided view would reach BLAS with another leading dim)
    if axis == 1:
        u = xp.unfold(2, g + K - 1, g).contiguous().view(C * H * G, g + K - 1)
        y = torch.mm(u, A).view(C, H, n_pad * ratio)
        return y[..., :n * ratio] if n_pad > n else y
    u = xp.unfold(1, g + K - 1, g).contiguous().view(C * G * W, g + K - 1)
    y = torch.mm(u, A).view(C, G, W, ratio * g).transpose(2, 3).reshape(C, n_pad * ratio, W)
    return y[:, :n * ratio] if n_pad > n else y


def _upsample_axis(x: torch.Tensor, ratio: int, phase: float, kind: str, mode: str, axis: int) -> torch.Tensor:
    """One axis of the polyphase interpolator (:func:`apply_polyphase` with :func:`polyphase_taps`)."""
    taps, M = polyphase_taps(ratio, float(phase), kind)
    return apply_polyphase(x, taps, M, axis, mode)


def upsample(x: torch.Tensor, ratio: int, phase: tuple[float, float] | float, kind: str = "interp23tap",
             mode: str = "symmetric") -> torch.Tensor:
    """Interpolate an LR tile ``(C, h, w)`` onto the HR grid ``(C, h*ratio, w*ratio)``.

    ``phase`` is ``(phase_y, phase_x)`` or one value for both axes. ``mode`` is the border rule at the
    tile's sides (``"circular"`` reproduces the toolbox's interp23tap at image borders).

    With ``kind="interp23tap"`` and ``phase=ratio//2`` this equals the reference toolbox's
    ``interp23tap`` (SPEC section 3) except that ratio 8 gets 3 passes (x8), not 4.
    """
    if ratio == 1:
        return x
    py, px = phase if isinstance(phase, tuple) else (phase, phase)
    y = _upsample_axis(x, ratio, py, kind, mode, 0)
    return _upsample_axis(y, ratio, px, kind, mode, 1)


def decimation_kernel(kernel: np.ndarray, phase: tuple[float, float]) -> tuple[np.ndarray, tuple[int, int]]:
    """Fold a half-integer decimation phase into a 2-D filter.

    Decimating ``correlate(x, kernel)`` at HR positions ``ratio*k + phase`` (per axis): an integer phase
    is a plain strided pick; a half-integer phase averages the two neighbouring samples, which is the
    same as correlating with ``kernel`` convolved with ``[1/2, 1/2]`` and picking at ``floor(phase)``.

    Returns the (possibly grown, still odd-sized) kernel and the integer pick offsets ``(oy, ox)``.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 2:
        k = k[None]
    offs = []
    for axis, p in zip((1, 2), phase):
        if abs(p - round(p)) < 1e-9:
            offs.append(int(round(p)))
            continue
        if abs(2 * p - round(2 * p)) > 1e-9:
            raise ParameterError("Decimation phase must be an integer or a half-integer", expected="k or k+1/2",
                                 got=str(p), fix="align the grids (see geofuse.grid)")
        # out at a=floor(p): 0.5*(f[a] + f[a+1]) -> new kernel k'[s] = 0.5*(k[s-1] + k[s-2]), size n+2
        n = k.shape[axis]
        shape = list(k.shape)
        shape[axis] = n + 2
        k2 = np.zeros(shape)
        sl1 = [slice(None)] * 3
        sl2 = [slice(None)] * 3
        sl1[axis] = slice(1, n + 1)
        sl2[axis] = slice(2, n + 2)
        k2[tuple(sl1)] += 0.5 * k
        k2[tuple(sl2)] += 0.5 * k
        k = k2
        offs.append(int(math.floor(p)))
    return (k[0] if np.ndim(kernel) == 2 else k), (offs[0], offs[1])


def decimate(x: torch.Tensor, ratio: int, phase: tuple[float, float] | float) -> torch.Tensor:
    """Pick the samples at HR positions ``ratio*k + phase`` (half-integer phases average two samples)."""
    py, px = phase if isinstance(phase, tuple) else (phase, phase)
    for axis, p in ((1, py), (2, px)):
        n = x.shape[axis] // ratio
        a = int(math.floor(p + 1e-9))
        if abs(p - a) < 1e-9:
            x = x.narrow(axis, a, x.shape[axis] - a)[(slice(None),) * axis + (slice(None, None, ratio),)]
            x = x.narrow(axis, 0, n)
        else:
            lo = x.narrow(axis, a, x.shape[axis] - a)[(slice(None),) * axis + (slice(None, None, ratio),)]
            hi = x.narrow(axis, a + 1, x.shape[axis] - a - 1)[(slice(None),) * axis + (slice(None, None, ratio),)]
            x = 0.5 * (lo.narrow(axis, 0, n) + hi.narrow(axis, 0, n))
    return x
