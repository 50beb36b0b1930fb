"""Multi-resolution-analysis (MRA) kernels: pure torch functions on (C, H, W) tensors."""

from __future__ import annotations

import torch

EPS = 2.220446049250313e-16  # MATLAB eps, added to denominators as the toolbox does


def hpm(ms: torch.Tensor, pan_eq: torch.Tensor, pan_lp: torch.Tensor, eps: float = EPS,
        floor: torch.Tensor | None = None) -> torch.Tensor:
    r"""High-pass modulation (multiplicative injection).

    .. math:: F_b = \widetilde{MS}_b \, \frac{P_b}{P_{L,b} + \epsilon}

    The ratio is only meaningful for positive radiances. With ``floor`` (one value per band, e.g. 1 %
    of the band mean), pixels whose low-pass PAN is below the floor (dark water, shadows where the
    equalised PAN can reach zero or go negative) get additive injection
    :math:`F_b = \widetilde{MS}_b + P_b - P_{L,b}` instead of an exploding ratio. ``floor=None`` is
    the reference toolbox's behaviour.

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
    out = ms * (pan_eq / (pan_lp + eps))
    if floor is not None:
        out = torch.where(pan_lp > floor[:, None, None], out, ms + pan_eq - pan_lp)
    return out
