"""Issue 14: the protocol card on every result, the dataset fingerprint, `compare`, per-trial lines, and the
mean ± std tables beside results.csv. Every tree and checkpoint here is written by the test."""

import csv
import dataclasses
import json
import shutil

import pytest
import torch

from reid.cli import main as cli
from reid.config import config_to_dict, load_config
from reid.data.identity import dataset_fingerprint, describe_data
from reid.eval.evaluate import evaluate_regdb, load_model, load_untrained
from reid.records.card import REGDB_SAMPLER, SYSU_SAMPLER
from reid.records.compare import compare
from reid.records.provenance import CSV_COLUMNS, PREVIOUS_CSV_COLUMNS, write_result
from reid.utils.checkpoint import save_checkpoint
from reid.utils.errors import UserError

IMG = (48, 48)


def tiny_checkpoint(path, epoch=5, best_epoch=3, val_fraction=0.3, seed=7):
    """A random-weight tiny CrossViT whose checkpoint carries a real run config: epoch `epoch` of 5, the best
    validation epoch `best_epoch`, `val_fraction` of the training ids held out, training seed `seed`."""
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny", img_size=IMG, drop_path_rate=0.0, pretrained="none")
    model = build_model(cfg, num_classes=8, load_pretrained=False)
    run = load_config("smoke", [f"data.val_fraction={val_fraction}", "train.epochs=5", f"train.seed={seed}"])
    return save_checkpoint({"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "num_classes": 8,
                            "config": config_to_dict(run), "epoch": epoch,
                            "best": {"epoch": best_epoch, "val_mAP": 1.0}}, path)


