"""Tests for geofuse.io: lazy reading and atomic, chunk-by-chunk writing of GeoTIFF/COG/Zarr."""

from __future__ import annotations

import os
import threading
import time
import warnings

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from geofuse.errors import BandCountError, GeofuseError, InputError, ParameterError, RasterIOError
from geofuse.io import open_raster, write_raster

T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4_000_000.0)
CRS = "EPSG:32633"


@pytest.fixture(autouse=True)
def _quiet_affine():
    # rioxarray itself still uses affine's deprecated `*`; not ours to fix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        yield


def make(shape=(3, 40, 30), dtype="uint16", names=("red", "green", "nir"), nodata=0, chunks=(3, 16, 16),
         seed=0):
    rng = np.random.default_rng(seed)
    b, h, w = shape
    if np.dtype(dtype).kind == "f":
        arr = rng.random(shape).astype(dtype)
    else:
        arr = rng.integers(1, 4000, size=shape).astype(dtype)
    if nodata is not None:
        arr[:, :3, :2] = nodata
    coords = {"x": T.c + T.a * (np.arange(w) + 0.5), "y": T.f + T.e * (np.arange(h) + 0.5)}
    if names is not None:
        coords["band"] = list(names)
    da = xr.DataArray(dsa.from_array(arr, chunks=chunks), dims=("band", "y", "x"), coords=coords)
    da = da.rio.write_crs(CRS).rio.write_transform(T)
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    return da, arr


def listing(d):
    return sorted(os.listdir(d))


@pytest.mark.parametrize("suffix,driver", [(".tif", None), (".tif", "GTiff"), (".zarr", None)])
@pytest.mark.parametrize("dtype,nodata", [("uint16", 0), ("float32", np.nan), ("int16", -9999)])
def test_round_trip(tmp_path, suffix, driver, dtype, nodata):
    da, arr = make(dtype=dtype, nodata=nodata)
    out = write_raster(da, tmp_path / f"out{suffix}", driver=driver)
    assert out == tmp_path / f"out{suffix}"
    assert listing(tmp_path) == [f"out{suffix}"]  # no stage / partial files left
    back = open_raster(out, chunks=16)
    assert isinstance(back.data, dsa.Array)
    assert back.dims == ("band", "y", "x")
    assert back.dtype == np.dtype(dtype)
    assert back.rio.crs == rasterio.crs.CRS.from_string(CRS)
    assert back.rio.transform() == T
    assert list(back.band.values) == ["red", "green", "nir"]
    if np.isnan(nodata):
        assert np.isnan(back.rio.nodata)
    else:
        assert back.rio.nodata == nodata
    np.testing.assert_array_equal(back.values, arr)


def test_cog_is_a_cog_with_overviews(tmp_path):
    da, arr = make(shape=(2, 700, 600), names=("pan", "nir"), chunks=(2, 256, 300))
    out = write_raster(da, tmp_path / "big.tif")
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1)  # internal overviews
        assert src.profile["tiled"] and src.block_shapes[0] == (512, 512)
        assert src.compression.value.lower() == "deflate"
        assert src.descriptions == ("pan", "nir")
        assert src.nodata == 0
    np.testing.assert_array_equal(open_raster(out).values, arr)


def test_gtiff_driver_writes_tiled_geotiff(tmp_path):
    da, arr = make(names=None, nodata=None)
    out = write_raster(da, tmp_path / "plain.tif", driver="GTiff", compress=None)
    with rasterio.open(out) as src:
        assert src.profile["tiled"] and src.nodata is None and src.compression is None
        assert src.descriptions == (None, None, None)
    back = open_raster(out)
    assert list(back.band.values) == [1, 2, 3] and back.rio.nodata is None


def test_default_band_coordinate_and_band_names_override(tmp_path):
    da, _ = make(names=None)
    out = write_raster(da, tmp_path / "a.zarr")
    assert list(open_raster(out).band.values) == [1, 2, 3]
    assert list(open_raster(out, band_names=["b", "g", "r"]).band.values) == ["b", "g", "r"]
    with pytest.raises(BandCountError, match="one name per band"):
        open_raster(out, band_names=["b", "g"])


def test_numeric_band_labels_written_as_names(tmp_path):
    da, _ = make(names=[450, 550, 650])
    back = open_raster(write_raster(da, tmp_path / "w.tif"))
    assert list(back.band.values) == ["450", "550", "650"]


def test_open_is_lazy_and_chunked(tmp_path):
    da, _ = make(shape=(3, 64, 64), chunks=(3, 64, 64))
    out = write_raster(da, tmp_path / "c.tif")
    back = open_raster(out, chunks=32)
    assert isinstance(back.data, dsa.Array)
    assert back.chunks == ((3,), (32, 32), (32, 32))
    back = open_raster(out, chunks={"band": 1, "y": 16, "x": 64})
    assert back.chunks == ((1, 1, 1), (16,) * 4, (64,))
    assert isinstance(open_raster(out, chunks="auto").data, dsa.Array)
    z = write_raster(da.chunk({"y": 32, "x": 32}), tmp_path / "c.zarr")
    assert open_raster(z, chunks=32).chunks == ((3,), (32, 32), (32, 32))
    with pytest.raises(ParameterError):
        open_raster(out, chunks=None)


