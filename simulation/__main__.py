"""Command line of the simulation package: ``python -m simulation <subcommand> ...``.

Subcommands are registered in :data:`SUBCOMMANDS` (name -> (add_arguments, run)); adding one is one
``add_arguments(parser)`` function, one ``run(args) -> int`` function and one dictionary entry.

``scene``
    ``python -m simulation scene --size 512 --seed 0 --sensor IKONOS --out DIR`` writes
    ``DIR/pan.tif``, ``DIR/ms.tif`` and ``DIR/truth.tif`` (GeoTIFF) and prints their paths.

``wald``
    ``python -m simulation wald --source synthetic|IKONOS|GeoEye1|WV2|WV3|<pair.mat>|<ms.tif>
    [--pan pan.tif] [--size 512 --seed 0] --out DIR`` builds the Wald-protocol reduced-resolution dataset
    (``ms_lr.tif``, ``pan_lr.tif``, ``reference.tif``, ``dataset.json``; :mod:`simulation.wald`) from a
    synthetic scene, a real ``.mat`` pair (by name, from ``../shared/data/pansharpening``) or a pair of
    GeoTIFFs, and prints the paths.

``tables``
    ``python -m simulation tables --pair IKONOS [--pair WV2 ...] [--protocols rr,fr]`` writes the
    reduced-resolution (Q2n, Q, SAM, ERGAS, SCC) and full-resolution (D_lambda, D_s, QNR, HQNR) tables of
    every pansharpening method with times (:mod:`simulation.benchmarks.tables`) as CSV + Markdown.

``real``
    ``python -m simulation real --name IKONOS --out DIR`` exports a real ``.mat`` pair
    (:mod:`simulation.realdata`) as ``DIR/pan.tif`` and ``DIR/ms.tif`` with its synthetic pixel-space
    georeferencing, plus ``DIR/meta.json``, and prints the paths.

``metric-selection``
    ``python -m simulation metric-selection [--out FILE]`` runs :func:`geofuse.metrics.select.select_metrics`
    on VIFB's MATLAB metric table for the pair "fight" (``../shared``) and writes
    ``simulation/results/metric_selection_fight.md`` (:mod:`simulation.metric_selection`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def _scene_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=512, help="PAN side in pixels (multiple of --ratio)")
    p.add_argument("--ratio", type=int, default=4, help="MS / PAN pixel size ratio")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same scene)")
    p.add_argument("--sensor", default="IKONOS", help="sensor preset for the MTF gains (IKONOS, QB, GeoEye1, ...)")
    p.add_argument("--bits", type=int, default=11, help="radiometric resolution of the DN")
    p.add_argument("--noise", type=float, default=0.0, help="additive noise std in DN")
    p.add_argument("--crs", default="EPSG:32633", help="CRS of the grids")
    p.add_argument("--pan-res", type=float, default=1.0, help="PAN pixel size in CRS units")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")


def _scene_run(args: argparse.Namespace) -> int:
    from .scene import make_scene

    scene = make_scene(args.size, ratio=args.ratio, sensor=args.sensor, bits=args.bits, seed=args.seed,
                       crs=args.crs, pan_res=args.pan_res, noise=args.noise)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("pan", "ms", "truth"):
        path = args.out / f"{name}.tif"
        getattr(scene, name).rio.to_raster(path, compress="DEFLATE")
        print(path)
    return 0


def _wald_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True,
                   help="'synthetic' (make_scene), a real pair name (IKONOS, GeoEye1, WV2, WV3) or .mat "
                        "path, or the MS GeoTIFF (then --pan is required)")
    p.add_argument("--pan", type=Path, default=None, help="PAN GeoTIFF (with an MS GeoTIFF --source)")
    p.add_argument("--size", type=int, default=512, help="synthetic scene: PAN side in pixels")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene: random seed")
    p.add_argument("--sensor", default=None,
                   help="MTF preset (default: the source's sensor; IKONOS for the synthetic scene)")
    p.add_argument("--pan-filter", choices=("bicubic", "mtf"), default="bicubic",
                   help="PAN degradation: toolbox 2021 bicubic imresize (default) or PAN MTF + decimation")
    p.add_argument("--ratio", type=int, default=None, help="only for GeoTIFFs without georeferencing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")


def _errors_to_exit(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report geofuse errors (missing data, existing outputs, grid mismatch) as one line, exit status 1."""

    def wrapped(args: argparse.Namespace) -> int:
        from geofuse.errors import GeofuseError

        try:
            return run(args)
        except GeofuseError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    wrapped.__doc__ = run.__doc__
    return wrapped


