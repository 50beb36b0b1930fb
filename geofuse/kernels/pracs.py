r"""Partial replacement adaptive component substitution (PRACS) kernels.

The per-pixel fusion (:func:`pracs`), its helpers (:func:`histogram_match`, :func:`bicubic_lowpass`)
are pure torch functions on ``(C, H, W)`` tensors; :func:`pracs_coefficients` turns the global
moments gathered by the method's ``estimate`` (:mod:`geofuse.methods.pracs`) into every regression
and correlation coefficient PRACS needs (plain float64 numpy, the arrays are tiny).

Notation: :math:`\tilde M_b` the MS interpolated onto the PAN grid, :math:`P` the PAN,
:math:`\mathcal L(x) = \mathrm{imresize}(\mathrm{imresize}(x, 1/r), r)` (bicubic down with
antialiasing, bicubic up), :math:`\mu, \sigma` global means and standard deviations (N - 1),
:math:`\rho(\cdot,\cdot)` the global correlation coefficient.

References
----------
J. Choi, K. Yu, Y. Kim, "A new adaptive component-substitution-based satellite image fusion by using
partial replacement", IEEE TGRS 49(1), 295-309, 2011, doi:10.1109/TGRS.2010.2051674.
"""

from __future__ import annotations

import numpy as np
import torch

from .cs import band_mix
from .filters import imresize_down
from .resample import upsample

__all__ = ["bicubic_lowpass", "histogram_match", "pracs", "pracs_coefficients"]

#: Pixels per slab of :func:`pracs` on the CPU.
SLAB_PIXELS = 32768


def bicubic_lowpass(x: torch.Tensor, ratio: int) -> torch.Tensor:
    r"""MATLAB ``imresize(imresize(x, 1/r), r)``: bicubic reduction (antialiased) and bicubic expansion.

    .. math::

        \mathcal L(x) = \uparrow_r^{\mathrm{cubic}}\left(\downarrow_r^{\mathrm{cubic, aa}} x\right)

    Both resizes centre LR sample ``k`` on HR position :math:`r k + (r-1)/2` and mirror the image at its
    borders (half-sample symmetric), as MATLAB's ``imresize``.

    Parameters
    ----------
    x : (C, H, W) tensor
        ``H`` and ``W`` multiples of ``ratio``; a tile must start a multiple of ``ratio`` away from the
        image origin.
    ratio : int

    Returns
    -------
    (C, H, W) tensor
    """
    c = (ratio - 1) / 2.0
    return upsample(imresize_down(x, ratio), ratio, (c, c), "bicubic", "symmetric")


def histogram_match(ms: torch.Tensor, ms_mean: torch.Tensor, scale: torch.Tensor,
                    pan_mean: torch.Tensor) -> torch.Tensor:
    r"""The MS bands matched to the PAN's mean and standard deviation, negative values set to 0.

    .. math::

        \hat M_b = \max\left(0,\ (\tilde M_b - \mu_{M_b})\,\frac{\sigma_P}{\sigma_{M_b}} + \mu_P\right)

    Parameters
    ----------
    ms : (C, H, W) tensor
    ms_mean, scale : (C,) tensors
        :math:`\mu_{M_b}` and :math:`\sigma_P / \sigma_{M_b}`.
    pan_mean : (1,) tensor

    Returns
    -------
    (C, H, W) tensor
    """
    return ((ms - ms_mean[:, None, None]) * scale[:, None, None] + pan_mean.reshape(1, 1, 1)).clamp(min=0)


