"""``geofuse evaluate`` on GeoTIFFs: both protocols, metric selection, CSV / JSON output, errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import geofuse
from geofuse.cli import main
from geofuse.metrics.evaluate import FULL, REDUCED

from .conftest import synthetic_pair


@pytest.fixture
def fr_tiffs(tmp_path):
    ms, pan = synthetic_pair((32, 40), 4, dtype=np.uint16, seed=5, chunks=None)
    geofuse.write_raster(ms, tmp_path / "ms.tif")
    geofuse.write_raster(pan, tmp_path / "pan.tif")
    fused = geofuse.pansharpen(ms, pan, "gsa", sensor="IKONOS")
    geofuse.write_raster(fused, tmp_path / "fused.tif")
    return tmp_path, ms, pan, fused


def test_full_protocol_table_csv_json(fr_tiffs, capsys):
    d, ms, pan, fused = fr_tiffs
    args = ["evaluate", str(d / "fused.tif"), "--protocol", "full", "--ms", str(d / "ms.tif"), "--pan",
            str(d / "pan.tif"), "--sensor", "IKONOS", "--csv", str(d / "fr.csv"), "--json", str(d / "fr.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in FULL:
        assert name in out
    table = pd.read_csv(d / "fr.csv")
    assert list(dict.fromkeys(table.metric)) == list(FULL)
    records = json.loads((d / "fr.json").read_text())
    assert [r["metric"] for r in records] == list(table.metric)
    # same numbers as the API on the same files
    api = geofuse.evaluate(geofuse.open_raster(d / "fused.tif"), ms=geofuse.open_raster(d / "ms.tif"),
                           pan=geofuse.open_raster(d / "pan.tif"), protocol="full", sensor="IKONOS")
    np.testing.assert_allclose(table.value.to_numpy(), api.value.to_numpy(), rtol=1e-12)
    assert 0.0 < float(table.loc[(table.metric == "HQNR") & (table.band == "all"), "value"].iloc[0]) <= 1.0


def test_reduced_protocol_metric_selection_and_formats(fr_tiffs, capsys):
    d, ms, pan, fused = fr_tiffs
    geofuse.write_raster(fused.astype("float32") * 1.01, d / "f2.tif")
    base = ["evaluate", str(d / "f2.tif"), str(d / "fused.tif"), "--ratio", "4"]
    assert main(base + ["--metrics", "Q,SSIM,ERGAS", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(dict.fromkeys(table.metric)) == ["Q", "SSIM", "ERGAS"]
    assert list(table.loc[table.metric == "Q", "band"]) == ["b1", "b2", "b3", "b4", "all"]   # band names kept
    assert main(base + ["--no-per-band", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["metric"] for r in records] == list(REDUCED) and {r["band"] for r in records} == {"all"}


def test_errors_exit_2_with_fix(fr_tiffs, capsys):
    d, ms, pan, fused = fr_tiffs
    assert main(["evaluate", str(d / "fused.tif"), "--protocol", "full", "--ms", str(d / "ms.tif")]) == 2
    err = capsys.readouterr().err
    assert "needs the MS and the PAN" in err and "Fix:" in err and "--pan" in err
    assert main(["evaluate", str(d / "fused.tif")]) == 2
    assert "needs a reference" in capsys.readouterr().err
    assert main(["evaluate", str(d / "fused.tif"), str(d / "pan.tif"), "--ratio", "4"]) == 2
    assert "differ in shape" in capsys.readouterr().err
    assert main(["evaluate", str(d / "fused.tif"), str(d / "fused.tif"), "--ratio", "4", "--metrics", "QNR"]) == 2
    assert "protocol='full'" in capsys.readouterr().err


def test_scc_variant_and_data_range_options(fr_tiffs, capsys):
    """--scc-variant and --data-range reach the metrics: the CLI's values equal the API's with the same options."""
    d, ms, pan, fused = fr_tiffs
    geofuse.write_raster(fused.astype("float32") * 1.01, d / "f2.tif")
    base = ["evaluate", str(d / "f2.tif"), str(d / "fused.tif"), "--ratio", "4", "--metrics", "SCC,PSNR",
            "--no-per-band", "--format", "csv"]
    values = {}
    for extra in ([], ["--scc-variant", "v1.3", "--data-range", "2047"]):
        assert main(base + extra) == 0
        values[tuple(extra)] = pd.read_csv(io.StringIO(capsys.readouterr().out)).value.to_numpy()
    api = geofuse.evaluate(geofuse.open_raster(d / "f2.tif"), geofuse.open_raster(d / "fused.tif"), ratio=4,
                           metrics=["SCC", "PSNR"], per_band=False, scc_variant="v1.3", data_range=2047)
    np.testing.assert_allclose(values[("--scc-variant", "v1.3", "--data-range", "2047")], api.value.to_numpy(),
                               rtol=1e-12)
    assert not np.allclose(values[()], api.value.to_numpy())
