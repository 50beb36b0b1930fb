"""The labeled API: DataArrays in, DataArrays out; coordinates, CRS, band names and attrs kept."""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import xarray as xr

from . import engine, registry
from . import sensors as _sensors
from .errors import ParameterError
from .grid import fit_grids
from .raster import make_raster


def pansharpen(ms: xr.DataArray, pan: xr.DataArray, method: str = "gsa", *,
               sensor: str | _sensors.Sensor | Sequence[float] | None = None, ratio: int | None = None,
               phase: str | float | None = None, compat: str = "default", interpolation: str = "interp23tap",
               dtype: Any = None, nodata: float | None = None, chunks: int | tuple[int, int] | None = None,
               device: str = "auto", params: dict | None = None, **kwargs: Any) -> xr.DataArray:
    """Fuse a multispectral image with a panchromatic image (lazily, chunk by chunk).

    Parameters
    ----------
    ms : xarray.DataArray
        ("band", "y", "x") low-resolution multispectral raster (dask-backed for large scenes).
    pan : xarray.DataArray
        ("band", "y", "x") one-band high-resolution raster.
    method : str
        A registered method name (``geofuse.methods_table()`` / ``geofuse methods``).
    sensor : str, Sensor or list of float, optional
        MTF preset (``"IKONOS"``, ``"WV3"``, ...) or per-band MTF gains at Nyquist. Without it the
        generic gains are used, with a warning, by methods that need the MTF.
    ratio, phase : optional
        Only for inputs without georeferencing; georeferenced inputs derive both from their transforms.
    compat : {"default", "toolbox"}
        ``"toolbox"`` reproduces the reference MATLAB toolbox (circular borders in interp23tap).
    interpolation : {"interp23tap", "bicubic", "lanczos3"}
        Interpolator of the MS onto the PAN grid (interp23tap needs a power-of-two ratio; other ratios
        use lanczos3).
    dtype : numpy dtype, optional
        Output dtype; default the MS dtype. Integer outputs are rounded and clipped to the dtype's
        range (and kept off the nodata value).
    nodata : float, optional
        Output nodata; default the MS's (else the PAN's). Pixels that are nodata in the PAN or in the
        MS pixel above them are nodata in the output and never enter any statistic.
    chunks : int or (int, int), optional
        HR chunk size (default 1024, rounded to a multiple of the ratio).
    device : str
        ``"auto"`` (CUDA if available; ``GEOFUSE_DEVICE`` overrides), ``"cpu"``, ``"cuda:N"``.
    params, **kwargs
        Method parameters.

    Returns
    -------
    xarray.DataArray
        Lazy ("band", "y", "x") on the PAN grid (the intersection of both footprints), with the MS's
        band coordinate, the PAN's CRS/transform, and ``nodata`` written the rioxarray way.
    """
    spec = registry.get(method)
    p = spec.resolve({**(params or {}), **kwargs})
    engine.check_inputs(ms, pan)
    grid = fit_grids(pan, ms, ratio=ratio, phase=phase)
    sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(
        sensor, ms.sizes["band"], warn="mtf" in spec.tags)
    prep = engine.prepare(ms, pan, grid, halo_hr=spec.halo(p, grid.ratio), compat=compat,
                          interpolation=interpolation, sensor=sens, device=device, chunks=chunks)
    data, nd = _output(engine.fuse_prepared(spec, prep, p), prep, ms, pan, dtype, nodata)
    transform = grid.out_transform() if _has_transform(pan) else None
    attrs = {"geofuse_method": spec.name, "geofuse_params": json.dumps(p), "geofuse_ratio": grid.ratio,
             "geofuse_phase": json.dumps(list(grid.phase)), "geofuse_sensor": sens.name,
             "geofuse_compat": compat, "geofuse_interpolation": prep.interpolation}
    out = make_raster(data, transform, grid.crs, band=ms["band"].values if "band" in ms.coords else None,
                      attrs=attrs, nodata=nd, name=spec.name)
    if transform is None:
        sl = grid.hr_slices()
        for d, s in zip(("y", "x"), sl):
            if d in pan.coords:
                out = out.assign_coords({d: pan[d].values[s]})
    return out


