"""Generalized-Laplacian-pyramid (MTF-GLP family) and AWLP kernels: pure torch functions on (C, H, W).

The low-pass PAN of the GLP methods (MTF-matched filter, decimation, re-interpolation) and the global
quantities (equalisation scale and offset, injection gains, regression constants) are arguments: the
per-chunk low pass is built by the method's ``apply`` and the statistics are estimated once over the
whole image by its ``estimate`` (see :mod:`geofuse.methods.mra_glp`).
"""

from __future__ import annotations

import torch

from .cs import band_mean
from .mra import EPS

__all__ = ["glp", "glp_fs", "glp_hpm_r", "awlp"]


def glp(ms: torch.Tensor, pan_eq: torch.Tensor, pan_lp: torch.Tensor) -> torch.Tensor:
    r"""Additive GLP injection with unit gains (MTF-GLP).

    .. math::
        F_b = \widetilde{MS}_b + P_b - P_{L,b}

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan_eq : (C, H, W) tensor
        PAN equalised to each band, :math:`P_b = a_b (P - \mu_P) + \mu_b`.
    pan_lp : (C, H, W) tensor
        :math:`P_b` low-passed with band ``b``'s MTF-matched filter, decimated and re-interpolated.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    B. Aiazzi, L. Alparone, S. Baronti, A. Garzelli, M. Selva, "MTF-tailored multiscale fusion of
    high-resolution MS and Pan imagery", Photogrammetric Engineering & Remote Sensing 72(5), 591-596,
    2006, doi:10.14358/PERS.72.5.591.
    """
    return ms + (pan_eq - pan_lp)


def glp_fs(ms: torch.Tensor, pan: torch.Tensor, pan_lp: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    r"""GLP with full-scale regression injection gains (MTF-GLP-FS).

    .. math::
        F_b = \widetilde{MS}_b + g_b\,(P - P_{L,b}),\qquad
        g_b = \frac{\operatorname{cov}(\widetilde{MS}_b, P)}{\operatorname{cov}(P_{L,b}, P)}

    The gain is the ratio of the two regressions of the full-scale PAN on the interpolated band and on
    its own MTF-filtered version: it estimates, at full scale, the detail gain that maps PAN details to
    band details (Vivone et al. 2018). No PAN equalisation.

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    pan_lp : (C, H, W) tensor
        The PAN low-passed with each band's MTF-matched filter, decimated and re-interpolated.
    gains : (C,) tensor
        :math:`g_b`, estimated globally.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    G. Vivone, R. Restaino, J. Chanussot, "Full scale regression-based injection coefficients for
    panchromatic sharpening", IEEE Transactions on Image Processing 27(7), 3418-3431, 2018,
    doi:10.1109/TIP.2018.2819501.
    """
    return ms + gains[:, None, None] * (pan - pan_lp)


def glp_hpm_r(ms: torch.Tensor, pan: torch.Tensor, pan_lp: torch.Tensor, cb: torch.Tensor,
              eps: float = EPS) -> torch.Tensor:
    r"""GLP high-pass modulation with a regression-based offset (MTF-GLP-HPM-R), toolbox form.

    .. math::
        F_b = \widetilde{MS}_b\,\frac{P + c_b}{P_{L,b} + c_b + \epsilon},\qquad
        c_b = \frac{\mu_b}{g_b} - \mu_P,\qquad
        g_b = \frac{\operatorname{cov}(\widetilde{MS}_b, P_{L,b})}{\operatorname{var}(P_{L,b})}

    :math:`g_b (P_{L,b} + c_b)` is the least-squares fit of the band on the low-pass PAN (slope
    :math:`g_b`, mean :math:`\mu_b`), so the modulation ratio is taken between two PAN versions brought
    to the band's radiometry by regression rather than by mean/std matching.

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    pan_lp : (C, H, W) tensor
        The PAN low-passed with each band's MTF-matched filter, decimated and re-interpolated.
    cb : (C,) tensor
        :math:`c_b`, estimated globally.
    eps : float
        Added to the denominator (MATLAB ``eps``, as the toolbox).

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    G. Vivone, R. Restaino, J. Chanussot, "Full scale regression-based injection coefficients for
    panchromatic sharpening", IEEE Transactions on Image Processing 27(7), 3418-3431, 2018,
    doi:10.1109/TIP.2018.2819501.
    """
    c = cb[:, None, None]
    return ms * ((pan + c) / (pan_lp + c + eps))


def awlp(ms: torch.Tensor, details: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    r"""Additive wavelet luminance proportional injection (AWLP).

    .. math::
        F_b = \widetilde{MS}_b + D_b\,\frac{\widetilde{MS}_b}{\frac1C\sum_c \widetilde{MS}_c + \epsilon}

    The PAN details :math:`D_b = P_b - \mathrm{LP}(P_b)` (undecimated wavelet low pass of the PAN
    equalised to band ``b``) are injected in proportion to the band's share of the mean intensity, which
    preserves the spectral angle of the interpolated MS.

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    details : (C, H, W) or (1, H, W) tensor
        The PAN details per band.
    eps : float
        Added to the mean intensity (MATLAB ``eps``, as the toolbox).

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    X. Otazu, M. Gonzalez-Audicana, O. Fors, J. Nunez, "Introduction of sensor spectral response into
    image fusion methods. Application to wavelet-based methods", IEEE TGRS 43(10), 2376-2385, 2005,
    doi:10.1109/TGRS.2005.856106.
    """
    intensity = band_mean(ms)
    return ms + details * (ms / (intensity + eps))
