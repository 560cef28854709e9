"""reid.records.release: every recorded run's log and config beside the records; released weights that give
the recorded number again."""

import json

import pytest

from reid.cli import main
from reid.eval.evaluate import evaluate_checkpoint
from reid.experiments import evaluate_runs, resolve, train_run
from reid.records.release import RELEASED_KEYS, release, sha256
from reid.utils.checkpoint import load_checkpoint
from reid.utils.errors import UserError
from tests.conftest import TINY


@pytest.fixture(scope="module")
def recorded(synthetic_root, tmp_path_factory):
    """A tiny run and its recorded all-search result, as `make reproduce` records one."""
    tmp = tmp_path_factory.mktemp("release")
    runs, results = tmp / "runs", tmp / "results"
    cfg = resolve(None, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=TINY)
    run = train_run(cfg, runs, device="cpu")
    evaluate_runs([run], "sysu-all", trials=2, results_dir=results, name="mine")
    return run, results, runs


def test_release_copies_logs_and_slims_a_checkpoint_that_gives_the_recorded_number(recorded, synthetic_root):
    run, results, runs = recorded
    done = release(results, runs_dirs=(runs,), checkpoints=[run.name])
    assert done["logs"] == [run.name] and not done["missing"]
    for name in ("log.csv", "config.yaml"):
        assert (results / "runs" / run.name / name).read_bytes() == (run / name).read_bytes()
    released = results / "checkpoints" / f"{run.name}.pt"
    state = load_checkpoint(released)
    assert set(state) <= set(RELEASED_KEYS) and "optimizer" not in state
    assert released.stat().st_size < (run / "best.pt").stat().st_size
    manifest = json.loads((results / "checkpoints" / "manifest.json").read_text())
    assert manifest[run.name]["sha256"] == sha256(released) and manifest[run.name]["records"] == ["mine.json"]
    # the released file, evaluated as any checkpoint, gives the recorded numbers exactly
    recorded_result = json.loads((results / "mine.json").read_text())
    again = evaluate_checkpoint(str(released), "sysu", synthetic_root / "SYSU-MM01", trials=2, device="cpu",
                                results_dir=results.parent / "again", name="again")
    assert again["rank1"] == recorded_result["rank1"] and again["mAP"] == recorded_result["mAP"]


def test_only_the_weights_behind_a_record_are_released_and_checked_first(recorded, tmp_path):
    run, results, runs = recorded
    with pytest.raises(UserError, match="no run folder"):
        release(results, runs_dirs=(runs,), checkpoints=["not-a-run"])
    unrecorded = tmp_path / "results"
    unrecorded.mkdir()
    with pytest.raises(UserError, match="no result JSON"):
        release(unrecorded, runs_dirs=(runs,), checkpoints=[run.name])
    assert not (unrecorded / "runs").exists()  # checked before anything was written


def test_release_command_is_one_line_per_artefact(recorded, capsys):
    run, results, runs = recorded
    assert main(["release", "--results-dir", str(results), "--runs-dir", str(runs), "--checkpoint", run.name]) == 0
    out = capsys.readouterr().out
    assert "the log and config of 1 recorded runs" in out and "sha256" in out
