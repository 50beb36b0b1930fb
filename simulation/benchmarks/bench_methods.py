#!/usr/bin/env python3
"""Speed of every pansharpening method: geofuse against GDAL's Brovey and the reference toolbox's times.

Extends :mod:`bench_pansharpen` (same synthetic scenes, same ``/usr/bin/time -v`` runner, same GDAL
command) to the whole method registry, and writes ``simulation/benchmarks/METHODS_RESULTS.md``:

* **Processes** (per size, default PAN 1024² / MS 256²x4 and PAN 8192² / MS 2048²x4): every method as
  ``geofuse pansharpen MS PAN OUT.tif --method M --sensor IKONOS --driver GTiff`` and GDAL's
  ``gdal_pansharpen.py -threads ALL_CPUS -of GTiff`` (weighted Brovey) in the same run, each its own
  process under ``/usr/bin/time -v`` (wall, CPU, peak RSS), ``--repeat`` times with the repetitions
  interleaved; medians; ratio = geofuse wall / GDAL wall. A process includes Python's start-up and the
  imports (torch: ~1.5-3 s here), which dominate at 1024².
* **File to file in one process** (``--file-to-file`` size): GDAL's pansharpening VRT (what
  ``gdal_pansharpen.py`` builds) copied to GTiff by rasterio's GDAL, against ``pansharpen`` +
  ``write_raster``, both from the files to a tiled uncompressed GTiff inside one warm process: the
  comparison without the interpreter start-up, which a QGIS, Jupyter or dask-worker session pays once.
* **In-process** (``--inprocess`` size, default 1024): one child process reads the scene into memory
  once, then times ``geofuse.pansharpen(ms, pan, method).values`` (estimate + apply, whole graph) per
  method after one warm-up, median of ``--repeat``: the figure comparable to the toolbox's Octave times
  of SPEC section 11 (GSA 0.59 s, BDSD-PC 0.37 s, MTF-GLP-HPM 1.29 s, AWLP 1.08 s, PRACS 1.8 s, measured
  in-process on the same 2-core development machine).

Goals (issue 3; reported, not tested): every CS method at least as fast as GDAL's Brovey, every MRA
method within 3x of it.

Usage::

    python simulation/benchmarks/bench_methods.py --sizes 1024 --repeat 3                 # all methods
    python simulation/benchmarks/bench_methods.py --sizes 8192 --methods gsa,brovey,...   # a subset
    python simulation/benchmarks/bench_methods.py --from-runs simulation/benchmarks/_work/methods_runs.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_pansharpen as bp  # noqa: E402

RESULTS = HERE / "METHODS_RESULTS.md"
RUNS = bp.WORK / "methods_runs.json"

#: In-process times of the reference toolbox under Octave, PAN 1024² / MS 256²x4 (SPEC section 11).
TOOLBOX_1024 = {"gsa": 0.59, "bdsd_pc": 0.37, "mtf_glp_hpm": 1.29, "awlp": 1.08, "pracs": 1.8, "exp": 0.19}


def _families() -> dict[str, str]:
    from geofuse import registry

    return {s.name: s.family for s in registry.available("pansharpening")}


def inprocess_child(pan_p: str, ms_p: str, methods: list[str], repeat: int, sensor: str) -> list[dict]:
    """Time each method in this process on in-memory inputs (after one warm-up run)."""
    import warnings

    import geofuse
    from geofuse import io as gio

    warnings.simplefilter("ignore")
    ms = gio.open_raster(ms_p).load()
    pan = gio.open_raster(pan_p).load()
    out = []
    for m in methods:
        geofuse.pansharpen(ms, pan, m, sensor=sensor).values  # warm-up (imports, caches)
        ts, cs = [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            geofuse.pansharpen(ms, pan, m, sensor=sensor).values
            ts.append(time.perf_counter() - t)
            cs.append(time.process_time() - c)
        out.append({"method": m, "times": ts, "cpu": cs})
        print(f"  in-process {m:<14} median {statistics.median(ts):6.3f} s wall, {statistics.median(cs):6.3f} CPU-s",
              flush=True)
    return out


def gdal_vrt_xml(pan_p: str, ms_p: str, nbands: int) -> str:
    """The pansharpening VRT ``gdal_pansharpen.py`` builds (weighted Brovey, equal weights, its default
    resampling, all CPUs), to run GDAL's pansharpening inside this process through rasterio's GDAL."""
    bands = "".join(f"    <SpectralBand dstBand=\"{i + 1}\"><SourceFilename relativeToVRT=\"0\">{ms_p}"
                    f"</SourceFilename><SourceBand>{i + 1}</SourceBand></SpectralBand>\n" for i in range(nbands))
    return ("<VRTDataset subClass=\"VRTPansharpenedDataset\">\n  <PansharpeningOptions>\n"
            "    <NumThreads>ALL_CPUS</NumThreads>\n"
            f"    <PanchroBand><SourceFilename relativeToVRT=\"0\">{pan_p}</SourceFilename>"
            "<SourceBand>1</SourceBand></PanchroBand>\n" + bands + "  </PansharpeningOptions>\n</VRTDataset>\n")


def file_to_file_child(pan_p: str, ms_p: str, methods: list[str], repeat: int, sensor: str, chunks: int,
                       outdir: str) -> list[dict]:
    """File to file in one warm process: GDAL's pansharpening VRT copied to a tiled GTiff by rasterio's
    GDAL (the work of ``gdal_pansharpen.py`` without its start-up) and ``geofuse.pansharpen`` on the
    opened files written by ``write_raster(driver='GTiff', compress='none')``; the same tiled 512
    uncompressed output. Repetitions interleaved, after one warm-up of each configuration."""
    import warnings

    import rasterio
    import rasterio.shutil

    import geofuse
    from geofuse import io as gio

    warnings.simplefilter("ignore")
    with rasterio.open(ms_p) as src:
        nb = src.count
    vrt = Path(outdir) / "gdal_pansharpen.vrt"
    vrt.write_text(gdal_vrt_xml(str(Path(pan_p).resolve()), str(Path(ms_p).resolve()), nb))
    co = dict(tiled=True, blockxsize=bp.BLOCK, blockysize=bp.BLOCK, interleave="band", BIGTIFF="IF_SAFER")

    def gdal(out):
        rasterio.shutil.copy(str(vrt), str(out), driver="GTiff", **co)

    def fuse(m):
        def run(out):
            res = geofuse.pansharpen(gio.open_raster(ms_p), gio.open_raster(pan_p), m, sensor=sensor, chunks=chunks)
            gio.write_raster(res, out, driver="GTiff", compress="none")
        return run

    configs = [("gdal", "brovey", gdal)] + [("geofuse", m, fuse(m)) for m in methods]
    recs = {(t, m): {"tool": t, "method": m, "times": [], "cpu": []} for t, m, _ in configs}
    for rep in range(repeat + 1):  # rep 0: warm-up
        for tool, m, fn in configs:
            out = Path(outdir) / f"f2f_{tool}_{m}.tif"
            bp._rm(out)
            t, c = time.perf_counter(), time.process_time()
            fn(out)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            bp._rm(out)
            if rep:
                recs[(tool, m)]["times"].append(dt)
                recs[(tool, m)]["cpu"].append(dc)
            print(f"  file-to-file [{rep}/{repeat}] {tool:<8} {m:<14} {dt:6.2f} s wall {dc:6.2f} CPU-s "
                  f"{'(warm-up)' if not rep else ''}", flush=True)
    return list(recs.values())


def run_processes(n: int, methods: list[str], repeat: int, env: dict, seed: int, sensor: str, chunks: int,
                  runs: list[dict], save) -> None:
    pan_p, ms_p = bp.generate(n, seed, bp.WORK)
    outdir = bp.WORK / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    configs = [("gdal", "brovey"), ("startup", "geofuse methods")] + [("geofuse", m) for m in methods]
    for rep in range(repeat):
        for tool, method in configs:
            out = outdir / f"m_{tool}_{method}_{n}.tif"
            bp._rm(out)
            if tool == "startup":  # the CLI's start-up alone (Python, torch, geofuse and its registry)
                cmd = bp._geofuse_cmd() + ["methods"]
            else:
                cmd = (bp.gdal_cmd(pan_p, ms_p, out, "GTiff", "none") if tool == "gdal" else
                       bp.geofuse_cmd(pan_p, ms_p, out, method, "GTiff", "none", chunks, sensor))
            load = os.getloadavg()[0]
            try:
                m, rc, tail = bp.timed(cmd, env=env, timeout=1800)
            except subprocess.TimeoutExpired:
                m, rc, tail = {}, 124, "timeout"
            ok = rc == 0 and (out.exists() or tool == "startup")
            runs.append({"size": n, "tool": tool, "method": method, "rep": rep, "rc": 0 if ok else (rc or 1),
                         "wall": m.get("wall", math.nan), "cpu": m.get("user", math.nan) + m.get("sys", math.nan),
                         "rss_mib": m.get("rss", math.nan) / 1024.0, "load1": load, "code": bp.code_fingerprint(),
                         "error": "" if ok else tail[-300:]})
            r = runs[-1]
            print(f"  [{rep + 1}/{repeat}] {n} {tool:<8} {method:<14} wall {r['wall']:7.2f} s cpu {r['cpu']:6.1f} s "
                  f"RSS {r['rss_mib']:6.0f} MiB load {load:4.1f} {'ok' if ok else 'FAILED ' + r['error'][-120:]}",
                  flush=True)
            bp._rm(out)
            save()


def _med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def render(data: dict) -> str:
    fam = data.get("families") or {}
    runs, inproc, info = data["runs"], data.get("inprocess") or [], data["info"]
    lines = ["# Speed of every pansharpening method", "",
             f"_Generated by `simulation/benchmarks/bench_methods.py` on {info['date']} (geofuse "
             f"{info.get('source', 'working tree')}, commit {info['commit']}); arguments: "
             f"`{' '.join(data.get('args', []))}`._", "",
             f"**Machine**: {info['nproc']} CPUs ({info['cpu']}), {info['mem']} RAM; Python {info['python']}, "
             f"torch {info['torch']}, dask {info['dask']}; {info['gdal_cli']}. **The machine was shared with "
             "other jobs during the run** (the load average at the start of each run is in the CSV): absolute "
             "times are noisy, the ratios to GDAL (measured interleaved in the same run) less so.", "",
             "**Inputs**: `bench_pansharpen.py`'s synthetic scene, PAN N x N uint16, MS (N/4)² x 4 uint16, "
             "corner-aligned, tiled 512, in the page cache. **Processes**: `geofuse pansharpen MS PAN OUT.tif "
             "--method M --sensor IKONOS --chunks 1024 --driver GTiff` vs `gdal_pansharpen.py -threads ALL_CPUS "
             "-of GTiff` (weighted Brovey), same tiled 512 uncompressed GTiff output, each run its own process "
             "under `/usr/bin/time -v`, repetitions interleaved, **medians**. Ratio = geofuse wall / GDAL wall "
             "of the same size. Goals (issue 3): CS <= 1x GDAL Brovey, MRA <= 3x.", ""]
    sizes = sorted({r["size"] for r in runs})
    for n in sizes:
        rs = [r for r in runs if r["size"] == n]
        g = [r for r in rs if r["tool"] == "gdal" and r["rc"] == 0]
        gw, grss = _med([r["wall"] for r in g]), _med([r["rss_mib"] for r in g])
        gcpu = _med([r["cpu"] for r in g])
        st = [r for r in rs if r["tool"] == "startup" and r["rc"] == 0]
        st_line = (f" geofuse's start-up alone (`geofuse methods`: Python, torch, the registry): "
                   f"{_med([r['wall'] for r in st]):.2f} s wall, {_med([r['cpu'] for r in st]):.2f} CPU-s, "
                   f"{_med([r['rss_mib'] for r in st]):.0f} MiB." if st else "")
        reps = max((r["rep"] for r in rs), default=0) + 1
        lines += [f"## PAN {n}² / MS {n // 4}² x 4 (processes, median of {reps})", "",
                  f"GDAL Brovey: **{gw:.2f} s** wall, {gcpu:.2f} CPU-s, {grss:.0f} MiB peak RSS.{st_line} Median load "
                  f"average during the runs: {_med([r['load1'] for r in rs]):.1f} on {data['info']['nproc']} CPUs "
                  "(when it exceeds the CPU count, wall times mostly measure waiting: read the CPU columns).", "",
                  "| method | family | wall s | [min–max] | CPU s | wall ratio vs GDAL | CPU ratio vs GDAL | "
                  "goal (wall / CPU) | peak RSS MiB |",
                  "|---|---|---:|---|---:|---:|---:|---|---:|"]
        for m in dict.fromkeys(r["method"] for r in rs if r["tool"] == "geofuse"):
            ok = [r for r in rs if r["tool"] == "geofuse" and r["method"] == m and r["rc"] == 0]
            if not ok:
                lines.append(f"| `{m}` | {fam.get(m, '?')} | FAILED | | | | | | |")
                continue
            w, cpu = _med([r["wall"] for r in ok]), _med([r["cpu"] for r in ok])
            ratio, cratio = w / gw, cpu / gcpu
            f = fam.get(m, "?")
            limit = 1.0 if f == "CS" else (3.0 if f == "MRA" else math.nan)
            goal = "—" if math.isnan(limit) else (f"<= {limit:g}x: " + ("met" if ratio <= limit else "NOT met")
                                                  + " / " + ("met" if cratio <= limit else "NOT met"))
            lo, hi = min(r["wall"] for r in ok), max(r["wall"] for r in ok)
            lines.append(f"| `{m}` | {f} | {w:.2f} | [{lo:.2f}–{hi:.2f}] "
                         f"| {cpu:.1f} | {ratio:.2f} | {cratio:.1f} | {goal} | "
                         f"{_med([r['rss_mib'] for r in ok]):.0f} |")
        lines.append("")
    if inproc:
        n = data.get("inprocess_size", 1024)
        g = [r for r in runs if r["size"] == n and r["tool"] == "gdal" and r["rc"] == 0]
        gw = _med([r["wall"] for r in g])
        lines += [f"## PAN {n}² / MS {n // 4}² x 4 in-process (median of {len(inproc[0]['times'])}, after a warm-up)",
                  "", "`geofuse.pansharpen(ms, pan, M, sensor='IKONOS').values` on in-memory inputs: the fusion "
                  "alone (estimate + apply), no start-up, no I/O. Toolbox = the reference MATLAB toolbox under "
                  "Octave on the same kind of machine (SPEC §11; only the methods listed there). GDAL = the "
                  "whole `gdal_pansharpen.py` process of the table above (start-up and I/O included, so an upper "
                  "bound of its compute).", "",
                  "| method | family | geofuse wall s | geofuse CPU s | toolbox s (SPEC §11) | geofuse wall / toolbox "
                  "| geofuse wall / GDAL process wall | geofuse CPU / GDAL process CPU |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        gcpu = _med([r["cpu"] for r in g])
        for rec in inproc:
            m, t = rec["method"], _med(rec["times"])
            c = _med(rec.get("cpu", [math.nan]))
            tb = TOOLBOX_1024.get(m)
            lines.append((f"| `{m}` | {fam.get(m, '?')} | {t:.3f} | {c:.3f} | {tb if tb is not None else '—'} | "
                          f"{(t / tb) if tb else math.nan:.2f} | {t / gw:.2f} | {c / gcpu:.2f} |")
                         .replace("| nan |", "| — |"))
        lines.append("")
    f2f = data.get("file_to_file") or []
    if f2f:
        n = data.get("file_to_file_size")
        g = [r for r in f2f if r["tool"] == "gdal"][0]
        gw, gc = _med(g["times"]), _med(g["cpu"])
        lines += [f"## PAN {n}² / MS {n // 4}² x 4 file to file, in one warm process (median of "
                  f"{len(g['times'])}, after a warm-up)", "",
                  "The work of each tool without the interpreter start-up (which a QGIS, Jupyter or dask-worker "
                  "session pays once): GDAL = its pansharpening VRT (the one `gdal_pansharpen.py` builds: "
                  "weighted Brovey, all CPUs) copied to GTiff by rasterio's GDAL in this process; geofuse = "
                  "`pansharpen(open_raster(ms), open_raster(pan), M, chunks=1024)` then `write_raster(driver="
                  "'GTiff', compress='none')`. Same tiled 512 uncompressed output, repetitions interleaved.", "",
                  f"GDAL Brovey in-process: **{gw:.2f} s** wall, {gc:.2f} CPU-s.", "",
                  "| method | family | wall s | CPU s | wall ratio vs GDAL | CPU ratio vs GDAL | goal (wall / CPU) |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for rec in f2f:
            if rec["tool"] != "geofuse":
                continue
            m, w, c = rec["method"], _med(rec["times"]), _med(rec["cpu"])
            f = fam.get(m, "?")
            limit = 1.0 if f == "CS" else (3.0 if f == "MRA" else math.nan)
            goal = "—" if math.isnan(limit) else (f"<= {limit:g}x: " + ("met" if w / gw <= limit else "NOT met")
                                                  + " / " + ("met" if c / gc <= limit else "NOT met"))
            lines.append(f"| `{m}` | {f} | {w:.2f} | {c:.1f} | {w / gw:.2f} | {c / gc:.1f} | {goal} |")
        lines.append("")
    lines += ["<details><summary>raw runs (CSV)</summary>", "", "```csv",
              "size,tool,method,rep,rc,wall_s,cpu_s,rss_mib,load1,code"]
    for r in runs:
        lines.append(f"{r['size']},{r['tool']},{r['method']},{r['rep']},{r['rc']},{r['wall']:.3f},{r['cpu']:.2f},"
                     f"{r['rss_mib']:.1f},{r['load1']:.2f},{r['code']}")
    lines += ["```", "</details>", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1024", help="PAN sizes (comma separated)")
    ap.add_argument("--methods", default=None, help="comma list (default: every pansharpening method)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--inprocess", type=int, default=1024, help="size of the in-process timings (0: none)")
    ap.add_argument("--file-to-file", type=int, default=0,
                    help="size of the in-process file-to-file comparison with GDAL's pansharpening VRT (0: none)")
    ap.add_argument("--sensor", default="IKONOS")
    ap.add_argument("--chunks", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--rev", default=None, help="benchmark a committed revision (exported), as bench_pansharpen.py")
    ap.add_argument("--append", action="store_true", help="add to the saved runs instead of starting afresh")
    ap.add_argument("--from-runs", default=None, help="only re-render from a saved runs JSON")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        bp.use_source(os.environ.get("GEOFUSE_BENCH_SRC"))
        kw = json.loads(args.child)
        fn = file_to_file_child if kw.pop("kind", "") == "f2f" else inprocess_child
        res = fn(**{k: v for k, v in kw.items() if k != "out"})
        Path(kw["out"]).write_text(json.dumps(res))
        return 0
    if args.from_runs:
        data = json.loads(Path(args.from_runs).read_text())
        Path(args.results).write_text(render(data))
        print(f"wrote {args.results}")
        return 0

    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    info = bp.machine_info()
    info["commit"] = bp._git_commit()
    if args.rev:
        bp._SRC = bp.snapshot(args.rev, bp.WORK)
        env.update(GEOFUSE_BENCH_SRC=str(bp._SRC), GEOFUSE_BENCH_DIR=str(HERE))
        os.environ.update(GEOFUSE_BENCH_SRC=str(bp._SRC), GEOFUSE_BENCH_DIR=str(HERE))
        info["source"] = f"git {args.rev} = {bp._git_commit()} (exported)"
    methods = args.methods.split(",") if args.methods else bp.pansharpening_methods()
    data = {"info": info, "args": [], "runs": [], "inprocess": [], "families": _families()}
    if args.append and RUNS.exists():
        data = json.loads(RUNS.read_text())
        data["families"] = _families()
    data["args"] = data.get("args", []) + [" ".join(sys.argv[1:] if argv is None else argv)]

    def save():
        RUNS.write_text(json.dumps(data, indent=1))

    for n in [int(s) for s in args.sizes.split(",") if s]:
        print(f"== N = {n}", flush=True)
        run_processes(n, methods, args.repeat, env, args.seed, args.sensor, args.chunks, data["runs"], save)
    if args.inprocess:
        pan_p, ms_p = bp.generate(args.inprocess, args.seed, bp.WORK)
        out = bp.WORK / "inprocess.json"
        kw = {"pan_p": str(pan_p), "ms_p": str(ms_p), "methods": methods, "repeat": args.repeat,
              "sensor": args.sensor, "out": str(out)}
        print(f"== in-process, N = {args.inprocess}", flush=True)
        subprocess.run([sys.executable, __file__, "--_child", json.dumps(kw)], check=True, env=env)
        data["inprocess"] = json.loads(out.read_text())
        data["inprocess_size"] = args.inprocess
        save()
    if args.file_to_file:
        n = args.file_to_file
        pan_p, ms_p = bp.generate(n, args.seed, bp.WORK)
        out = bp.WORK / "file_to_file.json"
        outdir = bp.WORK / "out"
        outdir.mkdir(parents=True, exist_ok=True)
        kw = {"kind": "f2f", "pan_p": str(pan_p), "ms_p": str(ms_p), "methods": methods, "repeat": args.repeat,
              "sensor": args.sensor, "chunks": args.chunks, "outdir": str(outdir), "out": str(out)}
        print(f"== file to file in one process, N = {n}", flush=True)
        subprocess.run([sys.executable, __file__, "--_child", json.dumps(kw)], check=True, env=env)
        data["file_to_file"] = json.loads(out.read_text())
        data["file_to_file_size"] = n
        save()
    Path(args.results).write_text(render(data))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
