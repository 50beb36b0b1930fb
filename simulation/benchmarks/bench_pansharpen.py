#!/usr/bin/env python3
"""Pansharpening benchmark: geofuse's CLI against GDAL's ``gdal_pansharpen.py`` (weighted Brovey).

What it does (see ``simulation/benchmarks/README.md``):

1. Generates, once, a synthetic scene per size N (cached under ``simulation/benchmarks/_work/``): a PAN of N x N
   uint16 and an MS of (N/4) x (N/4) x 4 uint16, corner-aligned (PAN 1 m, MS 4 m, same origin),
   EPSG:32633, tiled 512 x 512 GeoTIFFs. Content: rotated/warped parcels with class spectra (sharp
   edges), roads, a smooth multiplicative field and per-pixel noise; the MS is the 4 x 4 block mean of
   the same high-resolution bands. Seeded; written strip by strip (bounded memory).
2. Runs each tool as a separate process under ``/usr/bin/time -v`` (wall "Elapsed" and "Maximum
   resident set size"), ``--repeat`` times, the repetitions interleaved across tools, and reports
   MEDIANS.
3. Writes a Markdown table (and the CSV) into ``simulation/benchmarks/RESULTS.md`` between the markers
   ``<!-- bench:begin -->`` / ``<!-- bench:end -->`` (text outside them is kept), and the CSV to
   ``simulation/benchmarks/_work/results.csv``.

Output options are the same for both tools: tiled 512 x 512 GeoTIFF, band interleaved, the same
``COMPRESS`` (``--compress``, default ``none``: GDAL's default and the SPEC section 11 anchor). The
geofuse CLI writes a COG for ``*.tif`` (tiled stage + ``COPY`` to COG with overviews), so GDAL is run
twice: ``-of GTiff`` (the plain speed anchor) and ``-of COG`` with the options geofuse uses (like with
like). If the CLI grows a ``--driver`` option, geofuse is also run with ``--driver GTiff``.

``--breakdown METHOD`` additionally times the stages of one geofuse run in a child process (read,
estimate, apply, write GTiff, COG conversion) at the first size.

Usage::

    python simulation/benchmarks/bench_pansharpen.py                   # 8192 and 16384, 3 repeats (long)
    python simulation/benchmarks/bench_pansharpen.py --quick           # 2048, 1 repeat (sanity)
    python simulation/benchmarks/bench_pansharpen.py --sizes 8192 --methods gsa --breakdown gsa
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / "_work"
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
GEN_VERSION = 1  # bump when the generated scene changes (invalidates the cache)
RATIO = 4
BLOCK = 512
GIB = 1024 ** 3

# --------------------------------------------------------------------------------------------------
# scene generation


def _smooth_field(rng, n_hr: int, spacing: int):
    """Coarse N(0,1) grid (one value every ``spacing`` HR pixels) to be bilinearly interpolated."""
    import numpy as np

    g = n_hr // spacing + 3
    return rng.standard_normal((g, g)).astype(np.float32)


def _bilinear(grid, y, x, spacing: int):
    import numpy as np

    fy = y / spacing
    fx = x / spacing
    iy = np.floor(fy).astype(np.int64)
    ix = np.floor(fx).astype(np.int64)
    wy = (fy - iy).astype(np.float32)
    wx = (fx - ix).astype(np.float32)
    g00 = grid[iy, ix]
    g01 = grid[iy, ix + 1]
    g10 = grid[iy + 1, ix]
    g11 = grid[iy + 1, ix + 1]
    return (g00 * (1 - wx) + g01 * wx) * (1 - wy) + (g10 * (1 - wx) + g11 * wx) * wy


def _scene_strip(seed: int, n: int, row0: int, rows: int, tables):
    """HR reflectance-like DN for rows [row0, row0+rows) of the N x N scene: (4, rows, N) float32."""
    import numpy as np

    classes, smooth = tables
    y = np.arange(row0, row0 + rows, dtype=np.float32)[:, None]
    x = np.arange(n, dtype=np.float32)[None, :]
    # parcels: a rotated grid, warped by a slow sinusoid so that edges are not straight
    th = math.radians(17.0)
    warp = 25.0 * np.sin(x / 310.0) + 18.0 * np.cos(y / 270.0)
    u = x * math.cos(th) + y * math.sin(th) + warp
    v = -x * math.sin(th) + y * math.cos(th) - 0.5 * warp
    cell = 173.0
    iu = np.floor(u / cell).astype(np.int64)
    iv = np.floor(v / cell).astype(np.int64)
    h = (iu * 73856093) ^ (iv * 19349663) ^ (seed * 83492791)
    cls = (h % classes.shape[0]).astype(np.int64)
    bands = classes[cls]  # (rows, N, 4)
    # roads: thin bright lines along both parcel directions
    road = ((np.mod(u, 5 * cell) < 7.0) | (np.mod(v, 7 * cell) < 5.0))
    bands = np.where(road[..., None], np.float32([420.0, 460.0, 480.0, 520.0]), bands)
    # smooth multiplicative field (illumination / moisture)
    f = _bilinear(smooth, np.broadcast_to(y, (rows, n)), np.broadcast_to(x, (rows, n)), 256)
    bands = bands * (1.0 + 0.18 * f)[..., None]
    return np.ascontiguousarray(np.moveaxis(bands, -1, 0)).astype(np.float32)


def generate(n: int, seed: int, workdir: Path, compress: str = "none") -> tuple[Path, Path]:
    """Write (once) pan_N.tif and ms_N.tif; returns their paths."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    if n % (RATIO * BLOCK) and n >= RATIO * BLOCK:
        raise SystemExit(f"size {n} must be a multiple of {RATIO * BLOCK}")
    tag = f"{n}_s{seed}_v{GEN_VERSION}" + ("" if compress == "none" else f"_{compress}")
    d = workdir / "data"
    d.mkdir(parents=True, exist_ok=True)
    pan_p, ms_p = d / f"pan_{tag}.tif", d / f"ms_{tag}.tif"
    if pan_p.exists() and ms_p.exists():
        return pan_p, ms_p
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    classes = rng.uniform(150, 1400, size=(64, 4)).astype(np.float32)
    classes[:, 3] = rng.uniform(200, 2200, size=64)  # NIR: vegetation vs bare soil
    smooth = _smooth_field(rng, n, 256)
    tables = (classes, smooth)
    x0, y0 = 500000.0, 5000000.0
    m = n // RATIO
    common = dict(driver="GTiff", dtype="uint16", crs="EPSG:32633", tiled=True, blockxsize=min(BLOCK, n),
                  blockysize=min(BLOCK, n), interleave="band", BIGTIFF="IF_SAFER")
    if compress != "none":
        common["compress"] = compress
    lr_block = min(BLOCK, m)
    pan_prof = dict(common, width=n, height=n, count=1, transform=from_origin(x0, y0, 1.0, 1.0))
    ms_prof = dict(common, width=m, height=m, count=4, transform=from_origin(x0, y0, 4.0, 4.0),
                   blockxsize=lr_block, blockysize=lr_block)
    pan_tmp, ms_tmp = pan_p.with_suffix(".partial.tif"), ms_p.with_suffix(".partial.tif")
    hr_strip = min(BLOCK, n)  # HR rows per strip (PAN tiles are written whole)
    lr_rows = lr_block  # LR rows buffered before an MS write (whole MS tiles)
    pan_w = np.float32([0.12, 0.26, 0.30, 0.32])  # PAN as a weighted sum of the bands
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(pan_tmp, "w", **pan_prof) as pdst, \
            rasterio.open(ms_tmp, "w", **ms_prof) as mdst:
        buf = np.zeros((4, lr_rows, m), np.float32)
        filled = 0
        lr_row0 = 0
        for si, row0 in enumerate(range(0, n, hr_strip)):
            srng = np.random.default_rng([seed, si])
            b = _scene_strip(seed, n, row0, hr_strip, tables)
            # per-pixel texture
            b *= 1.0 + 0.03 * srng.standard_normal(b.shape, dtype=np.float32)
            pan = np.tensordot(pan_w, b, axes=1) + 4.0 * srng.standard_normal(b.shape[1:], dtype=np.float32)
            pdst.write(np.clip(np.rint(pan), 1, 65535).astype(np.uint16)[None],
                       window=((row0, row0 + hr_strip), (0, n)))
            lr = b.reshape(4, hr_strip // RATIO, RATIO, m, RATIO).mean(axis=(2, 4))
            lr += 2.0 * srng.standard_normal(lr.shape, dtype=np.float32)
            k = lr.shape[1]
            buf[:, filled:filled + k] = lr
            filled += k
            if filled == lr_rows or row0 + hr_strip >= n:
                mdst.write(np.clip(np.rint(buf[:, :filled]), 1, 65535).astype(np.uint16),
                           window=((lr_row0, lr_row0 + filled), (0, m)))
                lr_row0 += filled
                filled = 0
    os.replace(pan_tmp, pan_p)
    os.replace(ms_tmp, ms_p)
    print(f"  generated {pan_p.name} + {ms_p.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return pan_p, ms_p


# --------------------------------------------------------------------------------------------------
# running under /usr/bin/time -v


@dataclass
class Run:
    size: int
    tool: str  # "gdal" or "geofuse"
    method: str  # "brovey" (GDAL) or the geofuse method
    output: str  # "GTiff" or "COG"
    compress: str
    repeat: int
    wall_s: float = math.nan
    user_s: float = math.nan
    sys_s: float = math.nan
    rss_mib: float = math.nan
    out_mib: float = math.nan
    load1: float = math.nan  # 1-minute load average when the run started (other processes compete)
    code: str = ""  # fingerprint of geofuse/**/*.py when the run started (others may edit the tree)
    rc: int = 0
    error: str = ""


_TIME_RE = {
    "wall": re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)"),
    "rss": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
    "user": re.compile(r"User time \(seconds\): ([\d.]+)"),
    "sys": re.compile(r"System time \(seconds\): ([\d.]+)"),
}


def _parse_elapsed(s: str) -> float:
    parts = [float(p) for p in s.split(":")]
    secs = 0.0
    for p in parts:
        secs = secs * 60 + p
    return secs


def timed(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> tuple[dict, int, str]:
    """Run ``cmd`` under GNU time -v; returns (measures, returncode, stderr tail)."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, timeout=timeout)
    err = p.stderr
    m = {}
    for k, rx in _TIME_RE.items():
        hit = rx.search(err)
        if hit:
            m[k] = _parse_elapsed(hit.group(1)) if k == "wall" else float(hit.group(1))
    tail = err.split("\tCommand being timed:")[0].strip()[-1500:]
    return m, p.returncode, tail


_SRC = REPO  # where the benchmarked geofuse package lives (a snapshot with --rev)


def code_fingerprint() -> str:
    """Short hash of the library sources: the editable install may change under a long run."""
    h = hashlib.sha1()
    for f in sorted((_SRC / "geofuse").rglob("*.py")):
        h.update(str(f.relative_to(_SRC)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def _git_commit() -> str:
    if _SRC != REPO:
        return _SRC.name.split("-", 1)[1]
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def snapshot(rev: str, workdir: Path) -> Path:
    """Export the ``geofuse`` package at git ``rev`` to ``workdir/snap-<commit>`` (benchmark a commit, not a
    working tree that other people are editing); child processes import it through PYTHONPATH."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True,
                            check=True).stdout.strip()
    dest = workdir / f"snap-{commit}"
    if not (dest / "geofuse").is_dir():
        tmp = workdir / f".snap-{commit}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        arch = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, "geofuse"],
                              capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch, check=True)
        # byte-compile like an installed package would be (PYTHONDONTWRITEBYTECODE may be set here, and
        # compiling geofuse's sources costs about 0.5 s of every run otherwise)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp / "geofuse")], check=True)
        os.replace(tmp, dest)
    elif not any((dest / "geofuse").glob("__pycache__/*.pyc")):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest / "geofuse")], check=True)
    return dest


