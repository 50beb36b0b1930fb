r"""Hypersharpening kernels: pansharpening methods extended to hyperspectral + multispectral fusion.

Each hyperspectral (HS) band ``b`` gets its own "PAN" from the multispectral image (MSI), either the
MSI band best correlated with it (GSA-HS) or a synthetic image, a least-squares combination of the MSI
bands fitted at the HS resolution (GLP-HS, SFIM-HS; Selva et al. 2015, "Hyper-sharpening: a first
approach on SIM-GA data", doi:10.1109/JSTARS.2015.2440092; Yokoya, Grohnfeldt & Chanussot 2017,
doi:10.1109/MGRS.2016.2637824, section "hypersharpening"):

.. math::

    P_b = \sum_k w_{kb}\, M_k + c_b,\qquad
    (w_b, c_b) = \arg\min \| H_b - \textstyle\sum_k w_{kb} \tilde M_k - c_b \|^2

where :math:`\tilde M_k` is the MSI degraded onto the HS grid. Pure torch functions on ``(C, H, W)``
tiles; the global coefficients come from the methods' ``estimate`` (:mod:`geofuse.methods.hs_simple`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .cs import band_mix


def nearest_upsample(x: Tensor, ratio: int, phase: tuple[float, float] | float) -> Tensor:
    """Nearest-neighbour interpolation of an LR tile onto the HR grid (MATLAB ``imresize(., r, 'nearest')``
    for corner-aligned grids): HR pixel ``i`` takes LR sample ``floor((i - phase) / ratio + 1/2)``."""
    py, px = phase if isinstance(phase, tuple) else (phase, phase)
    C, h, w = x.shape
    dev = x.device
    iy = torch.clamp(torch.floor((torch.arange(h * ratio, device=dev) - py) / ratio + 0.5).long(), 0, h - 1)
    ix = torch.clamp(torch.floor((torch.arange(w * ratio, device=dev) - px) / ratio + 0.5).long(), 0, w - 1)
    return x.index_select(1, iy).index_select(2, ix)


def nearest_halo(ratio: int) -> int:
    """LR context of :func:`nearest_upsample` (one sample)."""
    return 1


def synthetic_pan(msi: Tensor, weights: Tensor, offset: Tensor | None = None) -> Tensor:
    r"""Per-HS-band synthetic images :math:`P_b = \sum_k w_{kb} M_k + c_b`: ``(K, H, W) -> (B, H, W)``.

    ``weights`` is ``(K, B)``, ``offset`` ``(B,)``."""
    out = band_mix(weights.to(msi.dtype), msi)   # fixed summation order: chunked == whole image
    if offset is not None:
        out = out + offset.to(msi.dtype)[:, None, None]
    return out


def glp_hs(hs_up: Tensor, msi: Tensor, msi_low: Tensor, weights: Tensor, gains: Tensor) -> Tensor:
    r"""GLP hypersharpening (MTF-GLP with a synthetic PAN per band, additive injection):

    .. math:: F_b = \hat H_b + g_b\,(P_b - P_b^{L}),\qquad
              P_b - P_b^{L} = \textstyle\sum_k w_{kb}\,(M_k - M_k^{L})

    where :math:`M^L` is the MSI low-passed by the HS PSF, decimated and re-interpolated (the offset
    :math:`c_b` cancels: the filters keep constants), and :math:`g_b = \mathrm{cov}(\hat H_b, P^L_b) /
    \mathrm{var}(P^L_b)` a global gain (Aiazzi et al. 2002, doi:10.1109/TGRS.2002.803623).

    Parameters
    ----------
    hs_up : (B, H, W) the interpolated HS.
    msi, msi_low : (K, H, W) the MSI and its low pass.
    weights : (K, B) synthetic-PAN weights.
    gains : (B,) injection gains.
    """
    detail = synthetic_pan(msi - msi_low, weights)
    return hs_up + gains.to(hs_up.dtype)[:, None, None] * detail


def sfim_hs(hs_up: Tensor, pan: Tensor, pan_low_up: Tensor, floor: Tensor | None = None) -> Tensor:
    r"""SFIM hypersharpening (Liu 2000, doi:10.1080/014311600750037499): :math:`F_b = \hat H_b\, P_b / \hat P^L_b`
    with :math:`\hat P^L_b` the synthetic image built from the degraded MSI and interpolated like the HS.

    ``floor`` (B,) guards the ratio: where :math:`\hat P^L_b` is below it the detail is injected
    additively (:math:`\hat H_b + P_b - \hat P^L_b`) instead of multiplied by a huge gain.
    """
    if floor is None:
        return hs_up * pan / pan_low_up
    f = floor.to(hs_up.dtype)[:, None, None]
    ok = pan_low_up > f
    safe = torch.where(ok, pan_low_up, torch.ones_like(pan_low_up))
    return torch.where(ok, hs_up * pan / safe, hs_up + pan - pan_low_up)


def gsa_hs(hs_up: Tensor, msi: Tensor, alpha: Tensor, hs_mean: Tensor, msi_mean: Tensor, gains: Tensor,
           group: Tensor) -> Tensor:
    r"""GSA hypersharpening (Aiazzi, Baronti & Selva 2007, doi:10.1109/TGRS.2007.901007, per group).

    HS band ``b`` belongs to the group of MSI band ``k = group[b]`` (its best-correlated MSI band). For
    each group an intensity is the regression of that MSI band's low pass on the group's HS bands:

    .. math:: I_k = \sum_{b \in S_k} \alpha_b (\hat H_b - \mu_b),\qquad
              F_b = \hat H_b + g_b\,\big(M_k - \mu(M_k) - I_k\big),\qquad
              g_b = \mathrm{cov}(I_k, \hat H_b) / \mathrm{var}(I_k)

    Parameters
    ----------
    hs_up : (B, H, W) interpolated HS; msi : (K, H, W).
    alpha : (K, B) intensity weights (zero outside each group).
    hs_mean : (B,) means of the interpolated HS; msi_mean : (K,) MSI means.
    gains : (B,); group : (B,) MSI band index of each HS band (any dtype, rounded).
    """
    dt = hs_up.dtype
    centred = hs_up - hs_mean.to(dt)[:, None, None]
    intensity = band_mix(alpha.to(dt).T, centred)   # fixed band order (see cs.band_sum)
    detail = (msi - msi_mean.to(dt)[:, None, None]) - intensity  # (K, H, W)
    idx = torch.round(group).long() if group.is_floating_point() else group.long()
    return hs_up + gains.to(dt)[:, None, None] * detail.index_select(0, idx)


def gaussian_lowpass(msi: Tensor, ratio: int, phase: tuple[float, float], upsample) -> Tensor:
    """The MSI blurred by the HS PSF (Gaussian, FWHM = ratio), decimated at the grid phase and
    re-interpolated with ``upsample`` (a callable LR -> HR): the MTF-GLP low pass of the review's GLP-HS."""
    from .filters import correlate2d

    k, off = gaussian_psf_kernel(ratio, phase)
    return upsample(correlate2d(msi, k, mode="replicate", stride=ratio, offset=off))


