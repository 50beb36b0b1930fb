"""The geofuse demo: ``make demo`` / ``python -m geofuse.demo``.

Runs the main job end to end on a built-in synthetic scene, on dask's local threaded scheduler (or a
``dask.distributed`` cluster with ``--scheduler tcp://host:8786``):

1. renders a sensor-realistic IKONOS-like scene with a known high-resolution truth
   (:func:`simulation.scene.make_scene`) and writes its inputs ``ms.tif``, ``pan.tif`` and
   ``truth.tif`` (COGs) into the output folder;
2. opens them lazily (:func:`geofuse.open_raster`) and fuses them with every registered
   pansharpening method (the list comes from the registry), writing ``fused_<method>.tif`` (COG)
   chunk by chunk with a progress bar;
3. measures the quality (Q2n, SAM, ERGAS) of each fused image against the truth, and in the Wald
   protocol (:func:`geofuse.degrade.wald`: degrade the pair, fuse, compare with the original MS),
   writes ``metrics.csv`` and prints the table;
4. draws ``quicklook.png``: RGB composites of the most detailed crop (PAN, each method, truth).

Everything is recomputed on each run and outputs are overwritten, so a second run works.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Side of the default scene in PAN pixels (MS: a quarter of it). 2048 runs in well under a minute on
#: two CPU cores (``time make demo``); use ``--size`` for a quicker or a bigger run.
DEFAULT_SIZE = 2048
DEFAULT_SENSOR = "IKONOS"
#: Metrics of the tables, in display order.
METRICS = ("Q2n", "SAM", "ERGAS")
#: The two evaluation protocols of metrics.csv.
PROTOCOLS = {
    "truth": "full resolution, against the synthetic high-resolution truth",
    "wald": "reduced resolution (Wald protocol), against the original MS",
}


@dataclass
class DemoResult:
    """What :func:`run` produced (paths are absolute)."""

    out_dir: Path
    inputs: dict[str, Path]
    fused: dict[str, Path]
    metrics_csv: Path
    quicklook: Path
    metrics: pd.DataFrame
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``address``; the local threaded scheduler otherwise."""
    import dask

    if not address:
        with dask.config.set(scheduler="threads"):
            yield None
        return
    from dask.distributed import Client

    with Client(address) as client:
        yield client


def _say(quiet: bool, *msg: Any) -> None:
    if not quiet:
        print(*msg, flush=True)


