"""Input variety on the real PAN + MS pairs, for EVERY registered pansharpening method.

The methods come from ``geofuse.registry.available("pansharpening")`` at collection time (a method
registered later is covered without touching this file). Data: the four real pairs of
``../shared/data/pansharpening`` (IKONOS and GeoEye-1: 4 bands; WorldView-2 and WorldView-3: 8 bands;
loaded by :func:`simulation.realdata.load_pair`, synthetic pixel-space georeferencing, corner-aligned
grids), cropped to PAN 128 x 128 to keep the file fast. Tests skip when ``../shared`` is absent.

What is checked, and why it can fail:

* **band counts** (4 and 8): finite output, every band's mean within 10 % of the MS band's mean, the
  bulk of the pixels (0.5 .. 99.5 percentiles) inside the MS range widened by its width, and the fused
  image averaged back over each MS pixel correlated with the MS (Wald's consistency property, mean over
  bands > 0.5; one band may lose it legitimately, e.g. PCA's NIR on GeoEye-1 where PC1 ~ NIR) --
  garbage, a swapped band or a wrong gain fails.
* **bit depths** (8-, 11-, 12-, 16-bit integers and float32): one 8-bit image ``u`` (the IKONOS crop
  divided by 8) is fed as ``k u`` with ``k = 2**(bits - 8)`` (exact integers in uint8 / uint16, and in
  float32). Pansharpening in DN is scale-equivariant (means, covariances, regressions, ratios and
  percentiles all scale with ``k``), so the float result must equal ``k`` times the 8-bit float result:
  a hard-coded DN constant (an 11-bit ``eps``, an absolute floor, ``2**11``) breaks this. The integer
  result must equal the float result rounded and clipped to the dtype (the documented cast), and the
  dtype is kept.
* **scale 2, 3 and 4**: a georeferenced pair whose truth is known: the real MS crop plays the HR truth,
  the PAN is a fixed weighted sum of its bands, and the MS is its ``r x r`` block average
  (corner-aligned, as the products are gridded). Every method except the EXP baseline must inject
  spatial detail: the spatial correlation (Sobel-magnitude correlation, computed here with
  ``scipy.ndimage.sobel``) of the fused image with the truth must beat EXP's by 0.02 on the 4-band pair
  and not be worse on the 8-band one (BDSD at ratio 2 gains nothing there). Chunked processing must
  equal the whole image for the 8-band pair at ratio 2 (the contract test covers ratios 3 and 4 on 4
  bands; halos are derived from the ratio). Iterative methods (``exact_chunking=False``) are held to the
  contract's 1 DN seam bound instead of bit identity.
* **nodata**: (a) the output must not depend on what lies under nodata: an MS pixel whose first band
  is nodata is invalid, so garbage in its other bands (two different garbage fills, or NaN in float
  inputs) must give bit-identical outputs, with nodata exactly where PAN-nodata or MS-nodata is and
  finite values elsewhere; the same holds chunked. (b) Pixels that were never there: appending a
  nodata strip to the image must leave the pixels far from it (beyond the method's halo and the
  interpolator's) equal to the result on the image without the strip up to the small change of the
  global statistics (the strip's neighbourhood, seen through filters, enters the estimates; median
  below 3e-3 of the band's range, where counting the nodata pixels would move it by tens of percent).
* **sensor without a preset**: a method whose result depends on the MTF gains (checked by running it
  with two different custom gains) must warn with :class:`~geofuse.sensors.GenericSensorWarning`
  naming the parameter to set (``sensor=`` and ``--mtf-gains``) when no sensor, or an unknown one
  (``"Pleiades"``), is given; a method that does not use the gains must not warn.
"""

from __future__ import annotations

import math
import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from numpy.testing import assert_array_equal

from geofuse import registry
from geofuse import sensors as gsensors
from geofuse.api import pansharpen
from geofuse.grid import lowres_transform
from geofuse.raster import make_raster
from geofuse.sensors import GenericSensorWarning

from .conftest import SHARED, SHARED_MISSING

METHODS = [s.name for s in registry.available("pansharpening")]
PAIRS = {"IKONOS": 4, "GeoEye1": 4, "WV2": 8, "WV3": 8}
CROP = 128  # PAN side of the crops
ORIGIN = {"IKONOS": 256, "GeoEye1": 256, "WV2": 256, "WV3": 0}  # PAN offset of the crop (WV3 is 128 px)