def evaluate_cli(checkpoint, root, results, name, *extra):
    assert cli(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "sysu", "--data", str(root),
                "--trials", "2", "--results-dir", str(results), "--name", name, *extra]) == 0
    return json.loads((results / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------ the card

def test_card_of_a_before_bn_flip_rerank_evaluation(synthetic_root, tmp_path, capsys):
    root = synthetic_root / "SYSU-MM01"
    ckpt = tiny_checkpoint(tmp_path / "last.pt")
    result = evaluate_cli(ckpt, root, tmp_path / "results", "b", "--test-feature", "before_bn", "--flip", "--rerank")
    card = result["protocol"]
    assert {k: card[k] for k in ("dataset", "mode", "shots", "trials", "test_feature", "flip", "rerank")} == {
        "dataset": "sysu", "mode": "all", "shots": 1, "trials": 2, "test_feature": "before_bn", "flip": True,
        "rerank": "k-reciprocal, released code: row weights normalised, expansion when overlap > 2/3 "
                  "(k1 20, k2 6, lambda 0.3)"}
    assert card["gallery_sampler"] == SYSU_SAMPLER and "random.seed(trial)" in SYSU_SAMPLER
    assert card["splits"] == card["direction"] == card["model_per_split"] == "n/a"
    # epoch 5 of 5 with 30 % held out, best validation at epoch 3: this is not the selected checkpoint
    assert card["model_selection"] == "epoch 5, not the best validation one (epoch 3)"
    assert card["train_ids"] == "70% (30% held out for validation)"
    assert card["pretrained"] == "none (random init)" and card["preset"] == "tiny"
    assert card["config"] == "smoke" and card["seed"] == 7 and card["epoch"] == "5 of 5"
    assert card["steps"] == "unknown"  # a checkpoint without its training history (trained runs: tests/test_sweep.py)
    assert card["fingerprint"] == dataset_fingerprint(root)
    for kept in ("rank1", "mAP", "per_trial", "label", "data", "provenance"):  # the keys readers rely on
        assert kept in result
    with open(tmp_path / "results" / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert list(row) == CSV_COLUMNS
    assert row["model_selection"] == card["model_selection"] and row["fingerprint"] == card["fingerprint"]
    assert row["test_feature"] == "before_bn" and row["flip"] == "True" and row["rerank"] == card["rerank"] and row["seed"] == "7"

    out = capsys.readouterr().out  # the printed block: card, a line per trial, the average
    assert "protocol card:" in out and "test feature           before_bn" in out
    assert "model selection        epoch 5, not the best validation one (epoch 3)" in out
    for trial in (0, 1):
        line = next(x for x in out.splitlines() if x.strip().startswith(f"trial {trial} "))
        assert [part.split(":")[0].split()[-1] for part in line.split("|")] == [
            "Rank-1", "Rank-5", "Rank-10", "Rank-20", "mAP", "mINP"]
        assert f"Rank-1: {result['per_trial'][trial]['rank1']:.2f}%" in line
    average = next(x for x in out.splitlines() if x.strip().startswith("all average"))
    assert f"mAP: {result['mAP']:.2f} ± {result['std']['mAP']:.2f}%" in average


def test_the_literal_eq7_re_ranking_is_named_in_the_card_and_the_tables(synthetic_root, tmp_path, capsys):
    root = synthetic_root / "SYSU-MM01"
    ckpt = tiny_checkpoint(tmp_path / "last.pt")
    result = evaluate_cli(ckpt, root, tmp_path / "results", "literal", "--rerank", "eq7")
    assert "literal Eq. 6-7" in result["protocol"]["rerank"] and result["label"].endswith("(literal Eq. 7)")
    assert "re-ranked (literal Eq. 7)" in (tmp_path / "results" / "results.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        cli(["evaluate", "--checkpoint", str(ckpt), "--dataset", "sysu", "--data", str(root), "--rerank", "fast"])
    assert exit_info.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err

def test_card_of_the_default_after_bn_evaluation_of_the_best_checkpoint(synthetic_root, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "best.pt", epoch=3, best_epoch=3)
    card = evaluate_cli(ckpt, synthetic_root / "SYSU-MM01", tmp_path / "results", "a")["protocol"]
    assert card["test_feature"] == "after_bn" and card["flip"] is False and card["rerank"] is False
    assert card["model_selection"] == "best validation mAP on held-out training ids"
    last = tiny_checkpoint(tmp_path / "all_ids.pt", epoch=5, val_fraction=0.0)
    card = evaluate_cli(last, synthetic_root / "SYSU-MM01", tmp_path / "results", "c")["protocol"]
    assert card["model_selection"] == "last epoch" and card["train_ids"] == "all"


def test_regdb_card_merges_the_split_models_and_knows_untrained(synthetic_root, tmp_path):
    models = [load_model(tiny_checkpoint(tmp_path / f"s{s}.pt", epoch=5, best_epoch=5, seed=s)) for s in (1, 2)]
    card = evaluate_regdb(models, synthetic_root / "RegDB", splits=2, direction="t2v", device="cpu")["protocol"]
    assert card["direction"] == "t2v" and card["splits"] == 2 and card["gallery_sampler"] == REGDB_SAMPLER
    assert card["mode"] == card["shots"] == card["trials"] == "n/a"
    assert card["seed"] == "mixed: 1; 2" and card["preset"] == "tiny"
    assert card["fingerprint"] == dataset_fingerprint(synthetic_root / "RegDB")
    untrained = load_untrained(tmp_path / "s1.pt")
    card = evaluate_regdb(untrained, synthetic_root / "RegDB", splits=1, device="cpu")["protocol"]
    assert card["model_selection"] == "n/a (untrained network)" and card["pretrained"] == "none (untrained network)"


def test_a_model_without_its_run_config_says_unknown(synthetic_root):
    from reid.eval.evaluate import evaluate_sysu
    from reid.models import ModelConfig, build_model

    model = build_model(ModelConfig(preset="tiny", img_size=IMG, drop_path_rate=0.0), 8, load_pretrained=False)
    card = evaluate_sysu(model.eval(), synthetic_root / "SYSU-MM01", trials=1, device="cpu")["protocol"]
    assert card["model_selection"] == card["train_ids"] == card["config"] == card["seed"] == "unknown"
    assert card["pretrained"] == "unset (random init)"  # model.pretrained itself is known: unset


# ----------------------------------------------------------------------------------- the fingerprint

def test_fingerprint_is_stable_and_changes_with_a_file(synthetic_root, tmp_path):
    a = shutil.copytree(synthetic_root / "RegDB", tmp_path / "a" / "RegDB")
    b = shutil.copytree(synthetic_root / "RegDB", tmp_path / "b" / "RegDB")
    first = dataset_fingerprint(a)
    assert len(first) == 16 and dataset_fingerprint(a) == first == dataset_fingerprint(b)  # where it lives: no
    (a / ".DS_Store").write_text("finder")  # hidden files are not data
    assert dataset_fingerprint(a, refresh=True) == first
    image = next((a / "Visible").rglob("*.bmp"))
    image.write_bytes(image.read_bytes() + b"\0")  # one file one byte longer
    assert dataset_fingerprint(a) == first  # cached for the process ...
    changed = dataset_fingerprint(a, refresh=True)  # ... until asked again
    assert changed != first
    image.rename(image.with_name("renamed.bmp"))
    assert dataset_fingerprint(a, refresh=True) not in (first, changed)
    with pytest.raises(UserError, match="not found"):
        dataset_fingerprint(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------- compare

def a_result(tmp_path, name, real=True, **protocol):
    card = {"dataset": "sysu", "setting": "all-search, single-shot", "mode": "all", "shots": 1, "trials": 10,
            "splits": "n/a", "direction": "n/a", "model_per_split": "n/a", "gallery_sampler": SYSU_SAMPLER,
            "test_feature": "after_bn", "flip": False, "rerank": False, "model_selection": "last epoch",
            "train_ids": "all", "pretrained": "none (random init)", "preset": "tiny", "config": "smoke", "seed": 0,
            "epoch": "5 of 5", "steps": 25, "fingerprint": "0123456789abcdef", **protocol}
    result = {"label": name, "rank1": 40.0, "rank5": 60.0, "rank10": 70.0, "rank20": 80.0, "mAP": 30.0,
              "mINP": 20.0, "std": {m: 1.0 for m in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")},
              "per_trial": [], "data": describe_data(tmp_path, "sysu", synthetic=not real), "protocol": card}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(result))
    return path


def verdict(text):
    return text.strip().splitlines()[-1]


def row(text, title):
    return next(line for line in text.splitlines() if line.startswith(title + " "))


def test_compare_says_comparable_for_identical_cards(tmp_path, capsys):
    a, b = a_result(tmp_path, "a"), a_result(tmp_path, "b", seed=1)
    text = compare([a, b])
    assert "| same " in row(text, "SYSU trials") and "= paper" in row(text, "SYSU trials")
    assert "differs (model)" in row(text, "seed")
    assert "paper: not stated" in row(text, "test feature")  # the paper does not say which feature
    assert verdict(text).startswith("verdict: comparable with each other (same protocol; models differ in seed)")
    assert "comparable with the paper on every field it states" in verdict(text)
    assert cli(["compare", str(a), str(b)]) == 0 and verdict(capsys.readouterr().out) == verdict(text)


def test_compare_flags_trials_rerank_and_feature(tmp_path):
    a = a_result(tmp_path, "a")
    b = a_result(tmp_path, "b", trials=3, rerank=True, test_feature="before_bn", real=False)
    text = compare([a, b])
    for title in ("SYSU trials", "re-ranking", "test feature", "data"):
        assert "DIFFERS" in row(text, title), title
    assert "differs: B (paper: 10)" in row(text, "SYSU trials")
    line = verdict(text)
    assert line.startswith("verdict: NOT comparable with each other")
    assert all(word in line for word in ("SYSU trials", "re-ranking", "test feature"))
    assert "NOT comparable with the paper (differs: data, SYSU trials, re-ranking)" in line


def test_compare_reads_a_result_from_before_the_card(tmp_path):
    old = json.loads(a_result(tmp_path, "old").read_text())
    old["protocol"] = {k: old["protocol"][k] for k in ("dataset", "setting", "mode", "shots", "trials",
                                                       "test_feature", "flip", "rerank")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    text = compare([tmp_path / "old.json", a_result(tmp_path, "new")])
    assert "unknown" in row(text, "model selection")
    assert "RegDB splits" not in text  # the other dataset's fields are n/a on both: not shown
    assert "as far as the cards say (unknown: gallery sampler, model selection" in verdict(text)


def test_compare_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "smoke"}))
    (tmp_path / "broken.json").write_text("{")
    for path, words in ((tmp_path / "gone.json", "no such result file"),
                        (tmp_path / "summary.json", "not an evaluation result"),
                        (tmp_path / "broken.json", "not readable JSON")):
        assert cli(["compare", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and str(path) in err and words in err


# -------------------------------------------------------------------------------------------- tables

def recorded(tmp_path, rank1, seed, **protocol):
    result = json.loads(a_result(tmp_path, "r", seed=seed, **protocol).read_text())
    return {**result, "rank1": rank1, "provenance": {"command": "test"}}


def test_tables_hold_mean_and_std_over_seeds(tmp_path):
    results = tmp_path / "results"
    write_result(recorded(tmp_path, 40.0, seed=0), results, "seed0")
    write_result(recorded(tmp_path, 99.0, seed=1), results, "seed1_first_try")
    write_result(recorded(tmp_path, 50.0, seed=1), results, "seed1")  # the seed's latest row counts
    write_result(recorded(tmp_path, 10.0, seed=0, rerank=True), results, "reranked")  # another protocol
    md = (results / "results.md").read_text()
    tex = (results / "results.tex").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| smoke ")]
    assert len(rows) == 2
    assert "| 0, 1 | 45.00 ± 7.07 |" in rows[0] and "| 30.00 ± 0.00 |" in rows[0]  # sample std of 40 and 50
    assert "re-ranked" in rows[1] and "| 0 | 10.00 |" in rows[1]
    assert "$45.00 \\pm 7.07$" in tex and tex.count("\\\\\n") == 3  # header + two rows
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex


@pytest.mark.parametrize("columns", [PREVIOUS_CSV_COLUMNS, [c for c in CSV_COLUMNS if c != "steps"]],
                         ids=["before the card", "before its steps field"])
def test_a_results_csv_from_before_the_card_gets_its_columns(tmp_path, capsys, columns):
    results = tmp_path / "results"
    results.mkdir()
    with open(results / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerow({"name": "old", "rank1": "12.5", "data": "synthetic SYSU-MM01-layout"})
    write_result(recorded(tmp_path, 40.0, seed=0), results, "new")
    assert "added the protocol-card columns" in capsys.readouterr().out
    with open(results / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS and [r["name"] for r in rows] == ["old", "new"]
    assert rows[0]["rank1"] == "12.5" and rows[0]["steps"] == "" and rows[1]["seed"] == "0"
    assert "| old |" in (results / "results.md").read_text()  # an old row is a run of its own


def test_a_result_recorded_again_supersedes_the_earlier_row(tmp_path):
    results = tmp_path / "results"
    write_result(recorded(tmp_path, 46.25, seed=0), results, "reproduce_smoke")
    write_result(recorded(tmp_path, 34.81, seed=0), results, "reproduce_smoke")
    current, superseded = (results / "results.md").read_text().split("## Superseded")
    assert "34.81" in current and "46.25" not in current
    assert "| reproduce_smoke |" in superseded and "46.25" in superseded


def test_the_lineage_selection_is_named_on_the_card_whatever_the_epoch():
    from types import SimpleNamespace

    from reid.models import ModelConfig
    from reid.records.card import model_fields

    model = SimpleNamespace(cfg=ModelConfig(backbone="agw", preset="micro", csa=False, pooling="gem",
                                            drop_path_rate=0.0, img_size=(96, 48)),
                            checkpoint_info={"epoch": 4, "config": {"data": {"val_fraction": 0.0, "dataset": "sysu"},
                                                                     "train": {"epochs": 9, "seed": 0}},
                                             "selection": {"every": 2, "flip": True}})
    fields = model_fields(model)
    assert fields["model_selection"] == "lineage: best test Rank-1 of every 2 epochs (trial-0 gallery, flip)"
    assert fields["preset"] == "agw micro" and fields["epoch"] == "4 of 9" and fields["train_ids"] == "all"
