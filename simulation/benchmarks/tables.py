"""Benchmark tables of every pansharpening method on a real pair: reduced and full resolution.

For one real PAN + MS pair (:func:`simulation.realdata.load_pair`: IKONOS, GeoEye1, WV2, WV3 or a
``.mat`` path) this runner produces the two tables of the pansharpening literature (Vivone et al.,
IEEE GRSM 2021, doi:10.1109/MGRS.2020.3019315):

* **Reduced resolution** (Wald protocol): the pair is degraded by the ratio with
  :func:`geofuse.degrade.wald` (MS: the sensor's MTF-matched Gaussian + decimation; PAN: MATLAB's
  bicubic ``imresize``), every method fuses the degraded pair, and the result is compared with the
  original MS through :func:`geofuse.evaluate` (``protocol="reduced"``): Q2n, Q, SAM, ERGAS, SCC.
  Conventions of the toolbox's demos: ``compat="toolbox"`` for the indexes (uint16 cast inside Q2n;
  the data are DN) and border cut ``dim_cut = 21`` (0 when the reference is smaller than 128 px:
  the WV3 example's 32 x 32 reference has no interior left after a cut of 21).
* **Full resolution**: every method fuses the original pair, and :func:`geofuse.evaluate`
  (``protocol="full"``) gives D_lambda, D_s, QNR, D_lambda_K and HQNR (blocks of 32, the MTF of the
  pair's sensor, the MS interpolated at the grids' phase).

Methods run in geofuse's default mode (``compat="default"``), float32 output, with the pair's sensor
preset. The metric names are looked up in the :data:`geofuse.metrics.METRICS` registry: an index that
is not registered is left out of the table (and said so in the Markdown), so the tables fill in as the
metric suite grows.

Each table records, per method, the wall time of the fusion (the whole lazy graph computed to memory,
estimate included) and of the metrics. Output, per pair and protocol, in ``--out`` (default
``simulation/results/tables/``): a tidy CSV ``<pair>_<rr|fr>.csv`` (``pair, protocol, method, family,
metric, value, higher_is_better, ideal``; the times as metrics ``time_fusion_s`` / ``time_metrics_s``)
and a Markdown table ``<pair>_<rr|fr>.md`` (one row per method, best value per index in bold).

Usage::

    python -m simulation tables --pair IKONOS [--pair WV2 ...] [--protocols rr,fr] [--methods gsa,...]
    python simulation/benchmarks/tables.py --pair IKONOS
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT_DIR = REPO / "simulation" / "results" / "tables"

#: Indexes of each protocol, in the order of the literature's tables.
RR_METRICS: tuple[str, ...] = ("Q2n", "Q", "SAM", "ERGAS", "SCC")
FR_METRICS: tuple[str, ...] = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")
PROTOCOLS = {"rr": ("reduced", RR_METRICS), "fr": ("full", FR_METRICS)}
#: Border cut of the toolbox's 2021 reduced-resolution demos.
DIM_CUT = 21
COLUMNS = ["pair", "protocol", "method", "family", "metric", "value", "higher_is_better", "ideal"]


def registered(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(registered, missing) metric names, looked up in the metric registry."""
    from geofuse import metrics

    have = {k.lower(): k for k in metrics.METRICS}
    ok = [have[n.lower()] for n in names if n.lower() in have]
    return ok, [n for n in names if n.lower() not in have]


def _methods(selected: Sequence[str] | None):
    from geofuse import registry

    specs = registry.available("pansharpening")
    if selected:
        wanted = [registry.get(m).name for m in selected]
        specs = [s for s in specs if s.name in wanted]
    return specs


def _fuse(ms, pan, method: str, sensor: str):
    import geofuse

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = geofuse.pansharpen(ms, pan, method, sensor=sensor, dtype="float32")
        out = out.copy(data=out.values)  # compute the whole graph (estimate + apply) to memory
    return out, time.perf_counter() - t