def assert_chunked_equal(chunked: np.ndarray, whole: np.ndarray, method: str, what: str) -> None:
    """Bit-identical for exact-chunking methods; iterative methods (overlap + blending, their stated seam
    bound) within 1 DN, as in the contract test."""
    if registry.get(method).exact_chunking:
        assert_array_equal(chunked, whole, err_msg=f"{method}: chunked != whole {what}")
    else:
        np.testing.assert_allclose(chunked.astype(float), whole.astype(float), rtol=0, atol=1.0,
                                   err_msg=f"{method}: chunked != whole {what} beyond the seam bound")


def _quiet(ms, pan, method, **kw) -> xr.DataArray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenericSensorWarning)
        return pansharpen(ms, pan, method, **kw)


_CACHE: dict[str, tuple[xr.DataArray, xr.DataArray, dict]] = {}


def real_crop(name: str) -> tuple[xr.DataArray, xr.DataArray, dict]:
    """(ms, pan, meta) of a real pair, cropped to PAN CROP x CROP (numpy-backed, file dtype)."""
    if name not in _CACHE:
        if not (SHARED / "data" / "pansharpening").is_dir():
            pytest.skip(SHARED_MISSING)
        from simulation.realdata import load_pair

        ms, pan, meta = load_pair(name)
        r, o = meta["ratio"], ORIGIN[name]
        ms = ms.isel(y=slice(o // r, (o + CROP) // r), x=slice(o // r, (o + CROP) // r))
        pan = pan.isel(y=slice(o, o + CROP), x=slice(o, o + CROP))
        _CACHE[name] = (ms.load(), pan.load(), meta)
    return _CACHE[name]


def with_data(x: xr.DataArray, values: np.ndarray, nodata: float | None = None, chunks=None) -> xr.DataArray:
    """``x`` with other pixel values (and dtype), optionally dask-chunked and with a nodata value."""
    data = da.from_array(values, chunks=chunks) if chunks is not None else values
    out = x.copy(data=data)
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


# -------------------------------------------------------------------------------------------------- band counts


@pytest.mark.shared
@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("method", METHODS)
def test_real_pairs_4_and_8_bands(method, pair):
    ms, pan, meta = real_crop(pair)
    nb = PAIRS[pair]
    assert ms.sizes["band"] == nb
    out = pansharpen(ms, pan, method, sensor=meta["sensor"], dtype="float32")
    assert out.shape == (nb, CROP, CROP) and out.dtype == np.float32
    got = out.values.astype(np.float64)
    assert np.isfinite(got).all(), f"{method} on {pair}: non-finite output"
    msv = ms.values.astype(np.float64)
    rel_mean = got.mean(axis=(1, 2)) / msv.mean(axis=(1, 2))
    assert np.all(np.abs(rel_mean - 1) < 0.10), f"{method} on {pair}: band means off: {rel_mean}"
    lo, hi = msv.min(), msv.max()
    p_lo, p_hi = np.percentile(got, [0.5, 99.5])
    assert lo - (hi - lo) <= p_lo and p_hi <= hi + (hi - lo), (method, pair, p_lo, p_hi, lo, hi)
    # Wald consistency: the fused image averaged back over each MS pixel's footprint follows the MS
    # (mean over bands; one band may legitimately lose it, e.g. PCA's NIR on vegetation, PC1 ~ NIR)
    r = meta["ratio"]
    back = got.reshape(nb, CROP // r, r, CROP // r, r).mean(axis=(2, 4))
    cons = [np.corrcoef(back[b].ravel(), msv[b].ravel())[0, 1] for b in range(nb)]
    assert np.mean(cons) > 0.5, f"{method} on {pair}: degraded fusion vs MS correlations {np.round(cons, 2)}"


# -------------------------------------------------------------------------------------------------- bit depths


@pytest.fixture(scope="module")
def eight_bit():
    """The IKONOS crop as an 8-bit image (DN / 8, rounded): the base of every bit depth below."""
    ms, pan, _ = real_crop("IKONOS")
    u_ms = np.clip(np.rint(ms.values / 8.0), 1, 255).astype(np.uint8)
    u_pan = np.clip(np.rint(pan.values / 8.0), 1, 255).astype(np.uint8)
    return ms, pan, u_ms, u_pan


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_bit_depths_scale_equivariant(method, eight_bit):
    ms, pan, u_ms, u_pan = eight_bit
    base = None
    for bits, dtype in ((8, np.uint8), (11, np.uint16), (12, np.uint16), (16, np.uint16)):
        k = 2 ** (bits - 8)
        ms_i = with_data(ms, u_ms.astype(dtype) * dtype(k))
        pan_i = with_data(pan, u_pan.astype(dtype) * dtype(k))
        assert int(ms_i.max()) < 2 ** bits and int(pan_i.max()) < 2 ** bits
        ms_f = with_data(ms, ms_i.values.astype(np.float32))
        pan_f = with_data(pan, pan_i.values.astype(np.float32))
        out_f = pansharpen(ms_f, pan_f, method, sensor="IKONOS")
        assert out_f.dtype == np.float32
        f = out_f.values
        assert np.isfinite(f).all()
        if bits in (8, 16):  # the integer path (the same for 11 and 12 bits in uint16)
            out_i = pansharpen(ms_i, pan_i, method, sensor="IKONOS")
            assert out_i.dtype == dtype
            info = np.iinfo(dtype)
            assert_array_equal(out_i.values, np.clip(np.round(f), info.min, info.max).astype(dtype),
                               err_msg=f"{method}: {bits}-bit result is not the float result rounded and clipped")
        if base is None:
            base = f.astype(np.float64)
            continue
        # the same image in k times larger units: the fusion is k times larger
        err = np.abs(f / k - base).max() / (base.max() - base.min())
        assert err < 1e-5, f"{method}: {bits}-bit input is not {k} x the 8-bit result (max rel. diff {err:.2e})"


# -------------------------------------------------------------------------------------------------- scales


SCALE_SIDE = 96  # HR side of the scale pairs: a multiple of 2, 3 and 4
PAN_WEIGHTS = {4: (0.10, 0.25, 0.30, 0.35), 8: (0.03, 0.10, 0.15, 0.12, 0.20, 0.12, 0.15, 0.13)}


def _sobel_scc(a: np.ndarray, b: np.ndarray) -> float:
    """Spatial correlation: uncentred correlation of Sobel gradient magnitudes over all bands (scipy)."""
    from scipy import ndimage

    def grad(x):
        return np.stack([np.hypot(ndimage.sobel(band, 0), ndimage.sobel(band, 1)) for band in x])[:, 1:-1, 1:-1]

    ga, gb = grad(a.astype(np.float64)), grad(b.astype(np.float64))
    return float((ga * gb).sum() / math.sqrt((ga ** 2).sum() * (gb ** 2).sum()))


def scale_pair(name: str, ratio: int):
    """(ms, pan, truth): the real MS (at its own resolution) is the HR truth of a pair with ``ratio``."""
    if not (SHARED / "data" / "pansharpening").is_dir():
        pytest.skip(SHARED_MISSING)
    from simulation.realdata import load_pair

    ms, _, _ = load_pair(name)
    truth = ms.values[:, 100:100 + SCALE_SIDE, 100:100 + SCALE_SIDE].astype(np.float64) if name != "WV3" \
        else np.pad(ms.values.astype(np.float64), ((0, 0), (0, SCALE_SIDE - 32), (0, SCALE_SIDE - 32)),
                    mode="symmetric")
    nb = truth.shape[0]
    w = np.asarray(PAN_WEIGHTS[nb])
    pan = np.tensordot(w / w.sum(), truth, axes=1)[None]
    n = SCALE_SIDE // ratio
    ms_lr = truth.reshape(nb, n, ratio, n, ratio).mean(axis=(2, 4))
    pan_t = Affine(2.0, 0.0, 300_000.0, 0.0, -2.0, 5_000_000.0)
    ms_t = lowres_transform(pan_t, ratio, ((ratio - 1) / 2, (ratio - 1) / 2))
    return (make_raster(ms_lr.astype(np.float32), ms_t, "EPSG:32632"),
            make_raster(pan.astype(np.float32), pan_t, "EPSG:32632", band=["pan"]), truth)


@pytest.fixture(scope="module")
def scale_pairs():
    """(name, ratio) -> (ms, pan, truth, SCC of EXP with the truth)."""
    out = {}
    for name in ("IKONOS", "WV2"):
        for r in (2, 3, 4):
            ms, pan, truth = scale_pair(name, r)
            out[(name, r)] = (ms, pan, truth, _sobel_scc(_quiet(ms, pan, "exp").values, truth))
    return out


@pytest.mark.shared
@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("method", METHODS)
def test_scales_2_3_4(method, ratio, scale_pairs):
    for name in ("IKONOS", "WV2"):
        ms, pan, truth, scc_exp = scale_pairs[(name, ratio)]
        sensor = "IKONOS" if name == "IKONOS" else "WV2"
        whole = pansharpen(ms, pan, method, sensor=sensor)
        assert whole.attrs["geofuse_ratio"] == ratio
        assert whole.attrs["geofuse_interpolation"] == ("lanczos3" if ratio == 3 else "interp23tap")
        assert whole.shape == truth.shape and whole.rio.transform() == pan.rio.transform()
        got = whole.values
        assert np.isfinite(got).all()
        if ratio == 2 and name == "WV2":  # ratios 3 and 4 are in the contract test; 8 bands there are not
            chunked = pansharpen(ms, pan, method, sensor=sensor, chunks=48)
            assert chunked.data.numblocks[1:] == (2, 2)
            assert_chunked_equal(chunked.values, got, method, f"at ratio {ratio}")
        if method == "exp":
            continue
        # detail injected: spatially closer to the truth than the interpolated MS. On the 4-band pair
        # (PAN spanning the bands) by a margin; on the 8-band pair at least not worse (BDSD at ratio 2
        # fits its 9 gains on 24 x 24 reduced-scale samples and gains no SCC there).
        scc = _sobel_scc(got, truth)
        margin = 0.02 if name == "IKONOS" else 0.0
        assert scc > scc_exp + margin, (f"{method} ratio {ratio} on {name}: no detail injected "
                                        f"(SCC {scc:.3f} vs EXP {scc_exp:.3f})")


# -------------------------------------------------------------------------------------------------- nodata

NODATA = 0
MS_BLOCK = (slice(10, 14), slice(6, 12))  # LR rows 10..13, cols 6..11 -> HR rows 40..55, cols 24..47
PAN_BLOCK = (slice(90, 101), slice(70, 95))  # HR, not aligned to the ratio


def _nodata_inputs(ms, pan, fill_rest, floating: bool):
    """MS with band 0 = nodata (NaN if floating) and ``fill_rest`` in the other bands inside MS_BLOCK;
    PAN nodata in PAN_BLOCK."""
    dt = np.float32 if floating else ms.dtype
    msv, panv = ms.values.astype(dt), pan.values.astype(dt)
    bad = np.nan if floating else NODATA
    msv[0][MS_BLOCK] = bad
    msv[1:, MS_BLOCK[0], MS_BLOCK[1]] = fill_rest
    panv[0][PAN_BLOCK] = bad
    nd = None if floating else NODATA
    return with_data(ms, msv, nd, chunks=(ms.sizes["band"], 9, 9)), with_data(pan, panv, nd, chunks=(1, 36, 36))


def _expected_mask(shape, r=4):
    m = np.zeros(shape, bool)
    m[MS_BLOCK[0].start * r:MS_BLOCK[0].stop * r, MS_BLOCK[1].start * r:MS_BLOCK[1].stop * r] = True
    m[PAN_BLOCK] = True
    return m


@pytest.mark.shared
@pytest.mark.parametrize("floating", [False, True], ids=["uint16-nodata0", "float32-nan"])
@pytest.mark.parametrize("method", METHODS)
def test_nodata_content_never_leaks(method, floating):
    ms, pan, meta = real_crop("IKONOS")
    rng = np.random.default_rng(7)
    garbage = [65535 if not floating else 1e30,
               rng.integers(1, 65535, size=(ms.sizes["band"] - 1, 4, 6)).astype(np.float32)]
    outs = [pansharpen(*_nodata_inputs(ms, pan, g, floating), method, sensor="IKONOS", chunks=4096).values
            for g in garbage]
    a, b = outs
    assert_array_equal(a, b, err_msg=f"{method}: the values under nodata changed valid output pixels")
    if not floating:
        chunked = pansharpen(*_nodata_inputs(ms, pan, garbage[1], floating), method, sensor="IKONOS", chunks=64)
        assert chunked.data.numblocks[1:] == (2, 2)
        assert_chunked_equal(chunked.values, a, method, "with nodata")
    mask = _expected_mask(a.shape[1:])
    if floating:
        assert_array_equal(np.isnan(a).all(axis=0), mask)
        assert np.isfinite(a[:, ~mask]).all()
    else:
        assert a.dtype == ms.dtype
        assert_array_equal((a == NODATA).any(axis=0), mask)
        assert_array_equal((a == NODATA).all(axis=0), mask)
        valid = a[:, ~mask].astype(np.float64)
        # no garbage: nothing near the garbage fill (65535) or the clip limits
        assert valid.max() < 4 * float(ms.max()), (method, valid.max())


def _halo_lr(method: str, ratio: int = 4) -> int:
    spec = registry.get(method)
    return math.ceil(spec.halo(spec.resolve({}), ratio) / ratio) + 6  # + interp23tap's 6 LR samples


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_nodata_strip_equals_image_without_it(method):
    """Appending 8 LR rows + cols of nodata: far pixels equal the fusion of the image without them."""
    ms, pan, meta = real_crop("IKONOS")
    r, extra = 4, 8
    n = ms.sizes["y"]
    msv = np.full((ms.sizes["band"], n + extra, n + extra), NODATA, ms.dtype)
    msv[:, :n, :n] = ms.values
    panv = np.full((1, r * (n + extra), r * (n + extra)), NODATA, pan.dtype)
    panv[:, :r * n, :r * n] = pan.values
    pan_t = pan.rio.transform()
    big_ms = make_raster(msv, ms.rio.transform(), ms.rio.crs, band=list(ms["band"].values), nodata=NODATA)
    big_pan = make_raster(panv, pan_t, pan.rio.crs, band=["pan"], nodata=NODATA)
    ref = pansharpen(ms.rio.write_nodata(NODATA, encoded=False), pan.rio.write_nodata(NODATA, encoded=False),
                     method, sensor="IKONOS", dtype="float32").values.astype(np.float64)
    got = pansharpen(big_ms, big_pan, method, sensor="IKONOS", dtype="float32").values.astype(np.float64)
    assert (got[:, r * n:, :] == NODATA).all() and (got[:, :, r * n:] == NODATA).all()
    assert np.isfinite(got).all()
    far = r * (n - _halo_lr(method))
    assert far >= 40, "crop too small for this method's halo"
    a, b = got[:, :far, :far], ref[:, :far, :far]
    rel = np.abs(a - b) / (b.max(axis=(1, 2)) - b.min(axis=(1, 2)))[:, None, None]
    # Had the 36 % of nodata pixels entered the statistics, means and variances (hence every pixel)
    # would move by tens of percent; what remains is the strip's neighbourhood seen through filters
    # (measured: median <= 1.8e-3 of the band range, BDSD's 8 x 8 reduced-scale fit the largest).
    assert np.median(rel) < 3e-3, f"{method}: far pixels moved by a median {np.median(rel):.2e} of the range"
    assert np.percentile(rel, 95) < 2e-2, f"{method}: far pixels moved by {np.percentile(rel, 95):.2e} (p95)"


# -------------------------------------------------------------------------------------------------- sensor


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_sensor_without_preset_warns_when_the_mtf_matters(method):
    ms, pan, _ = real_crop("WV2")
    nb = ms.sizes["band"]
    a = _quiet(ms, pan, method, sensor=gsensors.custom([0.2] * nb, 0.1), dtype="float32").values
    b = _quiet(ms, pan, method, sensor=gsensors.custom([0.5] * nb, 0.4), dtype="float32").values
    uses_mtf = not np.array_equal(a, b)
    for sensor in (None, "Pleiades"):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            pansharpen(ms, pan, method, sensor=sensor)
        msgs = [str(w.message) for w in rec if issubclass(w.category, GenericSensorWarning)]
        if uses_mtf:
            assert msgs, f"{method} uses the MTF gains but sensor={sensor!r} gave no GenericSensorWarning"
            assert "sensor=" in msgs[0] and "--mtf-gains" in msgs[0], msgs[0]
        else:
            assert not msgs, f"{method} does not use the MTF gains but warned: {msgs}"
