"""Classic component-substitution (CS) kernels: IHS, Brovey, PCA, GS and haze-corrected Brovey (BT-H).

Pure torch functions on ``(C, H, W)`` tensors. Every method of this family replaces an intensity
component :math:`I` (a linear combination of the interpolated MS bands) by the PAN equalised to it,

.. math::
    P_\\mathrm{eq} = s\\,P + o ,

and differs only in how :math:`I` is formed and how :math:`P_\\mathrm{eq} - I` is injected (additively
with per-band gains, or multiplicatively). The global quantities (the equalisation ``scale`` :math:`s`
and ``offset`` :math:`o`, weights, gains, band means, haze values) are arguments: the methods'
``estimate`` computes them once over the whole image (:mod:`geofuse.methods.cs_classic`).
"""

from __future__ import annotations


import torch

from .cs import band_mean, band_sum
from .filters import correlate2d_fft, lp_filter_gauss_kernel
from .mra import EPS, hpm

__all__ = ["EPS", "ihs", "brovey", "pca", "gs", "bt_h", "lp_filter_gauss", "lp_filter_gauss_radius"]

VIVONE_2015 = "10.1109/TGRS.2014.2361734"


def _vec(x: torch.Tensor) -> torch.Tensor:
    """A (C,) / (1,) / 0-d tensor as a (C, 1, 1) broadcastable one."""
    return x.reshape(-1, 1, 1)


