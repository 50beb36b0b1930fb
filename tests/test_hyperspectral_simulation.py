"""Hyperspectral simulation: SRF tables and resampling, HS degradation, noise, the SRF estimate.

Independent references, with provenance:

* Sentinel-2A band centres: ESA's published central wavelengths (Sentinel-2 MSI spectral response
  document, S2-SRF COPE-GSEG-EOPG-TN-15-0007, v3.0): B2 492.4, B3 559.8, B4 664.6, B5 704.1, B6 740.5,
  B7 782.8, B8 832.8, B8A 864.7, B11 1613.7, B12 2202.4 nm;
* a second SRF source: the 6S (Py6S 1.9.2) Sentinel-2A tables at 2.5 nm in micrometres
  (``py6s_1.9.2_srf_2p5nm.csv``), read through the user-CSV path;
* Yokoya's ``gaussian_down_sample`` written here as the explicit per-block loops of its description
  (2r x 2r normalised Gaussian inside, r x r at the border), against the chunked convolution;
* ``scipy.ndimage.correlate`` for the Starck-Murtagh blur.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from scipy import ndimage

import geofuse
from geofuse import degrade, engine, srf
from geofuse.errors import BandCountError, ParameterError
from geofuse.grid import fit_grids
from geofuse.raster import make_raster

from .conftest import shared_path

S2A_CENTRES = {"B2": 492.4, "B3": 559.8, "B4": 664.6, "B5": 704.1, "B6": 740.5, "B7": 782.8, "B8": 832.8,
               "B8A": 864.7, "B11": 1613.7, "B12": 2202.4}


@pytest.fixture(scope="module")
def srf_dir(request):
    d = shared_path("data", "hyperspectral", "srf").parent
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOFUSE_SRF_DIR", str(d))
    request.addfinalizer(mp.undo)
    return d


def _cube(bands=20, rows=48, cols=40, seed=0):
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((rows, cols)), 3)
    spec = np.linspace(0.2, 0.8, bands)
    cube = spec[:, None, None] * (0.5 + base[None]) + 0.05 * ndimage.gaussian_filter(
        rng.random((bands, rows, cols)), (0, 1, 1))
    t = Affine(2.0, 0, 1000.0, 0, -2.0, 5000.0)
    return make_raster(cube.astype(np.float32), t, "EPSG:32631").assign_coords(
        wavelength=("band", np.linspace(420, 980, bands)))


# ---------------------------------------------------------------------------------------------- SRF


def test_sentinel2a_centres_match_esa(srf_dir):
    t = srf.load_srf("Sentinel-2A")
    assert t.bands == tuple(S2A_CENTRES)
    for name, resp in zip(t.bands, t.responses):
        centroid = float((t.wavelengths * resp).sum() / resp.sum())
        assert abs(centroid - S2A_CENTRES[name]) < 3.0, (name, centroid)


def test_presets_load(srf_dir):
    for name, k in (("Landsat-8", 8), ("Landsat-9", 8), ("Landsat-8-PAN", 1), ("Pleiades", 4), ("SPOT-6/7", 4),
                    ("IKONOS", 4), ("IKONOS-PAN", 1), ("Sentinel-2B", 10), ("s2a", 10)):
        t = srf.load_srf(name)
        assert t.responses.shape == (k, t.wavelengths.size) and (t.responses >= 0).all(), name
    ik = srf.load_srf("IKONOS")
    peaks = ik.wavelengths[np.argmax(ik.responses, axis=1)]
    assert list(np.sort(peaks)) == list(peaks) and 450 < peaks[0] < 520 and 740 < peaks[-1] < 860


def test_matrix_agrees_with_a_second_source(srf_dir, tmp_path):
    """prosail's 1 nm tables vs 6S's 2.5 nm tables (micrometres, read as a user CSV)."""
    import pandas as pd

    wl = np.linspace(400, 2500, 211)
    R1 = srf.load_srf("Sentinel-2A").matrix(wl)
    df = pd.read_csv(srf_dir / "srf" / "py6s_1.9.2_srf_2p5nm.csv")
    cols = ["wavelength_um"] + [f"S2A_MSI_{b}" for b in ("02", "03", "04", "05", "06", "07", "08", "8A", "11", "12")]
    p = tmp_path / "s2a_6s.csv"
    df[cols].to_csv(p, sep=";", index=False)
    t2 = srf.load_srf(str(p))
    assert t2.wavelengths[0] > 300  # micrometres converted to nm
    R2 = srf.srf_matrix(t2, wl)
    np.testing.assert_allclose(R1.sum(1), 1.0)
    np.testing.assert_allclose(R2.sum(1), 1.0)
    centre1, centre2 = R1 @ wl, R2 @ wl
    np.testing.assert_allclose(centre1, centre2, atol=4.0)
    assert np.abs(R1 - R2).sum(1).max() < 0.25  # L1 distance of the normalised rows


def test_matrix_point_sampling_and_gaussian_width(srf_dir):
    t = srf.load_srf("Pleiades")
    wl = np.arange(430, 960, 10.0)
    R = t.matrix(wl, normalise=False)
    expect = np.stack([np.interp(wl, t.wavelengths, r, left=0, right=0) for r in t.responses])
    np.testing.assert_allclose(R, expect)
    Rw = t.matrix(wl, fwhm=10.0)
    np.testing.assert_allclose(Rw.sum(1), 1.0)
    np.testing.assert_allclose(Rw @ wl, t.matrix(wl) @ wl, atol=5.0)


def test_non_overlapping_bands_are_refused(srf_dir):
    with pytest.raises(BandCountError, match="B11, B12"):
        srf.load_srf("Sentinel-2A").matrix(np.linspace(401, 889, 156))  # Samson's range


def test_unknown_srf_and_bad_csv(tmp_path):
    with pytest.raises(ParameterError, match="Sentinel-2A"):
        srf.load_srf("Sentinel-7")
    bad = tmp_path / "bad.csv"
    bad.write_text("wavelength\n400\n")
    with pytest.raises(geofuse.GeofuseError):
        srf.load_srf(str(bad))


# ---------------------------------------------------------------------------------------------- degradation


def _yokoya_loops(cube: np.ndarray, w: int) -> np.ndarray:
    """gaussian_down_sample's description as explicit loops (even w)."""
    B, X, Y = cube.shape
    hx, hy = X // w, Y // w
    sig = w / 2.35482

    def fspecial(n):
        d = np.arange(n) - (n - 1) / 2
        g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sig ** 2))
        return g / g.sum()

    h1, h2 = fspecial(w), fspecial(2 * w)
    out = np.zeros((B, hx, hy))
    for x in range(hx):
        for y in range(hy):
            if x in (0, hx - 1) or y in (0, hy - 1):
                out[:, x, y] = (cube[:, x * w:(x + 1) * w, y * w:(y + 1) * w] * h1).sum(axis=(1, 2))
            else:
                out[:, x, y] = (cube[:, x * w - w // 2:(x + 1) * w + w // 2,
                                     y * w - w // 2:(y + 1) * w + w // 2] * h2).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize("chunks", [4096, 16])
def test_degrade_hs_reproduces_gaussian_down_sample(chunks):
    cube = _cube()
    lr = degrade.degrade_hs(cube, 4, border="yokoya", chunks=chunks)
    assert lr.shape == (20, 12, 10) and lr.dtype == np.float32
    np.testing.assert_allclose(lr.values, _yokoya_loops(cube.values.astype(np.float64), 4), rtol=2e-6, atol=1e-7)
    # georeferencing: LR pixel k is the centre of HR block k (corner-aligned)
    g = fit_grids(cube, lr)
    assert g.ratio == 4 and g.phase == (1.5, 1.5)
    np.testing.assert_array_equal(lr["wavelength"].values, cube["wavelength"].values)


def test_degrade_hs_replicate_border_chunked_equals_whole():
    cube = _cube(rows=64, cols=72)
    a = degrade.degrade_hs(cube, 4, chunks=24).values
    b = degrade.degrade_hs(cube, 4, chunks=4096).values
    np.testing.assert_array_equal(a, b)
    # interior pixels agree with Yokoya's rule (only the outer ring differs)
    ref = _yokoya_loops(cube.values.astype(np.float64), 4)
    np.testing.assert_allclose(a[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], rtol=2e-6, atol=1e-7)


def test_starck_murtagh_psf_matches_scipy():
    cube = _cube(rows=40, cols=44)
    lr = degrade.degrade_hs(cube, 4, psf="starck-murtagh")  # phase "center": samples 4k + 2
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    ref = np.stack([ndimage.correlate(b, k, mode="nearest") for b in cube.values.astype(np.float64)])
    np.testing.assert_allclose(lr.values, ref[:, 2::4, 2::4], rtol=2e-6, atol=1e-7)
    assert fit_grids(cube, lr).phase == (2.0, 2.0)


def test_custom_psf_and_errors():
    cube = _cube(rows=40, cols=40)
    box = np.ones((3, 3))
    lr = degrade.degrade_hs(cube, 4, psf=box, phase=1.0)
    ref = np.stack([ndimage.uniform_filter(b, 3, mode="nearest") for b in cube.values.astype(np.float64)])
    np.testing.assert_allclose(lr.values, ref[:, 1::4, 1::4], rtol=2e-6, atol=1e-7)
    with pytest.raises(ParameterError):
        degrade.degrade_hs(cube, 4, psf=np.ones((4, 4)))
    with pytest.raises(ParameterError):
        degrade.degrade_hs(cube, 4, psf="starck-murtagh", border="yokoya")


def test_spectral_response_keeps_grid_and_applies_R():
    cube = _cube(bands=6)
    R = np.abs(np.random.default_rng(2).random((3, 6)))
    msi = degrade.spectral_response(cube, R)
    assert msi.rio.transform() == cube.rio.transform() and msi.rio.crs == cube.rio.crs
    np.testing.assert_allclose(msi.values, np.tensordot(R, cube.values.astype(np.float64), axes=(1, 0)), rtol=1e-5)
    with pytest.raises(BandCountError):
        degrade.spectral_response(cube, R[:, :5])


@pytest.mark.parametrize("per_band", [False, True])
def test_noise_reaches_the_snr_and_is_seeded(per_band):
    cube = _cube(bands=8, rows=96, cols=96)
    noisy = degrade.add_noise(cube, 30.0, per_band=per_band, seed=7)
    x, y = cube.values.astype(np.float64), noisy.values.astype(np.float64)
    n = y - x
    if per_band:
        snr = 10 * np.log10((x ** 2).sum(axis=(1, 2)) / (n ** 2).sum(axis=(1, 2)))
        np.testing.assert_allclose(snr, 30.0, atol=0.15)
    else:
        assert abs(10 * np.log10((x ** 2).sum() / (n ** 2).sum()) - 30.0) < 0.1
    np.testing.assert_array_equal(y, degrade.add_noise(cube, 30.0, per_band=per_band, seed=7).values)
    assert not np.array_equal(y, degrade.add_noise(cube, 30.0, per_band=per_band, seed=8).values)
    assert noisy.rio.transform() == cube.rio.transform()


def test_noise_sigma_is_hysures_formula():
    y = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    expect = np.sqrt((y ** 2).sum() / 10 ** 3.0 / y.size)  # HySure: sqrt(sum Y^2 / 10^(SNR/10) / numel)
    assert float(degrade.noise_sigma(y, 30.0)) == pytest.approx(expect)


def test_simulate_hs_ms_products_are_georeferenced(srf_dir):
    cube = _cube(bands=30)
    hs, msi = degrade.simulate_hs_ms(cube, 4, "Pleiades", snr_hs=40, snr_ms=40)
    assert hs.shape == (30, 12, 10) and msi.shape == (4, 48, 40)
    assert list(msi["band"].values) == ["blue", "green", "red", "NIR"]
    g = fit_grids(msi, hs)
    assert g.ratio == 4 and g.phase == (1.5, 1.5)


# ---------------------------------------------------------------------------------------------- SRF estimate


def test_srf_estimate_recovers_the_msi(srf_dir):
    """On a noise-free simulation of the real Jasper Ridge cube, the estimated R predicts the degraded
    MSI closely and its rows sit at the Sentinel-2 band centres."""
    from simulation.hyperspectral import load_cube

    shared_path("data", "hyperspectral", "HSI_jasperRidge2_R198.mat")
    cube = load_cube("jasper")
    hs, msi = degrade.simulate_hs_ms(cube, 4, "Sentinel-2A", snr_hs=None, snr_ms=None, border="replicate")
    hs, msi = hs.load(), msi.load()
    grid = fit_grids(msi, hs)
    prep = engine.prepare(hs, msi, grid, halo_hr=0, hr_bands=None,
                          sensor=geofuse.sensors.get(None, hs.sizes["band"], warn=False))
    R_est = np.asarray(prep.srf.compute())
    assert R_est.shape == (10, 198) and (R_est >= 0).all()
    pred = np.tensordot(R_est, hs.values.astype(np.float64), axes=(1, 0))
    target = np.asarray(prep.msi_lr.compute(), dtype=np.float64)
    rel = np.sqrt(((pred - target) ** 2).mean(axis=(1, 2))) / target.mean(axis=(1, 2))
    assert rel.max() < 0.02, rel
    wl = cube["wavelength"].values
    true = srf.load_srf("Sentinel-2A").matrix(wl)
    centre_est = (R_est @ wl) / R_est.sum(1)
    np.testing.assert_allclose(centre_est, true @ wl, atol=45.0)  # the red edge (B5, B6) is the least identifiable
    # the given matrix is used as is
    prep2 = engine.prepare(hs, msi, grid, halo_hr=0, hr_bands=None, srf=true,
                           sensor=geofuse.sensors.get(None, hs.sizes["band"], warn=False))
    np.testing.assert_array_equal(np.asarray(prep2.srf.compute()), true)


def test_prepare_band_rules():
    hs = _cube(bands=5, rows=12, cols=10)
    msi = xr.concat([_cube(bands=1, rows=48, cols=40)] * 2, dim="band")
    msi = make_raster(msi.values, Affine(0.5, 0, 1000.0, 0, -0.5, 5000.0), "EPSG:32631")
    grid = fit_grids(msi, hs)
    sens = geofuse.sensors.get(None, 5, warn=False)
    with pytest.raises(BandCountError, match="exactly one band"):
        engine.prepare(hs, msi, grid, halo_hr=0, sensor=sens)  # pansharpening keeps its 1-band PAN rule
    with pytest.raises(BandCountError, match="spectral response"):
        engine.prepare(hs, msi, grid, halo_hr=0, hr_bands=None, srf=np.ones((3, 5)), sensor=sens)
    p = engine.prepare(hs, msi, grid, halo_hr=0, hr_bands=None, sensor=sens)
    assert p.pan.shape[0] == 2 and p.msi_lr.shape == (2, 12, 10)


def test_fast_cayley_dickson_table_equals_the_recursive_products():
    """Two constructions of the Cayley-Dickson unit table agree: simulation.hyperspectral.cd_structure (block
    sign table, e_i e_j = s(i, j) e_(i xor j)) and geofuse's vectorised recursive products (the Q2n metric's
    table), up to the 256 components of a 198-band cube; Q2n of a 12-band cube stays finite and sane."""
    from geofuse.metrics import reduced
    from simulation.hyperspectral import cd_structure

    for n in (1, 2, 4, 8, 16, 32, 64, 256):
        np.testing.assert_array_equal(cd_structure(n), reduced._structure(n))
    rng = np.random.default_rng(3)
    g = 1000 + 300 * rng.random((12, 64, 64))
    assert float(reduced.q2n(g, g, block=32, compat="toolbox")) == pytest.approx(1.0, abs=1e-12)
    f = g + 40 * rng.standard_normal(g.shape)
    assert 0.5 < float(reduced.q2n(f, g, block=32, compat="toolbox")) < 1.0


def test_cube_loaders():
    """The real cubes load as georeferenced-like rasters with plausible wavelengths and reflectances."""
    shared_path("data", "hyperspectral", "HSI_samson_1.mat")
    from simulation.hyperspectral import load_cube, load_hyperion_ali

    for name, shape, (lo, hi) in (("jasper", (198, 100, 100), (380, 2500)), ("samson", (156, 95, 95), (401, 889)),
                                  ("urban", (162, 34, 78), (400, 2500))):
        c = load_cube(name)
        assert c.shape == shape and c.dtype == np.float32, name
        wl = c["wavelength"].values
        assert lo <= wl.min() and wl.max() <= hi and np.all(np.diff(wl) > 0), name
        assert 0 <= float(c.min()) and float(c.max()) < 1.5, name
        assert c.rio.crs is not None and c.rio.transform().a > 0
    hs, ms = load_hyperion_ali("ms")
    assert hs.shape == (128, 72, 72) and ms.shape == (9, 72, 72)
    assert fit_grids(ms, hs).ratio == 1  # both 30 m: HySure degrades the Hyperion cube (consistency_reduced)
    hs, pan = load_hyperion_ali("pan")
    g = fit_grids(pan, hs)
    assert g.ratio == 3 and pan.shape == (1, 216, 174) and hs.shape == (128, 72, 58)
    # Samson sees no Sentinel-2 SWIR band: the protocol keeps the overlapping ones
    from simulation.hyperspectral import simulate

    mp = pytest.MonkeyPatch()
    mp.setenv("GEOFUSE_SRF_DIR", str(shared_path("data", "hyperspectral")))
    try:
        _, hs_lr, msi = simulate(load_cube("samson"), 4, "Sentinel-2A", 35.0)
    finally:
        mp.undo()
    assert msi.sizes["band"] == 8 and hs_lr.shape == (156, 23, 23)


def test_cube_wavelengths_follow_the_documented_band_lists():
    """Jasper Ridge R198 is AVIRIS's 224 channels (380-2500 nm) without channels 1-3, 108-112, 154-166 and
    220-224; Urban R162 is HYDICE's 210 channels (400-2500 nm) without 1-4, 76, 87, 101-111, 136-153 and
    198-210 (dataset documentation: F. Zhu, "Hyperspectral unmixing: ground truth labeling, datasets,
    benchmark performances and survey", arXiv:1708.05125). The Jasper file's own ``SlectBands`` must be
    exactly that list, and the loaders must put the Sentinel-2 SWIR centres (B11 1610 nm, B12 2190 nm) on
    kept bands."""
    shared_path("data", "hyperspectral", "HSI_jasperRidge2_R198.mat")
    from scipy.io import loadmat

    from simulation.hyperspectral import _path, load_cube, urban_wavelengths

    removed = set(range(1, 4)) | set(range(108, 113)) | set(range(154, 167)) | set(range(220, 225))
    kept = loadmat(_path("HSI_jasperRidge2_R198.mat"))["SlectBands"].ravel()
    assert sorted(set(range(1, 225)) - set(kept.tolist())) == sorted(removed)
    wl = load_cube("jasper")["wavelength"].values
    step = 2120.0 / 223
    np.testing.assert_allclose(wl, 380.0 + (kept - 1) * step)
    for centre in (1610.0, 2190.0):
        assert np.abs(wl - centre).min() < step / 2 + 1e-9, centre
    u = urban_wavelengths()
    assert u.size == 162 and u[0] == pytest.approx(400.0 + 4 * 2100.0 / 209)


def test_denoise_spectral_is_the_per_band_regression():
    """The toolbox demo's denoising (each band replaced by its least-squares fit on all the others, no
    intercept), checked against an independent per-band ``lstsq`` loop."""
    from simulation.hyperspectral import denoise_spectral

    rng = np.random.default_rng(7)
    base = rng.random((4, 18, 15))
    X = np.einsum("kb,khw->bhw", rng.random((4, 9)), base) + 0.01 * rng.standard_normal((9, 18, 15))
    V = X.reshape(9, -1)
    want = np.empty_like(V)
    for b in range(9):
        A = np.delete(V, b, axis=0).T
        want[b] = A @ np.linalg.lstsq(A, V[b], rcond=None)[0]
    got = denoise_spectral(X)
    np.testing.assert_allclose(got.reshape(9, -1), want, rtol=1e-8, atol=1e-10)
    # band-independent noise is removed, the shared signal kept (many bands, few sources: as on a real cube)
    clean = np.einsum("kb,khw->bhw", rng.random((4, 60)), base)
    noisy = clean + 0.02 * rng.standard_normal(clean.shape)
    assert np.abs(denoise_spectral(noisy) - clean).mean() < 0.7 * np.abs(noisy - clean).mean()


def test_ergas_fused_means_is_the_toolbox_convention():
    """Yokoya's ERGAS.m divides by the mean of its first argument, the fused image: a constant band 1
    fused as 2 gives 100/4 * sqrt(1 / 2^2) = 12.5 (reference means: 25)."""
    from geofuse.metrics import reduced
    from simulation.hyperspectral import ergas_fused_means

    g = np.ones((1, 8, 8))
    assert ergas_fused_means(2 * g, g, 4) == pytest.approx(12.5)
    assert float(reduced.ergas(2 * g, g, 4)) == pytest.approx(25.0)


@pytest.mark.parametrize("stage", ["after", "before"])
def test_hs_noise_stage(srf_dir, stage):
    """HS noise on the LR-HSI (``after``, the review's observation model) keeps its sigma; added to the
    reference before the PSF (``before``) it is averaged down by the PSF's noise gain sqrt(sum k^2) of
    the 8x8 Gaussian (FWHM 4), computed here from its definition."""
    ref = _cube(bands=6, rows=96, cols=96).copy(data=np.ones((6, 96, 96), np.float32))
    ref = ref.assign_coords(wavelength=("band", np.linspace(450.0, 850.0, 6)))
    R = np.full((2, 6), 1 / 6)
    hs, _ = degrade.simulate_hs_ms(ref, 4, R, snr_hs=30.0, snr_ms=None, seed=3, hs_noise=stage)
    d = np.arange(8) - 3.5
    g = np.exp(-0.5 * (d / (4 / 2.35482)) ** 2)
    k = np.outer(g, g) / np.outer(g, g).sum()
    sigma = 10 ** (-30 / 20) * (np.sqrt((k ** 2).sum()) if stage == "before" else 1.0)
    got = float(np.std(hs.values[:, 1:-1, 1:-1]))
    assert got == pytest.approx(sigma, rel=0.1), (got, sigma)
    with pytest.raises(ParameterError, match="noise stage"):
        degrade.simulate_hs_ms(ref, 4, R, hs_noise="middle")
