#!/usr/bin/env python3
"""Quality-metric benchmark: Q2n and HQNR at PAN scale on lazily generated dask arrays, and the whole
reduced-resolution table on 1024 x 1024 x 4.

What it does:

1. Each case runs in its own process under ``/usr/bin/time -v`` (wall "Elapsed" and "Maximum resident set
   size"); the child also reports its own compute time (graph build + ``compute``) and the time to merely
   generate and read its random inputs (``inputs``), so that the metric's own cost can be separated from the
   input generation. Inputs are ``dask.array`` random arrays (float32, 1024 x 1024 chunks), generated inside
   the graph chunk by chunk: nothing is ever materialised whole.
   * ``q2n``: ``geofuse.metrics.q2n(fused, ref)`` on N x N x 4 (default mode, 32 x 32 blocks);
   * ``hqnr``: ``geofuse.metrics.full.full_resolution(fused, ms, pan, metrics=("HQNR",))`` with the fused image
     N x N x 4, the MS (N/4) x (N/4) x 4, the PAN N x N (interp23tap of the MS, PAN degradation and
     re-interpolation, the 41 x 41 MTF filter of the fused image, Q and Q2n block statistics);
   * ``rr_table``: ``geofuse.evaluate(fused, ref, ratio=4)`` (all nine reduced-resolution indexes with
     per-band rows) on 1024 x 1024 x 4 in-memory numpy arrays.
2. Reports MEDIANS over ``--repeat`` runs, the cost per PAN pixel, and its ratio to the toolbox's per-pixel
   cost from SPEC section 11 (Octave on the 2-core development machine, PAN 1024^2: Q2n 2.27 s, HQNR 4.5 s).
3. Writes ``simulation/benchmarks/METRICS_RESULTS.md`` between ``<!-- bench:begin -->`` / ``<!-- bench:end -->``
   (text outside the markers is kept) and the raw runs to ``simulation/benchmarks/_work/metrics_runs.json``.

Usage::

    python simulation/benchmarks/bench_metrics.py                       # 4096, 8192, 16384; 3 repeats
    python simulation/benchmarks/bench_metrics.py --sizes 4096 --repeat 1
    python simulation/benchmarks/bench_metrics.py --child hqnr 4096     # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / "_work"
RESULTS = HERE / "METRICS_RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

#: SPEC section 11: the toolbox under Octave, PAN 1024^2 (seconds).
TOOLBOX_ANCHOR_S = {"q2n": 2.27, "hqnr": 4.5}
ANCHOR_PIXELS = 1024 * 1024
CHUNK = 1024


# --------------------------------------------------------------------------------------------------
# child
# --------------------------------------------------------------------------------------------------

def _inputs(case: str, n: int, chunk: int):
    import dask.array as da
    import numpy as np

    rng = da.random.default_rng(12345)
    if case == "q2n":
        ref = rng.random((4, n, n), dtype=np.float32, chunks=(4, chunk, chunk)) * 1800 + 100
        noise = rng.random((4, n, n), dtype=np.float32, chunks=(4, chunk, chunk)) * 40 - 20
        return (ref + noise, ref)
    if case == "hqnr":
        lr = chunk // 4
        ms = rng.random((4, n // 4, n // 4), dtype=np.float32, chunks=(4, lr, lr)) * 1800 + 100
        pan = rng.random((1, n, n), dtype=np.float32, chunks=(1, chunk, chunk)) * 1800 + 100
        fused = rng.random((4, n, n), dtype=np.float32, chunks=(4, chunk, chunk)) * 1800 + 100
        return (fused, ms, pan)
    raise SystemExit(f"unknown case {case!r}")


def child(case: str, n: int, chunk: int, tile: int | None = None, window: int | None = None) -> dict:
    import dask
    import numpy as np

    dask.config.set(scheduler="threads")
    out: dict = {"case": case, "n": n, "chunk": chunk, "tile": tile, "window": window, "threads": os.cpu_count()}
    if case == "rr_table":
        import geofuse

        rng = np.random.default_rng(0)
        ref = rng.uniform(100, 1900, (4, n, n)).astype(np.float32)
        fused = ref + rng.normal(0, 20, ref.shape).astype(np.float32)
        t0, c0 = time.perf_counter(), time.process_time()
        tab = geofuse.evaluate(fused, ref, ratio=4)
        out["compute_s"] = time.perf_counter() - t0
        out["compute_cpu_s"] = time.process_time() - c0
        out["rows"] = len(tab)
        out["value"] = float(tab.loc[tab.metric == "Q2n", "value"].iloc[0])
        return out
    from geofuse.metrics import q2n
    from geofuse.metrics.full import full_resolution

    # warm-up on a small case (thread pool, torch, FFT plans, caches) so that neither timing below pays it
    small = _inputs(case, 256, 256)
    (q2n(*small) if case == "q2n" else full_resolution(*small, sensor="IKONOS", metrics=("HQNR",))["HQNR"]).compute()
    arrays = _inputs(case, n, chunk)
    t0, c0 = time.perf_counter(), time.process_time()
    dask.compute(*[a.sum() for a in arrays])
    out["inputs_s"] = time.perf_counter() - t0
    out["inputs_cpu_s"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    if case == "q2n":
        value = q2n(*arrays)
    else:
        kw = {"chunks": tile} if tile else {}      # FR tile size (default: geofuse's)
        if window is not None:                    # FR super-window (default: geofuse's; 0: one graph)
            kw["window"] = window
        value = full_resolution(*arrays, sensor="IKONOS", metrics=("HQNR",), **kw)["HQNR"]
    out["build_s"] = time.perf_counter() - t0
    out["value"] = float(value.compute())
    out["compute_s"] = time.perf_counter() - t0
    out["compute_cpu_s"] = time.process_time() - c0   # CPU seconds of all threads (robust to machine load)
    return out


# --------------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------------

def _run(case: str, n: int, chunk: int, tile: int | None = None, window: int | None = None) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--child", case, str(n),
           "--chunk", str(chunk)] + (["--tile", str(tile)] if tile else []) + \
        (["--window", str(window)] if window is not None else [])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{case} {n} failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    res["peak_rss_mib"] = int(m.group(1)) / 1024 if m else float("nan")
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr)
    if m:
        parts = [float(x) for x in m.group(1).split(":")]
        res["process_wall_s"] = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    else:
        res["process_wall_s"] = wall
    res["load_before"] = load0
    res["load_after"] = os.getloadavg()[0]
    return res


def _median(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def _table(groups: dict[tuple[str, int], list[dict]]) -> str:
    lines = ["| case | PAN size | runs | compute wall s | inputs-only wall s | metric wall s | metric CPU s | "
             "peak RSS MiB | wall us/px | CPU us/px | toolbox us/px | speed-up wall | speed-up CPU | "
             "load avg before/after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (case, n), runs in groups.items():
        comp = _median(runs, "compute_s")
        inp = _median(runs, "inputs_s") if case != "rr_table" else 0.0
        cpu = _median(runs, "compute_cpu_s") - (_median(runs, "inputs_cpu_s") if case != "rr_table" else 0.0)
        wall = comp - inp
        px = n * n
        us, cus = wall / px * 1e6, cpu / px * 1e6
        anchor = TOOLBOX_ANCHOR_S.get(case)
        a_us = anchor / ANCHOR_PIXELS * 1e6 if anchor else float("nan")
        sp = (f"{a_us / us:.1f}x", f"{a_us / cus:.1f}x") if anchor else ("-", "-")
        loads = "; ".join(f"{r['load_before']:.1f}/{r['load_after']:.1f}" for r in runs)
        lines.append(f"| {case} | {n}² x 4 | {len(runs)} | {comp:.2f} | {inp:.2f} | {wall:.2f} | {cpu:.2f} | "
                     f"{_median(runs, 'peak_rss_mib'):.0f} | {us:.3f} | {cus:.3f} | "
                     f"{(f'{a_us:.3f}' if anchor else '-')} | {sp[0]} | {sp[1]} | {loads} |")
    return "\n".join(lines)


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO).stdout.strip()
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=2, metavar=("CASE", "N"))
    ap.add_argument("--chunk", type=int, default=CHUNK, help="input chunk size (PAN pixels)")
    ap.add_argument("--tile", type=int, default=None, help="full-resolution tile size (default: geofuse's, 512)")
    ap.add_argument("--window", type=int, default=None,
                    help="full-resolution super-window (PAN pixels; default: geofuse's, 2048; 0: one graph)")
    ap.add_argument("--sizes", default="4096,8192,16384")
    ap.add_argument("--cases", default="q2n,hqnr")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-largest", type=int, default=1, help="repeats for the largest size (slow)")
    ap.add_argument("--no-rr-table", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.chunk, args.tile, args.window)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    cases = args.cases.split(",")
    plan = []
    for n in sizes:
        reps = args.repeat_largest if n == max(sizes) and len(sizes) > 1 else args.repeat
        for r in range(reps):
            for case in cases:                       # interleave the cases
                plan.append((case, n))
    if not args.no_rr_table:
        plan += [("rr_table", 1024)] * args.repeat
    groups: dict[tuple[str, int], list[dict]] = {}
    for case, n in plan:
        res = _run(case, n, args.chunk, args.tile, args.window)
        print(json.dumps(res), flush=True)
        groups.setdefault((case, n), []).append(res)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "metrics_runs.json").write_text(json.dumps({f"{c} {n}": v for (c, n), v in groups.items()}, indent=1))
    header = (f"Run {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, geofuse {_git_rev()}, "
              f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, dask threaded "
              f"scheduler, chunks {args.chunk}^2. Medians of the runs; `load avg` is the 1-minute load average "
              "before/after each run (other jobs shared the machine). `metric` = compute minus the time (CPU time) "
              "of merely generating and reading the random inputs; CPU seconds are summed over threads.")
    body = header + "\n\n" + _table(groups)
    print(body)
    if not args.no_write:
        text = RESULTS.read_text() if RESULTS.exists() else f"# Metric benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN in text and END in text:
            text = text.split(BEGIN)[0] + BEGIN + "\n" + body + "\n" + END + text.split(END, 1)[1]
        else:
            text += f"\n{BEGIN}\n{body}\n{END}\n"
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
