"""Hyperspectral + multispectral fusion by hypersharpening: GSA-HS, SFIM-HS, GLP-HS.

Pansharpening methods extended to HS-MS fusion (Yokoya, Grohnfeldt & Chanussot 2017,
doi:10.1109/MGRS.2016.2637824; Selva et al. 2015, doi:10.1109/JSTARS.2015.2440092): every HS band is
sharpened with its own "PAN" taken from the MSI -- its best-correlated MSI band (GSA-HS) or a
least-squares synthetic image of the MSI bands fitted at the HS resolution (GLP-HS, mode 2 of the
review's toolbox; SFIM-HS, non-negative fit, mode 3).

Engine contract (see :mod:`geofuse.engine`, "Hyperspectral methods"): ``block.pan`` is the (K, H, W)
MSI tile, ``block.ms_lr`` the (B, h, w) HS tile; ``ctx.msi_lr`` is the MSI degraded onto the HS grid
by the HS PSF (Gaussian, FWHM = ratio). All regression coefficients and gains are global (one pass of
moments over the image); ``apply`` is local, so chunked == whole image exactly.

Interpolation of the HS onto the MSI grid: each method has an ``upsampling`` parameter whose default
follows the review's implementations (GSA: MATLAB ``imresize`` bicubic; SFIM: nearest neighbour; GLP:
the 23-tap polynomial interpolator), so the Jasper Ridge protocol reproduces the review's numbers; the
other choices are usually better for SFIM.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import torch

from .. import stats
from ..kernels import hs_simple as K
from ..kernels.resample import upsample as _upsample
from ..kernels.resample import upsample_halo
from ..registry import MethodSpec, Parameter, register

YOKOYA_2017 = "10.1109/MGRS.2016.2637824"
SELVA_2015 = "10.1109/JSTARS.2015.2440092"
UPSAMPLERS = ("interp23tap", "interp23tap_avg", "bicubic", "lanczos3", "nearest")


def _up_param(default: str) -> Parameter:
    return Parameter("upsampling", "str", default, "interpolator of the HS onto the MSI grid", choices=UPSAMPLERS)


def _kind(params, ratio: int) -> str:
    kind = params.get("upsampling", "interp23tap")
    if kind in ("interp23tap", "interp23tap_avg") and ratio & (ratio - 1):
        return "lanczos3"  # interp23tap exists for powers of two only
    return kind


def upsample_hs(block, x, params) -> torch.Tensor:
    """Interpolate an LR tile with the method's ``upsampling`` choice (engine border rule)."""
    kind = _kind(params, block.ratio)
    if kind == "nearest":
        return K.nearest_upsample(x, block.ratio, block.phase)
    if kind == "interp23tap_avg":
        # the review toolbox's GLP for even ratios: the mean of the interpolations at the two integer
        # phases around the corner-aligned (half-integer) one
        py, px = block.phase
        lo = (float(np.floor(py)), float(np.floor(px)))
        hi = (float(np.ceil(py)), float(np.ceil(px)))
        return 0.5 * (_upsample(x, block.ratio, lo, "interp23tap", block.border)
                      + _upsample(x, block.ratio, hi, "interp23tap", block.border))
    if kind == block.interpolation and x is block.ms_lr:
        return block.ms
    return _upsample(x, block.ratio, block.phase, kind, block.border)