def pracs(ms: torch.Tensor, pan: torch.Tensor, *, ms_mean, scale, pan_mean, cc, lint, lcoef, dmean, w,
          c_int) -> torch.Tensor:
    r"""PRACS fusion of one tile with the global coefficients of :func:`pracs_coefficients`.

    .. math::

        \hat M &= \text{histogram\_match}(\tilde M), \qquad
        I^h_b = c_b P + (1 - c_b) \hat M_b,\qquad
        I'_b = a_{0b} + \textstyle\sum_j a_{jb} \hat M_j, \\
        \delta_b &= I^h_b - I'_b - (\mu_{I^h_b} - \mu_{I'_b}),\qquad
        L_b = 1 - \left|1 - \rho(I_L, \tilde M_b)\,\frac{\tilde M_b}{I'_b}\right|, \\
        F_b &= \tilde M_b + w_b\, L_b\, \delta_b

    with :math:`c_b = \rho(I_L, \hat M_b)` the partial replacement weights, :math:`I_L` the regression
    of :math:`\mathcal L(P)` on :math:`[1, \hat M]`, :math:`a_{\cdot b}` the regression of
    :math:`\mathcal L(I^h_b)` on :math:`[1, \hat M]`, and the global injection gain
    :math:`w_b = \beta\, \rho(I'_b, \tilde M_b)\, \sigma_{M_b} / \overline{\sigma_M}`. A zero
    :math:`I'_b` is replaced by a tiny value of the same sign (the toolbox would give Inf).

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated onto the PAN grid.
    pan : (1, H, W) tensor
    ms_mean, scale, pan_mean
        Histogram matching, see :func:`histogram_match`.
    cc, lint, dmean, w, c_int : (C,) tensors
        :math:`c_b`, :math:`a_{0b}`, :math:`\mu_{I^h_b} - \mu_{I'_b}`, :math:`w_b`,
        :math:`\rho(I_L, \tilde M_b)`.
    lcoef : (C, C) tensor
        Row ``b``: :math:`a_{1..C, b}`.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    Choi, Yu, Kim 2011, doi:10.1109/TGRS.2010.2051674.
    """
    def col(v):
        return v[:, None, None]

    def fuse(ms, pan):
        hm = histogram_match(ms, ms_mean, scale, pan_mean)
        i_h = col(cc) * pan + col(1 - cc) * hm
        i_lp = col(lint) + band_mix(lcoef.T, hm)
        delta = i_h - i_lp - col(dmean)
        tiny = torch.finfo(i_lp.dtype).tiny
        safe = torch.where(i_lp.abs() < tiny, torch.where(i_lp < 0, -tiny, tiny), i_lp)
        local = 1 - (1 - col(c_int) * ms / safe).abs()
        return ms + col(w) * local * delta

    H, W = ms.shape[1:]
    rows = max(1, SLAB_PIXELS // max(W, 1)) if ms.device.type == "cpu" else H
    if rows >= H:
        return fuse(ms, pan)
    # every operation is elementwise: slabs of rows (whose temporaries stay in the cache) give the
    # same values as the whole tile
    out = torch.empty_like(ms)
    for r0 in range(0, H, rows):
        out[:, r0:r0 + rows] = fuse(ms[:, r0:r0 + rows], pan[:, r0:r0 + rows])
    return out


def pracs_coefficients(mean: np.ndarray, cov: np.ndarray, pan_mean: float, beta: float) -> dict[str, np.ndarray]:
    r"""All PRACS coefficients from the global moments of ``z = [M~ (C), M^ (C), L(P), L(M^) (C)]``.

    Every image PRACS regresses or correlates is linear in these, so one pass of moments suffices:

    .. math::

        \alpha &= \Sigma_{\hat M\hat M}^{-1}\Sigma_{\hat M, \mathcal L(P)},\qquad
        I_L = \alpha_0 + \alpha^\top \hat M,\qquad
        c_b = \frac{(\Sigma_{\hat M\hat M}\alpha)_b}{\sqrt{\alpha^\top\Sigma_{\hat M\hat M}\alpha\
              \Sigma_{\hat M_b\hat M_b}}}, \\
        a_{\cdot b} &= c_b\,\alpha + (1 - c_b)\,\Sigma_{\hat M\hat M}^{-1}\Sigma_{\hat M,
              \mathcal L(\hat M_b)}\quad(\text{since } \mathcal L(I^h_b) = c_b\mathcal L(P) +
              (1-c_b)\mathcal L(\hat M_b)),

    intercepts from the means, and the correlations with :math:`\tilde M_b` from
    :math:`\Sigma_{\hat M, \tilde M}`.

    Parameters
    ----------
    mean : (3C + 1,) ndarray
    cov : (3C + 1, 3C + 1) ndarray
        Sample covariance (N - 1) of ``z``.
    pan_mean : float
        :math:`\mu_P`.
    beta : float
        Injection scale :math:`\beta` (0.95 for 11-bit data in the toolbox).

    Returns
    -------
    dict
        ``cc, lint, lcoef, dmean, w, c_int`` as in :func:`pracs` (float64).
    """
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    C = (mean.size - 1) // 3
    ms, hm, pl, hl = slice(0, C), slice(C, 2 * C), 2 * C, slice(2 * C + 1, 3 * C + 1)
    sxx = cov[hm, hm]

    def solve(b):
        try:
            return np.linalg.solve(sxx, b)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(sxx, b, rcond=None)[0]

    alpha = solve(cov[hm, pl])
    var_il = alpha @ sxx @ alpha
    var_hm = np.diag(sxx)
    cc = (sxx @ alpha) / np.sqrt(var_il * var_hm)
    lcoef = (cc[:, None] * alpha[None, :] + (1 - cc)[:, None] * solve(cov[hm, hl]).T)  # row b
    ymean = cc * mean[pl] + (1 - cc) * mean[hl]
    lint = ymean - lcoef @ mean[hm]
    mean_ilp = lint + lcoef @ mean[hm]
    mean_ih = cc * pan_mean + (1 - cc) * mean[hm]
    var_ms = np.diag(cov[ms, ms])
    std_ms = np.sqrt(var_ms)
    s_hm_ms = cov[hm, ms]  # [j, b] = cov(M^_j, M~_b)
    cov_ilp_ms = np.einsum("bj,jb->b", lcoef, s_hm_ms)
    var_ilp = np.einsum("bj,jk,bk->b", lcoef, sxx, lcoef)
    w = beta * cov_ilp_ms / np.sqrt(var_ilp * var_ms) * std_ms / std_ms.mean()
    c_int = (alpha @ s_hm_ms) / np.sqrt(var_il * var_ms)
    return {"cc": cc, "lint": lint, "lcoef": lcoef, "dmean": mean_ih - mean_ilp, "w": w, "c_int": c_int}
