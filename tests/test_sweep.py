"""`python -m reid sweep`: planning, bad input, paired intervals, and a tiny grid through submitit's local
executor (run, run again: reused; killed mid-way and started again: same numbers)."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reid.cli import main
from reid.records.stats import paired_difference, paired_frame, t_factor
from reid.sweep import (
    adopt_records,
    budget_overrides,
    committed_summaries,
    committed_summary,
    finished_jobs,
    finished_twin,
    launch,
    parse_seeds,
    plan,
    record_job,
    run_job,
    write_sweep_tables,
)
from reid.utils.errors import UserError

# The smoke profile made tiny: 2 ids x 2 images a batch, 3 epochs of 1 step (budget 3), the micro preset.
TINY_GRID = ["data.num_ids=2", "data.num_instances=2", "train.epochs=3", "train.eval_every=3",
        "optim.milestones=[2]", "optim.warmup_epochs=1"]


def _roots(synthetic_root):
    return {"sysu": synthetic_root / "SYSU-MM01", "regdb": synthetic_root / "RegDB"}


def test_seeds_parse_or_fail_naming_the_text():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,2") == (0, 2)
    assert parse_seeds("0-1,7") == (0, 1, 7)
    for bad in ("a", "3-1", "-1", "0,0", "", "1-"):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)


def test_paired_interval_matches_a_hand_computed_case():
    # differences 6.1, 3.8, 5.7: mean 5.2, sd sqrt(1.51) = 1.22882, t(0.975, 2) = 4.30265,
    # half-width 4.30265 * 1.22882 / sqrt(3) = 3.05262
    d = paired_difference([31.2, 29.8, 33.0], [25.1, 26.0, 27.3])
    assert d["n"] == 3 and math.isclose(d["mean"], 5.2, abs_tol=1e-9)
    assert math.isclose(d["sd"], math.sqrt(1.51), rel_tol=1e-9)
    assert math.isclose(d["t"], 4.302653, rel_tol=1e-6)
    assert math.isclose(d["low"], 5.2 - 3.05262, abs_tol=1e-4) and math.isclose(d["high"], 5.2 + 3.05262, abs_tol=1e-4)
    assert d["excludes_zero"]
    assert not paired_difference([1.0, 3.0], [2.0, 2.0])["excludes_zero"]  # +-1: the interval holds 0
    assert math.isclose(t_factor(5), 2.776445, rel_tol=1e-6)


def test_paired_frame_pairs_by_seed_not_by_position():
    import pandas as pd

    rows = [{"label": "base", "dataset": "sysu", "protocol": "sysu-all", "budget": 9, "seed": s, "mAP": v}
            for s, v in [(0, 10.0), (1, 20.0), (2, 30.0)]]
    rows += [{"label": "row", "dataset": "sysu", "protocol": "sysu-all", "budget": 9, "seed": s, "mAP": v}
             for s, v in [(2, 31.0), (0, 12.0)]]  # seed 1 missing, out of order
    out = paired_frame(pd.DataFrame(rows), "base").iloc[0]
    assert out["seeds"] == [0, 2] and out["n"] == 2 and math.isclose(out["mean"], 1.5)


def test_budget_is_spread_over_the_profiles_epochs():
    from reid.config import load_config

    smoke = load_config("smoke")
    assert budget_overrides(smoke, 3600) == ["data.batches_per_epoch=400", "train.max_steps_per_epoch=400"]
    with pytest.raises(UserError, match="below one step per epoch"):
        budget_overrides(smoke, 5)
    with pytest.raises(UserError, match="not a multiple"):
        budget_overrides(smoke, 1000)


def test_rows_with_equal_settings_share_one_job(synthetic_root, tmp_path):
    grid = plan(["table3_full", "table4_trihardw", "table3_baseline:0-1"], (0,), ("sysu",), (3,), "smoke",
                _roots(synthetic_root), TINY_GRID, tmp_path)
    # table4_trihardw is the full model under another name: 1 job for both, + 2 baseline seeds
    assert len(grid.jobs) == 3 and len(grid.entries) == 4
    assert grid.entries[0]["job"] == grid.entries[1]["job"]
    assert [e["seed"] for e in grid.entries if e["label"] == "table3_baseline"] == [0, 1]


@pytest.mark.parametrize("name", ["controls_loss", "controls_csa", "recipe_parity", "baseline_retuned",
                                  "data_seed1", "data_seed2"])
def test_control_grids_resolve_every_row(name, synthetic_root, tmp_path):
    """Issue 32's control grids: every row resolves, each to a training of its own."""
    from reid.sweep import GRIDS

    spec = GRIDS[name]
    grid = plan(spec["rows"], parse_seeds(spec["seeds"]), spec["datasets"], (3,), "smoke", _roots(synthetic_root),
                TINY_GRID, tmp_path)
    assert len(grid.jobs) == len(spec["rows"]) * len(parse_seeds(spec["seeds"]))


@pytest.mark.parametrize("name,command", [("recipe_parity", "python -m reid synth --out data/dev-v5 --seed 7"),
                                          ("data_seed2", "python -m reid synth --out data/synthetic-d2 --seed 2")])
