"""Wald-protocol degradation (reduced-resolution simulation), lazily on dask.

The Wald protocol (Wald, Ranchin, Mangolini 1997, doi:10.14358/PERS.63.6.691) degrades a real PAN + MS
pair by the resolution ratio so that the original MS becomes the reference for the fused product:

* MS: the sensor's MTF-matched Gaussian filter (SPEC section 2, ``replicate`` border) then decimation
  keeping HR samples ``ratio*k + ratio//2`` (the toolbox's ``imresize(., 1/ratio, 'nearest')``);
* PAN: MATLAB's ``imresize(PAN, 1/ratio)`` (bicubic with antialiasing, the 2021 toolbox) or, with
  ``pan_filter="mtf"``, the PAN MTF filter + the same decimation (v1.3 ``flag_PAN_MTF``).

Georeferencing is kept: each product's transform puts its pixels where the kept samples really are, so
the degraded MS sits on the toolbox's centred phase relative to the degraded PAN, and the engine
reproduces ``interp23tap`` exactly on such pairs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import xarray as xr

from . import engine
from . import sensors as _sensors
from .errors import ParameterError
from .grid import fit_grids, is_georeferenced, lowres_transform
from .kernels.filters import correlate2d, imresize_down, imresize_down_halo, mtf_kernel, mtf_kernels
from .kernels.resample import INTERPOLATORS, decimation_kernel, upsample, upsample_halo
from .raster import make_raster


def _check_ratio(ratio: Any) -> int:
    whole = isinstance(ratio, (int, np.integer)) or (isinstance(ratio, float) and float(ratio).is_integer())
    r = int(ratio) if whole else None
    if r is None or r < 2:
        raise ParameterError("The degradation ratio must be an integer >= 2", expected="ratio in 2, 3, 4, ...",
                             got=repr(ratio), fix="pass ratio=4 (the PAN/MS resolution ratio)")
    return r


def _out(x: xr.DataArray, data, ratio: int, offset: float, up: bool = False, attrs: dict | None = None):
    transform = None
    if is_georeferenced(x):
        t = x.rio.transform()
        if up:
            from affine import Affine
            # HR grid whose decimation at ``offset`` gives x's grid
            shift = -(offset + 0.5 - 0.5 * ratio)
            t = t @ Affine.scale(1 / ratio) @ Affine.translation(shift, shift)
        else:
            t = lowres_transform(t, ratio, (offset, offset))
        transform = t
    crs = x.rio.crs if transform is not None else None
    band = x["band"].values if "band" in x.coords else None
    return make_raster(data, transform, crs, band=band, attrs={**x.attrs, **(attrs or {})},
                       nodata=engine.nodata_of(x), name=x.name)


def _dask(x: xr.DataArray):
    import dask.array as da

    arr = x.data if isinstance(x.data, da.Array) else da.from_array(np.asarray(x.data), chunks=(x.shape[0], 1024, 1024))
    return arr.astype(np.float32) if arr.dtype != np.float64 else arr


def degrade_ms(ms: xr.DataArray, ratio: int, sensor: str | _sensors.Sensor | Sequence[float] | None = None, *,
               chunks: int = engine.DEFAULT_CHUNK, device: str = "auto", work: str = "float32") -> xr.DataArray:
    """MTF-matched filtering and decimation of an MS image (Wald protocol, SPEC section 4 step 1).

    Returns the lazily degraded image, float32, on the grid zoomed out by ``ratio`` whose pixel ``k``
    sits on input pixel ``ratio*k + ratio//2``.
    """
    r = _check_ratio(ratio)
    sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor, ms.sizes["band"])
    k = mtf_kernels(sens.gains(ms.sizes["band"]), r)
    p = r // 2

    def fn(t):
        return correlate2d(t, k, mode="replicate", stride=r, offset=(p, p))

    data = engine.map_tiles(_dask(ms), fn, depth=k.shape[-1] // 2, den=r, chunk=chunks, device=device, work=work)
    return _out(ms, data, r, p, attrs={"geofuse_degraded": f"MTF {sens.name} + decimation x{r}"})


def degrade_pan(pan: xr.DataArray, ratio: int, *, pan_filter: str = "bicubic",
                sensor: str | _sensors.Sensor | None = None, chunks: int = engine.DEFAULT_CHUNK,
                device: str = "auto", work: str = "float32") -> xr.DataArray:
    """Degrade the PAN by ``ratio``: MATLAB bicubic ``imresize`` with antialiasing (toolbox 2021) or
    ``pan_filter="mtf"`` (the PAN MTF filter + sampling at the grid's centre). Both outputs are
    corner-aligned with the input, i.e. on the grid of the MS that came with this PAN.

    (The toolbox's v1.3 ``flag_PAN_MTF`` keeps samples ``ratio*k + ratio//2`` instead, half a PAN pixel
    off the MS grid; geofuse keeps the geometry consistent rather than reproduce that shift.)"""
    r = _check_ratio(ratio)
    if pan_filter == "bicubic":
        data = engine.map_tiles(_dask(pan), lambda t: imresize_down(t, r), depth=imresize_down_halo(r), den=r,
                                chunk=chunks, device=device, work=work)
        return _out(pan, data, r, (r - 1) / 2, attrs={"geofuse_degraded": f"bicubic imresize 1/{r}"})
    if pan_filter == "mtf":
        # PAN MTF filter, then sampling at the corner-aligned phase (r-1)/2 (a half-integer phase averages
        # the two middle samples), so the degraded PAN stays on the original MS grid.
        sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor)
        p = (r - 1) / 2
        k, off = decimation_kernel(mtf_kernel(sens.pan_gnyq, r), (p, p))
        data = engine.map_tiles(_dask(pan), lambda t: correlate2d(t, k, "replicate", stride=r, offset=off),
                                depth=k.shape[-1] // 2, den=r, chunk=chunks, device=device, work=work)
        return _out(pan, data, r, p, attrs={"geofuse_degraded": f"PAN MTF {sens.name} + decimation x{r}"})
    raise ParameterError("Unknown PAN degradation", expected="'bicubic' or 'mtf'", got=repr(pan_filter),
                         fix="use pan_filter='bicubic' (toolbox 2021 default)")


def wald(ms: xr.DataArray, pan: xr.DataArray, sensor: str | _sensors.Sensor | Sequence[float] | None = None, *,
         ratio: int | None = None, pan_filter: str = "bicubic", chunks: int = engine.DEFAULT_CHUNK,
         device: str = "auto") -> tuple[xr.DataArray, xr.DataArray]:
    """Build a reduced-resolution pair (MS_LR, PAN_LR) from a real PAN + MS pair (Wald protocol).

    The ratio comes from the two grids (their transforms); the original ``ms`` is the reference for
    evaluating a fusion of the returned pair. Both outputs keep georeferencing and are lazy.
    """
    engine.check_inputs(ms, pan)
    grid = fit_grids(pan, ms, ratio=ratio)
    r = grid.ratio
    ms_w = ms.isel(y=grid.lr_slices()[0], x=grid.lr_slices()[1])
    pan_w = pan.isel(y=grid.hr_slices()[0], x=grid.hr_slices()[1])
    rows, cols = ms_w.sizes["y"] // r * r, ms_w.sizes["x"] // r * r
    ms_w = ms_w.isel(y=slice(0, rows), x=slice(0, cols))
    pan_w = pan_w.isel(y=slice(0, rows * r), x=slice(0, cols * r))
    return (degrade_ms(ms_w, r, sensor, chunks=chunks // r or 1, device=device),
            degrade_pan(pan_w, r, pan_filter=pan_filter, sensor=sensor, chunks=chunks, device=device))


def interpolate(lr: xr.DataArray, ratio: int, *, phase: str | float = "corner", kind: str = "interp23tap",
                border: str = "symmetric", chunks: int = 256, device: str = "auto",
                work: str = "float32") -> xr.DataArray:
    """Lazily interpolate ``lr`` onto the grid ``ratio`` times finer (``interp23tap`` by default).

    ``phase`` is where LR sample 0 lands on the fine grid (HR pixel units): ``"corner"`` for
    corner-aligned grids ((ratio-1)/2), ``"toolbox"`` for the toolbox's ``ratio//2``; the output
    transform follows. ``border="circular"`` reproduces the toolbox's interp23tap at image borders
    (whole image as one chunk).
    """
    r = _check_ratio(ratio)
    p = {"corner": (r - 1) / 2, "toolbox": float(r // 2)}.get(phase, phase) if isinstance(phase, str) else float(phase)
    if isinstance(p, str):
        raise ParameterError("Unknown phase", expected="'corner', 'toolbox' or a number", got=repr(phase),
                             fix="use phase='corner'")
    if kind not in INTERPOLATORS:
        raise ParameterError("Unknown interpolator", expected=", ".join(INTERPOLATORS), got=repr(kind),
                             fix="use kind='interp23tap'")
    if border == "circular" and chunks < max(lr.sizes["y"], lr.sizes["x"]):
        # circular padding wraps around the *image*; per-tile padding would wrap each tile's own content
        raise ParameterError("border='circular' wraps around the image borders, which needs the whole image "
                             "in one chunk", expected=f"chunks >= {max(lr.sizes['y'], lr.sizes['x'])} (the "
                             "input's larger side)", got=f"chunks={chunks!r}",
                             fix=f"pass chunks={max(lr.sizes['y'], lr.sizes['x'])} or border='symmetric'")
    data = engine.map_tiles(_dask(lr), lambda t: upsample(t, r, p, kind, border), depth=upsample_halo(r, p, kind),
                            num=r, chunk=chunks, device=device, work=work)
    return _out(lr, data, r, p, up=True, attrs={"geofuse_interpolated": f"{kind} x{r}"})
