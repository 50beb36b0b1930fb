"""Processing algorithms generated from geofuse's registry (as described by the child interpreter).

One :class:`FusionAlgorithm` per registered method (its parameters generated from the method's typed
parameters), plus :class:`SimulateAlgorithm` (Wald protocol), :class:`EvaluateAlgorithm` (quality
report) and :class:`CheckAlgorithm` (is the configured interpreter usable?). Layers are validated with
the QGIS API in ``prepareAlgorithm`` (main thread); ``processAlgorithm`` only runs the child process.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from . import runner

_DOI = "https://doi.org/"
#: Help for the tools (the protocols are described in Vivone et al. 2021, the pansharpening benchmark).
TOOLS_HELP_URL = _DOI + "10.1109/MGRS.2020.3019315"

ROLE_LABELS = {
    "ms": "Multispectral (MS) layer, low resolution",
    "pan": "Panchromatic (PAN) layer, high resolution",
    "hs": "Hyperspectral (HS) layer, low resolution",
    "msi": "Multispectral (MSI) layer, high resolution",
}
SCENARIO_LABELS = {"pansharpening": "Pansharpening", "hyperspectral": "Hyperspectral fusion"}
FAMILY_LABELS = {
    "baseline": "Baselines",
    "CS": "Component substitution (CS)",
    "MRA": "Multiresolution analysis (MRA)",
    "VO": "Variational optimization (VO)",
    "ML": "Machine learning (ML)",
    "HS": "Hyperspectral",
}
WHEN_TO_CHOOSE = {
    "baseline": "A reference point, not a fusion: use it to check alignment and as the baseline every method "
                "must beat.",
    "CS": "Component substitution: sharp, fast, robust to small misregistration; may distort colours where the "
          "PAN and the MS bands differ spectrally.",
    "MRA": "Multiresolution analysis: injects only the PAN's high frequencies, so colours stay faithful; slightly "
           "softer than CS and sensitive to misregistration. Set the sensor (MTF) when you know it.",
    "VO": "Variational optimization: best quality for slow, careful runs.",
    "ML": "Machine learning: learned from data; check that the training sensor matches yours.",
}
_RECORDED = "as recorded by the fusion"
_NEEDS_REF = {True: "needs a reference", False: "no reference needed"}
DTYPES = ["same as input", "uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
DEVICES = ["auto", "cpu", "cuda"]
COMPRESSIONS = ["deflate", "lzw", "zstd", "none"]

#: Names of the fixed parameters of a fusion algorithm (method parameters never take these names).
_FIXED = {"SENSOR", "MTF_GAINS", "PAN_GAIN", "NODATA", "DATA_TYPE", "COG", "COMPRESSION", "INTERPOLATION",
          "COMPAT", "OUTPUT", "SRF", "SRF_FILE", "WAVELENGTHS", "DEVICE"}


def tr(text: str) -> str:
    return QCoreApplication.translate("geofuse", text)


def _advanced(p: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return p


def _static_enum(name: str, label: str, options: list[str], default: Any = None, *, optional: bool = False,
                 multiple: bool = False) -> QgsProcessingParameterEnum:
    """An enum whose value is the option string (``--NAME=bicubic`` in qgis_process), not its index."""
    p = QgsProcessingParameterEnum(name, label, options, multiple, default, optional)
    p.setUsesStaticStrings(True)
    return p


def _is_set(value: Any) -> bool:
    if value is None:
        return False
    try:
        if hasattr(value, "isNull") and value.isNull():
            return False
    except TypeError:
        pass
    return not (isinstance(value, str) and value.strip() == "")


def param_name(name: str) -> str:
    """QGIS name of a registry parameter: upper case, prefixed when it would clash with a fixed one."""
    up = re.sub(r"[^A-Z0-9_]", "_", name.upper())
    return f"P_{up}" if up in _FIXED or up.endswith("_BANDS") else up


def role_name(role: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", role.upper())


def group_of(method: dict[str, Any]) -> tuple[str, str]:
    """(groupId, group) of a method: scenario and family, e.g. ``pansharpening_cs``."""
    scen, fam = method.get("scenario") or "other", method.get("family") or "other"
    gid = re.sub(r"[^a-z0-9_]", "_", f"{scen}_{fam}".lower())
    title = f"{SCENARIO_LABELS.get(scen, scen.replace('_', ' ').capitalize())} \u2013 {FAMILY_LABELS.get(fam, fam)}"
    return gid, title


def method_parameter(p: dict[str, Any]) -> QgsProcessingParameterDefinition:
    """A Processing parameter for one typed registry parameter (float/int -> number with range,
    choices -> enum, bool -> checkbox, str -> text); always in the "advanced" section."""
    name, label, typ, default = param_name(p["name"]), p.get("doc") or p["name"], p["type"], p.get("default")
    label = f"{label[:1].upper()}{label[1:]} [{p['name']}]"
    if p.get("choices"):
        options = [str(c) for c in p["choices"]]
        q = _static_enum(name, label, options, str(default) if default is not None else options[0])
    elif typ == "bool":
        q = QgsProcessingParameterBoolean(name, label, bool(default))
    elif typ in ("int", "float"):
        kind = QgsProcessingParameterNumber.Integer if typ == "int" else QgsProcessingParameterNumber.Double
        q = QgsProcessingParameterNumber(name, label, kind, default)
        if p.get("min") is not None:
            q.setMinimum(p["min"])
        if p.get("max") is not None:
            q.setMaximum(p["max"])
    else:
        q = QgsProcessingParameterString(name, label, "" if default is None else str(default))
    q.setHelp(p.get("doc") or "")
    return _advanced(q)


def method_parameter_value(alg: QgsProcessingAlgorithm, p: dict[str, Any], parameters: dict, context) -> Any:
    name, typ = param_name(p["name"]), p["type"]
    if p.get("choices"):
        s = alg.parameterAsEnumString(parameters, name, context)
        for c in p["choices"]:
            if str(c) == s:
                return c
        return s
    if typ == "bool":
        return alg.parameterAsBoolean(parameters, name, context)
    if typ == "int":
        return alg.parameterAsInt(parameters, name, context)
    if typ == "float":
        return alg.parameterAsDouble(parameters, name, context)
    return alg.parameterAsString(parameters, name, context)


def source_path(layer) -> str:
    """The layer's source for the child: absolute when it is a file (the child runs elsewhere)."""
    src = layer.source()
    return os.path.abspath(src) if os.path.exists(src) else src


