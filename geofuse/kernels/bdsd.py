"""Band-dependent spatial-detail (BDSD) kernels: injection and the small gain solvers.

The per-pixel injection is a pure torch function on ``(C, H, W)`` tensors. The gains come from normal
equations accumulated over the whole image (or over each ``S x S`` block) by the method's ``estimate``
(:mod:`geofuse.methods.bdsd`); the tiny solves of those equations are plain float64 numpy here.

Notation (reduced scale, Wald-like): :math:`\\tilde M_b` the MS interpolated onto the PAN grid,
:math:`M^{o}_b = \\mathrm{imresize}(\\tilde M_b, 1/r)` (bicubic, antialiased), its MTF-filtered
version :math:`M^{L}_b = h_b \\star M^{o}_b` (same LR grid), :math:`P^{L} = (h_P \\star P)\\downarrow_r`,
and the design matrix :math:`H_d = [M^{L}_1, \\dots, M^{L}_C, P^{L}]` (one row per LR pixel).

References
----------
A. Garzelli, F. Nencini, L. Capobianco, "Optimal MMSE pan sharpening of very high resolution
multispectral images", IEEE TGRS 46(1), 228-236, 2008, doi:10.1109/TGRS.2007.907604.

G. Vivone, "Robust band-dependent spatial-detail approaches for panchromatic sharpening", IEEE TGRS
57(9), 6421-6433, 2019, doi:10.1109/TGRS.2019.2900581.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

from .cs import band_mix

__all__ = ["bdsd", "bdsd_blocks", "bdsd_gains", "bdsd_pc_gains", "block_edges"]


def bdsd(ms: torch.Tensor, pan: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""BDSD detail injection with one gain matrix.

    .. math::

        F_b = \tilde M_b + \sum_{c=1}^{C} \gamma_{c,b}\, \tilde M_c + \gamma_{C+1,b}\, P

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated onto the PAN grid.
    pan : (1, H, W) tensor
    gamma : (C + 1, C) tensor
        Column ``b`` holds band ``b``'s weights on ``[MS_1 .. MS_C, PAN]`` (:func:`bdsd_gains`).

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    Garzelli et al. 2008, doi:10.1109/TGRS.2007.907604.
    """
    g = gamma.to(ms.dtype)
    C = ms.shape[0]
    return ms + band_mix(g[:C], ms) + g[C][:, None, None] * pan


def bdsd_blocks(ms: torch.Tensor, pan: torch.Tensor, gamma: torch.Tensor, row_block: torch.Tensor,
                col_block: torch.Tensor) -> torch.Tensor:
    r"""Block-local BDSD: :func:`bdsd` with the gains of the block each pixel belongs to.

    .. math::

        F_b(i, j) = \tilde M_b(i, j) + \sum_{c} \gamma^{(k(i), l(j))}_{c,b}\, \tilde M_c(i, j)
                    + \gamma^{(k(i), l(j))}_{C+1,b}\, P(i, j)

    Parameters
    ----------
    ms : (C, H, W) tensor
    pan : (1, H, W) tensor
    gamma : (nby, nbx, C + 1, C) tensor
        Gains per block of the image's block grid.
    row_block, col_block : (H,) and (W,) integer tensors
        Non-decreasing block index of every row / column of the tile.

    Returns
    -------
    (C, H, W) tensor
    """
    out = torch.empty_like(ms)
    rk, rn = torch.unique_consecutive(row_block, return_counts=True)
    ck, cn = torch.unique_consecutive(col_block, return_counts=True)
    y0 = 0
    for by, ny in zip(rk.tolist(), rn.tolist()):
        x0 = 0
        for bx, nx in zip(ck.tolist(), cn.tolist()):
            sl = (slice(None), slice(y0, y0 + ny), slice(x0, x0 + nx))
            out[sl] = bdsd(ms[sl], pan[sl], gamma[by, bx])
            x0 += nx
        y0 += ny
    return out


def block_edges(n: int, size: int) -> np.ndarray:
    """Start indices (and the end ``n``) of the blocks of ``size`` samples along an axis of ``n``.

    Blocks are aligned to the image origin. A remainder of at least half a block is a block of its own
    (as MATLAB's ``blockproc`` does); a smaller remainder joins the last full block, so that no block is
    too small for its least-squares fit. ``size <= 0`` or ``size >= n``: one block.
    """
    if size <= 0 or size >= n:
        return np.array([0, n])
    nb, rem = divmod(n, size)
    edges = list(range(0, nb * size + 1, size))
    if rem:
        if 2 * rem >= size:
            edges.append(n)
        else:
            edges[-1] = n
    return np.array(edges)


