"""Morphological filters and the half-gradient morphological pyramid (MF pansharpening).

Pure torch functions on ``(C, H, W)`` tensors, any float dtype and device. Every operator here is local
(finite receptive field, see :func:`half_gradient_lowpass_halo`), so a tile carrying that much real
context gives exactly the whole-image result once the context is cropped.

References
----------
R. Restaino, G. Vivone, M. Dalla Mura, J. Chanussot, "Fusion of multispectral and panchromatic images
based on morphological operators", IEEE Transactions on Image Processing 25(6), 2882-2895, 2016,
doi:10.1109/TIP.2016.2556944.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .filters import pad

__all__ = ["dilate_cross", "erode_cross", "half_gradient_smooth", "bilinear_up2", "half_gradient_lowpass",
           "half_gradient_lowpass_halo", "mf_levels"]


def _cross_neighbours(x: Tensor) -> list[Tensor]:
    """The pixel and its 4-neighbours (structuring element ``[0 1 0; 1 1 1; 0 1 0]``), edge-replicated.

    Replicating the edge is the same as ignoring the outside (MATLAB ``imdilate`` pads with ``-inf``,
    ``imerode`` with ``+inf``): the replicated value is the centre pixel, which is in the set anyway.
    """
    h, w = x.shape[-2:]
    xp = pad(x, 1, 1, 1, 1, "replicate")
    return [xp[..., 1:h + 1, 1:w + 1], xp[..., 0:h, 1:w + 1], xp[..., 2:h + 2, 1:w + 1],
            xp[..., 1:h + 1, 0:w], xp[..., 1:h + 1, 2:w + 2]]


def _cross_reduce(x: Tensor, op) -> Tensor:
    """``op`` (elementwise max or min) over the pixel and its four cross neighbours."""
    n = _cross_neighbours(x)
    out = n[0]
    for v in n[1:]:
        out = op(out, v)
    return out


def dilate_cross(x: Tensor) -> Tensor:
    r"""Grey-level dilation by the 3x3 cross: :math:`\delta(x)_{ij} = \max(x_{ij}, x_{i\pm1,j}, x_{i,j\pm1})`.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.

    Returns
    -------
    Tensor
        ``(C, H, W)``; outside pixels are ignored (MATLAB ``imdilate``).
    """
    return _cross_reduce(x, torch.maximum)


def erode_cross(x: Tensor) -> Tensor:
    r"""Grey-level erosion by the 3x3 cross: :math:`\varepsilon(x)_{ij} = \min(x_{ij}, x_{i\pm1,j}, x_{i,j\pm1})`.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.

    Returns
    -------
    Tensor
        ``(C, H, W)``; outside pixels are ignored (MATLAB ``imerode``).
    """
    return _cross_reduce(x, torch.minimum)


def half_gradient_smooth(x: Tensor) -> Tensor:
    r"""Half-gradient morphological smoothing, the analysis filter of the MF pyramid.

    .. math::
        \rho^-(x) = x - \varepsilon(x),\quad \rho^+(x) = \delta(x) - x,\quad
        \psi(x) = x - \tfrac12\left(\rho^-(x) - \rho^+(x)\right) = \tfrac12\left(\delta(x) + \varepsilon(x)\right)

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.

    Returns
    -------
    Tensor
        ``(C, H, W)``. Commutes with every affine map :math:`a x + b` (also for :math:`a < 0`).
    """
    n = _cross_neighbours(x)
    hi, lo = n[0], n[0]
    for v in n[1:]:
        hi = torch.maximum(hi, v)
        lo = torch.minimum(lo, v)
    return 0.5 * (hi + lo)


def _bilinear_axis(x: Tensor, n_out: int, placement: float, axis: int) -> Tensor:
    """Linear interpolation along ``axis`` of samples placed at ``placement + 2k`` onto ``0 .. n_out-1``
    (clamped beyond the first and last sample)."""
    n_in = x.shape[axis]
    c = (torch.arange(n_out, dtype=torch.float64) - placement) / 2.0
    i0 = torch.floor(c)
    f = (c - i0).to(x.dtype)
    i0 = i0.long()
    a = i0.clamp(0, n_in - 1).to(x.device)
    b = (i0 + 1).clamp(0, n_in - 1).to(x.device)
    shape = [1] * x.dim()
    shape[axis] = n_out
    f = f.to(x.device).reshape(shape)
    return x.index_select(axis, a) * (1 - f) + x.index_select(axis, b) * f


def bilinear_up2(x: Tensor, out_shape: tuple[int, int], placement: tuple[float, float] = (0.5, 0.5)) -> Tensor:
    r"""Bilinear enlargement by 2 with explicit sample placement.

    Input sample ``k`` sits at output coordinate :math:`p + 2k` (per axis); output pixel ``i`` is the
    linear interpolation at input coordinate :math:`(i - p)/2`, clamped to the first/last sample.
    :math:`p = 0.5` is MATLAB ``imresize(x, 2, 'bilinear')`` (no antialiasing when enlarging, mirrored
    borders, which for a 2-tap kernel is the clamp).

    Parameters
    ----------
    x : Tensor
        ``(C, h, w)``.
    out_shape : tuple of int
        ``(H, W)``, about ``(2h, 2w)``.
    placement : tuple of float
        :math:`p` per axis.

    Returns
    -------
    Tensor
        ``(C, H, W)``.
    """
    y = _bilinear_axis(x, out_shape[0], placement[0], -2)
    return _bilinear_axis(y, out_shape[1], placement[1], -1)


def mf_levels(ratio: int) -> int:
    """Decimation steps of the MF pyramid, :math:`\\lceil\\log_2 r\\rceil` (the toolbox's ``lev - 1``)."""
    return max(0, math.ceil(math.log2(ratio))) if ratio > 1 else 0


def _lattice(levels: int, shift: int) -> list[tuple[int, float]]:
    """Per level ``l = 1..L``: the first kept index ``o_l`` of the level ``l-1`` array and the placement
    ``o_l + d_l`` of coarse sample 0 in level ``l-1`` coordinates.

    The toolbox (``shift = 0``) keeps level-0 indices 1, 3, 5, ... then every other sample from the
    first, and enlarges with ``imresize`` (coarse sample ``k`` placed at ``2k + 0.5``): ``d_1 = -0.5``,
    ``d_l = +0.5`` for ``l >= 2``. A shift ``s`` moves the whole lattice by ``s`` full-resolution pixels
    (level-``l`` samples at positions ``1 + s (mod 2^l)``), the placements following the samples.
    """
    out = []
    first = 0  # full-resolution position of sample 0 of the current level
    for lvl in range(1, levels + 1):
        step = 2 ** (lvl - 1)
        o = ((1 + shift - first) // step) % 2
        d = -0.5 if lvl == 1 else 0.5
        out.append((o, o + d))
        first += step * o
    return out


def _pyramid(x: Tensor, levels: int, shift: tuple[int, int]) -> Tensor:
    lat_y, lat_x = _lattice(levels, shift[0]), _lattice(levels, shift[1])
    arrays = [x]
    for (oy, _), (ox, _) in zip(lat_y, lat_x):
        arrays.append(half_gradient_smooth(arrays[-1])[..., oy::2, ox::2])
    y = arrays[-1]
    for lvl in range(levels, 0, -1):
        target = arrays[lvl - 1].shape[-2:]
        y = bilinear_up2(y, (target[0], target[1]), (lat_y[lvl - 1][1], lat_x[lvl - 1][1]))
    return y


def half_gradient_lowpass(x: Tensor, levels: int, shift: tuple[int, int] | None = (0, 0)) -> Tensor:
    r"""Low-pass image of the half-gradient morphological pyramid (MF pansharpening).

    Analysis, ``levels`` times: :func:`half_gradient_smooth`, then keep every other sample per axis
    (the toolbox keeps 0-based 1, 3, ... at the first level and 0, 2, ... afterwards). Synthesis: the
    coarsest level is enlarged back level by level with :func:`bilinear_up2` (MATLAB ``imresize``
    'bilinear', sample ``k`` placed at ``2k + 0.5``). With ``shift=(0, 0)`` and sizes divisible by
    :math:`2^L` this is the toolbox's ``Pyr_Dec(x, [0 1 0; 1 1 1; 0 1 0], L + 1, 'bilinear')``, last level.

    The operator is shift-variant with period :math:`2^L`: its lattice is anchored at the array's
    origin (moved by ``shift`` pixels). ``shift=None`` averages the :math:`4^L` lattice positions
    (a shift-invariant low pass, used where tiles cannot start on the lattice); the terms are summed
    in sorted order, so the result does not depend on which lattice position comes first.

    Parameters
    ----------
    x : Tensor
        ``(C, H, W)``.
    levels : int
        Decimation steps :math:`L \ge 0` (:func:`mf_levels`).
    shift : tuple of int or None, default (0, 0)
        Lattice shift in full-resolution pixels per axis, or None for the average over all shifts.

    Returns
    -------
    Tensor
        ``(C, H, W)``. Commutes with affine maps of ``x`` (up to rounding).

    References
    ----------
    R. Restaino, G. Vivone, M. Dalla Mura, J. Chanussot, "Fusion of multispectral and panchromatic
    images based on morphological operators", IEEE TIP 25(6), 2882-2895, 2016,
    doi:10.1109/TIP.2016.2556944.
    """
    levels = int(levels)
    if levels <= 0:
        return x
    if shift is not None:
        return _pyramid(x, levels, (int(shift[0]), int(shift[1])))
    p = 2 ** levels
    terms = torch.stack([_pyramid(x, levels, (sy, sx)) for sy in range(p) for sx in range(p)])
    terms, _ = torch.sort(terms, dim=0)
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return acc / (p * p)


def half_gradient_lowpass_halo(levels: int) -> int:
    r"""Context (full-resolution pixels per side) :func:`half_gradient_lowpass` needs to be exact on a tile.

    Level ``l`` (spacing :math:`2^{l-1}`) reads :math:`2^{l-1}` pixels for the smoothing; enlarging level
    ``l`` reads one coarse sample (:math:`2^l`) plus the placement; the lattice position adds up to
    :math:`2^L`. :math:`6 \cdot 2^L` bounds the sum.
    """
    return 6 * 2 ** int(levels) if levels > 0 else 0
