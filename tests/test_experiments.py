"""The experiment runner: resolved configs, the run cache, RegDB splits, the one recording path, settings."""

import csv
import json
import shutil

import pytest

from reid.config import load_config
from reid.experiments import (
    Settings,
    evaluate_runs,
    resolve,
    run_dir,
    settings,
    train_command,
    train_run,
    train_splits,
    with_split,
)
from reid.utils.errors import UserError
from tests.conftest import TINY


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resolve_types_every_section_and_names_the_row(synthetic_root):
    cfg = resolve("table3_ta", "sysu", synthetic_root / "SYSU-MM01", seed=3, profile="smoke")
    smoke = load_config("smoke")
    assert cfg.name == "table3_ta@smoke" and cfg.train.seed == 3
    assert cfg.model.backbone == "vit" and cfg.model.preset == smoke.model.preset  # row switch, profile base
    assert cfg.model.img_size == (smoke.data.height, smoke.data.width)  # typed, size from the data section
    assert resolve(None, "regdb", synthetic_root / "RegDB", profile="paper").name == "paper_regdb"
    with pytest.raises(UserError, match="name a config"):
        resolve(None, "sysu", synthetic_root)


def test_run_folder_changes_with_any_setting_and_with_the_generator(synthetic_root, tmp_path):
    root = synthetic_root / "SYSU-MM01"

    def folder(config="table3_full", seed=0, overrides=(), profile="smoke"):
        return run_dir(tmp_path, resolve(config, "sysu", root, seed=seed, profile=profile, overrides=overrides))

    a = folder()
    assert a == folder() and a.name.startswith("table3_full@smoke-sysu-seed0-")
    assert a != folder(seed=1)
    assert a != folder(overrides=["data.batches_per_epoch=60"])
    assert a != folder(overrides=["model.drop_path_rate=0.2"])  # a model default made explicit and changed
    assert a != folder(config="table3_baseline")
    assert a != folder(overrides=["train.test_every=2"])  # the lineage's outputs: another run
    # The same data written by another generator (here: another seed in its manifest) is another run.
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root, copy)
    manifest = json.loads((synthetic_root / "synthetic.json").read_text())
    for marker in (copy / "synthetic.json", copy / "SYSU-MM01" / "synthetic.json"):  # root + layout copy
        marker.write_text(json.dumps({**manifest, "seed": 99}))
    moved = resolve("table3_full", "sysu", copy / "SYSU-MM01", profile="smoke")
    assert run_dir(tmp_path, moved).name.rsplit("-", 1)[1] != a.name.rsplit("-", 1)[1]


def test_with_split_leaves_the_callers_config_alone(synthetic_root):
    cfg = resolve(None, "regdb", synthetic_root / "RegDB", profile="smoke")
    other = with_split(cfg, 3)
    assert other.data.regdb_split == 3 and cfg.data.regdb_split == 1


@pytest.mark.slow  # trains three tiny runs (a few seconds each)
def test_cache_hit_miss_splits_and_one_recording_path(synthetic_root, tmp_path, capsys):
    runs_dir, results = tmp_path / "runs", tmp_path / "results"
    cfg = resolve(None, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=TINY)
    run = train_run(cfg, runs_dir, device="cpu")
    stamp = (run / "last.pt").stat().st_mtime_ns
    assert train_run(cfg, runs_dir, device="cpu") == run  # hit: reused, not retrained
    assert (run / "last.pt").stat().st_mtime_ns == stamp and "reusing" in capsys.readouterr().out
    changed = resolve(None, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=[*TINY, "optim.lr=5e-4"])
    assert train_run(changed, runs_dir, device="cpu") != run  # miss: a new folder

    result = evaluate_runs([run], "sysu-all", trials=2, results_dir=results, name="mine")
    cached = run / "results" / "sysu-all-t2-trained.json"
    assert json.loads(cached.read_text())["rank1"] == result["rank1"]
    assert json.loads((results / "mine.json").read_text())["provenance"]["commit"]
    for folder in (run / "results", results):  # both written by provenance.write_result: JSON + CSV row
        rows = read_rows(folder / "results.csv")
        assert len(rows) == 1 and rows[0]["data_kind"] == "synthetic" and rows[0]["trials"] == "2"
    again = evaluate_runs([run], "sysu-all", trials=2)
    assert again == json.loads(cached.read_text())  # served from the run's cache
    untrained = evaluate_runs([run], "sysu-all", trials=2, weights="untrained")
    assert untrained["weights"] == "untrained" and untrained["checkpoints"] is None

    regdb = resolve(None, "regdb", synthetic_root / "RegDB", profile="smoke", overrides=TINY)
    splits = train_splits(regdb, runs_dir, 2, device="cpu")
    assert [p.name.split("-")[2] for p in splits] == ["split1", "split2"]
    both = evaluate_runs(splits, "regdb-t2v")
    assert both["protocol"]["splits"] == 2 and both["protocol"]["model_per_split"] is True
    assert [r["split"] for r in both["per_split"]] == [1, 2]
    with pytest.raises(UserError, match="expected one run"):
        evaluate_runs(splits, "sysu-all")
    with pytest.raises(UserError, match="unknown protocol"):
        evaluate_runs(splits, "regdb-x")