def _references_html(refs: list[str]) -> str:
    return ", ".join(f"<a href='{_DOI}{html.escape(d)}'>doi:{html.escape(d)}</a>" for d in refs)


def method_help(method: dict[str, Any]) -> str:
    """shortHelpString: the equation in words (the registry summary), when to choose it, parameters,
    inputs and references."""
    parts = [f"<p><i>{html.escape(FAMILY_LABELS.get(method['family'], method['family']))}, "
             f"{html.escape(method['scenario'])}</i></p>", f"<p>{html.escape(method['summary'])}</p>"]
    when = WHEN_TO_CHOOSE.get(method["family"])
    if when:
        parts.append(f"<p><i>When to choose it:</i> {html.escape(when)}</p>")
    ins = method.get("inputs") or []
    if len(ins) == 2:
        parts.append(f"<p><i>Inputs:</i> the {ins[0].upper()} layer (low resolution) and the {ins[1].upper()} layer "
                     "(high resolution), in the same CRS and overlapping; the resolution ratio and grid phase come "
                     "from the layers' geotransforms.</p>")
    if method.get("parameters"):
        items = "".join(f"<li><b>{html.escape(param_name(p['name']))}</b>: {html.escape(p.get('doc') or '')} "
                        f"(default {html.escape(repr(p.get('default')))})</li>" for p in method["parameters"])
        parts.append(f"<p><i>Method parameters (advanced):</i></p><ul>{items}</ul>")
    parts.append(f"<p><i>References:</i> {_references_html(method.get('references') or [])}</p>")
    parts.append("<p>Runs geofuse in its own Python process (the provider setting or GEOFUSE_PYTHON); the "
                 "output is a GeoTIFF (Cloud Optimized by default) on the high-resolution grid.</p>")
    return "".join(parts)


