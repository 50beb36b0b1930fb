"""Choosing a small, non-redundant set of fusion metrics from a table of metric values (SPEC §10).

The method follows the objective-metric selection study for visible–infrared fusion (Journal of Image
and Graphics, 2023; SPEC §10), run over a table of metric values for many fused results (e.g. the
methods of a benchmark on one image pair):

1. **Orientation.** Every metric is turned into a "higher is better" score (negated when lower is
   better; the direction comes from :data:`geofuse.metrics.METRICS` or is given explicitly).
2. **Redundancy groups.** Kendall's tau-b between every pair of metrics over the fused results; two
   metrics are linked when tau > ``threshold`` and the groups are the connected components of that graph
   (single linkage: a metric joins a group when it agrees with at least one member).
3. **Overall ranking.** Borda count: over each metric, the best result gets n-1 points and the worst 0
   (ties share the average of their points); a result's Borda score is its points summed over metrics.
4. **Metric scores.** Consistency = Kendall's tau-b between the metric's oriented values and the Borda
   scores (how well the metric alone reproduces the consensus). Coefficient of variation
   CV = std / |mean| of the raw values over the results (population std): how strongly it separates them.
5. **Recommendation.** Per group, the metric with the best sum of its consistency rank and its CV rank
   within the group (ties broken by consistency); groups whose best consistency is below
   ``min_consistency`` (metrics that disagree with the consensus) get no recommendation.

Kendall's tau-b (Kendall 1945, doi:10.1093/biomet/33.3.239) is computed here directly (O(n^2) over the
results; benchmarks have tens of results); tests check it against :func:`scipy.stats.kendalltau`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GeofuseError, InputError, ParameterError

__all__ = ["MetricSelection", "add_cli", "borda", "cmd_select_metrics", "kendall_tau_b", "select_metrics"]

#: Column names accepted for the long ("tidy") table layout.
_LONG_RESULT = ("result", "method", "image", "fused")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of two equally long vectors (ties in either vector handled as tau-b does).

    Returns NaN when one of the vectors is constant.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n_x, n_y = np.count_nonzero(sx), np.count_nonzero(sy)  # pairs not tied in x / in y
    if n_x == 0 or n_y == 0:
        return math.nan
    return float((sx * sy).sum()) / math.sqrt(float(n_x) * float(n_y))


def borda(oriented: pd.DataFrame) -> pd.Series:
    """Borda scores of the rows of ``oriented`` (rows = results, columns = higher-is-better scores).

    Over each column the best row gets n-1 points and the worst 0; tied rows share the average of the
    points they span. Returns the summed points per row, sorted best first.
    """
    points = oriented.rank(axis=0, method="average", ascending=True) - 1.0
    return points.sum(axis=1).sort_values(ascending=False, kind="stable")


@dataclass
class MetricSelection:
    """Result of :func:`select_metrics`.

    Attributes
    ----------
    groups : list of list of str
        Redundancy groups (Kendall tau above the threshold, connected components), largest first.
    ranking : pandas.Series
        Borda score per fused result, best first.
    scores : pandas.DataFrame
        Per metric: ``higher_is_better, group, consistency, cv, recommended``.
    recommendation : list of str
        One metric per group (groups with no metric at or above ``min_consistency`` are skipped).
    tau : pandas.DataFrame
        Kendall tau-b between the oriented metrics.
    threshold : float
    """

    groups: list[list[str]]
    ranking: pd.Series
    scores: pd.DataFrame
    recommendation: list[str]
    tau: pd.DataFrame
    threshold: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "threshold": self.threshold,
            "groups": self.groups,
            "recommendation": self.recommendation,
            "ranking": [{"result": str(k), "borda": float(v)} for k, v in self.ranking.items()],
            "scores": [{"metric": m, **{k: clean(v.item() if hasattr(v, "item") else v) for k, v in row.items()}}
                       for m, row in self.scores.iterrows()],
            **self.params,
        }

    def to_markdown(self) -> str:
        """Text report (groups, scores, recommendation, Borda ranking)."""
        lines = [f"Kendall tau threshold: {self.threshold}", "",
                 "| group | metrics |", "|---|---|"]
        lines += [f"| {g + 1} | {', '.join(ms)} |" for g, ms in enumerate(self.groups)]
        lines += ["", "| metric | higher is better | group | consistency (tau vs Borda) | CV | recommended |",
                  "|---|---|---|---|---|---|"]
        for m, r in self.scores.iterrows():
            lines.append(f"| {m} | {'yes' if r.higher_is_better else 'no'} | {r.group} | {r.consistency:.3f} | "
                         f"{r.cv:.4f} | {'**yes**' if r.recommended else ''} |")
        lines += ["", f"Recommendation: {{{', '.join(self.recommendation)}}}", "",
                  "| rank | result | Borda score |", "|---|---|---|"]
        lines += [f"| {i + 1} | {k} | {v:g} |" for i, (k, v) in enumerate(self.ranking.items())]
        return "\n".join(lines)


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    """Accept wide (rows = results, columns = metrics) or long (result, metric, value) tables."""
    cols = {c.lower(): c for c in table.columns}
    if "metric" in cols and "value" in cols:
        rkey = next((cols[k] for k in _LONG_RESULT if k in cols), None)
        if rkey is None:
            raise InputError("A long metric table needs a column naming the fused result",
                             expected=f"one of the columns {', '.join(_LONG_RESULT)}",
                             got=f"columns {list(table.columns)}", fix="add a 'result' column")
        table = table.pivot_table(index=rkey, columns=cols["metric"], values=cols["value"], aggfunc="mean")
        table.columns.name = None
    return table


def _directions(metrics: list[str], higher_is_better: Mapping[str, bool] | None) -> dict[str, bool]:
    from . import METRICS
    from .generic import VIFB_NAMES

    given = {k.lower(): bool(v) for k, v in (higher_is_better or {}).items()}
    known = {k.lower(): m.higher_is_better for k, m in METRICS.items()}
    known.update({k.lower(): METRICS[v].higher_is_better for k, v in VIFB_NAMES.items() if v in METRICS})
    out, missing = {}, []
    for m in metrics:
        if m.lower() in given:
            out[m] = given[m.lower()]
        elif m.lower() in known:
            out[m] = known[m.lower()]
        else:
            missing.append(m)
    if missing:
        raise ParameterError("The direction of some metrics is unknown", expected="registered metric names or an "
                             "explicit higher_is_better mapping", got=", ".join(missing),
                             fix="pass higher_is_better={'name': True/False} (CLI: --lower-is-better NAME,...)")
    return out


def select_metrics(table: pd.DataFrame, threshold: float = 0.7, *,
                   higher_is_better: Mapping[str, bool] | None = None,
                   min_consistency: float = 0.0) -> MetricSelection:
    """Group redundant metrics, rank the fused results by Borda count, and recommend one metric per group.

    Parameters
    ----------
    table : pandas.DataFrame
        Wide: one row per fused result (index = its name), one column per metric. Or long ("tidy"):
        columns ``result`` (or ``method``/``image``/``fused``), ``metric``, ``value``.
    threshold : float
        Two metrics are redundant when their Kendall tau-b exceeds it (default 0.7).
    higher_is_better : mapping, optional
        Directions for metrics that are not registered in :data:`geofuse.metrics.METRICS` (VIFB's file
        names such as ``Cross_entropy`` are understood); overrides the registry.
    min_consistency : float
        Groups whose best consistency is below this are given no recommendation (default 0: metrics that
        rank the results against the consensus are not recommended).

    Returns
    -------
    MetricSelection
    """
    if not (-1.0 <= float(threshold) <= 1.0):
        raise ParameterError("threshold is not a Kendall tau", expected="a value in [-1, 1]", got=repr(threshold),
                             fix="use e.g. 0.7")
    wide = _wide(pd.DataFrame(table)).astype(np.float64)
    if wide.shape[0] < 3 or wide.shape[1] < 2:
        raise InputError("Too small a metric table", expected="at least 3 fused results and 2 metrics",
                         got=f"{wide.shape[0]} results x {wide.shape[1]} metrics", fix="add results / metrics")
    if wide.isna().any().any():
        bad = [c for c in wide.columns if wide[c].isna().any()]
        raise InputError("The metric table has missing values", expected="a value for every result and metric",
                         got=f"NaN in {', '.join(map(str, bad))}", fix="drop those results or metrics first")
    metrics = [str(c) for c in wide.columns]
    wide.columns = metrics
    hib = _directions(metrics, higher_is_better)
    oriented = wide * np.array([1.0 if hib[m] else -1.0 for m in metrics])

    n = len(metrics)
    tau = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            tau[i, j] = tau[j, i] = kendall_tau_b(oriented.iloc[:, i].to_numpy(), oriented.iloc[:, j].to_numpy())
    tau_df = pd.DataFrame(tau, index=metrics, columns=metrics)

    # connected components of the graph "tau > threshold"
    parent = list(range(n))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i in range(n):
        for j in range(i + 1, n):
            if tau[i, j] > threshold:
                parent[find(i)] = find(j)
    comps: dict[int, list[str]] = {}
    for k in range(n):
        comps.setdefault(find(k), []).append(metrics[k])
    groups = sorted(comps.values(), key=lambda g: (-len(g), metrics.index(g[0])))

    ranking = borda(oriented)
    consistency = {m: kendall_tau_b(oriented[m].to_numpy(), ranking.reindex(wide.index).to_numpy())
                   for m in metrics}
    mean = wide.mean(axis=0)
    cv = {m: float(wide[m].std(ddof=0) / abs(mean[m])) if mean[m] != 0 else math.inf for m in metrics}

    recommendation, group_of = [], {}
    for g_i, g in enumerate(groups):
        for m in g:
            group_of[m] = g_i + 1
        c_rank = pd.Series({m: consistency[m] for m in g}).rank(ascending=False, method="min")
        v_rank = pd.Series({m: cv[m] for m in g}).rank(ascending=False, method="min")
        best = min(g, key=lambda m: (c_rank[m] + v_rank[m], -consistency[m], metrics.index(m)))
        if consistency[best] >= min_consistency:
            recommendation.append(best)

    scores = pd.DataFrame({"higher_is_better": [hib[m] for m in metrics], "group": [group_of[m] for m in metrics],
                           "consistency": [consistency[m] for m in metrics], "cv": [cv[m] for m in metrics],
                           "recommended": [m in recommendation for m in metrics]}, index=metrics)
    return MetricSelection(groups=groups, ranking=ranking, scores=scores, recommendation=recommendation,
                           tau=tau_df, threshold=float(threshold), params={"min_consistency": min_consistency})


# ---------------------------------------------------------------------------------------------- CLI

def cmd_select_metrics(args: argparse.Namespace) -> int:
    """``geofuse select-metrics TABLE.csv``: print the selection (text or ``--json``); exit 2 on bad input."""
    try:
        path = Path(args.table)
        if not path.is_file():
            raise InputError("The metric table does not exist", expected="a CSV file", got=str(path),
                             fix="check the path")
        table = pd.read_csv(path)
        cols = {c.lower() for c in table.columns}
        if not ({"metric", "value"} <= cols):  # wide: the first column names the results
            table = table.set_index(table.columns[0])
        directions = {m: False for m in (args.lower_is_better or "").split(",") if m}
        directions.update({m: True for m in (args.higher_is_better or "").split(",") if m})
        sel = select_metrics(table, threshold=args.threshold, higher_is_better=directions,
                             min_consistency=args.min_consistency)
    except GeofuseError as exc:
        print(f"geofuse: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(sel.to_dict(), indent=2))
    else:
        print(sel.to_markdown())
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``select-metrics`` subcommand to a ``geofuse`` argparse subparsers object."""
    p = subparsers.add_parser("select-metrics", help="group redundant fusion metrics (Kendall tau), rank results "
                              "(Borda) and recommend one metric per group, from a CSV of metric values")
    p.add_argument("table", help="CSV: wide (first column = fused result, one column per metric) or long "
                   "(columns result, metric, value)")
    p.add_argument("--threshold", type=float, default=0.7, help="Kendall tau above which metrics are redundant")
    p.add_argument("--min-consistency", type=float, default=0.0,
                   help="recommend nothing from a group whose best consistency is below this")
    p.add_argument("--lower-is-better", default=None, metavar="M1,M2", help="directions of unregistered metrics")
    p.add_argument("--higher-is-better", default=None, metavar="M1,M2", help="directions of unregistered metrics")
    p.add_argument("--json", action="store_true", help="print JSON instead of the text report")
    p.set_defaults(func=cmd_select_metrics)
    return p
