"""Building georeferenced ``("band", "y", "x")`` DataArrays the rioxarray way."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine


def coords_from_transform(transform: Affine, rows: int, cols: int) -> dict[str, np.ndarray]:
    """Pixel-centre ``y`` / ``x`` coordinates of a north-up grid."""
    x = transform.c + transform.a * (np.arange(cols) + 0.5)
    y = transform.f + transform.e * (np.arange(rows) + 0.5)
    return {"y": y, "x": x}


def make_raster(data: Any, transform: Affine | None, crs: Any = None, band: Sequence[Any] | None = None,
                attrs: dict | None = None, nodata: float | None = None, name: str | None = None) -> xr.DataArray:
    """Wrap a (bands, rows, cols) numpy/dask array as a georeferenced DataArray.

    ``transform=None`` gives a pixel-space raster (no x/y coordinates).
    """
    nb, rows, cols = data.shape
    coords: dict[str, Any] = {"band": list(band) if band is not None else list(range(1, nb + 1))}
    if transform is not None:
        coords.update(coords_from_transform(transform, rows, cols))
    out = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, attrs=dict(attrs or {}), name=name)
    if transform is not None:
        out = out.rio.write_transform(transform)
        if crs is not None:
            out = out.rio.write_crs(crs)
    if nodata is not None:
        out = out.rio.write_nodata(nodata, encoded=False)
    return out


def transform_of(x: xr.DataArray) -> Affine | None:
    """The affine transform of a georeferenced raster, or None."""
    from .grid import is_georeferenced

    return x.rio.transform() if is_georeferenced(x) else None


def nodata_of(x: Any) -> float | None:
    """The nodata value of a raster: rioxarray's (attribute) nodata, else ``_FillValue``; None if none.

    ``NaN`` when the raster was opened with ``masked=True`` (rioxarray moved the nodata into
    ``encoded_nodata`` and the pixels are NaN). Plain numpy/dask arrays have none.
    """
    if not (hasattr(x, "attrs") and hasattr(x, "dims")):
        return None
    nd = None
    try:
        nd = x.rio.nodata
        if nd is None and x.rio.encoded_nodata is not None:
            nd = float("nan")
    except Exception:  # noqa: BLE001 - rioxarray not applicable to this object
        nd = None
    if nd is None:
        nd = x.attrs.get("_FillValue", getattr(x, "encoding", {}).get("_FillValue"))
    return None if nd is None else float(nd)