def run_pair(pair: str, protocols: Sequence[str] = ("rr", "fr"), methods: Sequence[str] | None = None,
             log=print) -> dict[str, "object"]:
    """Fuse and evaluate every method on ``pair``; returns protocol -> tidy DataFrame (see module doc)."""
    import pandas as pd

    import geofuse
    from geofuse.degrade import wald

    from simulation.realdata import load_pair

    ms, pan, meta = load_pair(pair)
    name, sensor, ratio = meta["name"], meta["sensor"], int(meta["ratio"])
    specs = _methods(methods)
    tables: dict[str, pd.DataFrame] = {}
    for proto in protocols:
        protocol, wanted = PROTOCOLS[proto]
        names, missing = registered(wanted)
        if proto == "rr":
            ms_lr, pan_lr = wald(ms, pan, sensor)
            ms_lr, pan_lr = ms_lr.compute(), pan_lr.compute()
            ref = ms.isel(y=slice(0, ms_lr.sizes["y"] * ratio), x=slice(0, ms_lr.sizes["x"] * ratio))
            inputs = (ms_lr, pan_lr)
            dim_cut = DIM_CUT if min(ref.shape[1:]) >= 128 else 0
        else:
            inputs, ref, dim_cut = (ms, pan), None, 0
        rows = []
        for spec in specs:
            fused, t_fuse = _fuse(*inputs, spec.name, sensor)
            t = time.perf_counter()
            if names:
                kw = ({"reference": ref, "compat": "toolbox", "dim_cut": dim_cut} if proto == "rr"
                      else {"ms": ms, "pan": pan, "sensor": sensor})
                tab = geofuse.evaluate(fused, protocol=protocol, metrics=names, ratio=ratio, per_band=False, **kw)
            else:
                tab = pd.DataFrame(columns=["metric", "value", "higher_is_better", "ideal"])
            t_met = time.perf_counter() - t
            for r in tab.itertuples():
                rows.append({"pair": name, "protocol": proto, "method": spec.name, "family": spec.family,
                             "metric": r.metric, "value": float(r.value), "higher_is_better": bool(r.higher_is_better),
                             "ideal": float(r.ideal)})
            for m, v in (("time_fusion_s", t_fuse), ("time_metrics_s", t_met)):
                rows.append({"pair": name, "protocol": proto, "method": spec.name, "family": spec.family,
                             "metric": m, "value": float(v), "higher_is_better": False, "ideal": 0.0})
            log(f"{name} {proto} {spec.name:14s} fusion {t_fuse:6.2f} s  metrics {t_met:6.2f} s")
        df = pd.DataFrame(rows, columns=COLUMNS)
        df.attrs.update({"missing": missing, "dim_cut": dim_cut, "sensor": sensor, "ratio": ratio,
                         "shape_pan": tuple(int(v) for v in (inputs[1].sizes["y"], inputs[1].sizes["x"])),
                         "shape_ms": tuple(int(v) for v in inputs[0].shape), "bits": meta.get("bits")})
        tables[proto] = df
    return tables


def _fmt(v: float, metric: str) -> str:
    if metric.startswith("time"):
        return f"{v:.2f}"
    if metric in ("SAM", "ERGAS"):
        return f"{v:.3f}"
    return f"{v:.4f}"


