"""Tidy evaluation tables over the metric registry."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from . import get
from .reduced import _check_compat, _is_dask, _unwrap, cut_border

__all__ = ["reduced_resolution"]

COLUMNS = ["metric", "band", "value", "higher_is_better", "ideal"]


def _call(metric, fused, ref, params: dict[str, Any]):
    accepted = inspect.signature(metric.func).parameters
    return metric.func(fused, ref, **{k: v for k, v in params.items() if k in accepted})


def reduced_resolution(fused: Any, ref: Any, ratio: float,
                       metrics: Iterable[str] = ("Q2n", "SAM", "ERGAS"), compat: str = "default",
                       dim_cut: int = 0, block: int = 32) -> pd.DataFrame:
    """Reduced-resolution (Wald protocol) quality of ``fused`` against the ground truth ``ref``.

    Parameters
    ----------
    fused, ref : array (bands, rows, cols)
        numpy, dask, or xarray DataArrays with dims ("band", "y", "x"); same shape.
    ratio : float
        Resolution ratio used to simulate the reduced-resolution inputs (ERGAS).
    metrics : iterable of str
        Registered metric names (see :data:`geofuse.metrics.METRICS`).
    compat : {"default", "toolbox"}
        ``"toolbox"`` reproduces the MATLAB toolbox (``indexes_evaluation.m``): uint16 cast inside Q2n.
    dim_cut : int
        Border cut as the toolbox's ``I(dim_cut:end-dim_cut, ...)``; 0 = none (toolbox demos: 21).
    block : int
        Q2n block size (and shift).

    Returns
    -------
    pandas.DataFrame
        One row per metric (``band == "all"`` for global values) with columns
        ``metric, band, value, higher_is_better, ideal``. All metrics are evaluated in a single
        ``dask.compute`` call, so shared inputs are read once.
    """
    compat = _check_compat(compat)
    chosen = [get(m) for m in metrics]
    f = cut_border(_unwrap(fused, "fused"), dim_cut)
    g = cut_border(_unwrap(ref, "ref"), dim_cut)
    params = {"ratio": ratio, "compat": compat, "block": block}
    lazy = [_call(m, f, g, params) for m in chosen]
    if any(_is_dask(v) for v in lazy):
        import dask

        values = dask.compute(*lazy)
    else:
        values = lazy
    rows = [{"metric": m.name, "band": "all", "value": float(np.asarray(v)),
             "higher_is_better": m.higher_is_better, "ideal": m.ideal}
            for m, v in zip(chosen, values, strict=True)]
    return pd.DataFrame(rows, columns=COLUMNS)
