"""Band selection on a lazily opened raster (``open_raster(f).isel(band=[...])``) fuses like the same bands
in memory. Regression: dask's graph clone (independent reads for the estimate and apply passes) left a
dangling shuffle-taker key for such graphs and the compute failed with "Missing dependency"."""

from __future__ import annotations

import numpy as np
import pytest

import geofuse

from .conftest import synthetic_pair


@pytest.mark.parametrize("bands", [[0, 2, 3], [0, 1, 2, 3], [3, 1]])
@pytest.mark.parametrize("method", ["gsa", "mtf_glp_hpm"])
def test_isel_bands_of_opened_raster(tmp_path, bands, method):
    ms, pan = synthetic_pair((48, 40), 4, chunks=None, seed=3)
    geofuse.write_raster(ms, tmp_path / "ms.tif")
    geofuse.write_raster(pan, tmp_path / "pan.tif")
    lazy_ms = geofuse.open_raster(tmp_path / "ms.tif").isel(band=bands)
    lazy_pan = geofuse.open_raster(tmp_path / "pan.tif")
    ikonos = geofuse.sensors.get("IKONOS", 4)
    sensor = geofuse.sensors.custom([ikonos.gains(4)[b] for b in bands], ikonos.pan_gnyq)
    got = geofuse.pansharpen(lazy_ms, lazy_pan, method=method, sensor=sensor, chunks=64).compute()
    want = geofuse.pansharpen(ms.isel(band=bands), pan, method=method, sensor=sensor, chunks=64).compute()
    assert got.shape == (len(bands),) + pan.shape[1:]
    assert list(got["band"].values) == list(ms["band"].values[bands])
    np.testing.assert_array_equal(got.values, want.values)
