"""Real PAN + MS test pairs (IKONOS, GeoEye-1, WorldView-2, WorldView-3) as geofuse rasters.

The pairs are MATLAB v5 ``.mat`` files collected from public research repositories into
``../shared/data/pansharpening`` (beside the checkout; see ``PROVENANCE.txt`` there for origin, hashes
and licences). They are **never copied into this repository**: the VHR scenes are commercial imagery
under the GRIP-UNINA *non-commercial* licence and may only be used as local / CI test fixtures.

===========  ==========================  ================  ===============  ======  =====
name         file                        PAN               MS               dtype   bits
===========  ==========================  ================  ===============  ======  =====
IKONOS       ``IKONOS_imgIK.mat``        1280 x 1280       4 x 320 x 320    uint16  11
GeoEye1      ``GeoEye1_imgGE1.mat``      1280 x 1280       4 x 320 x 320    uint8   8
WV2          ``WV2_imgWV2.mat``          1280 x 1280       8 x 320 x 320    uint16  11
WV3          ``WV3_example_ZPNN.mat``    128 x 128         8 x 32 x 32      uint16  11
===========  ==========================  ================  ===============  ======  =====

(GeoEye1 is an 8-bit, already rescaled product; the WV3 file has no ``sensor``/``ratio``/``L``
variables and ``I_MS_LR`` instead of ``I_MS``: WorldView-3, ratio 4, 11 bits per its provenance.)

Synthetic georeferencing
------------------------
The ``.mat`` files carry **no georeferencing** (no CRS, no geotransform). :func:`load_pair` attaches a
synthetic, pixel-space one so that the pairs go through geofuse's georeferenced code paths (grid
fitting from transforms, GeoTIFF output):

* CRS :data:`PIXEL_CRS`, a local engineering CRS (``LOCAL_CS``) named
  ``"geofuse pixel grid (not georeferenced)"`` with metre axes: the coordinates are **not** positions
  on the Earth, and the pairs cannot be combined with any real georeferenced data. (The WKT is in
  the form GDAL writes back from a GeoTIFF, so the CRS compares equal after a write / read round trip.)
* PAN transform ``Affine(1, 0, 0, 0, -1, rows)``: 1 m PAN pixels, upper-left corner at ``(0, rows)``,
  so the lower-left corner of the scene is the origin ``(0, 0)`` and all coordinates are positive.
* MS transform ``lowres_transform(pan_transform, ratio, ((ratio-1)/2,)*2)``: **corner-aligned** grids,
  MS pixel ``(i, j)`` covers PAN pixels ``ratio*i .. ratio*i + ratio - 1`` (same upper-left corner,
  pixel size ``ratio`` m). This is how the physical products are gridded; the MATLAB toolbox's own
  processing (``interp23tap``) instead assumes the centred phase ``ratio//2`` - use
  ``phase="toolbox"`` on pixel-space inputs to reproduce it, not this georeferencing.

Arrays keep the file's integer dtype and are numpy-backed ``("band", "y", "x")`` DataArrays with the
sensor's band names (:data:`geofuse.sensors.PRESETS`). ``attrs`` and the returned ``meta`` dict carry
``sensor``, ``ratio``, ``bits`` (``L``), ``provenance`` (the source path) and ``georeferencing``
(the sentence above).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from geofuse import sensors
from geofuse.errors import InputError, RasterIOError
from geofuse.grid import lowres_transform
from geofuse.raster import make_raster

__all__ = ["DATA_DIR", "PAIRS", "PIXEL_CRS", "GEOREFERENCING", "data_dir", "pair_path", "load_pair"]

#: Default folder of the real pairs: ``../shared/data/pansharpening`` beside the checkout.
#: The environment variable ``GEOFUSE_PANSHARPENING_DATA`` overrides it.
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pansharpening"

#: name -> (file name, sensor preset, ratio, bits). Sensor / ratio / bits are used only when the file
#: lacks the ``sensor`` / ``ratio`` / ``L`` variables (the WV3 example).
PAIRS: dict[str, tuple[str, str, int, int]] = {
    "IKONOS": ("IKONOS_imgIK.mat", "IKONOS", 4, 11),
    "GeoEye1": ("GeoEye1_imgGE1.mat", "GeoEye1", 4, 8),
    "WV2": ("WV2_imgWV2.mat", "WV2", 4, 11),
    "WV3": ("WV3_example_ZPNN.mat", "WV3", 4, 11),
}

#: Local engineering CRS of the synthetic pixel-space georeferencing (not a position on the Earth).
PIXEL_CRS = CRS.from_wkt(
    'LOCAL_CS["geofuse pixel grid (not georeferenced)",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)

GEOREFERENCING = (
    "synthetic pixel-space georeferencing (the source has none): local engineering CRS 'geofuse pixel "
    "grid (not georeferenced)', PAN pixel 1 m with upper-left corner (0, rows), MS grid corner-aligned "
    "with the PAN (pixel ratio m, same upper-left corner)"
)


def data_dir() -> Path:
    """The folder holding the real pairs (``$GEOFUSE_PANSHARPENING_DATA`` or :data:`DATA_DIR`)."""
    env = os.environ.get("GEOFUSE_PANSHARPENING_DATA")
    return Path(env) if env else DATA_DIR


def _canonical_name(name: str) -> str | None:
    key = name.strip().lower()
    for n in PAIRS:
        if n.lower() == key:
            return n
    alias = {"geoeye-1": "GeoEye1", "geoeye": "GeoEye1", "ge1": "GeoEye1", "worldview-2": "WV2",
             "worldview-3": "WV3", "ik": "IKONOS"}
    return alias.get(key)


def pair_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a pair name (``"IKONOS"``, ``"GeoEye1"``, ``"WV2"``, ``"WV3"``) or a ``.mat`` path.

    Raises
    ------
    RasterIOError
        The file does not exist (e.g. ``../shared`` is not beside the checkout).
    """
    s = os.fspath(name_or_path)
    canon = _canonical_name(s) if isinstance(name_or_path, str) and not s.lower().endswith(".mat") else None
    p = data_dir() / PAIRS[canon][0] if canon is not None else Path(s)
    if not p.is_file():
        known = ", ".join(PAIRS)
        raise RasterIOError(
            f"real PAN+MS pair {s!r} not found at {p}",
            expected=f"a pair name ({known}) with the shared data in {data_dir()}, or a path to a .mat file",
            got=f"missing file {p}" if canon is not None or s.lower().endswith(".mat")
            else f"neither a known pair name nor an existing file: {s!r}",
            fix="put the shared data beside the checkout (../shared/data/pansharpening) or set "
                "GEOFUSE_PANSHARPENING_DATA to the folder holding the .mat files; the data are never "
                "vendored into the repository (non-commercial licence)",
        )
    return p