def _geofuse_bin() -> str:
    cand = Path(sys.executable).parent / "geofuse"
    return str(cand) if cand.exists() else (shutil.which("geofuse") or "geofuse")


def _geofuse_cmd() -> list[str]:
    """The geofuse CLI: the installed entry point, or the --rev snapshot through a small bootstrap."""
    if _SRC == REPO:
        return [_geofuse_bin()]
    return [sys.executable, "-c", _BOOT]


def _cli_has_driver() -> bool:
    p = subprocess.run(_geofuse_cmd() + ["pansharpen", "--help"], capture_output=True, text=True, env=_env())
    return "--driver" in p.stdout


def pansharpening_methods() -> list[str]:
    p = subprocess.run(_geofuse_cmd() + ["methods", "--json"], capture_output=True, text=True, check=True,
                       env=_env())
    return [m["name"] for m in json.loads(p.stdout) if m.get("scenario", "pansharpening") == "pansharpening"]


def _env() -> dict:
    env = dict(os.environ)
    if _SRC != REPO:
        env["GEOFUSE_BENCH_SRC"] = str(_SRC)
    return env


def use_source(src: str | None) -> None:
    """Import geofuse from ``src`` (a --rev snapshot) rather than from the editable install.

    The editable install's import hook comes before ``sys.path``, so PYTHONPATH alone does not win."""
    if not src:
        return
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                        and "editable" not in type(f).__module__ and "editable" not in repr(f)]
    sys.path.insert(0, src)


