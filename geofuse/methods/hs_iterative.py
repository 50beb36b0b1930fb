"""Iterative hyperspectral + multispectral fusion: CNMF and HySure (and the dictionary-ADMM method).

Engine contract (see :mod:`geofuse.engine`, "Hyperspectral methods"): ``block.pan`` is the (K, H, W)
MSI tile, ``block.ms_lr`` the (B, h, w) HS tile, ``ctx.srf`` the (K, B) spectral response (given or
estimated). The PSF of the HS is the grid's Gaussian (FWHM = ratio, :func:`geofuse.engine.gaussian_psf_kernel`),
taken as known.

Global quantities (endmembers, subspaces, dictionaries, scale) are estimated once in ``estimate``, on
the whole scene when it has at most ``estimate_pixels`` MSI pixels, else on the central window of that
size (an in-memory solve of bounded size: memory does not grow with the scene). ``apply`` then works per
chunk:

* ``cnmf``: pixel-wise multiplicative updates with the global endmembers plus a bicubic interpolation;
  with its 2-LR-pixel halo the chunked result equals the whole-image one up to float rounding;
* ``hysure``: an ADMM whose ``X`` step is an FFT solve, periodic over the chunk: a halo of ``halo`` MSI
  pixels absorbs the wrap-around and is trimmed. Stated seam bound: ``seam_tolerance`` (max
  ``|chunked - whole|`` over the dynamic range), asserted by the contract test and tests/test_hs_iterative.py.
"""

from __future__ import annotations

import math

import dask
import numpy as np
import torch

from ..engine import gaussian_psf_kernel
from ..kernels import hs_cnmf, hs_dictionary, hs_hysure
from ..registry import MethodSpec, Parameter, register

YOKOYA_2012 = "10.1109/TGRS.2011.2161320"
YOKOYA_2017 = "10.1109/MGRS.2016.2637824"
SIMOES_2015 = "10.1109/TGRS.2014.2375320"
NASCIMENTO_2005 = "10.1109/TGRS.2005.844293"

ESTIMATE_PIXELS = Parameter("estimate_pixels", "int", 1 << 20,
                            "MSI pixels used for the global estimate (the central window of a larger scene)",
                            min=1024)
SEED = Parameter("seed", "int", 0, "seed of the random parts (VCA directions)", min=0)


