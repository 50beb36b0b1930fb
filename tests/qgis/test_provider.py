"""The geofuse Processing provider inside QGIS: metadata, generated parameters, validation, cancel.

Runs under pytest-qgis in Debian's python3 (tests/qgis/pytest.ini). The fusion methods come from the
real geofuse registry, asked through the CLI (``geofuse methods --json``), an independent path from the
worker's ``describe`` that the plugin uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from osgeo import gdal, osr
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

import geofuse_qgis
from geofuse_qgis import algorithms, runner
from geofuse_qgis.provider import GeofuseProvider

TOOLS = {"simulate_wald", "evaluate_quality", "check_installation"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def registry(geofuse_python):
    """The registry as ``geofuse methods --json`` prints it."""
    out = subprocess.run([geofuse_python, "-m", "geofuse.cli", "methods", "--json"], capture_output=True, text=True,
                         check=True, env=runner.child_env()).stdout
    return json.loads(out)


@pytest.fixture
def provider(qgis_processing, geofuse_python, use_python):
    use_python(geofuse_python)
    prov = GeofuseProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    yield prov
    QgsApplication.processingRegistry().removeProvider(prov)


def write_tif(path: Path, bands: int, size: tuple[int, int], pixel: float, epsg: int = 32633,
              origin: tuple[float, float] = (500_000.0, 4_000_000.0), seed: int = 0) -> str:
    """A small uint16 GeoTIFF written with Debian's GDAL (no geofuse in this interpreter)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size[1], size[0], bands, gdal.GDT_UInt16)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(200, 1800, size=size, dtype=np.uint16))
    ds = None
    return str(path)


@pytest.fixture
def pair(tmp_path):
    """MS 4 bands 32x40 at 2 m, PAN 128x160 at 0.5 m (ratio 4, corner-aligned), EPSG:32633."""
    ms = write_tif(tmp_path / "ms.tif", 4, (32, 40), 2.0, seed=1)
    pan = write_tif(tmp_path / "pan.tif", 1, (128, 160), 0.5, seed=2)
    return tmp_path, ms, pan


def run_alg(alg_id: str, params: dict, feedback=None):
    import processing

    return processing.run(alg_id, params, feedback=feedback or QgsProcessingFeedback(),
                          context=QgsProcessingContext())


# ---------------------------------------------------------------------------------------------- loading


def test_plugin_load_is_light_and_registers_only_the_provider(geofuse_python):
    """classFactory imports nothing heavy; initProcessing registers the provider and loads no geofuse."""
    code = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT / 'qgis_plugin')!r})
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
before = set(sys.modules)
import geofuse_qgis
plugin = geofuse_qgis.classFactory(None)
after_factory = sorted(set(sys.modules) - before)
plugin.initProcessing()
ids = [p.id() for p in QgsApplication.processingRegistry().providers()]
print(json.dumps({{"after_factory": after_factory, "modules": sorted(sys.modules), "ids": ids,
                  "algs": [a.id() for a in QgsApplication.processingRegistry().providerById('geofuse').algorithms()]}}))