_BOOT = ("import os, sys; sys.path.insert(0, os.environ['GEOFUSE_BENCH_DIR']); import bench_pansharpen as b; "
         "b.use_source(os.environ.get('GEOFUSE_BENCH_SRC')); from geofuse.cli import main; "
         "sys.argv[0] = 'geofuse'; sys.exit(main(sys.argv[1:]))")


def gdal_cmd(pan: Path, ms: Path, out: Path, output: str, compress: str) -> list[str]:
    cmd = ["gdal_pansharpen.py", "-q", "-threads", "ALL_CPUS", "-of", output]
    c = compress.upper()
    if output == "GTiff":
        co = ["TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "INTERLEAVE=BAND", f"COMPRESS={c}",
              "BIGTIFF=IF_SAFER"]
    else:  # the options geofuse.io uses for its COG conversion
        co = [f"BLOCKSIZE={BLOCK}", f"COMPRESS={c}", "OVERVIEWS=AUTO", "RESAMPLING=AVERAGE",
              "NUM_THREADS=ALL_CPUS", "BIGTIFF=IF_SAFER"]
    for o in co:
        cmd += ["-co", o]
    return cmd + [str(pan), str(ms), str(out)]


def geofuse_cmd(pan: Path, ms: Path, out: Path, method: str, output: str, compress: str, chunks: int,
                sensor: str) -> list[str]:
    cmd = _geofuse_cmd() + ["pansharpen", str(ms), str(pan), str(out), "--method", method, "--sensor", sensor,
           "--chunks", str(chunks), "--compress", compress, "--no-progress", "--overwrite"]
    if output == "GTiff":
        cmd += ["--driver", "GTiff"]
    return cmd


