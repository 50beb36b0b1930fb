"""Shared building blocks of the iterative hyperspectral–multispectral fusion kernels (CNMF, HySure,
dictionary-ADMM): forward model, subspace, endmember extraction, virtual dimensionality.

Conventions: images are ``(C, H, W)`` float tensors; pixel matrices are ``(C, N)``. The low-resolution
hyperspectral image (HS, ``B`` bands) is the scene blurred by a point spread function (PSF) and decimated
by ``ratio`` at the grid ``phase`` (LR sample ``k`` sits at HR position ``ratio*k + phase``); the
multispectral image (MSI, ``K`` bands, a PAN is ``K = 1``) is ``R @ scene`` per pixel with the ``(K, B)``
spectral response matrix ``R``. The PSF is passed in as ``(kernel, (oy, ox))``, an odd-sized kernel and
its pick offsets for :func:`geofuse.kernels.filters.correlate2d` (the engine builds it from the grid).

Every function is pure torch and device-agnostic: nothing here assumes a CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ParameterError
from .filters import correlate2d

#: Tiny positive number keeping the multiplicative updates away from 0/0.
EPS = 1e-12


def as_tensor(x, like: Tensor | None = None, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> Tensor:
    """``x`` (numpy or torch) as a tensor with the dtype/device of ``like`` (or the given ones)."""
    if like is not None:
        dtype, device = dtype or like.dtype, device or like.device
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device=device, dtype=dtype or torch.float32)


def blur_decimate(x: Tensor, ratio: int, psf: tuple[np.ndarray, tuple[int, int]],
                  mode: str = "replicate") -> Tensor:
    """Spatial degradation ``(C, H, W) -> (C, H/ratio, W/ratio)``: PSF correlation then decimation."""
    k, off = psf
    return correlate2d(x, k, mode=mode, stride=ratio, offset=off)


def psf_otf(psf: tuple[np.ndarray, tuple[int, int]], shape: tuple[int, int], like: Tensor) -> Tensor:
    """Optical transfer function (2-D FFT) of the PSF as a *circular* convolution on a ``shape`` grid,
    arranged so that ``ifft(fft(x) * otf)`` sampled at ``offset + ratio*k`` equals
    :func:`blur_decimate` away from the borders (the kernel's centre sits at index 0)."""
    k, _ = psf
    k = np.asarray(k, dtype=np.float64)
    H, W = shape
    kh, kw = k.shape
    if kh > H or kw > W:
        raise ParameterError("The tile is smaller than the PSF", expected=f"at least {kh}x{kw} pixels",
                             got=f"{H}x{W}", fix="use larger chunks")
    img = np.zeros((H, W))
    # correlation with k == convolution with the flipped kernel: place k[-u, -v] at (u, v) mod shape
    ry, rx = kh // 2, kw // 2
    for u in range(-ry, ry + 1):
        for v in range(-rx, rx + 1):
            img[(-u) % H, (-v) % W] += k[u + ry, v + rx]
    return torch.fft.fft2(torch.as_tensor(img, device=like.device, dtype=torch.float64)).to(
        torch.complex128 if like.dtype == torch.float64 else torch.complex64)


def subsample_pixels(x: Tensor, max_pixels: int) -> Tensor:
    """``(C, H, W) -> (C, N)``: every pixel, or a regular strided subset of at most ~``max_pixels``."""
    C, H, W = x.shape
    s = max(1, math.ceil(math.sqrt(H * W / max(1, max_pixels))))
    return x[:, ::s, ::s].reshape(C, -1)


def stride_for(shape: tuple[int, int], max_pixels: int) -> int:
    """The stride :func:`subsample_pixels` uses for an image of ``shape``."""
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / max(1, max_pixels))))


# --------------------------------------------------------------------------------------------------
# subspace, virtual dimensionality, VCA


