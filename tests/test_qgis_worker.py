"""``python -m geofuse.qgis_worker``: the JSON-lines child of the QGIS plugin (no QGIS needed).

Run in-process through :func:`geofuse.qgis_worker.main` (it writes to the current ``sys.stdout``); one
test starts the real module as a subprocess to check the protocol on the wire.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import geofuse
from geofuse import qgis_worker, registry

from .conftest import synthetic_pair


@pytest.fixture
def tiffs(tmp_path):
    ms, pan = synthetic_pair((24, 32), 4, dtype=np.uint16, seed=7, chunks=None)
    geofuse.write_raster(ms, tmp_path / "ms.tif")
    geofuse.write_raster(pan, tmp_path / "pan.tif")
    return tmp_path


def _run(capsys, *argv) -> tuple[int, list[dict]]:
    rc = qgis_worker.main(list(argv))
    lines = capsys.readouterr().out.splitlines()
    return rc, [json.loads(line) for line in lines]  # every line is one JSON object


def test_describe_lists_the_registry(capsys):
    rc, msgs = _run(capsys, "describe")
    assert rc == 0 and len(msgs) == 1 and msgs[0]["type"] == "result"
    d = msgs[0]["describe"]
    assert [m["name"] for m in d["methods"]] == [s.name for s in registry.available()]
    spec = registry.get("c_gsa")
    m = next(m for m in d["methods"] if m["name"] == "c_gsa")
    assert [p["name"] for p in m["parameters"]] == [p.name for p in spec.parameters]
    assert m["parameters"][0]["min"] == spec.parameters[0].min and m["summary"] == spec.summary
    assert "IKONOS" in d["sensors"] and d["geofuse_version"] == geofuse.__version__
    assert "reduced" in d["protocols"] and set(d["protocol_metrics"]) == set(d["protocols"])


def test_fuse_job_writes_the_library_result_with_progress(capsys, tiffs):
    out = tiffs / "out.tif"
    job = {"method": "gsa", "inputs": {"ms": str(tiffs / "ms.tif"), "pan": str(tiffs / "pan.tif")},
           "bands": {"ms": [4, 2, 1]}, "out": str(out), "driver": "GTiff", "dtype": "float32", "nodata": -9}
    rc, msgs = _run(capsys, "fuse", json.dumps(job))
    assert rc == 0, msgs
    kinds = [m["type"] for m in msgs]
    assert kinds[-1] == "result" and "error" not in kinds and "info" in kinds
    pct = [m["percent"] for m in msgs if m["type"] == "progress"]
    assert pct == sorted(pct) and pct[-1] == 100.0
    ms, pan = geofuse.open_raster(tiffs / "ms.tif"), geofuse.open_raster(tiffs / "pan.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = geofuse.pansharpen(ms.isel(band=[3, 1, 0]).compute(), pan.compute(), "gsa", dtype="float32", nodata=-9)
    got = geofuse.open_raster(out)
    assert got.rio.transform() == want.rio.transform() and got.rio.crs == want.rio.crs
    assert got.rio.nodata == -9 and got.dtype == np.float32
    np.testing.assert_array_equal(got.values, want.values)
    assert msgs[-1]["outputs"] == {"OUTPUT": str(out)} and msgs[-1]["shape"] == [3, 96, 128]


@pytest.mark.parametrize("job, kind, needle", [
    ({"bands": {"ms": [5]}}, "BandCountError", "out of range"),
    ({"params": {"n_segments": 3}}, "ParameterError", "has no parameter 'n_segments'"),
    ({"method": "nope"}, "UnknownMethodError", "Unknown fusion method 'nope'"),
    ({"device": "cuda:7"}, "DeviceError", "cuda:7"),
])
def test_errors_are_one_message_with_the_librarys_text(capsys, tiffs, job, kind, needle):
    base = {"method": "gsa", "inputs": {"ms": str(tiffs / "ms.tif"), "pan": str(tiffs / "pan.tif")},
            "out": str(tiffs / "x.tif")}
    rc, msgs = _run(capsys, "fuse", json.dumps({**base, **job}))
    assert rc == 2
    err = msgs[-1]
    assert err["type"] == "error" and err["error"] == kind and needle in err["message"]
    assert err["geofuse_error"] is True and "Traceback" in err["traceback"]
    assert not (tiffs / "x.tif").exists()


def test_simulate_then_evaluate_both_protocols(capsys, tiffs):
    ms, pan = str(tiffs / "ms.tif"), str(tiffs / "pan.tif")
    rc, msgs = _run(capsys, "simulate", json.dumps({"ms": ms, "pan": pan, "sensor": "IKONOS",
                                                    "out_ms": str(tiffs / "ms_lr.tif"),
                                                    "out_pan": str(tiffs / "pan_lr.tif")}))
    assert rc == 0, msgs
    assert geofuse.open_raster(tiffs / "ms_lr.tif").shape == (4, 6, 8)
    rc, msgs = _run(capsys, "fuse", json.dumps({"method": "mtf_glp_hpm", "sensor": "IKONOS",
                                                "inputs": {"ms": str(tiffs / "ms_lr.tif"),
                                                           "pan": str(tiffs / "pan_lr.tif")},
                                                "out": str(tiffs / "f_lr.tif")}))
    assert rc == 0, msgs
    html, csv = tiffs / "r.html", tiffs / "r.csv"
    rc, msgs = _run(capsys, "evaluate", json.dumps({"fused": str(tiffs / "f_lr.tif"), "reference": ms,
                                                    "ms": str(tiffs / "ms_lr.tif"), "metrics": ["ERGAS", "SAM"],
                                                    "html": str(html), "csv": str(csv)}))
    assert rc == 0, msgs
    want = geofuse.evaluate(geofuse.open_raster(tiffs / "f_lr.tif"), geofuse.open_raster(ms),
                            ms=geofuse.open_raster(tiffs / "ms_lr.tif"), metrics=["ERGAS", "SAM"])
    got = {(r["metric"], str(r["band"])): r["value"] for r in msgs[-1]["table"]}
    for r in want.itertuples():
        assert got[(r.metric, str(r.band))] == pytest.approx(r.value, rel=1e-12)
    assert "<table" in html.read_text() and csv.read_text().startswith("metric")
    if "full" in qgis_worker.describe()["protocols"]:
        rc, msgs = _run(capsys, "fuse", json.dumps({"method": "mtf_glp_hpm", "sensor": "IKONOS",
                                                    "out": str(tiffs / "f.tif"), "inputs": {"ms": ms, "pan": pan}}))
        assert rc == 0, msgs
        job = {"fused": str(tiffs / "f.tif"), "protocol": "full", "ms": ms, "pan": pan, "sensor": "IKONOS",
               "html": str(html)}
        rc, msgs = _run(capsys, "evaluate", json.dumps(job))
        assert rc == 0, msgs
        assert {"D_lambda", "D_s", "QNR"} <= {r["metric"] for r in msgs[-1]["table"]}


def test_the_module_speaks_json_lines_on_stdout_only():
    cp = subprocess.run([sys.executable, "-m", "geofuse.qgis_worker", "fuse", "{not json"], capture_output=True,
                        text=True, timeout=300)
    assert cp.returncode == 1
    msgs = [json.loads(line) for line in cp.stdout.splitlines()]
    assert msgs and msgs[-1]["type"] == "error" and msgs[-1]["error"] == "JSONDecodeError"


def test_usage_error(capsys):
    rc, msgs = _run(capsys)
    assert rc == 1 and msgs[-1]["error"] == "UsageError" and "describe" in msgs[-1]["message"]
