"""The ``geofuse`` command line, end to end on small GeoTIFFs (run in-process through ``main``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import geofuse
from geofuse import registry
from geofuse.cli import build_parser, main

from .conftest import synthetic_pair


@pytest.fixture
def tiffs(tmp_path):
    ms, pan = synthetic_pair((32, 40), 4, dtype=np.uint16, seed=3, chunks=None)
    geofuse.write_raster(ms, tmp_path / "ms.tif")
    geofuse.write_raster(pan, tmp_path / "pan.tif")
    return tmp_path, ms, pan


def test_methods_lists_the_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for spec in registry.available():
        assert spec.name in out and spec.family in out
    assert main(["methods", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == [s.name for s in registry.available()]


def test_method_options_are_generated_from_the_registry():
    """Every parameter of a scenario's methods becomes a --option of that scenario's command (`pansharpen`,
    `fuse-hs`; nothing written twice), and only those: a hyperspectral-only option is not offered to
    `pansharpen`."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command, scenario in (("pansharpen", "pansharpening"), ("fuse-hs", "hyperspectral")):
        opts = {o for a in commands[command]._actions for o in a.option_strings}
        own = {"--" + p.name.replace("_", "-") for s in registry.available(scenario) for p in s.parameters}
        assert own and own <= opts, command
        others = {"--" + p.name.replace("_", "-") for s in registry.available() if s.scenario != scenario
                  for p in s.parameters} - own
        assert not (others & opts), (command, sorted(others & opts))


def test_pansharpen_writes_the_same_pixels_as_the_library(tiffs, capsys):
    d, ms, pan = tiffs
    out = d / "fused.tif"
    assert main(["pansharpen", str(d / "ms.tif"), str(d / "pan.tif"), str(out), "--method", "mtf_glp_hpm",
                 "--sensor", "IKONOS", "--chunks", "64", "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "mtf_glp_hpm" and summary["ratio"] == 4
    got = geofuse.open_raster(out)
    lib = geofuse.pansharpen(ms, pan, "mtf_glp_hpm", sensor="IKONOS")
    assert got.dtype == np.uint16 and got.shape == (4, 128, 160)
    assert got.rio.crs == pan.rio.crs
    assert got.rio.transform() == pan.rio.transform()
    np.testing.assert_array_equal(got.values, lib.values)


def test_pansharpen_refuses_mismatched_crs_with_exit_code_2(tiffs, capsys):
    d, ms, pan = tiffs
    geofuse.write_raster(ms.rio.write_crs("EPSG:4326"), d / "ms_wgs84.tif")
    out = d / "bad.tif"
    assert main(["pansharpen", str(d / "ms_wgs84.tif"), str(d / "pan.tif"), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "geofuse: error:" in err and "CRS" in err and "Fix:" in err
    assert not out.exists()
    assert not [p for p in d.iterdir() if "partial" in p.name]


def test_unknown_method_lists_available(tiffs, capsys):
    d, _, _ = tiffs
    assert main(["pansharpen", str(d / "ms.tif"), str(d / "pan.tif"), str(d / "x.tif"), "-m", "nope"]) == 2
    err = capsys.readouterr().err
    assert all(s.name in err for s in registry.available())


def test_option_of_another_method_is_refused(tiffs, capsys):
    d, _, _ = tiffs
    assert main(["pansharpen", str(d / "ms.tif"), str(d / "pan.tif"), str(d / "x.tif"), "-m", "gsa",
                 "-P", "nonexistent=3"]) == 2
    assert "no parameter 'nonexistent'" in capsys.readouterr().err


def test_simulate_then_evaluate(tiffs, capsys):
    d, ms, pan = tiffs
    assert main(["simulate", str(d / "ms.tif"), str(d / "pan.tif"), str(d / "rr"), "--sensor", "IKONOS",
                 "--no-progress"]) == 0
    ms_lr = geofuse.open_raster(d / "rr" / "ms_lr.tif")
    pan_lr = geofuse.open_raster(d / "rr" / "pan_lr.tif")
    assert ms_lr.shape == (4, 8, 10) and pan_lr.shape == (1, 32, 40)
    # the degraded MS keeps the toolbox phase relative to the degraded PAN (kept samples 4k+2)
    assert main(["pansharpen", str(d / "rr" / "ms_lr.tif"), str(d / "rr" / "pan_lr.tif"), str(d / "rr" / "f.tif"),
                 "-m", "gsa", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(d / "rr" / "f.tif"), str(d / "ms.tif"), "--ms", str(d / "rr" / "ms_lr.tif"),
                 "--csv", str(d / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "Q2n" in out and "SAM" in out and "ERGAS" in out
    import pandas as pd

    table = pd.read_csv(d / "m.csv")
    q2n = float(table.loc[table.metric == "Q2n", "value"].iloc[0])
    assert 0.3 < q2n <= 1.0


def test_scheduler_option_runs_on_a_cluster(tiffs, capsys):
    distributed = pytest.importorskip("distributed")
    d, ms, pan = tiffs
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["pansharpen", str(d / "ms.tif"), str(d / "pan.tif"), str(d / "c.tif"), "-m", "gsa",
                     "--scheduler", cluster.scheduler_address, "--chunks", "64"]) == 0
    np.testing.assert_array_equal(geofuse.open_raster(d / "c.tif").values,
                                  geofuse.pansharpen(ms, pan, "gsa").values)


def test_driver_option_writes_a_plain_tiled_geotiff(tiffs):
    import rasterio

    d, ms, pan = tiffs
    out = d / "plain.tif"
    assert main(["pansharpen", str(d / "ms.tif"), str(d / "pan.tif"), str(out), "-m", "exp", "--driver", "GTiff",
                 "--no-progress"]) == 0
    with rasterio.open(out) as f:
        assert f.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG" and f.overviews(1) == []
    np.testing.assert_array_equal(geofuse.open_raster(out).values, geofuse.pansharpen(ms, pan, "exp").values)