def svd_subspace(Y: Tensor, p: int) -> Tensor:
    """The ``p`` leading left singular vectors of the ``(B, N)`` pixel matrix (HySure's SVD basis)."""
    p = min(p, Y.shape[0], Y.shape[1])
    U, _, _ = torch.linalg.svd(Y.double() @ Y.double().T / Y.shape[1])
    return U[:, :p].to(Y.dtype)


def virtual_dimensionality(Y: Tensor, alpha: float = 5e-2) -> int:
    r"""Harsanyi–Farrand–Chang virtual dimensionality of a ``(B, N)`` pixel matrix.

    The eigenvalues :math:`\lambda_i` of the correlation matrix and :math:`\kappa_i` of the covariance
    matrix (both sorted descending) differ only by the signal energy; band ``i`` counts as a source when
    :math:`\lambda_i - \kappa_i` exceeds the Neyman–Pearson threshold for false-alarm rate ``alpha`` of a
    zero-mean Gaussian with variance :math:`2(\lambda_i^2 + \kappa_i^2)/N`.

    References
    ----------
    C.-I Chang and Q. Du, "Estimation of number of spectrally distinct signal sources in hyperspectral
    imagery", IEEE TGRS 42(3), 2004, doi:10.1109/TGRS.2003.819189.
    """
    Y = Y.double()
    N = Y.shape[1]
    Rm = Y @ Y.T / N
    mu = Y.mean(dim=1, keepdim=True)
    Km = (Y - mu) @ (Y - mu).T / (N - 1)
    er = torch.linalg.eigvalsh(Rm).flip(0)
    ek = torch.linalg.eigvalsh(Km).flip(0)
    sd = torch.sqrt(2 * (er ** 2 + ek ** 2) / N)
    z = float(torch.special.ndtri(torch.tensor(1.0 - alpha, dtype=torch.float64)))
    return int(((er - ek) > z * sd).sum())


def vca(Y: Tensor, M: int, seed: int = 0) -> Tensor:
    r"""Vertex component analysis: ``M`` endmembers (columns of a ``(B, M)`` matrix) of ``Y`` (B, N).

    The data are projected on the ``M``-dimensional signal subspace (SVD of the correlation matrix at high
    SNR, PCA of the centred data plus a constant coordinate at low SNR, the SNR estimated as in the
    paper); pixels are scaled onto the hyperplane through the mean direction; then ``M`` times a random
    direction orthogonal to the endmembers found so far is drawn and the pixel with the largest
    absolute projection becomes the next endmember. Seeded (``torch.Generator``).

    References
    ----------
    J. M. P. Nascimento and J. M. Bioucas-Dias, "Vertex component analysis: a fast algorithm to unmix
    hyperspectral data", IEEE TGRS 43(4), 2005, doi:10.1109/TGRS.2005.844293.
    """
    Yd = Y.double()
    B, N = Yd.shape
    M = min(M, B, N)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    mean = Yd.mean(dim=1, keepdim=True)
    Ud = torch.linalg.svd((Yd - mean) @ (Yd - mean).T / N)[0][:, :M]
    x_p = Ud.T @ (Yd - mean)
    p_y = (Yd ** 2).sum() / N
    p_x = (x_p ** 2).sum() / N + (mean ** 2).sum()
    snr = 10 * torch.log10(torch.clamp(p_x - M / B * p_y, min=1e-30) / torch.clamp(p_y - p_x, min=1e-30))
    snr_th = 15 + 10 * math.log10(M)
    if snr < snr_th:  # low SNR: projective projection onto the (M-1)-dim PCA subspace plus a constant
        d = M - 1
        Ud = Ud[:, :d]
        x = Ud.T @ (Yd - mean)
        c = torch.sqrt((x ** 2).sum(dim=0)).max()
        Yp = torch.cat([x, c * torch.ones(1, N, dtype=x.dtype, device=x.device)], dim=0)
        back = lambda idx: Ud @ x[:, idx] + mean  # noqa: E731
    else:
        Ud = torch.linalg.svd(Yd @ Yd.T / N)[0][:, :M]
        x = Ud.T @ Yd
        u = x.mean(dim=1, keepdim=True)
        Yp = x / torch.clamp((x * u).sum(dim=0, keepdim=True), min=1e-30)
        back = lambda idx: Ud @ x[:, idx]  # noqa: E731
    A = torch.zeros(M, M, dtype=Yd.dtype, device=Yd.device)
    A[-1, 0] = 1.0
    idx = torch.zeros(M, dtype=torch.long)
    for i in range(M):
        w = torch.randn(M, 1, generator=gen, dtype=torch.float64).to(Yd.device)
        f = w - A @ torch.linalg.pinv(A) @ w
        f = f / torch.clamp(torch.linalg.norm(f), min=1e-30)
        v = (f.T @ Yp).abs()
        idx[i] = int(torch.argmax(v))
        A[:, i] = Yp[:, idx[i]]
    return back(idx.to(Yd.device)).to(Y.dtype)


