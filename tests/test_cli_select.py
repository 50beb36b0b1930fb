"""`geofuse select-metrics` through the real entry point (geofuse.cli.main), not a private parser."""

from __future__ import annotations

import json

import pandas as pd

from geofuse.cli import main


def test_select_metrics_via_main(tmp_path, capsys):
    # Two redundant "sharpness" metrics (same ranking) and one independent metric: the groups must show it.
    t = pd.DataFrame({"AG": [1.0, 2.0, 3.0, 4.0, 5.0], "SF": [2.0, 4.1, 6.0, 8.2, 10.0],
                      "SD": [5.0, 1.0, 4.0, 2.0, 3.0]},
                     index=pd.Index([f"m{i}" for i in range(5)], name="result"))
    path = tmp_path / "t.csv"
    t.to_csv(path)
    assert main(["select-metrics", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    groups = [sorted(g) for g in out["groups"]]
    assert ["AG", "SF"] in groups and ["SD"] in groups
    assert main(["select-metrics", str(tmp_path / "missing.csv")]) == 2
    assert "error" in capsys.readouterr().err
