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
5. **Variational refinement** by ADMM (HySure's splitting, :func:`weighted_subspace_admm`, warm-started at
   the coefficients of :math:`X_1` in :math:`E`): a spectral term tying the result to the HS through
   blur + decimation, an MSI term through the SRF, and a spatial vector-TV term weighted by the MSI's
   gradients, :math:`w = 1 / (1 + |\nabla M| / \bar g)`, so that edges present in the MSI are cheap.

Cost per chunk (steps 3-5): steps 3-4 never form a ``B``-band image on the MSI grid (they run on the
``A`` code planes, the ``K`` MSI planes and the ``p`` subspace coefficients; every step is linear in the
spectra), in float64; the ADMM works on ``p`` coefficient planes with four real FFTs per iteration, in
float32 by default. Memory is a fixed number of planes per MSI pixel of the (halo + mirror-padded) tile,
independent of the scene (measurements: simulation/results/hyperspectral_speed.md).

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

from .filters import fft_size, pad
from .hs_iterative import blur_decimate, psf_otf
from .resample import upsample


def omp_gram(DtY: Tensor, G: Tensor, sparsity: int, norms: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Batch orthogonal matching pursuit from Gram matrices only (Batch-OMP): the signals themselves
    are never needed, only their correlations with the atoms.

    With the correlations :math:`D^T y` of every signal and the Gram matrix :math:`G = D^T D`, the
    correlation of the residual after the least-squares fit on the selected set :math:`S` is
    :math:`D^T r = D^T y - G_{:,S}\,\alpha_S`, and :math:`\alpha_S = G_{S,S}^{-1} (D^T y)_S`; so each step
    costs ``O(N A T)`` instead of ``O(N d A)`` and no ``(d, N, T)`` array of selected atoms is formed.

    Parameters
    ----------
    DtY : Tensor
        ``(N, A)`` correlations of the ``N`` signals with the ``A`` atoms.
    G : Tensor
        ``(A, A)`` Gram matrix of the atoms.
    sparsity : int
        Atoms per signal (at most ``A``).
    norms : Tensor, optional
        ``(A,)`` atom norms: the atom *selection* uses the correlations divided by them (as OMP on the
        column-normalised dictionary), the coefficients stay least squares on the atoms themselves.

    Returns
    -------
    idx, coef : Tensor, Tensor
        ``(N, T)`` selected atoms and ``(N, T)`` their coefficients.

    References
    ----------
    J. A. Tropp, A. C. Gilbert, IEEE TIT 53(12), 2007, doi:10.1109/TIT.2007.909108. R. Rubinstein,
    M. Zibulevsky, M. Elad, "Efficient implementation of the K-SVD algorithm using batch orthogonal
    matching pursuit", Technion CS-2008-08 (the Gram-matrix form).
    """
    N, A = DtY.shape
    T = max(1, min(int(sparsity), A))
    inv_n = None if norms is None else 1.0 / torch.clamp(norms, min=1e-12)
    rows = torch.arange(N, device=DtY.device)
    idx = torch.zeros(N, T, dtype=torch.long, device=DtY.device)
    coef = DtY.new_zeros(N, 0)
    for t in range(T):
        c = DtY.clone()
        for j in range(t):  # D^T r = D^T y - G[:, S] alpha_S, one selected atom at a time
            c.addcmul_(G.index_select(0, idx[:, j]), coef[:, j:j + 1], value=-1.0)
        c.abs_()
        if inv_n is not None:
            c.mul_(inv_n)
        if t:
            c.scatter_(1, idx[:, :t], -1.0)
        idx[:, t] = c.argmax(dim=1)
        del c
        sel = idx[:, : t + 1]
        Gs = G[sel[:, :, None], sel[:, None, :]]  # (N, t+1, t+1)
        b = torch.gather(DtY, 1, sel)
        eye = torch.eye(t + 1, dtype=DtY.dtype, device=DtY.device)
        coef = torch.linalg.solve(Gs + 1e-10 * eye * Gs.diagonal(dim1=1, dim2=2).mean(1)[:, None, None],
                                  b[..., None])[..., 0]
    return idx, coef


def _dense_codes(idx: Tensor, coef: Tensor, A: int) -> Tensor:
    """``(N, T)`` atoms and coefficients -> the ``(A, N)`` code matrix."""
    out = coef.new_zeros(A, idx.shape[0])
    out.scatter_(0, idx.T, coef.T)
    return out


def omp(Y: Tensor, D: Tensor, sparsity: int, Dn: Tensor | None = None) -> Tensor:
    """Batch orthogonal matching pursuit: codes ``(A, N)`` of ``Y`` (d, N) on ``D`` (d, A), at most
    ``sparsity`` atoms per column (:func:`omp_gram`). ``Dn`` (optional) is the dictionary used for the
    atom *selection*, a column-scaled ``D`` (e.g. column-normalised); the coefficients are least squares
    on ``D``'s selected columns."""
    A = D.shape[1]
    T = max(1, min(sparsity, A, D.shape[0]))
    norms = None
    if Dn is not None:
        norms = D.norm(dim=0) / torch.clamp(Dn.norm(dim=0), min=1e-30)
    idx, coef = omp_gram(Y.T @ D, D.T @ D, T, norms)
    return _dense_codes(idx, coef, A)


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


def _diff_h(x: Tensor, out: Tensor) -> Tensor:
    """Circular forward difference along columns, ``x[..., j] - x[..., j+1 mod W]``, into ``out``."""
    torch.sub(x[..., :-1], x[..., 1:], out=out[..., :-1])
    torch.sub(x[..., -1:], x[..., :1], out=out[..., -1:])
    return out


def _diff_v(x: Tensor, out: Tensor) -> Tensor:
    """Circular forward difference along rows, ``x[i] - x[i+1 mod H]``, into ``out``."""
    torch.sub(x[..., :-1, :], x[..., 1:, :], out=out[..., :-1, :])
    torch.sub(x[..., -1:, :], x[..., :1, :], out=out[..., -1:, :])
    return out


def _add_diff_h_adjoint(acc: Tensor, u: Tensor) -> None:
    """``acc += u[..., j] - u[..., j-1 mod W]`` (the adjoint of :func:`_diff_h`), in place."""
    acc.add_(u)
    acc[..., 1:].sub_(u[..., :-1])
    acc[..., :1].sub_(u[..., -1:])


def _add_diff_v_adjoint(acc: Tensor, u: Tensor) -> None:
    """``acc += u[i] - u[i-1 mod H]`` (the adjoint of :func:`_diff_v`), in place."""
    acc.add_(u)
    acc[..., 1:, :].sub_(u[..., :-1, :])
    acc[..., :1, :].sub_(u[..., -1:, :])


def _fft_group(shape: tuple[int, int, int], device: torch.device) -> int:
    """Planes per FFT call: all on a GPU; on a CPU groups of at most ~4 MB of spectrum, because the FFTs'
    internal work arrays for a whole ``(p, H, W)`` stack exceed glibc's mmap threshold and are then
    mapped and zeroed by the kernel on every call (measured at 640^2 x 30: irfft2 53 ms user + 83 ms
    system CPU per call; in groups of two planes 48 ms + 0)."""
    p, H, W = shape
    if device.type != "cpu":
        return p
    return max(1, min(p, (4 << 20) // max(1, H * (W // 2 + 1) * 8)))


def _rfft2_into(x: Tensor, out: Tensor, g: int) -> Tensor:
    for i in range(0, x.shape[0], g):
        torch.fft.rfft2(x[i:i + g], out=out[i:i + g])
    return out


def _irfft2_into(x: Tensor, out: Tensor, g: int) -> Tensor:
    s = tuple(out.shape[-2:])
    for i in range(0, x.shape[0], g):
        torch.fft.irfft2(x[i:i + g], s=s, out=out[i:i + g])
    return out


def weighted_subspace_admm(hs: Tensor, msi: Tensor, E: Tensor, R: Tensor, ratio: int, psf, *,
                           lambda_phi: float = 5e-3, lambda_m: float = 1.0, mu: float = 0.05, iters: int = 100,
                           weights: Tensor | None = None, x0: Tensor | None = None,
                           dtype: torch.dtype | None = None) -> Tensor:
    r"""The subspace ADMM of HySure (Simões et al. 2015) with per-pixel VTV weights, in a form that needs
    four FFTs per iteration and keeps only the ADMM state that is not implied by the others.

    Solves, for the coefficients :math:`X` (``p x n``) of the fused image :math:`Z = EX`,

    .. math::

        \min_X \tfrac12 \| Y_h - E X B M \|_F^2 + \tfrac{\lambda_m}{2} \| Y_m - R E X \|_F^2
               + \lambda_\varphi \sum_j w_j \sqrt{\textstyle\sum_i (X D_h)_{ij}^2 + (X D_v)_{ij}^2}

    with the splitting :math:`V_1 = XB, V_2 = X, V_3 = XD_h, V_4 = XD_v` and the same updates, in the
    same order, as :func:`geofuse.kernels.hs_hysure.subspace_admm` (which this equals up to rounding;
    tested). What differs is only how they are computed:

    * the difference operators and their adjoints are applied in the image domain (circular
      differences), so the ``X`` step is :math:`\hat X = (\widehat{V_1+D_1}\,\bar F_B
      + \mathcal F(V_2 + D_2 + D_h^T(V_3+D_3) + D_v^T(V_4+D_4))) / (|F_B|^2 + |F_{D_h}|^2 + |F_{D_v}|^2 + 1)`:
      two forward and two inverse real FFTs per iteration instead of four and four;
    * :math:`V_1` differs from :math:`XB - D_1` only on the decimation lattice (the HS term acts there
      only), so :math:`D_1` is zero elsewhere and is kept on the lattice only; the ``V_2 .. V_4`` updates
      are carried as :math:`V_i + D_i` and :math:`D_i` (what the next step reads);
    * the iterations run in ``dtype`` (default: that of ``msi``); the small ``p x p`` inverses and the
      spectra of the operators are formed in float64 and rounded once.

    Parameters
    ----------
    hs : Tensor
        ``(B, h, w)`` HS tile.
    msi : Tensor
        ``(K, H, W)`` MSI tile, ``H = ratio * h`` (the FFTs are periodic over it).
    E : Tensor
        ``(B, p)`` subspace basis (full column rank).
    R : Tensor
        ``(K, B)`` spectral response.
    ratio : int
        Resolution ratio.
    psf : tuple
        ``(kernel, (oy, ox))``: the blur and the pick offsets of the decimation.
    lambda_phi, lambda_m, mu, iters : float, float, float, int
        VTV weight, MSI weight, ADMM penalty, iteration count.
    weights : Tensor, optional
        ``(H, W)`` per-pixel VTV weights (default 1).
    x0 : Tensor, optional
        ``(p, H, W)`` warm start (default 0); the splitting variables start consistent with it.
    dtype : torch.dtype, optional
        Precision of the iterations (default ``msi.dtype``).

    Returns
    -------
    Tensor
        ``(p, H, W)`` coefficients ``X`` in ``dtype``.

    References
    ----------
    M. Simões, J. Bioucas-Dias, L. B. Almeida, J. Chanussot, IEEE TGRS 53(6), 2015,
    doi:10.1109/TGRS.2014.2375320.
    """
    dt = dtype or msi.dtype
    dev = msi.device
    B, h, w = hs.shape
    K, H, W = msi.shape
    p = E.shape[1]
    E64, R64 = E.to(dev, torch.float64), R.to(dev, torch.float64)
    oy, ox = psf[1]
    ly, lx = len(range(oy, H, ratio)), len(range(ox, W, ratio))
    half = W // 2 + 1
    # operator spectra (float64, rounded once): blur OTF and |F_Dh|^2 = 4 sin^2(pi k / W)
    FB64 = psf_otf(psf, (H, W), E64)[:, :half]
    ky = torch.arange(H, device=dev, dtype=torch.float64)
    kx = torch.arange(half, device=dev, dtype=torch.float64)
    dd = 4 * torch.sin(torch.pi * ky / H)[:, None] ** 2 + 4 * torch.sin(torch.pi * kx / W)[None, :] ** 2
    denom = FB64.abs() ** 2 + dd + 1.0
    ctype = torch.complex64 if dt == torch.float32 else torch.complex128
    FB = FB64.to(ctype)
    cFB = (FB64.conj() / denom).to(ctype)
    inv_d = (1.0 / denom).to(dt)
    del FB64, dd, denom
    eye = torch.eye(p, dtype=torch.float64, device=dev)
    IE_inv = torch.linalg.inv(E64.T @ E64 + mu * eye)
    RE = R64 @ E64
    IRE_inv = torch.linalg.inv(lambda_m * RE.T @ RE + mu * eye)
    # V1 on the lattice: IE_inv (E^T y_h + mu NU1); V2 everywhere: IRE_inv (lambda_m (RE)^T y_m + mu NU2)
    c1 = (IE_inv @ (E64.T @ hs.to(torch.float64).reshape(B, -1))).reshape(p, h, w)[:, :ly, :lx].to(dt)
    Q1 = (mu * IE_inv).to(dt)
    c2 = ((IRE_inv @ (lambda_m * RE.T)).to(dt) @ msi.to(dt).reshape(K, -1)).reshape(p, H, W)
    Q2 = (mu * IRE_inv).to(dt)
    tau = torch.full((H, W), lambda_phi / mu, dtype=dt, device=dev) if weights is None else \
        (lambda_phi / mu) * weights.to(dev, dt)

    lat = (slice(None), slice(oy, H, ratio), slice(ox, W, ratio))
    # Every plane of the loop is allocated once: planes of tens of MB are above glibc's mmap threshold, and
    # allocating them per iteration made the kernel zero fresh pages each time (system CPU time ~ user time).
    X = torch.zeros(p, H, W, dtype=dt, device=dev)
    S1, S2, S3, S4 = (torch.zeros_like(X) for _ in range(4))  # V_i + D_i
    D2, D3, D4 = (torch.zeros_like(X) for _ in range(3))
    tmp = torch.empty_like(X)
    Xf = torch.empty(p, H, half, dtype=ctype, device=dev)
    Ft = torch.empty_like(Xf)
    D1 = torch.zeros(p, ly, lx, dtype=dt, device=dev)  # zero off the lattice
    g = _fft_group((p, H, W), X.device)
    if x0 is not None:
        X.copy_(x0)
        _irfft2_into(_rfft2_into(X, Xf, g).mul_(FB), S1, g)
        S2.copy_(X)
        _diff_h(X, S3)
        _diff_v(X, S4)
    for _ in range(iters):
        # X step: one solve in the Fourier domain
        _rfft2_into(S1, Xf, g).mul_(cFB)
        _add_diff_h_adjoint(S2, S3)  # S2 is rebuilt below: V2 + D2 + Dh^T(V3 + D3) + Dv^T(V4 + D4)
        _add_diff_v_adjoint(S2, S4)
        Xf.add_(_rfft2_into(S2, Ft, g).mul_(inv_d))
        _irfft2_into(Xf, X, g)
        _irfft2_into(Xf.mul_(FB), S1, g)  # X B
        # V1 (HS term, on the lattice only): NU1 = XB - D1; V1 = c1 + Q1 NU1; D1 = V1 - NU1; S1 = V1 + D1
        nu1 = S1[lat] - D1
        v1 = c1 + torch.einsum("pq,qhw->phw", Q1, nu1)
        D1 = v1 - nu1
        S1[lat] = v1 + D1
        # V2 (MSI term): NU2 = X - D2; V2 = c2 + Q2 NU2; D2 = V2 - NU2; S2 = V2 + D2 = 2 V2 - NU2
        nu2 = torch.sub(X, D2, out=D2)  # D2 is not read again: reuse its memory
        torch.matmul(Q2, nu2.view(p, -1), out=S2.view(p, -1))
        S2.add_(c2)  # V2
        torch.sub(S2, nu2, out=D2)
        S2.add_(D2)
        # V3, V4 (weighted VTV): vector soft threshold of NU = (X Dh - D3, X Dv - D4)
        nu3 = _diff_h(X, S3).sub_(D3)
        nu4 = _diff_v(X, S4).sub_(D4)
        nrm = torch.mul(nu3, nu3, out=tmp).sum(0)
        nrm.add_(torch.mul(nu4, nu4, out=tmp).sum(0)).sqrt_()
        shrink = (nrm - tau).clamp_(min=0).div_(nrm.clamp_(min=1e-30))
        sm1 = shrink - 1.0  # D = V - NU = NU (shrink - 1); V + D = NU (2 shrink - 1)
        shrink.mul_(2).sub_(1)
        torch.mul(nu3, sm1, out=D3)
        torch.mul(nu4, sm1, out=D4)
        nu3.mul_(shrink)  # S3
        nu4.mul_(shrink)  # S4
    return X


def weighted_subspace_admm_mirrored(hs: Tensor, msi: Tensor, E: Tensor, R: Tensor, ratio: int, psf, *,
                                    pad_lr: int = 8, weights: Tensor | None = None, x0: Tensor | None = None,
                                    **kw) -> Tensor:
    """:func:`weighted_subspace_admm` on the tile extended by ``pad_lr`` HS samples (``ratio * pad_lr`` MSI
    pixels) of half-sample mirror on every side, cropped back (as
    :func:`geofuse.kernels.hs_hysure.subspace_admm_mirrored`: the FFT's periodic wrap then joins mirrored
    content, not opposite sides of the tile). The bottom and right extensions are lengthened by whole
    HS samples up to an FFT-friendly size (:func:`fft_size`)."""
    if pad_lr <= 0:
        return weighted_subspace_admm(hs, msi, E, R, ratio, psf, weights=weights, x0=x0, **kw)
    q = ratio * pad_lr
    _, H, W = msi.shape
    ey = (fft_size(H + 2 * q, ratio) - H - 2 * q) // ratio
    ex = (fft_size(W + 2 * q, ratio) - W - 2 * q) // ratio
    hp = pad(hs, pad_lr, pad_lr + ey, pad_lr, pad_lr + ex, "symmetric")
    mp = pad(msi, q, q + ratio * ey, q, q + ratio * ex, "symmetric")
    wp = None if weights is None else pad(weights[None], q, q + ratio * ey, q, q + ratio * ex, "symmetric")[0]
    xp = None if x0 is None else pad(x0, q, q + ratio * ey, q, q + ratio * ex, "symmetric")
    X = weighted_subspace_admm(hp, mp, E, R, ratio, psf, weights=wp, x0=xp, **kw)
    return X[:, q:q + H, q:q + W]


def _box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over ``(2 radius + 1)^2`` windows, half-sample mirror at the tile sides."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    xp = pad(x, radius, radius, radius, radius, "symmetric")
    return F.avg_pool2d(xp[None], k, stride=1)[0]


def gradient_magnitude(x: Tensor) -> Tensor:
    """``(C, H, W) -> (H, W)``: sqrt of the sum over bands of squared forward differences (replicate).
    Accumulated band by band: a few ``(H, W)`` planes of work memory instead of ``(C, H, W)`` ones (the
    estimate runs it on a window of up to ``estimate_pixels`` pixels)."""
    acc = torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device)
    for b in range(x.shape[0]):
        xb = x[b]
        gx = torch.diff(xb, dim=1, append=xb[:, -1:])
        acc.addcmul_(gx, gx)
        gy = torch.diff(xb, dim=0, append=xb[-1:, :])
        acc.addcmul_(gy, gy)
    return acc.sqrt_()


def dictionary_admm_apply(hs: Tensor, msi: Tensor, est: dict, ratio: int, phase, psf, *, sparsity: int = 3,
                          prior_weight: float = 0.1, window: int = 2, lambda_phi: float = 5e-3, lambda_m: float = 1.0,
                          mu: float = 0.05, iters: int = 100, pad_lr: int = 8, admm_dtype: torch.dtype | None = None,
                          return_stages: bool = False):
    r"""Steps 3-5 on one tile: ``hs`` (B, h, w), ``msi`` (K, ratio*h, ratio*w) -> fused (B, ratio*h, ratio*w).

    ``est`` holds ``D`` (B, A) dictionary, ``E`` (B, p) subspace, ``srf`` (K, B), ``scale`` (data scale)
    and ``grad_mean`` (mean MSI gradient magnitude, in scaled units). ``window`` is the radius (HS
    pixels) of the windows of the adaptive coefficient.

    Nothing of ``B`` bands is formed on the MSI grid except the output :math:`E X`: every step is linear
    in the spectra, so it runs on ``A`` code planes, ``K`` MSI planes or ``p`` subspace coefficients.

    * Coding (step 3) from correlations and a Gram matrix (:func:`omp_gram`): with
      :math:`D_j = [RD; \sqrt\eta D]` and :math:`y_j = [m; \sqrt\eta\tilde h]`,
      :math:`D_j^T y_j = (RD)^T m + \eta\,\mathrm{up}(D^T Y_h)` (the interpolation is linear and
      per-band, so it is applied to the ``A`` correlation planes instead of the ``B`` bands) and
      :math:`G = (RD)^T RD + \eta D^T D`.
    * Residual compensation (step 4): :math:`\mathcal{BD}(X_0) = D\,\mathcal{BD}(\alpha)`,
      :math:`\mathcal{BD}(\Delta) = E(RE)^+\mathcal{BD}(r_m)`, and the warm start of the ADMM, the
      least-squares coefficients of :math:`X_1` in :math:`E`, is
      :math:`E^+ X_1 = E^+ D\alpha + \beta (RE)^+ r_m` (as :math:`E^+E = I`).
    * Steps 3-4 run in float64 (the atom selection is an argmax: rounding must not flip it between a
      chunk and the whole image), the ADMM in ``admm_dtype`` (default float32, or float64 when the
      input is; see :func:`weighted_subspace_admm`).

    ``return_stages`` also returns ``X0``, ``X1`` (``B`` bands, for diagnostics) and ``beta``.
    """
    f64 = torch.float64
    dev = msi.device
    adt = admm_dtype or (f64 if msi.dtype == f64 else torch.float32)
    out_dt = msi.dtype
    s = float(est["scale"]) or 1.0
    hs = hs.to(f64) / s
    msi = msi.to(f64) / s
    D, E, R = (est[k].to(dev, f64) for k in ("D", "E", "srf"))
    B, h, w = hs.shape
    K, H, W = msi.shape
    A = D.shape[1]
    # 3. sparse coding of the MSI on R D, with the interpolated HS as a weak prior (Gram form)
    eta = prior_weight * K / B
    RD = R @ D
    DtY = upsample((D.T @ hs.reshape(B, -1)).reshape(A, h, w), ratio, phase, "bicubic", "symmetric")
    DtY = DtY.reshape(A, -1).mul_(eta).addmm_(RD.T, msi.reshape(K, -1)).T.contiguous()  # (N, A)
    G = RD.T @ RD + eta * (D.T @ D)
    idx, cf = omp_gram(DtY, G, max(1, min(sparsity, A, K + B)), norms=G.diagonal().sqrt())
    del DtY
    code = _dense_codes(idx, cf, A)  # (A, N)
    del idx, cf
    # 4. residual compensation with a locally adaptive coefficient
    RE = R @ E
    REp = torch.linalg.pinv(RE, rtol=1e-6)  # (p, K): min-norm spectral back-projection into span(E)
    r_m = msi.reshape(K, -1) - RD @ code  # (K, N)
    code_img = code.reshape(A, H, W)
    r_h = hs - torch.einsum("ba,ahw->bhw", D, blur_decimate(code_img, ratio, psf))
    d_h = torch.einsum("bk,khw->bhw", E @ REp, blur_decimate(r_m.reshape(K, H, W), ratio, psf))
    num = _box_mean((d_h * r_h).sum(0, keepdim=True), window)
    den = _box_mean((d_h * d_h).sum(0, keepdim=True), window)
    del r_h, d_h
    beta_lr = torch.clamp(num / torch.clamp(den, min=1e-12 * float(den.max().clamp_min(1e-30))), 0.0, 1.0)
    beta = upsample(beta_lr, ratio, phase, "bicubic", "symmetric").clamp(0.0, 1.0)
    Ep = torch.linalg.pinv(E)  # (p, B); E has full column rank: E^+ E = I
    x0 = ((Ep @ D) @ code).addcmul_(beta.reshape(1, -1), REp @ r_m)
    stages = None
    if return_stages:
        X0 = D @ code
        X1 = X0 + beta.reshape(1, -1) * (E @ (REp @ r_m))
        stages = {"X0": (s * X0).reshape(B, H, W).to(out_dt), "X1": (s * X1).reshape(B, H, W).to(out_dt),
                  "beta": beta.to(out_dt)}
    del code, code_img, r_m
    x0 = x0.reshape(-1, H, W).to(adt)
    # 5. variational refinement, warm-started at X1, VTV weighted by the MSI gradients
    g = gradient_magnitude(msi)
    wts = 1.0 / (1.0 + g / max(float(est["grad_mean"]), 1e-12))
    X = weighted_subspace_admm_mirrored(hs.to(adt), msi.to(adt), E, R, ratio, psf, pad_lr=pad_lr,
                                        weights=wts.to(adt), x0=x0, lambda_phi=lambda_phi, lambda_m=lambda_m,
                                        mu=mu, iters=iters, dtype=adt)
    del x0, wts, g
    out = torch.einsum("bp,phw->bhw", (s * E).to(adt), X).to(out_dt)
    if return_stages:
        return out, stages
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
    g = gradient_magnitude(msi).mean() / s  # the gradient is linear in the data: scale once, not per pixel
    return {"D": D, "E": E, "srf": R.to(hs), "scale": torch.tensor(s, dtype=hs.dtype),
            "grad_mean": g.to(hs.dtype)}


def dictionary_admm(hs: Tensor, msi: Tensor, R: Tensor, ratio: int, phase, psf, *, atoms: int = 48,
                    sparsity: int = 3, dict_iters: int = 15, p: int = 30, seed: int = 0, **kw) -> Tensor:
    """Whole-image dictionary-ADMM fusion: ``hs`` (B, h, w), ``msi`` (K, H, W), ``R`` (K, B) -> (B, H, W)."""
    est = dictionary_admm_estimate(hs, msi, R, atoms=atoms, sparsity=sparsity, dict_iters=dict_iters, p=p, seed=seed)
    return dictionary_admm_apply(hs, msi, est, ratio, phase, psf, sparsity=sparsity, **kw)
