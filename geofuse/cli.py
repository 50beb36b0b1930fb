"""The ``geofuse`` command line. Subcommands and method options are generated from the registry."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import __version__, registry
from . import sensors as _sensors
from .errors import GeofuseError, ParameterError

_PY = {"float": float, "int": int, "str": str}


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def _method_params(scenario: str | None = None) -> dict[str, registry.Parameter]:
    """Union of the methods' parameters (first definition wins; same name means same meaning), of one
    scenario's methods when ``scenario`` is given."""
    out: dict[str, registry.Parameter] = {}
    for spec in registry.available(scenario):
        for p in spec.parameters:
            out.setdefault(p.name, p)
    return out


def _users(name: str, scenario: str | None = None) -> list[str]:
    return [s.name for s in registry.available(scenario) if any(p.name == name for p in s.parameters)]


def _add_method_options(ap: argparse.ArgumentParser, scenario: str | None = None) -> None:
    grp = ap.add_argument_group("method parameters (generated from the registry; each applies to the "
                                "methods named in its help)")
    for name, p in _method_params(scenario).items():
        kw: dict[str, Any] = {"dest": f"param_{name}", "default": None,
                              "help": f"{p.doc} (default {p.default!r}; methods: "
                                      f"{', '.join(_users(name, scenario))})"}
        if p.type == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _PY[p.type]
            if p.choices:
                kw["choices"] = p.choices
        grp.add_argument(_opt(name), **kw)
    grp.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="any method parameter as NAME=VALUE (repeatable)")


def _collect_params(args: argparse.Namespace, method: str) -> dict[str, Any]:
    spec = registry.get(method)
    own = {p.name for p in spec.parameters}
    params: dict[str, Any] = {}
    for name in _method_params():
        v = getattr(args, f"param_{name}", None)
        if v is not None:
            if name not in own:
                raise ParameterError(f"Option {_opt(name)} does not apply to method {spec.name!r}",
                                     expected=f"options of {spec.name}: "
                                              + (", ".join(_opt(n) for n in own) or "(none)"),
                                     got=_opt(name), fix="drop the option or choose a method that uses it")
            params[name] = v
    for item in args.param:
        if "=" not in item:
            raise ParameterError("Malformed --param", expected="NAME=VALUE", got=repr(item),
                                 fix="write e.g. -P block_size=128")
        k, v = item.split("=", 1)
        params[k.strip()] = v.strip()
    # strings from -P are converted by the typed Parameter.validate
    typed = {p.name: p for p in spec.parameters}
    for k, v in list(params.items()):
        if k in typed and isinstance(v, str) and typed[k].type in ("int", "float"):
            try:
                params[k] = _PY[typed[k].type](v)
            except ValueError:
                pass
    return params


def _sensor_arg(args) -> Any:
    if getattr(args, "mtf_gains", None):
        gains = [float(g) for g in args.mtf_gains.split(",")]
        return _sensors.custom(gains, args.pan_gain if args.pan_gain is not None else _sensors.GENERIC_PAN_GNYQ)
    return args.sensor


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[Any]:
    """A dask.distributed Client for ``--scheduler ADDRESS``; None means the local threaded scheduler."""
    if not address:
        yield None
        return
    from dask.distributed import Client

    with Client(address) as client:
        yield client


# ---------------------------------------------------------------------------------------------- commands


def _report_written(out, path, seconds: float, as_json: bool) -> None:
    """One line (or a JSON summary) about a fused raster written by ``pansharpen`` / ``fuse-hs``."""
    print(json.dumps({"output": str(path), "method": out.attrs["geofuse_method"], "shape": list(out.shape),
                      "dtype": str(out.dtype), "ratio": out.attrs["geofuse_ratio"],
                      "seconds": round(seconds, 3)}) if as_json else
          f"wrote {path} ({out.attrs['geofuse_method']}, {out.shape[0]} bands, {out.shape[1]}x{out.shape[2]}, "
          f"{out.dtype}) in {seconds:.2f} s")

