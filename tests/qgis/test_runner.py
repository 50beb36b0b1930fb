"""The child runner against fake children: progress, log, errors, crashes, hang then cancel.

The fake children (fake_child.py) speak the worker's JSON-lines protocol; the feedback is a real
QgsProcessingFeedback.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingFeedback

from geofuse_qgis import runner

HERE = Path(__file__).resolve().parent


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.log: list[tuple[str, str]] = []
        self.progress: list[float] = []

    def setProgress(self, p):  # noqa: N802
        self.progress.append(p)
        super().setProgress(p)

    def pushInfo(self, m):  # noqa: N802
        self.log.append(("info", m))

    def pushWarning(self, m):  # noqa: N802
        self.log.append(("warning", m))

    def pushDebugInfo(self, m):  # noqa: N802
        self.log.append(("debug", m))

    def pushConsoleInfo(self, m):  # noqa: N802
        self.log.append(("console", m))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake interpreter (jobs go to fake_child.py in the mode given)."""
    from fakepython import make_fake_python

    py = make_fake_python(tmp_path, sys.executable)

    def with_mode(mode: str) -> str:
        monkeypatch.setenv("GEOFUSE_FAKE_MODE", mode)
        monkeypatch.setenv("GEOFUSE_FAKE_PIDFILE", str(tmp_path / "child.pid"))
        return py
    return with_mode


def test_progress_info_warning_and_result(fake, tmp_path):
    fb = Feedback()
    res = runner.run_child(fake("ok"), "fuse", {"out": str(tmp_path / "o.tif"), "x": 1}, fb)
    assert res["echo"] == {"out": str(tmp_path / "o.tif"), "x": 1}  # the job arrives intact
    assert fb.progress == [0.0, 50.0, 100.0]
    assert ("info", "fake info") in fb.log and ("warning", "fake warning") in fb.log


def test_error_message_is_the_libraries_and_traceback_goes_to_debug(fake, tmp_path):
    fb = Feedback()
    out = tmp_path / "o.tif"
    with pytest.raises(runner.ChildError) as err:
        runner.run_child(fake("error"), "fuse", {"out": str(out)}, fb, outputs=[out])
    assert err.value.message.startswith("Fake grid mismatch. Expected:")
    assert err.value.kind == "GridMismatchError" and err.value.exit_code == 2
    assert ("debug", "Traceback (most recent call last):\n  fake frame\n") in fb.log
    assert not isinstance(err.value, runner.Cancelled)


def test_a_crash_without_message_reports_exit_code_and_stderr(fake):
    fb = Feedback()
    with pytest.raises(runner.ChildError) as err:
        runner.run_child(fake("crash"), "fuse", {}, fb)
    assert "exit code 1" in err.value.message and "fake crash" in err.value.message
    assert any(kind == "debug" and "fake crash" in m for kind, m in fb.log)


def test_lines_that_are_not_json_go_to_the_console_log(fake):
    fb = Feedback()
    runner.run_child(fake("garbage"), "fuse", {}, fb)
    assert ("console", "this is not json") in fb.log and ("console", "[1, 2") in fb.log


def test_hang_then_cancel_kills_the_child_and_removes_partial_output(fake, tmp_path):
    out, other = tmp_path / "o.tif", tmp_path / "kept.tif"
    other.write_text("an earlier result")  # an output that existed before and is not rewritten stays
    fb = Feedback()
    pidfile = tmp_path / "child.pid"

    def cancel_when_running():
        for _ in range(300):
            if pidfile.exists() and out.exists():
                break
            time.sleep(0.05)
        fb.cancel()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(runner.Cancelled):
        runner.run_child(fake("hang"), "fuse", {"out": str(out)}, fb, outputs=[out, other])
    assert time.monotonic() - t0 < 20
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not out.exists() and not list(tmp_path.glob(".o.tif.partial-*"))
    assert other.read_text() == "an earlier result"
    assert ("info", "fake child hangs") in fb.log


def test_timeout_stops_a_hanging_child(fake, tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(runner.ChildError, match="did not finish within 2 s"):
        runner.run_child(fake("hang"), "fuse", {"out": str(out)}, None, outputs=[out], timeout=2, grace=1)
    assert not out.exists()


def test_missing_interpreter_and_missing_geofuse_are_interpreter_errors(tmp_path):
    with pytest.raises(runner.InterpreterError, match="does not exist"):
        runner.run_child(str(tmp_path / "nope"), "describe", None)
    with pytest.raises(runner.InterpreterError, match="does not exist"):
        runner.probe(str(tmp_path / "nope"))
    with pytest.raises(runner.InterpreterError, match="geofuse is not installed"):
        runner.probe(sys.executable)  # Debian's python3: no geofuse
    notpy = tmp_path / "notpython"
    notpy.write_text("#!/bin/sh\necho hello\n")
    notpy.chmod(0o755)
    with pytest.raises(runner.InterpreterError, match="did not answer as a Python 3 interpreter"):
        runner.probe(str(notpy))


def test_configured_python_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(runner.ENV_VAR, "/from/env/python")
    assert runner.configured_python("/from/setting/python") == "/from/env/python"
    monkeypatch.delenv(runner.ENV_VAR)
    assert runner.configured_python("/from/setting/python") == "/from/setting/python"
    script = tmp_path / "bin" / "geofuse"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nprint('geofuse')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    assert runner.configured_python(None) == sys.executable  # the Python of an installed geofuse command


def test_child_environment_drops_qgis_gdal_and_python_paths(monkeypatch):
    for k in ("PYTHONPATH", "PYTHONHOME", "GDAL_DATA", "PROJ_LIB"):
        monkeypatch.setenv(k, "/qgis/own")
    env = runner.child_env()
    assert not {"PYTHONPATH", "PYTHONHOME", "GDAL_DATA", "PROJ_LIB"} & set(env)
    assert env["PYTHONUNBUFFERED"] == "1"