def _rm(p: Path) -> None:
    for q in p.parent.glob(p.name + "*"):
        q.unlink(missing_ok=True)
    for q in p.parent.glob("." + p.name + ".partial-*"):
        q.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# reporting


def _med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def summarise(runs: list[Run]) -> list[dict]:
    keys = []
    for r in runs:
        k = (r.size, r.tool, r.method, r.output, r.compress)
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        rs = [r for r in runs if (r.size, r.tool, r.method, r.output, r.compress) == k]
        ok = [r for r in rs if r.rc == 0]
        rows.append({
            "size": k[0], "tool": k[1], "method": k[2], "output": k[3], "compress": k[4], "n": len(ok),
            "failed": len(rs) - len(ok),
            "wall_s": _med([r.wall_s for r in ok]), "wall_min_s": min((r.wall_s for r in ok), default=math.nan),
            "wall_max_s": max((r.wall_s for r in ok), default=math.nan),
            "cpu_s": _med([r.user_s + r.sys_s for r in ok]),
            "rss_mib": _med([r.rss_mib for r in ok]), "rss_max_mib": max((r.rss_mib for r in ok), default=math.nan),
            "out_mib": _med([r.out_mib for r in ok]), "load1": _med([r.load1 for r in rs]),
            "code": "+".join(sorted({r.code for r in rs})),
            "error": next((r.error for r in rs if r.rc != 0), ""),
        })
    # ratios: to GDAL with the same output format (like with like) and to GDAL's plain GTiff (anchor)
    for row in rows:
        same = [g for g in rows if g["tool"] == "gdal" and g["size"] == row["size"]
                and g["compress"] == row["compress"]]
        like = next((g for g in same if g["output"] == row["output"]), None)
        anchor = next((g for g in same if g["output"] == "GTiff"), None)
        row["ratio_like"] = row["wall_s"] / like["wall_s"] if like else math.nan
        row["ratio_gtiff"] = row["wall_s"] / anchor["wall_s"] if anchor else math.nan
    return rows


def _f(x, nd=2):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def machine_info() -> dict:
    import dask
    import numpy as np
    import rasterio
    import torch
    import xarray

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 ** 2:.1f} GiB"
    except (OSError, AttributeError):
        pass
    gdal_cli = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        import geofuse

        gv = geofuse.__version__
    except Exception:  # pragma: no cover
        gv = "?"
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(), "cpu": cpu,
            "mem": mem, "python": platform.python_version(), "torch": torch.__version__, "dask": dask.__version__,
            "xarray": xarray.__version__, "numpy": np.__version__, "rasterio": rasterio.__version__,
            "gdal_rasterio": rasterio.__gdal_version__, "gdal_cli": gdal_cli, "geofuse": gv, "commit": commit,
            "kernel": platform.release()}