def cmd_methods(args) -> int:
    specs = [registry.get(args.name)] if args.name else registry.available()
    if args.json:
        print(json.dumps([{"name": s.name, "title": s.title, "family": s.family, "scenario": s.scenario,
                           "inputs": list(s.inputs), "references": list(s.references), "summary": s.summary,
                           "parameters": [{"name": p.name, "type": p.type, "default": p.default, "doc": p.doc,
                                           "min": p.min, "max": p.max, "choices": p.choices}
                                          for p in s.parameters]} for s in specs], indent=2))
        return 0
    for s in specs:
        print(f"{s.name:<16} {s.family:<9} {s.scenario:<14} {s.title}")
        for p in s.parameters:
            rng = f" [{p.min}, {p.max}]" if p.min is not None or p.max is not None else ""
            ch = f" {{{', '.join(map(str, p.choices))}}}" if p.choices else ""
            print(f"{'':<18}{_opt(p.name)} {p.type}={p.default!r}{rng}{ch}  {p.doc}")
        if args.name:
            print(f"\n{s.summary}\nReferences: " + ", ".join(f"doi:{d}" for d in s.references))
    return 0


def cmd_pansharpen(args) -> int:
    from .api import pansharpen
    from .io import open_raster, write_raster

    params = _collect_params(args, args.method)
    t0 = time.perf_counter()
    with _scheduler(args.scheduler) as client:
        read = args.chunks or 1024  # the engine rechunks to its own layout; this is the read block
        ms = open_raster(args.ms, chunks=max(256, read // 4))
        pan = open_raster(args.pan, chunks=read)
        out = pansharpen(ms, pan, args.method, sensor=_sensor_arg(args), compat=args.compat,
                         interpolation=args.interpolation, dtype=args.dtype, nodata=args.nodata,
                         chunks=args.chunks, device=args.device, params=params)
        path = write_raster(out, args.out, driver=args.driver, progress=args.progress, scheduler=client,
                            overwrite=args.overwrite, compress=args.compress)
    _report_written(out, path, time.perf_counter() - t0, args.json)
    return 0


def cmd_fuse_hs(args) -> int:
    """``geofuse fuse-hs HS MS OUT``: hyperspectral + multispectral (or PAN) fusion."""
    from .api import fuse_hyperspectral
    from .io import open_raster, write_raster

    params = _collect_params(args, args.method)
    srf: Any = args.srf
    if srf is not None and Path(srf).suffix.lower() == ".npy":
        import numpy as np

        srf = np.load(srf)
    wl = [float(v) for v in args.wavelengths.split(",")] if args.wavelengths else None
    if wl is None and args.wavelengths_file:
        wl = [float(v) for v in Path(args.wavelengths_file).read_text().replace(",", " ").split()]
    t0 = time.perf_counter()
    with _scheduler(args.scheduler) as client:
        read = args.chunks or 1024
        hs = open_raster(args.hs, chunks=max(64, read // 4))
        ms = open_raster(args.ms, chunks=read)
        out = fuse_hyperspectral(hs, ms, args.method, srf=srf, wavelengths=wl, dtype=args.dtype,
                                 nodata=args.nodata, chunks=args.chunks, device=args.device, params=params)
        path = write_raster(out, args.out, driver=args.driver, progress=args.progress, scheduler=client,
                            overwrite=args.overwrite, compress=args.compress)
    _report_written(out, path, time.perf_counter() - t0, args.json)
    return 0


def cmd_simulate(args) -> int:
    from .degrade import wald
    from .io import open_raster, write_raster

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with _scheduler(args.scheduler) as client:
        ms = open_raster(args.ms)
        pan = open_raster(args.pan)
        ms_lr, pan_lr = wald(ms, pan, _sensor_arg(args), ratio=args.ratio, pan_filter=args.pan_filter)
        p1 = write_raster(ms_lr.astype("float32"), outdir / "ms_lr.tif", progress=args.progress, scheduler=client,
                          overwrite=args.overwrite)
        p2 = write_raster(pan_lr.astype("float32"), outdir / "pan_lr.tif", progress=args.progress,
                          scheduler=client, overwrite=args.overwrite)
    print(f"wrote {p1} and {p2}; the reference for evaluating their fusion is the original MS {args.ms}")
    return 0


def cmd_evaluate(args) -> int:
    from .api import evaluate
    from .io import open_raster

    with _scheduler(args.scheduler):
        fused = open_raster(args.fused)
        ref = open_raster(args.reference) if args.reference else None
        ms = open_raster(args.ms) if args.ms else None
        pan = open_raster(args.pan) if args.pan else None
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        params = {k: v for k, v in (("p", args.p), ("q", args.q), ("alpha", args.alpha), ("beta", args.beta),
                                    ("scc_variant", args.scc_variant), ("data_range", args.data_range))
                  if v is not None}
        table = evaluate(fused, ref, ms=ms, pan=pan, sensor=_sensor_arg(args), ratio=args.ratio,
                         protocol=args.protocol, metrics=metrics, compat=args.compat, dim_cut=args.dim_cut,
                         block=args.block, per_band=args.per_band, **params)
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "json":
        print(table.to_json(orient="records", indent=2))
    else:
        print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.json:
        Path(args.json).write_text(table.to_json(orient="records", indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="geofuse", description="Image fusion for remote sensing (pansharpening) "
                                 "over chunked georeferenced rasters.")
    ap.add_argument("--version", action="version", version=f"geofuse {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, scheduler=True, progress=True):
        if scheduler:
            p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                           help="dask.distributed scheduler address (e.g. tcp://host:8786); default: local threads")
        if progress:
            p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                           help="show a progress bar (default: on a terminal)")

    def sensor_opts(p):
        p.add_argument("--sensor", default=None, help="MTF preset: " + ", ".join(_sensors.names()))
        p.add_argument("--mtf-gains", default=None, metavar="G1,G2,...",
                       help="your own MS MTF gains at Nyquist, one per band (overrides --sensor)")
        p.add_argument("--pan-gain", type=float, default=None, help="PAN MTF gain at Nyquist (with --mtf-gains)")

    p = sub.add_parser("methods", help="list the registered methods and their parameters")
    p.add_argument("name", nargs="?", help="show one method in detail")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("pansharpen", help="fuse an MS and a PAN raster into OUT (GeoTIFF/COG or .zarr)")
    p.add_argument("ms")
    p.add_argument("pan")
    p.add_argument("out")
    p.add_argument("--method", "-m", default="gsa", help="one of: " + ", ".join(s.name for s in registry.available()))
    sensor_opts(p)
    p.add_argument("--compat", choices=("default", "toolbox"), default="default",
                   help="'toolbox' reproduces the reference MATLAB toolbox conventions")
    p.add_argument("--interpolation", default="interp23tap", help="interp23tap | bicubic | lanczos3")
    p.add_argument("--dtype", default=None, help="output dtype (default: the MS dtype)")
    p.add_argument("--nodata", type=float, default=None, help="output nodata (default: the MS's, else the PAN's)")
    p.add_argument("--chunks", type=int, default=None,
                   help="chunk size in PAN pixels (default 1024; --compat toolbox: the whole image)")
    p.add_argument("--compress", default="deflate", help="GeoTIFF compression (default deflate)")
    p.add_argument("--driver", choices=("COG", "GTiff", "Zarr"), default=None,
                   help="output format (default from the suffix: .tif -> COG, .zarr -> Zarr); GTiff skips the "
                        "COG conversion (no overviews), about a quarter of the time of a fast method")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (env GEOFUSE_DEVICE)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    common(p)
    _add_method_options(p, "pansharpening")
    p.set_defaults(func=cmd_pansharpen)

    p = sub.add_parser("fuse-hs", help="fuse a hyperspectral (HS) raster with a multispectral (or PAN) raster "
                       "into OUT (GeoTIFF/COG or .zarr)")
    p.add_argument("hs", help="low-resolution hyperspectral raster (B bands)")
    p.add_argument("ms", help="high-resolution multispectral raster (K >= 1 bands; a PAN is K = 1)")
    p.add_argument("out")
    hs_methods = [s.name for s in registry.available("hyperspectral")]
    p.add_argument("--method", "-m", default="glp_hs", help="one of: " + ", ".join(hs_methods))
    p.add_argument("--srf", default=None,
                   help="spectral response of the MS vs the HS: a preset (Sentinel-2A, Sentinel-2B, Landsat-8, "
                        "Landsat-9, Pleiades, SPOT-6/7, IKONOS, ...), a CSV (wavelength, one column per band) or a "
                        ".npy (K x B) matrix; default: estimated from the data by the methods that need it")
    p.add_argument("--wavelengths", default=None, metavar="W1,W2,...",
                   help="HS band centres in nm (needed with a named/CSV --srf)")
    p.add_argument("--wavelengths-file", default=None, help="text file with the HS band centres in nm")
    p.add_argument("--dtype", default=None, help="output dtype (default: the HS dtype)")
    p.add_argument("--nodata", type=float, default=None, help="output nodata (default: the HS's, else the MS's)")
    p.add_argument("--chunks", type=int, default=None, help="chunk size in MS pixels (default 1024)")
    p.add_argument("--compress", default="deflate", help="GeoTIFF compression (default deflate)")
    p.add_argument("--driver", choices=("COG", "GTiff", "Zarr"), default=None,
                   help="output format (default from the suffix: .tif -> COG, .zarr -> Zarr)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (env GEOFUSE_DEVICE)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    common(p)
    _add_method_options(p, "hyperspectral")
    p.set_defaults(func=cmd_fuse_hs)

    p = sub.add_parser("simulate", help="Wald protocol: degrade an MS+PAN pair by the ratio into OUTDIR")
    p.add_argument("ms")
    p.add_argument("pan")
    p.add_argument("outdir")
    sensor_opts(p)
    p.add_argument("--ratio", type=int, default=None, help="only for inputs without georeferencing")
    p.add_argument("--pan-filter", choices=("bicubic", "mtf"), default="bicubic")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("evaluate", help="print a quality table: FUSED against REFERENCE (reduced resolution) or "
                       "against its MS and PAN (--protocol full)")
    p.add_argument("fused")
    p.add_argument("reference", nargs="?", default=None, help="ground truth (reduced-resolution protocol)")
    p.add_argument("--protocol", choices=("reduced", "full"), default="reduced",
                   help="reduced: Q2n, Q, SAM, ERGAS, SCC, PSNR, RMSE, CC, SSIM vs REFERENCE; full: D_lambda, D_s, "
                        "QNR, D_lambda_K, HQNR from --ms and --pan")
    p.add_argument("--ms", default=None, help="the low-resolution MS (full protocol; reduced: gives the ratio)")
    p.add_argument("--pan", default=None, help="the PAN (full protocol)")
    sensor_opts(p)
    p.add_argument("--ratio", type=int, default=None, help="resolution ratio (default from the grids)")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: all of the protocol)")
    p.add_argument("--compat", choices=("default", "toolbox"), default="default",
                   help="toolbox: uint16 cast in Q2n, border cut 21, toolbox interpolation phase")
    p.add_argument("--dim-cut", type=int, default=None, help="border cut as the toolbox (default 21 with "
                   "--compat toolbox, else 0)")
    p.add_argument("--block", type=int, default=32, help="block / window size S (32)")
    p.add_argument("--per-band", action=argparse.BooleanOptionalAction, default=True,
                   help="also one row per band for the metrics that have per-band values")
    for name in ("p", "q", "alpha", "beta"):
        p.add_argument(f"--{name}", type=float, default=None, help=f"QNR exponent {name} (default 1)")
    p.add_argument("--scc-variant", choices=("2021", "v1.3"), default=None,
                   help="SCC as the 2021 toolbox (Sobel magnitude, default) or v1.3 (one Sobel direction)")
    p.add_argument("--data-range", type=float, default=None,
                   help="one peak / dynamic range for PSNR and SSIM (e.g. 2047 for 11-bit data; default: per "
                        "reference band)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="what to print")
    p.add_argument("--csv", default=None, help="also write the table as CSV to this path")
    p.add_argument("--json", default=None, help="also write the table as JSON records to this path")
    common(p, progress=False)
    p.set_defaults(func=cmd_evaluate)

    from .metrics.select import add_cli as _select_metrics_cli

    _select_metrics_cli(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.formatwarning = lambda m, c, *a, **k: f"geofuse: warning: {m}\n"  # type: ignore[assignment]
            return args.func(args)
    except GeofuseError as exc:
        print(f"geofuse: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
