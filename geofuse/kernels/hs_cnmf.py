r"""Coupled non-negative matrix factorisation (CNMF) for hyperspectral–multispectral fusion.

Both images are unmixed into endmembers and abundances, alternately (Yokoya et al. 2012):

.. math::

    Y_h \approx W_h H_h, \qquad Y_m \approx W_m H_m, \qquad W_m = R W_h, \qquad H_h = H_m B D,

with a soft sum-to-one row ``delta`` appended to the abundances' side. The fused image is
:math:`W_h H_m`: the HS endmembers with the MSI-resolution abundances.

Structure used here (so that it runs chunk by chunk with the same result as on the whole image):

1. *global* (:func:`cnmf_estimate`, on the whole scene or a bounded window of it):
   ``M = max(min(30, B), VD(5e-2))`` endmembers by VCA on the HS pixels, NMF of the HS (abundances
   first, then alternating) -> ``W_h``; ``W_m = R W_h`` and NMF of the MSI (abundances first, starting
   from the HS abundances interpolated onto the MSI grid (bicubic, as CNMF does), then alternating;
   ``W_m`` only moves when the MSI has more than 3 bands); ``H_h`` = the MSI abundances blurred and
   decimated by the PSF; NMF of the HS from that ``H_h``: endmembers first, then alternating ->
   ``W_h'``;
2. *per pixel / per chunk* (:func:`cnmf_apply`): HS abundances for the fixed ``W_h`` (multiplicative
   updates from ``1/M``, each LR pixel on its own), interpolated (bicubic) onto the MSI grid as the start
   of the MSI abundances, ``2 * iters`` multiplicative updates for the fixed ``W_m`` (each HR pixel on
   its own), and the product ``W_h' H_m``. Only the bicubic interpolation looks at neighbours (2 LR
   samples), so a halo of 2 LR pixels makes the chunked result equal to the whole-image one.

References
----------
N. Yokoya, T. Yairi, A. Iwasaki, "Coupled nonnegative matrix factorization unmixing for hyperspectral
and multispectral data fusion", IEEE TGRS 50(2), 2012, doi:10.1109/TGRS.2011.2161320.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .hs_iterative import blur_decimate, nmf_abundances, nmf_alternate, nmf_endmembers, virtual_dimensionality, vca
from .resample import upsample

MIN_MS_BANDS_FOR_W_UPDATE = 3


def cnmf_delta(ms_mean: float, K: int) -> float:
    """CNMF's sum-to-one weight ``2 sqrt(mean(MSI) / 0.7455) / K^3`` (Yokoya's default)."""
    return 2.0 * (max(float(ms_mean), 0.0) / 0.7455) ** 0.5 / K ** 3


def cnmf_endmember_count(Vh: Tensor, max_m: int = 30, alpha: float = 5e-2) -> int:
    """``M = max(min(max_m, B), VD(alpha))`` (SPEC section 9)."""
    return max(min(max_m, Vh.shape[0]), virtual_dimensionality(Vh, alpha))


def _nmf_h_then_alternate(V: Tensor, W: Tensor, H: Tensor, iters: int, delta: float, h_first: int,
                          update_w: bool) -> tuple[Tensor, Tensor]:
    _, H = nmf_alternate(V, W, H, h_first, delta, update_w=False)
    return nmf_alternate(V, W, H, iters, delta, update_w=update_w)


def _hs_abundances(hs: Tensor, W_h: Tensor, iters: int, delta: float) -> Tensor:
    """(B, h, w) HS -> (M, h, w) abundances for the fixed ``W_h``, each pixel on its own."""
    B, h, w = hs.shape
    M = W_h.shape[1]
    V = hs.reshape(B, -1).clamp_min(0)
    A = torch.full((M, V.shape[1]), 1.0 / M, dtype=hs.dtype, device=hs.device)
    return nmf_abundances(V, W_h, A, iters, delta).reshape(M, h, w)


def _msi_abundances(msi: Tensor, W_m: Tensor, H0: Tensor, iters: int, delta: float) -> Tensor:
    K, H, W = msi.shape
    M = W_m.shape[1]
    V = msi.reshape(K, -1).clamp_min(0)
    return nmf_abundances(V, W_m, H0.reshape(M, -1).clamp_min(0), iters, delta).reshape(M, H, W)


def cnmf_estimate(hs: Tensor, msi: Tensor, R: Tensor, ratio: int, phase, psf, *, iters: int = 200,
                  endmembers: int = 0, delta: float | None = None, seed: int = 0) -> dict[str, Tensor]:
    """Step 1 on a whole (or windowed) scene: ``hs`` (B, h, w), ``msi`` (K, H, W), ``R`` (K, B).

    Returns ``{"W_h0": HS endmembers of the HS unmixing, "W_m": MSI endmembers, "W_h": refined HS
    endmembers, "delta": sum-to-one weight}`` (tensors).
    """
    B, K = hs.shape[0], msi.shape[0]
    Vh, Vm = hs.reshape(B, -1).clamp_min(0), msi.reshape(K, -1).clamp_min(0)
    if delta is None:
        delta = cnmf_delta(float(Vm.mean()), K)
    M = endmembers if endmembers and endmembers > 0 else cnmf_endmember_count(Vh)
    W_h = vca(Vh, M, seed=seed).clamp_min(1e-6)
    M = W_h.shape[1]
    H_h = torch.full((M, Vh.shape[1]), 1.0 / M, dtype=Vh.dtype, device=Vh.device)
    W_h, H_h = _nmf_h_then_alternate(Vh, W_h, H_h, iters, delta, 3 * iters, True)
    W_m = (R.to(W_h) @ W_h).clamp_min(1e-12)
    H_m0 = upsample(_hs_abundances(hs, W_h, 3 * iters, delta), ratio, phase, "bicubic", "symmetric").clamp_min(0)
    H_m0 = nmf_abundances(Vm, W_m, H_m0.reshape(M, -1), iters, delta)
    W_m, H_m = nmf_alternate(Vm, W_m, H_m0, iters, delta, update_w=K > MIN_MS_BANDS_FOR_W_UPDATE)
    H_h2 = blur_decimate(H_m.reshape(M, *msi.shape[1:]), ratio, psf).reshape(M, -1)
    W_h2 = cnmf_refine(Vh, H_h2, W_h.clone(), iters, delta, update_h=K > MIN_MS_BANDS_FOR_W_UPDATE)
    return {"W_h0": W_h, "W_m": W_m, "W_h": W_h2, "delta": torch.tensor(delta, dtype=Vh.dtype)}


def cnmf_apply(hs: Tensor, msi: Tensor, est, ratio: int, phase, *, iters: int = 200) -> Tensor:
    """Step 2 on one tile: ``hs`` (B, h, w), ``msi`` (K, ratio*h, ratio*w) -> fused (B, ratio*h, ratio*w)."""
    delta = float(est["delta"])
    W_h0, W_m, W_h = (est[k].to(msi) for k in ("W_h0", "W_m", "W_h"))
    H0 = upsample(_hs_abundances(hs, W_h0, 3 * iters, delta), ratio, phase, "bicubic", "symmetric")
    H_m = _msi_abundances(msi, W_m, H0, 2 * iters, delta)
    M = H_m.shape[0]
    return (W_h @ H_m.reshape(M, -1)).reshape(W_h.shape[0], *msi.shape[1:])


def cnmf_halo(ratio: int) -> int:
    """HR halo of :func:`cnmf_apply`: the bicubic interpolation's 2 LR samples."""
    return 2 * ratio