def render(rows: list[dict], info: dict, args, breakdown: list[dict] | None) -> str:
    out = io.StringIO()
    w = out.write
    w(f"{BEGIN}\n")
    w(f"_Generated by `simulation/benchmarks/bench_pansharpen.py` on {info['date']} (geofuse {info['geofuse']}, "
      f"{info.get('source', 'working tree')}, commit {info['commit']}); arguments: `{' '.join(args.argv)}`._\n\n")
    w("**Machine**: " + f"{info['nproc']} CPUs ({info['cpu']}), {info['mem']} RAM, Linux {info['kernel']}; "
      f"Python {info['python']}, torch {info['torch']}, dask {info['dask']}, xarray {info['xarray']}, "
      f"numpy {info['numpy']}, rasterio {info['rasterio']} (GDAL {info['gdal_rasterio']}); "
      f"gdal_pansharpen.py from {info['gdal_cli']}.\n\n")
    w("**Inputs**: synthetic scene (parcels with sharp edges, roads, smooth field, noise), PAN N x N uint16 "
      "1 m, MS (N/4) x (N/4) x 4 uint16 4 m, corner-aligned, EPSG:32633, tiled 512, uncompressed, in the "
      "page cache (warm).  \n")
    w(f"**Outputs**: tiled 512 GeoTIFF, band interleaved, COMPRESS as in the table, written to local disk. "
      f"GDAL: `gdal_pansharpen.py -threads ALL_CPUS` (weighted Brovey) with `-of GTiff` and with `-of COG` "
      f"(geofuse's COG options: OVERVIEWS=AUTO, RESAMPLING=AVERAGE, NUM_THREADS=ALL_CPUS). geofuse: "
      f"`geofuse pansharpen MS PAN OUT.tif --method M --sensor {args.sensor} --chunks {args.chunks}` (the CLI "
      f"writes a COG for .tif).  \n")
    w(f"Each configuration ran {args.repeat}x as its own process under `/usr/bin/time -v`, repetitions "
      f"interleaved; **medians** (wall min–max in brackets). Ratio = geofuse wall / GDAL wall, against GDAL "
      f"with the same output format (like with like) and against GDAL's plain GTiff (the SPEC §11 anchor).\n\n")
    vers = info.get("versions") or {}
    if len(vers) > 1:
        w("**WARNING: the library sources changed during this run** (code fingerprint -> commit: "
          + ", ".join(f"`{k}` -> {v}" for k, v in vers.items())
          + "); rows whose `code` column lists several fingerprints mix versions.\n\n")
    elif vers:
        k, v = next(iter(vers.items()))
        w(f"Library sources unchanged during the run (fingerprint `{k}`, commit {v}).\n\n")
    w("| size | tool | method | output | compress | wall s (median) | [min–max] | CPU s | "
      "ratio vs GDAL same format | ratio vs GDAL GTiff | peak RSS MiB (median) | output MiB |\n")
    w("|---:|---|---|---|---|---:|---|---:|---:|---:|---:|---:|\n")
    for r in rows:
        wall = _f(r["wall_s"]) if r["n"] else f"FAILED ({r['error'][:60]})"
        w(f"| {r['size']}² | {r['tool']} | {r['method']} | {r['output']} | {r['compress']} | {wall} | "
          f"[{_f(r['wall_min_s'])}–{_f(r['wall_max_s'])}] | {_f(r['cpu_s'], 1)} | "
          f"{_f(r['ratio_like']) if r['tool'] != 'gdal' or r['output'] != 'GTiff' else '1.00'} | "
          f"{_f(r['ratio_gtiff'])} | {_f(r['rss_mib'], 0)} | {_f(r['out_mib'], 0)} |\n")
    w("\n")
    # targets
    w("**Targets** (issue): gsa within 1.5x GDAL's wall time; peak RSS <= 1 GiB; RSS not growing with the "
      "scene size.\n\n")
    sizes = sorted({r["size"] for r in rows})
    for comp in sorted({r["compress"] for r in rows}):
        for r in rows:
            if r["tool"] != "geofuse" or r["compress"] != comp or not r["n"]:
                continue
            if r["method"] == "gsa":
                ok = r["ratio_like"] <= 1.5
                w(f"- gsa {r['size']}² {r['output']} {comp}: {_f(r['ratio_like'])}x GDAL (same format), "
                  f"{_f(r['ratio_gtiff'])}x GDAL GTiff -> {'MET' if ok else 'NOT MET'} (like with like)\n")
        for m in sorted({r["method"] for r in rows if r["tool"] == "geofuse"}):
            rr = [r for r in rows if r["tool"] == "geofuse" and r["method"] == m and r["compress"] == comp
                  and r["n"]]
            if not rr:
                continue
            peak = max(r["rss_mib"] for r in rr)
            per = ", ".join(f"{r['size']}²: {r['rss_mib']:.0f} MiB" for r in rr)
            s = f"- {m} ({comp}): peak RSS {per}"
            s += f" -> <= 1 GiB {'MET' if peak <= 1024 else 'NOT MET'}"
            if len(sizes) > 1:
                a = next((r for r in rr if r["size"] == sizes[0]), None)
                b = next((r for r in rr if r["size"] == sizes[-1]), None)
                if a and b:
                    g = b["rss_mib"] / a["rss_mib"]
                    s += (f"; growth {sizes[0]}²->{sizes[-1]}² = {g:.2f}x "
                          f"({'flat' if g <= 1.15 else 'GROWS'})")
            w(s + "\n")
    w("\n")
    if breakdown:
        w("### Stage breakdown (in-process, one run each, seconds)\n\n")
        w("| size | method | stage | wall s | peak RSS MiB (process so far) | note |\n|---:|---|---|---:|---:|---|\n")
        for b in breakdown:
            w(f"| {b['size']}² | {b['method']} | {b['stage']} | {_f(b['wall_s'])} | {_f(b['rss_mib'], 0)} | "
              f"{b.get('note', '')} |\n")
        w("\n")
    w("<details><summary>CSV (medians)</summary>\n\n```csv\n")
    cols = ["size", "tool", "method", "output", "compress", "n", "failed", "wall_s", "wall_min_s", "wall_max_s",
            "cpu_s", "ratio_like", "ratio_gtiff", "rss_mib", "rss_max_mib", "out_mib", "load1", "code"]
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(cols)
    for r in rows:
        wr.writerow([(round(r[c], 3) if isinstance(r[c], float) else r[c]) for c in cols])
    w("```\n</details>\n")
    w(f"{END}\n")
    return out.getvalue()


