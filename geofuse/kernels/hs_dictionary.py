r"""Dictionary learning + ADMM fusion with locally adaptive residual compensation (geofuse's seed design,
SPEC section 0), for HS + MSI and for pansharpening (a PAN is a 1-band MSI).

Steps (the first two are global, in the method's ``estimate``; the rest run per chunk):

1. **Spectral dictionary** :math:`D` (``B x A``, unit-norm atoms) learned from the low-resolution pixels
   by alternating batch OMP sparse coding and MOD dictionary updates (Engan et al. 1999), seeded; unused
   atoms are re-drawn from the worst-represented pixels.
2. **Subspace** :math:`E` (VCA endmembers of the HS, as :mod:`geofuse.kernels.hs_hysure`) for the
   variational step, and global scales (data scale, mean MSI gradient magnitude).
3. **Sparse coding of the MSI**: each MSI pixel :math:`m` (with the interpolated HS pixel :math:`\tilde h`
   as a weak spectral prior of weight :math:`\eta`) is coded on the SRF-projected dictionary,
   :math:`\min_\alpha \|m - R D\alpha\|^2 + \eta \|\tilde h - D\alpha\|^2` with at most ``sparsity``
   atoms (OMP); preliminary result :math:`X_0 = D\alpha`.
4. **Residual compensation**: the MSI residual :math:`r_m = m - R X_0` is mapped into the spectral
   subspace, :math:`\Delta = E (RE)^{+} r_m`, and injected with a locally adaptive coefficient
   :math:`\beta`: on sliding windows of the HS grid, :math:`\beta` is the least-squares gain that best
   explains the HS residual :math:`r_h = Y_h - \mathcal{BD}(X_0)` by the degraded injection
   :math:`\mathcal{BD}(\Delta)` (the spectral correlation of the two residual fields, clipped to
   ``[0, 1]``), interpolated onto the MSI grid: :math:`X_1 = X_0 + \beta\Delta`.
5. **Variational refinement** by ADMM (:func:`geofuse.kernels.hs_hysure.subspace_admm`, warm-started at
   :math:`X_1`): a spectral term tying the result to the HS through blur + decimation, an MSI term
   through the SRF, and a spatial vector-TV term weighted by the MSI's gradients,
   :math:`w = 1 / (1 + |\nabla M| / \bar g)`, so that edges present in the MSI are cheap.

References
----------
K. Engan, S. O. Aase, J. H. Husøy, "Method of optimal directions for frame design", ICASSP 1999,
doi:10.1109/ICASSP.1999.760624. J. A. Tropp, A. C. Gilbert, "Signal recovery from random measurements
via orthogonal matching pursuit", IEEE TIT 53(12), 2007, doi:10.1109/TIT.2007.909108. M. Simões et al.,
IEEE TGRS 53(6), 2015, doi:10.1109/TGRS.2014.2375320 (the ADMM splitting). Q. Wei, J. Bioucas-Dias,
N. Dobigeon, J.-Y. Tourneret, "Hyperspectral and multispectral image fusion based on a sparse
representation", IEEE TGRS 53(7), 2015, doi:10.1109/TGRS.2014.2381272 (dictionary + ADMM fusion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .filters import pad
from .hs_hysure import subspace_admm_mirrored
from .hs_iterative import blur_decimate
from .resample import upsample


def omp(Y: Tensor, D: Tensor, sparsity: int, Dn: Tensor | None = None) -> Tensor:
    """Batch orthogonal matching pursuit: codes ``(A, N)`` of ``Y`` (d, N) on ``D`` (d, A), at most
    ``sparsity`` atoms per column. ``Dn`` (optional) is the dictionary used for the atom *selection*
    (e.g. column-normalised); the coefficients are least squares on ``D``'s selected columns."""
    d, N = Y.shape
    A = D.shape[1]
    Dn = D if Dn is None else Dn
    T = max(1, min(sparsity, A, d))
    idx = torch.zeros(N, T, dtype=torch.long, device=Y.device)
    chosen = torch.zeros(N, A, dtype=torch.bool, device=Y.device)
    r = Y.clone()
    coef = None
    G = D.T @ D
    DtY = D.T @ Y  # (A, N)
    for t in range(T):
        c = (Dn.T @ r).abs().T  # (N, A)
        c = c.masked_fill(chosen, -1.0)
        k = c.argmax(dim=1)
        idx[:, t] = k
        chosen[torch.arange(N, device=Y.device), k] = True
        sel = idx[:, : t + 1]  # (N, t+1)
        Gs = G[sel[:, :, None], sel[:, None, :]]  # (N, t+1, t+1)
        b = torch.gather(DtY.T, 1, sel)  # (N, t+1)
        eye = torch.eye(t + 1, dtype=Y.dtype, device=Y.device)
        coef = torch.linalg.solve(Gs + 1e-10 * eye * Gs.diagonal(dim1=1, dim2=2).mean(1)[:, None, None],
                                  b[..., None])[..., 0]
        r = Y - (D[:, sel] * coef[None]).sum(-1)
    out = torch.zeros(A, N, dtype=Y.dtype, device=Y.device)
    out.scatter_(0, idx[:, : coef.shape[1]].T, coef.T)
    return out


