"""MTF-GLP, MTF-GLP-FS, MTF-GLP-HPM-R, AWLP and MF: toolbox faithfulness, building blocks, default-mode
differences.

Reference values (provenance): ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz``, produced by the
reference MATLAB toolbox of Vivone et al. (2021 distribution, doi:10.1109/MGRS.2020.3019315, mirrored in
liangjiandeng/DLPan-Toolbox @ a34f884) under GNU Octave 7.3 from ``I_MS`` / ``I_PAN`` of the IKONOS crop:
``MTF_GLP``, ``MTF_GLP_FS``, ``MTF_GLP_HPM_R`` (``<name>(I_MS, I_PAN, 'IKONOS', 4)``), ``AWLP``
(``AWLP(I_MS, I_PAN, 4)``) and ``MF`` (``MF_HG_Pansharpen(I_MS, I_PAN, 4)``); see the README beside the file.
The MATLAB ``imresize`` and ``imdilate``/``imerode`` conventions are checked against small NumPy/SciPy
re-implementations written here from MATLAB's documented algorithm (contributions with the kernel
stretched by the scale when shrinking with antialiasing, mirrored indices), not from geofuse's code.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from affine import Affine
from scipy import ndimage

from geofuse.api import pansharpen
from geofuse.grid import lowres_transform
from geofuse.kernels import mra
from geofuse.kernels.filters import imresize_down, undecimated_lowpass
from geofuse.kernels.morph import bilinear_up2, dilate_cross, erode_cross, half_gradient_lowpass
from geofuse.kernels.mra_glp import awlp, glp_hpm_r
from geofuse.kernels.resample import upsample
from geofuse.raster import make_raster

from .conftest import UTM, shared_path, synthetic_pair

REL_RMSE = 1e-4
PAN_T = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 4_000_256.0)
METHODS = {"mtf_glp": "MTF_GLP", "mtf_glp_fs": "MTF_GLP_FS", "mtf_glp_hpm_r": "MTF_GLP_HPM_R", "awlp": "AWLP",
           "mf": "MF"}


@pytest.fixture(scope="module")
def ikonos_rr():
    path = shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")
    with np.load(path) as d:
        ref = {k: d[k] for k in ("I_MS_LR", "I_PAN", *METHODS.values())}
    pan = make_raster(ref["I_PAN"][None], PAN_T, UTM, band=["pan"])
    ms = make_raster(np.ascontiguousarray(ref["I_MS_LR"].transpose(2, 0, 1)), lowres_transform(PAN_T, 4, (2, 2)),
                     UTM, band=["blue", "green", "red", "nir"])
    return ms, pan, ref


@pytest.mark.shared
@pytest.mark.parametrize("method", list(METHODS))
def test_matches_toolbox(ikonos_rr, method):
    ms, pan, ref = ikonos_rr
    out = pansharpen(ms, pan, method, sensor="IKONOS", compat="toolbox")
    assert out.dtype == np.float32 and out.shape == (4, 256, 256)
    r = ref[METHODS[method]].transpose(2, 0, 1).astype(np.float64)
    got = out.values.astype(np.float64)
    err = np.sqrt(np.mean((got - r) ** 2)) / (r.max() - r.min())
    assert err <= REL_RMSE, f"{method}: relative RMSE {err:.3g}"  # measured 2e-8 .. 1e-7 (float32)
    # the default mode differs only by its border rules (and the HPM guards): still close
    default = pansharpen(ms, pan, method, sensor="IKONOS", chunks=(72, 100)).values.astype(np.float64)
    inner = (slice(None), slice(24, -24), slice(24, -24))
    assert np.sqrt(np.mean((default[inner] - r[inner]) ** 2)) / (r.max() - r.min()) < 1e-4


# -------------------------------------------------------------------------------------------------- MATLAB imresize


def _cubic(t):
    t = np.abs(t)
    return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))


def _triangle(t):
    return np.clip(1 - np.abs(t), 0, None)


def _imresize_1d(x, scale, kernel, width, out_len=None):
    """MATLAB imresize along axis 0 (documented contributions algorithm; antialiasing when shrinking)."""
    n = x.shape[0]
    out_len = out_len or int(math.ceil(n * scale))
    if scale < 1:
        h, width = (lambda t: scale * kernel(scale * t)), width / scale
    else:
        h = kernel
    aux = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    out = np.zeros((out_len,) + x.shape[1:])
    for o in range(1, out_len + 1):
        u = o / scale + 0.5 * (1 - 1 / scale)
        idx = math.floor(u - width / 2) + np.arange(int(math.ceil(width)) + 2)
        w = h(u - idx)
        w = w / w.sum()
        src = aux[np.mod(idx - 1, 2 * n)]
        out[o - 1] = np.tensordot(w, x[src], axes=1)
    return out


def _imresize(x, scale, kernel, width, out_shape=None):
    oy, ox = out_shape or (None, None)
    y = _imresize_1d(x, scale, kernel, width, oy)
    return _imresize_1d(y.T, scale, kernel, width, ox).T


@pytest.mark.parametrize("ratio", [3, 4])
def test_bicubic_down_up_is_matlab_imresize(ratio):
    """AWLP's ``imresize(imresize(P, 1/r), r)``: imresize_down, then the bicubic polyphase interpolator at
    phase (r-1)/2 with half-sample mirror borders (MATLAB's enlarging imresize)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1000, (8 * ratio, 7 * ratio))
    low = _imresize(x, 1 / ratio, _cubic, 4)
    expect = _imresize(low, ratio, _cubic, 4)
    t = torch.from_numpy(x)[None]
    got_low = imresize_down(t, ratio, mode="symmetric")
    p = (ratio - 1) / 2
    got = upsample(got_low, ratio, (p, p), "bicubic", "symmetric")[0].numpy()
    np.testing.assert_allclose(got_low[0].numpy(), low, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-9)


def test_bilinear_up2_is_matlab_imresize():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1000, (9, 6))
    expect = _imresize(x, 2, _triangle, 2)
    got = bilinear_up2(torch.from_numpy(x)[None], (18, 12))[0].numpy()
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-9)


