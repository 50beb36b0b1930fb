"""Child-process entry point of the QGIS plugin: ``python -m geofuse.qgis_worker COMMAND [JOB]``.

QGIS runs geofuse in a separate Python process (loading rasterio wheels and numpy 2 inside QGIS would
mix two GDAL/PROJ builds with QGIS's own, see DESIGN.md "QGIS plugin"). This module is that process.
It writes **one JSON object per line** on stdout and nothing else there::

    {"type": "progress", "percent": 42.0}
    {"type": "info", "message": "..."}
    {"type": "warning", "message": "..."}
    {"type": "error", "message": "...", "error": "GridMismatchError", "traceback": "..."}
    {"type": "result", ...}

Commands
--------
``describe``
    One ``result`` message with ``describe``: geofuse's version, every registered method (as
    ``geofuse methods --json``, plus tags), the sensor presets, interpolators, metrics and evaluation
    protocols. The plugin builds its algorithms from it, so a method added to the registry appears in
    QGIS without a plugin edit.
``fuse JOB`` / ``simulate JOB`` / ``evaluate JOB``
    ``JOB`` is a JSON object (see :func:`run_fuse`, :func:`run_simulate`, :func:`run_evaluate`).

Exit status: 0 on success, 2 for a :class:`geofuse.GeofuseError` (bad input; the message is the
library's), 1 for anything else, 130 when interrupted (SIGINT/SIGTERM; partial outputs are removed by
:func:`geofuse.write_raster`'s cleanup and again by the parent).
"""

from __future__ import annotations

import html
import inspect
import json
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

#: The stream the JSON messages go to (the real stdout; ``sys.stdout`` is pointed at stderr while a job
#: runs so that a stray ``print`` in a dependency cannot corrupt the protocol).
_OUT: TextIO = sys.stdout


def emit(kind: str, **fields: Any) -> None:
    """Write one protocol message (one JSON object on one line) and flush."""
    _OUT.write(json.dumps({"type": kind, **fields}, default=str) + "\n")
    _OUT.flush()


# ---------------------------------------------------------------------------------------------- progress


class _Progress:
    """Maps dask's task counts onto ``progress`` messages within ``[lo, hi]`` percent."""

    def __init__(self) -> None:
        self.lo, self.hi, self._last = 0.0, 100.0, -1.0

    def stage(self, lo: float, hi: float, message: str | None = None) -> None:
        self.lo, self.hi = lo, hi
        if message:
            emit("info", message=message)
        self.report(0.0)

    def report(self, fraction: float) -> None:
        pct = round(self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0), 1)
        if pct != self._last:
            self._last = pct
            emit("progress", percent=pct)

    def callback(self):
        """A dask callback (local schedulers) that reports finished/total tasks."""
        from dask.callbacks import Callback

        outer = self

        class _CB(Callback):
            def _start_state(self, dsk, state):
                self._state = state

            def _posttask(self, key, result, dsk, state, worker_id):
                done = len(state["finished"])
                total = done + sum(len(state[k]) for k in ("ready", "waiting", "running"))
                if total:
                    outer.report(done / total)

        return _CB()


# ---------------------------------------------------------------------------------------------- describe


def _method_dict(spec) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "family": spec.family, "scenario": spec.scenario,
            "inputs": list(spec.inputs), "references": list(spec.references), "summary": spec.summary,
            "tags": list(spec.tags), "exact_chunking": bool(spec.exact_chunking),
            "parameters": [{"name": p.name, "type": p.type, "default": p.default, "doc": p.doc, "min": p.min,
                            "max": p.max, "choices": list(p.choices) if p.choices is not None else None}
                           for p in spec.parameters]}


def _protocols() -> dict[str, list[str]]:
    """Evaluation protocols :func:`geofuse.evaluate` accepts, with their metric names."""
    from . import metrics

    try:
        from .metrics.evaluate import PROTOCOLS
    except ImportError:  # an older geofuse: the reduced protocol over every reference metric
        return {"reduced": [m.name for m in metrics.METRICS.values() if m.needs_reference]}
    return {str(p): [str(n) for n in names] for p, names in PROTOCOLS.items()}