def _scalar(d: dict, key: str) -> Any:
    v = d.get(key)
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind in "US":
        return str(a.ravel()[0]).strip() if a.size else None
    return a.ravel()[0].item() if a.size else None


def load_pair(path: str | os.PathLike) -> tuple[xr.DataArray, xr.DataArray, dict]:
    """Load a real PAN + MS ``.mat`` pair as ``(ms, pan, meta)`` with synthetic georeferencing.

    The order is geofuse's (MS first, as :func:`geofuse.pansharpen` and :func:`geofuse.degrade.wald`),
    so ``ms, pan, meta = load_pair("IKONOS")`` feeds them directly.

    Parameters
    ----------
    path : str or os.PathLike
        A pair name of :data:`PAIRS` (case-insensitive: ``"IKONOS"``, ``"GeoEye1"``, ``"WV2"``,
        ``"WV3"``), resolved in :func:`data_dir`, or the path of a ``.mat`` file with ``I_PAN``
        (rows, cols) and ``I_MS`` or ``I_MS_LR`` (rows, cols, bands), optionally ``sensor``, ``ratio``
        and ``L``.

    Returns
    -------
    ms : xarray.DataArray
        ``("band", "y", "x")``, the sensor's band names, the file's dtype, corner-aligned MS grid.
    pan : xarray.DataArray
        ``("band", "y", "x")``, one band ``"pan"``, the file's integer dtype, PAN transform
        ``Affine(1, 0, 0, 0, -1, rows)`` in :data:`PIXEL_CRS`.
    meta : dict
        ``sensor``, ``ratio``, ``bits``, ``provenance`` (absolute path of the file),
        ``georeferencing`` (:data:`GEOREFERENCING`), ``rgb_indexes`` (0-based, when the file has them).

    Raises
    ------
    RasterIOError
        The file is missing (clear message on how to provide ``../shared``).
    InputError
        The file lacks ``I_PAN`` / ``I_MS`` or the shapes do not nest by the ratio.
    """
    import scipy.io

    p = pair_path(path)
    d = scipy.io.loadmat(str(p))
    canon = next((n for n, (f, *_rest) in PAIRS.items() if f == p.name), None)
    defaults = PAIRS[canon][1:] if canon else (None, 4, None)
    ms_key = "I_MS" if "I_MS" in d else ("I_MS_LR" if "I_MS_LR" in d else None)
    if "I_PAN" not in d or ms_key is None:
        raise InputError(f"{p} is not a PAN+MS pair", expected="variables I_PAN and I_MS (or I_MS_LR)",
                         got=f"variables {sorted(k for k in d if not k.startswith('__'))}",
                         fix="use one of the pansharpening .mat files listed in PROVENANCE.txt")
    pan_a, ms_a = np.asarray(d["I_PAN"]), np.asarray(d[ms_key])
    if ms_a.ndim == 2:
        ms_a = ms_a[:, :, None]
    if pan_a.ndim == 3 and pan_a.shape[2] == 1:
        pan_a = pan_a[:, :, 0]
    sensor = _scalar(d, "sensor") or defaults[0] or "none"
    ratio = int(_scalar(d, "ratio") or defaults[1])
    bits = _scalar(d, "L") or defaults[2]
    bits = int(bits) if bits is not None else None
    rows, cols = pan_a.shape
    if pan_a.ndim != 2 or (rows, cols) != (ratio * ms_a.shape[0], ratio * ms_a.shape[1]):
        raise InputError(f"the PAN and MS of {p} do not nest by the ratio {ratio}",
                         expected=f"I_PAN of shape ratio x I_MS rows/cols = "
                                  f"{(ratio * ms_a.shape[0], ratio * ms_a.shape[1])}",
                         got=f"I_PAN {pan_a.shape}, {ms_key} {ms_a.shape}",
                         fix="check the file (PAN (rows, cols), MS (rows, cols, bands))")
    nb = ms_a.shape[2]
    preset = sensors.PRESETS.get(sensor)
    names = list(preset.band_names) if preset is not None and len(preset.band_names) == nb \
        else [f"b{i + 1}" for i in range(nb)]
    rgb_idx = [int(v) - 1 for v in np.asarray(d["RGB_indexes"]).ravel()] if "RGB_indexes" in d else None

    pan_t = Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(rows))
    ms_t = lowres_transform(pan_t, ratio, ((ratio - 1) / 2, (ratio - 1) / 2))
    meta = {"sensor": sensor, "ratio": ratio, "bits": bits, "provenance": str(p.resolve()),
            "georeferencing": GEOREFERENCING, "name": canon or p.stem, "rgb_indexes": rgb_idx}
    attrs = {"sensor": sensor, "ratio": ratio, "provenance": meta["provenance"], "units": "DN",
             "georeferencing": GEOREFERENCING}
    if bits is not None:
        attrs["bits"] = bits
    pan = make_raster(np.ascontiguousarray(pan_a[None]), pan_t, PIXEL_CRS, band=["pan"],
                      attrs=attrs | {"description": f"real {sensor} PAN ({p.name}: I_PAN)"}, name="pan")
    ms = make_raster(np.ascontiguousarray(np.moveaxis(ms_a, 2, 0)), ms_t, PIXEL_CRS, band=names,
                     attrs=attrs | {"description": f"real {sensor} MS ({p.name}: {ms_key})"}, name="ms")
    return ms, pan, meta
