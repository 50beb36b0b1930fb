"""Iterative hyperspectral fusion (cnmf, hysure, dictionary_admm / dictionary_admm_pan): building blocks
against independent solutions, the stated seam bounds, and the Jasper Ridge protocol of SPEC section 9.

Independent references used here:

* VCA and OMP: synthetic data whose answer is known by construction (pure pixels of known endmembers,
  exactly sparse codes on an incoherent dictionary);
* the HySure ADMM: the same convex problem (without the TV term) solved directly from its normal
  equations, with the blur, decimation and spectral operators built as dense matrices by explicit loops
  (numpy), not by the FFTs the ADMM uses;
* the Jasper protocol: the published numbers of SPEC section 9 (Yokoya's toolbox under Octave).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geofuse
from geofuse import registry
from geofuse.engine import gaussian_psf_kernel
from geofuse.kernels.hs_dictionary import (dictionary_admm_apply, dictionary_admm_estimate, fft_size, omp,
                                          weighted_subspace_admm)
from geofuse.kernels.hs_hysure import subspace_admm
from geofuse.kernels.hs_iterative import blur_decimate, vca

from .conftest import shared_path
from .test_contract import synthetic_hs_pair

ITERATIVE = ("cnmf", "hysure", "dictionary_admm")


# -------------------------------------------------------------------------------------------------- building blocks


def test_vca_finds_the_pure_pixels():
    rng = np.random.default_rng(0)
    B, M, N = 40, 5, 600
    E = rng.uniform(0.05, 1.0, (B, M))
    A = rng.dirichlet(np.ones(M) * 0.7, N).T
    A[:, :M] = np.eye(M)  # every endmember appears pure once
    Y = torch.as_tensor(E @ A)
    got = vca(Y, M, seed=3).numpy()
    for m in range(M):  # each true endmember is one of the columns found
        err = np.abs(got - E[:, [m]]).max(axis=0).min()
        assert err < 1e-9, (m, err)


def test_omp_recovers_exactly_sparse_codes():
    rng = np.random.default_rng(1)
    d, A, N, T = 60, 90, 200, 3
    D = rng.standard_normal((d, A))
    D /= np.linalg.norm(D, axis=0)
    codes = np.zeros((A, N))
    for j in range(N):
        codes[rng.choice(A, T, replace=False), j] = rng.uniform(1, 2, T) * rng.choice([-1, 1], T)
    got = omp(torch.as_tensor(D @ codes), torch.as_tensor(D), T).numpy()
    np.testing.assert_allclose(got, codes, atol=1e-9)


def test_omp_selects_on_the_normalised_atoms_and_fits_the_scaled_ones():
    """Atoms of very different norms: the selection uses the column-normalised dictionary ``Dn`` (an
    unnormalised correlation would prefer the long atoms), the coefficients are least squares on ``D``."""
    rng = np.random.default_rng(4)
    d, A, N, T = 50, 70, 150, 2
    Dn = rng.standard_normal((d, A))
    Dn /= np.linalg.norm(Dn, axis=0)
    s = rng.uniform(0.2, 5.0, A)
    D = Dn * s
    codes = np.zeros((A, N))
    for j in range(N):
        codes[rng.choice(A, T, replace=False), j] = rng.uniform(1, 2, T)
    Y = Dn @ codes  # exactly T atoms of Dn: on D the coefficients are codes / s
    got = omp(torch.as_tensor(Y), torch.as_tensor(D), T, Dn=torch.as_tensor(Dn)).numpy()
    np.testing.assert_allclose(got, codes / s[:, None], rtol=1e-7, atol=1e-9)


def test_weighted_admm_equals_the_hysure_admm():
    """The dictionary method's ADMM (image-domain differences, 4 FFTs per iteration, reduced state) runs
    the same iterations as :func:`subspace_admm` (all operators as FFT multipliers): equal to rounding in
    float64, and within float32 rounding in float32; with VTV weights and a warm start."""
    rng = np.random.default_rng(5)
    r, H, W, B, p, K = 4, 48, 40, 20, 6, 4
    psf = gaussian_psf_kernel(r, ((r - 1) / 2, (r - 1) / 2))
    E = torch.as_tensor(rng.uniform(0, 1, (B, p)))
    R = torch.as_tensor(rng.uniform(0, 1, (K, B)))
    R /= R.sum(1, keepdim=True)
    hs = torch.as_tensor(rng.uniform(0.2, 1, (B, H // r, W // r)))
    msi = torch.as_tensor(rng.uniform(0.2, 1, (K, H, W)))
    kw = {"weights": torch.as_tensor(rng.uniform(0.3, 1, (H, W))), "x0": torch.as_tensor(rng.uniform(0, 1, (p, H, W)))}
    want = subspace_admm(hs, msi, E, R, r, psf, lambda_phi=1e-2, iters=50, **kw)
    got = weighted_subspace_admm(hs, msi, E, R, r, psf, lambda_phi=1e-2, iters=50, **kw)
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= 1e-12 * scale
    got32 = weighted_subspace_admm(hs.float(), msi.float(), E, R, r, psf, lambda_phi=1e-2, iters=50,
                                   **{k: v.float() for k, v in kw.items()})
    assert got32.dtype == torch.float32
    assert float((got32.double() - want).abs().max()) <= 1e-5 * scale


def test_fft_size_is_five_smooth_and_a_multiple():
    for n, m in [(376, 4), (632, 4), (164, 4), (97, 1), (1144, 4), (7, 3)]:
        got = fft_size(n, m)
        k = got
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        assert k == 1 and got % m == 0 and got >= n
        assert all(fft_size(j, m) > j or j % m for j in range(n, got))  # the smallest such size


def test_dictionary_stages_match_their_band_space_definitions():
    """The per-chunk steps run on code / MSI / subspace planes; checked against their definitions written
    with ``B``-band images (SPEC section 0 design, module docstring of geofuse.kernels.hs_dictionary):
    X0 = D * OMP of the stacked signal [m; sqrt(eta) h~] on [R D; sqrt(eta) D] (the interpolated HS formed
    explicitly), and the ADMM's warm start (returned unchanged with 0 iterations) = the projection of X1
    onto span(E) by least squares."""
    from geofuse.kernels.resample import upsample

    rng = np.random.default_rng(6)
    hs_da, msi_da, Rm = synthetic_hs_pair((12, 14), 4, bands=24, msi_bands=5, dtype=np.float64, seed=3,
                                          chunks=None)
    hs, msi, R = (torch.as_tensor(np.asarray(a, np.float64)) for a in (hs_da.values, msi_da.values, Rm))
    hs = hs + torch.as_tensor(rng.normal(0, 5, hs.shape))  # not exactly the MSI's spectra
    r, phase = 4, (1.5, 1.5)
    psf = gaussian_psf_kernel(r, phase)
    est = dictionary_admm_estimate(hs, msi, R, atoms=16, sparsity=3, dict_iters=4, p=6)
    out, st = dictionary_admm_apply(hs, msi, est, r, phase, psf, sparsity=3, iters=0, return_stages=True)
    s = float(est["scale"])
    D, E = est["D"], est["E"]
    B, K = hs.shape[0], msi.shape[0]
    eta = 0.1 * K / B
    h_up = upsample(hs / s, r, phase, "bicubic", "symmetric")
    Dj = torch.cat([R @ D, eta ** 0.5 * D])
    Yj = torch.cat([(msi / s).reshape(K, -1), eta ** 0.5 * h_up.reshape(B, -1)])
    X0 = s * (D @ omp(Yj, Dj, 3, Dn=Dj / Dj.norm(dim=0, keepdim=True)))
    np.testing.assert_allclose(st["X0"].reshape(B, -1).numpy(), X0.numpy(), rtol=0, atol=1e-9 * float(X0.abs().max()))
    X1 = st["X1"].reshape(B, -1)
    proj = E @ torch.linalg.lstsq(E, X1).solution
    np.testing.assert_allclose(out.reshape(B, -1).numpy(), proj.numpy(), rtol=0, atol=1e-6 * float(X1.abs().max()))
    assert 0.0 <= float(st["beta"].min()) and float(st["beta"].max()) <= 1.0


def _dense_ops(H, W, r, psf):
    """Dense (n x n) circular blur ``Bm`` (correlation with the PSF kernel centred on each pixel, periodic)
    and the (n_lr x n) picking matrix, by explicit loops (row-major pixel order)."""
    k, (oy, ox) = psf
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    n = H * W
    Bm = np.zeros((n, n))
    for i in range(H):
        for j in range(W):
            for u in range(-ry, ry + 1):
                for v in range(-rx, rx + 1):
                    Bm[i * W + j, ((i + u) % H) * W + (j + v) % W] += k[u + ry, v + rx]
    picks = [i * W + j for i in range(oy, H, r) for j in range(ox, W, r)]
    S = np.zeros((len(picks), n))
    S[np.arange(len(picks)), picks] = 1.0
    return Bm, S


def test_hysure_admm_reaches_the_least_squares_optimum():
    """Without the TV term the problem is least squares; its optimum from the normal equations (dense
    operators built independently of the FFTs) is what the ADMM converges to."""
    rng = np.random.default_rng(2)
    r, H, W, B, p, K = 2, 8, 10, 6, 3, 2
    psf = gaussian_psf_kernel(r, ((r - 1) / 2, (r - 1) / 2))
    E, _ = np.linalg.qr(rng.standard_normal((B, p)))
    R = rng.uniform(0, 1, (K, B))
    R /= R.sum(1, keepdims=True)
    hs = rng.uniform(0.2, 1.0, (B, H // r, W // r))
    msi = rng.uniform(0.2, 1.0, (K, H, W))
    lam_m = 0.7
    Bm, S = _dense_ops(H, W, r, psf)
    # unknown x = vec(X) with X (p, n) row-major per coefficient: Yh ~ E X Bm^T S^T, Ym ~ R E X
    n = H * W
    Op_h = np.kron(E, S @ Bm)  # (B * n_lr, p * n)
    Op_m = np.kron(R @ E, np.eye(n))  # (K * n, p * n)
    lhs = Op_h.T @ Op_h + lam_m * Op_m.T @ Op_m
    rhs = Op_h.T @ hs.reshape(-1) + lam_m * Op_m.T @ msi.reshape(-1)
    x_ls = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    # the minimiser is unique only up to the null space; compare the fitted data instead of X itself
    X = subspace_admm(torch.as_tensor(hs), torch.as_tensor(msi), torch.as_tensor(E), torch.as_tensor(R), r, psf,
                      lambda_phi=0.0, lambda_m=lam_m, mu=0.5, iters=3000).numpy().reshape(-1)

    def cost(x):
        return (0.5 * np.sum((Op_h @ x - hs.reshape(-1)) ** 2)
                + 0.5 * lam_m * np.sum((Op_m @ x - msi.reshape(-1)) ** 2))

    assert cost(X) <= cost(x_ls) * (1 + 1e-6) + 1e-12, (cost(X), cost(x_ls))
    np.testing.assert_allclose(Op_h @ X, Op_h @ x_ls, atol=1e-6)
    np.testing.assert_allclose(Op_m @ X, Op_m @ x_ls, atol=1e-6)


def test_blur_decimate_matches_the_dense_operator():
    rng = np.random.default_rng(4)
    r, H, W = 4, 24, 20
    psf = gaussian_psf_kernel(r, (1.5, 1.5))
    x = rng.standard_normal((2, H, W))
    Bm, S = _dense_ops(H, W, r, psf)
    got = blur_decimate(torch.as_tensor(x), r, psf).numpy()
    want = np.stack([(S @ Bm @ b.reshape(-1)).reshape(H // r, W // r) for b in x])
    # away from the borders (the dense operator is periodic, the kernel replicates)
    np.testing.assert_allclose(got[:, 1:-1, 1:-1], want[:, 1:-1, 1:-1], atol=1e-12)


# -------------------------------------------------------------------------------------------------- seams

#: Bound on max |chunked - whole| / (max - min of whole) on the 192 x 192 scene below (2 x 2 chunks of 96
#: plus halo, float32 output, shortened iterations), asserted here; each is within the method's declared
#: ``seam_tolerance``. Measured (2026-11-25, 8-pixel mirror pad): cnmf 0 (pixel-wise updates, exact),
#: hysure 1.2e-6, dictionary_admm 1.2e-7 (with a 4-pixel pad: 1.1e-3 and 4.6e-5). dictionary_admm runs its
#: ADMM in float32 since 2026-12-03: 9.0e-6 (40 iterations; 1.8e-5 with the default 100), spread over the
#: whole image (99.9th percentile 5e-6), i.e. float32 rounding of FFTs of different sizes, not a seam
#: structure; with ``admm_precision="float64"`` still 1.2e-7 (test below).
SEAM_MEASURED = {"cnmf": 1e-6, "hysure": 1e-5, "dictionary_admm": 2e-5}


@pytest.fixture(scope="module")
def seam_scene():
    hs, msi, _ = synthetic_hs_pair((48, 48), 4, dtype=np.float32, seed=7, chunks=None)
    return hs, msi


@pytest.mark.parametrize("method", ITERATIVE)
def test_seam_bound(method, seam_scene):
    hs, msi = seam_scene
    spec = registry.get(method)
    fast = {"cnmf": {"iters": 60}, "hysure": {"iters": 40}, "dictionary_admm": {"iters": 40}}[method]
    chunked = geofuse.fuse_hyperspectral(hs, msi, method, chunks=96, dtype="float32", **fast)
    assert min(chunked.data.numblocks[1:]) >= 2
    whole = geofuse.fuse_hyperspectral(hs, msi, method, chunks=4096, dtype="float32", **fast).values
    got = chunked.values
    span = float(whole.max() - whole.min())
    seam = float(np.abs(got.astype(np.float64) - whole).max()) / span
    assert seam <= SEAM_MEASURED[method] <= spec.seam_tolerance, (method, seam)


def test_dictionary_admm_seam_bound_in_float64(seam_scene):
    """With the ADMM in float64 the chunked result equals the whole-image one to 1.2e-7 of the range (the
    halo and the mirror pad absorb the FFT's periodicity); the float32 default adds only rounding."""
    hs, msi = seam_scene
    kw = {"iters": 40, "admm_precision": "float64"}
    chunked = geofuse.fuse_hyperspectral(hs, msi, "dictionary_admm", chunks=96, dtype="float32", **kw)
    assert min(chunked.data.numblocks[1:]) >= 2
    whole = geofuse.fuse_hyperspectral(hs, msi, "dictionary_admm", chunks=4096, dtype="float32", **kw).values
    seam = float(np.abs(chunked.values.astype(np.float64) - whole).max()) / float(whole.max() - whole.min())
    assert seam <= 1e-6, seam


# -------------------------------------------------------------------------------------------------- Jasper protocol

#: SPEC section 9, Yokoya review toolbox under Octave: (SAM degrees, ERGAS).
SPEC_JASPER = {"cnmf": (3.28, 1.57), "hysure": (3.32, 1.59), "glp_hs": (5.00, 1.68)}

PROTOCOL = ("in the review's protocol (simulation.hyperspectral.fuse_protocol: the demo's input clip at 0, HySure's "
            "output projection; ERGAS with the fused means as QualityIndices.m), where GSA-HS reproduces the "
            "reference to 0.3%, so the simulation itself is not the cause")


@pytest.fixture(scope="module")
def jasper_metrics():
    """(SAM, ERGAS) on Jasper: ``plain`` (geofuse's defaults, reference-mean ERGAS; for the comparisons
    between geofuse's methods) and ``toolbox`` (the review's protocol, toolbox ERGAS; for the SPEC targets)."""
    shared_path("data", "hyperspectral", "HSI_jasperRidge2_R198.mat")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOFUSE_SRF_DIR", str(shared_path("data", "hyperspectral")))
    from geofuse.metrics import reduced
    from simulation.hyperspectral import ergas_fused_means, fuse_protocol, load_cube, simulate

    ref, hs, msi = simulate(load_cube("jasper"), 4, "Sentinel-2A", 35.0, seed=0)
    mp.undo()
    g = np.asarray(ref.values, np.float64)
    out = {}
    for m in ("glp_hs", "cnmf", "hysure", "dictionary_admm"):
        f = np.asarray(geofuse.fuse_hyperspectral(hs, msi, m, dtype="float32").values, np.float64)
        out[m] = (float(reduced.sam(f, g)), float(reduced.ergas(f, g, 4)))
    for m in ("glp_hs", "cnmf", "hysure", "dictionary_admm"):
        f, _ = fuse_protocol(m, hs, msi, "toolbox")
        out["toolbox", m] = (float(reduced.sam(f, g)), ergas_fused_means(f, g, 4))
    return out


def _within(got, want, tol):
    return all(abs(g - w) <= tol * w for g, w in zip(got, want))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured SAM 4.01 (+22%) / ERGAS 1.904 (+21%) " + PROTOCOL + "; ruled out: "
                   "the SRF (the toolbox's estR with intercept: 4.02 / 1.907) and the chunked per-pixel apply (the "
                   "toolbox's global MSI abundances: 4.24 / 2.00); noise-free 2.94 / 1.57; cause not found")
