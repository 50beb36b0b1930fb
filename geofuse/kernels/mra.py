"""Multi-resolution-analysis (MRA) kernels: pure torch functions on (C, H, W) tensors."""

from __future__ import annotations

import torch

EPS = 2.220446049250313e-16  # MATLAB eps, added to denominators as the toolbox does


def hpm(ms: torch.Tensor, pan_eq: torch.Tensor, pan_lp: torch.Tensor, eps: float = EPS,
        floor: torch.Tensor | None = None, max_gain: float | None = None) -> torch.Tensor:
    r"""High-pass modulation (multiplicative injection).

    .. math::
        F_b = \widetilde{MS}_b \, \frac{P_b}{P_{L,b} + \epsilon}
            = \widetilde{MS}_b + g_b \, (P_b - P_{L,b}), \qquad
        g_b = \frac{\widetilde{MS}_b}{P_{L,b} + \epsilon}

    The ratio is only meaningful for positive radiances, and the per-band equalisation of the PAN can
    bring :math:`P_{L,b}` near zero or below it (dark water, shadows), where the ratio explodes. Two
    guards, both off by default (the reference toolbox's behaviour):

    * ``floor`` (one value per band): where :math:`P_{L,b}` is below it, the detail is injected
      additively (:math:`g_b = 1`);
    * ``max_gain``: the local gain is clipped to ``[0, max_gain]``.

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan_eq : (C, H, W) tensor
        PAN equalised to each band.
    pan_lp : (C, H, W) tensor
        Low-pass version of ``pan_eq`` matched to each band's MTF.

    References
    ----------
    G. Vivone, R. Restaino, J. Chanussot, "Full scale regression-based injection coefficients for
    panchromatic sharpening", IEEE TIP 27(7), 2018, doi:10.1109/TIP.2018.2819501.
    """
    if floor is None and max_gain is None:
        return ms * (pan_eq / (pan_lp + eps))
    # the same elementwise operations as ms + clamp(where(pan_lp > floor, ms / (pan_lp + eps), 1)) *
    # (pan_eq - pan_lp), done in place on the one (C, H, W) gain tensor
    gain = ms / (pan_lp + eps)
    if floor is not None:
        gain.masked_fill_(~(pan_lp > floor[:, None, None]), 1.0)
    if max_gain is not None:
        gain.clamp_(0.0, max_gain)
    return gain.mul_(pan_eq - pan_lp).add_(ms)
