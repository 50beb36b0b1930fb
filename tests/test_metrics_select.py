"""Metric selection (geofuse.metrics.select): Kendall tau vs scipy, Borda by hand, grouping, CLI, VIFB table."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from geofuse.errors import InputError, ParameterError
from geofuse.metrics.select import add_cli, borda, kendall_tau_b, select_metrics

from .conftest import shared_path


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_b_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n = 26
    x = rng.integers(0, 8, n).astype(float)  # many ties
    y = x + rng.integers(-3, 4, n)
    assert kendall_tau_b(x, y) == pytest.approx(scipy.stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)
    u, v = rng.normal(size=n), rng.normal(size=n)
    assert kendall_tau_b(u, v) == pytest.approx(scipy.stats.kendalltau(u, v).statistic, abs=1e-12)
    assert np.isnan(kendall_tau_b(np.ones(n), v))


def test_borda_by_hand():
    """Three results, two metrics (already oriented, higher is better).

    m1: R1=3, R2=2, R3=1 -> points R1=2, R2=1, R3=0.
    m2: R1=5, R2=5, R3=9 -> R3 best (2); R1 and R2 tie for points 0 and 1 -> 0.5 each.
    Totals: R1 = 2.5, R2 = 1.5, R3 = 2.0 -> ranking R1, R3, R2.
    """
    t = pd.DataFrame({"m1": [3.0, 2.0, 1.0], "m2": [5.0, 5.0, 9.0]}, index=["R1", "R2", "R3"])
    b = borda(t)
    assert list(b.index) == ["R1", "R3", "R2"]
    assert b.to_dict() == {"R1": 2.5, "R3": 2.0, "R2": 1.5}


def _toy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    return pd.DataFrame({
        "SD": 30 + 5 * base,                       # higher is better (registered)
        "AG": np.exp(base),                        # monotone in SD: tau = 1
        "CE": 1.0 - 0.1 * base,                    # lower is better (registered): oriented, tau = 1 with SD
        "noise": rng.normal(size=12),              # independent, direction given explicitly
    }, index=[f"r{i}" for i in range(12)])


def test_grouping_orientation_and_recommendation():
    sel = select_metrics(_toy(), threshold=0.7, higher_is_better={"noise": True})
    assert sel.groups[0] == ["SD", "AG", "CE"]          # CE joins only because it is oriented first
    assert ["noise"] in sel.groups
    assert sel.tau.loc["SD", "CE"] == pytest.approx(1.0)
    # consistency of the three identical rankings with their own Borda consensus is high, CV differs:
    # CV(SD) = 5*std(base)/30 ~ 0.17; CV(CE) = 0.1*std/1 ~ 0.1; CV(AG) of exp(base) is the largest.
    sc = sel.scores
    assert sc.loc["AG", "cv"] > sc.loc["SD", "cv"] > sc.loc["CE", "cv"]
    assert sel.recommendation[0] == "AG"
    assert bool(sc.loc["AG", "recommended"]) and not bool(sc.loc["SD", "recommended"])
    # long ("tidy") layout gives the same answer
    long = _toy().rename_axis("method").reset_index().melt(id_vars="method", var_name="metric", value_name="value")
    sel2 = select_metrics(long, threshold=0.7, higher_is_better={"noise": True})
    assert {frozenset(g) for g in sel2.groups} == {frozenset(g) for g in sel.groups}  # pivot sorts the columns
    assert sel2.recommendation == sel.recommendation


def test_errors():
    with pytest.raises(ParameterError):
        select_metrics(_toy())  # "noise" has no known direction
    with pytest.raises(ParameterError):
        select_metrics(_toy(), threshold=3, higher_is_better={"noise": True})
    t = _toy()
    t.iloc[0, 0] = np.nan
    with pytest.raises(InputError):
        select_metrics(t, higher_is_better={"noise": True})


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="geofuse")
    add_cli(ap.add_subparsers(dest="command", required=True))
    return ap


def test_cli(tmp_path, capsys):
    path = tmp_path / "table.csv"
    _toy().rename_axis("result").to_csv(path)
    args = _parser().parse_args(["select-metrics", str(path), "--higher-is-better", "noise", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommendation"][0] == "AG" and out["threshold"] == 0.7
    args = _parser().parse_args(["select-metrics", str(path)])  # direction of "noise" unknown
    assert args.func(args) == 2
    assert "direction" in capsys.readouterr().err
    args = _parser().parse_args(["select-metrics", str(tmp_path / "missing.csv")])
    assert args.func(args) == 2


def test_vifb_fight_table():
    """VIFB's MATLAB table (26 results x 13 metrics): tau against scipy, and the published metrics SD and Qabf
    (SPEC §10: {SD, Qabf} or {SD, Qcb}) are non-redundant and both recommended at threshold 0.7."""
    shared_path("data", "scenarios", "ivf", "VIFB", "metrics_fight_matlab")
    from simulation.metric_selection import vifb_table

    table = vifb_table()
    assert table.shape == (26, 13)
    sel = select_metrics(table, threshold=0.7)
    sign = {"Cross_entropy": -1, "Qcv": -1, "Rmse": -1}
    for m1, m2 in (("Variance", "Qabf"), ("Psnr", "Rmse"), ("Qcv", "Cross_entropy")):
        ref = scipy.stats.kendalltau(sign.get(m1, 1) * table[m1], sign.get(m2, 1) * table[m2]).statistic
        assert sel.tau.loc[m1, m2] == pytest.approx(ref, abs=1e-12)
    assert sel.scores.loc["Variance", "group"] != sel.scores.loc["Qabf", "group"]
    assert {"Variance", "Qabf"} <= set(sel.recommendation)