# -------------------------------------------------------------------------------------------------- morphology


def test_cross_morphology_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (2, 11, 13))
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    t = torch.from_numpy(x)
    for b in range(2):
        np.testing.assert_array_equal(dilate_cross(t)[b].numpy(), ndimage.grey_dilation(x[b], footprint=cross))
        np.testing.assert_array_equal(erode_cross(t)[b].numpy(), ndimage.grey_erosion(x[b], footprint=cross))


def _pyr_dec_last(x, lev):
    """The toolbox's Pyr_Dec(x, cross, lev, 'bilinear') last level, from its description (SciPy + imresize)."""
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    sizes = [x.shape]
    cur = x
    for ii in range(2, lev + 1):
        ps = 0.5 * (ndimage.grey_dilation(cur, footprint=cross) + ndimage.grey_erosion(cur, footprint=cross))
        cur = ps[1::2, 1::2] if ii == 2 else ps[0::2, 0::2]
        sizes.append(cur.shape)
    out = cur
    for ir in range(lev - 1, 0, -1):
        out = _imresize(out, 2, _triangle, 2, sizes[ir - 1])
    return out


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_half_gradient_pyramid_is_toolbox_pyr_dec(levels):
    rng = np.random.default_rng(3)
    n = 2 ** levels * 5
    x = rng.uniform(0, 1000, (n, n + 2 ** levels))
    got = half_gradient_lowpass(torch.from_numpy(x)[None], levels, (0, 0))[0].numpy()
    np.testing.assert_allclose(got, _pyr_dec_last(x, levels + 1), rtol=0, atol=1e-9)