plugin.unload()
"""
    env = {**os.environ, "GEOFUSE_PYTHON": geofuse_python, "QT_QPA_PLATFORM": "offscreen"}
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    assert set(res["after_factory"]) <= {"__future__", "geofuse_qgis", "geofuse_qgis.plugin"}, res["after_factory"]
    assert "geofuse" in res["ids"]
    heavy = {"geofuse", "torch", "rasterio", "xarray", "dask", "geofuse.registry"}
    assert not heavy & set(res["modules"])
    assert "geofuse:gsa" in res["algs"]


def test_every_registry_method_is_an_algorithm_with_metadata(provider, registry):
    algs = {a.name(): a for a in provider.algorithms()}
    assert set(algs) == {m["name"] for m in registry} | TOOLS
    for name, alg in algs.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert alg.id() == f"geofuse:{name}"
        assert alg.displayName() and alg.shortHelpString() and alg.helpUrl().startswith("https://")
        assert re.fullmatch(r"[a-z0-9_]+", alg.groupId()) and alg.group()
        clone = alg.createInstance()
        clone.initAlgorithm()
        assert clone.name() == name
        names = [p.name() for p in clone.parameterDefinitions()]
        assert len(names) == len(set(names)) and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names)
    for m in registry:
        alg = algs[m["name"]]
        assert alg.displayName() == m["title"]
        assert m["summary"][:60] in alg.shortHelpString().replace("&#x27;", "'").replace("&quot;", '"')
        for doi in m["references"]:
            assert doi in alg.shortHelpString()
        assert alg.helpUrl() == "https://doi.org/" + m["references"][0]
        assert m["family"] in alg.group() or algorithms.FAMILY_LABELS.get(m["family"], "@") in alg.group()
    assert "geofuse" in provider.longName() and not provider.problem


_KEEP = []


def _defs(alg):
    inst = alg.createInstance()
    inst.initAlgorithm()
    _KEEP.append(inst)  # the definitions belong to the instance
    return {p.name(): p for p in inst.parameterDefinitions()}


def test_parameters_are_generated_from_the_typed_registry_parameters(provider, registry):
    algs = {a.name(): a for a in provider.algorithms()}
    seen = 0
    for m in registry:
        defs = _defs(algs[m["name"]])
        roles = [r.upper() for r in m["inputs"]]
        assert {*roles, f"{roles[0]}_BANDS", "NODATA", "DATA_TYPE", "COG", "OUTPUT"} <= set(defs)
        if m["scenario"] == "pansharpening":
            assert roles == ["MS", "PAN"] and {"SENSOR", "MTF_GAINS"} <= set(defs)
        else:
            assert "SENSOR" not in defs
        assert defs["INTERPOLATION"].flags() & defs["INTERPOLATION"].FlagAdvanced
        for p in m["parameters"]:
            d = defs[algorithms.param_name(p["name"])]
            assert d.flags() & d.FlagAdvanced
            if p["type"] in ("int", "float") and not p["choices"]:
                assert isinstance(d, QgsProcessingParameterNumber)
                want = d.Integer if p["type"] == "int" else d.Double
                assert d.dataType() == want
                assert d.defaultValue() == p["default"]
                if p["min"] is not None:
                    assert d.minimum() == p["min"]
                if p["max"] is not None:
                    assert d.maximum() == p["max"]
            seen += 1
    assert seen >= 1, "the registry has typed parameters (bdsd.block_size, c_gsa.n_segments, ...)"


def test_parameter_kinds_and_hyperspectral_roles_from_a_synthetic_spec(provider):
    """Every registry parameter type maps to its Processing parameter; inputs name the layer parameters."""
    method = {"name": "hs_demo", "title": "HS demo", "family": "HS", "scenario": "hyperspectral",
              "inputs": ["hs", "msi"], "references": ["10.1109/MGRS.2020.3019315"], "summary": "A demo. More.",
              "tags": [], "parameters": [
                  {"name": "lam", "type": "float", "default": 0.5, "doc": "weight", "min": 0.0, "max": 1.0,
                   "choices": None},
                  {"name": "iters", "type": "int", "default": 10, "doc": "iterations", "min": 1, "max": None,
                   "choices": None},
                  {"name": "fast", "type": "bool", "default": True, "doc": "fast mode", "min": None, "max": None,
                   "choices": None},
                  {"name": "mode", "type": "str", "default": "b", "doc": "mode", "min": None, "max": None,
                   "choices": ["a", "b"]},
                  {"name": "label", "type": "str", "default": "x", "doc": "free text", "min": None, "max": None,
                   "choices": None},
                  {"name": "output", "type": "int", "default": 1, "doc": "clash", "min": None, "max": None,
                   "choices": None}]}
    alg = algorithms.FusionAlgorithm(method, provider.description)
    _KEEP.append(alg)
    defs = _defs(alg)
    assert {"HS", "HS_BANDS", "MSI", "OUTPUT"} <= set(defs) and "PAN" not in defs and "SENSOR" not in defs
    assert "Hyperspectral" in defs["HS"].description() and "high resolution" in defs["MSI"].description()
    assert isinstance(defs["LAM"], QgsProcessingParameterNumber) and defs["LAM"].maximum() == 1.0
    assert isinstance(defs["ITERS"], QgsProcessingParameterNumber) and defs["ITERS"].minimum() == 1
    assert isinstance(defs["FAST"], QgsProcessingParameterBoolean) and defs["FAST"].defaultValue() is True
    assert isinstance(defs["MODE"], QgsProcessingParameterEnum) and defs["MODE"].options() == ["a", "b"]
    assert defs["MODE"].usesStaticStrings() and defs["MODE"].defaultValue() == "b"
    assert isinstance(defs["LABEL"], QgsProcessingParameterString)
    assert "P_OUTPUT" in defs and defs["OUTPUT"].type() == "rasterDestination"
    assert alg.group().startswith("Hyperspectral fusion") and alg.groupId() == "hyperspectral_hs"


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("case, needle", [
    ("crs", "both must share one CRS"),
    ("pan_bands", "has 3 bands; pansharpening needs a one-band"),
    ("band_selection", "asks for band(s) 7"),
    ("disjoint", "do not overlap"),
    ("swapped", "must have smaller pixels"),
    ("suffix", "with a .tif extension"),
])
def test_inputs_are_checked_with_the_qgis_api_before_the_child_runs(provider, pair, tmp_path, case, needle,
                                                                     geofuse_python, use_python):
    from fakepython import make_fake_python

    d, ms, pan = pair
    params = {"MS": ms, "PAN": pan, "OUTPUT": str(d / "out.tif")}
    if case == "crs":
        params["PAN"] = write_tif(d / "pan_32632.tif", 1, (128, 160), 0.5, epsg=32632)
    elif case == "pan_bands":
        params["PAN"] = write_tif(d / "pan3.tif", 3, (128, 160), 0.5)
    elif case == "band_selection":
        params["MS_BANDS"] = [1, 7]
    elif case == "disjoint":
        params["PAN"] = write_tif(d / "far.tif", 1, (128, 160), 0.5, origin=(600_000.0, 4_000_000.0))
    elif case == "swapped":
        params["MS"], params["PAN"] = write_tif(d / "ms_fine.tif", 4, (128, 160), 0.5), \
            write_tif(d / "pan_coarse.tif", 1, (32, 40), 2.0)
    elif case == "suffix":
        params["OUTPUT"] = str(d / "out.png")
    # a child that would fail with another message proves that the check came first
    use_python(make_fake_python(tmp_path, geofuse_python))
    os.environ["GEOFUSE_FAKE_MODE"] = "error"
    fb = RecordingFeedback()
    try:
        with pytest.raises(QgsProcessingException):
            run_alg("geofuse:gsa", params, fb)
    finally:
        os.environ.pop("GEOFUSE_FAKE_MODE", None)
    # errors raised while preparing reach the user through the feedback (qgis_process prints them)
    assert any(needle in e for e in fb.errors), fb.errors
    assert not any("Fake grid mismatch" in e for e in fb.errors)
    assert not Path(params["OUTPUT"]).exists()


def test_library_error_becomes_a_processing_exception_with_traceback_in_debug(provider, pair, tmp_path,
                                                                               geofuse_python, use_python):
    from fakepython import make_fake_python

    d, ms, pan = pair
    use_python(make_fake_python(tmp_path, geofuse_python))
    fb = RecordingFeedback()
    os.environ["GEOFUSE_FAKE_MODE"] = "error"
    try:
        with pytest.raises(QgsProcessingException) as err:
            run_alg("geofuse:gsa", {"MS": ms, "PAN": pan, "OUTPUT": str(d / "out.tif")}, fb)
    finally:
        os.environ.pop("GEOFUSE_FAKE_MODE", None)
    assert str(err.value) == "Fake grid mismatch. Expected: aligned grids. Got: a shift. Fix: align them."
    assert any("fake frame" in m for m in fb.debug)
    assert "Traceback" not in str(err.value)


# ---------------------------------------------------------------------------------------------- real runs


class RecordingFeedback(QgsProcessingFeedback):
    """Records what the runner reports; cancels when ``cancel_on`` appears in an info message."""

    def __init__(self, cancel_on: str | None = None):
        super().__init__()
        self.cancel_on = cancel_on
        self.progress: list[float] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.debug: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []

    def reportError(self, m, fatal=False):  # noqa: N802
        self.errors.append(m)
        super().reportError(m, fatal)

    def setProgress(self, p):  # noqa: N802
        self.progress.append(p)
        super().setProgress(p)

    def pushInfo(self, m):  # noqa: N802
        self.infos.append(m)
        if self.cancel_on and self.cancel_on in m:
            self.cancel()
        super().pushInfo(m)

    def pushWarning(self, m):  # noqa: N802
        self.warnings.append(m)
        super().pushWarning(m)

    def pushDebugInfo(self, m):  # noqa: N802
        self.debug.append(m)
        super().pushDebugInfo(m)

    def pushConsoleInfo(self, m):  # noqa: N802
        self.console.append(m)
        super().pushConsoleInfo(m)


def test_a_real_run_reports_progress_and_writes_the_output(provider, pair):
    d, ms, pan = pair
    fb = RecordingFeedback()
    res = run_alg("geofuse:mtf_glp", {"MS": ms, "PAN": pan, "MS_BANDS": [4, 2], "OUTPUT": str(d / "f.tif")}, fb)
    out = gdal.Open(res["OUTPUT"])
    assert (out.RasterCount, out.RasterXSize, out.RasterYSize) == (2, 160, 128)
    assert out.GetGeoTransform() == gdal.Open(pan).GetGeoTransform()
    assert fb.progress[-1] == 100.0 and fb.progress == sorted(fb.progress) and len(fb.progress) > 3
    assert any("estimating global statistics" in m for m in fb.infos)
    assert any("No MTF preset" in w for w in fb.warnings)  # no sensor: the library's warning reaches the log


def test_cancel_stops_a_real_geofuse_child_and_removes_its_output(provider, pair):
    d, ms, pan = pair
    out = d / "cancelled.tif"
    fb = RecordingFeedback(cancel_on="estimating global statistics")
    t0 = time.monotonic()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("geofuse:gsa", {"MS": ms, "PAN": pan, "OUTPUT": str(out)}, fb)
    assert time.monotonic() - t0 < 60
    assert not out.exists() and not list(d.glob(".cancelled.tif.partial-*"))


def test_wald_simulation_then_evaluation_report(provider, pair):
    d, ms, pan = pair
    sim = run_alg("geofuse:simulate_wald", {"MS": ms, "PAN": pan, "SENSOR": "IKONOS",
                                            "OUTPUT_MS": str(d / "ms_lr.tif"), "OUTPUT_PAN": str(d / "pan_lr.tif")})
    lr = gdal.Open(sim["OUTPUT_MS"])
    assert (lr.RasterCount, lr.RasterXSize, lr.RasterYSize) == (4, 10, 8)
    assert gdal.Open(sim["OUTPUT_PAN"]).RasterXSize == 40
    # the evaluation of an image against itself gives the ideal values (a fusion would take another child)
    rep = run_alg("geofuse:evaluate_quality", {"FUSED": ms, "REFERENCE": ms, "RATIO": 4,
                                               "METRICS": ["ERGAS", "SAM", "Q2n"],
                                               "OUTPUT_HTML": str(d / "report.html"),
                                               "OUTPUT_CSV": str(d / "report.csv")})
    html = Path(rep["OUTPUT_HTML"]).read_text()
    assert "<table" in html and "ERGAS" in html and "SAM" in html
    import csv

    rows = list(csv.DictReader(Path(rep["OUTPUT_CSV"]).open()))
    overall = {r["metric"]: float(r["value"]) for r in rows if r.get("band") in ("all", "", None)}
    assert overall["ERGAS"] == pytest.approx(0, abs=1e-9) and overall["SAM"] == pytest.approx(0, abs=1e-6)
    assert overall["Q2n"] == pytest.approx(1, abs=1e-9)
    assert "ERGAS" in rep["TABLE"]


# ---------------------------------------------------------------------------------------------- setup errors


@pytest.mark.parametrize("python, needle", [("/nonexistent/bin/python", "does not exist"),
                                            ("/usr/bin/python3", "geofuse is not installed")])
def test_a_missing_interpreter_gives_a_clear_message_not_a_traceback(qgis_processing, use_python, python, needle):
    use_python(python)
    prov = GeofuseProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    try:
        names = [a.name() for a in prov.algorithms()]
        assert names == ["check_installation"]
        assert "not ready" in prov.longName() and needle in prov.longName()
        assert runner.SETTINGS_PATH in prov.problem
        with pytest.raises(QgsProcessingException) as err:
            run_alg("geofuse:check_installation", {})
        assert needle in str(err.value) and "Traceback" not in str(err.value)
    finally:
        QgsApplication.processingRegistry().removeProvider(prov)


def test_a_method_added_to_the_registry_appears_without_a_plugin_edit(qgis_processing, tmp_path, use_python,
                                                                        geofuse_python):
    """A stand-in geofuse package: adding a method to it (a file change) refreshes the cached description."""
    pkg = tmp_path / "site" / "geofuse"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "9.9"\n')
    methods = [{"name": "alpha", "title": "Alpha", "family": "CS", "scenario": "pansharpening",
                "inputs": ["ms", "pan"], "references": ["10.1109/MGRS.2020.3019315"], "summary": "Alpha. x",
                "tags": [], "parameters": []}]
    (pkg / "methods.json").write_text(json.dumps(methods))
    (pkg / "qgis_worker.py").write_text(
        "import json, pathlib\n"
        "m = json.loads((pathlib.Path(__file__).parent / 'methods.json').read_text())\n"
        "print(json.dumps({'type': 'result', 'describe': {'geofuse_version': '9.9', 'methods': m,\n"
        "      'sensors': ['QB'], 'metrics': [], 'protocols': ['reduced']}}))\n")
    fake = tmp_path / "py"
    fake.write_text(f'#!/bin/sh\nPYTHONPATH="{pkg.parent}" exec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    use_python(str(fake))
    prov = GeofuseProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    try:
        assert {a.name() for a in prov.algorithms()} == {"alpha"} | TOOLS
        methods.append({**methods[0], "name": "beta", "title": "Beta", "family": "MRA"})
        (pkg / "methods.json").write_text(json.dumps(methods))
        (pkg / "methods_registry.py").write_text("# a new module changes the fingerprint\n")
        prov.refreshAlgorithms()
        assert {a.name() for a in prov.algorithms()} == {"alpha", "beta"} | TOOLS
        assert len(list(Path(geofuse_qgis.provider.cache_dir()).glob("describe-*.json"))) == 1
    finally:
        QgsApplication.processingRegistry().removeProvider(prov)


def test_a_hyperspectral_method_runs_with_its_own_layer_roles(provider, registry, tmp_path):
    hs_methods = [m for m in registry if m["scenario"] == "hyperspectral"]
    if not hs_methods:
        pytest.skip("this geofuse registers no hyperspectral method")
    m = hs_methods[0]
    lr, hr = (r.upper() for r in m["inputs"])
    hs = write_tif(tmp_path / "hs.tif", 12, (16, 20), 4.0, seed=3)
    msi = write_tif(tmp_path / "msi.tif", 4, (64, 80), 1.0, seed=4)
    fb = RecordingFeedback()
    res = run_alg(f"geofuse:{m['name']}", {lr: hs, f"{lr}_BANDS": [1, 2, 3, 4, 5, 6], hr: msi,
                                            "DATA_TYPE": "float32", "OUTPUT": str(tmp_path / "hs_fused.tif")}, fb)
    out = gdal.Open(res["OUTPUT"])
    assert (out.RasterCount, out.RasterXSize, out.RasterYSize) == (6, 80, 64)
    assert out.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert out.GetGeoTransform() == gdal.Open(msi).GetGeoTransform()


def test_every_algorithm_dialog_builds_in_the_gui(geofuse_python, registry):
    """The real Processing dialog (GUI widgets for every generated parameter) of each algorithm."""
    env = {**os.environ, "GEOFUSE_PYTHON": geofuse_python, "QT_QPA_PLATFORM": "offscreen"}
    cp = subprocess.run([sys.executable, str(ROOT / "qgis_plugin" / "docs" / "make_screenshot.py"), "--check-all"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    n = len(registry) + len(TOOLS)
    assert f"{n}/{n} dialogs" in cp.stdout