def _halo(params, ratio: int) -> int:
    """The HS PSF's support (the low pass of the MSI) plus whatever context the method's interpolator
    needs beyond the engine's own interpolator (whose halo the engine adds itself)."""
    phases = ((ratio - 1) / 2, float(ratio // 2), float(ratio // 2 - 1))
    kind = _kind(params, ratio)
    if kind == "nearest":
        up = K.nearest_halo(ratio)
    else:
        k = "interp23tap" if kind == "interp23tap_avg" else kind
        up = max(upsample_halo(ratio, p, k) for p in phases)
    engine_kind = "interp23tap" if not ratio & (ratio - 1) else "lanczos3"
    engine_up = min(upsample_halo(ratio, p, engine_kind) for p in phases)
    fit = 2 * ratio + 1 if params.get("fit_lr", "psf") == "bicubic_aa" else K.psf_halo(ratio)
    return max(K.psf_halo(ratio), fit) + ratio * max(0, up - engine_up)


def _msi_lr_tile(block) -> torch.Tensor:
    from ..kernels.filters import correlate2d

    k, off = K.gaussian_psf_kernel(block.ratio, block.phase)
    return correlate2d(block.pan, k, mode="replicate", stride=block.ratio, offset=off)


def _materialise_kw(**est):
    return {k: np.asarray(v) for k, v in est.items()}


# -------------------------------------------------------------------------------------------------- regressions


def _ls_with_intercept(mean: np.ndarray, cov: np.ndarray, nk: int) -> tuple[np.ndarray, np.ndarray]:
    """``H_b ~ W[:, b] . M + c_b`` from the joint moments of [M (nk), H (B)] (least squares)."""
    cmm, cmh = cov[:nk, :nk], cov[:nk, nk:]
    w = np.linalg.lstsq(cmm, cmh, rcond=None)[0]  # (K, B)
    c = mean[nk:] - w.T @ mean[:nk]
    return w, c


def _nnls_with_intercept(mean: np.ndarray, cov: np.ndarray, n: float, nk: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares ``H_b ~ W[:, b] . M + c_b`` (W, c >= 0) from the raw moments."""
    from scipy.optimize import nnls

    raw = cov * ((n - 1) / n) + np.outer(mean, mean)
    G = np.zeros((nk + 1, nk + 1))
    G[:nk, :nk] = raw[:nk, :nk]
    G[:nk, nk] = G[nk, :nk] = mean[:nk]
    G[nk, nk] = 1.0
    C = np.vstack([raw[:nk, nk:], mean[nk:][None]])  # (K+1, B)
    L = np.linalg.cholesky(G + 1e-12 * np.trace(G) * np.eye(nk + 1))
    out = np.stack([nnls(L.T, np.linalg.solve(L, C[:, b]), maxiter=100 * (nk + 1))[0] for b in range(C.shape[1])],
                   axis=1)
    return out[:nk], out[nk]


FIT_LR = ("psf", "bilinear", "bilinear_aa", "bicubic_aa")


def _fit_param(default: str) -> Parameter:
    return Parameter("fit_lr", "str", default, "MSI degradation onto the HS grid for the synthetic-PAN fit: the HS "
                     "PSF, or imresize bilinear without / with antialiasing, or imresize bicubic with "
                     "antialiasing (the review's toolbox: bilinear in GLP-HS and SFIM-HS, bicubic in GSA)",
                     choices=FIT_LR)


def _cubic(h: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB / Octave ``imresize`` ``'bicubic'``; Keys 1981,
    doi:10.1109/TASSP.1981.1163711)."""
    a = np.abs(h)
    return np.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                    np.where(a < 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, 0.0))


def imresize_shrink_kernel(ratio: int, phase: float) -> tuple[np.ndarray, int]:
    """1-D weights of MATLAB's ``imresize(x, 1/ratio, 'bicubic')`` with antialiasing (the default when
    shrinking; Octave's image package since 2.14 too): the cubic kernel stretched by ``ratio``,
    ``w(d) = cubic(d / ratio) / ratio``, sampled at the input pixels around the output pixel's centre
    ``ratio*k + phase`` (half-integer for even ratios), normalised to sum one as MATLAB does.

    Parameters
    ----------
    ratio : int
        Shrink factor.
    phase : float
        HR position of LR sample 0 (``(ratio - 1) / 2`` for corner-aligned grids).

    Returns
    -------
    (weights, offset) : an odd-length 1-D kernel (``2 * ceil(2 * ratio + frac) + 1`` taps) centred on
    ``floor(phase)``, and that integer pick offset for :func:`geofuse.kernels.filters.correlate2d`.

    References
    ----------
    R. Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP 29(6), 1981,
    doi:10.1109/TASSP.1981.1163711; Yokoya et al. 2017 (the toolbox's GSA fit), doi:10.1109/MGRS.2016.2637824.
    """
    a = int(np.floor(phase + 1e-9))
    frac = phase - a
    half = int(np.ceil(2 * ratio + frac))
    t = np.arange(-half, half + 1, dtype=np.float64)
    w = _cubic((t - frac) / ratio) / ratio
    return w / w.sum(), a


def _block_fit_lr(block, est, params) -> torch.Tensor:
    return fit_lr_tile(block, params)


def fit_lr_tile(block, params) -> torch.Tensor:
    """The MSI tile degraded onto the HS grid for the regressions (``fit_lr`` parameter)."""
    from ..kernels.filters import correlate2d
    from ..kernels.resample import decimation_kernel

    how = params.get("fit_lr", "psf")
    r = block.ratio
    if how == "psf":
        return _msi_lr_tile(block)
    if how == "bilinear":  # point sampling at the LR pixel centres (Octave imresize, no antialiasing)
        return block.decimate(block.pan)
    if how == "bicubic_aa":
        (ky, oy), (kx, ox) = (imresize_shrink_kernel(r, p) for p in block.phase)
        return correlate2d(block.pan, np.outer(ky, kx), mode="symmetric", stride=r, offset=(oy, ox))
    d = np.arange(-r, r + 1, dtype=np.float64)  # MATLAB imresize antialiasing: triangle of half-width r
    tri = np.clip(1 - np.abs(d) / r, 0, None)
    k2, off = decimation_kernel(np.outer(tri, tri) / np.outer(tri, tri).sum(), block.phase)
    return correlate2d(block.pan, k2, mode="symmetric", stride=r, offset=off)


def _lr_moments(ctx, params=None):
    how = (params or {}).get("fit_lr", "psf")
    msi_lr = ctx.msi_lr if how == "psf" else ctx.tile_map(_block_fit_lr, bands=ctx.pan.shape[0], grid="lr",
                                                           params=params)
    return stats.moments([msi_lr, ctx.ms_lr], ctx.valid_lr_joint)


# -------------------------------------------------------------------------------------------------- GLP-HS


def _glp_gain_sums(block, est, params) -> torch.Tensor:
    """Per LR cell: sums over its ratio x ratio HR pixels of x = H_up - mu, y = P_L - mu, x*y, y*y."""
    w, c, mu = est["w"], est["c"], est["mu"][:, None, None]
    hs_up = upsample_hs(block, block.ms_lr, params)
    low = K.gaussian_lowpass(block.pan, block.ratio, block.phase, lambda t: upsample_hs(block, t, params))
    x = hs_up - mu
    y = K.synthetic_pan(low, w, c) - mu
    r = block.ratio
    B, H, W = x.shape
    stack = torch.cat([x, y, x * y, y * y], dim=0)
    return stack.reshape(4 * B, H // r, r, W // r, r).sum(dim=(2, 4))


def _glp_estimate(ctx, params):
    nk = ctx.pan.shape[0]
    m = _lr_moments(ctx, params)
    wc = stats.delayed_on(_ls_with_intercept, m.mean, m.cov, nk, _nout=2)
    B = ctx.ms_lr.shape[0]
    w = da.from_delayed(wc[0], shape=(nk, B), dtype=np.float64)
    if not params["global_gain"]:
        return {"w": w, "gains": da.ones((B,), dtype=np.float64)}
    c = da.from_delayed(wc[1], shape=(B,), dtype=np.float64)
    mu = m.mean[nk:]
    sums = ctx.tile_map(_glp_gain_sums, bands=4 * B, grid="lr", params=params,
                        est=stats.delayed_on(_materialise_kw, w=w, c=c, mu=mu))
    tot = sums.astype(np.float64).sum(axis=(1, 2))
    n = float(ctx.ms_lr.shape[1] * ctx.ms_lr.shape[2] * ctx.ratio ** 2)
    sx, sy, sxy, syy = tot[:B] / n, tot[B:2 * B] / n, tot[2 * B:3 * B] / n, tot[3 * B:] / n
    var = syy - sy * sy
    gains = da.where(var > 0, (sxy - sx * sy) / da.where(var > 0, var, 1.0), 1.0)
    return {"w": w, "gains": gains}


def _glp_apply(block, est, params) -> torch.Tensor:
    hs_up = upsample_hs(block, block.ms_lr, params)
    low = K.gaussian_lowpass(block.pan, block.ratio, block.phase, lambda t: upsample_hs(block, t, params))
    return K.glp_hs(hs_up, block.pan, low, est["w"], est["gains"])


register(MethodSpec(
    name="glp_hs", title="GLP-HS (MTF-GLP hypersharpening)", family="HS", scenario="hyperspectral",
    inputs=("hs", "msi"),
    parameters=(_up_param("interp23tap"), _fit_param("psf"),
                Parameter("global_gain", "bool", False,
                          "global injection gain cov(H_up, P_L)/var(P_L) as the toolbox (else 1; the LS fit makes it "
                          "~1: on Jasper Ridge SAM/ERGAS change < 0.001, for one more pass over the image)")),
    references=(SELVA_2015, "10.1109/TGRS.2002.803623", YOKOYA_2017),
    summary="Generalized Laplacian pyramid hypersharpening: each HS band gets a synthetic PAN, the "
            "least-squares combination of the MSI bands fitted on the HS grid (mode 2), and receives that "
            "image's detail (the image minus its low pass by the HS PSF, Gaussian FWHM = ratio) times a "
            "global gain. Fast, robust, spectrally faithful; a good default for HS-MS fusion.",
    estimate=_glp_estimate, apply=_glp_apply, halo=_halo, tags=("demo",)))


# -------------------------------------------------------------------------------------------------- SFIM-HS


def _sfim_estimate(ctx, params):
    nk = ctx.pan.shape[0]
    B = ctx.ms_lr.shape[0]
    m = _lr_moments(ctx, params)
    wcf = stats.delayed_on(_sfim_fit, m.mean, m.cov, m.n, nk, params["regression"] == "nnls",
                           float(params.get("ratio_floor", 0.01)), _nout=3)
    return {"w": da.from_delayed(wcf[0], shape=(nk, B), dtype=np.float64),
            "c": da.from_delayed(wcf[1], shape=(B,), dtype=np.float64),
            "floor": da.from_delayed(wcf[2], shape=(B,), dtype=np.float64)}


def _sfim_fit(mean, cov, n, nk: int, nnls: bool, ratio_floor: float):
    """The SFIM-HS regression and ratio floor from one set of moments (one delayed call, so the moments
    pass runs once)."""
    w, c = _nnls_with_intercept(mean, cov, float(n), nk) if nnls else _ls_with_intercept(mean, cov, nk)
    return w, c, ratio_floor * np.abs(mean[nk:])


def _sfim_apply(block, est, params) -> torch.Tensor:
    hs_up = upsample_hs(block, block.ms_lr, params)
    pan = K.synthetic_pan(block.pan, est["w"], est["c"])
    pan_low = upsample_hs(block, K.synthetic_pan(fit_lr_tile(block, params), est["w"], est["c"]), params)
    # ratio_floor = 0: the review toolbox's plain ratio (SFIM.m divides by the synthetic low pass wherever
    # it is, even near zero or negative in dark bands)
    floor = est["floor"] if float(params.get("ratio_floor", 0.01)) > 0 else None
    return K.sfim_hs(hs_up, pan, pan_low, floor)


register(MethodSpec(
    name="sfim_hs", title="SFIM-HS (smoothing-filter intensity modulation, hypersharpening)", family="HS",
    scenario="hyperspectral", inputs=("hs", "msi"),
    parameters=(_up_param("nearest"), _fit_param("psf"),
                Parameter("regression", "str", "nnls",
                          "synthetic-PAN regression: non-negative (the toolbox's mode 3) or plain LS (mode 2, the "
                          "one the review's demo runs)", choices=("nnls", "ls")),
                Parameter("ratio_floor", "float", 0.01,
                          "guard of the ratio: where the synthetic low pass is below this fraction of the HS band "
                          "mean the detail is added instead of multiplied; 0 = the toolbox's unguarded ratio",
                          min=0.0)),
    references=("10.1080/014311600750037499", SELVA_2015, YOKOYA_2017),
    summary="Each HS band is modulated by the ratio of its synthetic PAN (non-negative least-squares "
            "combination of the MSI bands, fitted on the HS grid) to the same combination of the "
            "MSI degraded onto the HS grid. Very fast; the review's version interpolates with nearest "
            "neighbour (blocky, hence its poor scores): upsampling='interp23tap' is usually much better.",
    estimate=_sfim_estimate, apply=_sfim_apply, halo=_halo))


# -------------------------------------------------------------------------------------------------- GSA-HS


#: relative Tikhonov weight of the GSA-HS intensity regression
RIDGE = 1e-6


def _gsa_solve(lr_mean, lr_cov, hr_mean, hr_cov, msi_mean, nk: int):
    """Groups (best-correlated MSI band per HS band), per-group intensity weights and HR gains."""
    B = lr_cov.shape[0] - nk
    sd = np.sqrt(np.clip(np.diag(lr_cov), 1e-300, None))
    corr = lr_cov[:nk, nk:] / (sd[:nk, None] * sd[None, nk:])  # (K, B)
    group = np.argmax(corr, axis=0)
    alpha = np.zeros((nk, B))
    gains = np.zeros(B)
    hs_cov = lr_cov[nk:, nk:]
    for k in range(nk):
        sel = np.flatnonzero(group == k)
        if sel.size == 0:
            continue
        c = hs_cov[np.ix_(sel, sel)]
        # a tiny ridge: neighbouring HS bands are nearly collinear, and an ill-conditioned solve would
        # turn last-bit differences of the merged moments (chunking) into visible ones
        c = c + RIDGE * np.trace(c) / sel.size * np.eye(sel.size)
        a = np.linalg.solve(c, lr_cov[nk + sel, k])
        alpha[k, sel] = a
        cov_ib = a @ hr_cov[np.ix_(sel, sel)]  # cov(I_k, H_b) for b in the group
        var_i = float(a @ cov_ib)
        gains[sel] = cov_ib / var_i if var_i > 0 else 0.0
    return alpha, gains, group.astype(np.float64)


def _gsa_up(block, est, params) -> torch.Tensor:
    return upsample_hs(block, block.ms_lr, params)


def _gsa_estimate(ctx, params):
    nk = ctx.pan.shape[0]
    B = ctx.ms_lr.shape[0]
    lr = _lr_moments(ctx, params)
    hs_up = ctx.tile_map(_gsa_up, bands=B, params=params, use_pan=False)
    hr = stats.moments([hs_up], ctx.valid_hr)
    msi_mean = stats.valid_mean(ctx.pan, ctx.valid_hr)
    # every estimate value comes out of the one solve (hr.mean and msi_mean passed through): an array
    # used both inside a delayed call and directly would have its reduction pass computed twice
    res = stats.delayed_on(_gsa_solve_all, lr.mean, lr.cov, hr.mean, hr.cov, msi_mean, nk, _nout=5)
    return {"alpha": da.from_delayed(res[0], shape=(nk, B), dtype=np.float64),
            "gains": da.from_delayed(res[1], shape=(B,), dtype=np.float64),
            "group": da.from_delayed(res[2], shape=(B,), dtype=np.float64),
            "hs_mean": da.from_delayed(res[3], shape=(B,), dtype=np.float64),
            "msi_mean": da.from_delayed(res[4], shape=(nk,), dtype=np.float64)}


def _gsa_solve_all(lr_mean, lr_cov, hr_mean, hr_cov, msi_mean, nk: int):
    return (*_gsa_solve(lr_mean, lr_cov, hr_mean, hr_cov, msi_mean, nk), hr_mean, msi_mean)


def _gsa_apply(block, est, params) -> torch.Tensor:
    hs_up = upsample_hs(block, block.ms_lr, params)
    return K.gsa_hs(hs_up, block.pan, est["alpha"], est["hs_mean"], est["msi_mean"], est["gains"], est["group"])


register(MethodSpec(
    name="gsa_hs", title="GSA-HS (Gram-Schmidt adaptive, hypersharpening)", family="HS", scenario="hyperspectral",
    inputs=("hs", "msi"), parameters=(_up_param("bicubic"), _fit_param("psf")),
    references=("10.1109/TGRS.2007.901007", YOKOYA_2017),
    summary="Component substitution per group: each HS band joins the MSI band it correlates best with; "
            "within a group an intensity is regressed from the HS bands onto that MSI band's low pass, and "
            "each band receives g_b (MSI_k - I_k). Fast and sharp, less spectrally faithful than GLP-HS.",
    estimate=_gsa_estimate, apply=_gsa_apply, halo=_halo))
