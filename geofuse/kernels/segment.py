"""Segmentation kernels: seeded k-means (fit on a sample, nearest-centroid assignment) and the
segment-wise Gram-Schmidt injection of C-GSA. Pure torch on ``(C, H, W)`` / ``(N, C)`` tensors.

The k-means is fitted once on a global sample (by the method's ``estimate``); every chunk then labels
its pixels with :func:`assign_segments`, an elementwise rule, so labels do not depend on the chunking.
"""

from __future__ import annotations

import torch

__all__ = ["kmeans_fit", "assign_segments", "c_gsa"]


def kmeans_fit(x: torch.Tensor, k: int, seed: int = 0, max_iter: int = 100) -> torch.Tensor:
    r"""Seeded k-means (k-means++ initialisation, then Lloyd iterations) of the rows of ``x``.

    .. math::
        \min_{c_1..c_k} \sum_i \min_j \lVert x_i - c_j \rVert^2

    k-means++ (Arthur & Vassilvitskii 2007) draws the first centre uniformly and each next one with
    probability proportional to the squared distance to the nearest chosen centre, from a
    ``torch.Generator`` seeded with ``seed`` (deterministic); Lloyd iterations then alternate
    nearest-centre assignment and centroid update until the assignment stops changing or ``max_iter``
    (a centre that loses all its points keeps its position).

    Parameters
    ----------
    x : (N, C) tensor
        Samples (float64 recommended).
    k : int
        Number of clusters, ``1 <= k``; fewer distinct samples than ``k`` give duplicated centres.
    seed : int
    max_iter : int

    Returns
    -------
    (k, C) tensor
        Centroids, dtype and device of ``x``.

    References
    ----------
    S. Lloyd, "Least squares quantization in PCM", IEEE Trans. Information Theory 28(2), 129-137, 1982,
    doi:10.1109/TIT.1982.1056489. D. Arthur, S. Vassilvitskii, "k-means++: the advantages of careful
    seeding", Proc. ACM-SIAM SODA 2007, 1027-1035, doi:10.5555/1283383.1283494.
    """
    n = x.shape[0]
    if n == 0:
        return x.new_zeros((k, x.shape[1]))
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    xc = x.cpu()
    centres = [xc[int(torch.randint(n, (1,), generator=g))]]
    d2 = ((xc - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            i = int(torch.randint(n, (1,), generator=g))
        else:
            i = int(torch.multinomial(d2 / total, 1, generator=g))
        centres.append(xc[i])
        d2 = torch.minimum(d2, ((xc - xc[i]) ** 2).sum(1))
    c = torch.stack(centres)
    labels = None
    for _ in range(max_iter):
        new = torch.cdist(xc, c).argmin(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        # each cluster's rows, in their original order, as one contiguous run of a stable sort: the
        # same tensors as xc[labels == j], gathered once per iteration instead of once per cluster
        order = torch.argsort(labels, stable=True)
        xs = xc[order]
        counts = torch.bincount(labels, minlength=k).tolist()
        start = 0
        for j in range(k):
            if counts[j]:
                c[j] = xs[start:start + counts[j]].mean(0)
            start += counts[j]
    return c.to(device=x.device, dtype=x.dtype)


#: Pixels per slab of :func:`assign_segments` on the CPU (its few buffers stay in the cache).
ASSIGN_SLAB = 32768


def assign_segments(features: torch.Tensor, centroids: torch.Tensor, *,
                    divisor: torch.Tensor | None = None) -> torch.Tensor:
    r"""Label of the nearest centroid of every pixel (squared Euclidean distance, first on ties).

    .. math::
        S[i, j] = \arg\min_k \sum_c (f_c[i, j] - m_{k,c})^2

    Elementwise (no matrix product), so a pixel's label does not depend on the tile it lies in. On the
    CPU the pixels are processed in slabs of :data:`ASSIGN_SLAB` (the same operations, rounded the same
    way, in buffers that stay in the cache).

    Parameters
    ----------
    features : (C, H, W) tensor
    centroids : (K, C) tensor
    divisor : (C,) tensor, optional
        Label ``features / divisor`` (per band; divided slab by slab, the same quotients).

    Returns
    -------
    (H, W) int64 tensor
    """
    C = features.shape[0]
    flat = features.reshape(C, -1)
    N = flat.shape[1]
    dev, dt = features.device, features.dtype
    label = torch.zeros(N, dtype=torch.long, device=dev)
    cent = centroids.to(device=dev, dtype=dt)
    K = cent.shape[0]
    slab = ASSIGN_SLAB if dev.type == "cpu" else max(N, 1)
    size = min(slab, N)
    best, d, t = (torch.empty(size, dtype=dt, device=dev) for _ in range(3))
    f = torch.empty((C, size), dtype=dt, device=dev) if divisor is not None else None
    closer = torch.empty(size, dtype=torch.bool, device=dev)
    for a in range(0, N, slab):
        b = min(N, a + slab)
        n = b - a
        bs, ds, ts, cs, ls = best[:n], d[:n], t[:n], closer[:n], label[a:b]
        if divisor is None:
            fs = flat[:, a:b]
        else:
            fs = f[:, :n]
            torch.div(flat[:, a:b], divisor.to(device=dev, dtype=dt)[:, None], out=fs)
        for k in range(K):
            dist = bs if k == 0 else ds
            # 0 + (f_0 - m_0)^2 + (f_1 - m_1)^2 + ..., each square rounded before its sum
            for c in range(C):
                torch.sub(fs[c], cent[k, c], out=ts)
                if c == 0:
                    torch.mul(ts, ts, out=dist)
                else:
                    dist.add_(ts.mul_(ts))
            if k:
                torch.lt(ds, bs, out=cs)
                ls.masked_fill_(cs, k)
                torch.where(cs, ds, bs, out=bs)
    return label.reshape(features.shape[1:])


def c_gsa(ms: torch.Tensor, pan: torch.Tensor, intensity: torch.Tensor, labels: torch.Tensor,
          gains: torch.Tensor) -> torch.Tensor:
    r"""Segment-wise Gram-Schmidt injection (context-adaptive GSA).

    .. math::
        F_b = \widetilde{MS}_b + g_{S,b}\,(P - I),\qquad
        g_{s,b} = \frac{\mathrm{cov}(I, \widetilde{MS}_b \mid S = s)}{\mathrm{var}(I \mid S = s)}

    with :math:`I = \sum_b w_b \widetilde{MS}_b + w_0` the GSA intensity and :math:`S` the segment map.

    Parameters
    ----------
    ms : (C, H, W) tensor
        MS interpolated to the PAN grid.
    pan : (1, H, W) tensor
    intensity : (1, H, W) tensor
        :math:`I`.
    labels : (H, W) int64 tensor
        Segment of every pixel.
    gains : (K, C) tensor
        :math:`g_{s,b}` per segment and band.

    Returns
    -------
    (C, H, W) tensor

    References
    ----------
    R. Restaino, M. Dalla Mura, G. Vivone, J. Chanussot, "Context-adaptive pansharpening based on image
    segmentation", IEEE TGRS 55(2), 753-766, 2017, doi:10.1109/TGRS.2016.2614367.
    """
    g = gains.t()[:, labels]  # (C, H, W)
    return ms + g * (pan - intensity)
