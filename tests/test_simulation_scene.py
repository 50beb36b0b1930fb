"""Tests of the synthetic scene generator (simulation/scene.py) and its CLI."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from geofuse import sensors
from geofuse.errors import ParameterError
from simulation import spectra as sp
from simulation.scene import degrade_ms, make_scene, mtf_blur, ms_sigma, pan_sigma


@pytest.fixture(scope="module")
def scene():
    return make_scene(256, seed=0)


def test_deterministic_per_seed():
    a, b, c = make_scene(128, seed=7), make_scene(128, seed=7), make_scene(128, seed=8)
    for name in ("pan", "ms", "truth"):
        np.testing.assert_array_equal(getattr(a, name).values, getattr(b, name).values)
        assert not np.array_equal(getattr(a, name).values, getattr(c, name).values)
    np.testing.assert_array_equal(a.materials.values, b.materials.values)


def test_noise_and_sensor_do_not_change_the_layout():
    base = make_scene(128, seed=3)
    noisy = make_scene(128, seed=3, noise=4.0)
    qb = make_scene(128, seed=3, sensor="QB")
    np.testing.assert_array_equal(base.truth.values, noisy.truth.values)
    np.testing.assert_array_equal(base.truth.values, qb.truth.values)
    diff = noisy.pan.values.astype(float) - base.pan.values
    assert 3.0 < diff.std() < 5.0
    assert not np.array_equal(base.ms.values, qb.ms.values)


def test_global_rng_untouched():
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    make_scene(64, seed=1)
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("bits, dtype", [(8, np.uint8), (11, np.uint16), (12, np.uint16)])
def test_dtypes_shapes_and_range(bits, dtype):
    s = make_scene(128, ratio=4, bits=bits, seed=2, noise=2.0)
    assert s.pan.dtype == dtype and s.ms.dtype == dtype and s.truth.dtype == np.float32
    assert s.pan.dims == s.ms.dims == s.truth.dims == ("band", "y", "x")
    assert s.pan.shape == (1, 128, 128)
    assert s.ms.shape == (4, 32, 32)
    assert s.truth.shape == (4, 128, 128)
    top = 2 ** bits - 1
    assert int(s.pan.max()) <= top and int(s.ms.max()) <= top
    assert float(s.truth.min()) >= 0.0
    # the scale leaves headroom: the bulk of the scene is well inside the DN range
    assert np.percentile(s.truth.values, 99.5) < top
    assert 0.05 * top < float(s.ms.mean()) < 0.5 * top
    for da in (s.pan, s.ms, s.truth):
        assert isinstance(da.values, np.ndarray) and da.chunks is None


def test_band_names_attrs(scene):
    assert list(scene.pan.band.values) == ["pan"]
    assert list(scene.ms.band.values) == ["blue", "green", "red", "nir"]
    assert list(scene.truth.band.values) == ["blue", "green", "red", "nir"]
    assert scene.ms.attrs["long_name"] == ("blue", "green", "red", "nir")
    assert scene.pan.attrs["long_name"] == ("pan",)
    assert (scene.sensor, scene.ratio, scene.bits, scene.seed) == ("IKONOS", 4, 11, 0)


def test_georeferencing_corner_aligned():
    origin = (300000.0, 5000000.0)
    s = make_scene(96, ratio=3, pan_res=0.5, origin=origin, crs="EPSG:32632", seed=1)
    hr = Affine(0.5, 0.0, origin[0], 0.0, -0.5, origin[1])
    for da in (s.pan, s.truth, s.materials):
        assert da.rio.crs.to_epsg() == 32632
        assert da.rio.transform() == hr
        assert da.rio.transform(recalc=True) == hr      # coordinates agree with the transform
    assert s.ms.rio.crs.to_epsg() == 32632
    assert s.ms.rio.transform() == hr @ Affine.scale(3)
    assert s.ms.rio.transform(recalc=True) == hr @ Affine.scale(3)
    # pixel centres: the MS pixel k is the centre of the HR pixels 3k..3k+2
    assert s.pan.x.values[0] == origin[0] + 0.25
    assert s.pan.y.values[0] == origin[1] - 0.25
    np.testing.assert_allclose(s.ms.x.values, s.pan.x.values.reshape(-1, 3).mean(axis=1))
    np.testing.assert_allclose(s.ms.y.values, s.pan.y.values.reshape(-1, 3).mean(axis=1))


def test_invalid_arguments():
    with pytest.raises(ParameterError):
        make_scene(130, ratio=4)
    with pytest.raises(ValueError):
        make_scene(16, ratio=4)
    with pytest.raises(ValueError):
        make_scene(128, bits=0)
    with pytest.raises(ValueError):
        make_scene(128, noise=-1.0)


def test_materials_are_spectrally_distinct(scene):
    t = scene.truth.values.astype(float)
    haze = np.asarray(sp.PATH_RADIANCE)[list(sp.MS_CHANNELS)] * scene.truth.attrs["reflectance_scale"]
    rho = t - haze[:, None, None]                    # remove the path radiance before NDVI
    ndvi = (rho[3] - rho[2]) / (rho[3] + rho[2] + 1e-6)
    mat = scene.materials.values
    present = {name for name in sp.MATERIALS if (mat == sp.index(name)).sum() > 50}
    assert {"tree", "soil", "asphalt"} <= present
    assert present & {"water", "river"}
    veg = np.isin(mat, [sp.index("tree"), sp.index("crop")])
    wet = np.isin(mat, [sp.index("water"), sp.index("river")])
    soil = mat == sp.index("soil")
    assert np.median(ndvi[veg]) > 0.5
    assert np.median(ndvi[wet]) < 0.0
    assert np.median(ndvi[veg]) > np.median(ndvi[soil]) + 0.3
    # water is the darkest surface in the NIR, vegetation brighter in NIR than in red
    assert np.median(t[3][wet]) < 0.5 * np.median(t[3][soil])
    assert np.median(t[3][veg]) > 3 * np.median(t[2][veg])


def test_mtf_gaussian_gain_at_nyquist():
    """Measure the response of the implemented filters to a cosine at the Nyquist frequency."""
    n = 240
    x = np.arange(n, dtype=float)
    # PAN: cos(pi x) at 0.5 cycles/pixel
    pan_in = np.broadcast_to(np.cos(np.pi * x), (1, n, n))
    for g in (0.11, 0.15, 0.17):
        out = mtf_blur(pan_in, [pan_sigma(g)])[0, n // 2, 64:-64]
        # (rtol: the padded image is not a pure Nyquist tone at its edges; the transfer function's
        # kink at +-0.5 cycles/pixel gives the discrete kernel long, tiny tails)
        np.testing.assert_allclose(out / np.cos(np.pi * x[64:-64]), g, rtol=1e-2)
    # MS system (Gaussian + ratio-pixel box): cosine at 1/(2 ratio) peaking at the LR sample centres
    for ratio in (2, 3, 4):
        c = (ratio - 1) / 2
        row = np.cos(2 * np.pi * (x - c) / (2 * ratio))
        gains = sensors.get("IKONOS").gains(4)
        lr = degrade_ms(np.broadcast_to(row, (4, n, n)).copy(), gains, ratio)
        k = np.arange(n // ratio)
        mid = slice(n // ratio // 4, -n // ratio // 4)
        for b, g in enumerate(gains):
            np.testing.assert_allclose(lr[b, n // ratio // 2, mid] / np.cos(np.pi * k[mid]), g, rtol=2e-3)


def test_sigma_formula_matches_toolbox_design():
    """sigma = ratio*sqrt(-2 ln g)/pi (spatial) is the toolbox's alpha = sqrt(((N-1) fcut/2)^2/(-2 ln g))
    expressed in pixels: alpha is the std of the frequency-domain Gaussian on an N-point grid."""
    ratio, g, N = 4, 0.29, 41
    alpha = math.sqrt(((N - 1) * (1 / ratio) / 2) ** 2 / (-2 * math.log(g)))
    sigma_spatial = (N - 1) / (2 * math.pi * alpha)   # FT of a Gaussian of std alpha (in N-1 samples)
    assert sigma_spatial == pytest.approx(ratio * math.sqrt(-2 * math.log(g)) / math.pi)
    # the MS Gaussian of the footprint model is narrower (the box supplies part of the blur)
    assert ms_sigma(g, ratio) < sigma_spatial


def test_ms_is_degraded_truth(scene):
    truth = scene.truth.values.astype(np.float64)
    ms = scene.ms.values.astype(np.float64)
    r = scene.ratio
    gains = sensors.get("IKONOS").gains(4)
    c = slice(2, -2)                                    # ignore the border pixels
    for b, g in enumerate(gains):
        # independent Wald-protocol-like path: spatial Gaussian (toolbox design) + nearest decimation
        sig = r * math.sqrt(-2 * math.log(g)) / math.pi
        wald = ndimage.gaussian_filter(truth[b], sig, mode="reflect")[r // 2::r, r // 2::r]
        assert np.corrcoef(wald[c, c].ravel(), ms[b][c, c].ravel())[0, 1] > 0.99
        # the exact model with a spatial kernel: Gaussian then block mean over HR pixels rk..rk+r-1
        exact = ndimage.gaussian_filter(truth[b], ms_sigma(g, r), mode="reflect")
        exact = exact.reshape(exact.shape[0] // r, r, -1, r).mean(axis=(1, 3))
        assert np.abs(exact - ms[b]).max() < 3.0
        # the phase is the corner-aligned one: shifting the footprint by one HR pixel is worse
        shifted = np.roll(ndimage.gaussian_filter(truth[b], ms_sigma(g, r), mode="reflect"), -1, axis=(0, 1))
        shifted = shifted.reshape(shifted.shape[0] // r, r, -1, r).mean(axis=(1, 3))
        assert np.abs(shifted - ms[b])[c, c].mean() > 2 * np.abs(exact - ms[b])[c, c].mean()


def test_pan_is_weighted_sum_of_truth(scene):
    w = np.asarray(sp.PAN_WEIGHTS)[list(sp.MS_CHANNELS)]
    lin = np.tensordot(w / w.sum(), scene.truth.values.astype(float), axes=1)
    lin = ndimage.gaussian_filter(lin, pan_sigma(sensors.get("IKONOS").pan_gnyq))
    pan = scene.pan.values[0].astype(float)
    assert np.corrcoef(lin.ravel(), pan.ravel())[0, 1] > 0.98
    assert abs(pan.mean() / lin.mean() - 1) < 0.1


def _hf_fraction(img: np.ndarray, fcut: float) -> float:
    img = img - img.mean()
    p = np.abs(np.fft.fft2(img)) ** 2
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    return float(p[np.hypot(fy, fx) > fcut].sum() / p.sum())


def test_pan_has_more_detail_than_upsampled_ms(scene):
    r = scene.ratio
    intensity = scene.ms.values.astype(float).mean(axis=0)
    up = ndimage.zoom(intensity, r, order=3, grid_mode=True, mode="grid-mirror")
    pan = scene.pan.values[0].astype(float)
    assert up.shape == pan.shape
    fcut = 1.0 / (2 * r)
    assert _hf_fraction(pan, fcut) > 4 * _hf_fraction(up, fcut)
    # and the truth has even more (the PAN is blurred by its own MTF)
    assert _hf_fraction(scene.truth.values.astype(float).mean(axis=0), fcut) > _hf_fraction(pan, fcut)


def test_speed_512():
    t0 = time.perf_counter()
    make_scene(512, seed=5)
    assert time.perf_counter() - t0 < 2.0


def test_cli_scene(tmp_path, capsys):
    import rioxarray

    from simulation.__main__ import SUBCOMMANDS, main

    assert "scene" in SUBCOMMANDS
    assert main(["scene", "--size", "64", "--seed", "2", "--sensor", "QB", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "o" / f"{n}.tif") for n in ("pan", "ms", "truth")]
    ref = make_scene(64, seed=2, sensor="QB")
    for name in ("pan", "ms", "truth"):
        da = rioxarray.open_rasterio(tmp_path / "o" / f"{name}.tif")
        want = getattr(ref, name)
        assert da.dtype == want.dtype and da.shape == want.shape
        assert da.rio.transform() == want.rio.transform()
        assert da.rio.crs == want.rio.crs
        np.testing.assert_array_equal(da.values, want.values)