def _output(fused, prep, lr: xr.DataArray, hr: xr.DataArray, dtype: Any, nodata: float | None):
    """The fused dask array cast to the output dtype (default the low-resolution input's), and its nodata
    (default the low-resolution input's, else the high-resolution one's); invalid pixels set to nodata."""
    out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(lr.dtype)
    nd = nodata if nodata is not None else (engine.nodata_of(lr) if engine.nodata_of(lr) is not None
                                            else engine.nodata_of(hr))
    if nd is not None and np.issubdtype(out_dtype, np.integer):
        info = np.iinfo(out_dtype)
        if not (info.min <= nd <= info.max) or float(nd) != int(nd):
            raise ParameterError("The nodata value does not fit the output dtype",
                                 expected=f"an integer in [{info.min}, {info.max}]", got=str(nd),
                                 fix="pass nodata= that fits, or dtype='float32'")
    return engine.to_output_dtype(fused, out_dtype, prep.valid_hr_apply, nd), nd


def _has_transform(x: xr.DataArray) -> bool:
    from .grid import is_georeferenced

    return is_georeferenced(x)


def methods_table(scenario: str | None = None):
    """The registry as a pandas DataFrame (name, family, scenario, parameters, references)."""
    import pandas as pd

    rows = []
    for s in registry.available(scenario):
        rows.append({"name": s.name, "title": s.title, "family": s.family, "scenario": s.scenario,
                     "inputs": ", ".join(s.inputs),
                     "parameters": ", ".join(f"{q.name}={q.default!r}" for q in s.parameters) or "-",
                     "references": ", ".join(f"doi:{d}" for d in s.references)})
    return pd.DataFrame(rows)


def evaluate(fused: xr.DataArray, reference: xr.DataArray | None = None, *, ms: xr.DataArray | None = None,
             pan: xr.DataArray | None = None, sensor: str | _sensors.Sensor | Sequence[float] | None = None,
             ratio: int | None = None, protocol: str = "reduced", metrics: Sequence[str] | None = None,
             compat: str = "default", dim_cut: int | None = None, block: int = 32, per_band: bool = True,
             **params: Any):
    """Quality table of a fused image: one tidy pandas DataFrame (metric, band, value, ...).

    Parameters
    ----------
    fused : xarray.DataArray
        The fused image ("band", "y", "x"); numpy / dask arrays work too.
    reference : xarray.DataArray, optional
        Ground truth on the same grid (``protocol="reduced"``, the Wald protocol).
    ms, pan : xarray.DataArray, optional
        The inputs of the fusion: required for ``protocol="full"``; for ``"reduced"`` the MS only gives
        the ratio.
    sensor : str, Sensor or list of float, optional
        MTF preset for D_lambda_K / HQNR (default: the one the fusion recorded in its attrs).
    ratio : int, optional
        Resolution ratio. Default: ``fused.attrs["geofuse_ratio"]`` or the grids.
    protocol : {"reduced", "full"}
        Reduced resolution: Q2n, Q, SAM, ERGAS, SCC, PSNR, RMSE, CC, SSIM against ``reference``. Full
        resolution: D_lambda, D_s, QNR, D_lambda_K, HQNR from ``ms`` and ``pan`` (no reference).
    metrics : sequence of str, optional
        Metric names of :data:`geofuse.metrics.METRICS`; default every index of the protocol.
    compat : {"default", "toolbox"}
        ``"toolbox"`` reproduces the MATLAB toolbox: uint16 cast inside Q2n (and D_lambda_K), border cut
        ``dim_cut = 21`` unless given, full-resolution indexes against the interp23tap MS at the toolbox's
        phase. ``"default"``: the same formulas without the uint16 cast (float reflectances work), no
        border cut unless given, interpolation at the grids' phase.
    dim_cut : int, optional
        Reduced-resolution border cut as the toolbox's ``indexes_evaluation`` (0 = none).
    block : int
        Block / window size (32).
    per_band : bool
        Also one row per band for the metrics that have per-band values (before their ``"all"`` row).
    **params
        Further metric parameters: ``p, q, alpha, beta`` (QNR exponents), ``phase``, ``ms_exp``, ``chunks``,
        ``work``, ``device`` (full resolution), ``data_range`` (PSNR, SSIM), ``scc_variant="v1.3"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, band, value, higher_is_better, ideal``; computed in one ``dask.compute``.
    """
    from .metrics.evaluate import evaluate_table

    return evaluate_table(fused, reference, ms=ms, pan=pan, sensor=sensor, ratio=ratio, protocol=protocol,
                          metrics=metrics, compat=compat, dim_cut=dim_cut, block=block, per_band=per_band, **params)


