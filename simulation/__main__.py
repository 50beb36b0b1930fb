"""Command line of the simulation package: ``python -m simulation <subcommand> ...``.

Subcommands are registered in :data:`SUBCOMMANDS` (name -> (add_arguments, run)); adding one is one
``add_arguments(parser)`` function, one ``run(args) -> int`` function and one dictionary entry.

``scene``
    ``python -m simulation scene --size 512 --seed 0 --sensor IKONOS --out DIR`` writes
    ``DIR/pan.tif``, ``DIR/ms.tif`` and ``DIR/truth.tif`` (GeoTIFF) and prints their paths.
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


#: name -> (add_arguments(parser), run(args) -> exit status)
SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "scene": (_scene_args, _scene_run),
}

_HELP = {
    "scene": "render a synthetic PAN + MS scene with its HR truth to GeoTIFFs",
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
