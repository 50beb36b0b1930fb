r"""HySure: hyperspectral super-resolution by subspace coefficients with vector total variation, by ADMM.

The fused image is :math:`Z = E X` with a spectral subspace :math:`E` (``B x p``: VCA endmembers of the HS, the
largest-volume of 20 runs, as HySure is run in Yokoya's toolbox; or its leading singular vectors)
and coefficients :math:`X` (``p x n`` on the MSI grid), solving
(Simões et al. 2015, eq. 6)

.. math::

    \min_X \tfrac12 \| Y_h - E X B M \|_F^2 + \tfrac{\lambda_m}{2} \| Y_m - R E X \|_F^2
           + \lambda_\varphi \sum_j w_j \sqrt{\textstyle\sum_i (X D_h)_{ij}^2 + (X D_v)_{ij}^2}

with the blur :math:`B` (here the known Gaussian PSF of the grid), the decimation :math:`M`, the
spectral response :math:`R` and horizontal/vertical differences :math:`D_h, D_v`. The weights
:math:`w_j` are 1 for HySure (isotropic vector TV); :mod:`geofuse.kernels.hs_dictionary` passes
edge-aware weights. ADMM splitting :math:`V_1 = XB, V_2 = X, V_3 = XD_h, V_4 = XD_v` (the paper's
appendix): the ``X`` step is one FFT solve (all four operators are circular convolutions), the ``V_1``
and ``V_2`` steps are per-pixel ``p x p`` solves, the ``V_3, V_4`` step is a vector soft threshold.

The FFT makes the ``X`` step periodic over the tile: every tile is first extended by a half-sample
mirror (:func:`subspace_admm_mirrored`), and run per chunk a halo absorbs what the neighbours would have
contributed and is trimmed (the method's stated seam bound covers what remains).

References
----------
M. Simões, J. Bioucas-Dias, L. B. Almeida, J. Chanussot, "A convex formulation for hyperspectral image
superresolution via subspace-based regularization", IEEE TGRS 53(6), 2015,
doi:10.1109/TGRS.2014.2375320.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .filters import pad
from .hs_iterative import psf_otf, svd_subspace, vca_max_volume


def _diff_otfs(shape: tuple[int, int], like: Tensor) -> tuple[Tensor, Tensor]:
    H, W = shape
    dh = torch.zeros(H, W, dtype=torch.float64, device=like.device)
    dv = torch.zeros_like(dh)
    dh[0, 0], dh[0, W - 1] = 1.0, -1.0
    dv[0, 0], dv[H - 1, 0] = 1.0, -1.0
    ctype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
    return torch.fft.fft2(dh).to(ctype), torch.fft.fft2(dv).to(ctype)


def subspace_admm(hs: Tensor, msi: Tensor, E: Tensor, R: Tensor, ratio: int, psf, *, lambda_phi: float = 1e-3,
                  lambda_m: float = 1.0, mu: float = 0.05, iters: int = 200, weights: Tensor | None = None,
                  x0: Tensor | None = None) -> Tensor:
    """ADMM for the problem of this module on one tile; returns the coefficients ``X`` (p, H, W).

    Parameters
    ----------
    hs : Tensor
        ``(B, h, w)`` HS tile, ``H = ratio * h``.
    msi : Tensor
        ``(K, H, W)`` MSI tile.
    E : Tensor
        ``(B, p)`` subspace basis with orthonormal columns.
    R : Tensor
        ``(K, B)`` spectral response.
    psf : tuple
        ``(kernel, (oy, ox))``: the blur and the pick offsets of the decimation.
    lambda_phi, lambda_m, mu, iters : float, float, float, int
        VTV weight, MSI weight, ADMM penalty, iteration count (HySure: 1e-3, 1, 0.05, 200).
    weights : Tensor, optional
        ``(H, W)`` per-pixel VTV weights (default 1).
    x0 : Tensor, optional
        ``(p, H, W)`` warm start (default 0, as HySure); the splitting variables start consistent with it.
    """
    B, h, w = hs.shape
    K, H, W = msi.shape
    p = E.shape[1]
    E = E.to(msi)
    R = R.to(msi)
    oy, ox = psf[1]
    half = W // 2 + 1  # real FFTs: the OTFs on the half spectrum
    FB = psf_otf(psf, (H, W), msi)[:, :half]
    FDH, FDV = (f[:, :half] for f in _diff_otfs((H, W), msi))
    denom = FB.abs() ** 2 + FDH.abs() ** 2 + FDV.abs() ** 2 + 1.0
    cFB, cFDH, cFDV = FB.conj() / denom, FDH.conj() / denom, FDV.conj() / denom
    inv_d = 1.0 / denom

    def fft(x):
        return torch.fft.rfft2(x)

    def ifft(x):
        return torch.fft.irfft2(x, s=(H, W))

    mask = torch.zeros(H, W, dtype=torch.bool, device=msi.device)
    mask[oy::ratio, ox::ratio] = True
    yh = torch.zeros(p, H, W, dtype=msi.dtype, device=msi.device)
    yh[:, oy::ratio, ox::ratio] = torch.einsum("bp,bhw->phw", E, hs)[:, : len(range(oy, H, ratio)),
                                                                   : len(range(ox, W, ratio))]
    IE_inv = torch.linalg.inv(E.T @ E + mu * torch.eye(p, dtype=E.dtype, device=E.device))
    RE = R @ E
    IRE_inv = torch.linalg.inv(lambda_m * RE.T @ RE + mu * torch.eye(p, dtype=E.dtype, device=E.device))
    yym = lambda_m * torch.einsum("kp,khw->phw", RE, msi)
    tau = lambda_phi / mu
    if weights is not None:
        tau = tau * weights.to(msi)

    if x0 is None:
        X = torch.zeros(p, H, W, dtype=msi.dtype, device=msi.device)
        V1, V2, V3, V4 = (torch.zeros_like(X) for _ in range(4))
    else:
        X = x0.to(msi)
        Xf = fft(X)
        V1, V2 = ifft(Xf * FB), X.clone()
        V3, V4 = ifft(Xf * FDH), ifft(Xf * FDV)
    D1, D2, D3, D4 = (torch.zeros_like(X) for _ in range(4))
    for _ in range(iters):
        Xf = fft(V1 + D1) * cFB + fft(V2 + D2) * inv_d + fft(V3 + D3) * cFDH + fft(V4 + D4) * cFDV
        X = ifft(Xf)
        NU1 = ifft(Xf * FB) - D1
        V1 = torch.where(mask, torch.einsum("pq,qhw->phw", IE_inv, yh + mu * NU1), NU1)
        NU2 = X - D2
        V2 = torch.einsum("pq,qhw->phw", IRE_inv, yym + mu * NU2)
        NU3 = ifft(Xf * FDH) - D3
        NU4 = ifft(Xf * FDV) - D4
        nrm = torch.sqrt((NU3 ** 2).sum(0) + (NU4 ** 2).sum(0))
        shrink = torch.clamp(nrm - tau, min=0) / torch.clamp(nrm, min=1e-30)
        V3, V4 = NU3 * shrink, NU4 * shrink
        D1, D2, D3, D4 = V1 - NU1, V2 - NU2, V3 - NU3, V4 - NU4
    return X


def subspace_admm_mirrored(hs: Tensor, msi: Tensor, E: Tensor, R: Tensor, ratio: int, psf, *, pad_lr: int = 4,
                           weights: Tensor | None = None, x0: Tensor | None = None, **kw) -> Tensor:
    """:func:`subspace_admm` on the tile extended by ``pad_lr`` HS samples (``ratio * pad_lr`` MSI pixels)
    of half-sample mirror on every side, cropped back: the FFT's periodic wrap then joins mirrored
    content instead of opposite sides of the tile (no ringing from the jump, and the same treatment of
    an image border whether or not the image is chunked). The mirror matches the sampling grid exactly
    for corner-aligned grids (phase ``(ratio - 1) / 2``)."""
    if pad_lr <= 0:
        return subspace_admm(hs, msi, E, R, ratio, psf, weights=weights, x0=x0, **kw)
    q = ratio * pad_lr
    hp = pad(hs, pad_lr, pad_lr, pad_lr, pad_lr, "symmetric")
    mp = pad(msi, q, q, q, q, "symmetric")
    wp = None if weights is None else pad(weights[None], q, q, q, q, "symmetric")[0]
    xp = None if x0 is None else pad(x0, q, q, q, q, "symmetric")
    X = subspace_admm(hp, mp, E, R, ratio, psf, weights=wp, x0=xp, **kw)
    return X[:, q:X.shape[1] - q, q:X.shape[2] - q]


def hysure_basis(Vh: Tensor, p: int = 30, basis: str = "vca", seed: int = 0, runs: int = 20) -> Tensor:
    """The ``(B, p)`` subspace of the HS pixels ``Vh`` (B, n): ``"vca"`` (HySure's default as run in
    Yokoya's toolbox: the largest-volume of ``runs`` VCA runs) or ``"svd"`` (leading singular vectors)."""
    if basis == "svd":
        return svd_subspace(Vh, p)
    return vca_max_volume(Vh, min(p, Vh.shape[0]), runs=runs, seed=seed)


def hysure(hs: Tensor, msi: Tensor, R: Tensor, ratio: int, psf, *, p: int = 30, lambda_phi: float = 1e-3,
           lambda_m: float = 1.0, mu: float = 0.05, iters: int = 200, basis: str = "vca", E: Tensor | None = None,
           scale: float | None = None, seed: int = 0, pad_lr: int = 4) -> Tensor:
    """Whole-tile HySure: ``hs`` (B, h, w), ``msi`` (K, H, W), ``R`` (K, B) -> fused (B, H, W).

    The data are divided by ``scale`` (default: the HS maximum, as HySure normalises) before the ADMM and
    multiplied back after. ``E`` defaults to :func:`hysure_basis` of the HS pixels.
    """
    B = hs.shape[0]
    s = float(hs.max()) if scale is None else float(scale)
    s = s if s > 0 else 1.0
    if E is None:
        E = hysure_basis(hs.reshape(B, -1) / s, p, basis, seed)
    X = subspace_admm_mirrored(hs / s, msi / s, E, R, ratio, psf, pad_lr=pad_lr, lambda_phi=lambda_phi,
                               lambda_m=lambda_m, mu=mu, iters=iters)
    return s * torch.einsum("bp,phw->bhw", E.to(msi), X)
