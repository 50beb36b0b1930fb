"""The geofuse Processing provider: algorithms from the registry the child interpreter describes."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import runner

#: ProcessingConfig setting (Settings > Options > Processing > Providers > geofuse).
SETTING = "GEOFUSE_PYTHON"
HERE = Path(__file__).resolve().parent


def interpreter_setting() -> str | None:
    """The interpreter saved in the Processing options (None outside QGIS's Processing framework)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:  # pragma: no cover - Processing plugin missing
        return None
    value = ProcessingConfig.getSetting(SETTING)
    return str(value) if value else None


def cache_dir() -> str:
    """Where the registry description is cached (inside the active QGIS profile)."""
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "geofuse")


class GeofuseProvider(QgsProcessingProvider):
    def __init__(self):
        super().__init__()
        self.description: dict | None = None
        self.problem: str | None = None
        self.python: str | None = None

    def id(self) -> str:
        return "geofuse"

    def name(self) -> str:
        return "geofuse"

    def longName(self) -> str:
        if self.problem:
            return f"geofuse (not ready: {self.problem})"
        if self.description:
            return (f"geofuse {self.description.get('geofuse_version')} "
                    f"({len(self.description.get('methods', []))} fusion methods, {self.python})")
        return "geofuse image fusion"

    def icon(self) -> QIcon:
        return QIcon(str(HERE / "icon.svg"))

    def svgIconPath(self) -> str:
        return str(HERE / "icon.svg")

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def load(self) -> bool:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting
        except ImportError:  # pragma: no cover - Processing plugin missing
            self.refreshAlgorithms()
            return True
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(self.name(), SETTING,
                                            "Python interpreter with geofuse (GEOFUSE_PYTHON overrides it)", "",
                                            valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(SETTING)
        except (ImportError, KeyError):  # pragma: no cover
            pass

    def loadAlgorithms(self):
        from .algorithms import CheckAlgorithm, EvaluateAlgorithm, FusionAlgorithm, SimulateAlgorithm

        self.python = runner.configured_python(interpreter_setting())
        self.problem = None
        try:
            self.description = runner.describe(self.python, cache_dir())
        except runner.ChildError as exc:
            self.description = None
            self.problem = exc.message
            QgsMessageLog.logMessage(exc.message + (("\n" + exc.traceback) if exc.traceback else ""), "geofuse",
                                     Qgis.Warning)
        self.addAlgorithm(CheckAlgorithm(self.description, None, self.problem))
        if not self.description:
            return
        for method in self.description.get("methods", []):
            self.addAlgorithm(FusionAlgorithm(method, self.description))
        self.addAlgorithm(SimulateAlgorithm(self.description))
        self.addAlgorithm(EvaluateAlgorithm(self.description))
