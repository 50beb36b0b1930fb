"""Fixtures of the in-process QGIS plugin tests (pytest-qgis, Debian's python3 with the qgis bindings).

The main test run (geofuse's own venv, no qgis bindings) collects nothing here; it starts this suite in
the QGIS venv from tests/test_qgis_plugin.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

try:  # pragma: no cover - depends on the interpreter
    import qgis.core  # noqa: F401
except ImportError:  # the main venv: leave this folder to the QGIS venv
    collect_ignore_glob = ["test_*.py"]
else:
    ROOT = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(ROOT / "qgis_plugin"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    @pytest.fixture(scope="session")
    def geofuse_python() -> str:
        """An interpreter with geofuse (GEOFUSE_PYTHON, else the checkout's .venv)."""
        cand = os.environ.get("GEOFUSE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
        if not shutil.which(cand) and not os.path.isfile(cand):
            pytest.skip("no Python with geofuse: set GEOFUSE_PYTHON or run `make setup`")
        return cand

    @pytest.fixture
    def use_python(monkeypatch):
        """Point the plugin at an interpreter for one test (GEOFUSE_PYTHON overrides the setting)."""
        def use(python: str) -> str:
            monkeypatch.setenv("GEOFUSE_PYTHON", python)
            return python
        return use
