"""Provenance: commit, command, hardware without hostname, versions; labelled results on disk."""

import csv
import json
import socket
import sys

import pytest

from reid.data.identity import describe_data
from reid.records.provenance import CSV_COLUMNS, provenance, write_result
from reid.utils.errors import UserError


def test_provenance_fields():
    record = provenance(command="python -m reid evaluate --x 1", extra={"note": "hi"})
    assert len(record["commit"]) == 40 or record["commit"] == "unknown"
    assert record["dirty"] in (True, False, None)
    assert record["command"] == "python -m reid evaluate --x 1" and record["note"] == "hi"
    assert record["date"].endswith("+00:00")  # UTC, ISO 8601
    assert record["hardware"]["cpu_cores"] >= 1 and record["hardware"]["cpu"]
    assert set(record["versions"]) == {"python", "torch", "torchvision", "timm", "numpy"}
    assert all(record["versions"].values())
    assert socket.gethostname() not in json.dumps(record["hardware"])


def test_command_defaults_to_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/reid/__main__.py", "evaluate", "--data", "a b"])
    assert provenance()["command"] == "python -m reid evaluate --data 'a b'"


def test_synthetic_is_decided_by_the_manifest(tmp_path):
    (tmp_path / "synthetic.json").write_text("{}")
    (tmp_path / "SYSU-MM01").mkdir()
    real = tmp_path / "real" / "RegDB"
    real.mkdir(parents=True)
    sysu = describe_data(tmp_path / "SYSU-MM01", "sysu")
    assert sysu["kind"] == "synthetic" and sysu["label"] == "synthetic SYSU-MM01-layout"
    assert describe_data(real, "regdb") == {"kind": "real", "dataset": "RegDB", "root": str(real), "label": "RegDB"}
    assert describe_data(real, "regdb", synthetic=True)["label"] == "synthetic RegDB-layout"
    with pytest.raises(UserError, match="unknown dataset"):
        describe_data(real, "market")


def test_a_synthetic_record_names_its_generator_version_and_seed(tmp_path):
    # RegDB's bitmaps keep their sizes across generator versions, so the fingerprint cannot say which it was
    (tmp_path / "synthetic.json").write_text('{"generator_version": 5, "seed": 7}')
    (tmp_path / "RegDB").mkdir()
    assert describe_data(tmp_path / "RegDB", "regdb")["generator"] == {"version": 5, "seed": 7}


def make_result(tmp_path, rank1):
    return {
        "rank1": rank1, "rank5": 80.0, "rank10": 90.0, "rank20": 95.0, "mAP": 50.0, "mINP": 20.0,
        "std": {"rank1": 1.5, "mAP": 1.0, "mINP": 0.5},
        "data": describe_data(tmp_path, "sysu", synthetic=True),
        "protocol": {"setting": "all-search single-shot", "trials": 10, "rerank": False, "flip": True,
                     "test_feature": "after_bn"},
        "provenance": provenance(command="cmd"),
    }


def test_write_result_json_and_csv(tmp_path):
    out = tmp_path / "results"
    write_result(make_result(tmp_path, 61.234), out, "first")
    write_result(make_result(tmp_path, 70.0), out, "second")
    assert json.loads((out / "first.json").read_text())["rank1"] == 61.234
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS
    assert [r["name"] for r in rows] == ["first", "second"]
    assert rows[0]["rank1"] == "61.23" and rows[0]["data"] == "synthetic SYSU-MM01-layout"
    assert rows[0]["rank1_std"] == "1.5" and rows[0]["setting"] == "all-search single-shot"
    assert rows[0]["data_kind"] == "synthetic" and rows[1]["rerank"] == "False"


def test_write_result_refuses_unlabelled_results_and_foreign_tables(tmp_path):
    with pytest.raises(ValueError, match="which data"):
        write_result({"rank1": 1.0}, tmp_path, "x")
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="results.csv has columns"):
        write_result(make_result(tmp_path, 1.0), tmp_path, "x")
    assert not (tmp_path / "x.json").exists()  # nothing half-written


def test_dirty_flag_describes_the_code_not_the_results(tmp_path, monkeypatch):
    import subprocess

    from reid.records import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "results.csv").write_text("name\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    provenance.git_state.cache_clear()
    (tmp_path / "results" / "results.csv").write_text("name\nrow written by the run itself\n")
    assert provenance.git_state()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_state()["dirty"] is False  # computed once per process: the state at its start
    provenance.git_state.cache_clear()
    assert provenance.git_state()["dirty"] is True
    provenance.git_state.cache_clear()
