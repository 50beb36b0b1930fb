"""Component-substitution (CS) kernels: pure torch functions on (C, H, W) tensors.

Global quantities (weights, gains, means) are arguments: they are estimated once over the whole image
by the method's ``estimate`` (see :mod:`geofuse.methods`).
"""

from __future__ import annotations

import torch


def gsa(ms: torch.Tensor, pan: torch.Tensor, alpha: torch.Tensor, gains: torch.Tensor, ms_mean: torch.Tensor,
        pan_mean: torch.Tensor) -> torch.Tensor:
    r"""Gram–Schmidt adaptive (GSA) detail injection.

    .. math::
        I_0 = \sum_b \alpha_b (\widetilde{MS}_b - \mu_b), \qquad
        F_b = \widetilde{MS}_b + g_b \, (P - \mu_P - I_0)

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    alpha : (C,) tensor
        Intensity weights from the least-squares fit of the low-pass PAN on the LR MS.
    gains : (C,) tensor
        :math:`g_b = \mathrm{cov}(I_0, \widetilde{MS}_b) / \mathrm{var}(I_0)`.
    ms_mean : (C,) tensor
        Global band means :math:`\mu_b` of the interpolated MS.
    pan_mean : (1,) tensor
        Global PAN mean.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    B. Aiazzi, S. Baronti, M. Selva, "Improving component substitution pansharpening through
    multivariate regression of MS+Pan data", IEEE TGRS 45(10), 2007, doi:10.1109/TGRS.2007.901007.
    """
    centred = ms - ms_mean[:, None, None]
    intensity = torch.einsum("c,chw->hw", alpha, centred)[None]
    detail = pan - pan_mean.reshape(1, 1, 1) - intensity
    return ms + gains[:, None, None] * detail
