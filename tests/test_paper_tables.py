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


def test_paired_tables_of_a_sweep_resolve_only_beyond_the_interval():
    import pandas as pd

    from reid.records.stats import paired_table, seed_table

    rows = [{"label": r, "seed": s, "protocol": "sysu-all", "dataset": "sysu", "budget": 9, "rank1": v,
             "mAP": v, "mINP": v}
            for r, vals in {"base": [10, 11, 12], "far": [30, 31, 29], "near": [11, 13, 10]}.items()
            for s, v in enumerate(vals)]
    labels = {"base": "baseline", "far": "+far", "near": "+near"}
    table = paired_table(pd.DataFrame(rows), "base", labels)
    assert table.loc[("all-search", "+far"), ("mAP", "verdict")] == "higher"
    assert table.loc[("all-search", "+near"), ("mAP", "verdict")] == "not resolved"
    seeds = seed_table(pd.DataFrame(rows), labels)
    assert seeds.loc[("all-search", "+far"), ("n", "")] == 3
    assert seeds.loc[("all-search", "+far"), ("mAP", "mean")] == 30.0
    # +near's seeds give 11, 13, 10: squared deviations from the mean sum to 14/3, over n - 1 = 2
    assert seeds.loc[("all-search", "+near"), ("rank1", "sd over seeds")] == round((7 / 3) ** 0.5, 2)
    assert list(seeds.index.get_level_values("row")) == ["baseline", "+far", "+near"]
    one = paired_table(pd.DataFrame(rows[::3]), "base", labels)
    assert set(one[("mAP", "verdict")]) == {"no interval"}


def test_agw_file_holds_agws_published_numbers_labelled_as_agws():
    rows = {(r["dataset"], r["setting"], r["metric"]): float(r["value"]) for r in _rows(PAPER / "agw.csv")}
    assert {r["method"] for r in _rows(PAPER / "agw.csv")} == {"AGW (published)"}
    assert rows[("SYSU-MM01", "all-search", "rank1")] == 47.50 and rows[("SYSU-MM01", "all-search", "mAP")] == 47.65
    assert rows[("RegDB", "visible to thermal", "rank1")] == 70.05
    assert rows[("RegDB", "visible to thermal", "mAP")] == 66.37
