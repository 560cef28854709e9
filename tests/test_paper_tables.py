"""results/paper/ holds the paper's numbers verbatim: the per-table files are exactly the rows of tables.csv."""

import csv
from pathlib import Path

PAPER = Path(__file__).resolve().parents[1] / "results" / "paper"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_per_table_files_are_the_transcription_split_by_table():
    all_rows = _rows(PAPER / "tables.csv")
    assert {r["table"] for r in all_rows} == {"1", "2", "3", "4"}
    for t in "1234":
        assert _rows(PAPER / f"table{t}.csv") == [r for r in all_rows if r["table"] == t]


def test_headline_numbers_are_the_papers():
    rows = {(r["table"], r["method"], r["setting"], r["metric"]): float(r["value"])
            for r in _rows(PAPER / "tables.csv")}
    assert rows[("1", "Ours (paper)", "all-search", "rank1")] == 70.71
    assert rows[("1", "Ours (paper)", "all-search", "mAP")] == 68.05
    assert rows[("3", "baseline", "all-search", "rank1")] == 64.88
    assert rows[("4", "L_center", "all-search", "mAP")] == 67.44


def test_differences_vs_reference_weighs_the_seed_spread():
    import pandas as pd

    from reid.viz import differences_vs_reference

    rows = [{"row": r, "seed": s, "setting": "all-search", "rank1": v}
            for r, vals in {"base": [10, 11, 12], "far": [30, 31, 29], "near": [11, 13, 10]}.items()
            for s, v in enumerate(vals)]
    d = differences_vs_reference(pd.DataFrame(rows), ["base", "far", "near"], "base").set_index("row")
    assert d.loc["far", "Δ rank1 vs base"] == 19.0 and d.loc["far", "verdict"] == "exceeds the seed spread"
    assert d.loc["near", "verdict"] == "within the seed spread"
    one = differences_vs_reference(pd.DataFrame(rows[::3]), ["base", "far", "near"], "base")
    assert set(one.verdict) == {"one seed: no spread to compare with"}