def _window(ctx, max_pixels: int):
    """The (lazy) HS and MSI of the central window of at most ``max_pixels`` MSI pixels (LR-aligned)."""
    r = ctx.ratio
    _, h, w = ctx.ms_lr.shape
    side = max(1, int(math.isqrt(max(1, max_pixels // (r * r)))))  # LR side of a square window
    wy, wx = min(h, side), min(w, side)
    if wy < h and wx == w:
        wy = min(h, max(1, max_pixels // (r * r * w)))
    if wx < w and wy == h:
        wx = min(w, max(1, max_pixels // (r * r * h)))
    y0, x0 = (h - wy) // 2, (w - wx) // 2
    hs = ctx.ms_lr[:, y0:y0 + wy, x0:x0 + wx]
    msi = ctx.pan[:, r * y0:r * (y0 + wy), r * x0:r * (x0 + wx)]
    valid = None if ctx.valid_lr is None else ctx.valid_lr[y0:y0 + wy, x0:x0 + wx]
    return hs, msi, valid


def _valid_pixels(hs, valid):
    """(B, n) HS pixels of the window, nodata pixels left out (they are filled with means by the engine)."""
    V = _t(hs).reshape(hs.shape[0], -1)
    if valid is None:
        return V
    keep = torch.as_tensor(np.asarray(valid).reshape(-1))
    return V[:, keep] if int(keep.sum()) > max(8, V.shape[0] // 4) else V


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _pad_lr(params, ratio: int) -> int:
    """Mirror pad in HS pixels: ``pad`` HS pixels, and at least ``4 * pad`` MSI pixels at ratios below 4
    (the FFT wrap's reach is counted in MSI pixels)."""
    p = int(params["pad"])
    return max(p, math.ceil(4 * p / ratio))


def _psf(block_or_ctx):
    return gaussian_psf_kernel(block_or_ctx.ratio, tuple(block_or_ctx.phase))


# -------------------------------------------------------------------------------------------------- CNMF


def _cnmf_solve(hs, msi, R, ratio, phase, params):
    psf = gaussian_psf_kernel(ratio, tuple(phase))
    est = hs_cnmf.cnmf_estimate(_t(hs), _t(msi), _t(R), ratio, tuple(phase), psf, iters=params["iters"],
                                endmembers=params["endmembers"], seed=params["seed"])
    return {k: v.numpy() for k, v in est.items()}


def _cnmf_estimate(ctx, params):
    hs, msi, _ = _window(ctx, params["estimate_pixels"])
    est = dask.delayed(_cnmf_solve, pure=True)(hs, msi, ctx.srf, ctx.ratio, tuple(ctx.phase), dict(params))
    return {k: est[k] for k in ("W_h0", "W_m", "W_h", "delta")}


def _f64(block, est):
    """The tile and the estimate in float64: long iterative solves stay reproducible to ~1e-12 (float32
    rounding differences, e.g. from memory alignment, would otherwise grow over hundreds of iterations)."""
    t = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in est.items()}
    return block.ms_lr.double(), block.pan.double(), t


def _cnmf_apply(block, est, params) -> torch.Tensor:
    hs, msi, est = _f64(block, est)
    out = hs_cnmf.cnmf_apply(hs, msi, est, block.ratio, tuple(block.phase), iters=params["iters"])
    return out.to(block.dtype)


def _cnmf_halo(params, ratio: int) -> int:
    return hs_cnmf.cnmf_halo(ratio)


register(MethodSpec(
    name="cnmf", title="CNMF (coupled non-negative matrix factorisation)", family="HS", scenario="hyperspectral",
    inputs=("hs", "msi"),
    parameters=(
        Parameter("iters", "int", 200, "inner iterations of each NMF (the review's default 200)", min=1),
        Parameter("endmembers", "int", 0, "number of endmembers M (0: max(min(30, B), VD(5e-2)))", min=0),
        SEED, ESTIMATE_PIXELS),
    references=(YOKOYA_2012, YOKOYA_2017, NASCIMENTO_2005),
    summary="Unmixes the HS into endmembers (VCA + NMF) and the MSI into abundances with the endmembers "
            "projected by the SRF, alternately (coupled NMF); the fused image is HS endmembers x MSI "
            "abundances. Physically interpretable and strong on spectra (low SAM); the endmembers are "
            "global, the abundances per pixel.",
    estimate=_cnmf_estimate, apply=_cnmf_apply, halo=_cnmf_halo, exact_chunking=False, seam_tolerance=1e-5))


# -------------------------------------------------------------------------------------------------- HySure


def _hysure_basis(hs, valid, params):
    Vh = _valid_pixels(hs, valid)
    s = float(Vh.max()) or 1.0
    E = hs_hysure.hysure_basis(Vh / s, params["p"], params["basis"], params["seed"])
    return E.numpy()


def _hysure_estimate(ctx, params):
    hs, _, valid = _window(ctx, params["estimate_pixels"])
    return {"E": dask.delayed(_hysure_basis, pure=True)(hs, valid, dict(params)), "scale": ctx.ms_lr.max()}


def _hysure_apply(block, est, params) -> torch.Tensor:
    hs, msi, est = _f64(block, est)
    s = float(est["scale"]) or 1.0
    hs, msi = hs / s, msi / s
    R = est["srf"]
    E = est["E"].to(msi)
    X = hs_hysure.subspace_admm_mirrored(hs, msi, E, R.to(msi), block.ratio, _psf(block),
                                         pad_lr=_pad_lr(params, block.ratio), lambda_phi=params["lambda_phi"],
                                         lambda_m=params["lambda_m"], mu=params["mu"], iters=params["iters"])
    return (s * torch.einsum("bp,phw->bhw", E, X)).to(block.dtype)


def _hysure_estimate_with_srf(ctx, params):
    est = _hysure_estimate(ctx, params)
    est["srf"] = ctx.srf
    return est


def _hysure_halo(params, ratio: int) -> int:
    return int(params["halo"])


register(MethodSpec(
    name="hysure", title="HySure (subspace + vector total variation, ADMM)", family="HS", scenario="hyperspectral",
    inputs=("hs", "msi"),
    parameters=(
        Parameter("p", "int", 30, "subspace dimension", min=1),
        Parameter("lambda_phi", "float", 1e-3, "vector total variation weight (data scaled by the HS maximum)",
                  min=0.0),
        Parameter("lambda_m", "float", 1.0, "weight of the MSI data term", min=0.0),
        Parameter("mu", "float", 0.05, "ADMM penalty", min=1e-9),
        Parameter("iters", "int", 200, "ADMM iterations", min=1),
        Parameter("basis", "str", "vca", "subspace: VCA endmembers (as in the review's toolbox) or SVD",
                  choices=("vca", "svd")),
        Parameter("halo", "int", 16, "overlap in MSI pixels around each chunk (absorbs the FFT's periodicity)",
                  min=0),
        Parameter("pad", "int", 8, "half-sample mirror extension of each chunk, in HS pixels (at least 4x as many MSI "
                  "pixels), before the FFT "
                  "solves", min=0),
        SEED, ESTIMATE_PIXELS),
    references=(SIMOES_2015, YOKOYA_2017),
    summary="Convex variational fusion: the image lives in a p-dimensional spectral subspace of the HS; "
            "its coefficients fit the HS through blur + decimation and the MSI through the SRF, with a "
            "vector total variation prior, solved by ADMM (FFT steps). Robust and accurate; slower than "
            "the hypersharpening methods (200 iterations per chunk).",
    estimate=_hysure_estimate_with_srf, apply=_hysure_apply, halo=_hysure_halo, exact_chunking=False,
    seam_tolerance=2e-3))


# -------------------------------------------------------------------------------------------------- dictionary-ADMM


def _dict_solve(hs, msi, valid, R, params):
    est = hs_dictionary.dictionary_admm_estimate(_valid_pixels(hs, valid), _t(msi), _t(R), atoms=params["atoms"],
                                                 sparsity=params["sparsity"], dict_iters=params["dict_iters"],
                                                 p=params["p"], seed=params["seed"])
    return {k: v.numpy() for k, v in est.items()}


def _dict_estimate(ctx, params):
    hs, msi, valid = _window(ctx, params["estimate_pixels"])
    est = dask.delayed(_dict_solve, pure=True)(hs, msi, valid, ctx.srf, dict(params))
    return {k: est[k] for k in ("D", "E", "srf", "scale", "grad_mean")}


def _dict_apply(block, est, params) -> torch.Tensor:
    # The kernel runs the coding and the residual compensation in float64 (small: A, K or p planes) and
    # the ADMM in ``admm_precision`` (float32 by default: ~3x faster FFTs, half the memory; seams and
    # quality measured in simulation/results/hyperspectral_speed.md).
    adt = torch.float64 if params["admm_precision"] == "float64" else torch.float32
    return hs_dictionary.dictionary_admm_apply(
        block.ms_lr, block.pan, est, block.ratio, tuple(block.phase), _psf(block), sparsity=params["sparsity"],
        prior_weight=params["prior_weight"], window=params["window"], lambda_phi=params["lambda_phi"],
        lambda_m=params["lambda_m"], mu=params["mu"], iters=params["iters"],
        pad_lr=_pad_lr(params, block.ratio), admm_dtype=adt).to(block.dtype)


def _dict_halo(params, ratio: int) -> int:
    # the ADMM's overlap plus the coefficient windows (HS pixels) and the PSF
    return int(params["halo"]) + ratio * int(params["window"])


def _dict_params(p_default: int) -> tuple[Parameter, ...]:
    return (
        Parameter("atoms", "int", 48, "dictionary atoms", min=1),
        Parameter("sparsity", "int", 3, "atoms per pixel in the sparse codes (OMP)", min=1),
        Parameter("dict_iters", "int", 15, "dictionary learning iterations (OMP + MOD)", min=1),
        Parameter("prior_weight", "float", 0.1, "weight of the interpolated low-resolution spectrum in the "
                  "sparse coding (relative, per band)", min=0.0),
        Parameter("window", "int", 2, "radius in low-resolution pixels of the windows of the adaptive "
                  "injection coefficient", min=0),
        Parameter("p", "int", p_default, "subspace dimension of the variational step", min=1),
        Parameter("lambda_phi", "float", 5e-3, "weight of the MSI-gradient-weighted vector TV (data scaled by "
                  "the low-resolution maximum)", min=0.0),
        Parameter("lambda_m", "float", 1.0, "weight of the high-resolution data term", min=0.0),
        Parameter("mu", "float", 0.05, "ADMM penalty", min=1e-9),
        Parameter("iters", "int", 100, "ADMM iterations (warm-started)", min=1),
        Parameter("admm_precision", "str", "float32", "floating-point precision of the ADMM iterations (the "
                  "sparse coding always runs in float64)", choices=("float32", "float64")),
        Parameter("halo", "int", 8, "ADMM overlap in high-resolution pixels around each chunk", min=0),
        Parameter("pad", "int", 8, "half-sample mirror extension of each chunk (low-resolution pixels; at "
                  "least 4x as many high-resolution pixels)", min=0),
        SEED, ESTIMATE_PIXELS)


_DICT_SUMMARY = ("Learns a spectral dictionary from the low-resolution image (OMP + MOD), sparse-codes the "
                 "high-resolution image on the SRF-projected atoms (preliminary result), injects the "
                 "remaining high-resolution residual with a locally adaptive coefficient fitted on windows "
                 "of the low-resolution residual, and refines by ADMM: data terms through blur + decimation "
                 "and through the SRF, and a vector TV weighted by the high-resolution gradients. GPU-ready "
                 "torch; slower than the closed-form methods.")
_DICT_REFS = ("10.1109/TGRS.2014.2381272", SIMOES_2015, "10.1109/ICASSP.1999.760624", "10.1109/TIT.2007.909108")

register(MethodSpec(
    name="dictionary_admm", title="Dictionary learning + ADMM with adaptive residual compensation", family="HS",
    scenario="hyperspectral", inputs=("hs", "msi"), parameters=_dict_params(30), references=_DICT_REFS,
    summary=_DICT_SUMMARY, estimate=_dict_estimate, apply=_dict_apply, halo=_dict_halo, exact_chunking=False,
    seam_tolerance=2e-3))

register(MethodSpec(
    name="dictionary_admm_pan", title="Dictionary learning + ADMM with adaptive residual compensation (PAN)",
    family="VO", scenario="pansharpening", inputs=("ms", "pan"), parameters=_dict_params(30),
    references=_DICT_REFS, summary=_DICT_SUMMARY + " Pansharpening form: the PAN is a 1-band MSI.",
    estimate=_dict_estimate, apply=_dict_apply, halo=_dict_halo, exact_chunking=False, seam_tolerance=2e-3))