def describe() -> dict[str, Any]:
    """Everything the plugin needs to generate its algorithms (JSON-serialisable)."""
    from . import __version__, metrics, registry, sensors

    return {
        "geofuse_version": __version__,
        "python": sys.executable,
        "methods": [_method_dict(s) for s in registry.available()],
        "sensors": sensors.names(),
        "interpolations": ["interp23tap", "bicubic", "lanczos3"],
        "compat": ["default", "toolbox"],
        "metrics": [{"name": m.name, "title": m.title, "needs_reference": bool(m.needs_reference),
                     "higher_is_better": bool(m.higher_is_better), "ideal": m.ideal}
                    for m in metrics.METRICS.values()],
        "protocols": list(_protocols()),
        "protocol_metrics": _protocols(),
        "srf_presets": _srf_presets(),
    }


def _srf_presets() -> list[str]:
    """Spectral-response presets of hyperspectral fusion (empty for a geofuse without them)."""
    try:
        from . import srf
    except ImportError:
        return []
    return [str(p) for p in getattr(srf, "PRESETS", ())]


# ---------------------------------------------------------------------------------------------- helpers


def _sensor(job: dict[str, Any]) -> Any:
    from . import sensors

    gains = job.get("mtf_gains")
    if gains:
        pan_gain = job.get("pan_gain")
        return sensors.custom([float(g) for g in gains],
                              float(pan_gain) if pan_gain is not None else sensors.GENERIC_PAN_GNYQ)
    return job.get("sensor") or None


def _select_bands(da, bands: Sequence[int] | None, role: str, path: str):
    if not bands:
        return da
    from .errors import BandCountError

    n = da.sizes["band"]
    bad = [b for b in bands if not 1 <= int(b) <= n]
    if bad:
        raise BandCountError(f"Band selection of the {role.upper()} input is out of range",
                             expected=f"band numbers between 1 and {n} ({path} has {n} bands)",
                             got=", ".join(map(str, bad)), fix="select existing bands (numbered from 1)")
    idx = [int(b) - 1 for b in bands]
    # A per-block take instead of ``da.isel(band=idx)``: the engine clones its inputs' graphs, and a
    # cloned getitem over rioxarray's read layer loses its dependency ("Missing dependency
    # open_rasterio-...", dask 2025). Blockwise layers clone fine.
    data = da.data.rechunk({0: -1})
    data = data.map_blocks(lambda a: a[idx], chunks=((len(idx),),) + data.chunks[1:], dtype=data.dtype)
    return da.isel(band=idx).copy(data=data)