def learn_dictionary(Y: Tensor, atoms: int = 48, sparsity: int = 4, iters: int = 15, seed: int = 0) -> Tensor:
    """MOD dictionary learning on the ``(B, N)`` pixels ``Y``: ``(B, atoms)`` unit-norm atoms."""
    B, N = Y.shape
    atoms = max(1, min(atoms, N))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    perm = torch.randperm(N, generator=gen)[:atoms].to(Y.device)
    D = Y[:, perm].clone()
    D = D / torch.clamp(D.norm(dim=0, keepdim=True), min=1e-12)
    for _ in range(iters):
        Acode = omp(Y, D, sparsity)
        AAt = Acode @ Acode.T
        reg = 1e-8 * float(AAt.diagonal().mean().clamp_min(1e-30))
        D = torch.linalg.solve(AAt + reg * torch.eye(atoms, dtype=Y.dtype, device=Y.device), Acode @ Y.T).T
        norms = D.norm(dim=0)
        dead = (norms < 1e-9) | (Acode.abs().sum(1) == 0)
        if bool(dead.any()):  # re-draw unused atoms from the worst-represented pixels
            err = ((Y - D @ Acode) ** 2).sum(0)
            worst = torch.argsort(err, descending=True)[: int(dead.sum())]
            D[:, dead] = Y[:, worst]
            norms = D.norm(dim=0)
        D = D / torch.clamp(norms[None], min=1e-12)
    return D


def _box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over ``(2 radius + 1)^2`` windows, half-sample mirror at the tile sides."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    xp = pad(x, radius, radius, radius, radius, "symmetric")
    return F.avg_pool2d(xp[None], k, stride=1)[0]


def gradient_magnitude(x: Tensor) -> Tensor:
    """``(C, H, W) -> (H, W)``: sqrt of the sum over bands of squared forward differences (replicate)."""
    gx = torch.diff(x, dim=2, append=x[:, :, -1:])
    gy = torch.diff(x, dim=1, append=x[:, -1:, :])
    return torch.sqrt((gx ** 2 + gy ** 2).sum(0))