def fuse_hyperspectral(hs: xr.DataArray, ms: xr.DataArray, method: str = "glp_hs", *, srf: Any = None,
                       wavelengths: Sequence[float] | None = None, ratio: int | None = None,
                       phase: str | float | None = None, interpolation: str = "interp23tap", dtype: Any = None,
                       nodata: float | None = None, chunks: int | tuple[int, int] | None = None,
                       device: str = "auto", params: dict | None = None, **kwargs: Any) -> xr.DataArray:
    """Fuse a low-resolution hyperspectral image with a high-resolution multispectral image (or a PAN),
    lazily, chunk by chunk (hyperspectral methods of the registry: ``methods_table("hyperspectral")``).

    Parameters
    ----------
    hs : xarray.DataArray
        ("band", "y", "x") low-resolution hyperspectral raster, B bands. A ``wavelength`` coordinate
        (nm) on ``band`` lets named SRFs be resampled onto it.
    ms : xarray.DataArray
        ("band", "y", "x") high-resolution multispectral raster, K >= 1 bands (K = 1: a PAN).
    method : str
        A registered hyperspectral method (``glp_hs``, ``gsa_hs``, ``sfim_hs``, ...).
    srf : None, str, path, SRFTable or array
        Spectral response of the MSI relative to the HS: a preset (``"Sentinel-2A"``, see
        :data:`geofuse.srf.PRESETS`), a CSV file, or a (K, B) matrix. ``None``: methods that need it
        estimate it from the data (:func:`geofuse.engine.estimate_srf`).
    wavelengths : sequence of float, optional
        HS band centres (nm) when ``hs`` has no ``wavelength`` coordinate.
    ratio, phase : optional
        Only for inputs without georeferencing.
    interpolation, dtype, nodata, chunks, device
        As in :func:`pansharpen` (``dtype`` defaults to the HS dtype).
    params, **kwargs
        Method parameters.

    Returns
    -------
    xarray.DataArray
        Lazy ("band", "y", "x"): B bands on the MSI grid, the HS band coordinate (and wavelengths), the
        MSI's CRS / transform.
    """
    from . import srf as _srf

    spec = registry.get(method)
    if spec.scenario != "hyperspectral":
        raise ParameterError(f"Method {spec.name!r} is not a hyperspectral method",
                             expected="one of: " + ", ".join(s.name for s in registry.available("hyperspectral")),
                             got=f"{spec.name!r} (scenario {spec.scenario!r})",
                             fix="use geofuse.pansharpen for pansharpening methods")
    p = spec.resolve({**(params or {}), **kwargs})
    engine.check_inputs(hs, ms)
    grid = fit_grids(ms, hs, ratio=ratio, phase=phase)
    wl = wavelengths
    needs_wl = srf is not None and not hasattr(srf, "shape") and not isinstance(srf, (list, tuple))
    if wl is None and needs_wl and "wavelength" in hs.coords:  # read (maybe compute) only when needed
        wl = np.asarray(hs["wavelength"].values, dtype=np.float64)
    R = _srf.resolve_srf(srf, wl, ms.sizes["band"], hs.sizes["band"])
    sens = _sensors.get(None, hs.sizes["band"], warn=False)
    prep = engine.prepare(hs, ms, grid, halo_hr=spec.halo(p, grid.ratio), interpolation=interpolation,
                          sensor=sens, device=device, chunks=chunks, hr_bands=None, srf=R)
    data, nd = _output(engine.fuse_prepared(spec, prep, p), prep, hs, ms, dtype, nodata)
    transform = grid.out_transform() if _has_transform(ms) else None
    attrs = {"geofuse_method": spec.name, "geofuse_params": json.dumps(p), "geofuse_ratio": grid.ratio,
             "geofuse_phase": json.dumps(list(grid.phase)), "geofuse_scenario": "hyperspectral",
             "geofuse_srf": "estimated" if R is None else (str(srf) if isinstance(srf, (str,)) else "given"),
             "geofuse_interpolation": prep.interpolation}
    out = make_raster(data, transform, grid.crs, band=hs["band"].values if "band" in hs.coords else None,
                      attrs=attrs, nodata=nd, name=spec.name)
    if wavelengths is not None:
        out = out.assign_coords(wavelength=("band", np.asarray(wavelengths, dtype=np.float64)))
    elif "wavelength" in hs.coords and hs["wavelength"].dims == ("band",):
        out = out.assign_coords(wavelength=hs["wavelength"].variable)  # as it is (a lazy coordinate stays lazy)
    if transform is None:
        sl = grid.hr_slices()
        for d, s in zip(("y", "x"), sl):
            if d in ms.coords:
                out = out.assign_coords({d: ms[d].values[s]})
    return out