def test_jasper_cnmf_within_5_percent(jasper_metrics):
    got = jasper_metrics["toolbox", "cnmf"]
    assert _within(got, SPEC_JASPER["cnmf"], 0.05), got


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured SAM 3.59 (+8.0%, within) / ERGAS 1.858 (+16.8%) " + PROTOCOL +
                   "; the toolbox's SRF (estR) changes nothing (3.56 / 1.851); the toolbox also estimates the blur "
                   "(7x7, lambda_B = 10) where geofuse uses the known PSF (not emulated)")
def test_jasper_hysure_within_10_percent(jasper_metrics):
    got = jasper_metrics["toolbox", "hysure"]
    assert _within(got, SPEC_JASPER["hysure"], 0.10), got


@pytest.mark.slow
def test_jasper_relative_order_as_in_the_reference(jasper_metrics):
    """What the remaining differences leave intact: CNMF and HySure have a far lower SAM than GLP-HS
    (reference 3.28 and 3.32 vs 5.00), and HySure's SAM is within 10% of the reference."""
    m = jasper_metrics
    tb = {k: m["toolbox", k] for k in ("glp_hs", "cnmf", "hysure")}
    assert tb["cnmf"][0] < 0.8 * tb["glp_hs"][0] and tb["hysure"][0] < 0.8 * tb["glp_hs"][0], tb
    assert abs(tb["hysure"][0] - SPEC_JASPER["hysure"][0]) <= 0.10 * SPEC_JASPER["hysure"][0], tb