def dictionary_admm_apply(hs: Tensor, msi: Tensor, est: dict, ratio: int, phase, psf, *, sparsity: int = 3,
                          prior_weight: float = 0.1, window: int = 2, lambda_phi: float = 5e-3, lambda_m: float = 1.0,
                          mu: float = 0.05, iters: int = 100, pad_lr: int = 4, return_stages: bool = False):
    """Steps 3-5 on one tile: ``hs`` (B, h, w), ``msi`` (K, ratio*h, ratio*w) -> fused (B, ratio*h, ratio*w).

    ``est`` holds ``D`` (B, A) dictionary, ``E`` (B, p) subspace, ``srf`` (K, B), ``scale`` (data scale)
    and ``grad_mean`` (mean MSI gradient magnitude, in scaled units). ``window`` is the radius (HS
    pixels) of the windows of the adaptive coefficient.
    """
    s = float(est["scale"]) or 1.0
    hs, msi = hs / s, msi / s
    D, E, R = (est[k].to(msi) for k in ("D", "E", "srf"))
    B, h, w = hs.shape
    K, H, W = msi.shape
    # 3. sparse coding of the MSI on R D, with the interpolated HS as a weak prior
    h_up = upsample(hs, ratio, phase, "bicubic", "symmetric")
    eta = prior_weight * K / B
    Dj = torch.cat([R @ D, eta ** 0.5 * D])
    Yj = torch.cat([msi.reshape(K, -1), eta ** 0.5 * h_up.reshape(B, -1)])
    code = omp(Yj, Dj, sparsity, Dn=Dj / torch.clamp(Dj.norm(dim=0, keepdim=True), min=1e-12))
    X0 = (D @ code).reshape(B, H, W)
    # 4. residual compensation with a locally adaptive coefficient
    RE = R @ E
    P = E @ torch.linalg.pinv(RE, rtol=1e-6)  # (B, K): min-norm spectral back-projection into span(E)
    r_m = msi - torch.einsum("kb,bhw->khw", R, X0)
    delta = torch.einsum("bk,khw->bhw", P, r_m)
    r_h = hs - blur_decimate(X0, ratio, psf)
    d_h = blur_decimate(delta, ratio, psf)
    num = _box_mean((d_h * r_h).sum(0, keepdim=True), window)
    den = _box_mean((d_h * d_h).sum(0, keepdim=True), window)
    beta_lr = torch.clamp(num / torch.clamp(den, min=1e-12 * float(den.max().clamp_min(1e-30))), 0.0, 1.0)
    beta = upsample(beta_lr, ratio, phase, "bicubic", "symmetric").clamp(0.0, 1.0)
    X1 = X0 + beta * delta
    # 5. variational refinement, warm-started at X1, VTV weighted by the MSI gradients
    g = gradient_magnitude(msi)
    wts = 1.0 / (1.0 + g / max(float(est["grad_mean"]), 1e-12))
    x0 = torch.linalg.lstsq(E, X1.reshape(B, -1)).solution.reshape(E.shape[1], H, W)
    X = subspace_admm_mirrored(hs, msi, E, R, ratio, psf, pad_lr=pad_lr, weights=wts, x0=x0,
                               lambda_phi=lambda_phi, lambda_m=lambda_m, mu=mu, iters=iters)
    out = s * torch.einsum("bp,phw->bhw", E, X)
    if return_stages:
        return out, {"X0": s * X0, "X1": s * X1, "beta": beta}
    return out


def dictionary_admm_estimate(hs: Tensor, msi: Tensor, R: Tensor, *, atoms: int = 48, sparsity: int = 3,
                             dict_iters: int = 15, p: int = 30, seed: int = 0, scale: float | None = None) -> dict:
    """Steps 1-2 on a whole (or windowed) scene: dictionary ``D``, subspace ``E``, ``srf``, ``scale``,
    ``grad_mean`` (see :func:`dictionary_admm_apply`). ``hs`` is ``(B, h, w)`` or already a ``(B, n)``
    pixel matrix (e.g. the valid pixels only)."""
    from .hs_hysure import hysure_basis

    B = hs.shape[0]
    s = float(hs.max()) if scale is None else float(scale)
    s = s if s > 0 else 1.0
    Vh = hs.reshape(B, -1) / s
    D = learn_dictionary(Vh, atoms=atoms, sparsity=max(sparsity, 1), iters=dict_iters, seed=seed)
    E = hysure_basis(Vh, p, "vca", seed)
    g = gradient_magnitude(msi / s).mean()
    return {"D": D, "E": E, "srf": R.to(hs), "scale": torch.tensor(s, dtype=hs.dtype),
            "grad_mean": g.to(hs.dtype)}


def dictionary_admm(hs: Tensor, msi: Tensor, R: Tensor, ratio: int, phase, psf, *, atoms: int = 48,
                    sparsity: int = 3, dict_iters: int = 15, p: int = 30, seed: int = 0, **kw) -> Tensor:
    """Whole-image dictionary-ADMM fusion: ``hs`` (B, h, w), ``msi`` (K, H, W), ``R`` (K, B) -> (B, H, W)."""
    est = dictionary_admm_estimate(hs, msi, R, atoms=atoms, sparsity=sparsity, dict_iters=dict_iters, p=p, seed=seed)
    return dictionary_admm_apply(hs, msi, est, ratio, phase, psf, sparsity=sparsity, **kw)