class _Base(QgsProcessingAlgorithm):
    """Shared plumbing: the interpreter, the child run, and QGIS-side checks."""

    def __init__(self, desc: dict[str, Any] | None, python: str | None = None):
        super().__init__()
        self.desc = desc or {}
        self.python = python
        self.job: dict[str, Any] | None = None
        self.outputs: list[str] = []

    def tr(self, text: str) -> str:
        return tr(text)

    def helpUrl(self) -> str:
        return TOOLS_HELP_URL

    def _interpreter(self) -> str:
        if self.python:
            return self.python
        from .provider import interpreter_setting

        return runner.configured_python(interpreter_setting())

    def _layer(self, parameters, name: str, label: str, context):
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{label}: no raster layer was given or it could not be loaded.")
        if not layer.isValid():
            raise QgsProcessingException(f"{label} '{layer.name()}' is not a valid raster layer (its source "
                                         f"{layer.source()} could not be read).")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"{label} '{layer.name()}' comes from the '{layer.providerType()}' data "
                                         "provider; geofuse reads raster files. Save it as a GeoTIFF first "
                                         "(right-click the layer \u25b8 Export \u25b8 Save As\u2026).")
        return layer

    def _destination(self, parameters, name: str, context) -> str:
        out = os.path.abspath(self.parameterAsOutputLayer(parameters, name, context))
        if Path(out).suffix.lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(f"geofuse writes GeoTIFF files: name the output '{out}' with a .tif "
                                         "extension.")
        return out

    @staticmethod
    def _check_same_crs(a, a_label: str, b, b_label: str) -> None:
        if not a.crs().isValid() or not b.crs().isValid():
            missing = a if not a.crs().isValid() else b
            raise QgsProcessingException(f"The layer '{missing.name()}' has no coordinate reference system. "
                                         "Assign the right one (Layer Properties \u25b8 Source) before fusing.")
        if a.crs() != b.crs():
            raise QgsProcessingException(
                f"The {a_label} '{a.name()}' is in {a.crs().authid() or a.crs().description()} but the {b_label} "
                f"'{b.name()}' is in {b.crs().authid() or b.crs().description()}: both must share one CRS. "
                f"Fix: reproject one of them (Raster \u25b8 Projections \u25b8 Warp (Reproject)) onto the other's CRS, "
                "keeping its pixel size.")
        if not a.extent().intersects(b.extent()):
            raise QgsProcessingException(f"The {a_label} '{a.name()}' and the {b_label} '{b.name()}' do not overlap "
                                         "(their extents are disjoint in their common CRS). Choose layers of the "
                                         "same scene.")

    @staticmethod
    def _check_bands(layer, label: str, bands: list[int]) -> None:
        n = layer.bandCount()
        bad = [b for b in bands if not 1 <= b <= n]
        if bad:
            raise QgsProcessingException(f"The band selection of the {label} asks for band(s) "
                                         f"{', '.join(map(str, bad))}, but '{layer.name()}' has {n} band(s).")

    def _sensor_job(self, parameters, context) -> dict[str, Any]:
        sensor = self.parameterAsEnumString(parameters, "SENSOR", context)
        job: dict[str, Any] = {"sensor": None if sensor in ("", "generic", _RECORDED) else sensor}
        gains = self.parameterAsString(parameters, "MTF_GAINS", context).strip()
        if gains:
            try:
                job["mtf_gains"] = [float(g) for g in re.split(r"[,;\s]+", gains) if g]
            except ValueError:
                raise QgsProcessingException(f"MTF gains must be numbers separated by commas, e.g. 0.34,0.32,0.30,"
                                             f"0.22; got '{gains}'.") from None
            if _is_set(parameters.get("PAN_GAIN")):
                job["pan_gain"] = self.parameterAsDouble(parameters, "PAN_GAIN", context)
        return job

    def _add_sensor_parameters(self, advanced_pan_gain: bool = True, first: str = "generic") -> None:
        sensors = [first] + [s for s in self.desc.get("sensors", []) if s != "none"]
        self.addParameter(_static_enum("SENSOR", self.tr("Sensor (MTF preset)"), sensors, first))
        p = QgsProcessingParameterString("MTF_GAINS", self.tr("MTF gains at Nyquist per MS band (overrides the "
                                                              "sensor)"), optional=True)
        p.setHelp("Comma-separated MTF gains at the Nyquist frequency, one per MS band, e.g. 0.34,0.32,0.30,0.22")
        self.addParameter(p)
        q = QgsProcessingParameterNumber("PAN_GAIN", self.tr("PAN MTF gain at Nyquist (with MTF gains)"),
                                         QgsProcessingParameterNumber.Double, None, True, 0.0, 1.0)
        self.addParameter(_advanced(q) if advanced_pan_gain else q)

    def _run(self, command: str, feedback) -> dict[str, Any]:
        if self.job is None:
            raise QgsProcessingException("The algorithm was not prepared (internal error).")
        try:
            return runner.run_child(self._interpreter(), command, self.job, feedback, outputs=self.outputs)
        except runner.Cancelled as exc:
            raise QgsProcessingException(exc.message) from None
        except runner.ChildError as exc:
            if exc.traceback:
                feedback.pushDebugInfo(exc.traceback)
            raise QgsProcessingException(exc.message) from None


