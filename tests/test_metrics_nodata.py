"""Nodata never enters a metric.

Reference values come from code paths that are validated elsewhere, never from the masked code itself:

* the reduced-resolution indexes of an image with a nodata strip must equal the *unmasked* indexes of
  the crop without the strip (the unmasked code is checked against the MATLAB toolbox's table in
  tests/test_metrics_first.py and tests/test_metrics_rr.py): every pixel, window and block that
  does not touch the strip is in both, and none other;
* SCC with an irregular nodata blob is compared with an independent computation from
  ``scipy.ndimage.sobel`` and ``scipy.ndimage.minimum_filter``;
* properties: whatever lies under the nodata (random values, huge values, NaN) the result is the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray
from affine import Affine
from scipy import ndimage

import geofuse
from geofuse.errors import InputError
from geofuse.metrics import rr
from geofuse.metrics.evaluate import reduced_resolution
from geofuse.metrics.reduced import ergas, q2n, sam, valid_mask
from geofuse.raster import make_raster

RR = ["Q2n", "Q", "SAM", "ERGAS", "SCC", "PSNR", "RMSE", "CC", "SSIM"]
# SCC is left out of the crop comparison: the toolbox's SCC zero-pads at the border of the image it is
# given, so the crop's last column sees zeros where the full image has valid pixels (tested against
# scipy below instead).
CROP_EQUAL = [m for m in RR if m != "SCC"]
T = Affine(4.0, 0.0, 500000.0, 0.0, -4.0, 4100000.0)


def _pair(seed=0, shape=(4, 160, 192)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[1], 0:shape[2]]
    base = 400 + 300 * np.sin(x / 9.0) * np.cos(y / 13.0)
    ref = np.stack([base * (1 + 0.2 * b) + rng.normal(0, 20, shape[1:]) for b in range(shape[0])])
    fused = ref + rng.normal(0, 25, shape)
    return fused.astype(np.float32), ref.astype(np.float32)


def _with_strip(img, cols, fill):
    out = img.copy()
    out[:, :, -cols:] = fill
    return out


def _table(fused, ref, **kw):
    t = reduced_resolution(fused, ref, 4, metrics=RR, **kw)
    return dict(zip(zip(t.metric, t.band), t.value, strict=True))


@pytest.mark.parametrize("chunks", [None, {"y": 53, "x": 70}])
def test_nodata_strip_equals_crop(chunks):
    fused, ref = _pair()
    strip = 32                                      # keeps the crop on the 32-pixel Q2n block grid
    rng = np.random.default_rng(5)
    garbage = rng.uniform(0, 60000, fused[:, :, -strip:].shape).astype(np.float32)
    # the fused declares nodata 0 and holds it in the strip; the reference declares -1 and holds garbage there
    f = make_raster(_with_strip(fused, strip, 0), T, "EPSG:32633", nodata=0)
    g_arr = _with_strip(ref, strip, -1)
    g_arr[:, :-1, -5] = garbage[:, :-1, -5]         # not even the reference's own nodata everywhere
    g = make_raster(g_arr, T, "EPSG:32633", nodata=-1)
    if chunks:
        f, g = f.chunk(chunks), g.chunk(chunks)
    masked = _table(f, g)
    crop = _table(fused[:, :, :-strip], ref[:, :, :-strip])
    for key, want in crop.items():
        if key[0] in CROP_EQUAL:
            assert masked[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key
    # and it differs from what the unmasked indexes make of the same arrays
    unmasked = _table(f.values, g.values)
    assert unmasked[("ERGAS", "all")] > 2 * masked[("ERGAS", "all")]


def test_garbage_under_nodata_in_one_image_only_is_ignored():
    """Nodata declared by the reference alone excludes the pixel for both images, whatever the fused holds."""
    fused, ref = _pair(seed=1)
    rng = np.random.default_rng(2)
    blob = np.zeros(ref.shape[1:], bool)
    blob[40:75, 60:130] = True
    blob[100:103, :] = True
    g = make_raster(np.where(blob, 0, ref).astype(np.float32), T, "EPSG:32633", nodata=0)
    results = []
    for fill in (0.0, 1e6, np.nan, rng.normal(0, 1e4)):
        f = np.where(blob, fill, fused).astype(np.float32)
        results.append(_table(make_raster(f, T, "EPSG:32633"), g))
    for other in results[1:]:
        for key, v in results[0].items():
            assert other[key] == pytest.approx(v, rel=1e-12), key
    assert all(np.isfinite(v) for v in results[0].values())


def test_explicit_valid_mask_equals_declared_nodata():
    fused, ref = _pair(seed=3)
    blob = np.zeros(ref.shape[1:], bool)
    blob[10:50, 20:60] = True
    declared = _table(make_raster(fused, T, "EPSG:32633"),
                      make_raster(np.where(blob, -9999, ref).astype(np.float32), T, "EPSG:32633", nodata=-9999))
    explicit = _table(fused, np.where(blob, 123.0, ref).astype(np.float32), valid=~blob)
    for key, v in declared.items():
        assert explicit[key] == pytest.approx(v, rel=1e-12), key


def test_scc_with_nodata_matches_scipy_sobel():
    """SCC (2021) over the pixels whose 3x3 support is valid, against scipy's Sobel (independent code)."""
    fused, ref = _pair(seed=4, shape=(3, 96, 80))
    blob = np.zeros(ref.shape[1:], bool)
    blob[30:41, 20:33] = True
    blob[70, 50] = True
    got = rr.scc(fused, ref, per_band=True, valid=~blob)
    fi, gi, bi = fused[:, 1:-1, 1:-1].astype(np.float64), ref[:, 1:-1, 1:-1].astype(np.float64), blob[1:-1, 1:-1]
    # a pixel counts when no pixel of its 3x3 neighbourhood is invalid (zeros beyond the interior: valid)
    keep = ndimage.maximum_filter(bi.astype(np.uint8), size=3, mode="constant", cval=0) == 0

    def mag(x):
        x = np.where(bi, 0.0, x)
        return np.hypot(ndimage.sobel(x, axis=0, mode="constant"), ndimage.sobel(x, axis=1, mode="constant"))

    sums = np.array([[(mag(a) * mag(b) * keep).sum(), (mag(a) ** 2 * keep).sum(), (mag(b) ** 2 * keep).sum()]
                     for a, b in zip(fi, gi, strict=True)])
    want_band = sums[:, 0] / np.sqrt(sums[:, 1] * sums[:, 2])
    want_all = sums[:, 0].sum() / np.sqrt(sums[:, 1].sum() * sums[:, 2].sum())
    np.testing.assert_allclose(got[:-1], want_band, rtol=1e-12)
    assert got[-1] == pytest.approx(want_all, rel=1e-12)
    # a NaN in the blob changes nothing
    f_nan = fused.copy()
    f_nan[:, blob] = np.nan
    np.testing.assert_allclose(rr.scc(f_nan, ref, per_band=True, valid=~blob), got, rtol=1e-12)


