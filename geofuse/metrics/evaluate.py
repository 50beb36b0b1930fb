"""Tidy evaluation tables over the metric registry, for both pansharpening protocols.

* **reduced** resolution (Wald protocol, with a reference): :data:`REDUCED` indexes of
  :mod:`geofuse.metrics.reduced` and :mod:`geofuse.metrics.rr`;
* **full** resolution (no reference; the fused image, its MS and its PAN): :data:`FULL` indexes of
  :mod:`geofuse.metrics.full`.

The table has one row per metric and band: ``band="all"`` for the global value and, for the metrics
registered with ``per_band=True``, one row per band (named from the ``band`` coordinate, else ``"1"``,
``"2"``, ...) listed *before* the metric's ``"all"`` row. Columns: ``metric, band, value,
higher_is_better, ideal``. Everything is evaluated in a single ``dask.compute`` call, so every input chunk
is read once.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, ParameterError
from . import get
from .full import FULL, full_resolution
from .reduced import _check_compat, _is_dask, _unwrap, cut_border, joint_valid, valid_mask

__all__ = ["COLUMNS", "FULL", "PROTOCOLS", "REDUCED", "evaluate_table", "full_resolution_table",
           "reduced_resolution"]

COLUMNS = ["metric", "band", "value", "higher_is_better", "ideal"]

#: The reduced-resolution indexes, in table order (Q2n, Q, SAM, ERGAS, SCC as the toolbox's tables).
REDUCED: tuple[str, ...] = ("Q2n", "Q", "SAM", "ERGAS", "SCC", "PSNR", "RMSE", "CC", "SSIM")

#: protocol -> its metrics (``metrics=None`` in :func:`evaluate_table` means all of them).
PROTOCOLS: dict[str, tuple[str, ...]] = {"reduced": REDUCED, "full": FULL}

#: Border cut of the toolbox's reduced-resolution demos (2021), used by ``compat="toolbox"`` by default.
TOOLBOX_DIM_CUT = 21


def _call(metric, fused, ref, params: dict[str, Any]):
    accepted = inspect.signature(metric.func).parameters
    return metric.func(fused, ref, **{k: v for k, v in params.items() if k in accepted})


def _band_names(n: int, *images: Any) -> list[str]:
    for x in images:
        if x is not None and hasattr(x, "coords") and "band" in getattr(x, "coords", {}) and x.sizes["band"] == n:
            return [str(v) for v in np.asarray(x["band"].values).tolist()]
    return [str(i + 1) for i in range(n)]


def _rows(chosen, values, bands: list[str]) -> list[dict]:
    rows = []
    for m, v in zip(chosen, values, strict=True):
        arr = np.asarray(v, dtype=np.float64)
        if arr.ndim == 1:     # per_band: band values, then the global value
            for name, bv in zip(bands, arr[:-1], strict=True):
                rows.append({"metric": m.name, "band": name, "value": float(bv),
                             "higher_is_better": m.higher_is_better, "ideal": m.ideal})
            arr = arr[-1]
        rows.append({"metric": m.name, "band": "all", "value": float(arr),
                     "higher_is_better": m.higher_is_better, "ideal": m.ideal})
    return rows


def _check_protocol_metrics(protocol: str, metrics: Iterable[str] | None):
    names = PROTOCOLS[protocol] if metrics is None else tuple(metrics)
    chosen = [get(m) for m in names]
    for m in chosen:
        if m.name not in PROTOCOLS[protocol]:
            other = [p for p, ms in PROTOCOLS.items() if m.name in ms]
            raise ParameterError(f"{m.name!r} is not a {protocol}-resolution index",
                                 expected=f"one of {', '.join(PROTOCOLS[protocol])}", got=repr(m.name),
                                 fix=(f"use protocol={other[0]!r} for it" if other else
                                      "use geofuse.metrics.generic.evaluate_fusion for the generic fusion metrics"))
    return chosen


def reduced_resolution(fused: Any, ref: Any, ratio: float,
                       metrics: Iterable[str] = ("Q2n", "SAM", "ERGAS"), compat: str = "default",
                       dim_cut: int = 0, block: int = 32, per_band: bool = True, **params: Any) -> pd.DataFrame:
    """Reduced-resolution (Wald protocol) quality of ``fused`` against the ground truth ``ref``.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
        numpy, dask, or xarray DataArrays with dims ("band", "y", "x"); same shape.
    ratio : float
        Resolution ratio used to simulate the reduced-resolution inputs (ERGAS).
    metrics : iterable of str
        Registered reduced-resolution metric names (:data:`REDUCED`).
    compat : {"default", "toolbox"}
        ``"toolbox"`` reproduces the MATLAB toolbox (``indexes_evaluation.m``): uint16 cast inside Q2n.
    dim_cut : int
        Border cut as the toolbox's ``I(dim_cut:end-dim_cut, ...)``; 0 = none (toolbox demos: 21).
    block : int
        Q2n block size (and shift) and Q window.
    per_band : bool
        Add the per-band rows of the metrics that have them.
    **params
        Passed to the metrics that accept them (``data_range`` for PSNR/SSIM, ``scc_variant="v1.3"``,
        ``valid``: a (rows, cols) boolean mask of the pixels to evaluate).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, band, value, higher_is_better, ideal`` (see the module docstring).

    Notes
    -----
    Nodata: a pixel that is the declared nodata (``.rio.nodata`` / ``_FillValue``; NaN for rasters
    opened with ``masked=True``) in any band of either image never enters an index. Pixel-wise indexes
    (SAM, ERGAS, RMSE, PSNR, CC) average over the valid pixels; the window and block indexes (Q, SSIM,
    Q2n) leave out every window or block that contains an invalid pixel, SCC every pixel whose 3x3
    Sobel support does. Without a declared nodata every pixel counts (and a NaN makes the index NaN).
    """
    compat = _check_compat(compat)
    chosen = [get(m) for m in metrics]
    valid = params.pop("valid", None)
    if valid is None:
        valid = joint_valid(fused, ref)
    f = cut_border(_unwrap(fused, "fused"), dim_cut)
    g = cut_border(_unwrap(ref, "ref"), dim_cut)
    if valid is not None:
        valid = cut_border(getattr(valid, "data", valid), dim_cut)
    base = {"ratio": ratio, "compat": compat, "block": block, "valid": valid, **params}
    lazy = [_call(m, f, g, {**base, "per_band": per_band and m.per_band}) for m in chosen]
    if any(_is_dask(v) for v in lazy):
        import dask

        values = dask.compute(*lazy)
    else:
        values = lazy
    return pd.DataFrame(_rows(chosen, values, _band_names(f.shape[0], fused, ref)), columns=COLUMNS)


def _refuse_nodata(counts: dict) -> None:
    """The full-resolution indexes have no nodata masking: refuse images that contain nodata pixels."""
    bad = {k: int(v) for k, v in counts.items() if int(v) > 0}
    if bad:
        raise InputError("The full-resolution indexes cannot leave nodata pixels out (their MTF filters and "
                         "32x32 blocks would mix them into valid blocks)",
                         expected="fused, MS and PAN without nodata pixels",
                         got=", ".join(f"{n:,} nodata pixels in the {k}" for k, n in bad.items()),
                         fix="evaluate a crop inside the valid area (e.g. .isel(x=..., y=...) on all three, "
                             "with the PAN window a multiple of 32 pixels), or use the reduced-resolution "
                             "protocol, which masks nodata")


def full_resolution_table(fused: Any, ms: Any, pan: Any, *, metrics: Iterable[str] | None = None,
                          per_band: bool = True, **params: Any) -> pd.DataFrame:
    """Full-resolution quality of ``fused`` from its MS and PAN as a tidy table.

    ``params`` are those of :func:`geofuse.metrics.full.full_resolution` (``ratio``, ``sensor``,
    ``block``, ``p``, ``q``, ``alpha``, ``beta``, ``compat``, ``phase``, ``ms_exp``, ``chunks``, ``work``,
    ``device``, ``window``). D_s also gets per-band rows (``|Q(F_b, PAN) - Q(MS~_b, PAN_f)|``).

    Images with a declared nodata are checked in the same computation: if any of the three contains
    nodata pixels an :class:`~geofuse.errors.InputError` says how many and how to crop, instead of a
    table mixing nodata into the indexes.
    """
    chosen = _check_protocol_metrics("full", metrics)
    nodata = {name: (~m).sum() for name, m in (("fused", valid_mask(fused)), ("ms", valid_mask(ms)),
                                                ("pan", valid_mask(pan))) if m is not None}
    eager = {k: v for k, v in nodata.items() if not _is_dask(v)}
    _refuse_nodata(eager)
    vals = full_resolution(fused, ms, pan, metrics=[m.name for m in chosen], per_band=per_band, **params)
    values = list(vals.values())
    lazy_counts = {k: v for k, v in nodata.items() if _is_dask(v)}
    if any(_is_dask(v) for v in values) or lazy_counts:
        import dask

        *values, counts = dask.compute(*values, lazy_counts)
        _refuse_nodata(counts)
    return pd.DataFrame(_rows(chosen, values, _band_names(np.shape(fused)[0], fused, ms)), columns=COLUMNS)


def _phase_from(fused: Any, ms: Any, pan: Any, compat: str) -> Any:
    """Where MS pixel 0 lies on the PAN grid: the fusion's own record, else the grids, else None."""
    if compat == "toolbox":
        return None
    attrs = getattr(fused, "attrs", {}) or {}
    if "geofuse_phase" in attrs:
        try:
            ph = attrs["geofuse_phase"]
            ph = json.loads(ph) if isinstance(ph, str) else ph
            return tuple(float(p) for p in ph)
        except (TypeError, ValueError):
            pass
    try:
        from ..grid import fit_grids, is_georeferenced

        if is_georeferenced(pan) and is_georeferenced(ms):
            return tuple(fit_grids(pan, ms).phase)
    except Exception:  # noqa: BLE001 - plain arrays: the default phase
        return None
    return None


