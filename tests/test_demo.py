"""End-to-end test of the demo (``make demo`` = ``python -m geofuse.demo``) on a small scene.

The demo renders a synthetic scene (``simulation.scene.make_scene``), writes its inputs, fuses them with
every registered pansharpening method, evaluates the results and draws a quick look. Here it runs at
``--size 256`` into ``tmp_path``; the checks are on the files (valid COGs on the PAN grid, the right
bands), on the shape of ``metrics.csv`` (methods x metrics x protocols, methods from the registry) and
on sane ranges of the values (not on a ranking of the methods, which the scene does not guarantee).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("matplotlib")

from geofuse import demo, registry

SIZE = 256
RATIO = 4


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """Run the CLI entry point once at size 256; returns (output dir, captured stdout)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = demo.main(["--size", str(SIZE), "--out", str(out), "--no-progress"])
    assert rc == 0
    return out, buf.getvalue()


def _methods() -> list[str]:
    return [s.name for s in registry.available("pansharpening") if "demo" in s.tags]


def test_outputs_exist_and_are_listed(demo_run):
    out, stdout = demo_run
    names = ["ms.tif", "pan.tif", "truth.tif", "metrics.csv", "quicklook.png"]
    names += [f"fused_{m}.tif" for m in _methods()]
    for n in names:
        p = out / n
        assert p.is_file() and p.stat().st_size > 0, n
        assert str(p.resolve()) in stdout, f"{n} not printed with its absolute path"
    assert "Total time" in stdout
    # nothing half-written left behind
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_geotiffs_on_the_right_grids(demo_run):
    out, _ = demo_run
    with rasterio.open(out / "pan.tif") as pan, rasterio.open(out / "ms.tif") as ms:
        assert (pan.count, pan.height, pan.width) == (1, SIZE, SIZE)
        assert (ms.count, ms.height, ms.width) == (4, SIZE // RATIO, SIZE // RATIO)
        assert pan.crs is not None and pan.crs == ms.crs
        # corner-aligned grids: same origin, MS pixel RATIO times larger
        assert ms.transform.a == pytest.approx(RATIO * pan.transform.a)
        assert (ms.transform.c, ms.transform.f) == pytest.approx((pan.transform.c, pan.transform.f))
        pan_crs, pan_transform, ms_dtype = pan.crs, pan.transform, ms.dtypes[0]
    with rasterio.open(out / "truth.tif") as t:
        assert (t.count, t.height, t.width) == (4, SIZE, SIZE)
        assert t.dtypes[0] == "float32"
        assert t.crs == pan_crs and t.transform == pan_transform
    for m in _methods():
        with rasterio.open(out / f"fused_{m}.tif") as f:
            assert f.driver == "GTiff"
            assert f.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", f"fused_{m}.tif is not a COG"
            assert (f.count, f.height, f.width) == (4, SIZE, SIZE)
            assert f.crs == pan_crs
            assert f.transform == pan_transform
            assert f.dtypes[0] == ms_dtype  # default output dtype: the MS dtype
            data = f.read()
            assert np.isfinite(data.astype(np.float64)).all()
            assert data.std() > 0
            assert list(f.descriptions) == ["blue", "green", "red", "nir"]


def test_metrics_table(demo_run):
    out, stdout = demo_run
    table = pd.read_csv(out / "metrics.csv")
    methods = _methods()
    assert list(table.columns[:5]) == ["protocol", "method", "metric", "band", "value"]
    assert len(table) == len(demo.PROTOCOLS) * len(methods) * len(demo.METRICS)
    for p in demo.PROTOCOLS:
        sub = table[table.protocol == p]
        assert sorted(set(sub.method)) == sorted(methods)
        for m in methods:
            assert sorted(sub[sub.method == m].metric) == sorted(demo.METRICS)
    assert table.value.map(np.isfinite).all()
    q2n = table[table.metric == "Q2n"]
    assert q2n.value.between(-1, 1).all()
    sam = table[table.metric == "SAM"]
    assert sam.value.between(0, 60).all()  # degrees
    ergas = table[table.metric == "ERGAS"]
    assert (ergas.value >= 0).all()
    # every fused image is close to the truth (Q2n > 0.5); exp is the interpolated MS and included
    truth_q2n = q2n[q2n.protocol == "truth"].set_index("method").value
    assert (truth_q2n > 0.5).all(), truth_q2n.to_dict()
    # and the table is printed (Markdown)
    for m in methods:
        assert f"| {m}" in stdout


def test_quicklook_png(demo_run):
    from PIL import Image

    out, _ = demo_run
    with Image.open(out / "quicklook.png") as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w > h > 100  # a row of panels
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10  # not blank


def test_second_run_overwrites_and_run_api(tmp_path):
    res1 = demo.run(tmp_path, size=64, quiet=True, progress=False)
    mtime = res1.fused[_methods()[0]].stat().st_mtime_ns
    res2 = demo.run(tmp_path, size=64, seed=1, quiet=True, progress=False)
    assert res2.fused[_methods()[0]].stat().st_mtime_ns >= mtime
    assert res2.out_dir == tmp_path.resolve()
    assert set(res2.fused) == set(_methods())
    assert all(p.is_absolute() for p in [*res2.fused.values(), res2.metrics_csv, res2.quicklook])
    assert not res2.metrics.equals(res1.metrics)  # another seed, another scene


def test_distributed_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        res = demo.run(tmp_path, size=64, scheduler=cluster.scheduler_address, quiet=True, progress=False)
    assert set(res.fused) == set(_methods())
    assert len(res.metrics) == len(demo.PROTOCOLS) * len(_methods()) * len(demo.METRICS)


def test_bad_size_is_a_clear_error(tmp_path, capsys):
    assert demo.main(["--size", "250", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "size" in err.lower()


def test_format_table():
    t = pd.DataFrame([{"protocol": p, "method": m, "metric": k, "band": "all", "value": 1.0}
                      for p in demo.PROTOCOLS for m in ("a", "bb") for k in demo.METRICS])
    s = demo.format_table(t)
    lines = s.splitlines()
    assert len(lines) == 2 + 2 + 1  # header, rule, 2 methods, ideal
    assert len({len(line) for line in lines}) == 1
