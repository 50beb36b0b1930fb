"""The QGIS plugin end to end in a real, headless QGIS (``qgis_process.bin``), plus its in-process suite.

``qgis_process.bin`` is called directly (Debian's ``qgis_process`` wrapper passes an option QGIS 3.22
rejects) with ``QT_QPA_PLATFORM=offscreen``, a private profile (``QGIS_CUSTOM_CONFIG_PATH``) in which the
plugin is enabled, ``QGIS_PLUGINPATH`` pointing at ``qgis_plugin/`` and ``GEOFUSE_PYTHON`` at this
interpreter (which has geofuse). Outputs are compared with the library's own result. The in-process
tests (pytest-qgis, tests/qgis/) run in the QGIS venv (``make qgis-venv``) from
:func:`test_in_process_suite_under_pytest_qgis`.

Everything here skips, with the reason, where QGIS is not installed (``apt-get install qgis
python3-qgis qgis-providers``; ``.ci/run`` does it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import geofuse
from geofuse import registry
from geofuse.errors import GeofuseError

from .conftest import PAN_TRANSFORM, synthetic_pair

ROOT = Path(__file__).resolve().parents[1]
QGIS_PROCESS = Path(os.environ.get("GEOFUSE_QGIS_PROCESS", "/usr/bin/qgis_process.bin"))
QGIS_VENV_PYTHON = ROOT / ".venv-qgis" / "bin" / "python"
TOOLS = {"simulate_wald", "evaluate_quality", "check_installation"}

pytestmark = pytest.mark.skipif(not QGIS_PROCESS.exists(), reason=f"QGIS is not installed ({QGIS_PROCESS} missing; "
                                "apt-get install qgis python3-qgis qgis-providers, as .ci/run does)")


def _fakepython():
    spec = importlib.util.spec_from_file_location("gf_fakepython", ROOT / "tests" / "qgis" / "fakepython.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_fake_python


@pytest.fixture(scope="module")
def qgis(tmp_path_factory):
    """Runs ``qgis_process.bin`` in a private profile with the plugin enabled; returns a runner."""
    base = tmp_path_factory.mktemp("qgis")
    ini = base / "profile" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\ngeofuse_qgis=true\n")
    runtime = base / "xdg"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(base / "profile"),
           "QGIS_PLUGINPATH": str(ROOT / "qgis_plugin"), "GEOFUSE_PYTHON": sys.executable,
           "XDG_RUNTIME_DIR": str(runtime)}
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(k, None)

    def run(*args: str, extra_env: dict | None = None, timeout: float = 300, popen: bool = False):
        cmd = [str(QGIS_PROCESS), *args]
        e = {**env, **(extra_env or {})}
        if popen:
            return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=base)
        return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout, cwd=base)

    run.base = base
    run.profile = base / "profile" / "profiles" / "default"
    return run


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    ms, pan = synthetic_pair((24, 30), 4, dtype=np.uint16, seed=5, chunks=None)
    geofuse.write_raster(ms, d / "ms.tif")
    geofuse.write_raster(pan, d / "pan.tif")
    return d


def _algorithms(listing: str) -> set[str]:
    return set(re.findall(r"^\s*geofuse:([a-z0-9_]+)\t", listing, flags=re.M))


def test_list_shows_every_registry_method_and_caches_the_registry(qgis):
    t0 = time.monotonic()
    cp = qgis("list")
    first = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr
    assert _algorithms(cp.stdout) == {s.name for s in registry.available()} | TOOLS
    caches = list((qgis.profile / "geofuse").glob("describe-*.json"))
    assert len(caches) == 1 and json.loads(caches[0].read_text())["geofuse_version"] == geofuse.__version__
    t0 = time.monotonic()
    cp2 = qgis("list")
    second = time.monotonic() - t0
    assert _algorithms(cp2.stdout) == _algorithms(cp.stdout)
    print(f"qgis_process list: {first:.2f} s (registry described), {second:.2f} s (cached)")


@pytest.mark.parametrize("case", ["mtf_glp_hpm_cog", "c_gsa_bands_float"])
def test_run_writes_the_same_raster_as_the_library(qgis, tiffs, tmp_path, case):
    ms_path, pan_path = tiffs / "ms.tif", tiffs / "pan.tif"
    out = tmp_path / f"{case}.tif"
    ms, pan = geofuse.open_raster(ms_path), geofuse.open_raster(pan_path)
    if case == "mtf_glp_hpm_cog":
        args = ["geofuse:mtf_glp_hpm", "--", f"MS={ms_path}", f"PAN={pan_path}", "SENSOR=IKONOS", f"OUTPUT={out}"]
        expected = geofuse.pansharpen(ms, pan, "mtf_glp_hpm", sensor="IKONOS")
    else:
        args = ["geofuse:c_gsa", "--", f"MS={ms_path}", "MS_BANDS=3", "MS_BANDS=1", f"PAN={pan_path}",
                "DATA_TYPE=float32", "NODATA=-1", "COG=false", "N_SEGMENTS=3", "INTERPOLATION=bicubic", "DEVICE=cpu",
                f"OUTPUT={out}"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = geofuse.pansharpen(ms.isel(band=[2, 0]).compute(), pan.compute(), "c_gsa", dtype="float32",
                                          nodata=-1, interpolation="bicubic", params={"n_segments": 3})
    cp = qgis("--json", "run", *args)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["results"]["OUTPUT"] == str(out)
    assert out.is_file()
    got = geofuse.open_raster(out)
    assert got.rio.crs == pan.rio.crs == expected.rio.crs
    assert got.rio.transform() == PAN_TRANSFORM == expected.rio.transform()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert got.rio.nodata == expected.rio.nodata
    np.testing.assert_array_equal(got.values, expected.values)
    if case == "c_gsa_bands_float":
        assert got.sizes["band"] == 2


def test_mismatched_crs_fails_before_the_child_with_a_clear_message(qgis, tiffs, tmp_path):
    pan = geofuse.open_raster(tiffs / "pan.tif").rio.write_crs("EPSG:32632")
    geofuse.write_raster(pan, tmp_path / "pan_32632.tif")
    out = tmp_path / "out.tif"
    cp = qgis("run", "geofuse:gsa", "--", f"MS={tiffs / 'ms.tif'}", f"PAN={tmp_path / 'pan_32632.tif'}",
              f"OUTPUT={out}")
    assert cp.returncode != 0
    msg = cp.stdout + cp.stderr
    assert "EPSG:32633" in msg and "EPSG:32632" in msg and "both must share one CRS" in msg
    assert "Warp (Reproject)" in msg and "Traceback" not in msg
    assert not out.exists()
    # the library refuses the same pair (the QGIS check only answers earlier, in QGIS's words)
    with pytest.raises(GeofuseError, match="different CRS"):
        geofuse.pansharpen(geofuse.open_raster(tiffs / "ms.tif"), geofuse.open_raster(tmp_path / "pan_32632.tif"))


def test_a_library_error_fails_with_the_librarys_message(qgis, tiffs, tmp_path):
    """A grid error only geofuse detects (a sub-pixel shift) reaches qgis_process with its own message."""
    ms = geofuse.open_raster(tiffs / "ms.tif")
    t = ms.rio.transform()
    shifted = ms.rio.write_transform(t * t.translation(0.15, 0))  # 0.15 MS pixel = 0.6 PAN pixel east
    shifted = shifted.assign_coords(x=ms.x + 0.15 * t.a)
    geofuse.write_raster(shifted, tmp_path / "ms_shifted.tif")
    with pytest.raises(GeofuseError) as lib:
        geofuse.pansharpen(geofuse.open_raster(tmp_path / "ms_shifted.tif"), geofuse.open_raster(tiffs / "pan.tif"),
                           "gsa", sensor="IKONOS")
    out = tmp_path / "out.tif"
    cp = qgis("run", "geofuse:gsa", "--", f"MS={tmp_path / 'ms_shifted.tif'}", f"PAN={tiffs / 'pan.tif'}",
              "SENSOR=IKONOS", f"OUTPUT={out}")
    assert cp.returncode != 0
    assert str(lib.value) in cp.stdout + cp.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.tif.partial-*"))


def test_interrupting_a_run_stops_the_child_and_leaves_no_output(qgis, tiffs, tmp_path):
    """SIGINT to qgis_process cancels: the child (a fake that hangs after writing partial files) is
    stopped and the partial output removed."""
    fake = _fakepython()(tmp_path, sys.executable)
    pidfile, out = tmp_path / "child.pid", tmp_path / "out.tif"
    proc = qgis("run", "geofuse:gsa", "--", f"MS={tiffs / 'ms.tif'}", f"PAN={tiffs / 'pan.tif'}", f"OUTPUT={out}",
                extra_env={"GEOFUSE_PYTHON": fake, "GEOFUSE_FAKE_MODE": "hang",
                           "GEOFUSE_FAKE_PIDFILE": str(pidfile)}, popen=True)
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and out.exists()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert pidfile.exists() and out.exists() and list(tmp_path.glob(".out.tif.partial-*"))
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "Cancelled" in stdout + stderr
    assert not out.exists() and not list(tmp_path.glob(".out.tif.partial-*"))
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_without_geofuse_the_provider_explains_how_to_set_it_up(qgis, tmp_path):
    env = {"GEOFUSE_PYTHON": str(tmp_path / "no" / "python")}
    cp = qgis("list", extra_env=env)
    assert cp.returncode == 0
    assert _algorithms(cp.stdout) == {"check_installation"}
    cp = qgis("run", "geofuse:check_installation", extra_env=env)
    assert cp.returncode != 0
    msg = cp.stdout + cp.stderr
    assert "does not exist" in msg and "Providers" in msg and "GEOFUSE_PYTHON" in msg and "Traceback" not in msg
    cp = qgis("--json", "run", "geofuse:check_installation")
    assert cp.returncode == 0, cp.stderr
    res = json.loads(cp.stdout)["results"]
    assert res["GEOFUSE_VERSION"] == geofuse.__version__ and res["METHODS"] == len(registry.available())


def test_in_process_suite_under_pytest_qgis(tmp_path):
    """tests/qgis/ in the QGIS venv (Debian's python3 + pytest-qgis), with this interpreter as geofuse's."""
    if not QGIS_VENV_PYTHON.exists():
        pytest.skip("the QGIS venv is missing: `make qgis-venv` (make test creates it when QGIS is installed)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env.update(GEOFUSE_PYTHON=sys.executable, XDG_RUNTIME_DIR=str(runtime))
    cp = subprocess.run([str(QGIS_VENV_PYTHON), "-m", "pytest", "-c", str(ROOT / "tests" / "qgis" / "pytest.ini"),
                         "--rootdir", str(tmp_path), "-q", str(ROOT / "tests" / "qgis")],
                        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    print(cp.stdout[-3000:])
    assert cp.returncode == 0, cp.stdout[-6000:] + cp.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", cp.stdout) and " failed" not in cp.stdout