def write_results(block: str, path: Path) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        pre, rest = old.split(BEGIN, 1)
        post = rest.split(END, 1)[1].lstrip("\n")
        text = pre + block + ("\n" + post if post else "")
    else:
        text = ("# Benchmark results\n\nSee `simulation/benchmarks/README.md` for what is measured and how.\n\n"
                + block + old)
    path.write_text(text)


# --------------------------------------------------------------------------------------------------
# stage breakdown (child process)


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Null:
    """A dask.array.store target that discards what it is given."""

    def __setitem__(self, key, value):
        pass


def breakdown_child(pan_p: str, ms_p: str, method: str, size: int, chunks: int, sensor: str, compress: str,
                    outdir: str) -> list[dict]:
    import dask
    import dask.array as da
    import numpy as np

    from geofuse import engine, registry
    from geofuse import io as gio
    from geofuse.api import pansharpen

    res = []

    def rec(stage, t, note=""):
        res.append({"size": size, "method": method, "stage": stage, "wall_s": t, "rss_mib": _rss_mib(),
                    "note": note})
        print(f"    {stage:<44} {t:7.2f} s  (peak RSS so far {_rss_mib():.0f} MiB)", flush=True)

    def pool():
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(os.cpu_count() or 2)

    def compute(*xs):
        with pool() as p:
            return dask.compute(*xs, scheduler="threads", pool=p)

    def store(x):
        with pool() as p:
            da.store(x, _Null(), lock=False, scheduler="threads", pool=p)

    t0 = time.perf_counter()
    ms = gio.open_raster(ms_p, chunks=chunks // RATIO)
    pan = gio.open_raster(pan_p, chunks=chunks)
    out = pansharpen(ms, pan, method, sensor=sensor, chunks=chunks)
    rec("open + build graph", time.perf_counter() - t0)

    t0 = time.perf_counter()
    compute(pan.data.sum(dtype="u8"), ms.data.sum(dtype="u8"))
    rec("read inputs once (sum of raw uint16)", time.perf_counter() - t0, "the I/O floor of one pass")

    # the estimate alone
    spec = registry.get(method)
    p = spec.resolve({})
    from geofuse.grid import fit_grids
    from geofuse.sensors import get as get_sensor

    grid = fit_grids(pan, ms)
    sens = get_sensor(sensor, ms.sizes["band"])
    prep = engine.prepare(ms, pan, grid, halo_hr=spec.halo(p, grid.ratio), sensor=sens, chunks=chunks)
    est_val = {}
    if spec.estimate is not None:
        t0 = time.perf_counter()
        est = spec.estimate(prep, p)
        keys = list(est)
        vals = compute(*[est[k] for k in keys])
        est_val = dict(zip(keys, (np.asarray(v) if not isinstance(v, (int, float)) else v for v in vals)))
        rec("estimate (global reductions)", time.perf_counter() - t0, "reads PAN + MS, upsamples the MS")
    else:
        rec("estimate (global reductions)", 0.0, "method has no estimate")

    # apply with the estimate already known (the second pass over the inputs)
    t0 = time.perf_counter()
    try:  # engines that clone the input reads for the per-block pass
        fused = prep.tile_map(spec.apply, bands=prep.ms_lr.shape[0], params=p, est=est_val or None, source="apply")
    except TypeError:
        fused = prep.tile_map(spec.apply, bands=prep.ms_lr.shape[0], params=p, est=est_val or None)
    fused = engine.to_output_dtype(fused, np.dtype("uint16"), prep.valid_hr, None)
    store(fused)
    rec("apply + cast, estimate known (no write)", time.perf_counter() - t0, "2nd read of the inputs")

    # estimate + apply as one graph (what the CLI computes), discarded
    t0 = time.perf_counter()
    store(out.data)
    rec("estimate + apply in one graph (no write)", time.perf_counter() - t0, "what write_raster computes")

    od = Path(outdir)
    od.mkdir(parents=True, exist_ok=True)
    for driver in ("GTiff", "COG"):
        dst = od / f"bd_{method}_{driver}.tif"
        _rm(dst)
        t0 = time.perf_counter()
        gio.write_raster(out, dst, driver=driver, compress=compress, overwrite=True)
        rec(f"end-to-end write_raster driver={driver} ({compress})", time.perf_counter() - t0)
        if driver == "GTiff":
            cog = od / f"bd_{method}_conv.tif"
            _rm(cog)
            t0 = time.perf_counter()
            gio._write_cog(dst, cog, compress, BLOCK)
            rec(f"COG conversion of that GTiff alone ({compress})", time.perf_counter() - t0,
                "rasterio.shutil.copy(driver=COG)")
            _rm(cog)
        _rm(dst)
    return res


# --------------------------------------------------------------------------------------------------
# main


def main(argv=None) -> int:
    global _SRC
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8192,16384", help="PAN sizes N (comma separated; multiples of 2048)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="N=2048, 1 repeat: a sanity run")
    ap.add_argument("--methods", default=None, help="geofuse methods (default: every pansharpening method)")
    ap.add_argument("--compress", default="none",
                    help="output COMPRESS for both tools, comma separated (e.g. none,deflate)")
    ap.add_argument("--outputs", default="GTiff,COG", help="GDAL output formats to run (GTiff,COG)")
    ap.add_argument("--chunks", type=int, default=1024)
    ap.add_argument("--sensor", default="IKONOS")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--no-gdal", action="store_true")
    ap.add_argument("--breakdown", default=None, metavar="METHOD",
                    help="also time the stages of one geofuse run of METHOD at the first size")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per-run timeout in seconds")
    ap.add_argument("--rev", default=None,
                    help="benchmark the geofuse package of this git revision (e.g. HEAD), exported to the workdir, "
                         "instead of the working tree")
    ap.add_argument("--workdir", default=str(WORK))
    ap.add_argument("--results", default=str(RESULTS), help="Markdown file to update ('' to skip)")
    ap.add_argument("--from-runs", default=None, metavar="RUNS_JSON",
                    help="only re-render the report from a saved runs.json (e.g. of an interrupted run)")
    ap.add_argument("--_breakdown-child", dest="bd_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    if args.bd_child:
        use_source(os.environ.get("GEOFUSE_BENCH_SRC"))
        kw = json.loads(args.bd_child)
        res = breakdown_child(**kw)
        Path(kw["outdir"], "breakdown.json").write_text(json.dumps(res))
        return 0

    if args.quick:
        args.sizes, args.repeat = "2048", 1
    if args.from_runs:
        saved = json.loads(Path(args.from_runs).read_text())
        runs = [Run(**r) for r in saved["runs"]] if isinstance(saved, dict) else [Run(**r) for r in saved]
        info = saved.get("info") if isinstance(saved, dict) else None
        info = info or machine_info()
        info["versions"] = {r.code: info.get("commit", "?") for r in runs}
        args.repeat = max(r.repeat for r in runs) + 1
        if isinstance(saved, dict) and saved.get("args"):
            args.argv = saved["args"] + ["(re-rendered with --from-runs)"]
        block = render(summarise(runs), info, args, saved.get("breakdown") if isinstance(saved, dict) else None)
        print(block)
        if args.results:
            write_results(block, Path(args.results))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    comps = [c.strip().lower() for c in args.compress.split(",") if c.strip()]
    work = Path(args.workdir)
    outdir = work / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    if args.rev:
        _SRC = snapshot(args.rev, work)
        env.update(GEOFUSE_BENCH_SRC=str(_SRC), GEOFUSE_BENCH_DIR=str(HERE))
        os.environ.update(GEOFUSE_BENCH_SRC=str(_SRC), GEOFUSE_BENCH_DIR=str(HERE))
        chk = subprocess.run([sys.executable, "-c", _BOOT.split("from geofuse.cli")[0]
                              + "import geofuse; print(geofuse.__file__)"], env=env,
                             capture_output=True, text=True).stdout.strip()
        if not chk.startswith(str(_SRC)):
            print(f"the snapshot is not imported first ({chk})", file=sys.stderr)
            return 2
        print(f"benchmarking geofuse from {_SRC}", flush=True)
    methods = args.methods.split(",") if args.methods else pansharpening_methods()
    gdal_outputs = [o for o in args.outputs.split(",") if o]
    geo_outputs = ["COG"] + (["GTiff"] if _cli_has_driver() else [])
    if shutil.which("gdal_pansharpen.py") is None and not args.no_gdal:
        print("gdal_pansharpen.py not found (apt-get install gdal-bin python3-gdal); use --no-gdal", file=sys.stderr)
        return 2
    if not Path("/usr/bin/time").exists():
        print("/usr/bin/time (GNU time) not found (apt-get install time)", file=sys.stderr)
        return 2

    info = machine_info()
    info["source"] = f"git {args.rev} = {_git_commit()} (exported)" if args.rev else "working tree"
    info["commit"] = _git_commit()
    print(f"machine: {info['nproc']} CPUs {info['cpu']}, {info['mem']}; torch {info['torch']}, dask {info['dask']}, "
          f"{info['gdal_cli']}", flush=True)
    runs: list[Run] = []
    versions: dict[str, str] = {}  # code fingerprint -> git commit when first seen
    csv_path = work / "results.csv"
    runs_path = work / "runs.json"
    for n in sizes:
        print(f"== N = {n}", flush=True)
        pan_p, ms_p = generate(n, args.seed, work)
        configs = []
        for comp in comps:
            if not args.no_gdal:
                configs += [("gdal", "brovey", o, comp) for o in gdal_outputs]
            configs += [("geofuse", m, o, comp) for m in methods for o in geo_outputs]
        for rep in range(args.repeat):
            for tool, method, output, comp in configs:
                out = outdir / f"{tool}_{method}_{output}_{comp}_{n}.tif"
                _rm(out)
                cmd = (gdal_cmd(pan_p, ms_p, out, output, comp) if tool == "gdal" else
                       geofuse_cmd(pan_p, ms_p, out, method, output, comp, args.chunks, args.sensor))
                r = Run(n, tool, method, output, comp, rep, load1=os.getloadavg()[0], code=code_fingerprint())
                versions.setdefault(r.code, _git_commit())
                try:
                    m, rc, tail = timed(cmd, env=env, timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    m, rc, tail = {}, 124, f"timeout after {args.timeout} s"
                r.rc = rc
                r.wall_s, r.user_s, r.sys_s = m.get("wall", math.nan), m.get("user", math.nan), m.get("sys", math.nan)
                r.rss_mib = m.get("rss", math.nan) / 1024.0
                if rc == 0 and out.exists():
                    r.out_mib = out.stat().st_size / 2 ** 20
                elif rc == 0:
                    r.rc, r.error = 1, "no output file"
                else:
                    r.error = tail.replace("\n", " ")[-300:]
                runs.append(r)
                status = "ok" if r.rc == 0 else f"FAILED rc={r.rc}: {r.error[-200:]}"
                print(f"  [{rep + 1}/{args.repeat}] {tool:<8} {method:<12} {output:<5} {comp:<8} "
                      f"wall {r.wall_s:7.2f} s  cpu {r.user_s + r.sys_s:7.1f} s  RSS {r.rss_mib:7.0f} MiB  "
                      f"load {r.load1:4.1f}  {status}",
                      flush=True)
                _rm(out)
                runs_path.write_text(json.dumps({"info": dict(info, versions=versions), "args": args.argv,
                                                 "runs": [asdict(x) for x in runs]}, indent=1))

    rows = summarise(runs)
    with open(csv_path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)

    breakdown = None
    if args.breakdown:
        n = sizes[0]
        pan_p, ms_p = generate(n, args.seed, work)
        print(f"== stage breakdown: {args.breakdown} at N = {n}", flush=True)
        kw = dict(pan_p=str(pan_p), ms_p=str(ms_p), method=args.breakdown, size=n, chunks=args.chunks,
                  sensor=args.sensor, compress=comps[0], outdir=str(outdir / "breakdown"))
        subprocess.run([sys.executable, __file__, "--_breakdown-child", json.dumps(kw)], check=True, env=env)
        breakdown = json.loads((outdir / "breakdown" / "breakdown.json").read_text())
        runs_path.write_text(json.dumps({"info": dict(info, versions=versions), "args": args.argv,
                                         "runs": [asdict(x) for x in runs], "breakdown": breakdown}, indent=1))

    info["versions"] = versions
    block = render(rows, info, args, breakdown)
    print(block)
    if args.results:
        write_results(block, Path(args.results))
        print(f"updated {args.results}; CSV in {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
