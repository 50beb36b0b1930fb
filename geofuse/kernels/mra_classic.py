"""Classical multi-resolution-analysis (MRA) kernels of the 2015 toolbox (v1.3): HPF, SFIM, Indusion, ATWT.

Pure torch functions on ``(C, H, W)`` tensors (any float dtype, any device). Global quantities (the
per-band PAN equalisation, means and standard deviations) are arguments: they are estimated once over
the whole image by the method's ``estimate`` (see :mod:`geofuse.methods.mra_classic`).

The filters are local, so filtering a tile that carries the ``*_halo`` context and cropping the halo
off gives exactly the whole-image result.

References
----------
G. Vivone, L. Alparone, J. Chanussot, M. Dalla Mura, A. Garzelli, G. A. Licciardi, R. Restaino,
L. Wald, "A Critical Comparison Among Pansharpening Algorithms", IEEE TGRS 53(5), 2565-2586, 2015,
doi:10.1109/TGRS.2014.2361734.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..errors import ParameterError
from .filters import correlate_separable, undecimated_lowpass, undecimated_lowpass_halo
from .mra import EPS
from .resample import apply_polyphase, cascade_taps

__all__ = [
    "box_size",
    "box_lowpass",
    "hpf",
    "sfim",
    "atwt_lowpass",
    "atwt_halo",
    "atwt",
    "CDF9_ANALYSIS",
    "CDF7_SYNTHESIS",
    "is_dyadic",
    "deg9tap",
    "deg9tap_filter",
    "deg9tap_halo",
    "upsampling7tap",
    "upsampling7tap_taps",
    "indusion",
]


# --------------------------------------------------------------------------------------------------
# HPF and SFIM: box-filter low pass
# --------------------------------------------------------------------------------------------------

def box_size(ratio: int) -> int:
    """Side of the HPF/SFIM box filter: ``ratio``, made odd by adding one to an even ratio (5 for 4)."""
    r = int(ratio)
    return r + 1 if r % 2 == 0 else r


def box_lowpass(x: torch.Tensor, ratio: int) -> torch.Tensor:
    r"""Moving average over a :math:`s \times s` box, :math:`s` = :func:`box_size` (replicate border).

    .. math::
        L(x)[i, j] = \frac{1}{s^2} \sum_{|u|, |v| \le (s-1)/2} \tilde x[i + u, j + v]

    Parameters
    ----------
    x : (C, H, W) tensor
    ratio : int

    Returns
    -------
    (C, H, W) tensor
    """
    s = box_size(ratio)
    k = np.full(s, 1.0 / s)
    return correlate_separable(x, k, k, mode="replicate")


def hpf(ms: torch.Tensor, pan: torch.Tensor, scale: torch.Tensor, ratio: int) -> torch.Tensor:
    r"""High-pass filtering (HPF) fusion: the PAN's box-filter high pass added to each band.

    With the PAN equalised to band :math:`b` as :math:`P_b = a_b (P - \mu_P) + \mu_b` and the
    box low pass :math:`L` (unit DC gain, so :math:`P_b - L(P_b) = a_b (P - L(P))`):

    .. math::
        F_b = \widetilde{MS}_b + P_b - L(P_b) = \widetilde{MS}_b + a_b \,(P - L(P))

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    scale : (C,) tensor
        :math:`a_b = \sigma(\widetilde{MS}_b) / \sigma(P)` (global).
    ratio : int

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    P. S. Chavez Jr., S. C. Sides, J. A. Anderson, "Comparison of three different methods to merge
    multiresolution and multispectral data: Landsat TM and SPOT panchromatic", Photogrammetric
    Engineering & Remote Sensing 57(3), 295-303, 1991 (no DOI). Vivone et al. 2015, doi:10.1109/TGRS.2014.2361734.
    """
    detail = pan - box_lowpass(pan, ratio)
    return ms + scale[:, None, None] * detail


def sfim(ms: torch.Tensor, pan: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, ratio: int,
         eps: float = EPS) -> torch.Tensor:
    r"""Smoothing-filter-based intensity modulation (SFIM): each band times PAN / box-filtered PAN.

    .. math::
        P_b = a_b P + o_b,\qquad F_b = \widetilde{MS}_b \, \frac{P_b}{L(P_b) + \epsilon},
        \qquad L(P_b) = a_b L(P) + o_b

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    scale, offset : (C,) tensors
        The global equalisation :math:`a_b = \sigma(\widetilde{MS}_b)/\sigma(P)`,
        :math:`o_b = \mu_b - a_b \mu_P`.
    ratio : int

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    J. G. Liu, "Smoothing Filter-based Intensity Modulation: a spectral preserve image fusion technique
    for improving spatial details", International Journal of Remote Sensing 21(18), 3461-3472, 2000,
    doi:10.1080/014311600750037499. Vivone et al. 2015, doi:10.1109/TGRS.2014.2361734.
    """
    a, o = scale[:, None, None], offset[:, None, None]
    return ms * ((a * pan + o) / (a * box_lowpass(pan, ratio) + o + eps))


# --------------------------------------------------------------------------------------------------
# ATWT: additive à trous wavelet details
# --------------------------------------------------------------------------------------------------

def _levels(ratio: int) -> int:
    return max(1, math.ceil(math.log2(int(ratio))))


def atwt_halo(ratio: int) -> int:
    """HR context of :func:`atwt_lowpass` (``ceil(log2 ratio)`` levels)."""
    return undecimated_lowpass_halo(_levels(ratio))


def atwt_lowpass(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """The undecimated Starck-Murtagh wavelet approximation after ``ceil(log2 ratio)`` levels, details
    zeroed, half-sample mirror borders (:func:`geofuse.kernels.filters.undecimated_lowpass`)."""
    return undecimated_lowpass(x, _levels(ratio), mode="symmetric")


def atwt(ms: torch.Tensor, pan: torch.Tensor, scale: torch.Tensor, ratio: int) -> torch.Tensor:
    r"""Additive à trous wavelet (ATWT) fusion: the wavelet planes of the equalised PAN added to each band.

    The PAN is decomposed with the undecimated B3-spline wavelet transform over
    :math:`L = \lceil \log_2 r \rceil` levels; the sum of its detail planes is :math:`P - c_L(P)`:

    .. math::
        F_b = \widetilde{MS}_b + P_b - c_L(P_b) = \widetilde{MS}_b + a_b\,(P - c_L(P))

    with the per-band equalisation :math:`P_b = a_b (P - \mu_P) + \mu_b` (the toolbox equalises to each
    band instead of the MS luminance of Núñez et al.).

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    scale : (C,) tensor
        :math:`a_b = \sigma(\widetilde{MS}_b) / \sigma(P)` (global).
    ratio : int

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    J. Núñez, X. Otazu, O. Fors, A. Prades, V. Palà, R. Arbiol, "Multiresolution-based image fusion with
    additive wavelet decomposition", IEEE TGRS 37(3), 1204-1211, 1999, doi:10.1109/36.763274.
    Vivone et al. 2015, doi:10.1109/TGRS.2014.2361734.
    """
    return ms + scale[:, None, None] * (pan - atwt_lowpass(pan, ratio))


# --------------------------------------------------------------------------------------------------
# Indusion: 9/7 biorthogonal pyramid (deg9tap / upsampling7tap)
# --------------------------------------------------------------------------------------------------

#: 9-tap low-pass analysis filter (CDF 9/7) used to reduce the PAN by 2 per stage.
CDF9_ANALYSIS = np.array([0.026748757411, -0.016864118443, -0.078223266529, 0.266864118443, 0.602949018236,
                          0.266864118443, -0.078223266529, -0.016864118443, 0.026748757411])
#: 7-tap low-pass synthesis filter (CDF 9/7), scaled by 2 for zero-insertion interpolation (sum 2).
CDF7_SYNTHESIS = 2.0 * np.array([-0.045635881557, -0.028771763114, 0.295635881557, 0.557543526229,
                                 0.295635881557, -0.028771763114, -0.045635881557])


def is_dyadic(ratio: int) -> bool:
    """True for ratios 2, 4, 8, ... (the 9/7 pyramid works by octaves)."""
    r = int(ratio)
    return r >= 2 and (r & (r - 1)) == 0


def _octaves(ratio: int) -> int:
    """Number of octave stages: ``log2`` of the ratio, rounded up for a non-dyadic ratio."""
    return max(1, math.ceil(math.log2(int(ratio))))


@lru_cache(maxsize=None)
def deg9tap_filter(ratio: int) -> np.ndarray:
    r"""The 1-D filter equivalent to the :func:`deg9tap` cascade away from the borders.

    Stage :math:`j = 0..L-1` filters with :data:`CDF9_ANALYSIS` at spacing :math:`2^j` HR pixels, so the
    cascade is :math:`h \ast h^{\uparrow 2} \ast \dots \ast h^{\uparrow 2^{L-1}}` (symmetric, length
    :math:`8 (2^L - 1) + 1`, 25 taps for ratio 4), with :math:`L = \lceil\log_2 r\rceil`.
    """
    g = np.ones(1)
    for j in range(_octaves(ratio)):
        h = np.zeros(8 * 2 ** j + 1)
        h[:: 2 ** j] = CDF9_ANALYSIS
        g = np.convolve(g, h)
    return g


def deg9tap_halo(ratio: int) -> int:
    """HR context of the PAN reduction: the radius of :func:`deg9tap_filter`."""
    return len(deg9tap_filter(ratio)) // 2


def deg9tap(x: torch.Tensor, ratio: int, mode: str = "replicate") -> torch.Tensor:
    r"""The toolbox's ``deg9tap``: :math:`\log_2 r` octaves of 9-tap low pass + decimation by 2.

    Each stage correlates separably with :data:`CDF9_ANALYSIS` (border ``mode``, re-extended at every
    stage) and keeps the odd rows/columns (0-based) at the first stage and the even ones afterwards, so
    the reduced sample :math:`k` sits on HR position :math:`r k + 1` (for any dyadic :math:`r`).
    The toolbox loops ``ratio/2`` times (right for ratios 2 and 4 only); here there are :math:`\log_2 r`
    stages.

    Parameters
    ----------
    x : (C, H, W) tensor
        ``H`` and ``W`` multiples of ``ratio``.
    ratio : int
        A power of two.
    mode : str
        Border rule of every stage (the toolbox: ``"replicate"``).

    Returns
    -------
    (C, H / r, W / r) tensor

    References
    ----------
    M. M. Khan, J. Chanussot, L. Condat, A. Montanvert, "Indusion: fusion of multispectral and
    panchromatic images using the induction scaling technique", IEEE GRSL 5(1), 98-102, 2008,
    doi:10.1109/LGRS.2007.909934.
    """
    if not is_dyadic(ratio):
        raise ParameterError("deg9tap needs a power-of-two ratio", expected="ratio in 2, 4, 8, ...",
                             got=repr(ratio), fix="use the phase-aware reduction (indusion default mode)")
    y = x
    for z in range(_octaves(ratio)):
        y = correlate_separable(y, CDF9_ANALYSIS, CDF9_ANALYSIS, mode=mode)
        s = 1 if z == 0 else 0
        y = y[:, s::2, s::2]
    return y


@lru_cache(maxsize=None)
def _cascade7(R: int) -> np.ndarray:
    """Impulse response of the upsampling7tap cascade for a power-of-two ``R``, centred on the landing
    position ``R k + R // 2`` of the impulse (first stage inserts at odd positions, later at even)."""
    n = 32
    x = np.zeros(n)
    x[n // 2] = 1.0
    for z in range(int(round(math.log2(R)))):
        y = np.zeros(2 * len(x))
        if z == 0:
            y[1::2] = x
        else:
            y[0::2] = x
        x = np.convolve(y, CDF7_SYNTHESIS, mode="same")
    land = R * (n // 2) + R // 2
    nz = np.flatnonzero(np.abs(x) > 0)
    half = int(max(land - nz.min(), nz.max() - land))
    return x[land - half: land + half + 1]


@lru_cache(maxsize=None)
def upsampling7tap_taps(ratio: int, phase: float) -> tuple[np.ndarray, int]:
    r"""Polyphase taps of the upsampling7tap cascade for LR sample ``k`` at HR position ``ratio*k + phase``.

    ``out[ratio*k + j] = sum_m x[k + m] * taps[j, m + M]``. An integer phase uses the cascade for
    ``ratio`` (the toolbox's layout is ``phase = ratio // 2``); a half-integer phase samples the cascade
    for ``2 * ratio`` at the odd offsets.

    Returns
    -------
    taps : ndarray (ratio, 2M+1)
    M : int
    """
    taps = cascade_taps(_cascade7, ratio, phase, "upsampling7tap")
    while taps.shape[1] > 1 and not taps[:, 0].any() and not taps[:, -1].any():
        taps = taps[:, 1:-1]
    return taps, (taps.shape[1] - 1) // 2


def upsampling7tap(x: torch.Tensor, ratio: int, phase: tuple[float, float], mode: str = "circular") -> torch.Tensor:
    r"""The toolbox's ``upsampling7tap`` as a separable polyphase filter, for any integer/half-integer phase.

    :math:`\log_2 r` stages of zero insertion by 2 and the 7-tap filter :data:`CDF7_SYNTHESIS`, folded
    into one polyphase filter per axis (the zero-inserted arrays are never formed). With ``phase =
    (r//2, r//2)`` and ``mode="circular"`` it equals the toolbox's stage-wise circular cascade exactly
    (periodic extension commutes with zero insertion).

    Parameters
    ----------
    x : (C, h, w) tensor
    ratio : int
        A power of two.
    phase : (float, float)
        HR position of LR sample 0 per axis.
    mode : str
        Border rule on the LR samples.

    Returns
    -------
    (C, h * ratio, w * ratio) tensor
    """
    for axis, p in ((0, phase[0]), (1, phase[1])):
        taps, M = upsampling7tap_taps(int(ratio), float(p))
        x = apply_polyphase(x, taps, M, axis, mode)
    return x


def indusion(ms_up: torch.Tensor, pan: torch.Tensor, pan_lr_up: torch.Tensor, lr_scale: torch.Tensor,
             lr_offset: torch.Tensor, hr_scale: torch.Tensor, hr_offset: torch.Tensor) -> torch.Tensor:
    r"""Indusion (induction scaling) detail injection.

    The PAN is reduced to the MS grid with the 9-tap analysis filter (:math:`P_\downarrow`) and
    brought back with the 7-tap synthesis interpolator :math:`U` that also upsamples the MS; both PAN
    versions are equalised to band :math:`b` at their own scale:

    .. math::
        F_b = U(MS_b) + \big(a_b P + o_b\big) - U\big(a'_b P_\downarrow + o'_b\big)

    where :math:`a'_b = \sigma(MS_b)/\sigma(P_\downarrow)`, :math:`o'_b = \mu(MS_b) - a'_b \mu(P_\downarrow)`
    at low resolution and :math:`a_b = \sigma(U(MS_b))/\sigma(P)`, :math:`o_b = \mu(U(MS_b)) - a_b\mu(P)`.
    Since :math:`U` is linear with unit DC gain, :math:`U(a' P_\downarrow + o') = a' U(P_\downarrow) + o'`.

    Parameters
    ----------
    ms_up : (C, H, W) tensor
        :math:`U(MS)`.
    pan : (1, H, W) tensor
    pan_lr_up : (1, H, W) tensor
        :math:`U(P_\downarrow)`.
    lr_scale, lr_offset, hr_scale, hr_offset : (C,) tensors
        The global equalisations :math:`a'_b, o'_b, a_b, o_b`.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    M. M. Khan, J. Chanussot, L. Condat, A. Montanvert, "Indusion: fusion of multispectral and
    panchromatic images using the induction scaling technique", IEEE GRSL 5(1), 98-102, 2008,
    doi:10.1109/LGRS.2007.909934. Vivone et al. 2015, doi:10.1109/TGRS.2014.2361734.
    """
    def col(v):
        return v[:, None, None]

    pan_eq = col(hr_scale) * pan + col(hr_offset)
    pan_lr_eq = col(lr_scale) * pan_lr_up + col(lr_offset)
    return ms_up + pan_eq - pan_lr_eq
