"""Component-substitution (CS) kernels: pure torch functions on (C, H, W) tensors.

Global quantities (weights, gains, means) are arguments: they are estimated once over the whole image
by the method's ``estimate`` (see :mod:`geofuse.methods`).
"""

from __future__ import annotations

import torch

__all__ = ["band_mean", "band_mix", "band_sum", "gsa"]


def band_sum(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The (weighted) sum over bands, :math:`\sum_b w_b x_b`, as a (1, H, W) tensor.

    Accumulated band by band (elementwise adds in a fixed order), so every pixel's value is the same
    whatever the tile's shape: ``torch.sum``/``mean`` over the band axis and ``einsum`` (BLAS) pick
    their summation order from the tensor's size and layout, which made the last pixels of a tile
    differ by one ulp between chunked and whole-image runs for 8-band images.
    """
    acc = x[0:1] * weights[0] if weights is not None else x[0:1].clone()
    for b in range(1, x.shape[0]):
        acc = acc + (x[b:b + 1] * weights[b] if weights is not None else x[b:b + 1])
    return acc


def band_mean(x: torch.Tensor) -> torch.Tensor:
    """The band mean as a (1, H, W) tensor, with the fixed summation order of :func:`band_sum`."""
    return band_sum(x) / x.shape[0]


def band_mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""``out_b = sum_c matrix[c, b] x_c`` for a (C, B) matrix: (B, H, W), summed in a fixed band order
    (shape-independent, see :func:`band_sum`)."""
    acc = matrix[0][:, None, None] * x[0:1]
    for c in range(1, x.shape[0]):
        acc = acc + matrix[c][:, None, None] * x[c:c + 1]
    return acc


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
    # I0 accumulated band by band from (MS_b - mu_b) * alpha_b (the order of band_sum), without forming
    # the centred (C, H, W) copy
    intensity = (ms[0:1] - ms_mean[0]) * alpha[0]
    for b in range(1, ms.shape[0]):
        intensity = intensity + (ms[b:b + 1] - ms_mean[b]) * alpha[b]
    detail = (pan - pan_mean.reshape(1, 1, 1)).sub_(intensity)
    return (gains[:, None, None] * detail).add_(ms)
