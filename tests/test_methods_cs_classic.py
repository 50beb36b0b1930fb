"""Classic CS methods (IHS, Brovey, PCA, GS, BT-H): toolbox faithfulness, kernel properties, the exact
global percentile, and the documented default-mode differences.

Reference values: ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz``, outputs of the reference
MATLAB pansharpening toolbox run under GNU Octave 7.3 (v1.3 2015 for ``Brovey_v1_3``, ``IHS_v1_3``,
``PCA_v1_3``; the 2021 distribution, doi:10.1109/MGRS.2020.3019315, for ``GS`` and ``BT_H``; see the
README beside it). The property tests use independent formulations (the literal Gram-Schmidt procedure,
``numpy.percentile(method="hazen")``), never a copy of the kernels' formulas.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from affine import Affine

from geofuse import registry
from geofuse.api import pansharpen
from geofuse.engine import prepare
from geofuse.grid import fit_grids, lowres_transform
from geofuse.kernels import cs_classic as k
from geofuse.methods import cs_classic as m
from geofuse.raster import make_raster

from .conftest import shared_path, synthetic_pair

CRS = "EPSG:32633"
METHODS = {"brovey": "Brovey_v1_3", "ihs": "IHS_v1_3", "pca": "PCA_v1_3", "gs": "GS", "bt_h": "BT_H"}


@pytest.fixture(scope="module")
def ref():
    with np.load(shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")) as z:
        return {key: z[key] for key in z.files}


def _rasters(pan: np.ndarray, ms_lr: np.ndarray):
    """PAN (H, W) and MS_LR (B, h, w) as georeferenced rasters, the MS grid with the toolbox phase 2."""
    pt = Affine(1, 0, 0, 0, -1, pan.shape[0])
    p = make_raster(np.asarray(pan, np.float32)[None], pt, CRS)
    ms = make_raster(np.asarray(ms_lr, np.float32), lowres_transform(pt, 4, (2, 2)), CRS)
    return ms, p


def _fuse(ms, pan, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pansharpen(ms, pan, method, **kw)


# ------------------------------------------------------------------------------------------------
# reference toolbox outputs
# ------------------------------------------------------------------------------------------------

@pytest.mark.shared
@pytest.mark.parametrize("method", sorted(METHODS))
def test_matches_toolbox(ref, method):
    ms, pan = _rasters(ref["I_PAN"], ref["I_MS_LR"].transpose(2, 0, 1))
    got = np.asarray(pansharpen(ms, pan, method, sensor="IKONOS", compat="toolbox", chunks=4096).values,
                     np.float64)
    want = ref[METHODS[method]].transpose(2, 0, 1).astype(np.float64)
    rel = np.sqrt(np.mean((got - want) ** 2)) / (want.max() - want.min())
    assert rel <= 1e-6, rel  # measured 2.1e-8 .. 3.1e-8 (float32 rounding); the requirement is 1e-4


@pytest.mark.shared
def test_bt_h_haze_is_the_toolbox_percentile(ref):
    """BT-H haze: [0.95 0.45 0.40 0.05] x prctile(band, 1) of the interpolated MS (the toolbox's I_MS),
    prctile as in MATLAB/Octave (numpy's 'hazen' method), not numpy's default ('linear')."""
    ms_up = ref["I_MS"].astype(np.float32).transpose(2, 0, 1)
    got = m.percentile(da.from_array(ms_up, chunks=(4, 100, 70)), 1.0).compute()
    hazen = np.array([np.percentile(b.astype(np.float64), 1.0, method="hazen") for b in ms_up])
    linear = np.array([np.percentile(b.astype(np.float64), 1.0) for b in ms_up])
    np.testing.assert_allclose(got, hazen, rtol=1e-15)
    assert np.abs(got - linear).max() > 1e-4


# ------------------------------------------------------------------------------------------------
# the exact global percentile
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentile_exact_against_numpy(dtype):
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(3, 37, 53)) * 100).astype(dtype)
    x[1, :5] = 7.0  # ties
    x[2] = np.round(x[2])  # many ties, negative and positive zeros
    x[0, 3, 4] = -0.0
    valid = rng.random((37, 53)) > 0.2
    X = da.from_array(x, chunks=(3, 19, 27))
    V = da.from_array(valid, chunks=(11, 9))
    for q in (0.0, 1.0, 37.3, 100.0):
        got = m.percentile(X, q, V).compute()
        want = [np.percentile(x[b][valid].astype(np.float64), q, method="hazen") for b in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
        got = m.percentile(X, q).compute()
        want = [np.percentile(x[b].astype(np.float64), q, method="hazen") for b in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    # order statistics themselves are exact: q at a sample position returns the sample bit for bit
    n = valid.sum()
    for kth in (2, n // 2, n):
        q = 100.0 * (kth - 0.5) / n
        got = m.percentile(X, q, V).compute()
        want = [np.sort(x[b][valid])[kth - 1] for b in range(3)]
        np.testing.assert_array_equal(got.astype(dtype), np.asarray(want, dtype))
    np.testing.assert_array_equal(m.masked_min(X, V).compute(), [x[b][valid].min() for b in range(3)])


def test_percentile_no_valid_pixel_is_nan_and_lazy():
    x = da.ones((2, 8, 8), dtype=np.float32, chunks=(2, 4, 4))
    out = m.percentile(x, 1.0, da.zeros((8, 8), dtype=bool, chunks=4))
    assert isinstance(out, da.Array)
    assert np.isnan(out.compute()).all()


def test_percentile_rereads_each_pass():
    """With ``reread`` each later pass gets its data from tasks that wait for the previous pass."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 20, 30)).astype(np.float32)
    X = da.from_array(x, chunks=(2, 7, 11))
    calls = []

    def reread(barrier):
        calls.append(barrier)
        return X.map_blocks(lambda b, est=None: b.copy(), est=barrier, dtype=X.dtype)

    out = m.percentile(X, 3.0, reread=reread)
    assert len(calls) == 1  # float32: 2 passes of 16 bits
    np.testing.assert_allclose(out.compute(), m.percentile(X, 3.0).compute(), rtol=0)


# ------------------------------------------------------------------------------------------------
# kernel properties (independent formulations)
# ------------------------------------------------------------------------------------------------

def _toy(seed=0, c=4, h=9, w=11):
    g = torch.Generator().manual_seed(seed)
    ms = 300 + 100 * torch.rand(c, h, w, generator=g, dtype=torch.float64)
    pan = 200 + 150 * torch.rand(1, h, w, generator=g, dtype=torch.float64)
    return ms, pan


def _p_eq(pan, scale, offset):
    return scale * pan + offset


def test_ihs_and_brovey_replace_the_band_mean():
    ms, pan = _toy()
    s, o = torch.tensor([0.7]), torch.tensor([12.0])
    pe = _p_eq(pan, 0.7, 12.0)
    torch.testing.assert_close(k.ihs(ms, pan, s, o).mean(0, keepdim=True), pe)
    fb = k.brovey(ms, pan, s, o)
    torch.testing.assert_close(fb.mean(0, keepdim=True), pe)
    torch.testing.assert_close(fb[0] / fb[2], ms[0] / ms[2])  # band ratios (hue) kept


def test_pca_replaces_the_first_component_only():
    ms, pan = _toy(1)
    x = ms.reshape(4, -1)
    mu = x.mean(1)
    cov = torch.cov(x)
    vecs = torch.linalg.eigh(cov)[1]
    v = vecs[:, -1]
    out = k.pca(ms, pan, v, mu, torch.tensor([0.5]), torch.tensor([-3.0]))
    coords_in = vecs.T @ (x - mu[:, None])
    coords_out = vecs.T @ (out.reshape(4, -1) - mu[:, None])
    torch.testing.assert_close(coords_out[-1], _p_eq(pan, 0.5, -3.0).reshape(-1))
    torch.testing.assert_close(coords_out[:-1], coords_in[:-1])


def test_gs_equals_the_literal_gram_schmidt_procedure():
    """Laben & Brower: simulated PAN (band mean) as GS1, Gram-Schmidt over the bands, GS1 swapped for the
    matched PAN, inverse transform; equal to the kernel with g_b = cov(I0, MS_b) / var(I0)."""
    ms, pan = _toy(2)
    x = ms.reshape(4, -1).numpy()
    mu = x.mean(1)
    xc = x - mu[:, None]
    cov = lambda a, b: np.cov(a, b)[0, 1]  # noqa: E731
    comps = [xc.mean(0)]  # GS1 = mean-free simulated PAN
    phi = np.zeros((4, 5))
    for b in range(4):
        r = xc[b].copy()
        for j, gsj in enumerate(comps):
            phi[b, j] = cov(xc[b], gsj) / np.var(gsj, ddof=1)
            r = r - phi[b, j] * gsj
        comps.append(r)
    i0 = comps[0]
    p = pan.reshape(-1).numpy()
    p_eq = (p - p.mean()) * np.std(i0, ddof=1) / np.std(p, ddof=1)
    comps[0] = p_eq
    inverse = np.stack([comps[b + 1] + sum(phi[b, j] * comps[j] for j in range(b + 1)) for b in range(4)])
    want = inverse + mu[:, None]
    gains = torch.tensor([cov(xc[b], i0) / np.var(i0, ddof=1) for b in range(4)], dtype=torch.float64)
    scale = float(np.std(i0, ddof=1) / np.std(p, ddof=1))
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    got = k.gs(ms, pan, gains, f64(mu), f64([scale]), f64([-scale * p.mean()]))
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-12, atol=1e-9)


def test_bt_h_properties():
    ms, pan = _toy(3)
    s, o = torch.tensor([0.9]), torch.tensor([5.0])
    w = torch.full((4,), 0.25, dtype=torch.float64)
    # no haze and mean weights: the Brovey transform
    torch.testing.assert_close(k.bt_h(ms, pan, w, torch.zeros(4, dtype=torch.float64), s, o),
                               k.brovey(ms, pan, s, o))
    # with haze below the data: the dehazed intensity of the result is the matched PAN
    haze = torch.tensor([100.0, 50.0, 20.0, 5.0], dtype=torch.float64)
    alpha = torch.tensor([0.1, 0.3, 0.4, 0.2], dtype=torch.float64)
    out = k.bt_h(ms, pan, alpha, haze, s, o)
    torch.testing.assert_close(torch.einsum("c,chw->hw", alpha, out - haze[:, None, None])[None],
                               _p_eq(pan, 0.9, 5.0))
    # haze above a pixel's value: that band stays at the haze level there
    haze_hi = haze.clone()
    haze_hi[0] = float(ms[0].max()) + 1
    assert torch.all(k.bt_h(ms, pan, alpha, haze_hi, s, o)[0] == haze_hi[0])


def test_lp_filter_gauss_matches_the_2d_kernel():
    from geofuse.kernels.filters import correlate2d, lp_filter_gauss_kernel

    x = torch.randn(1, 50, 61, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    want = correlate2d(x, lp_filter_gauss_kernel(4), mode="replicate")
    torch.testing.assert_close(k.lp_filter_gauss(x, 4), want, rtol=0, atol=1e-8 * float(x.abs().max()))
    assert k.lp_filter_gauss_radius(4) == 20


def test_halos_and_registry():
    for name in ("ihs", "brovey", "pca", "gs"):
        spec = registry.get(name)
        assert spec.family == "CS" and spec.halo(spec.resolve({}), 4) == 0
    spec = registry.get("bt_h")
    assert spec.halo(spec.resolve({}), 4) == 20
    assert spec.resolve({})["percentile"] == 1.0


# ------------------------------------------------------------------------------------------------
# documented differences from the toolbox (default mode)
# ------------------------------------------------------------------------------------------------

def test_brovey_ratio_guard_default_mode_only():
    ms, pan = _toy(4)
    ms[:, 2, 3] = torch.tensor([1e-3, -1e-3, 2e-3, -2e-3], dtype=torch.float64)  # intensity ~ 0
    s, o = torch.tensor([1.0]), torch.tensor([0.0])
    plain = k.brovey(ms, pan, s, o)
    assert plain[:, 2, 3].abs().max() > 1e3  # the toolbox's ratio explodes
    floor = torch.tensor([0.01 * float(ms.mean())])
    guarded = k.brovey(ms, pan, s, o, floor=floor, max_gain=m.RATIO_MAX_GAIN)
    torch.testing.assert_close(guarded[:, 2, 3], ms[:, 2, 3] + (pan[0, 2, 3] - ms[:, 2, 3].mean()))  # additive
    keep = torch.ones(9, 11, dtype=torch.bool)
    keep[2, 3] = False
    torch.testing.assert_close(guarded[:, keep], plain[:, keep])  # elsewhere the same


def test_pca_sign_default_follows_the_pan():
    """A PC1 whose largest loading is anti-correlated with the PAN: MATLAB's sign convention (toolbox)
    substitutes an inverted PAN; the default mode orients PC1 along the PAN."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    s = 500 + 300 * np.sin(7 * xx) * np.cos(5 * yy) + 20 * rng.normal(size=(128, 128))
    bands = np.stack([s, 3000 - 2 * s, 800 + 0.05 * s, 600 + 0.05 * s])
    ms_lr = bands[:, 2::4, 2::4] + rng.normal(size=(4, 32, 32))
    ms, pan = _rasters(s, ms_lr)
    full = np.cov(np.vstack([bands.reshape(4, -1), s.reshape(1, -1)]))  # MS bands, then the PAN
    v_tb = m._first_component(full, 4, toolbox=True)
    v_def = m._first_component(full, 4, toolbox=False)
    assert v_tb[1] > 0 and np.allclose(v_def, -v_tb)
    good = _fuse(ms, pan, "pca", compat="default", chunks=4096).values.astype(np.float64)
    bad = _fuse(ms, pan, "pca", compat="toolbox", chunks=4096).values.astype(np.float64)
    err = lambda f: np.sqrt(np.mean((f - bands) ** 2))  # noqa: E731
    assert err(good) < 0.2 * err(bad), (err(good), err(bad))


def test_bt_h_other_band_counts_use_the_band_minimum():
    ms, pan = synthetic_pair((17, 19), 4, bands=3, dtype=np.float32, seed=2, chunks=None)
    grid = fit_grids(pan, ms)
    spec = registry.get("bt_h")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no MTF preset for 3 bands (BT-H does not use the MTF)
        prep = prepare(ms, pan, grid, halo_hr=spec.halo({}, 4), chunks=(36, 44), sensor="none")
    est = dask.compute(spec.estimate(prep, spec.resolve({})))[0]
    np.testing.assert_allclose(est["haze"], prep.ms.compute().min(axis=(1, 2)), rtol=1e-6)
    out = _fuse(ms, pan, "bt_h", chunks=(36, 44)).values
    assert np.isfinite(out).all() and out.min() > 0