def run(out: str | Path = "demo_output", *, size: int = DEFAULT_SIZE, seed: int = 0,
        sensor: str = DEFAULT_SENSOR, scheduler: str | None = None, progress: bool = True,
        chunks: int = 1024, crop: int | None = None, quiet: bool = False,
        methods: Sequence[str] | str | None = None) -> DemoResult:
    """Run the demo into ``out`` and return what it wrote.

    Parameters
    ----------
    out : path
        Output folder (created if needed; existing outputs are overwritten).
    size : int
        PAN side in pixels of the synthetic scene (a multiple of 4, at least 32).
    seed : int
        Scene seed (same seed, same scene).
    sensor : str
        Sensor preset of the scene and of the fusion (MTF gains).
    scheduler : str, optional
        ``dask.distributed`` scheduler address; default the local threaded scheduler. On a cluster the
        workers read and write ``out`` by path, so it must be on a file system they share.
    progress : bool
        Progress bars while the fused COGs are written (local scheduler).
    chunks : int
        Chunk size in PAN pixels.
    crop : int, optional
        Side of the quick-look window in PAN pixels (default ``min(256, size // 2)``).
    quiet : bool
        Print nothing.
    methods : sequence of str or "all", optional
        Methods to run. Default: the registry's methods tagged ``"demo"`` (one per family, fast);
        ``"all"``: every registered pansharpening method.
    """
    from simulation.scene import make_scene

    from . import degrade, registry
    from .api import evaluate, pansharpen
    from .io import open_raster, write_raster
    from .quicklook import find_crop, quicklook

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(out).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = registry.available("pansharpening")
    if methods is None:
        methods = [s.name for s in specs if "demo" in s.tags]
    elif methods == "all":
        methods = [s.name for s in specs]
    else:
        methods = [registry.get(m).name for m in methods]

    _say(quiet, f"geofuse demo: synthetic {sensor} scene, PAN {size}x{size}, seed {seed}; "
                f"methods from the registry: {', '.join(methods)}")
    t = time.perf_counter()
    scene = make_scene(size=size, seed=seed, sensor=sensor)
    ratio = scene.ratio
    timings["scene"] = time.perf_counter() - t
    _say(quiet, f"  scene rendered in {timings['scene']:.1f} s "
                f"(MS {scene.ms.sizes['band']} bands {scene.ms.sizes['y']}x{scene.ms.sizes['x']}, "
                f"ratio {ratio}, {scene.ms.dtype})")

    with _scheduler(scheduler) as client:
        if client is not None:
            _say(quiet, f"  dask.distributed cluster: {client.dashboard_link or scheduler}")
        # 1. inputs
        t = time.perf_counter()
        inputs = {}
        for name in ("ms", "pan", "truth"):
            inputs[name] = write_raster(getattr(scene, name), out_dir / f"{name}.tif", overwrite=True,
                                        scheduler=client).resolve()
        timings["write inputs"] = time.perf_counter() - t
        del scene
        ms = open_raster(inputs["ms"], chunks=max(1, chunks // ratio))
        pan = open_raster(inputs["pan"], chunks=chunks)
        truth = open_raster(inputs["truth"], chunks=chunks)

        # 2. fusion, one COG per registered method
        fused: dict[str, Path] = {}
        for m in methods:
            t = time.perf_counter()
            _say(quiet, f"  fusing {m} -> {out_dir / f'fused_{m}.tif'}")
            lazy = pansharpen(ms, pan, m, sensor=sensor, chunks=chunks)
            fused[m] = write_raster(lazy, out_dir / f"fused_{m}.tif", overwrite=True,
                                    progress=progress and not quiet, scheduler=client).resolve()
            timings[f"fuse {m}"] = time.perf_counter() - t

        # 3. metrics: against the truth (read back from the COGs), and the Wald protocol
        t = time.perf_counter()
        rows = []
        for m in methods:
            tab = evaluate(open_raster(fused[m], chunks=chunks), truth, ms=ms, metrics=METRICS)
            rows += [{"protocol": "truth", "method": m, **r} for r in tab.to_dict("records")]
        ms_lr, pan_lr = degrade.wald(ms, pan, sensor, chunks=chunks)
        for m in methods:
            f_rr = pansharpen(ms_lr, pan_lr, m, sensor=sensor, chunks=chunks)
            ref = ms.isel(y=slice(0, f_rr.sizes["y"]), x=slice(0, f_rr.sizes["x"]))
            tab = evaluate(f_rr, ref, ratio=ratio, metrics=METRICS)
            rows += [{"protocol": "wald", "method": m, **r} for r in tab.to_dict("records")]
        table = pd.DataFrame(rows)
        table = table[["protocol", "method", "metric", "band", "value", "higher_is_better", "ideal"]]
        metrics_csv = out_dir / "metrics.csv"
        table.to_csv(metrics_csv, index=False, float_format="%.6g")
        timings["metrics"] = time.perf_counter() - t

        # 4. quick look of the most detailed crop
        t = time.perf_counter()
        side = int(crop or min(256, max(16, size // 2)))
        # search on a decimated PAN (cheap for any size), then map the window back
        step = max(1, pan.sizes["y"] // 512)
        small = pan.isel(y=slice(None, None, step), x=slice(None, None, step))
        ys, xs = find_crop(small, max(4, side // step))
        r0, c0 = ys.start * step, xs.start * step
        window = (slice(r0, r0 + side), slice(c0, c0 + side))
        q2n_rows = table[(table.protocol == "truth") & (table.metric == "Q2n")]
        q2n = dict(zip(q2n_rows.method, q2n_rows.value))
        panels: dict[str, Any] = {"PAN": pan}
        for m in methods:
            label = f"{m} (interpolated MS)" if registry.get(m).family == "baseline" else m
            panels[f"{label}\nQ2n {q2n[m]:.3f}"] = open_raster(fused[m], chunks=chunks)
        panels["truth"] = truth
        png = quicklook(panels, out_dir / "quicklook.png", crop=window, reference="truth",
                        suptitle=f"geofuse demo: synthetic {sensor} scene, crop rows {r0}-{r0 + side}, "
                                 f"cols {c0}-{c0 + side} (2-98 % stretch of the truth, shared)").resolve()
        timings["quicklook"] = time.perf_counter() - t

    total = time.perf_counter() - t0
    return DemoResult(out_dir=out_dir, inputs=inputs, fused=fused, metrics_csv=metrics_csv.resolve(),
                      quicklook=png, metrics=table, seconds=total, timings=timings)


def format_table(table: pd.DataFrame) -> str:
    """The metric table as Markdown: one row per method, ``metric (protocol)`` columns."""
    from .metrics import get

    cols = [(p, m) for p in PROTOCOLS for m in METRICS]
    methods = list(dict.fromkeys(table["method"]))
    head = ["method"] + [f"{m} {'↑' if get(m).higher_is_better else '↓'} ({p})" for p, m in cols]
    body = []
    for meth in methods:
        row = [meth]
        for p, m in cols:
            sel = (table.protocol == p) & (table.method == meth) & (table.metric == m) & (table.band == "all")
            v = table[sel]
            row.append(f"{v['value'].iloc[0]:.4f}" if len(v) else "-")
        body.append(row)
    ideal = ["ideal"] + [f"{get(m).ideal:g}" for _, m in cols]
    widths = [max(len(r[i]) for r in [head, *body, ideal]) for i in range(len(head))]

    def line(r):
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *map(line, body), line(ideal)])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m geofuse.demo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_output", metavar="DIR", help="output folder (default demo_output)")
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE,
                    help=f"PAN side of the synthetic scene in pixels, a multiple of 4 "
                         f"(default {DEFAULT_SIZE})")
    ap.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    ap.add_argument("--sensor", default=DEFAULT_SENSOR, help=f"sensor preset (default {DEFAULT_SENSOR})")
    ap.add_argument("--chunks", type=int, default=1024, help="chunk size in PAN pixels (default 1024)")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="dask.distributed scheduler (e.g. tcp://host:8786; the workers must see --out); "
                         "default: local threads")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stdout.isatty(),
                    help="progress bars while writing the fused images (default: on a terminal)")
    ap.add_argument("--quiet", action="store_true", help="print nothing but errors")
    ap.add_argument("--methods", default=None, metavar="all|NAME,NAME",
                    help="methods to run (default: the registry's methods tagged 'demo'; 'all': every method)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from .errors import GeofuseError

    args = build_parser().parse_args(argv)
    fmt = warnings.formatwarning
    warnings.formatwarning = lambda m, c, *a, **k: f"geofuse: warning: {m}\n"  # type: ignore[assignment]
    try:
        res = run(args.out, size=args.size, seed=args.seed, sensor=args.sensor, scheduler=args.scheduler,
                  progress=args.progress, chunks=args.chunks, quiet=args.quiet,
                  methods=None if args.methods is None else
                  ("all" if args.methods == "all" else [m for m in args.methods.split(",") if m]))
    except GeofuseError as exc:
        print(f"geofuse demo: error: {exc}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = fmt  # type: ignore[assignment]
    if not args.quiet:
        print()
        print("Quality (" + "; ".join(f"{p}: {d}" for p, d in PROTOCOLS.items()) + "; SAM in degrees):")
        print(format_table(res.metrics))
        print()
        print("Outputs:")
        for name, p in res.inputs.items():
            print(f"  {name + ' (input)':<22} {p}")
        for m, p in res.fused.items():
            print(f"  {'fused ' + m:<22} {p}")
        print(f"  {'metrics':<22} {res.metrics_csv}")
        print(f"  {'quick look':<22} {res.quicklook}")
        print("Steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
        print(f"Total time: {res.seconds:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