def test_a_grid_on_another_draw_asks_for_its_data(name, command, tmp_path, capsys):
    code = main(["sweep", "--grid", name, "--runs-dir", str(tmp_path / "runs"),
                 "--results-dir", str(tmp_path / "results")])
    assert code == 2 and command in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args,message", [
    (["--rows", "table3_nonexistent"], "table3_nonexistent"),
    (["--rows", "table3_full", "--seeds", "zero"], "--seeds"),
    (["--rows", "table3_full:1-0"], "--rows table3_full:"),
    (["--rows", "table3_full", "--jobs", "0"], "--jobs 0"),
    (["--rows", "table3_full", "--launcher", "pbs"], "--launcher 'pbs'"),
    (["--rows", "table3_full", "--budgets", "5"], "below one step per epoch"),
    (["--rows", "table3_full", "--budgets", "many"], "--budgets"),
    (["--rows", "table3_full", "--datasets", "market"], "--datasets 'market'"),
    # issue 34: case 3 (0 silently trained the profile's full budget), 6 (repeats), 7, 9 and the low ones
    (["--rows", "table3_full", "--budgets", "0"], "--budgets '0': a budget is a number of training steps >= 1"),
    (["--rows", "table3_full", "--budgets", "3,3"], "--budgets '3,3': a budget appears twice"),
    (["--rows", "table3_full", "--budgets", "9", "--baseline", "table3_nope"], "--baseline 'table3_nope'"),
    (["--rows", "table3_full", "--time", "0"], "--time 0"),
    (["--rows", "table3_full", "--time", "-5"], "--time -5"),
    (["--rows", "table3_full", "--datasets", ""], "--datasets: name sysu and/or regdb"),
    (["--rows", "table3_full", "--name", "../../x"], "--name '../../x'"),
    (["--rows", "table3_full", "--gpus-per-job", "-1"], "--gpus-per-job -1"),
    (["--rows", "table3_full", "--cpus-per-job", "0"], "--cpus-per-job 0"),
])
def test_bad_input_is_one_line_before_any_job(args, message, synthetic_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["sweep", "--name", "bad", "--data", str(synthetic_root), "--runs-dir", str(runs),
                 "--results-dir", str(tmp_path / "results"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not runs.exists()  # nothing started


def test_slurm_launcher_needs_sbatch(synthetic_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code = main(["sweep", "--name", "bad", "--rows", "table3_full", "--launcher", "slurm", "--data",
                 str(synthetic_root), "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "r")])
    assert code == 2 and "sbatch" in capsys.readouterr().err


def test_slurm_launcher_needs_srun_and_a_one_line_sbatch_refusal(synthetic_root, tmp_path, capsys, monkeypatch):
    """Issue 34, case 8: a missing srun, or an sbatch that refuses the job, was a 30-line traceback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.path.dirname(sys.executable)}")
    args = ["sweep", "--name", "bad", "--rows", "table3_full", "--budgets", "3", "--launcher", "slurm", "--data",
            str(synthetic_root), "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "r"),
            *[a for item in TINY_GRID for a in ("--set", item)]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "no srun" in err and len(err.splitlines()) == 1, err
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # submitit relays sbatch's stderr
    refused = "error: --launcher slurm: sbatch refused the job array: sbatch: error: invalid partition specified: gpu"
    assert errors == [refused] and "Traceback" not in err, err


class _FakeJob:
    """A submitit job handle that ends when told to; records its cancellation."""

    def __init__(self, index, done_after):
        self.index, self.polls, self.done_after, self.cancelled = index, 0, done_after, False
        self.job_id = str(index)

    def done(self):
        self.polls += 1
        return self.done_after is not None and self.polls > self.done_after

    def result(self):
        return {"run": f"run{self.index}", "train_s": 0, "steps": 3, "results": {}}

    def cancel(self, check=True):
        self.cancelled = True


class _FakeExecutor:
    def __init__(self, plan_of_jobs):
        self.plan, self.jobs = plan_of_jobs, []

    def submit(self, fn, job):
        self.jobs.append(_FakeJob(len(self.jobs), self.plan[len(self.jobs)]))
        return self.jobs[-1]


def _fake_grid(n):
    from reid.sweep import Grid, Job

    return Grid(jobs=[Job("table3_full", "sysu", "/x", seed, 3, "smoke", (), "runs") for seed in range(n)])


def test_a_failed_record_write_stops_the_other_jobs_not_orphans_them(monkeypatch):
    """Issue 34, case 5: `on_done` raising (a full results disk) ended the sweep while its other job trained on."""
    from reid import sweep

    executor = _FakeExecutor([0, None, None])  # job 0 ends at once, job 1 trains on, job 2 waits its turn
    monkeypatch.setattr(sweep, "_executor", lambda *a, **k: executor)

    def full_disk(index, summary):
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=r"job 1 of 3 ended but its result could not be recorded .*No space left.*"
                                        r"cancelled its 1 running jobs"):
        launch(_fake_grid(3), "local", 2, "unused", on_done=full_disk, poll_s=0)
    assert [j.cancelled for j in executor.jobs] == [False, True]  # job 2 never started


def test_sigterm_stops_the_sweep_and_its_jobs(monkeypatch):
    """Issue 34, case 4: a SIGTERM ended the sweep but its submitit worker kept training."""
    from reid import sweep

    executor = _FakeExecutor([None, None])
    monkeypatch.setattr(sweep, "_executor", lambda *a, **k: executor)
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sweep.time, "sleep", lambda s: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(KeyboardInterrupt):
        launch(_fake_grid(2), "local", 2, "unused", poll_s=0)
    assert [j.cancelled for j in executor.jobs] == [True, True]
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again


def test_a_damaged_record_is_named_and_treated_as_missing(synthetic_root, tmp_path, capsys):
    """Issue 34, cases 12 and 13: a truncated record (here or in a sibling sweep), one of another shape, or a
    hidden temp file left by a kill crashed every sweep and notebooks 06/07 with an error naming no file."""
    from reid.sweep import collect, entry_name, write_grid

    grid = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path)
    out, sibling = tmp_path / "sweeps" / "this", tmp_path / "sweeps" / "other"
    out.mkdir(parents=True)
    sibling.mkdir()
    mine = out / f"{entry_name(grid.entries[0], 'sysu-all')}.json"
    mine.write_text('{"rank1": 12.5, "sweep": {"trai')  # cut short
    (sibling / f"{entry_name(grid.entries[0], 'sysu-all')}.json").write_text('{"sweep": "not a mapping"}')
    (sibling / f"{entry_name(grid.entries[0], 'sysu-indoor')}.json").write_text("[1, 2")
    (out / f".{mine.name}.1234-abcd.tmp.json").write_text('{"provenance": ')  # a kill during a write
    assert adopt_records(grid, out) == []
    assert collect(grid, out) == ([], [0]) and committed_summaries(grid, out) == {}
    text = capsys.readouterr().out
    assert f"warning: {mine}: unreadable (JSONDecodeError" in text and "treated as missing" in text
    assert "other/table3_full-sysu-seed0-3steps-sysu-all.json: not a result record" in text
    record = write_grid(grid, [None], out)
    assert json.loads(record.read_text())["trained_at_commits"] == []


def test_retrain_trains_into_a_fresh_run_folder(synthetic_root, tmp_path, monkeypatch):
    """Issue 34, case 11: `--retrain` reused the finished run folder. It now trains `<run>-retrain<k>` beside it
    (the finished run, and the records naming it, are left alone; a stopped retrain resumes its folder)."""
    from reid import experiments, sweep
    from reid.experiments import run_dir
    from reid.utils.checkpoint import save_checkpoint

    grid = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path)
    cfg = sweep.job_config(grid.jobs[0])
    run = run_dir(tmp_path, cfg)
    save_checkpoint({"model": {}, "config": {}, "epoch": cfg.train.epochs}, run / "last.pt")  # a finished run
    assert sweep.fresh_run_dir(run, cfg) == run.with_name(f"{run.name}-retrain1")
    save_checkpoint({"model": {}, "config": {}, "epoch": cfg.train.epochs}, run.with_name(f"{run.name}-retrain1") / "last.pt")
    save_checkpoint({"model": {}, "config": {}, "epoch": 1}, run.with_name(f"{run.name}-retrain2") / "last.pt")  # a stopped retrain
    assert sweep.fresh_run_dir(run, cfg) == run.with_name(f"{run.name}-retrain2")
    trained = []

    def fake_train_run(cfg, runs_dir, device=None, folder=None):
        trained.append(folder)
        raise RuntimeError("stop here")

    monkeypatch.setattr(experiments, "train_run", fake_train_run)
    with pytest.raises(RuntimeError, match="stop here"):
        run_job(dataclasses.replace(grid.jobs[0], fresh=True))
    assert trained == [run.with_name(f"{run.name}-retrain2")]
    launched = []
    monkeypatch.setattr(sweep, "launch", lambda todo, *a, **k: launched.extend(todo.jobs) or
                        [{"error": "stopped"} for _ in todo.jobs])
    sweep.sweep_command(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID,
                        "local", 1, "again", tmp_path, tmp_path / "results", retrain=True)
    assert [j.fresh for j in launched] == [True]


def test_check_validates_a_whole_grid_and_runs_nothing(synthetic_root, tmp_path, capsys):
    """Issue 34, case 10: `make ablation` validated each grid only when its turn came (hours in). `--check`
    validates a grid and stops; the Makefile checks every grid before the first trains."""
    from pathlib import Path

    args = ["sweep", "--grid", "table4", "--check", "--data", str(synthetic_root), "--runs-dir",
            str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert main(args) == 0
    assert "sweep table4: 30 entries -> 30 jobs; checked, nothing run" in capsys.readouterr().out
    assert main([*args, "--baseline", "table3_nope"]) == 2
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "results").rglob("*.json"))
    recipe = Path(__file__).resolve().parents[1].joinpath("Makefile").read_text().split("\nablation:")[1]
    checks, trains = recipe.index("--check"), recipe.index("--jobs $(JOBS)")
    assert checks < trains, "make ablation must check every grid before the first one trains"


def _metrics(summaries):
    return [s["results"] for s in summaries]


@pytest.mark.slow
def test_tiny_grid_through_submitits_local_executor(synthetic_root, tmp_path):
    roots = _roots(synthetic_root)
    grid = plan(["table3_baseline", "table3_full", "table4_trihardw"], (0, 1), ("sysu", "regdb"), (3,), "smoke",
                roots, TINY_GRID, tmp_path / "runs")
    assert len(grid.jobs) == 8 and len(grid.entries) == 12
    seen = []
    summaries = launch(grid, "local", 2, tmp_path / "jobs", on_done=lambda i, s: seen.append(i), poll_s=0.2)
    assert sorted(seen) == list(range(8)) and not [s for s in summaries if "error" in s]
    assert {s["steps"] for s in summaries} == {3}  # the budget, exactly
    for index, summary in enumerate(summaries):
        record_job(grid, index, summary, tmp_path / "results")
    records = sorted(p.name for p in (tmp_path / "results").glob("*.json"))
    assert len(records) == 12 * 2  # two protocols per entry, aliases recorded under their own row
    card = json.loads((tmp_path / "results" / "table4_trihardw-regdb-seed1-3steps-regdb-t2v.json").read_text())
    assert card["protocol"]["steps"] == 3 and card["sweep"]["label"] == "table4_trihardw"
    tables = write_sweep_tables(grid, summaries, tmp_path / "results")
    text = tables["summary"].read_text()
    assert tables["failed"] == 0 and "Partial" not in text and "table3_baseline (baseline)" in text
    assert "regdb-t2v, 3 training steps" in text
    # started again: every run is reused (no checkpoint is written again), the numbers are the same
    def checkpoints():
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.pt")}

    before = checkpoints()
    again = launch(grid, "local", 2, tmp_path / "jobs2", poll_s=0.2)
    assert _metrics(again) == _metrics(summaries)
    assert checkpoints() == before
    logs = "".join(p.read_text() for p in (tmp_path / "jobs2").glob("*_log.out"))
    assert logs.count("trained already, reusing it") == 8
    # another sweep that names the full model only as table4_trihardw reuses table3_full's run
    alone = plan(["table4_trihardw"], (0,), ("sysu",), (3,), "smoke", roots, TINY_GRID, tmp_path / "runs")
    twin = finished_twin(alone.jobs[0])
    assert twin is not None and twin.name.startswith("table3_full@smoke-sysu-seed0-")
    assert finished_jobs(alone) == [0]
    reused = run_job(alone.jobs[0])
    assert reused["run"] == str(twin) and checkpoints() == before  # nothing trained, no new run folder
    full0 = next(e["job"] for e in grid.entries
                 if (e["label"], e["dataset"], e["seed"]) == ("table3_full", "sysu", 0))
    assert reused["results"] == summaries[full0]["results"]
    # no runs, only committed records: a Table 4 sweep adopts Table 3's record of the same training
    import shutil

    shutil.copytree(tmp_path / "results", tmp_path / "sweeps" / "table3")
    adopted = adopt_records(alone, tmp_path / "sweeps" / "table4")
    assert sorted(p.name for p in adopted) == [f"table4_trihardw-sysu-seed0-3steps-sysu-{m}.json"
                                               for m in ("all", "indoor")]
    card = json.loads(adopted[0].read_text())
    assert card["sweep"]["label"] == "table4_trihardw"
    assert card["sweep"]["reused_from"].startswith("table3/table3_full-sysu-seed0-3steps-")
    read = committed_summaries(alone, tmp_path / "sweeps" / "table4")
    assert list(read) == [0] and read[0]["results"] == reused["results"]
    assert adopt_records(alone, tmp_path / "sweeps" / "table4") == []  # recorded already: nothing copied
    other = plan(["table4_trihardw"], (0,), ("sysu",), (3,), "smoke", roots, [*TINY_GRID, "loss.margin=0.5"],
                 tmp_path / "runs")  # other settings: Table 3's record does not answer it
    assert adopt_records(other, tmp_path / "sweeps" / "table4b") == []


@pytest.mark.slow
def test_a_sweep_killed_mid_way_resumes_to_the_same_numbers(synthetic_root, tmp_path):
    """The CLI in a subprocess, killed (its whole process group) once a run has a checkpoint of an unfinished
    run, then started again: the final numbers equal an uninterrupted sweep's."""
    base = [sys.executable, "-m", "reid", "sweep", "--rows", "table3_full", "--seeds", "0-1", "--budgets", "6",
            "--data", str(synthetic_root), "--jobs", "1",
            *[a for s in TINY_GRID[:2] + ["train.epochs=6", "train.eval_every=6", "optim.milestones=[4]"]
              for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(name, tag):
        return [*base, "--name", name, "--runs-dir", str(tmp_path / f"runs-{tag}"),
                "--results-dir", str(tmp_path / f"results-{tag}")]

    subprocess.run(run("whole", "a"), env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(run("killed", "b"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs-b").glob("*/last.pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out = subprocess.run(run("killed", "b"), env=env, check=True, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in (tmp_path / "runs-b" / "jobs" / "killed").glob("*_log.out"))
    assert "resuming an unfinished run" in logs or "trained already" in logs, out.stdout[-2000:]

    def numbers(tag, name):
        csv = (tmp_path / f"results-{tag}" / name / "runs.csv").read_text().splitlines()
        return sorted(",".join(line.split(",")[:-1]) for line in csv)  # without the run folder's name

    assert numbers("b", "killed") == numbers("a", "whole")


@pytest.mark.slow
def test_notebooks_read_committed_results_and_train_only_what_is_missing(synthetic_root, tmp_path, monkeypatch,
                                                                         capsys):
    from reid import sweep
    from reid.experiments import Settings

    monkeypatch.setitem(sweep.GRIDS, "tiny", {"rows": ["table3_baseline", "table4_trihardw:0-1"], "seeds": "0",
                                              "datasets": ("sysu",), "budgets": None})
    S = Settings(sysu_root=synthetic_root / "SYSU-MM01", regdb_root=None, synthetic=True, steps_cap=1,
                 runs_dir=tmp_path / "runs", results_dir=tmp_path / "results", missing="train")
    assert Settings(sysu_root=None, regdb_root=None, synthetic=True).missing == "skip"  # the default
    first = sweep.notebook_sweep(S, "tiny")
    assert "3 jobs; 0 read from" in capsys.readouterr().out
    assert set(first["budget"]) == {9} and len(first) == 3 * 2  # 9 epochs x 1 step; 2 protocols per entry
    # a fresh machine: no runs, only the committed records -> everything is read, nothing trained
    import shutil

    shutil.rmtree(tmp_path / "runs")
    again = sweep.notebook_sweep(S, "tiny")
    assert "3 jobs; 3 read from" in capsys.readouterr().out and not (tmp_path / "runs").exists()
    cols = ["label", "seed", "protocol", "rank1", "mAP"]
    assert again[cols].sort_values(cols).values.tolist() == first[cols].sort_values(cols).values.tolist()
    # other settings (a record of another training) do not answer: that entry is trained again
    record = next((tmp_path / "results" / "sweeps" / "tiny").glob("table3_baseline-*-sysu-all.json"))
    data = json.loads(record.read_text())
    data["sweep"]["training_key"] = "0" * 12
    record.write_text(json.dumps(data))
    grid = sweep.settings_grid(S, "tiny")
    assert sweep.collect(grid, tmp_path / "results" / "sweeps" / "tiny")[1] == [0]
    # REID_MISSING=skip: a partial table, nothing trained
    import dataclasses

    partial = sweep.notebook_sweep(dataclasses.replace(S, missing="skip"), "tiny")
    assert "PARTIAL (REID_MISSING=skip): 1 jobs" in capsys.readouterr().out
    assert set(partial["label"]) == {"table4_trihardw"} and not (tmp_path / "runs").exists()
    # some rows only (notebook 07's controls): the others are neither read nor trained; an unknown row is named
    only = sweep.notebook_sweep(S, "tiny", rows=["table4_trihardw"])
    assert "2 jobs; 2 read from" in capsys.readouterr().out and set(only["label"]) == {"table4_trihardw"}
    with pytest.raises(UserError, match=r"grid tiny: rows \['table3_full'\] are not in it"):
        sweep.settings_grid(S, "tiny", ["table3_full"])
    # notebook 09: one seed's run folder, only that one looked up (or trained: the runs were removed above)
    runs = sweep.sweep_runs(S, "tiny", ["table4_trihardw"], seeds=[1])
    assert list(runs) == [("table4_trihardw", 1)] and (runs[("table4_trihardw", 1)] / "last.pt").is_file()
    assert len(list((tmp_path / "runs" / "sweeps").glob("*/last.pt"))) == 1


@pytest.mark.slow
def test_finished_only_tabulates_what_has_finished_and_trains_nothing(synthetic_root, tmp_path, capsys):
    args = ["sweep", "--name", "part", "--rows", "table3_baseline", "--seeds", "0", "--budgets", "3",
            "--data", str(synthetic_root), "--runs-dir", str(tmp_path / "runs"), "--results-dir",
            str(tmp_path / "results"), "--jobs", "1", *[a for s in TINY_GRID for a in ("--set", s)]]
    assert main(args) == 0  # seed 0 trained, recorded in results/part
    capsys.readouterr()
    assert main(args) == 0  # started again: read from its records, nothing trained
    assert "1 of 1 jobs are recorded in" in capsys.readouterr().out
    elsewhere = [*args[:6], "0-1", *args[7:14], str(tmp_path / "results-b"), *args[15:], "--finished-only"]
    assert main(elsewhere) == 0  # no records there: the finished run is recorded, seed 1 is not run
    out = capsys.readouterr().out
    assert "1 of 2 jobs to run have a finished run" in out
    summary = (tmp_path / "results-b" / "part" / "summary.md").read_text()
    assert "**Partial**: 1 of 2 jobs" in summary and "seed 1 3 steps: not trained yet" in summary
    assert committed_summary(tmp_path / "results-b" / "part") == summary  # --summary-only keeps the failures
    with pytest.raises(UserError, match="--baseline 'table3_nope': not a row of"):  # issue 34, case 7
        committed_summary(tmp_path / "results-b" / "part", "table3_nope")
    assert len(list((tmp_path / "runs").glob("table3_baseline*"))) == 1  # nothing new trained
    grid = json.loads((tmp_path / "results-b" / "part" / "grid.json").read_text())  # says where it came from
    assert grid["provenance"]["commit"] and "command" in grid["provenance"] and "hardware" in grid["provenance"]
    assert grid["data"]["sysu"]["kind"] == "synthetic" and len(grid["trained_at_commits"]) == 1


def test_a_full_disk_in_a_sweep_job_advises_the_sweep_command_not_resume(synthetic_root, tmp_path, monkeypatch):
    """Issue 34: the engine's "make room and continue with --resume" reached the sweep's report, but `sweep`
    has no --resume; a sweep job says to re-run the same sweep command (its unfinished runs resume)."""
    import errno

    from reid import experiments
    from reid.train import engine

    grid = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fake_train_run(cfg, runs_dir, device=None, folder=None):  # the engine's own message for a full disk
        engine._save_epoch({}, tmp_path / "run", cfg, [], improved=False, epoch=0)

    monkeypatch.setattr(engine, "save_checkpoint", full_disk)
    monkeypatch.setattr(experiments, "train_run", fake_train_run)
    with pytest.raises(UserError) as err:
        run_job(grid.jobs[0])
    line = str(err.value)
    assert "No space left" in line and "--resume" not in line
    assert "re-run the same sweep command" in line and "resume" in line


def test_a_paper_sweep_on_real_data_without_a_gpu_is_refused_before_any_job(synthetic_root, tmp_path, monkeypatch,
                                                                             capsys):
    """Issue 34: every job started, then each refused (`check_gpu_run`); the sweep now checks once, first."""
    import shutil

    import torch

    from reid import sweep
    from reid.data.synthetic import MANIFEST

    real = shutil.copytree(synthetic_root, tmp_path / "real")  # labelled real: no synthetic manifest
    for manifest in real.rglob(MANIFEST):
        manifest.unlink()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    launched = []
    monkeypatch.setattr(sweep, "launch", lambda todo, *a, **k: launched.extend(todo.jobs) or [])
    args = [["table3_full"], (0,), ("sysu",), (100,), "paper", _roots(real), ("model.pretrained=none",), "local", 1,
            "gpu", tmp_path / "runs", tmp_path / "results"]
    with pytest.raises(UserError, match="no CUDA GPU found.*model preset .* on real data"):
        sweep.sweep_command(*args)
    assert launched == [] and not (tmp_path / "runs").exists()
    sweep.sweep_command(*args[:5], _roots(synthetic_root), *args[6:])  # synthetic data: a CPU rehearsal launches
    assert len(launched) == 1


# ------------------------------------------------------------------- issue 34's remaining low cases

def test_a_run_folder_held_by_another_process_is_refused_naming_it(tmp_path):
    """Issue 34 (low): after `kill -9` of a sweep, its orphaned job held the run folder and the restart's job
    failed with "another training is running". The lock names its holder; a sweep checks before any job."""
    from reid.experiments import run_dir
    from reid.sweep import Job, check_run_locks, job_config
    from reid.train.engine import _open_run_folder, lock_holder

    job = Job("table3_full", "sysu", "/x", 0, 3, "smoke", tuple(TINY_GRID), str(tmp_path))
    folder = run_dir(tmp_path, job_config(job))
    code = ("import sys, time; from pathlib import Path; from reid.train.engine import _open_run_folder; "
            "_open_run_folder(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(folder) == holder.pid
        with pytest.raises(UserError, match=rf"sweep s: {folder} is being trained by process {holder.pid} .*"
                                            rf"kill {holder.pid}.*run the same command again"):
            check_run_locks([job], "local", "s", wait_s=0)
        with pytest.raises(UserError, match=rf"another training is running in this folder \(process {holder.pid}"):
            _open_run_folder(folder)
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(folder) is None  # a .lock left by a killed process holds nothing
    check_run_locks([job], "local", "s", wait_s=0)


def test_a_local_job_stops_when_its_sweep_is_gone(tmp_path):
    """Issue 34 (low): a job whose sweep was killed (`kill -9`) trained on, orphaned, holding its run folder.
    It watches the sweep's process and stops (a KeyboardInterrupt: its run keeps its last epoch)."""
    sweep_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = ("import os, time\nfrom reid.sweep import _stop_with_the_sweep\n_stop_with_the_sweep(poll_s=0.1)\n"
            "print('watching', flush=True)\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
            "    print('stopped', flush=True)\n")
    job = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "REID_SWEEP_PID": str(sweep_proc.pid)},
                           stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "watching"
        sweep_proc.kill()
        sweep_proc.wait()
        out, _ = job.communicate(timeout=30)
    finally:
        job.kill()
    assert f"the sweep that started this job (pid {sweep_proc.pid}) is gone: stopping" in out
    assert out.strip().endswith("stopped")


@pytest.mark.slow
def test_a_sweep_started_again_after_kill_9_of_the_last_one_runs(synthetic_root, tmp_path):
    """Issue 34 (low), the probe's command: `kill -9` of the sweep, then the same command at once. Its orphaned
    job used to train on and fail the restart's job ("another training is running"); it now stops within
    seconds, the restart waits for it, and its run resumes."""
    cmd = [sys.executable, "-m", "reid", "sweep", "--name", "k", "--rows", "table3_full", "--seeds", "0",
           "--budgets", "300", "--data", str(synthetic_root), "--jobs", "1", "--runs-dir", str(tmp_path / "runs"),
           "--results-dir", str(tmp_path / "results"),
           *[a for s in TINY_GRID[:2] + ["train.epochs=3", "train.eval_every=3", "optim.milestones=[2]"]
             for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/last.pt")):
        time.sleep(0.1)
    proc.kill()  # the sweep alone: its job controller and job live on
    proc.wait()
    again = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "jobs" / "k").glob("*_log.out"))
    assert f"the sweep that started this job (pid {proc.pid}) is gone: stopping" in logs
    assert "resuming an unfinished run after epoch" in logs and "another training is running" not in again.stdout
    assert len((tmp_path / "results" / "k" / "runs.csv").read_text().splitlines()) == 3  # header + 2 protocols


def test_a_killed_workers_reason_is_one_line_naming_the_job_and_its_log():
    """Issue 34 (low): a worker killed by a signal left no Python error, and the reason shown was the last
    line of its error stream: a progress bar."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    from reid.sweep import Job, _failure, describe

    bar = "epoch 2/9:  41%|████      | 41/100 [00:05<00:07,  7.85it/s, loss=2.870]"
    killed = UncompletedJobError(f"Job 123_0 (task: 0) with path /j/123_0_result.pkl\nhas not produced any output "
                                 f"(state: FINISHED)\nError stream produced:\n{'-' * 40}\n{bar}")

    class Handle:
        state = "FINISHED"

    reason = _failure(killed, Handle())
    assert "killed" in reason and "SIGKILL" in reason and "%|" not in reason
    slurm = Handle()
    slurm.state = "OUT_OF_MEMORY"
    assert _failure(killed, slurm) == "the job ended without a result: SLURM state OUT_OF_MEMORY"
    crashed = FailedJobError(f"Job (task=0) failed during processing with trace:\n{'-' * 40}\nTraceback ...\n"
                             f"RuntimeError: bad things\n{'-' * 40}\nYou can check full logs with 'job.stderr(0)'\n{bar}")
    assert _failure(crashed) != bar
    job = Job("table3_full", "sysu", "/x", 2, 300, "smoke", (), "runs")
    line = describe(job, {"error": reason, "log": "/j/123_0_log.err", "job_id": "123_0"})
    assert line.startswith("FAILED table3_full sysu seed 2 300 steps: the worker was killed")
    assert line.endswith("(job 123_0, log: /j/123_0_log.err)") and "\n" not in line


@pytest.mark.slow
def test_ctrl_c_stops_a_local_sweep_in_one_line_with_exit_130(synthetic_root, tmp_path):
    """Issue 34 (low): Ctrl-C printed submitit's KeyboardInterrupt traceback (its job controller shares the
    terminal's process group). One line now: what was recorded, and how to resume; exit 130; no job left."""
    # SIGINT as a terminal's foreground job has it: a shell's background job (`cmd &`, `nohup`, a CI runner's
    # shell) starts with SIGINT ignored, and an ignored signal stays ignored across exec
    terminal = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('reid', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", terminal, "sweep", "--name", "c", "--rows", "table3_full", "--seeds", "0",
           "--budgets", "600", "--data", str(synthetic_root), "--jobs", "1", "--runs-dir", str(tmp_path / "runs"),
           "--results-dir", str(tmp_path / "results"),
           *[a for s in TINY_GRID[:2] + ["train.epochs=6", "train.eval_every=6", "optim.milestones=[4]"]
             for a in ("--set", s)]]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/last.pt")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err + out, err
    lines = [line for line in err.splitlines() if line.strip() and "sweep c:" not in line]  # the bar's lines
    assert len(lines) == 1 and lines[0].startswith("interrupted: sweep c stopped (Ctrl-C): 0 of 1 jobs recorded"), err
    assert "1 running jobs stopped at their last epoch" in lines[0] and "re-run the same sweep command" in lines[0]
    from reid.train.engine import lock_holder

    assert [lock_holder(run) for run in (tmp_path / "runs").glob("table3_full*")] == [None]  # no job left


def test_a_record_edited_by_hand_is_named_and_not_adopted(synthetic_root, tmp_path, capsys):
    """Issue 34 (low): a record edited by hand (rank1 99.9, its training key intact) was adopted as the
    entry's result. Its digest, or its run's cached result when the run is there, tells; it is named, ignored,
    and recorded again from its run."""
    from reid.sweep import collect, entry_name

    grid = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path / "runs")
    out, sibling = tmp_path / "sweeps" / "this", tmp_path / "sweeps" / "other"
    summary = run_job(grid.jobs[0])
    record_job(grid, 0, summary, out)
    rows, missing = collect(grid, out)
    assert missing == [] and len(rows) == 2
    path = out / f"{entry_name(grid.entries[0], 'sysu-all')}.json"
    record = json.loads(path.read_text())
    true_rank1 = record["rank1"]
    record["rank1"] = 99.9
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert collect(grid, out) == ([], [0])  # the digest tells
    assert f"warning: {path}: its metrics differ from the digest written with them" in capsys.readouterr().out
    del record["sweep"]["digest"]  # no digest (a record written before digests): the run's cached result tells
    path.write_text(json.dumps(record))
    assert collect(grid, out) == ([], [0])
    assert f"warning: {path}: its rank1 differs from its run's cached result" in capsys.readouterr().out
    sibling.mkdir(parents=True)  # nor is it copied into another sweep (its intact sysu-indoor twin is)
    path.rename(sibling / path.name)
    assert [p.name for p in adopt_records(grid, tmp_path / "sweeps" / "third")] == [path.name.replace("-all", "-indoor")]
    record_job(grid, 0, summary, out)  # recorded again from the run
    assert json.loads(path.read_text())["rank1"] == true_rank1
    assert collect(grid, out)[1] == []


# ---------------------------------------------------------------------------- issue 33: sweeps on clusters

@pytest.mark.parametrize("grid", ["table3", "table4", "budget", "budget_long"])
def test_make_ablation_on_the_paper_profile_checks_every_grid(grid, synthetic_root, tmp_path, capsys):
    """Issue 33, item 5: `make ablation PROFILE=paper` trained Tables 3-4, then the budget grid failed (540 steps
    are no multiple of the paper's 100 epochs), and Table 4 could not resolve on RegDB (paper_regdb has its own
    base). Every grid is valid on the paper profile: a grid's budget becomes the nearest multiple of the
    profile's epochs, said in one line; the paper profile's own schedule where a grid takes the profile's."""
    args = ["sweep", "--grid", grid, "--profile", "paper", "--check", "--data", str(synthetic_root),
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "checked, nothing run" in out
    if grid == "budget":
        assert "budgets 540 -> 500 steps (the nearest multiples of its 100 epochs" in out
    recipe = Path(__file__).resolve().parents[1].joinpath("Makefile").read_text().split("\nablation:")[1]
    assert "--check" in recipe and "--profile $(PROFILE)" in recipe
    # a budget typed on the command line is never changed: refused, with the multiples around it
    assert main(["sweep", "--name", "typed", "--rows", "table3_full", "--budgets", "540", *args[3:]]) == 2
    assert "--budgets 540: not a multiple of the profile's 100 epochs (e.g. 500 or 600)" in capsys.readouterr().err


def test_grid_budgets_round_to_the_profiles_epochs():
    from reid.sweep import grid_budgets, nearest_budget

    assert nearest_budget(540, 100) == 500 and nearest_budget(550, 100) == 600 and nearest_budget(30, 100) == 100
    assert nearest_budget(540, 9) == 540
    assert grid_budgets("budget", (540, 1800, 3600), "smoke", ("sysu",)) == (540, 1800, 3600)
    assert grid_budgets("budget", (540, 1800, 3600), "paper", ("sysu",)) == (500, 1800, 3600)
    assert grid_budgets("table3", None, "smoke", ("sysu",)) == (3600,)
    assert grid_budgets("table3", None, "paper", ("sysu",)) == (0,)  # the paper's own schedule, as it is


def test_regdb_jobs_train_the_profiles_splits(synthetic_root, tmp_path):
    """Issue 33, item 5: sweeps trained RegDB split 1 only; the paper's RegDB numbers are 10-split means. On
    `paper*` a RegDB job trains and tests the protocol's 10 splits; the CPU profile keeps split 1."""
    from reid.sweep import job_configs, job_key

    roots = _roots(synthetic_root)
    paper = plan(["table4_trihard"], (0,), ("regdb", "sysu"), (1000,), "paper", roots, (), tmp_path)
    smoke = plan(["table4_trihard"], (0,), ("regdb",), (3,), "smoke", roots, TINY_GRID, tmp_path)
    assert [(j.dataset, j.splits) for j in paper.jobs] == [("regdb", 10), ("sysu", 1)]
    assert [j.splits for j in smoke.jobs] == [1]
    notebook = plan(["table4_trihard"], (0,), ("regdb",), (3,), "smoke", roots, TINY_GRID, tmp_path, regdb_splits=3)
    assert [j.splits for j in notebook.jobs] == [3]  # the notebooks' REID_REGDB_SPLITS (settings_grid)
    assert [c.data.regdb_split for c in job_configs(paper.jobs[0])] == list(range(1, 11))
    one = dataclasses.replace(paper.jobs[0], splits=1)
    assert job_key(paper.jobs[0]) != job_key(one)  # a 1-split record never answers a 10-split entry


def test_a_regdb_job_of_two_splits_trains_both_and_records_their_mean(synthetic_root, tmp_path):
    grid = plan(["table3_full"], (0,), ("regdb",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path / "r")
    grid.jobs[0] = dataclasses.replace(grid.jobs[0], splits=2)
    summary = run_job(grid.jobs[0])
    assert [r.rsplit("-seed", 1)[0][-7:] for r in summary["runs"]] == ["-split1", "-split2"]
    written = record_job(grid, 0, summary, tmp_path / "results")
    card = json.loads(written[0].read_text())
    assert len(card["runs"]) == 2 and card["protocol"]["splits"] == 2
    assert card["rank1"] == summary["results"][card["sweep"]["protocol"]]["rank1"]


@pytest.mark.skipif(not __import__("torch").distributed.is_gloo_available(), reason="needs torch.distributed gloo")
def test_a_job_with_several_processes_trains_with_ddp(synthetic_root, tmp_path):
    """Issue 33, item 5: a sweep job was one process and could not run DDP. `--gpus-per-job N` gives each job N
    processes (here 2 on the CPU, gloo); rank 0 writes the run, which the job then evaluates."""
    from reid.sweep import job_key, sweep_command
    from reid.utils.checkpoint import load_checkpoint

    checked = sweep_command(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID,
                            "local", 1, "ddp", tmp_path / "r", tmp_path / "results", slurm={"gpus": 2}, check_only=True)
    grid = checked["grid"]
    assert grid.jobs[0].procs == 2  # --gpus-per-job 2
    assert job_key(grid.jobs[0]) != job_key(dataclasses.replace(grid.jobs[0], procs=1))  # another training
    summary = run_job(grid.jobs[0])
    assert summary["run"].endswith("-ddp2")  # its own folder: a single-process run never resumes it
    assert load_checkpoint(Path(summary["run"]) / "last.pt")["world_size"] == 2
    assert summary["steps"] == 3 and set(summary["results"]) == {"sysu-all", "sysu-indoor"}


class _TimedOutOnce:
    """A sweep job whose first attempt trains one of its epochs, then waits for submitit's timeout signal
    (as a job at its time limit does); requeued, it must end exactly where an uninterrupted job ends."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, job):
        from reid.experiments import run_dir
        from reid.sweep import JobRunner, job_config
        from reid.train.engine import train

        if not os.path.exists(self.marker):
            cfg = job_config(job)
            one = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
            train(one, run_dir(job.runs_dir, cfg), device="cpu")  # "stopped" after epoch 1 of 3
            open(self.marker, "w").close()
            time.sleep(600)  # the timeout signal arrives here
        return JobRunner()(job)

    def checkpoint(self, job):
        from reid.sweep import JobRunner

        return JobRunner().checkpoint(job)


@pytest.mark.slow
def test_a_job_that_times_out_is_requeued_and_resumes_exactly(synthetic_root, tmp_path, monkeypatch):
    """Issue 33, item 5: no requeue on pre-emption or timeout although exact resume exists. A sweep job is
    submitit-checkpointable (`JobRunner.checkpoint`): at its time limit it is requeued, and its run resumes
    from its last epoch to the numbers and weights of an uninterrupted job."""
    import submitit
    import torch

    from reid.utils.checkpoint import load_checkpoint

    straight = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID,
                    tmp_path / "a")
    expected = run_job(straight.jobs[0])
    grid = plan(["table3_full"], (0,), ("sysu",), (3,), "smoke", _roots(synthetic_root), TINY_GRID, tmp_path / "b")
    here = str(Path(__file__).resolve().parent)  # the worker unpickles _TimedOutOnce from this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    executor = submitit.LocalExecutor(folder=str(tmp_path / "jobs"), max_num_timeout=3)
    # the timeout signal comes signal_delay_s before the limit: 45 s into each attempt
    executor.update_parameters(timeout_min=1, signal_delay_s=15)
    handle = executor.submit(_TimedOutOnce(str(tmp_path / "attempted")), grid.jobs[0])
    summary = handle.result()
    log = handle.stdout() + (handle.stderr() or "")
    assert "timed out or pre-empted; requeued" in log and "resuming an unfinished run after epoch 1 of 3" in log, log
    assert summary["results"] == expected["results"]
    a = load_checkpoint(Path(expected["run"]) / "last.pt")
    b = load_checkpoint(Path(summary["run"]) / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
