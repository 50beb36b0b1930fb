"""Quick-look pictures of rasters: RGB composites of a zoomed crop, side by side.

Used by ``python -m geofuse.demo`` and the notebooks; needs matplotlib (the ``plot`` extra). Everything
here reads only the crop it shows, so it works on lazy (dask-backed) scenes of any size.

* :func:`rgb_bands` picks the red / green / blue bands by name (``band`` coordinate), else the first
  three bands in reverse order (B, G, R, ... files).
* :func:`find_crop` picks the most detailed window of the PAN (largest gradient energy), where the
  differences between methods show.
* :func:`stretch_limits` / :func:`to_rgb`: a 2-98 percentile stretch per displayed band. The limits
  are computed once (on the reference image of the figure, normally the truth or the interpolated
  MS) and shared by every multispectral panel, so colours and contrast are comparable across panels.
* :func:`quicklook` draws the grid and saves it as a PNG (a bare Agg figure: no display, no pyplot
  state) or returns the Figure (notebooks show it inline).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["find_crop", "quicklook", "rgb_bands", "stretch_limits", "to_rgb"]


def rgb_bands(da: xr.DataArray) -> list[int]:
    """Indices of the bands to show as red, green, blue.

    By ``band`` coordinate names (``red``/``r``, ``green``/``g``, ``blue``/``b``, case-insensitive)
    when all three exist; otherwise bands ``[2, 1, 0]`` (B, G, R, NIR order, as IKONOS / GeoEye /
    the toolbox's 4-band files); a 1- or 2-band image is shown in grey (its first band three times).
    """
    n = da.sizes["band"]
    if "band" in da.coords:
        names = [str(v).strip().lower() for v in da["band"].values]
        idx = []
        for want in (("red", "r"), ("green", "g"), ("blue", "b")):
            hit = [i for i, nm in enumerate(names) if nm in want]
            if not hit:
                break
            idx.append(hit[0])
        if len(idx) == 3:
            return idx
    if n >= 3:
        return [2, 1, 0]
    return [0, 0, 0]


def find_crop(pan: xr.DataArray | np.ndarray, size: int, *, step: int | None = None) -> tuple[slice, slice]:
    """The ``size x size`` window of ``pan`` with the largest gradient energy (most edges and texture).

    Parameters
    ----------
    pan : DataArray or ndarray
        ``(1, H, W)`` or ``(H, W)``; it is computed (read) once. For very large scenes pass a decimated
        view and scale the result.
    size : int
        Side of the window (clipped to the image).
    step : int, optional
        Search stride (default ``size // 2``).

    Returns
    -------
    (slice, slice)
        Row and column slices of the window.
    """
    a = np.asarray(pan.values if isinstance(pan, xr.DataArray) else pan, dtype=np.float32)
    if a.ndim == 3:
        a = a[0]
    h, w = a.shape
    size = int(min(size, h, w))
    step = int(step or max(1, size // 2))
    gy, gx = np.gradient(a)
    energy = gy * gy + gx * gx
    # integral image -> window sums in O(1)
    ii = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, where = -1.0, (0, 0)
    for r in range(0, h - size + 1, step):
        for c in range(0, w - size + 1, step):
            s = ii[r + size, c + size] - ii[r, c + size] - ii[r + size, c] + ii[r, c]
            if s > best:
                best, where = float(s), (r, c)
    r, c = where
    return slice(r, r + size), slice(c, c + size)


def _as_array(img: xr.DataArray | np.ndarray) -> np.ndarray:
    a = img.values if isinstance(img, xr.DataArray) else np.asarray(img)
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    return a


def _valid(a: np.ndarray, nodata: float | None) -> np.ndarray:
    ok = np.isfinite(a)
    if nodata is not None and np.isfinite(nodata):
        ok &= a != nodata
    return ok


def stretch_limits(img: xr.DataArray | np.ndarray, bands: Sequence[int] | None = None, *,
                   percentiles: tuple[float, float] = (2.0, 98.0),
                   nodata: float | None = None) -> np.ndarray:
    """Per-band ``(low, high)`` display limits: the given percentiles of the valid pixels.

    Returns an array ``(len(bands), 2)``. Nodata and non-finite pixels are ignored; a constant band gets
    ``high = low + 1`` so that the stretch never divides by zero.
    """
    a = _as_array(img)
    if nodata is None and isinstance(img, xr.DataArray):
        nodata = img.rio.nodata if hasattr(img, "rio") else None
    bands = list(range(a.shape[0])) if bands is None else list(bands)
    out = np.zeros((len(bands), 2), dtype=np.float64)
    for k, b in enumerate(bands):
        v = a[b][_valid(a[b], nodata)]
        lo, hi = (np.percentile(v, percentiles) if v.size else (0.0, 1.0))
        out[k] = (lo, hi if hi > lo else lo + 1.0)
    return out


def to_rgb(img: xr.DataArray | np.ndarray, bands: Sequence[int], limits: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float image in [0, 1]: ``bands`` stretched linearly between ``limits`` and clipped."""
    a = _as_array(img)
    lim = np.asarray(limits, dtype=np.float64)
    rgb = np.stack([(a[b] - lim[k, 0]) / (lim[k, 1] - lim[k, 0]) for k, b in enumerate(bands)], axis=-1)
    return np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0).astype(np.float32)


def quicklook(images: Mapping[str, xr.DataArray | np.ndarray], path: str | os.PathLike | None = None, *,
              crop: tuple[slice, slice] | None = None, reference: str | None = None,
              rgb: Sequence[int] | None = None, ncols: int | None = None, panel_inches: float = 3.2,
              suptitle: str | None = None, dpi: int = 110) -> Any:
    """A grid of RGB composites (grey for one-band images) of the same window of several rasters.

    Parameters
    ----------
    images : mapping title -> raster
        Panels in order; the key is the panel title (e.g. ``"gsa  Q2n=0.82"``). Rasters are
        ``("band", "y", "x")`` DataArrays (lazy is fine) or arrays on the same grid; one-band images
        (the PAN) are drawn in grey with their own 2-98 % stretch.
    path : path, optional
        Where to save the PNG. Without it the matplotlib Figure is returned (for notebooks).
    crop : (slice, slice), optional
        Row / column window shown in every panel (see :func:`find_crop`); default the whole image.
    reference : str, optional
        Key of the multispectral image whose 2-98 % limits are shared by every multispectral panel;
        default the last multispectral image (the truth, by the demo's convention).
    rgb : sequence of 3 int, optional
        Band indices for red, green, blue (default :func:`rgb_bands` of the reference).

    Returns
    -------
    pathlib.Path or matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not images:
        raise ValueError("quicklook needs at least one image")
    ys, xs = crop if crop is not None else (slice(None), slice(None))
    crops: dict[str, np.ndarray] = {}
    raw: dict[str, Any] = {}
    for title, img in images.items():
        if isinstance(img, xr.DataArray):
            sub = img.isel(y=ys, x=xs)
            raw[title] = sub
            crops[title] = _as_array(sub)
        else:
            a = _as_array(img)
            raw[title] = a[:, ys, xs]
            crops[title] = a[:, ys, xs]
    multi = [k for k, a in crops.items() if a.shape[0] >= 3]
    ref_key = reference if reference is not None else (multi[-1] if multi else next(iter(crops)))
    ref_img = images[ref_key]
    if rgb is not None:
        bands = list(rgb)
    elif isinstance(ref_img, xr.DataArray):
        bands = rgb_bands(ref_img)
    else:
        bands = [2, 1, 0] if crops[ref_key].shape[0] >= 3 else [0, 0, 0]
    shared = stretch_limits(crops[ref_key], bands, nodata=_nodata(raw[ref_key]))

    n = len(crops)
    ncols = int(ncols or (n if n <= 5 else math.ceil(n / math.ceil(n / 5))))
    nrows = math.ceil(n / ncols)
    # a bare Figure on the Agg canvas: no pyplot state, no backend switch (safe in notebooks and threads)
    fig = Figure(figsize=(panel_inches * ncols, panel_inches * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, a) in zip(axes.ravel(), crops.items()):
        if a.shape[0] >= 3:
            ax.imshow(to_rgb(a, bands, shared), interpolation="nearest")
        else:
            lim = stretch_limits(a, [0], nodata=_nodata(raw[title]))
            ax.imshow(to_rgb(a, [0, 0, 0], np.repeat(lim, 3, axis=0)), interpolation="nearest")
        ax.set_title(title, fontsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    if path is None:
        return fig
    out = Path(os.fspath(path))
    fig.savefig(out, dpi=dpi)
    return out


def _nodata(img: Any) -> float | None:
    if isinstance(img, xr.DataArray):
        try:
            nd = img.rio.nodata
        except (AttributeError, ValueError, TypeError):  # pragma: no cover - accessor unusable here
            return None
        return None if nd is None else float(nd)
    return None