@pytest.mark.slow
def test_train_command_regdb_splits_records_with_provenance(synthetic_root, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    out = train_command("smoke", "regdb", synthetic_root / "RegDB", overrides=TINY, runs_dir=runs, device="cpu",
                        splits=2, results_dir=results)
    assert out == sorted(runs.iterdir()) and [p.name.split("-")[:3] for p in out] == [["smoke", "regdb", "split1"],
                                                                                     ["smoke", "regdb", "split2"]]
    rows = read_rows(results / "results.csv")
    assert [r["name"] for r in rows] == ["smoke_regdb_v2t", "smoke_regdb_t2v"] and rows[0]["splits"] == "2"
    assert json.loads((results / "smoke_regdb_v2t.json").read_text())["provenance"]["command"]
    with pytest.raises(UserError, match="--splits is for RegDB"):
        train_command("smoke", "sysu", synthetic_root / "SYSU-MM01", runs_dir=tmp_path / "x", splits=2)
    with pytest.raises(UserError, match="RegDB has splits 1..10"):
        train_command("smoke", "regdb", synthetic_root / "RegDB", runs_dir=tmp_path / "x", splits=11)
    with pytest.raises(UserError, match="--output-dir names one run"):
        train_command("smoke", "regdb", synthetic_root / "RegDB", output_dir=tmp_path / "x", splits=2)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_cli_and_the_notebooks_train_and_record_a_row_under_one_name(synthetic_root, tmp_path, capsys):
    from reid.cli import main as cli

    runs, results, root = tmp_path / "runs", tmp_path / "results", synthetic_root / "RegDB"
    assert cli(["train", "--config", "table3_ta", "--profile", "smoke", "--dataset", "regdb", "--data", str(root),
                "--runs-dir", str(runs), "--splits", "1", "--results-dir", str(results), "--device", "cpu",
                *[a for s in TINY for a in ("--set", s)]]) == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("table3_ta@smoke-regdb-split1-seed0-")
    capsys.readouterr()
    notebook = Settings(None, root, synthetic=True, profile="smoke", runs_dir=runs, results_dir=results)
    assert notebook.train("regdb", row="table3_ta", overrides=TINY, device="cpu") == [run]  # one run, not two
    assert "trained already" in capsys.readouterr().out
    notebook.evaluate([run], "regdb-v2t", device="cpu", record_as="from_notebook")
    rows = {r["name"]: r for r in read_rows(results / "results.csv")}
    assert rows["table3_ta@smoke_regdb_v2t"]["config"] == rows["from_notebook"]["config"] == "table3_ta@smoke"
    assert rows["table3_ta@smoke_regdb_v2t"]["mAP"] == rows["from_notebook"]["mAP"]


def test_settings_read_every_switch_in_one_place(monkeypatch):
    s = settings({})
    assert (s.profile, s.seeds, s.regdb_splits) == ("smoke", (0,), 1)
    assert s.synthetic and s.datasets() == ["sysu", "regdb"]
    paper = settings({"REID_PROFILE": "paper", "REID_SEEDS": "0,1,2"})
    assert (paper.regdb_splits, paper.seeds) == (10, (0, 1, 2))
    assert settings({"REID_PROFILE": "paper", "REID_REGDB_SPLITS": "1"}).regdb_splits == 1
    assert s.steps_cap == 0 and s.figures_dir == s.runs_dir.parent / "figures"
    budget = settings({"REID_STEPS_CAP": "25", "REID_OUTPUT_DIR": "runs/make-test"})
    assert budget.steps_cap == 25
    assert (budget.results_dir, budget.figures_dir) == (s.runs_dir / "make-test" / "results",
                                                       s.runs_dir / "make-test" / "figures")
    for env, name in [({"REID_SEEDS": "a"}, "REID_SEEDS"), ({"REID_REGDB_SPLITS": "11"}, "REID_REGDB_SPLITS"),
                      ({"REID_STEPS_CAP": "few"}, "REID_STEPS_CAP"),
                      ({"REID_SYSU_ROOT": "/x"}, "REID_REGDB_ROOT")]:
        with pytest.raises(UserError, match=name):
            settings(env)
    with pytest.raises(UserError, match="no regdb data"):
        Settings(sysu_root=s.sysu_root, regdb_root=None, synthetic=True).root("regdb")


def test_settings_pass_weights_and_workers_to_every_run(monkeypatch):
    from reid import experiments

    s = settings({"REID_PRETRAINED": "none", "REID_WORKERS": "0"})
    assert (s.pretrained, s.workers) == ("none", 0)
    monkeypatch.setattr(experiments.sys, "platform", "darwin")  # notebook workers hang there: default 0
    assert settings({}).workers == 0
    monkeypatch.setattr(experiments.sys, "platform", "linux")
    assert settings({}).workers is None


def test_the_notebooks_reuse_a_sweeps_equal_training_under_another_name(synthetic_root, tmp_path, capsys):
    from reid.cli import main as cli

    runs, root = tmp_path / "runs", synthetic_root / "SYSU-MM01"
    # a sweep trained Table 3's full model; the profile's full model is the same training under another name
    assert cli(["train", "--config", "table3_full", "--profile", "smoke", "--data", str(root),
                "--runs-dir", str(runs / "sweeps"), "--device", "cpu", *[a for s in TINY for a in ("--set", s)]]) == 0
    (swept,) = (runs / "sweeps").iterdir()
    capsys.readouterr()
    notebook = Settings(root, None, synthetic=True, profile="smoke", runs_dir=runs)
    assert notebook.train("sysu", overrides=TINY, device="cpu") == [swept]
    assert "an equal training finished in" in capsys.readouterr().out
    assert sorted(p.name for p in runs.iterdir()) == ["sweeps"]  # nothing trained again
    # the same row on the same data moved elsewhere: another folder hash (the root is in it), the same training
    moved = tmp_path / "moved"
    shutil.copytree(synthetic_root, moved)
    elsewhere = Settings(moved / "SYSU-MM01", None, synthetic=True, profile="smoke", runs_dir=runs / "sweeps")
    assert elsewhere.train("sysu", row="table3_full", overrides=TINY, device="cpu") == [swept]
    # a different setting is not equal: it trains its own run
    other = notebook.train("sysu", overrides=[*TINY, "optim.lr=5e-4"], device="cpu")
    assert other != [swept] and other[0].parent == runs


def test_settings_steps_cap_reaches_every_run(monkeypatch, synthetic_root, tmp_path):
    from reid import experiments

    seen = []
    monkeypatch.setattr(experiments, "train_run", lambda cfg, runs_dir, device=None: seen.append(cfg) or runs_dir)
    s = Settings(sysu_root=synthetic_root / "SYSU-MM01", regdb_root=None, synthetic=True, steps_cap=25,
                 runs_dir=tmp_path)
    s.train("sysu", row="table3_baseline")
    s.train("sysu")
    assert [c.train.max_steps_per_epoch for c in seen] == [25, 25]
    assert [c.name for c in seen] == ["table3_baseline@smoke", "smoke"]
    assert seen[0].train.epochs == seen[1].train.epochs and seen[0].data.batches_per_epoch == seen[1].data.batches_per_epoch


def test_set_train_seed_is_honoured_or_refused_never_dropped(synthetic_root, monkeypatch, capsys):
    """Issue 34, case 0: `--set train.seed=S` was replaced by `train`'s `--seed` default (0)."""
    from reid import experiments
    from reid.cli import main

    root = synthetic_root / "SYSU-MM01"
    assert [resolve(None, "sysu", root, profile="smoke", overrides=[f"train.seed={s}"]).train.seed
            for s in (0, 1, 2)] == [0, 1, 2]
    assert resolve(None, "sysu", root, profile="smoke").train.seed == 0
    assert resolve(None, "sysu", root, seed=2, profile="smoke", overrides=["train.seed=2"]).train.seed == 2
    with pytest.raises(UserError, match="train.seed=1 and seed 0"):
        resolve(None, "sysu", root, seed=0, profile="smoke", overrides=["train.seed=1"])
    seen = []
    monkeypatch.setattr(experiments, "train_run", lambda cfg, runs_dir, device=None: seen.append(cfg) or [])
    sets = [arg for item in TINY for arg in ("--set", item)]
    for seed in (1, 2):
        assert main(["train", "--data", str(root), "--set", f"train.seed={seed}", *sets]) == 0
    assert [c.train.seed for c in seen] == [1, 2]
    assert main(["train", "--data", str(root), "--seed", "0", "--set", "train.seed=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.seed=1" in err and len(err.splitlines()) == 1
    assert len(seen) == 2
    # make reproduce's --set reaches the notebooks' runner too; against REID_SEEDS it is refused
    s = Settings(sysu_root=root, regdb_root=None, synthetic=True)
    s.train("sysu", overrides=[*TINY, "train.seed=2"])
    assert seen[-1].train.seed == 2
    with pytest.raises(UserError, match="train.seed=2 and seed 1"):
        Settings(sysu_root=root, regdb_root=None, synthetic=True, seeds=(1,), seeds_given=True).train(
            "sysu", overrides=["train.seed=2"])


def test_reid_seeds_follow_the_rule_of_sweep_seeds():
    """Issue 34, case 6: REID_SEEDS=0,0 listed every entry twice; `--seeds 0,0` was refused already."""
    with pytest.raises(UserError, match="REID_SEEDS='0,0': a seed appears twice"):
        settings({"REID_SEEDS": "0,0"})
    assert settings({"REID_SEEDS": "0-2"}).seeds == (0, 1, 2)


def test_reid_output_dir_must_be_a_writable_folder(tmp_path, monkeypatch):
    """Issue 34, case 14: a REID_OUTPUT_DIR that is a file (or unwritable) was accepted by `settings()`."""
    import os

    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UserError, match=f"REID_OUTPUT_DIR {afile}/results: {afile} exists and is not a folder"):
        settings({"REID_OUTPUT_DIR": str(afile)})
    (tmp_path / "out" / "figures").parent.mkdir()
    (tmp_path / "out" / "figures").write_text("x")
    with pytest.raises(UserError, match="REID_OUTPUT_DIR .*figures.* exists and is not a folder"):
        settings({"REID_OUTPUT_DIR": str(tmp_path / "out")})
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a user without write access (tests run as root)
    with pytest.raises(UserError, match="REID_OUTPUT_DIR .*permission denied"):
        settings({"REID_OUTPUT_DIR": str(tmp_path / "new")})


def test_the_switch_takes_seed_ranges_and_auto_workers_as_the_cli_and_config_do():
    """Issue 34: REID_SEEDS=0-2 and REID_WORKERS=auto are the forms `--seeds` and `data.workers` accept."""
    from reid.config import MAX_WORKERS

    assert settings({"REID_SEEDS": "0-2"}).seeds == (0, 1, 2)
    assert settings({"REID_SEEDS": "0-1,4"}).seeds == (0, 1, 4)
    auto = settings({"REID_WORKERS": "auto"})
    assert auto.workers == "auto" and "data.workers=auto" in auto.run_overrides()
    assert load_config("smoke", overrides=auto.run_overrides()).data.workers == "auto"
    assert settings({"REID_WORKERS": "3"}).workers == 3
    with pytest.raises(UserError, match=f"REID_WORKERS='many': expected an integer from 0 to {MAX_WORKERS} or auto"):
        settings({"REID_WORKERS": "many"})


def test_a_resume_decision_reads_last_pt_once_and_the_resume_once_more(synthetic_root, tmp_path, monkeypatch, capsys):
    """Issue 33: a resume through the runner read last.pt four times (finished?, its epoch, the resume, the
    repair of best.pt). Now: the decision maps it once (mmap, no weights read), the engine reads it once whole
    and repairs best.pt from that copy; a finished run is reused after one mapped read."""
    import torch

    tiny = [*TINY, "model.pretrained=none"]  # a tiny backbone: the profile's pretrained start is for micro
    cfg = resolve(None, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=tiny)
    folder = tmp_path / "run"
    train_run(cfg, tmp_path, device="cpu", folder=folder)  # epoch 1 of 1
    longer = resolve(None, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=[*tiny, "train.epochs=2"])
    reads, real_load = [], torch.load

    def counting_load(path, *args, **kwargs):
        if str(path).endswith("last.pt"):
            reads.append("mapped" if kwargs.get("mmap") else "whole")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    train_run(longer, tmp_path, device="cpu", folder=folder)
    assert reads == ["mapped", "whole"] and "resuming an unfinished run after epoch 1 of 2" in capsys.readouterr().out
    reads.clear()
    train_run(longer, tmp_path, device="cpu", folder=folder)
    assert reads == ["mapped"] and "reusing it" in capsys.readouterr().out


def test_run_folders_from_before_test_every_keep_their_names(synthetic_root):
    """train.test_every off is hashed as the config was before the option existed (no cached run retrains)."""
    import hashlib

    from reid.config import config_to_dict
    from reid.data.identity import synthetic_manifest
    from reid.experiments import run_key

    cfg = resolve("table3_full", "sysu", synthetic_root / "SYSU-MM01", profile="smoke")
    config = config_to_dict(cfg)
    del config["train"]["test_every"]
    blob = json.dumps({"config": config, "synthetic": synthetic_manifest(cfg.data.root)}, sort_keys=True, default=str)
    assert run_key(cfg) == hashlib.sha1(blob.encode()).hexdigest()[:8]