def test_half_gradient_pyramid_shifts():
    """shift=s moves the lattice (period 2^L); shift=None (ratios that are not powers of two) is exactly
    shift-invariant in the interior, whatever the tile origin."""
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.uniform(0, 1000, (1, 40, 40)))
    base = half_gradient_lowpass(x, 2, (0, 0))
    moved = half_gradient_lowpass(x[:, 4:, 8:], 2, (0, 0))
    torch.testing.assert_close(moved[:, 20:-20, 20:-20], base[:, 24:-20, 28:-20], rtol=0, atol=0)
    shifted = half_gradient_lowpass(x[:, 1:, 3:], 2, (3, 1))
    torch.testing.assert_close(shifted[:, 20:-20, 20:-20], base[:, 21:-20, 23:-20], rtol=0, atol=0)
    avg = half_gradient_lowpass(x, 2, None)
    avg_moved = half_gradient_lowpass(x[:, 3:, 1:], 2, None)
    assert torch.equal(avg_moved[:, 20:-20, 20:-20], avg[:, 23:-20, 21:-20])


def test_mf_ratio3_uses_the_shift_invariant_pyramid():
    ms, pan = synthetic_pair((21, 25), 3, dtype=np.float32, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = pansharpen(ms, pan, "mf", chunks=(33, 36)).values
        b = pansharpen(ms, pan, "mf", chunks=4096).values
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and a.min() > 0


# -------------------------------------------------------------------------------------------------- kernels


def test_awlp_details_once_equal_details_per_band():
    """AWLP low-passes the PAN once: P_b - LP(P_b) = s_b (P - LP(P)) for P_b = s_b P + o_b (unit DC gain)."""
    rng = np.random.default_rng(5)
    pan = torch.from_numpy(rng.uniform(100, 900, (1, 48, 40)))
    s = torch.tensor([0.5, 1.7, 2.2], dtype=torch.float64)
    o = torch.tensor([30.0, -12.0, 400.0], dtype=torch.float64)
    per_band = s[:, None, None] * pan + o[:, None, None]
    d_band = per_band - undecimated_lowpass(per_band, 2)
    d_once = s[:, None, None] * (pan - undecimated_lowpass(pan, 2))
    torch.testing.assert_close(d_once, d_band, rtol=0, atol=1e-9)
    ms = torch.from_numpy(rng.uniform(100, 900, (3, 48, 40)))
    f = awlp(ms, d_once)
    torch.testing.assert_close(f, ms + d_once * ms / ms.mean(0, keepdim=True), rtol=1e-12, atol=0)


def test_hpm_r_default_form():
    """Default mode writes HPM-R as HPM between g P + (mu - g mu_P) and g P_low + (mu - g mu_P): the same
    fusion as the toolbox's MS (P + c)/(P_low + c) with c = mu/g - mu_P (no division by g), plus the
    HPM guards, which keep an anti-correlated band (g < 0) finite and bounded."""
    rng = np.random.default_rng(6)
    pan = torch.from_numpy(rng.uniform(200, 800, (1, 16, 16)))
    pan_lp = pan + torch.from_numpy(rng.normal(0, 20, (2, 16, 16)))
    ms = torch.from_numpy(rng.uniform(100, 300, (2, 16, 16)))
    f64 = torch.float64
    g, mu = torch.tensor([0.4, 1.3], dtype=f64), torch.tensor([180.0, 220.0], dtype=f64)
    mu_p = torch.tensor(500.0, dtype=f64)
    off = (mu - g * mu_p)[:, None, None]
    toolbox = glp_hpm_r(ms, pan, pan_lp, mu / g - mu_p)
    default = mra.hpm(ms, g[:, None, None] * pan + off, g[:, None, None] * pan_lp + off)
    torch.testing.assert_close(default, toolbox, rtol=1e-10, atol=0)
    g_neg = torch.tensor([-0.4, 1.3], dtype=f64)
    off = (mu - g_neg * mu_p)[:, None, None]
    guarded = mra.hpm(ms, g_neg[:, None, None] * pan + off, g_neg[:, None, None] * pan_lp + off,
                      floor=0.01 * mu, max_gain=4.0)
    assert torch.isfinite(guarded).all() and guarded.abs().max() < 10 * ms.max()
