"""Quality metrics as lazy, mergeable reductions, and a small registry of them.

Each metric is registered once as a frozen :class:`Metric` (name, direction, ideal value, whether it
needs a reference, whether it is reported per band) so that tables, CLIs and plugins can be generated
from :data:`METRICS`. The functions themselves live in :mod:`geofuse.metrics.reduced`; the tidy
evaluation table in :mod:`geofuse.metrics.evaluate`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ParameterError
from .reduced import cut_border, ergas, q2n, sam

__all__ = ["METRICS", "Metric", "cut_border", "ergas", "get", "q2n", "reduced_resolution", "register", "sam"]


@dataclass(frozen=True)
class Metric:
    """A registered quality metric.

    Attributes
    ----------
    name : str
        Short name as in the literature / toolbox tables (``"Q2n"``, ``"SAM"``, ``"ERGAS"``).
    title : str
        One line for help texts and table captions.
    higher_is_better : bool
    ideal : float
        Value for a perfect fusion (the metric of an image against itself).
    needs_reference : bool
        True for reduced-resolution (Wald protocol) metrics that compare with a ground truth.
    per_band : bool
        True when the metric also has a meaningful value per band.
    func : callable
        ``func(fused, ref, **params)``; keyword parameters it does not accept are not passed.
    unit : str
        Unit of the value ("" for dimensionless).
    inputs : tuple of str
        Positional arguments of ``func``: ``("fused", "ref")``, or ``("fused", "a", "b")`` for the
        two-source fusion metrics of :mod:`geofuse.metrics.generic`.
    """

    name: str
    title: str
    higher_is_better: bool
    ideal: float
    needs_reference: bool
    per_band: bool
    func: Callable
    unit: str = ""
    inputs: tuple[str, ...] = ("fused", "ref")


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (names are unique, case-insensitively)."""
    if metric.name.lower() in {k.lower() for k in METRICS}:
        raise ParameterError(f"Metric {metric.name!r} is already registered", expected="a new name",
                             got=repr(metric.name), fix="pick another name")
    METRICS[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    """Look up a metric by name (case-insensitive); unknown names raise :class:`ParameterError`."""
    if isinstance(name, Metric):
        return name
    if isinstance(name, str):
        if name in METRICS:
            return METRICS[name]
        for key, m in METRICS.items():
            if key.lower() == name.lower():
                return m
    close = difflib.get_close_matches(str(name), list(METRICS), n=1)
    raise ParameterError(f"Unknown metric {name!r}", expected=f"one of {', '.join(sorted(METRICS))}",
                         got=repr(name),
                         fix=(f"use {close[0]!r} (the closest name)" if close
                              else "pick a name from geofuse.metrics.METRICS"))


register(Metric("Q2n", "Hypercomplex quality index Q2n (Q4/Q8), 32x32 blocks", higher_is_better=True,
                ideal=1.0, needs_reference=True, per_band=False, func=q2n))
register(Metric("SAM", "Spectral Angle Mapper (mean over pixels)", higher_is_better=False, ideal=0.0,
                needs_reference=True, per_band=False, func=sam, unit="degree"))
register(Metric("ERGAS", "Relative dimensionless global error in synthesis", higher_is_better=False,
                ideal=0.0, needs_reference=True, per_band=False, func=ergas))

from .evaluate import reduced_resolution  # noqa: E402

# Every other module of this package registers its metrics on import (as geofuse.methods does for
# methods): adding a metric family is adding a module, with no list to edit here.
import importlib as _importlib  # noqa: E402
import pkgutil as _pkgutil  # noqa: E402

for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if not _m.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m}")