def markdown(df, pair: str, proto: str) -> str:
    """One row per method, one column per index (best in bold) and the times."""
    protocol, wanted = PROTOCOLS[proto]
    a = df.attrs
    metrics = [m for m in wanted if m in set(df["metric"])]
    wide = df.pivot_table(index="method", columns="metric", values="value", sort=False)
    order = list(dict.fromkeys(df["method"]))
    fam = dict(zip(df["method"], df["family"]))
    hib = dict(zip(df["metric"], df["higher_is_better"]))
    contenders = wide.loc[[m for m in order if fam[m] != "baseline"] or order]
    best = {m: (contenders[m].max() if hib[m] else contenders[m].min()) for m in metrics}
    head = ["method", "family"] + metrics + ["fusion s", "metrics s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for m in order:
        cells = [f"`{m}`", fam[m]]
        for k in metrics:
            v = wide.loc[m, k]
            s = _fmt(v, k)
            cells.append(f"**{s}**" if np.isclose(v, best[k], rtol=0, atol=0) and fam[m] != "baseline" else s)
        cells += [_fmt(wide.loc[m, "time_fusion_s"], "time"), _fmt(wide.loc[m, "time_metrics_s"], "time")]
        lines.append("| " + " | ".join(cells) + " |")
    title = "Reduced resolution (Wald protocol)" if proto == "rr" else "Full resolution"
    arrows = ", ".join(f"{m} {'↑' if hib[m] else '↓'}" for m in metrics)
    if proto == "rr":
        how = (f"The {pair} pair degraded by the ratio {a['ratio']} with `geofuse.degrade.wald` (MS: {a['sensor']} "
               f"MTF-matched Gaussian + decimation; PAN: bicubic `imresize`): fused PAN {a['shape_pan'][0]} x "
               f"{a['shape_pan'][1]}, MS {' x '.join(map(str, a['shape_ms']))}; reference = the original MS. "
               f"Indexes by `geofuse.evaluate(protocol=\"reduced\", compat=\"toolbox\", dim_cut={a['dim_cut']})` "
               "(uint16 cast inside Q2n, blocks/windows of 32).")
    else:
        how = (f"The original {pair} pair (PAN {a['shape_pan'][0]} x {a['shape_pan'][1]}, MS "
               f"{' x '.join(map(str, a['shape_ms']))}), indexes by `geofuse.evaluate(protocol=\"full\", "
               f"sensor={a['sensor']!r})` (blocks of 32, the MS interpolated at the grids' phase).")
    missing = (f"\n\nNot in the metric registry when this table was made (left out): {', '.join(a['missing'])}."
               if a["missing"] else "")
    return (f"# {pair}: {title}\n\n{how} Methods in geofuse's default mode with sensor {a['sensor']!r}, "
            f"float32 output. {arrows}; best non-baseline value in bold. `fusion s` is the wall time of "
            "the whole fusion (estimate + apply, computed to memory), `metrics s` that of the indexes; "
            f"measured on a shared 2-core machine under load from other jobs (noisy: compare ratios)."
            f"{missing}\n\nGenerated by `python -m simulation tables --pair {pair}` "
            f"({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"{os.cpu_count()} CPUs).\n\n" + "\n".join(lines) + "\n")


def write(tables, pair: str, out: Path = OUT_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for proto, df in tables.items():
        csv_path, md_path = out / f"{pair}_{proto}.csv", out / f"{pair}_{proto}.md"
        df.to_csv(csv_path, index=False, float_format="%.6g")
        md_path.write_text(markdown(df, pair, proto))
        paths += [csv_path, md_path]
    return paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pair", action="append", required=True,
                   help="real pair name (IKONOS, GeoEye1, WV2, WV3) or .mat path; repeat for several")
    p.add_argument("--protocols", default="rr,fr", help="comma list of rr (reduced) and fr (full)")
    p.add_argument("--methods", default="", help="comma list of methods (default: every pansharpening method)")
    p.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default simulation/results/tables)")


def run(args: argparse.Namespace) -> int:
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        print(f"error: unknown protocol(s) {bad}; use rr and/or fr", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
    for pair in args.pair:
        tables = run_pair(pair, protocols, methods, log=lambda s: print(s, file=sys.stderr))
        label = next(iter(tables.values()))["pair"].iloc[0] if tables else pair
        for path in write(tables, str(label), args.out):
            print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from simulation.benchmarks.tables import main as _main  # package-relative imports

    sys.exit(_main())