def psf_halo(ratio: int) -> int:
    """HR halo of :func:`gaussian_psf_kernel` (default support ``2*ratio``) plus one for a half-integer
    phase."""
    return ratio + 1


def gaussian_psf_kernel(ratio: int, phase: float | tuple[float, float], fwhm: float | None = None,
                        size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Normalised Gaussian PSF (FWHM ``ratio`` HR pixels by default, ``sigma = FWHM / 2.35482``) for
    decimation at HR positions ``ratio*k + phase``, as an odd-sized kernel and its pick offsets.

    The support is ``2*ratio`` samples centred on the (possibly half-integer) phase, as in Yokoya's
    ``gaussian_down_sample`` (doi:10.1109/MGRS.2016.2637824); returns ``(kernel, (oy, ox))`` for
    :func:`geofuse.kernels.filters.correlate2d` with ``stride=ratio``.
    """
    py, px = phase if isinstance(phase, tuple) else (phase, phase)
    sigma = (float(ratio) if fwhm is None else float(fwhm)) / 2.35482
    n = 2 * ratio if size is None else int(size)
    axes, offs = [], []
    for p in (py, px):
        a = int(math.floor(p + 1e-9))
        frac = p - a  # 0 or 0.5
        # sample offsets d (relative to the centre p) covered by the support, as integer taps u = d + frac
        d = np.arange(n) - (n - 1) / 2.0
        if abs(frac) < 1e-9 and n % 2 == 0:
            d = d + 0.5  # an even support on an integer phase: shift by half a pixel (one more tap right)
        u = np.rint(d + frac).astype(int)
        half = int(np.abs(u).max())
        g = np.zeros(2 * half + 1)
        g[u + half] = np.exp(-0.5 * (d / sigma) ** 2)
        axes.append(g)
        offs.append(a)
    k = np.outer(axes[0], axes[1])
    return k / k.sum(), (offs[0], offs[1])