def _gram_rhs(sums: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Split raw sums of ``z z^T`` with ``z = [M^L (C), P^L, M^o (C)]`` into ``H_d^T H_d`` and the
    right-hand sides ``H_d^T (M^o_b - M^L_b)`` (one column per band)."""
    gram = sums[:C + 1, :C + 1]
    rhs = sums[:C + 1, C + 1:] - sums[:C + 1, :C]
    return gram, rhs


def bdsd_gains(sums: np.ndarray, C: int) -> np.ndarray:
    r"""Unconstrained BDSD gains from the accumulated normal equations.

    .. math::

        \gamma_b = (H_d^\top H_d)^{-1} H_d^\top \left(M^{o}_b - M^{L}_b\right)

    Parameters
    ----------
    sums : (..., 2C + 1, 2C + 1) ndarray
        Raw sums :math:`\sum z z^\top` over the valid LR pixels (of the image or of each block), with
        :math:`z = [M^{L}_1..M^{L}_C, P^{L}, M^{o}_1..M^{o}_C]`.
    C : int
        Number of bands.

    Returns
    -------
    (..., C + 1, C) ndarray
        float64 gains; a singular system (e.g. a constant block) gets the least-norm solution.
    """
    sums = np.asarray(sums, dtype=np.float64)
    lead = sums.shape[:-2]
    flat = sums.reshape((-1,) + sums.shape[-2:])
    out = np.zeros((flat.shape[0], C + 1, C))
    for i, s in enumerate(flat):
        gram, rhs = _gram_rhs(s, C)
        try:
            out[i] = np.linalg.solve(gram, rhs)
        except np.linalg.LinAlgError:
            out[i] = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return out.reshape(lead + (C + 1, C))


def _sqrt_factor(gram: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A, b`` with ``||A g - b||^2 = g^T G g - 2 h^T g + const`` (Cholesky, eigen-fallback)."""
    try:
        L = np.linalg.cholesky(gram)
        return L.T, np.linalg.solve(L, rhs)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(gram)
        keep = w > max(w.max(), 0.0) * 1e-13
        s = np.sqrt(w[keep])
        return s[:, None] * V[:, keep].T, (V[:, keep].T @ rhs) / s[:, None]


def bdsd_pc_gains(sums: np.ndarray, C: int) -> np.ndarray:
    r"""BDSD-PC gains: the BDSD least squares with physical constraints, per band.

    With :math:`H = [P^{L}, M^{L}_1, \dots, M^{L}_C]`,

    .. math::

        \gamma_b = \arg\min_{\gamma} \left\| H\gamma - (M^{o}_b - M^{L}_b) \right\|^2
        \quad\text{s.t.}\quad \gamma_{P} \ge 0,\ \gamma_{c} \le 0\ (c = 1..C),

    solved exactly from the normal equations: with :math:`H^\top H = R^\top R` the problem is
    :math:`\min \|R\gamma - R^{-\top} H^\top y\|^2`, and the sign flip :math:`u = D\gamma`,
    :math:`D = \mathrm{diag}(1, -1, \dots, -1)` makes it a non-negative least squares
    (Lawson-Hanson active set, :func:`scipy.optimize.nnls`).

    Parameters
    ----------
    sums : (2C + 1, 2C + 1) ndarray
        Raw sums as in :func:`bdsd_gains`.
    C : int

    Returns
    -------
    (C + 1, C) ndarray
        Gains in the order ``[MS_1 .. MS_C, PAN]`` (as :func:`bdsd` takes them).

    References
    ----------
    G. Vivone, IEEE TGRS 57(9), 2019, doi:10.1109/TGRS.2019.2900581.
    """
    gram, rhs = _gram_rhs(np.asarray(sums, dtype=np.float64), C)
    perm = np.r_[C, np.arange(C)]  # PAN first
    gram, rhs = gram[np.ix_(perm, perm)], rhs[perm]
    A, b = _sqrt_factor(gram, rhs)
    D = np.r_[1.0, -np.ones(C)]
    out = np.zeros((C + 1, C))
    for k in range(C):
        u, _ = nnls(A * D[None, :], b[:, k], maxiter=50 * (C + 1))
        g = D * u
        out[:C, k], out[C, k] = g[1:], g[0]
    return out