@pytest.mark.slow
def test_jasper_dictionary_admm_beats_cnmf_and_glp_on_sam(jasper_metrics):
    m = jasper_metrics
    d = m["dictionary_admm"]
    assert d[0] < m["cnmf"][0] and d[0] < m["glp_hs"][0], m
    assert d[1] < m["cnmf"][1], m


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured ERGAS 1.868 vs GLP-HS 1.846 (+1.2%) on Jasper with the estimated "
                                        "SRF (1.71 with the Sentinel-2A SRF given); it wins on Samson and Urban")
def test_jasper_dictionary_admm_beats_glp_on_ergas(jasper_metrics):
    assert jasper_metrics["dictionary_admm"][1] < jasper_metrics["glp_hs"][1], jasper_metrics


@pytest.mark.slow
def test_jasper_dictionary_admm_beats_cnmf_and_glp_in_the_toolbox_protocol(jasper_metrics):
    """The issue's goal, in the protocol where the SPEC comparison is made (each method's output as the
    review's demo treats it, ERGAS as its QualityIndices.m): dictionary_admm below GLP-HS and CNMF in
    SAM and ERGAS (measured 3.60 / 1.79 vs 5.42 / 1.85 and 4.01 / 1.90)."""
    d = jasper_metrics["toolbox", "dictionary_admm"]
    for other in ("glp_hs", "cnmf"):
        o = jasper_metrics["toolbox", other]
        assert d[0] < o[0] and d[1] < o[1], (other, d, o)