class FusionAlgorithm(_Base):
    """One registered fusion method."""

    def __init__(self, method: dict[str, Any], desc: dict[str, Any] | None = None, python: str | None = None):
        super().__init__(desc, python)
        self.method = method

    def createInstance(self):
        return FusionAlgorithm(self.method, self.desc, self.python)

    def name(self) -> str:
        return self.method["name"]

    def displayName(self) -> str:
        return self.method["title"]

    def group(self) -> str:
        return group_of(self.method)[1]

    def groupId(self) -> str:
        return group_of(self.method)[0]

    def tags(self):
        return [self.method["name"], self.method["family"], self.method["scenario"], "fusion", "geofuse",
                "pansharpen" if self.method["scenario"] == "pansharpening" else self.method["scenario"]]

    def shortHelpString(self) -> str:
        return method_help(self.method)

    def shortDescription(self) -> str:
        return self.method["summary"].split(". ")[0].rstrip(".") + "."

    def helpUrl(self) -> str:
        refs = self.method.get("references") or []
        return _DOI + refs[0] if refs else TOOLS_HELP_URL

    @property
    def roles(self) -> list[str]:
        return list(self.method.get("inputs") or ["ms", "pan"])

    def initAlgorithm(self, config=None):
        roles = self.roles
        for i, role in enumerate(roles):
            label = ROLE_LABELS.get(role, f"{role.upper()} layer")
            self.addParameter(QgsProcessingParameterRasterLayer(role_name(role), self.tr(label)))
            if i == 0:
                self.addParameter(QgsProcessingParameterBand(
                    f"{role_name(role)}_BANDS", self.tr(f"{role.upper()} bands to fuse (all when none is selected)"),
                    None, role_name(role), True, True))
        if self.method["scenario"] == "pansharpening":
            self._add_sensor_parameters()
        elif self.method["scenario"] == "hyperspectral":
            self._add_srf_parameters()
        self.addParameter(QgsProcessingParameterNumber("NODATA", self.tr("Output nodata value (default: the "
                                                                         "input's)"),
                                                       QgsProcessingParameterNumber.Double, None, True))
        self.addParameter(_static_enum("DATA_TYPE", self.tr("Output data type"), DTYPES, DTYPES[0]))
        self.addParameter(QgsProcessingParameterBoolean("COG", self.tr("Cloud Optimized GeoTIFF (with overviews)"),
                                                        True))
        self.addParameter(_advanced(_static_enum("COMPRESSION", self.tr("GeoTIFF compression"), COMPRESSIONS,
                                                 "deflate")))
        interps = self.desc.get("interpolations") or ["interp23tap", "bicubic", "lanczos3"]
        self.addParameter(_advanced(_static_enum("INTERPOLATION", self.tr("Interpolation of the low-resolution "
                                                                          "input (resampling)"),
                                                 interps, interps[0])))
        compat = self.desc.get("compat") or ["default", "toolbox"]
        if self.method["scenario"] == "pansharpening":
            self.addParameter(_advanced(_static_enum("COMPAT", self.tr("Conventions ('toolbox' reproduces the "
                                                                       "MATLAB pansharpening toolbox)"),
                                                     compat, compat[0])))
        self.addParameter(_advanced(_static_enum("DEVICE", self.tr("Compute device (auto: a CUDA GPU when the geofuse "
                                                                   "environment has one)"), DEVICES, DEVICES[0])))
        for p in self.method.get("parameters") or []:
            self.addParameter(method_parameter(p))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Fused image")))

    def _add_srf_parameters(self) -> None:
        presets = ["estimate from the data"] + list(self.desc.get("srf_presets") or [])
        self.addParameter(_static_enum("SRF", self.tr("Spectral response of the high-resolution image (preset)"),
                                       presets, presets[0]))
        self.addParameter(QgsProcessingParameterFile("SRF_FILE", self.tr("Spectral response table (CSV; overrides "
                                                                         "the preset)"), extension="csv",
                                                     optional=True))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "WAVELENGTHS", self.tr("HS band centres in nm, comma separated (default: from the file)"),
            optional=True)))

    def _srf_job(self, parameters, context) -> dict[str, Any]:
        job: dict[str, Any] = {}
        path = self.parameterAsFile(parameters, "SRF_FILE", context)
        preset = self.parameterAsEnumString(parameters, "SRF", context)
        if path:
            job["srf"] = path
        elif preset and preset != "estimate from the data":
            job["srf"] = preset
        wl = self.parameterAsString(parameters, "WAVELENGTHS", context).strip()
        if wl:
            try:
                job["wavelengths"] = [float(w) for w in re.split(r"[,;\s]+", wl) if w]
            except ValueError:
                raise QgsProcessingException(f"Wavelengths must be numbers in nm separated by commas; got '{wl}'.") \
                    from None
        return job

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:
        roles = self.roles
        layers = {r: self._layer(parameters, role_name(r), ROLE_LABELS.get(r, r.upper()).split(",")[0], context)
                  for r in roles}
        lr, hr = roles[0], roles[-1]
        bands = {lr: self.parameterAsInts(parameters, f"{role_name(lr)}_BANDS", context) or []}
        self._check_bands(layers[lr], f"{lr.upper()} layer", bands[lr])
        if "pan" in layers and layers["pan"].bandCount() != 1:
            raise QgsProcessingException(
                f"The PAN layer '{layers['pan'].name()}' has {layers['pan'].bandCount()} bands; pansharpening needs "
                "a one-band panchromatic image. Choose the PAN layer, or extract its band (Raster \u25b8 "
                "Conversion \u25b8 Translate with one band).")
        if len(roles) == 2:
            a, b = layers[lr], layers[hr]
            self._check_same_crs(a, f"{lr.upper()} layer", b, f"{hr.upper()} layer")
            if b.rasterUnitsPerPixelX() >= a.rasterUnitsPerPixelX():
                raise QgsProcessingException(
                    f"The {hr.upper()} layer '{b.name()}' (pixel size {b.rasterUnitsPerPixelX():g}) must have "
                    f"smaller pixels than the {lr.upper()} layer '{a.name()}' (pixel size "
                    f"{a.rasterUnitsPerPixelX():g}). Did you swap the two inputs?")
        out = self._destination(parameters, "OUTPUT", context)
        if any(os.path.abspath(out) == os.path.abspath(lyr.source()) for lyr in layers.values()):
            raise QgsProcessingException(f"The output {out} is one of the inputs; choose another file name.")
        dtype = self.parameterAsEnumString(parameters, "DATA_TYPE", context)
        job: dict[str, Any] = {
            "method": self.method["name"], "inputs": {r: source_path(layers[r]) for r in roles},
            "bands": {k: v for k, v in bands.items() if v}, "out": out,
            "driver": "COG" if self.parameterAsBoolean(parameters, "COG", context) else "GTiff",
            "compress": self.parameterAsEnumString(parameters, "COMPRESSION", context) or "deflate",
            "dtype": None if dtype in ("", DTYPES[0]) else dtype,
            "interpolation": self.parameterAsEnumString(parameters, "INTERPOLATION", context) or None,
            "compat": (self.parameterAsEnumString(parameters, "COMPAT", context) or None)
            if self.parameterDefinition("COMPAT") is not None else None,
            "device": self.parameterAsEnumString(parameters, "DEVICE", context) or None,
            "params": {p["name"]: method_parameter_value(self, p, parameters, context)
                       for p in self.method.get("parameters") or []},
            "overwrite": True,
        }
        if _is_set(parameters.get("NODATA")):
            job["nodata"] = self.parameterAsDouble(parameters, "NODATA", context)
        if self.method["scenario"] == "pansharpening":
            job.update(self._sensor_job(parameters, context))
        elif self.method["scenario"] == "hyperspectral":
            job.update(self._srf_job(parameters, context))
        self.job, self.outputs = job, [out]
        return True

    def processAlgorithm(self, parameters, context, feedback):
        res = self._run("fuse", feedback)
        out = res.get("outputs", {}).get("OUTPUT", self.job["out"])
        sensor = f", sensor {res['sensor']}" if res.get("sensor") else ""
        feedback.pushInfo(f"geofuse {res.get('method')}: {res.get('shape')} {res.get('dtype')}, ratio "
                          f"{res.get('ratio')}{sensor}, {res.get('seconds')} s")
        return {"OUTPUT": out}