def evaluate_table(fused: Any, reference: Any = None, *, ms: Any = None, pan: Any = None, sensor: Any = None,
                   ratio: int | None = None, protocol: str = "reduced", metrics: Iterable[str] | None = None,
                   compat: str = "default", dim_cut: int | None = None, block: int = 32, per_band: bool = True,
                   **params: Any) -> pd.DataFrame:
    """The evaluation behind :func:`geofuse.evaluate`: one tidy table for either protocol.

    Parameters
    ----------
    fused : array or DataArray (bands, rows, cols)
    reference : array, optional
        Ground truth on the fused grid (``protocol="reduced"``).
    ms, pan : array, optional
        The fusion's inputs (``protocol="full"``; for ``"reduced"`` the MS only gives the ratio).
    sensor : str, Sensor or gains, optional
        MTF preset for D_lambda_K / HQNR; default ``fused.attrs["geofuse_sensor"]`` if present.
    ratio : int, optional
        Default: ``fused.attrs["geofuse_ratio"]``, else from the grids / shapes.
    protocol : {"reduced", "full"}
    metrics : iterable of str, optional
        Default: every index of the protocol (:data:`PROTOCOLS`).
    compat : {"default", "toolbox"}
        ``"toolbox"``: uint16 cast in Q2n, border cut ``dim_cut = 21`` unless given, FR against the
        interp23tap MS at the toolbox's phase with circular borders. ``"default"``: the same formulas
        on the values as given (no uint16 cast, so float reflectances in [0, 1] work), no border cut
        unless given, FR interpolation at the grids' phase.
    dim_cut : int, optional
        Reduced protocol border cut (see :func:`~geofuse.metrics.reduced.cut_border`).
    block : int
        Block / window size S (Q2n, Q, QNR family).
    per_band : bool
        Per-band rows for the metrics that have them.
    **params
        Further metric parameters (``p, q, alpha, beta, phase, ms_exp, chunks, work, device, data_range,
        scc_variant``).
    """
    compat = _check_compat(compat)
    if protocol not in PROTOCOLS:
        raise ParameterError("Unknown evaluation protocol", expected=" or ".join(map(repr, PROTOCOLS)),
                             got=repr(protocol), fix="use protocol='reduced' (with a reference) or 'full' (MS + PAN)")
    attrs = getattr(fused, "attrs", {}) or {}
    if ratio is None and attrs.get("geofuse_ratio") is not None:
        ratio = int(attrs["geofuse_ratio"])
    if protocol == "full":
        missing = [n for n, v in (("ms", ms), ("pan", pan)) if v is None]
        if missing:
            raise ParameterError("The full-resolution protocol needs the MS and the PAN of the fusion",
                                 expected="ms=<low-resolution MS> and pan=<PAN>",
                                 got=f"no {' and no '.join(missing)}",
                                 fix="pass ms= and pan= (CLI: --ms MS --pan PAN)")
        if reference is not None:
            raise ParameterError("The full-resolution protocol takes no reference", expected="reference=None",
                                 got="a reference image", fix="use protocol='reduced' to compare with a reference")
        if sensor is None and attrs.get("geofuse_sensor") not in (None, "none", "generic"):
            sensor = attrs["geofuse_sensor"]
        if "phase" not in params:
            params["phase"] = _phase_from(fused, ms, pan, compat)
        return full_resolution_table(fused, ms, pan, metrics=metrics, per_band=per_band, ratio=ratio, sensor=sensor,
                                     block=block, compat=compat, **params)

    if reference is None:
        raise ParameterError("The reduced-resolution protocol needs a reference", expected="reference=<ground truth>",
                             got="None", fix="pass the original MS of a Wald-degraded pair as reference, or use "
                             "protocol='full' with ms= and pan=")
    if tuple(np.shape(fused)) != tuple(np.shape(reference)):
        raise InputError("Fused and reference images differ in shape", expected=str(tuple(np.shape(reference))),
                         got=str(tuple(np.shape(fused))), fix="evaluate the fusion of the degraded pair against "
                         "the original MS (geofuse simulate)")
    if ratio is None and ms is not None:
        r = np.shape(fused)[-1] / np.shape(ms)[-1]
        ratio = int(r) if float(r).is_integer() and np.shape(fused)[-2] == r * np.shape(ms)[-2] else None
        if ratio is None:
            from ..grid import fit_grids

            ratio = fit_grids(fused, ms).ratio
    chosen = _check_protocol_metrics("reduced", metrics)
    if ratio is None and any(m.name == "ERGAS" for m in chosen):
        raise ParameterError("The resolution ratio is unknown (ERGAS needs it)", expected="ratio= or ms=",
                             got="neither", fix="pass ratio=4 (PAN/MS pixel size ratio) or the low-resolution MS")
    if dim_cut is None:
        dim_cut = TOOLBOX_DIM_CUT if compat == "toolbox" else 0
    return reduced_resolution(fused, reference, ratio if ratio is not None else 1, metrics=[m.name for m in chosen],
                              compat=compat, dim_cut=dim_cut, block=block, per_band=per_band, **params)