def _accepted(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (scenario functions differ in their options)."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        named = {n for n, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD}
        return {k: v for k, v in kwargs.items() if k in named}
    return {k: v for k, v in kwargs.items() if k in sig.parameters}


def _scenario_function(scenario: str) -> Callable:
    from . import api
    from .errors import ParameterError

    fn = api.pansharpen if scenario == "pansharpening" else getattr(api, f"fuse_{scenario}", None)
    if fn is None:
        raise ParameterError(f"This geofuse has no entry point for {scenario!r} methods",
                             expected=f"geofuse.api.fuse_{scenario}", got="none",
                             fix="update geofuse in the plugin's Python environment")
    return fn


# ---------------------------------------------------------------------------------------------- commands


def run_fuse(job: dict[str, Any], progress: _Progress) -> dict[str, Any]:
    """Fuse the inputs of ``job`` with a registered method and write a GeoTIFF/COG.

    ``job`` keys: ``method``; ``inputs`` (role -> path, in the method's input order); ``bands`` (role ->
    1-based band numbers, optional); ``out``; ``driver`` (``COG`` or ``GTiff``); ``compress``;
    ``sensor`` / ``mtf_gains`` / ``pan_gain`` (pansharpening); ``srf`` / ``wavelengths`` (hyperspectral);
    ``nodata``; ``dtype``; ``interpolation``; ``compat``; ``device``; ``params`` (method parameters);
    ``overwrite``.
    Options the scenario's API function does not take are not passed.
    """
    from . import registry
    from .io import open_raster, write_raster

    spec = registry.get(job["method"])
    fn = _scenario_function(spec.scenario)
    arrays = []
    for role in spec.inputs:
        path = job["inputs"][role]
        arrays.append(_select_bands(open_raster(path), (job.get("bands") or {}).get(role), role, path))
    t0 = time.perf_counter()
    progress.stage(0, 25, f"geofuse {spec.name}: estimating global statistics")
    options = {"sensor": _sensor(job), "nodata": job.get("nodata"), "dtype": job.get("dtype"),
               "interpolation": job.get("interpolation") or "interp23tap", "compat": job.get("compat") or "default",
               "params": job.get("params") or {}, "srf": job.get("srf"), "wavelengths": job.get("wavelengths"),
               "device": job.get("device")}
    options = {k: v for k, v in options.items() if v is not None}
    with progress.callback():
        out = fn(*arrays, method=spec.name, **_accepted(fn, options))
    progress.stage(25, 100, f"computing and writing {out.shape[0]} bands of {out.shape[1]} x {out.shape[2]} "
                            f"pixels to {job['out']}")
    with progress.callback():
        path = write_raster(out, job["out"], driver=job.get("driver") or "COG", compress=job.get("compress"),
                            overwrite=bool(job.get("overwrite", True)))
    return {"outputs": {"OUTPUT": str(path)}, "method": spec.name, "shape": list(out.shape),
            "dtype": str(out.dtype), "ratio": out.attrs.get("geofuse_ratio"),
            "sensor": out.attrs.get("geofuse_sensor"), "seconds": round(time.perf_counter() - t0, 3)}


def run_simulate(job: dict[str, Any], progress: _Progress) -> dict[str, Any]:
    """Wald protocol: degrade ``ms``/``pan`` by the ratio into ``out_ms``/``out_pan`` (float32).

    ``job`` keys: ``ms``, ``pan``, ``out_ms``, ``out_pan``, ``sensor`` / ``mtf_gains`` / ``pan_gain``,
    ``pan_filter`` (``bicubic`` or ``mtf``), ``bands`` (1-based MS bands, optional), ``driver``,
    ``compress``, ``overwrite``.
    """
    from .degrade import wald
    from .io import open_raster, write_raster

    ms = _select_bands(open_raster(job["ms"]), job.get("bands"), "ms", job["ms"])
    pan = open_raster(job["pan"])
    ms_lr, pan_lr = wald(ms, pan, _sensor(job), pan_filter=job.get("pan_filter") or "bicubic")
    kw = {"driver": job.get("driver") or "COG", "compress": job.get("compress"),
          "overwrite": bool(job.get("overwrite", True))}
    progress.stage(0, 50, f"writing the reduced-resolution MS to {job['out_ms']}")
    with progress.callback():
        p1 = write_raster(ms_lr.astype("float32"), job["out_ms"], **kw)
    progress.stage(50, 100, f"writing the reduced-resolution PAN to {job['out_pan']}")
    with progress.callback():
        p2 = write_raster(pan_lr.astype("float32"), job["out_pan"], **kw)
    emit("info", message=f"The reference for evaluating a fusion of this pair is the original MS {job['ms']}")
    return {"outputs": {"OUTPUT_MS": str(p1), "OUTPUT_PAN": str(p2)}, "ratio": ms_lr.attrs.get("geofuse_ratio")}


def _html_report(table, title: str, rows: list[str]) -> str:
    head = "".join(f"<li>{html.escape(r)}</li>" for r in rows)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:2px 8px;text-align:right}</style></head>"
            f"<body><h2>{html.escape(title)}</h2><ul>{head}</ul>"
            + table.to_html(index=False, float_format=lambda v: f"{v:.6g}", na_rep="")
            + "</body></html>\n")