def test_two_d_array_gets_band_dim(tmp_path):
    da, arr = make(shape=(1, 20, 20), names=None, chunks=(1, 20, 20))
    two_d = da.isel(band=0, drop=True)
    out = write_raster(two_d, tmp_path / "one.tif")
    back = open_raster(out)
    assert back.dims == ("band", "y", "x") and back.shape == (1, 20, 20)
    np.testing.assert_array_equal(back.values, arr)


@pytest.mark.parametrize("name", ["t.tif", "t.zarr"])
def test_transform_only_georeferencing(tmp_path, name):
    da, arr = make()
    da = da.drop_vars(["x", "y"])  # only spatial_ref GeoTransform left
    back = open_raster(write_raster(da, tmp_path / name))
    assert back.rio.transform() == T and back.rio.crs is not None
    np.testing.assert_array_equal(back.values, arr)


def test_numpy_backed_input_is_written(tmp_path):
    da, arr = make()
    out = write_raster(da.compute(), tmp_path / "np.zarr")
    np.testing.assert_array_equal(open_raster(out).values, arr)


def test_dtype_conversion_rounds_clips_and_keeps_nodata(tmp_path):
    da, arr = make(dtype="float32", nodata=np.nan)
    arr = arr * 70000 - 100  # beyond uint16 on both ends
    arr[:, :3, :2] = np.nan
    da = da.copy(data=dsa.from_array(arr, chunks=(3, 16, 16)))
    out = write_raster(da, tmp_path / "u.tif", dtype="uint16", nodata=65535)
    back = open_raster(out)
    assert back.dtype == np.uint16 and back.rio.nodata == 65535
    want = np.clip(np.rint(arr), 0, 65535)
    want[np.isnan(arr)] = 65535
    np.testing.assert_array_equal(back.values, want.astype(np.uint16))
    with pytest.raises(InputError, match="cannot be stored in uint16"):
        write_raster(da, tmp_path / "v.tif", dtype="uint16")  # NaN nodata needs a new value
    assert listing(tmp_path) == ["u.tif"]


def test_new_nodata_value_remaps_old_nodata_pixels(tmp_path):
    da, arr = make(dtype="int16", nodata=-9999)
    for name in ("r.tif", "r.zarr"):
        back = open_raster(write_raster(da, tmp_path / name, nodata=0))
        assert back.dtype == np.int16 and back.rio.nodata == 0
        np.testing.assert_array_equal(back.values, np.where(arr == -9999, 0, arr))


# -------------------------------------------------------------------------------- atomic writes


def _failing(da, bad_block=(0, 1, 1), delay=0.02):
    """Same array, but computing block ``bad_block`` raises (after the others have had time to run)."""

    def fn(x, block_id=None):
        if block_id == bad_block:
            time.sleep(delay)
            raise RuntimeError("boom in the middle of the write")
        return x

    return da.copy(data=da.data.map_blocks(fn, dtype=da.dtype))


@pytest.mark.parametrize("name,driver", [("f.tif", None), ("f.tif", "GTiff"), ("f.zarr", None)])
def test_failed_compute_leaves_nothing(tmp_path, name, driver):
    da, _ = make(shape=(3, 96, 96), chunks=(3, 16, 16))
    with pytest.raises(RuntimeError, match="boom"):
        write_raster(_failing(da), tmp_path / name, driver=driver)
    time.sleep(0.1)
    assert listing(tmp_path) == []


def test_failed_compute_keeps_existing_output(tmp_path):
    da, arr = make()
    out = write_raster(da, tmp_path / "keep.tif")
    with pytest.raises(RuntimeError, match="boom"):
        write_raster(_failing(da, (0, 0, 1)), out, overwrite=True)
    assert listing(tmp_path) == ["keep.tif"]
    np.testing.assert_array_equal(open_raster(out).values, arr)


def test_failed_compute_sync_scheduler(tmp_path):
    da, _ = make(shape=(3, 64, 64))
    with pytest.raises(RuntimeError, match="boom"):
        write_raster(_failing(da, delay=0), tmp_path / "s.zarr", scheduler="synchronous")
    assert listing(tmp_path) == []


def test_refuses_to_overwrite(tmp_path):
    da, arr = make()
    out = write_raster(da, tmp_path / "o.tif")
    with pytest.raises(RasterIOError, match="already exists") as ei:
        write_raster(da, out)
    assert "overwrite=True" in str(ei.value) and "Fix:" in str(ei.value)
    assert isinstance(ei.value, OSError)
    da2 = da + 1
    write_raster(da2.rio.write_nodata(0), out, overwrite=True)
    np.testing.assert_array_equal(open_raster(out).values, arr + 1)
    z = write_raster(da, tmp_path / "o.zarr")
    with pytest.raises(RasterIOError, match="already exists"):
        write_raster(da, z)
    write_raster(da2.rio.write_nodata(0), z, overwrite=True)
    np.testing.assert_array_equal(open_raster(z).values, arr + 1)
    assert listing(tmp_path) == ["o.tif", "o.zarr"]