# --------------------------------------------------------------------------------------------------
# non-negative least squares by multiplicative updates (Lee & Seung) with a sum-to-one row


def nmf_abundances(V: Tensor, W: Tensor, H: Tensor, iters: int, delta: float) -> Tensor:
    r"""``iters`` multiplicative updates of the abundances ``H`` (M, N) for ``V ~ W H`` with ``W`` fixed.

    A row ``delta`` is appended to ``V`` and to ``W`` (the soft sum-to-one constraint of CNMF). Every
    column of ``H`` is updated independently: the result of a pixel does not depend on its neighbours.
    """
    Wa = torch.cat([W, torch.full((1, W.shape[1]), delta, dtype=W.dtype, device=W.device)])
    WtV = Wa.T @ torch.cat([V, torch.full((1, V.shape[1]), delta, dtype=V.dtype, device=V.device)])
    WtW = Wa.T @ Wa
    for _ in range(iters):
        H = H * WtV / torch.clamp(WtW @ H, min=EPS)
    return H


def nmf_endmembers(V: Tensor, W: Tensor, H: Tensor, iters: int) -> Tensor:
    """``iters`` multiplicative updates of ``W`` (B, M) for ``V ~ W H`` with ``H`` fixed (no sum row)."""
    VHt, HHt = V @ H.T, H @ H.T
    for _ in range(iters):
        W = W * VHt / torch.clamp(W @ HHt, min=EPS)
    return W


def nmf_alternate(V: Tensor, W: Tensor, H: Tensor, iters: int, delta: float, update_w: bool = True,
                  tol: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Alternating multiplicative updates of ``W`` then ``H`` (sum-to-one row ``delta`` on ``H``'s side),
    stopping when the relative decrease of the squared error falls below ``tol`` (then the previous
    iterate is kept, as in CNMF)."""
    ones = torch.full((1, V.shape[1]), delta, dtype=V.dtype, device=V.device)
    Va = torch.cat([V, ones])
    cost0 = None
    for _ in range(iters):
        W_old, H_old = W, H
        if update_w:
            W = W * (V @ H.T) / torch.clamp(W @ (H @ H.T), min=EPS)
        Wa = torch.cat([W, torch.full((1, W.shape[1]), delta, dtype=W.dtype, device=W.device)])
        H = H * (Wa.T @ Va) / torch.clamp((Wa.T @ Wa) @ H, min=EPS)
        cost = float(((V - W @ H) ** 2).sum())
        if cost0 is not None and (cost0 - cost) / max(cost, 1e-300) < tol:
            return W_old, H_old
        cost0 = cost
    return W, H


def vca_max_volume(Y: Tensor, M: int, runs: int = 20, seed: int = 0) -> Tensor:
    """The largest-volume (``|det(E^T E)|``) of ``runs`` seeded :func:`vca` runs (HySure's VCA basis)."""
    best, best_vol = None, -1.0
    for r in range(max(1, runs)):
        E = vca(Y, M, seed=seed + r)
        vol = float(torch.linalg.det(E.double().T @ E.double()).abs())
        if vol > best_vol:
            best, best_vol = E, vol
    return best
