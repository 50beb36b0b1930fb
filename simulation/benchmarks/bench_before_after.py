"""Two committed revisions of the geofuse CLI, interleaved with GDAL's Brovey, at one size.

``python simulation/benchmarks/bench_before_after.py --before REV --after REV --methods gsa,brovey
--size 8192 --repeat 1``: each configuration is its own process under ``/usr/bin/time -v``
(same inputs, options and runner as ``bench_methods.py``); prints a Markdown table of the medians
(CPU seconds = user + sys, wall, peak RSS, the 1-minute load average when each run started) and
writes the raw runs to ``_work/before_after.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_pansharpen as bp  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--methods", default="brovey,gsa,mtf_glp_hpm,pracs")
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args(argv)
    pan_p, ms_p = bp.generate(args.size, args.seed, bp.WORK)
    revs = (("before", args.before), ("after", args.after))
    snaps = {label: bp.snapshot(rev, bp.WORK) for label, rev in revs}
    env = dict(os.environ, PYTHONWARNINGS="ignore", GEOFUSE_BENCH_DIR=str(HERE))
    runs = []
    out = bp.WORK / "ba_out.tif"
    for rep in range(args.repeat):
        configs = [("gdal", "brovey", None)]
        configs += [(lab, m, s) for m in args.methods.split(",") for lab, s in snaps.items()]
        for tool, method, snap in configs:
            if snap is None:
                cmd = bp.gdal_cmd(pan_p, ms_p, out, "GTiff", "none")
                e = env
            else:
                bp._SRC = snap
                e = dict(env, GEOFUSE_BENCH_SRC=str(snap))
                cmd = bp.geofuse_cmd(pan_p, ms_p, out, method, "GTiff", "none", 1024, "IKONOS")
            load = os.getloadavg()[0]
            m, rc, tail = bp.timed(cmd, env=e, timeout=1800)
            bp._rm(out)
            runs.append({"tool": tool, "method": method, "rep": rep, "rc": rc, "load1": load,
                         "wall_s": m.get("wall", float("nan")), "cpu_s": m.get("user", 0.0) + m.get("sys", 0.0),
                         "rss_mib": m.get("rss", float("nan")) / 1024.0, "error": "" if rc == 0 else tail[-300:]})
            print(json.dumps(runs[-1]), flush=True)
    (bp.WORK / "before_after.json").write_text(json.dumps(runs, indent=1))
    gd = [r for r in runs if r["tool"] == "gdal"]
    g_cpu = statistics.median(r["cpu_s"] for r in gd)
    print(f"\nGDAL Brovey: {statistics.median(r['wall_s'] for r in gd):.2f} s wall, {g_cpu:.2f} CPU-s\n")
    print("| method | revision | wall s | CPU s | CPU / GDAL CPU | peak RSS MiB | load1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        for lab in snaps:
            rs = [r for r in runs if r["tool"] == lab and r["method"] == method and r["rc"] == 0]
            if not rs:
                print(f"| `{method}` | {lab} | failed | | | | |")
                continue
            med = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "rss_mib", "load1")}
            print(f"| `{method}` | {lab} | {med['wall_s']:.2f} | {med['cpu_s']:.2f} | {med['cpu_s'] / g_cpu:.1f} | "
                  f"{med['rss_mib']:.0f} | {med['load1']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