def _equalised(pan: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    return _vec(scale) * pan + _vec(offset)


def ihs(ms: torch.Tensor, pan: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    r"""Generalised IHS (fast additive IHS): the intensity is the band mean.

    .. math::
        I = \frac{1}{C}\sum_b \widetilde{MS}_b, \qquad
        F_b = \widetilde{MS}_b + (s P + o - I)

    with :math:`s = \sigma_I / \sigma_P` and :math:`o = \mu_I - s \mu_P` (the PAN matched to the mean
    and standard deviation of :math:`I`, global statistics).

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    scale, offset : (1,) tensors
        The PAN equalisation :math:`s`, :math:`o`.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    T.-M. Tu, S.-C. Su, H.-C. Shyu, P. S. Huang, "A new look at IHS-like image fusion methods",
    Information Fusion 2(3), 2001, doi:10.1016/S1566-2535(01)00036-7; Vivone et al. 2015,
    doi:10.1109/TGRS.2014.2361734.
    """
    intensity = band_mean(ms)
    return ms + (_equalised(pan, scale, offset) - intensity)


def brovey(ms: torch.Tensor, pan: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, eps: float = EPS,
           floor: torch.Tensor | None = None, max_gain: float | None = None) -> torch.Tensor:
    r"""Brovey transform: multiplicative substitution of the band-mean intensity.

    .. math::
        I = \frac{1}{C}\sum_b \widetilde{MS}_b, \qquad
        F_b = \widetilde{MS}_b \, \frac{s P + o}{I + \epsilon}
            = \widetilde{MS}_b + \frac{\widetilde{MS}_b}{I + \epsilon}\,(s P + o - I)

    with the PAN matched to the mean and standard deviation of :math:`I`. ``floor`` / ``max_gain``
    guard the ratio where :math:`I` is near zero (see :func:`geofuse.kernels.mra.hpm`; off by
    default, the toolbox's behaviour).

    Parameters
    ----------
    ms : (C, H, W) tensor
    pan : (1, H, W) tensor
    scale, offset : (1,) tensors
    eps : float, default MATLAB ``eps``
    floor : (1,) tensor, optional
        Below it the detail is injected additively (gain 1).
    max_gain : float, optional
        The local gain :math:`\widetilde{MS}_b / I` is clipped to ``[0, max_gain]``.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    A. R. Gillespie, A. B. Kahle, R. E. Walker, "Color enhancement of highly correlated images. II.
    Channel ratio and 'chromaticity' transformation techniques", Remote Sens. Environ. 22(3), 1987,
    doi:10.1016/0034-4257(87)90088-5; Vivone et al. 2015, doi:10.1109/TGRS.2014.2361734.
    """
    intensity = band_mean(ms)
    return hpm(ms, _equalised(pan, scale, offset), intensity, eps=eps, floor=floor, max_gain=max_gain)


def pca(ms: torch.Tensor, pan: torch.Tensor, pc1: torch.Tensor, ms_mean: torch.Tensor, scale: torch.Tensor,
        offset: torch.Tensor) -> torch.Tensor:
    r"""PCA substitution: the first principal component is replaced by the matched PAN.

    .. math::
        PC_1 = \sum_b v_b (\widetilde{MS}_b - \mu_b), \qquad
        F_b = \widetilde{MS}_b + v_b \, (s P + o - PC_1)

    where :math:`v` is the unit eigenvector of the largest eigenvalue :math:`\lambda_1` of the global
    band covariance, and :math:`s = \sqrt{\lambda_1} / \sigma_P`, :math:`o = -s \mu_P` (the PAN matched
    to :math:`PC_1`, whose mean is 0). This is the forward transform, the substitution and the inverse
    transform (:math:`V` orthogonal) in one step; the mean restoration of the toolbox is implied.

    Parameters
    ----------
    ms : (C, H, W) tensor
    pan : (1, H, W) tensor
    pc1 : (C,) tensor
        :math:`v` (sign fixed by the estimate).
    ms_mean : (C,) tensor
        Global band means :math:`\mu_b`.
    scale, offset : (1,) tensors

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    P. S. Chavez Jr., A. Y. Kwarteng, "Extracting spectral contrast in Landsat Thematic Mapper image
    data using selective principal component analysis", PE&RS 55(3), 1989; Vivone et al. 2015,
    doi:10.1109/TGRS.2014.2361734.
    """
    component = band_sum(ms - _vec(ms_mean), pc1)
    return ms + _vec(pc1) * (_equalised(pan, scale, offset) - component)


def gs(ms: torch.Tensor, pan: torch.Tensor, gains: torch.Tensor, ms_mean: torch.Tensor, scale: torch.Tensor,
       offset: torch.Tensor) -> torch.Tensor:
    r"""Gram–Schmidt spectral sharpening (mode "average": the intensity is the band mean).

    .. math::
        I_0 = \frac{1}{C}\sum_b (\widetilde{MS}_b - \mu_b), \qquad
        F_b = \widetilde{MS}_b + g_b \, (s P + o - I_0), \qquad
        g_b = \frac{\mathrm{cov}(I_0, \widetilde{MS}_b)}{\mathrm{var}(I_0)}

    with the PAN matched to :math:`I_0` (:math:`s = \sigma_{I_0} / \sigma_P`, :math:`o = -s\mu_P`). The
    toolbox's final mean equalisation is implied (the injected term has zero global mean).

    Parameters
    ----------
    ms : (C, H, W) tensor
    pan : (1, H, W) tensor
    gains : (C,) tensor
        :math:`g_b`.
    ms_mean : (C,) tensor
    scale, offset : (1,) tensors

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    C. A. Laben, B. V. Brower, "Process for enhancing the spatial resolution of multispectral imagery
    using pan-sharpening", US Patent 6,011,875, 2000; B. Aiazzi, S. Baronti, M. Selva, IEEE TGRS 45(10),
    2007, doi:10.1109/TGRS.2007.901007.
    """
    i0 = band_mean(ms - _vec(ms_mean))
    return ms + _vec(gains) * (_equalised(pan, scale, offset) - i0)


def bt_h(ms: torch.Tensor, pan: torch.Tensor, alpha: torch.Tensor, haze: torch.Tensor, scale: torch.Tensor,
         offset: torch.Tensor, eps: float = EPS, floor: torch.Tensor | None = None,
         max_gain: float | None = None) -> torch.Tensor:
    r"""Haze-corrected Brovey transform with regression weights (BT-H).

    .. math::
        I = \sum_b \alpha_b (\widetilde{MS}_b - L_b), \qquad
        F_b = \max(\widetilde{MS}_b - L_b, 0) \, \frac{s P + o}{I + \epsilon} + L_b

    :math:`L_b` is the haze (path radiance) of band :math:`b`, :math:`\alpha` the least-squares
    weights (no constant) of the MS on the low-passed PAN, and the PAN is matched to :math:`I` with
    the statistics of its low-passed version (:math:`s = \sigma_I / \sigma_{P_L}`,
    :math:`o = \mu_I - s\mu_{P_L}`). ``floor`` / ``max_gain`` guard the ratio as in :func:`brovey`.

    Parameters
    ----------
    ms : (C, H, W) tensor
    pan : (1, H, W) tensor
    alpha : (C,) tensor
    haze : (C,) tensor
        :math:`L_b`.
    scale, offset : (1,) tensors
    eps, floor, max_gain
        As in :func:`brovey`.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    S. Lolli, L. Alparone, A. Garzelli, G. Vivone, "Haze correction for contrast-based multispectral
    pansharpening", IEEE GRSL 14(12):2255-2259, 2017 (IEEE Xplore document 8091124); Vivone et al. 2021,
    doi:10.1109/MGRS.2020.3019315.
    """
    dehazed = ms - _vec(haze)
    intensity = band_sum(dehazed, alpha)
    out = hpm(dehazed.clamp_min(0.0), _equalised(pan, scale, offset), intensity, eps=eps, floor=floor,
              max_gain=max_gain)
    return out + _vec(haze)


# --------------------------------------------------------------------------------------------------
# LPfilterGauss (the PAN low pass of BT-H and the MTF-GLP equalisation), by FFT


def lp_filter_gauss_radius(ratio: int) -> int:
    """Half-width of the LPfilterGauss kernel (41 x 41: 20 pixels)."""
    return lp_filter_gauss_kernel(ratio).shape[0] // 2


def lp_filter_gauss(x: torch.Tensor, ratio: int) -> torch.Tensor:
    r"""The toolbox's ``LPfilterGauss``: Gaussian low pass with gain 0.3 at the Nyquist frequency of the
    low-resolution grid (41 x 41 window design), replicate border.

    .. math::
        y = h_{0.3} \star x

    evaluated by FFT in float64 (:func:`geofuse.kernels.filters.correlate2d_fft`). The methods use it
    only inside ``estimate`` (global means, deviations and regressions), never for output pixels, so its tiling-dependent round-off cannot make chunked and
    whole-image outputs differ beyond what the statistics' own float64 merge order does.

    Parameters
    ----------
    x : (C, H, W) tensor
    ratio : int

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315.
    """
    return correlate2d_fft(x, lp_filter_gauss_kernel(int(ratio)), mode="replicate")