@_errors_to_exit
def _wald_run(args: argparse.Namespace) -> int:
    from .wald import build_wald_dataset

    src = args.source
    meta: dict = {}
    if src.lower() == "synthetic":
        from .scene import make_scene

        scene = make_scene(args.size, sensor=args.sensor or "IKONOS", seed=args.seed)
        ms, pan = scene.ms, scene.pan
        meta = {"provenance": f"simulation.scene.make_scene(size={args.size}, seed={args.seed}, "
                              f"sensor={scene.sensor!r})", "bits": scene.bits, "sensor": scene.sensor}
    elif src.lower().endswith((".tif", ".tiff", ".zarr")) or args.pan is not None:
        from geofuse.io import open_raster

        if args.pan is None:
            print("error: --pan is required with an MS raster --source", file=sys.stderr)
            return 2
        ms, pan = open_raster(src), open_raster(args.pan)
        meta = {"provenance": f"MS {Path(src).resolve()}, PAN {args.pan.resolve()}"}
    else:
        from .realdata import load_pair

        ms, pan, meta = load_pair(src)
    paths = build_wald_dataset(ms, pan, args.out, sensor=args.sensor, pan_filter=args.pan_filter,
                               overwrite=args.overwrite, ratio=args.ratio, meta=meta)
    for path in paths.values():
        print(path)
    return 0


def _real_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="pair name (IKONOS, GeoEye1, WV2, WV3) or a .mat path")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")


@_errors_to_exit
def _real_run(args: argparse.Namespace) -> int:
    import json

    from geofuse.io import write_raster

    from .realdata import load_pair

    ms, pan, meta = load_pair(args.name)
    meta_path = args.out / "meta.json"
    existing = [str(p) for p in (args.out / "pan.tif", args.out / "ms.tif", meta_path) if p.exists()]
    if existing and not args.overwrite:
        print(f"error: {', '.join(existing)} already exist(s); pass --overwrite", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, da in (("pan", pan), ("ms", ms)):
        print(write_raster(da, args.out / f"{name}.tif", overwrite=args.overwrite))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(meta_path)
    return 0


def _hs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cube", default="jasper", help="jasper | samson | urban | all (SPEC section 9 protocol)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--real", action="store_true", help="also the Hyperion + ALI checks (hyperspectral_real.md)")
    p.add_argument("--no-q2n", action="store_true", help="skip Q2n (slow with many bands)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                   help="folder of the hyperspectral_<cube>.md/.csv tables (default simulation/results)")


@_errors_to_exit
def _hs_run(args: argparse.Namespace) -> int:
    from .hyperspectral import CUBES, write_real, write_results

    cubes = list(CUBES) if args.cube == "all" else [args.cube]
    args.out.mkdir(parents=True, exist_ok=True)
    for c in cubes:
        print(write_results(c, args.out, seed=args.seed, q2n=not args.no_q2n))
    if args.real:
        print(write_real(args.out))
    return 0


#: name -> (add_arguments(parser), run(args) -> exit status)
def _faith_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "faithfulness.md"),
                   help="Markdown file to write (default simulation/results/faithfulness.md)")


def _faith_run(args: argparse.Namespace) -> int:
    from .faithfulness import shared_reference, write

    if not shared_reference().is_dir():
        print(f"error: {shared_reference()} not found: the toolbox reference outputs live in ../shared")
        return 1
    print(write(Path(args.out)))
    return 0


def _msel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "metric_selection_fight.md"),
                   help="Markdown file to write (default simulation/results/metric_selection_fight.md)")


def _msel_run(args: argparse.Namespace) -> int:
    from .metric_selection import VIFB, write

    if not VIFB.is_dir():
        print(f"error: {VIFB} not found: VIFB's metric values live in ../shared")
        return 1
    print(write(Path(args.out)))
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    from .benchmarks.tables import add_arguments

    add_arguments(p)


@_errors_to_exit
def _tables_run(args: argparse.Namespace) -> int:
    from .benchmarks.tables import run

    return run(args)


SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "scene": (_scene_args, _scene_run),
    "wald": (_wald_args, _wald_run),
    "real": (_real_args, _real_run),
    "faithfulness": (_faith_args, _faith_run),
    "hs": (_hs_args, _hs_run),
    "metric-selection": (_msel_args, _msel_run),
    "tables": (_tables_args, _tables_run),
}

_HELP = {
    "faithfulness": "compare every registered method with the reference toolbox outputs (Markdown table)",
    "metric-selection": "metric selection (Kendall groups, Borda, consistency, CV) on VIFB's 'fight' table",
    "scene": "render a synthetic PAN + MS scene with its HR truth to GeoTIFFs",
    "wald": "build a Wald-protocol reduced-resolution dataset (ms_lr, pan_lr, reference, dataset.json)",
    "real": "export a real PAN + MS .mat pair as GeoTIFFs (synthetic pixel-space georeferencing)",
    "hs": "hyperspectral-multispectral protocol (Jasper Ridge, Samson, Urban; Hyperion + ALI): metrics table",
    "tables": "reduced- and full-resolution benchmark tables of every pansharpening method on a real pair "
              "(CSV + Markdown in simulation/results/tables)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulation",
                                     description="Synthetic scenes and Wald-protocol simulation for geofuse.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, _) in SUBCOMMANDS.items():
        add_args(sub.add_parser(name, help=_HELP.get(name), description=_HELP.get(name)))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return SUBCOMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