class SimulateAlgorithm(_Base):
    """Wald protocol: a reduced-resolution MS/PAN pair whose reference is the original MS."""

    def createInstance(self):
        return SimulateAlgorithm(self.desc, self.python)

    def name(self) -> str:
        return "simulate_wald"

    def displayName(self) -> str:
        return "Simulate reduced resolution (Wald protocol)"

    def group(self) -> str:
        return "Quality assessment"

    def groupId(self) -> str:
        return "quality"

    def shortHelpString(self) -> str:
        return ("<p>Degrades an MS + PAN pair by their resolution ratio (Wald protocol): the MS is low-pass "
                "filtered with the sensor's MTF and decimated, the PAN is decimated (bicubic, or with its MTF). "
                "Fuse the two outputs with any method, then evaluate the result against the <b>original MS</b> "
                "(Evaluate fusion quality, reduced-resolution protocol).</p>"
                "<p><i>When to use it:</i> to compare methods objectively on your own scene when no "
                "high-resolution multispectral ground truth exists.</p>"
                f"<p><i>Reference:</i> {_references_html(['10.1109/MGRS.2020.3019315'])}; Wald, Ranchin and "
                "Mangolini (1997), PE&amp;RS 63(6), 691\u2013699.</p>")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("MS", self.tr(ROLE_LABELS["ms"])))
        self.addParameter(QgsProcessingParameterBand("MS_BANDS", self.tr("MS bands (all when none is selected)"),
                                                     None, "MS", True, True))
        self.addParameter(QgsProcessingParameterRasterLayer("PAN", self.tr(ROLE_LABELS["pan"])))
        self._add_sensor_parameters()
        self.addParameter(_static_enum("PAN_FILTER", self.tr("PAN low-pass filter"), ["bicubic", "mtf"], "bicubic"))
        self.addParameter(QgsProcessingParameterBoolean("COG", self.tr("Cloud Optimized GeoTIFF (with overviews)"),
                                                        True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MS", self.tr("Reduced-resolution MS")))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PAN", self.tr("Reduced-resolution PAN")))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:
        ms = self._layer(parameters, "MS", "The MS layer", context)
        pan = self._layer(parameters, "PAN", "The PAN layer", context)
        bands = self.parameterAsInts(parameters, "MS_BANDS", context) or []
        self._check_bands(ms, "MS layer", bands)
        if pan.bandCount() != 1:
            raise QgsProcessingException(f"The PAN layer '{pan.name()}' has {pan.bandCount()} bands; the Wald "
                                         "protocol needs the one-band panchromatic image.")
        self._check_same_crs(ms, "MS layer", pan, "PAN layer")
        out_ms = self._destination(parameters, "OUTPUT_MS", context)
        out_pan = self._destination(parameters, "OUTPUT_PAN", context)
        self.job = {"ms": source_path(ms), "pan": source_path(pan), "bands": bands or None, "out_ms": out_ms,
                    "out_pan": out_pan, "pan_filter": self.parameterAsEnumString(parameters, "PAN_FILTER", context),
                    "driver": "COG" if self.parameterAsBoolean(parameters, "COG", context) else "GTiff",
                    "overwrite": True, **self._sensor_job(parameters, context)}
        self.outputs = [out_ms, out_pan]
        return True

    def processAlgorithm(self, parameters, context, feedback):
        res = self._run("simulate", feedback)
        outs = res.get("outputs", {})
        return {"OUTPUT_MS": outs.get("OUTPUT_MS", self.job["out_ms"]),
                "OUTPUT_PAN": outs.get("OUTPUT_PAN", self.job["out_pan"])}