def test_q2n_leaves_out_blocks_touching_nodata():
    fused, ref = _pair(seed=6, shape=(4, 128, 128))
    valid = np.ones(ref.shape[1:], bool)
    valid[5, 70] = False                            # one pixel: the block (0, 2) is left out
    got = q2n(fused, ref, valid=valid)
    blocks = [q2n(fused[:, i:i + 32, j:j + 32], ref[:, i:i + 32, j:j + 32])
              for i in range(0, 128, 32) for j in range(0, 128, 32) if (i, j) != (0, 64)]
    assert got == pytest.approx(np.mean(blocks), rel=1e-12)


def test_masked_raster_nan_nodata(tmp_path):
    """A GeoTIFF with nodata opened with ``masked=True`` (NaN pixels, rioxarray's idiom) gives the same table."""
    fused, ref = _pair(seed=7, shape=(4, 96, 96))
    ref = np.round(ref).astype(np.uint16)
    ref[:, :, -32:] = 0
    path = tmp_path / "ref.tif"
    make_raster(ref, T, "EPSG:32633", nodata=0).rio.to_raster(path)
    plain = _table(fused, rioxarray.open_rasterio(path))
    masked = _table(fused, rioxarray.open_rasterio(path, masked=True))
    crop = _table(fused[:, :, :-32], ref[:, :, :-32])
    for key in crop:
        if key[0] in CROP_EQUAL:
            assert plain[key] == pytest.approx(crop[key], rel=1e-9), key
            assert masked[key] == pytest.approx(crop[key], rel=1e-9), key


def test_without_declared_nodata_nan_is_not_hidden():
    """No nodata declared: a NaN the fusion produced makes the index NaN instead of being skipped."""
    fused, ref = _pair(seed=8, shape=(4, 64, 64))
    fused[:, 10, 10] = np.nan
    assert np.isnan(ergas(fused, ref, 4))
    assert np.isnan(sam(fused, ref))
    assert valid_mask(fused) is None


def test_full_resolution_refuses_nodata_pixels():
    rng = np.random.default_rng(9)
    pan = rng.uniform(100, 900, (1, 128, 128)).astype(np.float32)
    ms = rng.uniform(100, 900, (4, 32, 32)).astype(np.float32)
    fused = np.repeat(np.repeat(ms, 4, axis=1), 4, axis=2)
    ms_nd = ms.copy()
    ms_nd[:, :3, :] = 0
    ms_r = make_raster(ms_nd, T, "EPSG:32633", nodata=0)
    pan_r = make_raster(pan, Affine(1.0, 0, 500000.0, 0, -1.0, 4100000.0), "EPSG:32633")
    fused_r = make_raster(fused, Affine(1.0, 0, 500000.0, 0, -1.0, 4100000.0), "EPSG:32633")
    for chunked in (False, True):
        args = [x.chunk({"y": 64, "x": 64}) if chunked else x for x in (fused_r, ms_r, pan_r)]
        with pytest.raises(InputError, match=r"96 nodata pixels in the ms.*crop inside the valid area"):
            geofuse.evaluate(args[0], ms=args[1], pan=args[2], protocol="full", sensor="IKONOS", ratio=4)
    # the same images without nodata pixels (nodata still declared) are evaluated
    ok = geofuse.evaluate(fused_r, ms=make_raster(ms, T, "EPSG:32633", nodata=0), pan=pan_r, protocol="full",
                          sensor="IKONOS", ratio=4)
    assert np.isfinite(ok.value).all()