def test_write_errors(tmp_path):
    da, _ = make()
    with pytest.raises(RasterIOError, match="does not exist"):
        write_raster(da, tmp_path / "nodir" / "x.tif")
    with pytest.raises(ParameterError, match="cannot infer"):
        write_raster(da, tmp_path / "x.png")
    with pytest.raises(ParameterError, match="unknown driver"):
        write_raster(da, tmp_path / "x.tif", driver="PNG")
    with pytest.raises(InputError, match="DataArray"):
        write_raster(np.zeros((1, 4, 4)), tmp_path / "x.tif")
    with pytest.raises(InputError, match="cannot be stored"):
        write_raster(da, tmp_path / "x.tif", nodata=-1)
    assert listing(tmp_path) == []


def test_progress_bar(tmp_path, capsys):
    da, _ = make()
    write_raster(da, tmp_path / "p.tif", progress=True)
    out = capsys.readouterr()
    assert "100%" in out.out + out.err


def test_distributed_client_lock(tmp_path):
    distributed = pytest.importorskip("distributed")
    da, arr = make(shape=(3, 64, 64))
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        out = write_raster(da, tmp_path / "d.tif")
    np.testing.assert_array_equal(open_raster(out).values, arr)


def test_writes_are_thread_safe_with_one_lock_per_write(tmp_path):
    da, arr = make(shape=(3, 64, 64))
    errs = []

    def job(i):
        try:
            write_raster(da, tmp_path / f"t{i}.tif", driver="GTiff")
        except Exception as e:  # pragma: no cover - reported below
            errs.append(e)

    ts = [threading.Thread(target=job, args=(i,)) for i in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs
    for i in range(3):
        np.testing.assert_array_equal(open_raster(tmp_path / f"t{i}.tif").values, arr)


# ------------------------------------------------------------------------------------ bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(RasterIOError, match="no such file") as ei:
        open_raster(tmp_path / "nope.tif")
    assert str(tmp_path / "nope.tif") in str(ei.value)
    assert isinstance(ei.value, OSError) and isinstance(ei.value, GeofuseError)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.tif"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="0 bytes") as ei:
        open_raster(p)
    assert str(p) in str(ei.value) and "Fix:" in str(ei.value)


def test_corrupt_file(tmp_path):
    p = tmp_path / "noise.tif"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(RasterIOError, match="not a raster GDAL can read") as ei:
        open_raster(p)
    assert str(p) in str(ei.value) and "Expected:" in str(ei.value) and "Got:" in str(ei.value)


def test_directory_that_is_not_zarr(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(RasterIOError, match="not a Zarr store"):
        open_raster(tmp_path / "dir")
    (tmp_path / "broken.zarr").mkdir()
    with pytest.raises(RasterIOError, match="not a Zarr store") as ei:
        open_raster(tmp_path / "broken.zarr")
    assert "broken.zarr" in str(ei.value)


def test_zero_pixel_zarr(tmp_path):
    da = xr.DataArray(np.zeros((1, 0, 5), "f4"), dims=("band", "y", "x"))
    da.to_dataset(name="raster").to_zarr(tmp_path / "zero.zarr", consolidated=False)
    with pytest.raises(InputError, match="0 pixels"):
        open_raster(tmp_path / "zero.zarr")


def test_zarr_with_wrong_dims(tmp_path):
    xr.DataArray(np.zeros((2, 3), "f4"), dims=("a", "b")).to_dataset(name="v").to_zarr(
        tmp_path / "odd.zarr", consolidated=False)
    with pytest.raises(InputError, match=r"not a \(band, y, x\) raster"):
        open_raster(tmp_path / "odd.zarr")


@pytest.mark.parametrize("driver", ["COG", "GTiff"])
def test_compressed_output_values_and_codec(tmp_path, driver):
    """A compressed write (the COG is copied from a ZSTD-1 stage, the GTiff compressed under the write
    lock on all CPUs) keeps every value, uses the asked codec, and leaves no stage file behind."""
    da, arr = make(shape=(2, 300, 260), names=("a", "b"), chunks=(2, 128, 100))
    p = tmp_path / "o.tif"
    write_raster(da, p, driver=driver, compress="deflate")
    assert listing(tmp_path) == ["o.tif"]
    with rasterio.open(p) as ds:
        assert ds.compression is not None and ds.compression.name.lower() == "deflate"
        np.testing.assert_array_equal(ds.read(), arr)


def test_write_lock_sets_gdal_threads_only_while_held():
    from rasterio.env import getenv, hasenv

    from geofuse.io import _GdalWriteLock

    lock = _GdalWriteLock()
    seen = {}

    def worker():
        with lock:
            seen["held"] = getenv().get("GDAL_NUM_THREADS")
        seen["after"] = getenv().get("GDAL_NUM_THREADS") if hasenv() else None

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"held": "ALL_CPUS", "after": None}
    assert lock.acquire(blocking=False)  # released
    lock.release()