def cnmf_refine(Vh: Tensor, H_h: Tensor, W_h: Tensor, iters: int = 200, delta: float = 1.0,
                update_h: bool = True) -> Tensor:
    """HS endmembers refitted to the degraded MSI abundances ``H_h`` (M, n) on the HS pixels ``Vh``:
    endmembers only until converged, then alternating (CNMF's second HS unmixing)."""
    Vh = Vh.clamp_min(0)
    W_prev = W_h
    cost0 = float(((Vh - W_h @ H_h) ** 2).sum())
    for _ in range(iters):
        W_h = nmf_endmembers(Vh, W_prev, H_h, 1)
        cost = float(((Vh - W_h @ H_h) ** 2).sum())
        if (cost0 - cost) / max(cost, 1e-300) < 1e-8:
            W_h = W_prev
            break
        W_prev, cost0 = W_h, cost
    if update_h:
        W_h, _ = nmf_alternate(Vh, W_h, H_h, iters, delta, update_w=True)
    return W_h


def cnmf(hs: Tensor, msi: Tensor, R: Tensor, ratio: int, phase, psf, *, iters: int = 200, endmembers: int = 0,
         seed: int = 0) -> Tensor:
    """Whole-image CNMF: ``hs`` (B, h, w), ``msi`` (K, H, W), ``R`` (K, B) -> fused (B, H, W).

    ``phase``: HR position of LR sample 0 (per axis); ``psf``: the spatial degradation
    ``(kernel, offsets)`` (see :mod:`geofuse.kernels.hs_iterative`).
    """
    est = cnmf_estimate(hs, msi, R, ratio, phase, psf, iters=iters, endmembers=endmembers, seed=seed)
    return cnmf_apply(hs, msi, est, ratio, phase, iters=iters)