class EvaluateAlgorithm(_Base):
    """Quality metrics of a fused image as an HTML (and CSV) report."""

    def createInstance(self):
        return EvaluateAlgorithm(self.desc, self.python)

    def name(self) -> str:
        return "evaluate_quality"

    def displayName(self) -> str:
        return "Evaluate fusion quality"

    def group(self) -> str:
        return "Quality assessment"

    def groupId(self) -> str:
        return "quality"

    def _metrics(self) -> list[dict[str, Any]]:
        """The metrics of the evaluation protocols (the registry also holds other scenarios' metrics)."""
        ms = list(self.desc.get("metrics") or [])
        per = self.desc.get("protocol_metrics") or {}
        if not per:
            return ms
        wanted = [n for names in per.values() for n in names]
        by_name = {m["name"]: m for m in ms}
        return [by_name.get(n, {"name": n, "title": n}) for n in dict.fromkeys(wanted)]

    def _protocols(self) -> list[str]:
        return list(self.desc.get("protocols") or ["reduced"])

    def shortHelpString(self) -> str:
        items = "".join(f"<li><b>{html.escape(m['name'])}</b>: {html.escape(m.get('title', ''))} (ideal "
                        f"{m.get('ideal')}; {_NEEDS_REF[bool(m.get('needs_reference'))]})</li>"
                        for m in self._metrics())
        return ("<p>Computes quality indexes of a fused image and writes them as an HTML report (shown in the "
                "Results Viewer) and optionally a CSV table.</p>"
                "<p><i>reduced</i> protocol: compare the fusion of a Wald-degraded pair (Simulate reduced "
                "resolution) with the original MS as <b>reference</b>. "
                + ("<i>full</i> protocol: no reference; give the <b>MS</b> and <b>PAN</b> the image was fused "
                   "from. " if "full" in self._protocols() else "")
                + "Leave the metric selection empty for the protocol's default set.</p>"
                f"<ul>{items}</ul><p><i>Reference:</i> {_references_html(['10.1109/MGRS.2020.3019315'])}</p>")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("FUSED", self.tr("Fused image")))
        protocols = self._protocols()
        self.addParameter(_static_enum("PROTOCOL", self.tr("Protocol"), protocols, protocols[0]))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", self.tr("Reference (ground truth, reduced "
                                                                                 "protocol)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("MS", self.tr("MS the image was fused from (optional; "
                                                                          "gives the ratio)"), optional=True))
        if "full" in protocols:
            self.addParameter(QgsProcessingParameterRasterLayer("PAN", self.tr("PAN the image was fused from (full "
                                                                               "protocol)"), optional=True))
        names = [m["name"] for m in self._metrics()]
        if names:
            self.addParameter(_static_enum("METRICS", self.tr("Metrics (empty: the protocol's default set)"), names,
                                           None, optional=True, multiple=True))
        self.addParameter(_advanced(QgsProcessingParameterNumber("RATIO", self.tr("Resolution ratio (default: from "
                                                                                  "the grids)"),
                                                                 QgsProcessingParameterNumber.Integer, None, True, 1)))
        self.addParameter(_advanced(QgsProcessingParameterNumber("DIM_CUT", self.tr("Border cut in pixels (default: "
                                                                                    "none; 21 with 'toolbox')"),
                                                                 QgsProcessingParameterNumber.Integer, None, True, 0)))
        if "full" in protocols:
            self._add_sensor_parameters(first=_RECORDED)
        compat = self.desc.get("compat") or ["default", "toolbox"]
        self.addParameter(_advanced(_static_enum("COMPAT", self.tr("Conventions"), compat, compat[0])))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_HTML", self.tr("Quality report"),
                                                                "HTML files (*.html)"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_CSV", self.tr("Metric table (CSV)"),
                                                                "CSV files (*.csv)", optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputString("TABLE", self.tr("Metric table as text")))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:
        fused = self._layer(parameters, "FUSED", "The fused image", context)
        protocol = self.parameterAsEnumString(parameters, "PROTOCOL", context) or "reduced"
        job: dict[str, Any] = {"fused": source_path(fused), "protocol": protocol,
                               "compat": self.parameterAsEnumString(parameters, "COMPAT", context) or None}
        if _is_set(parameters.get("DIM_CUT")):
            job["dim_cut"] = self.parameterAsInt(parameters, "DIM_CUT", context)
        if "full" in self._protocols():
            job.update(self._sensor_job(parameters, context))
        for key, label in (("REFERENCE", "The reference"), ("MS", "The MS layer"), ("PAN", "The PAN layer")):
            if _is_set(parameters.get(key)):
                lyr = self._layer(parameters, key, label, context)
                self._check_same_crs(fused, "fused image", lyr, label[4:])
                job[key.lower()] = source_path(lyr)
        if protocol == "reduced":
            if "reference" not in job:
                raise QgsProcessingException("The reduced-resolution protocol needs a reference: the original MS "
                                             "of the pair you degraded with 'Simulate reduced resolution'.")
            ref = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
            if (ref.width(), ref.height(), ref.bandCount()) != (fused.width(), fused.height(), fused.bandCount()):
                raise QgsProcessingException(
                    f"The fused image ({fused.bandCount()} bands, {fused.width()} x {fused.height()}) and the "
                    f"reference ({ref.bandCount()} bands, {ref.width()} x {ref.height()}) differ in size. "
                    "Evaluate the fusion of the degraded pair against the original MS.")
        elif "ms" not in job or "pan" not in job:
            raise QgsProcessingException(f"The {protocol} protocol needs the MS and the PAN the image was fused from.")
        metrics = [m for m in (self.parameterAsEnumStrings(parameters, "METRICS", context) if self._metrics() else [])
                   if m]
        if metrics:
            job["metrics"] = metrics
        if _is_set(parameters.get("RATIO")):
            job["ratio"] = self.parameterAsInt(parameters, "RATIO", context)
        html_out = os.path.abspath(self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context))
        job["html"] = html_out
        csv_out = os.path.abspath(self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context)) if _is_set(
            parameters.get("OUTPUT_CSV")) else ""
        if csv_out:
            job["csv"] = csv_out
        self.job, self.outputs = job, [p for p in (html_out, csv_out) if p]
        return True

    def processAlgorithm(self, parameters, context, feedback):
        res = self._run("evaluate", feedback)
        rows = res.get("table") or []
        text = "\n".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in rows)
        outs = res.get("outputs", {})
        result = {"OUTPUT_HTML": outs.get("OUTPUT_HTML", self.job["html"]), "TABLE": text}
        if self.job.get("csv"):
            result["OUTPUT_CSV"] = outs.get("OUTPUT_CSV", self.job["csv"])
        return result