# -------------------------------------------------------------------------------------------------- PAN as MSI


@pytest.mark.slow
def test_dictionary_admm_with_a_pan_both_entry_points():
    """The PAN case (a 1-band MSI): Jasper's Sentinel-2 MSI averaged into one band. Through
    ``fuse_hyperspectral`` (dictionary_admm) and through ``pansharpen`` (dictionary_admm_pan) the same
    torch function runs; both beat the interpolated HS (ERGAS, SAM)."""
    shared_path("data", "hyperspectral", "HSI_jasperRidge2_R198.mat")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOFUSE_SRF_DIR", str(shared_path("data", "hyperspectral")))
    from geofuse.metrics import reduced
    from simulation.hyperspectral import load_cube, simulate

    ref, hs, msi = simulate(load_cube("jasper"), 4, "Sentinel-2A", 35.0, seed=0)
    mp.undo()
    pan = msi.isel(band=slice(0, 7)).mean("band", keep_attrs=True).expand_dims(band=[1]).rio.write_crs(msi.rio.crs)
    pan = pan.rio.write_transform(msi.rio.transform())
    g = ref.values.astype(np.float64)

    def score(x):
        f = np.asarray(x, np.float64)
        return float(reduced.sam(f, g)), float(reduced.ergas(f, g, 4))

    fast = {"iters": 60}
    a = geofuse.fuse_hyperspectral(hs, pan, "dictionary_admm", dtype="float32", **fast).values
    hs_plain = hs.drop_vars("wavelength") if "wavelength" in hs.coords else hs
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = geofuse.pansharpen(hs_plain, pan, "dictionary_admm_pan", dtype="float32", **fast).values
        interp = geofuse.pansharpen(hs_plain, pan, "exp", dtype="float32").values
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(np.abs(a).max()))
    s_dict, s_exp = score(a), score(interp)
    assert s_dict[0] < s_exp[0] and s_dict[1] < s_exp[1], (s_dict, s_exp)
