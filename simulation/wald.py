"""Reduced-resolution (Wald protocol) datasets written to disk.

:func:`build_wald_dataset` turns a PAN + MS pair (a synthetic scene of :func:`simulation.scene.make_scene`,
a real pair of :func:`simulation.realdata.load_pair`, or GeoTIFFs opened with
:func:`geofuse.open_raster`) into a self-describing folder::

    ms_lr.tif      the MS degraded by the ratio (float32)
    pan_lr.tif     the PAN degraded by the ratio (float32)
    reference.tif  the original MS = the ground truth of a fusion of (ms_lr, pan_lr) (original dtype)
    dataset.json   sensor, ratio, phase, bits, provenance, shapes, band names and the protocol

The degradation is :func:`geofuse.degrade.wald` (SPEC section 4, the toolbox's ``resize_images.m``,
2021): MS = sensor MTF-matched Gaussian filter + decimation keeping the samples ``ratio*k + ratio//2``;
PAN = MATLAB ``imresize(PAN, 1/ratio)`` (bicubic with antialiasing) or, with ``pan_filter="mtf"``,
the PAN MTF filter sampled at each block's centre. Both products keep georeferencing: the transform of each puts
its pixels where the kept samples are, so for corner-aligned inputs ``ms_lr`` sits on the toolbox's
centred phase ``ratio//2`` (``[2.0, 2.0]`` for ratio 4) relative to ``pan_lr``, and geofuse fuses the
pair exactly as the toolbox's ``interp23tap`` would. The fused product of (ms_lr, pan_lr) is on the
``pan_lr`` grid, which is the grid of ``reference.tif``. (For corner-aligned inputs this holds exactly,
for both PAN filters. With an MS on the toolbox's centred phase the degraded PAN really sits half a PAN
pixel off the MS grid; the toolbox ignores that, comparing pixel arrays, and so does this module:
``pan_lr.tif`` is written on the reference grid, with a warning, and the ignored shift is recorded in
``dataset.json`` as ``pan_lr_shift_ignored``.) Evaluate with::

    geofuse.evaluate(fused, reference, ratio=4, dim_cut=21, compat="toolbox")

Inputs without georeferencing (plain pixel arrays) get the synthetic pixel-space georeferencing of
:mod:`simulation.realdata` (``PIXEL_CRS``, 1 m PAN pixels), with the MS placed at the phase
``fit_grids`` assumes for them (``"corner"`` unless ``phase=`` says otherwise).

References
----------
L. Wald, T. Ranchin, M. Mangolini, "Fusion of satellite images of different spatial resolutions:
assessing the quality of resulting images", PE&RS 63(6), 1997, doi:10.14358/PERS.63.6.691.
G. Vivone et al., "A New Benchmarking of Pansharpening Methods", IEEE GRSM 9(1), 2021,
doi:10.1109/MGRS.2020.3019315.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr
from affine import Affine

import geofuse
from geofuse import sensors as _sensors
from geofuse.degrade import wald
from geofuse.errors import ParameterError, RasterIOError
from geofuse.grid import fit_grids, is_georeferenced, lowres_transform
from geofuse.io import write_raster
from geofuse.raster import make_raster

__all__ = ["FILES", "PROTOCOL", "build_wald_dataset", "read_wald_dataset"]

#: Product name -> file name inside the dataset folder.
FILES = {"ms_lr": "ms_lr.tif", "pan_lr": "pan_lr.tif", "reference": "reference.tif",
         "dataset": "dataset.json"}

PROTOCOL = (
    "Wald protocol (reduced resolution), as Tools/resize_images.m of the pansharpening toolbox (2021): "
    "the MS is filtered by the sensor's MTF-matched Gaussian (replicate border) and decimated by the "
    "ratio keeping samples ratio*k + ratio//2 (imresize(.,1/ratio,'nearest')); the PAN is {pan}. "
    "The original MS is the reference (ground truth) for the fusion of (ms_lr, pan_lr); the toolbox "
    "evaluates with indexes_evaluation (Q2n block 32, SAM, ERGAS with the ratio, border cut dim_cut=21). "
    "Wald, Ranchin, Mangolini, PE&RS 63(6), 1997; Vivone et al., IEEE GRSM 9(1), 2021."
)
_PAN_TEXT = {
    "bicubic": "reduced with MATLAB's imresize(PAN, 1/ratio) (bicubic a=-0.5 with antialiasing, "
               "corner-aligned output)",
    "mtf": "filtered by the sensor's PAN MTF-matched Gaussian and decimated like the MS "
           "(v1.3 flag_PAN_MTF=1)",
}


def _pixel_space_georef(ms: xr.DataArray, pan: xr.DataArray, ratio: int | None, phase):
    """Attach the synthetic pixel-space georeferencing of simulation.realdata to plain arrays."""
    from .realdata import PIXEL_CRS

    grid = fit_grids(pan, ms, ratio=ratio, phase=phase)
    rows = pan.sizes["y"]
    pan_t = Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(rows))
    ms_t = lowres_transform(pan_t, grid.ratio, grid.phase)

    def wrap(x, t):
        band = x["band"].values if "band" in x.coords else None
        return make_raster(x.data, t, PIXEL_CRS, band=band, attrs=dict(x.attrs), name=x.name)

    return wrap(ms, ms_t), wrap(pan, pan_t)


def _snap_to_reference(pan_lr: xr.DataArray, ref: xr.DataArray, r: int, pan_filter: str):
    """Put the degraded PAN on the reference (original MS) grid, as the Wald protocol compares them.

    The degraded PAN's own grid is corner-aligned with the PAN (both PAN filters). When the MS is
    corner-aligned with the PAN it coincides with the MS grid. Otherwise (an MS on the toolbox's
    centred phase) the two differ by half a PAN pixel (``1/(2r)`` of a ``pan_lr`` pixel),
    which the toolbox ignores: it fuses and compares pixel arrays. geofuse's grid fit would refuse such a
    fractional shift, so the degraded PAN is relabelled with the reference transform and the shift is
    returned (PAN pixels, y/x) and reported with a warning.
    """
    tp, tr = pan_lr.rio.transform(), ref.rio.transform()
    if tp.almost_equals(tr, precision=1e-9):
        return pan_lr, [0.0, 0.0]
    dx = (tp.c - tr.c) / tr.a * r
    dy = (tp.f - tr.f) / tr.e * r
    same_size = abs(tp.a - tr.a) <= 1e-9 * abs(tr.a) and abs(tp.e - tr.e) <= 1e-9 * abs(tr.e)
    if not same_size or max(abs(dx), abs(dy)) >= r / 2:
        raise ParameterError("The degraded PAN does not fall on the grid of the reference MS",
                             expected="the same pixel size and at most half an MS pixel of shift",
                             got=f"degraded PAN transform {tuple(tp)[:6]}, MS transform {tuple(tr)[:6]}",
                             fix="pass a PAN + MS pair whose grids nest by the ratio")
    warnings.warn(
        f"pan_filter={pan_filter!r}: the degraded PAN's grid is shifted by ({dy:g}, {dx:g}) original PAN "
        "pixels from the reference (original MS) grid; as in the toolbox, the shift is ignored and "
        "pan_lr is written on the reference grid (corner-aligned inputs with pan_filter='bicubic' have "
        "no shift)", UserWarning, stacklevel=3)
    band = pan_lr["band"].values if "band" in pan_lr.coords else None
    snapped = make_raster(pan_lr.data, tr, ref.rio.crs, band=band, attrs=dict(pan_lr.attrs),
                          nodata=pan_lr.rio.nodata, name=pan_lr.name)
    return snapped, [float(dy), float(dx)]


def _provenance(ms: xr.DataArray, pan: xr.DataArray) -> str:
    if ms.attrs.get("provenance"):
        return str(ms.attrs["provenance"])
    srcs = [x.encoding.get("source") for x in (ms, pan)]
    if all(srcs):
        return f"MS {srcs[0]}, PAN {srcs[1]}"
    desc = ms.attrs.get("description")
    return str(desc) if desc else "in-memory arrays"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def build_wald_dataset(ms: xr.DataArray, pan: xr.DataArray, out_dir: str | os.PathLike,
                       sensor: str | _sensors.Sensor | Sequence[float] | None = None,
                       pan_filter: str = "bicubic", overwrite: bool = False, *,
                       ratio: int | None = None, phase: str | float | None = None,
                       meta: dict | None = None) -> dict[str, Path]:
    """Write the Wald-protocol reduced-resolution dataset of a PAN + MS pair into ``out_dir``.

    Parameters
    ----------
    ms, pan : xarray.DataArray
        ``("band", "y", "x")`` MS and one-band PAN (numpy- or dask-backed). Georeferenced inputs give
        the ratio and phase from their transforms; the part of the pair the two grids share, cropped
        to whole ``ratio x ratio`` blocks of MS pixels, is used (and is the reference).
    out_dir : str or os.PathLike
        Output folder (created).
    sensor : str, Sensor or list of float, optional
        MTF preset for the degradation. Default: ``meta["sensor"]`` or ``ms.attrs["sensor"]`` (set by
        ``make_scene`` and ``load_pair``); otherwise the generic gains (with a warning).
    pan_filter : {"bicubic", "mtf"}
        PAN degradation (toolbox 2021 default ``"bicubic"``; ``"mtf"``: the PAN MTF filter, as v1.3's
        ``flag_PAN_MTF`` but sampled at the block centre so the geometry stays consistent).
    overwrite : bool
        Replace existing products; otherwise an existing product is an error (nothing is written).
    ratio, phase : optional
        Only for inputs without georeferencing (as :func:`geofuse.pansharpen`).
    meta : dict, optional
        Extra metadata for ``dataset.json`` (``bits``, ``provenance``, ``sensor``, ...; e.g. the
        ``meta`` of :func:`simulation.realdata.load_pair`). Defaults come from ``ms.attrs``.

    Returns
    -------
    dict
        ``{"ms_lr": Path, "pan_lr": Path, "reference": Path, "dataset": Path}``.

    Raises
    ------
    RasterIOError
        A product exists and ``overwrite`` is False, or a write failed.
    GridMismatchError, BandCountError, ParameterError
        From the grid fit, the sensor or the PAN filter.
    """
    if pan_filter not in _PAN_TEXT:
        raise ParameterError("Unknown PAN degradation", expected="'bicubic' or 'mtf'", got=repr(pan_filter),
                             fix="use pan_filter='bicubic' (toolbox 2021 default)")
    out = Path(os.fspath(out_dir))
    paths = {k: out / v for k, v in FILES.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise RasterIOError(f"the Wald dataset in {out} already exists", expected="an empty output folder",
                            got="existing " + ", ".join(existing),
                            fix="pass overwrite=True (CLI: --overwrite) or choose another folder")
    info = {**{k: ms.attrs[k] for k in ("sensor", "bits", "provenance", "georeferencing") if k in ms.attrs},
            **(meta or {})}
    if sensor is None:
        sensor = info.get("sensor")
    sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor, ms.sizes["band"])

    if not is_georeferenced(pan) and not is_georeferenced(ms):
        ms, pan = _pixel_space_georef(ms, pan, ratio, phase)
        info.setdefault("georeferencing", "synthetic pixel-space georeferencing added by "
                        "simulation.wald (the inputs had none)")
    grid = fit_grids(pan, ms, ratio=ratio)
    r = grid.ratio
    ms_w = ms.isel(y=grid.lr_slices()[0], x=grid.lr_slices()[1])
    pan_w = pan.isel(y=grid.hr_slices()[0], x=grid.hr_slices()[1])
    rows, cols = ms_w.sizes["y"] // r * r, ms_w.sizes["x"] // r * r
    if rows == 0 or cols == 0:
        raise ParameterError("The MS is too small for the Wald protocol",
                             expected=f"at least {r} x {r} MS pixels (ratio {r})",
                             got=f"{ms_w.sizes['y']} x {ms_w.sizes['x']}", fix="use a larger scene")
    ms_w = ms_w.isel(y=slice(0, rows), x=slice(0, cols))
    pan_w = pan_w.isel(y=slice(0, rows * r), x=slice(0, cols * r))
    ms_lr, pan_lr = wald(ms_w, pan_w, sens, pan_filter=pan_filter)
    pan_lr, shift = _snap_to_reference(pan_lr, ms_w, r, pan_filter)
    lr_grid = fit_grids(pan_lr, ms_lr)

    out.mkdir(parents=True, exist_ok=True)
    write_raster(ms_lr.astype(np.float32), paths["ms_lr"], overwrite=overwrite)
    write_raster(pan_lr.astype(np.float32), paths["pan_lr"], overwrite=overwrite)
    write_raster(ms_w, paths["reference"], overwrite=overwrite)

    nb = ms_w.sizes["band"]
    doc = {
        "format": "geofuse Wald dataset 1",
        "protocol": PROTOCOL.format(pan=_PAN_TEXT[pan_filter]),
        "sensor": sens.name,
        "mtf_gnyq_ms": list(sens.gains(nb)),
        "mtf_gnyq_pan": sens.pan_gnyq,
        "ratio": r,
        "phase": list(lr_grid.phase),
        "phase_note": "centre of ms_lr pixel 0 in pan_lr pixel units (toolbox convention: ratio//2)",
        "pan_filter": pan_filter,
        "bits": info.get("bits"),
        "provenance": info.get("provenance") or _provenance(ms, pan),
        "georeferencing": info.get("georeferencing", "from the inputs"),
        "crs": pan_lr.rio.crs.to_wkt() if pan_lr.rio.crs is not None else None,
        "pan_lr_shift_ignored": shift,
        "pan_lr_shift_note": "sub-pixel offset (original PAN pixels, y/x) of the degraded PAN's true grid "
                             "from the reference grid, ignored as the toolbox does: pan_lr.tif is written on "
                             "the reference grid (0 for corner-aligned inputs with the bicubic PAN)",
        "band_names": [str(b) for b in ms_w["band"].values],
        "files": {k: v for k, v in FILES.items() if k != "dataset"},
        "shapes": {"ms_lr": list(ms_lr.shape), "pan_lr": list(pan_lr.shape), "reference": list(ms_w.shape)},
        "dtypes": {"ms_lr": "float32", "pan_lr": "float32", "reference": str(ms_w.dtype)},
        "source_window": {"ms_rows": [grid.y.lr_start, grid.y.lr_start + rows],
                          "ms_cols": [grid.x.lr_start, grid.x.lr_start + cols]},
        "evaluate": f"geofuse.evaluate(fused, reference, ratio={r}, dim_cut=21, compat='toolbox')",
        "geofuse_version": geofuse.__version__,
        "extra": {k: v for k, v in info.items()
                  if k not in ("sensor", "bits", "provenance", "georeferencing")},
    }
    tmp = paths["dataset"].with_name(f".{FILES['dataset']}.partial")
    tmp.write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    os.replace(tmp, paths["dataset"])
    return paths


def read_wald_dataset(out_dir: str | os.PathLike, *, chunks: int = 1024):
    """Open a dataset written by :func:`build_wald_dataset`: ``(ms_lr, pan_lr, reference, info)``."""
    from geofuse.io import open_raster

    d = Path(os.fspath(out_dir))
    info = json.loads((d / FILES["dataset"]).read_text())
    return (open_raster(d / FILES["ms_lr"], chunks=chunks), open_raster(d / FILES["pan_lr"], chunks=chunks),
            open_raster(d / FILES["reference"], chunks=chunks), info)