class CheckAlgorithm(_Base):
    """Reports whether the configured interpreter has a usable geofuse (always available)."""

    def __init__(self, desc: dict[str, Any] | None = None, python: str | None = None, problem: str | None = None):
        super().__init__(desc, python)
        self.problem = problem

    def createInstance(self):
        return CheckAlgorithm(self.desc, self.python, self.problem)

    def name(self) -> str:
        return "check_installation"

    def displayName(self) -> str:
        return "Check the geofuse installation"

    def group(self) -> str:
        return "Setup"

    def groupId(self) -> str:
        return "setup"

    def shortHelpString(self) -> str:
        state = (f"<p><b>Problem found when QGIS loaded the provider:</b> {html.escape(self.problem)}</p>"
                 if self.problem else "")
        return (state + "<p>Runs the configured Python interpreter (" + html.escape(runner.SETTINGS_PATH)
                + f", or the {runner.ENV_VAR} environment variable) and reports the geofuse version and the "
                "number of fusion methods it offers. Run it after changing the setting; then reload the provider "
                "(or restart QGIS) to see new methods.</p>")

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading

    def initAlgorithm(self, config=None):
        self.addOutput(QgsProcessingOutputString("PYTHON", self.tr("Interpreter")))
        self.addOutput(QgsProcessingOutputString("GEOFUSE_VERSION", self.tr("geofuse version")))
        self.addOutput(QgsProcessingOutputNumber("METHODS", self.tr("Number of fusion methods")))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:
        return True

    def processAlgorithm(self, parameters, context, feedback):
        python = self._interpreter()
        feedback.pushInfo(f"Interpreter: {python}")
        try:
            desc = runner.describe(python, None, refresh=True)
        except runner.ChildError as exc:
            if exc.traceback:
                feedback.pushDebugInfo(exc.traceback)
            raise QgsProcessingException(exc.message) from None
        n = len(desc.get("methods", []))
        feedback.pushInfo(f"geofuse {desc.get('geofuse_version')} with {n} fusion methods: "
                          + ", ".join(m["name"] for m in desc.get("methods", [])))
        return {"PYTHON": python, "GEOFUSE_VERSION": str(desc.get("geofuse_version")), "METHODS": n}