def run_evaluate(job: dict[str, Any], progress: _Progress) -> dict[str, Any]:
    """Quality table of a fused image; writes an HTML report (``html``) and/or CSV (``csv``).

    ``job`` keys: ``fused``; ``reference`` (reduced-resolution protocol); ``ms`` / ``pan`` (inputs of the
    fusion); ``protocol``; ``metrics`` (names); ``ratio``; ``dim_cut``; ``compat``; ``sensor`` /
    ``mtf_gains`` / ``pan_gain``; ``html``; ``csv``.
    """
    from .api import evaluate
    from .io import open_raster

    fused = open_raster(job["fused"])
    opened = {k: open_raster(job[k]) for k in ("reference", "ms", "pan") if job.get(k)}
    kw = {"protocol": job.get("protocol") or "reduced", "metrics": job.get("metrics") or None,
          "ratio": job.get("ratio"), "dim_cut": job.get("dim_cut"), "compat": job.get("compat"),
          "sensor": _sensor(job)}
    kw = {k: v for k, v in kw.items() if v is not None}
    if kw.get("protocol") == "reduced":
        kw.pop("protocol")  # every version of geofuse.evaluate takes the reduced protocol by default
    progress.stage(0, 100, "computing the metrics")
    with progress.callback():
        table = evaluate(fused, **_accepted(evaluate, {**opened, **kw}))
    outputs: dict[str, str] = {}
    if job.get("csv"):
        table.to_csv(job["csv"], index=False)
        outputs["OUTPUT_CSV"] = job["csv"]
    if job.get("html"):
        lines = [f"fused: {job['fused']}"] + [f"{k}: {job[k]}" for k in ("reference", "ms", "pan") if job.get(k)]
        lines.append(f"protocol: {job.get('protocol') or 'reduced'}")
        Path(job["html"]).write_text(_html_report(table, "geofuse quality report", lines), encoding="utf-8")
        outputs["OUTPUT_HTML"] = job["html"]
    emit("info", message=table.to_string(index=False))
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in table.to_dict("records")]
    return {"outputs": outputs, "table": records}


COMMANDS: dict[str, Callable[[dict[str, Any], _Progress], dict[str, Any]]] = {
    "fuse": run_fuse, "simulate": run_simulate, "evaluate": run_evaluate}


# ---------------------------------------------------------------------------------------------- main


def _interrupt(signum, frame):  # pragma: no cover - exercised through the plugin's cancel tests
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    global _OUT
    argv = list(sys.argv[1:] if argv is None else argv)
    _OUT = sys.stdout
    sys.stdout = sys.stderr  # only emit() writes to the protocol stream
    try:
        old_term = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread (an in-process caller): no SIGTERM handling
        old_term = None
    old_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        emit("warning", message=str(message), category=category.__name__)

    warnings.showwarning = show
    try:
        if not argv or argv[0] not in ("describe", *COMMANDS):
            emit("error", message="usage: python -m geofuse.qgis_worker {describe|fuse|simulate|evaluate} "
                                  "[JOB as JSON]", error="UsageError")
            return 1
        if argv[0] == "describe":
            emit("result", describe=describe())
            return 0
        job = json.loads(argv[1]) if len(argv) > 1 else json.loads(sys.stdin.read())
        progress = _Progress()
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            warnings.showwarning = show
            result = COMMANDS[argv[0]](job, progress)
        progress.stage(100, 100)
        emit("result", **result)
        return 0
    except KeyboardInterrupt:
        emit("error", message="geofuse was interrupted (cancelled)", error="Cancelled")
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one protocol message
        from .errors import GeofuseError

        emit("error", message=str(exc), error=type(exc).__name__, traceback=traceback.format_exc(),
             geofuse_error=isinstance(exc, GeofuseError))
        return 2 if isinstance(exc, GeofuseError) else 1
    finally:
        sys.stdout = _OUT
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        warnings.showwarning = old_show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
