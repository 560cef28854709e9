"""`python -m reid sweep`: a grid of table rows x seeds x datasets x budgets, trained as independent jobs.

    grid = plan(["table3_baseline:0-4", "table3_ta"], seeds=(0, 1, 2), datasets=("sysu",), budgets=(3600,),
                profile="smoke", roots={"sysu": root})
    summaries = launch(grid, launcher="local", parallel=2, folder="runs/sweeps/jobs/table3")
    for i, summary in enumerate(summaries):
        record_job(grid, i, summary, "results/sweeps/table3")   # one result per (entry, protocol)
    write_sweep_tables(grid, summaries, "results/sweeps/table3")  # runs.csv, summary.md

Every job goes through the one runner (`reid.experiments.train_run`, then `evaluate_runs`), so a number
means what it means everywhere else, and a killed sweep started again reuses finished runs and resumes
unfinished ones from their last epoch. Jobs run with one torch thread each: on 2 CPU cores, two
single-thread jobs did 1.7x the work of one two-thread job, and a two-thread job beside any other process
slowed about 10x (benchmarks/bench_sweep.py measures it).

Words: a *row* is a config (a Table 3/4 row, or any config name); a *budget* is the total number of
training steps, spread over the profile's epochs (`data.batches_per_epoch` = budget / epochs), so the
schedule keeps its shape; an *entry* is one (row, dataset, budget, seed): rows whose resolved configs are
equal apart from their names (Table 4's L_trihardw row is Table 3's full model) share one job within a
sweep, and across sweeps a job reuses a finished run of equal settings under another name in the same
runs folder (`finished_twin`) instead of training it again.
Launchers are submitit's: its local executor on one machine, its SLURM executor on a cluster.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from reid.experiments import parse_budgets, parse_seeds, training_key  # noqa: F401 -- the one rule for each, shared
from reid.utils.errors import UserError

LAUNCHERS = ("local", "slurm")
PROTOCOLS_OF = {"sysu": ("sysu-all", "sysu-indoor"), "regdb": ("regdb-v2t", "regdb-t2v")}
METRICS = ("rank1", "rank10", "rank20", "mAP", "mINP")
REGDB_SPLIT = 1  # a sweep trains RegDB's split 1 (one model); the protocol's 10 splits belong to reproduce


# The grids of the paper's ablations on a profile: `python -m reid sweep --grid NAME` and notebooks 06/07.
# "budgets: None" is the profile's own number of steps (3600 on smoke). Rows carry their own seeds after ':'.
TABLE3_ROWS = ["table3_baseline", "table3_ta", "table3_crossvit", "table3_csa", "table3_ta_crossvit",
               "table3_ta_crossvit_csa", "table3_full", "table3_full_csa7"]
GRIDS = {
    "table3": {"rows": TABLE3_ROWS, "seeds": "0-4", "datasets": ("sysu",), "budgets": None},
    "table4": {"rows": ["table4_trihard", "table4_center", "table4_trihardw"], "seeds": "0-4",
               "datasets": ("sysu", "regdb"), "budgets": None, "baseline": "table4_trihardw"},
    "budget": {"rows": ["table3_baseline", "table3_full"], "seeds": "0-2", "datasets": ("sysu",),
               "budgets": (540, 1800, 3600)},
    "budget_long": {"rows": ["table3_baseline", "table3_full"], "seeds": "0-2", "datasets": ("sysu",),
                    "budgets": (10800,)},
    # Controls of issue 32, defined and not run yet (docs/claims.md, "Open"). Table 3's full model gains over
    # the baseline only with the switch from Eq. 14 to Eq. 15, and at equal alpha Eq. 15's hinge is never
    # larger than Eq. 14's (a softmax-weighted mean of the positive distances is at most their maximum, of
    # the negative ones at least their minimum): the switch also softens the margin. Eq. 14 at smaller
    # alphas, and Eq. 15 without any alpha (soft margin), tell the weighting from the margin. The two Table 4
    # rows are committed already (sweeps/table4) and are read, not trained.
    "controls_loss": {"rows": ["table4_trihardw", "table4_trihard", "control_trihard_m05", "control_trihard_m03",
                               "control_trihard_m01", "control_trihardw_soft"],
                      "seeds": "0-4", "datasets": ("sysu",), "budgets": None, "baseline": "table4_trihardw"},
    # The smoke profile's lr was chosen on the full model alone: 4e-3 / 2e-3 / 1e-3, later 5e-4, one training
    # seed (0) on the development set of data seed 7, judged on that set's own test split
    # (docs/recipe_search.md); the baseline and the L_trihard rows inherit 1e-3 untuned. The same values on
    # the baseline, the same way: `data` is the folder the grid must run on, made by `data_command`.
    "recipe_parity": {"rows": ["table3_baseline", "control_baseline_lr5e4", "control_baseline_lr2e3",
                               "control_baseline_lr4e3"],
                      "seeds": "0", "datasets": ("sysu",), "budgets": None, "data": "data/dev-v5",
                      "data_command": "python -m reid synth --out data/dev-v5 --seed 7"},
}
# Data seeds as a factor (issue 32): the primary comparisons (the full model against the baseline; Eq. 15
# against Eq. 14 on the same model) on two more synthetic draws, three training seeds each; with Table 3's
# draw (data seed 0) that is 3 x 3 (`reid.records.stats.data_seed_components`).
for _seed in (1, 2):
    GRIDS[f"data_seed{_seed}"] = {
        "rows": ["table3_baseline", "table3_full", "table4_trihard"], "seeds": "0-2", "datasets": ("sysu",),
        "budgets": None, "data": f"data/synthetic-d{_seed}",
        "data_command": f"python -m reid synth --out data/synthetic-d{_seed} --seed {_seed}"}


@dataclass(frozen=True)
class Job:
    """One training run and its evaluations: everything a worker process needs (picklable)."""

    row: str | None  # config name or YAML path; None: the profile's own config (its full model)
    dataset: str
    root: str
    seed: int
    budget: int  # total training steps asked for
    profile: str | None
    overrides: tuple[str, ...]
    runs_dir: str
    trials: int = 10
    threads: int = 1
    fresh: bool = False  # --retrain: train into a fresh run folder beside the finished one (`fresh_run_dir`)


@dataclass
class Grid:
    """The planned sweep: the jobs, and per entry (label, dataset, budget, seed) the job that answers it."""

    jobs: list[Job]
    entries: list[dict] = field(default_factory=list)  # {"label", "dataset", "budget", "seed", "job"}


def parse_row(text: str) -> tuple[str, tuple[int, ...] | None]:
    """'table3_baseline' or 'table3_baseline:0-4' (that row's own seeds)."""
    name, colon, seeds = text.partition(":")
    if not name:
        raise UserError(f"--rows {text!r}: expected a config name, optionally followed by :SEEDS")
    return name, parse_seeds(seeds, f"--rows {name}:") if colon else None


def row_label(row: str | None) -> str:
    return "full model" if row is None else Path(row).stem


def budget_overrides(cfg, budget: int) -> list[str]:
    """The overrides that give `cfg` a budget of `budget` steps over its own epochs."""
    epochs = cfg.train.epochs
    if budget < epochs:
        raise UserError(f"--budgets {budget}: below one step per epoch of the profile's {epochs} epochs")
    if budget % epochs:
        raise UserError(f"--budgets {budget}: not a multiple of the profile's {epochs} epochs "
                        f"(e.g. {budget - budget % epochs} or {budget - budget % epochs + epochs})")
    # batches_per_epoch raises an epoch to at least that many batches; the step cap makes it exactly that many
    per_epoch = budget // epochs
    return [f"data.batches_per_epoch={per_epoch}", f"train.max_steps_per_epoch={per_epoch}"]


def job_config(job: Job):
    from reid.experiments import resolve

    split = REGDB_SPLIT if job.dataset == "regdb" else None
    cfg = resolve(job.row, job.dataset, job.root, seed=job.seed, split=split, profile=job.profile,
                  overrides=list(job.overrides))
    if not job.budget:  # 0: the profile's own budget, as it is
        return cfg
    return resolve(job.row, job.dataset, job.root, seed=job.seed, split=split, profile=job.profile,
                   overrides=[*job.overrides, *budget_overrides(cfg, job.budget)])


def profile_budget(profile: str, dataset: str) -> int:
    """The profile's own number of steps (epochs x batches per epoch), when it fixes one; else 0."""
    from reid.config import load_config
    from reid.experiments import profile_config

    cfg = load_config(profile_config(profile, dataset))
    return cfg.train.epochs * cfg.data.batches_per_epoch


def plan(rows: list[str], seeds: tuple[int, ...], datasets: tuple[str, ...], budgets: tuple[int, ...],
         profile: str | None, roots: dict, overrides=(), runs_dir: str | Path = "runs/sweeps",
         trials: int = 10) -> Grid:
    """Resolve every entry of the grid (so that any bad row or budget fails before a job starts) and give
    each distinct training one job. A row may carry its own seeds ('table3_full:0-4')."""
    if not rows:
        raise UserError("--rows: name at least one config")
    if not datasets:
        raise UserError("--datasets: name sysu and/or regdb")
    if not budgets:
        raise UserError("--budgets: name at least one budget")
    for dataset in datasets:
        if dataset not in PROTOCOLS_OF:
            raise UserError(f"--datasets {dataset!r}: expected sysu and/or regdb")
        if dataset not in roots:
            raise UserError(f"--datasets {dataset}: no data root for it")
    grid, by_training = Grid(jobs=[]), {}
    for text in rows:
        row, own_seeds = parse_row(text)
        row = None if row == "full" else row
        for dataset in datasets:
            for budget in budgets:
                for seed in own_seeds or seeds:
                    job = Job(row, dataset, str(Path(roots[dataset]).resolve()), seed, int(budget), profile,
                              tuple(overrides), str(runs_dir), trials)
                    key = training_key(job_config(job))  # equal settings under another name: one job
                    if key not in by_training:
                        by_training[key] = len(grid.jobs)
                        grid.jobs.append(job)
                    grid.entries.append({"label": row_label(row), "dataset": dataset, "budget": int(budget),
                                         "seed": seed, "job": by_training[key]})
    return grid


# --------------------------------------------------------------------------------------- one job

def finished_twin(job: Job, cfg=None) -> Path | None:
    """A finished run in `job.runs_dir` that trained the same settings as `job` under another name (the
    folder hash holds the name, so e.g. Table 4's L_trihardw row would not find Table 3's full model)."""
    from reid.experiments import equal_finished_run

    return equal_finished_run(cfg or job_config(job), [job.runs_dir])


SWEEP_RESUME = "re-run the same sweep command, which resumes its unfinished runs from their last epoch"


def run_job(job: Job) -> dict:
    """Train (or reuse, or resume) one run and evaluate it under its dataset's protocols; in a worker."""
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    import torch

    from reid.experiments import evaluate_runs, train_run

    torch.set_num_threads(job.threads)
    start = time.perf_counter()
    cfg = job_config(job)
    from reid.experiments import is_finished, run_dir
    from reid.train.engine import RESUME_ADVICE, repair_best_checkpoint

    try:
        if job.fresh:  # --retrain: never the finished run; a fresh folder beside it (an unfinished one resumes)
            run = train_run(cfg, job.runs_dir, folder=fresh_run_dir(run_dir(job.runs_dir, cfg), cfg))
        else:
            twin = None if is_finished(run_dir(job.runs_dir, cfg), cfg) else finished_twin(job, cfg)
            if twin is not None:
                print(f"{run_dir(job.runs_dir, cfg).name}: the same settings trained already as {twin.name}, "
                      "reusing it")
                repair_best_checkpoint(twin)
            run = twin or train_run(cfg, job.runs_dir)
    except UserError as err:  # a full disk: sweep has no --resume; the same sweep command resumes the run
        if RESUME_ADVICE not in str(err):
            raise
        raise UserError(str(err).replace(RESUME_ADVICE, SWEEP_RESUME)) from None
    trained = time.perf_counter() - start
    results = {p: evaluate_runs([run], p, job.root, trials=job.trials) for p in PROTOCOLS_OF[job.dataset]}
    steps = {r["protocol"].get("steps") for r in results.values()}
    # The training time the run's own log recorded (epochs only; a reused or resumed run still reports all)
    with open(run / "log.csv", newline="") as f:
        logged = sum(float(row["epoch_time_s"] or 0) for row in csv.DictReader(f))
    return {"run": str(run), "train_s": round(logged, 1), "wall_s": round(time.perf_counter() - start, 1),
            "this_job_s": round(trained, 1),
            "steps": steps.pop() if len(steps) == 1 else "mixed",
            "results": {p: {m: r.get(m) for m in METRICS} for p, r in results.items()}}


def check_devices(jobs: list[Job], launcher: str) -> None:
    """What every job of a local sweep would refuse on this machine (`check_gpu_run`: a paper-sized model on
    real data and no GPU), refused once, before any job starts. Only jobs that will train count (a finished
    run or its twin is reused); a SLURM sweep's jobs run on the nodes it asks for, not here."""
    if launcher != "local":
        return
    import torch

    from reid.data import dataset_root
    from reid.data.identity import is_synthetic
    from reid.experiments import is_finished, run_dir
    from reid.train.engine import check_gpu_run

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for job in jobs:
        cfg = job_config(job)
        if job.fresh or not (is_finished(run_dir(job.runs_dir, cfg), cfg) or finished_twin(job, cfg)):
            check_gpu_run(cfg, None, device, is_synthetic(dataset_root(cfg.data.dataset, cfg.data.root)))


def fresh_run_dir(run: Path, cfg) -> Path:
    """Where `--retrain` trains the run `run` again: `<run>-retrain<k>`, the first such folder that holds no
    finished run (an unfinished one, of a retrain that was stopped, is resumed). Nothing is deleted: the
    finished run stays where it is, for the records that name it."""
    from reid.experiments import is_finished

    k = 1
    while is_finished(run.with_name(f"{run.name}-retrain{k}"), cfg):
        k += 1
    return run.with_name(f"{run.name}-retrain{k}")


# -------------------------------------------------------------------------------------- launchers

def check_launcher(launcher: str, parallel: int, timeout_min: int = 24 * 60, slurm: dict | None = None) -> None:
    """Before any job: the launcher exists, is installed, and has something to run on; the time limit and
    the SLURM resources asked for are possible."""
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher {launcher!r}: expected one of {list(LAUNCHERS)}")
    if parallel < 1:
        raise UserError(f"--jobs {parallel}: expected at least 1 job at a time")
    if timeout_min < 1:
        raise UserError(f"--time {timeout_min}: expected the minutes a job may run, at least 1")
    slurm = slurm or {}
    if slurm.get("gpus", 0) < 0:
        raise UserError(f"--gpus-per-job {slurm['gpus']}: expected 0 or more GPUs")
    if slurm.get("cpus", 1) < 1:
        raise UserError(f"--cpus-per-job {slurm['cpus']}: expected at least 1 CPU")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError(f"--launcher {launcher}: needs submitit (pip install submitit)") from None
    for command in ("sbatch", "srun") if launcher == "slurm" else ():  # submitit needs both
        if shutil.which(command) is None:
            raise UserError(f"--launcher slurm: no {command} on this machine's PATH (run the sweep on the "
                            "cluster's login node, or use --launcher local)")


def _executor(launcher: str, folder: Path, parallel: int, slurm: dict | None, timeout_min: int):
    import submitit

    if launcher == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    slurm = slurm or {}
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params = {"timeout_min": timeout_min, "slurm_array_parallelism": parallel,
              "gpus_per_node": slurm.get("gpus", 0), "cpus_per_task": slurm.get("cpus", 8)}
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    executor.update_parameters(**params)
    return executor


def _failure(err: BaseException) -> str:
    """The one line to report for a failed job: the worker's own UserError when there is one."""
    text = str(err).strip().splitlines()
    lines = [line for line in text if line.strip()]
    for line in reversed(lines):
        if line.startswith(("reid.utils.errors.UserError", "UserError", "reid.train.engine.DivergedError")):
            return line.split(":", 1)[-1].strip()
    return lines[-1] if lines else type(err).__name__


def launch(grid: Grid, launcher: str = "local", parallel: int = 1, folder: str | Path = "runs/sweeps/jobs",
           slurm: dict | None = None, timeout_min: int = 24 * 60, on_done=None, poll_s: float = 2.0) -> list:
    """Run `grid.jobs` through submitit, at most `parallel` at a time; returns one summary per job (a dict
    from `run_job`, or {"error": one line} for a job that failed). `on_done(index, summary)` is called in
    this process as each job ends (the sweep's line per job and its records).

    Stopping the sweep stops its jobs: Ctrl-C, a SIGTERM, or a failure here (a record that cannot be
    written: a full disk) cancels every job still running (they resume from their last epoch when the sweep
    is started again), never leaving one training on, orphaned."""
    import signal
    import threading

    check_launcher(launcher, parallel, timeout_min, slurm)
    # submitit's workers inherit this process's environment at submission: one thread each, then restored
    threads, before = str(grid.jobs[0].threads if grid.jobs else 1), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None

    def terminated(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if main_thread:
        signal.signal(signal.SIGTERM, terminated)
    try:
        return _launch(grid, launcher, parallel, folder, slurm, timeout_min, on_done, poll_s)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _stop(running: dict) -> int:
    """Cancel every job still running (submitit: SIGINT to a local worker, scancel on SLURM); how many."""
    stopped = 0
    for handle in running.values():
        try:
            handle.cancel(check=False)
            stopped += 1
        except Exception as err:  # noqa: BLE001 -- stop the others all the same
            print(f"warning: could not cancel job {getattr(handle, 'job_id', '?')}: {err}")
    running.clear()
    return stopped


def _launch(grid: Grid, launcher: str, parallel: int, folder, slurm, timeout_min: int, on_done, poll_s: float):
    executor = _executor(launcher, Path(folder), parallel, slurm, timeout_min)
    summaries: list = [None] * len(grid.jobs)
    pending = list(range(len(grid.jobs)))
    running: dict = {}

    from submitit.core.utils import FailedJobError, UncompletedJobError

    def finish(index: int, handle) -> None:
        try:
            summaries[index] = handle.result()
        except (FailedJobError, UncompletedJobError) as err:  # a failed job is reported, the sweep goes on
            summaries[index] = {"error": _failure(err), "log": str(handle.paths.stderr)}
        if on_done is not None:
            try:
                on_done(index, summaries[index])
            except Exception as err:  # noqa: BLE001 -- one line, and no job left behind
                stopped = _stop(running)
                text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise UserError(f"job {index + 1} of {len(grid.jobs)} ended but its result could not be recorded "
                                f"({text}); the sweep stopped{f' and cancelled its {stopped} running jobs' if stopped else ''}"
                                " (started again, it resumes them and records this one from its run)") from None

    try:
        if launcher == "slurm":  # one job array; SLURM keeps `parallel` of them running
            try:
                with executor.batch():
                    handles = [executor.submit(run_job, grid.jobs[i]) for i in pending]
            except (FailedJobError, OSError, RuntimeError) as err:
                text = [line for line in str(err).splitlines() if line.strip()]
                raise UserError(f"--launcher slurm: sbatch refused the job array: "
                                f"{text[-1].strip() if text else type(err).__name__}") from None
            running = dict(zip(pending, handles))
            pending = []
        while pending or running:
            while launcher == "local" and pending and len(running) < parallel:
                index = pending.pop(0)
                running[index] = executor.submit(run_job, grid.jobs[index])
            for index, handle in list(running.items()):
                if handle.done():
                    del running[index]
                    finish(index, handle)
            if running:
                time.sleep(poll_s)
    except BaseException:
        if running:
            print(f"stopping the sweep: cancelling its {_stop(running)} running jobs", flush=True)
        raise
    return summaries


# -------------------------------------------------------------------------------------- recording

def is_temporary(path: Path) -> bool:
    """A hidden file: the temporary of an atomic write (`.NAME.json.PID-HEX.tmp.json`, left by a kill)."""
    return path.name.startswith(".")


def read_record(path: Path, warn: bool = True) -> dict | None:
    """A sweep record (a result JSON with its `sweep` and `protocol` parts), or None when there is none, or
    when the file is damaged (truncated, not JSON, of another shape): then a warning names it and it counts as
    missing, so one damaged file never blocks the rest (a sweep records that entry again)."""
    path = Path(path)
    if is_temporary(path) or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(record, dict) and isinstance(record.get("sweep", {}), dict) and \
            isinstance(record.get("protocol", {}), dict) else "not a result record"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        record, problem = None, f"unreadable ({type(err).__name__}: {err})"
    if problem is None:
        return {**record, "sweep": record.get("sweep", {}), "protocol": record.get("protocol", {})}
    if warn:
        print(f"warning: {path}: {problem}; treated as missing")
    return None


def entry_name(entry: dict, protocol: str) -> str:
    label = entry["label"].replace(" ", "_")
    budget = f"{entry['budget']}steps" if entry["budget"] else "profile-budget"
    return f"{label}-{entry['dataset']}-seed{entry['seed']}-{budget}-{protocol}"


def record_job(grid: Grid, index: int, summary: dict, results_dir: str | Path) -> list[Path]:
    """Write the results of job `index` for every entry it answers into `results_dir` (JSON with the run's
    provenance + a results.csv row each); an entry already recorded from the same run is left alone."""
    from reid.records.provenance import current_command, write_result

    if not summary or "error" in summary:
        return []
    run = Path(summary["run"])
    written = []
    for entry in (e for e in grid.entries if e["job"] == index):
        for protocol in summary["results"]:
            name = entry_name(entry, protocol)
            old = read_record(Path(results_dir) / f"{name}.json")
            if old is not None and old.get("runs") == [run.name] and "training_key" in old["sweep"]:
                continue
            cache = sorted((run / "results").glob(f"{protocol}-t*-trained.json") if protocol.startswith("sysu")
                           else (run / "results").glob(f"{protocol}-splits1-*-trained.json"))
            result = json.loads(cache[0].read_text())
            # The worker's command line is submitit's; the command that asked for this result is the sweep's.
            prov = result.get("provenance", {})
            result["provenance"] = {**prov, "command": current_command(), "worker_command": prov.get("command")}
            result["sweep"] = {**{k: entry[k] for k in ("label", "dataset", "budget", "seed")},
                               "protocol": protocol, "run": run.name, "train_s": summary["train_s"],
                               "training_key": training_key(job_config(grid.jobs[index]))}
            written.append(write_result(result, results_dir, name))
    return written


def entry_rows(grid: Grid, summaries: list) -> list[dict]:
    """One row per (entry, protocol) with its metrics; failed or missing jobs give no rows."""
    rows = []
    for entry in grid.entries:
        summary = summaries[entry["job"]]
        if not summary or "error" in summary:
            continue
        for protocol, metrics in summary["results"].items():
            rows.append({**{k: entry[k] for k in ("label", "dataset", "budget", "seed")}, "protocol": protocol,
                         "steps": summary["steps"], **metrics, "run": Path(summary["run"]).name})
    return rows


def write_sweep_tables(grid: Grid, summaries: list, out: str | Path, baseline: str | None = None) -> dict:
    """`runs.csv` (a row per entry and protocol) and `summary.md` (mean, sd, n per row; paired differences
    against `baseline` with 95 % t intervals, Holm-adjusted p-values and the difference detectable at 80 %
    power: `reid.records.stats.summary_table`) in `out`; labelled partial, with each failure, when jobs failed."""
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = entry_rows(grid, summaries)
    failed = [(grid.jobs[i], s) for i, s in enumerate(summaries) if not s or "error" in s]
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "runs.csv", index=False)
    (out / "summary.md").write_text(summary_text(frame, failed, len(grid.jobs),
                                                 baseline or (grid.entries[0]["label"] if rows else None)))
    return {"rows": len(rows), "failed": len(failed), "csv": out / "runs.csv", "summary": out / "summary.md"}


def summary_text(frame, failed: list, jobs: int, baseline: str | None) -> str:
    """`summary.md`: the failures (a partial table says so first), then the statistics of `frame`."""
    from reid.records.stats import summary_table

    lines = []
    if failed:
        lines += [f"**Partial**: {len(failed)} of {jobs} jobs failed or did not run:", ""]
        lines += [f"- {row_label(j.row)} {j.dataset} seed {j.seed} {j.budget} steps: "
                  f"{(s or {}).get('error', 'not run')}" for j, s in failed]
        lines.append("")
    if len(frame):
        lines.append(summary_table(frame, baseline))
    return "\n".join(lines) + "\n"


def committed_summary(out: str | Path, baseline: str | None = None) -> str:
    """The `summary.md` that a sweep folder's committed `runs.csv` and `grid.json` give with today's
    statistics, trained nothing and read nothing else: a change to `reid.records.stats` reaches every
    committed summary without training (`python -m reid sweep --grid NAME --summary-only`)."""
    import pandas as pd

    out = Path(out)
    if not (out / "runs.csv").is_file():
        raise UserError(f"{out}: no runs.csv (the sweep has not been tabulated yet)")
    frame = pd.read_csv(out / "runs.csv")
    try:
        record = json.loads((out / "grid.json").read_text()) if (out / "grid.json").is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{out / 'grid.json'}: unreadable ({type(err).__name__}: {err}); restore it from git") from None
    jobs = [Job(**{**j, "overrides": tuple(j.get("overrides", ()))}) for j in record.get("jobs", [])]
    summaries = record.get("summaries", [None] * len(jobs))
    failed = [(j, s) for j, s in zip(jobs, summaries) if not s or "error" in s]
    labels = list(dict.fromkeys(frame["label"])) if len(frame) else []
    if baseline is not None and baseline not in labels:
        raise UserError(f"--baseline {baseline!r}: not a row of {out}/runs.csv (its rows: {', '.join(labels)})")
    return summary_text(frame, failed, len(jobs), baseline or (labels[0] if labels else None))


def rewrite_summary(out: str | Path, baseline: str | None = None) -> Path:
    """Write `committed_summary` over `out/summary.md`."""
    path = Path(out) / "summary.md"
    path.write_text(committed_summary(out, baseline))
    print(f"{path}: rewritten from runs.csv (nothing trained)")
    return path


def write_grid(grid: Grid, summaries: list, out: Path) -> Path:
    """`grid.json`: the sweep as planned and as it ended, with its provenance (the command and code that
    wrote it), the data it ran on, and the commits that trained and evaluated the recorded results (each
    record's own `provenance.commit`: a `--finished-only` sweep records runs trained by earlier code)."""
    from reid.data.identity import describe_data
    from reid.records.provenance import provenance
    from reid.utils.atomic import write_text_atomically

    records = (read_record(p) for p in out.glob("*.json") if p.name != "grid.json")
    trained = sorted({(r.get("provenance") if isinstance(r.get("provenance"), dict) else {}).get("commit", "unknown")
                      for r in records if r is not None})
    roots = {job.dataset: job.root for job in grid.jobs}
    record = {"provenance": provenance(), "data": {d: describe_data(r, d) for d, r in roots.items()},
              "trained_at_commits": trained, "jobs": [asdict(j) for j in grid.jobs], "entries": grid.entries,
              "summaries": summaries}
    return write_text_atomically(out / "grid.json", json.dumps(record, indent=1, default=str) + "\n", "grid.json")


def check_baseline(baseline: str | None, grid: Grid) -> None:
    """`--baseline` names one of the grid's rows (its label), checked before any job."""
    labels = list(dict.fromkeys(e["label"] for e in grid.entries))
    if baseline is not None and baseline not in labels:
        raise UserError(f"--baseline {baseline!r}: not a row of this sweep (its rows: {', '.join(labels)})")


def describe(job: Job, summary: dict) -> str:
    """The line printed when a job ends."""
    head = f"{row_label(job.row)} {job.dataset} seed {job.seed} {job.budget} steps"
    if "error" in summary:
        return f"FAILED {head}: {summary['error']} (log: {summary.get('log')})"
    cells = ", ".join(f"{p} {m['rank1']:.2f} / {m['mAP']:.2f}" for p, m in summary["results"].items())
    return f"done {head}: {summary['steps']} steps in {summary['train_s']:.0f} s; Rank-1 / mAP {cells}"


def finished_jobs(grid: Grid) -> list[int]:
    """The jobs whose run folder already holds a finished run."""
    from reid.experiments import is_finished, run_dir

    out = []
    for index, job in enumerate(grid.jobs):
        cfg = job_config(job)
        if is_finished(run_dir(job.runs_dir, cfg), cfg) or finished_twin(job, cfg) is not None:
            out.append(index)
    return out


def sweep_command(rows, seeds, datasets, budgets, profile, roots, overrides, launcher, parallel, name,
                  runs_dir, results_dir, baseline=None, slurm=None, timeout_min=24 * 60,
                  finished_only: bool = False, retrain: bool = False, check_only: bool = False) -> dict:
    """`python -m reid sweep`: validate everything, run the jobs with a progress bar, record, tabulate.
    Jobs whose results are recorded already (in this sweep's folder, or in another sweep's beside it with
    the same settings: `adopt_records`) are read, not trained again, unless `retrain`.
    `finished_only`: train nothing; record and tabulate the runs that have finished (the rest: "not run").
    `check_only`: validate everything a sweep checks before its first job, then stop (nothing trained or written)."""
    from tqdm.auto import tqdm

    from reid.records.provenance import check_name, check_result_location

    check_launcher(launcher, parallel, timeout_min, slurm)
    check_name(name)  # inside --results-dir: no '/', no '..'
    out = Path(results_dir) / name
    check_result_location(out, "probe")  # writable, and any results.csv there has our columns
    # runs are shared by every sweep (the same row another sweep trained is reused); job logs are the sweep's own
    grid = plan(rows, seeds, datasets, budgets, profile, roots, overrides, runs_dir)
    check_baseline(baseline, grid)
    if check_only:
        print(f"sweep {name}: {len(grid.entries)} entries -> {len(grid.jobs)} jobs; checked, nothing run")
        return {"grid": grid, "summaries": []}
    if retrain:  # a fresh run folder each: the finished runs (and the records naming them) stay as they are
        grid.jobs = [replace(job, fresh=True) for job in grid.jobs]
    summaries: list = [None] * len(grid.jobs)
    if not retrain:
        adopted = adopt_records(grid, out)
        for index, summary in committed_summaries(grid, out).items():
            summaries[index] = summary
        if any(summaries):
            print(f"{sum(1 for s in summaries if s)} of {len(grid.jobs)} jobs are recorded in {out} already"
                  + (f" ({len(adopted)} records copied from other sweeps of equal settings)" if adopted else "")
                  + ": read, not trained (--retrain trains them again)")
    todo_index = [i for i, s in enumerate(summaries) if not s]
    if finished_only:
        finished = set(finished_jobs(grid))
        print(f"--finished-only: {sum(1 for i in todo_index if i in finished)} of {len(todo_index)} jobs to "
              "run have a finished run; the rest are not run")
        for i in todo_index:
            if i not in finished:
                summaries[i] = {"error": "not trained yet (--finished-only)"}
        todo_index = [i for i in todo_index if i in finished]
    if not finished_only:  # a job that would refuse this machine: said once, before any starts
        check_devices([grid.jobs[i] for i in todo_index], launcher)
    print(f"sweep {name}: {len(grid.entries)} entries -> {len(grid.jobs)} jobs, {len(todo_index)} to run, "
          f"{parallel} at a time ({launcher}); results in {out}")
    bar = tqdm(total=len(grid.jobs), initial=len(grid.jobs) - len(todo_index), desc=f"sweep {name}", unit="job")

    def done(i: int, summary: dict) -> None:
        index = todo_index[i]
        bar.write(describe(grid.jobs[index], summary))
        record_job(grid, index, summary, out)
        bar.update()

    if todo_index:
        todo = Grid(jobs=[grid.jobs[i] for i in todo_index], entries=[])
        for i, summary in zip(todo_index, launch(todo, launcher, parallel, Path(runs_dir) / "jobs" / name,
                                                 slurm, timeout_min, done)):
            summaries[i] = summary
    bar.close()
    write_grid(grid, summaries, out)
    tables = write_sweep_tables(grid, summaries, out, baseline)
    print(f"{tables['rows']} results in {tables['csv']}; summary in {tables['summary']}"
          + (f"; PARTIAL: {tables['failed']} of {len(grid.jobs)} jobs have no result (failed or not run: "
             "see the summary)" if tables["failed"] else ""))
    return {"grid": grid, "summaries": summaries, **tables}


# ----------------------------------------------------------------------------- committed results

def _entry_records(grid: Grid, results_dir: str | Path):
    """Per entry: its rows (as `entry_rows`) from the records in `results_dir`, or None when a protocol has
    no record trained with the same settings on the same data (`training_key`, and the protocol card's
    dataset fingerprint)."""
    from reid.data.identity import dataset_fingerprint

    keys = [training_key(job_config(job)) for job in grid.jobs]
    prints = {job.root: dataset_fingerprint(job.root) for job in grid.jobs}
    for entry in grid.entries:
        job = grid.jobs[entry["job"]]
        found = []
        for protocol in PROTOCOLS_OF[entry["dataset"]]:
            record = read_record(Path(results_dir) / f"{entry_name(entry, protocol)}.json") or {}
            if record.get("sweep", {}).get("training_key") != keys[entry["job"]] or \
                    record.get("protocol", {}).get("fingerprint") != prints[job.root]:
                break
            found.append({**{k: entry[k] for k in ("label", "dataset", "budget", "seed")}, "protocol": protocol,
                          "steps": record["protocol"].get("steps"), **{m: record.get(m) for m in METRICS},
                          "run": record["sweep"]["run"], "train_s": record["sweep"].get("train_s")})
        yield entry, (found if len(found) == len(PROTOCOLS_OF[entry["dataset"]]) else None)


def collect(grid: Grid, results_dir: str | Path) -> tuple[list[dict], list[int]]:
    """The rows (as `entry_rows`) that `results_dir` already holds for the grid's entries, and the jobs
    still missing. A record answers an entry only if it was trained with the same settings on the same
    data (`training_key`, and the protocol card's dataset fingerprint)."""
    rows, missing = [], set()
    for entry, found in _entry_records(grid, results_dir):
        if found is None:
            missing.add(entry["job"])
        else:
            rows += found
    return rows, sorted(missing)


def committed_summaries(grid: Grid, results_dir: str | Path) -> dict[int, dict]:
    """The jobs whose every entry `results_dir` already answers, each with a summary as `run_job` returns
    it, rebuilt from the records (the sweep then trains only the others: run folders may be gone, results
    are committed)."""
    answered, missing = {}, set()
    for entry, found in _entry_records(grid, results_dir):
        if found is None:
            missing.add(entry["job"])
        elif entry["job"] not in answered:
            answered[entry["job"]] = {
                "run": found[0]["run"], "train_s": found[0]["train_s"], "steps": found[0]["steps"],
                "from_records": str(results_dir),
                "results": {r["protocol"]: {m: r[m] for m in METRICS} for r in found}}
    return {i: s for i, s in answered.items() if i not in missing}


def adopt_records(grid: Grid, results_dir: str | Path) -> list[Path]:
    """Copy into `results_dir` the records of other sweeps beside it (`results_dir/../*/`) that answer one
    of this grid's entries: same dataset, seed, budget and protocol, trained with the same settings on the
    same data (Table 4's L_trihardw row is Table 3's full model). The copy carries this entry's label and
    says where it came from (`sweep.reused_from`); its provenance is the training's own."""
    from reid.data.identity import dataset_fingerprint
    from reid.records.provenance import write_result

    out = Path(results_dir)
    have = {e["job"] for e, found in _entry_records(grid, out) if found is not None}
    keys, written = {}, []
    for entry in (e for e in grid.entries if e["job"] not in have):
        job = grid.jobs[entry["job"]]
        key = keys.setdefault(entry["job"], training_key(job_config(job)))
        fingerprint = dataset_fingerprint(job.root)
        budget = f"{entry['budget']}steps" if entry["budget"] else "profile-budget"
        for protocol in PROTOCOLS_OF[entry["dataset"]]:
            pattern = f"*/*-{entry['dataset']}-seed{entry['seed']}-{budget}-{protocol}.json"
            for path in sorted(out.parent.glob(pattern)):
                if path.parent.resolve() == out.resolve():
                    continue
                record = read_record(path)
                if record is None or record["sweep"].get("training_key") != key or \
                        record.get("protocol", {}).get("fingerprint") != fingerprint:
                    continue
                record["sweep"] = {**record["sweep"], "label": entry["label"],
                                   "reused_from": f"{path.parent.name}/{path.name}"}
                written.append(write_result(record, out, entry_name(entry, protocol)))
                break
    return written


def grid_spec(name: str) -> dict:
    if name not in GRIDS:
        raise UserError(f"--grid {name!r}: expected one of {list(GRIDS)}")
    return GRIDS[name]


def settings_grid(S, name: str) -> Grid:
    """A named grid on a notebook's settings: its rows and seeds (REID_SEEDS, when set, for every row), the
    profile's budget (REID_STEPS_CAP caps each epoch, as in every run), the datasets the settings have."""
    from reid.config import load_config
    from reid.experiments import profile_config

    spec = grid_spec(name)
    rows = [parse_row(r)[0] for r in spec["rows"]] if S.seeds_given else list(spec["rows"])
    seeds = S.seeds if S.seeds_given else parse_seeds(spec["seeds"])
    datasets = tuple(d for d in spec["datasets"] if d in S.datasets())
    budgets = []
    for budget in spec["budgets"] or (None,):
        epochs = load_config(profile_config(S.profile, datasets[0])).train.epochs
        if budget is None:
            budget = profile_budget(S.profile, datasets[0])
        if S.steps_cap:
            budget = epochs * min(S.steps_cap, budget // epochs if budget else S.steps_cap)
        budgets.append(budget)
    return plan(rows, seeds, datasets, tuple(dict.fromkeys(budgets)), S.profile,
                {d: S.root(d) for d in datasets}, S.run_overrides(), S.runs_dir / "sweeps")


def _train_missing(S, name: str, grid: Grid, missing: list[int], out: Path, parallel: int | None = None) -> list:
    """Train (and record in `out`) the grid's jobs `missing`, in parallel single-thread jobs."""
    todo = Grid(jobs=[replace(grid.jobs[i], fresh=S.retrain) for i in missing],
                entries=[{**e, "job": missing.index(e["job"])} for e in grid.entries if e["job"] in missing])
    parallel = parallel or max(1, min(len(todo.jobs), os.cpu_count() or 1))

    def done(index: int, summary: dict) -> None:
        print(describe(todo.jobs[index], summary))
        record_job(todo, index, summary, out)

    summaries = launch(todo, "local", parallel, Path(S.runs_dir) / "sweeps" / "jobs" / name, on_done=done)
    failed = [describe(todo.jobs[i], s) for i, s in enumerate(summaries) if "error" in s]
    if failed:
        raise UserError(f"grid {name}: {len(failed)} jobs failed; first: {failed[0]}")
    return summaries


def sweep_runs(S, name: str, rows: list[str], parallel: int | None = None) -> dict[tuple[str, int], Path]:
    """Notebook 08: the run folders {(row, seed): folder} of a grid's `rows` at the settings' seeds, trained
    (and recorded) where no finished run is there: Fig. 3 is measured on Table 3's own baseline and
    full-model trainings, not on others of the same name."""
    from reid.experiments import is_finished, run_dir

    grid = settings_grid(S, name)
    grid = Grid(jobs=grid.jobs, entries=[e for e in grid.entries if e["label"] in rows])

    def folder(entry) -> Path | None:
        job = grid.jobs[entry["job"]]
        cfg = job_config(job)
        own = run_dir(job.runs_dir, cfg)
        return own if is_finished(own, cfg) else finished_twin(job, cfg)

    missing = sorted({e["job"] for e in grid.entries if folder(e) is None})
    if missing:
        _train_missing(S, name, grid, missing, Path(S.results_dir) / "sweeps" / name, parallel)
    return {(e["label"], e["seed"]): folder(e) for e in grid.entries}


def shown_path(path: str | Path) -> str:
    """`path` as a notebook prints it: relative to this repository when inside it, else the folder's last three
    parts after "...": committed outputs name no machine's folders (/work/..., /home/...)."""
    path, root = Path(path).resolve(), Path(__file__).resolve().parents[1]
    if path.is_relative_to(root):
        return str(path.relative_to(root))
    return str(Path("...", *path.parts[-3:]))

def notebook_sweep(S, name: str, parallel: int | None = None):
    """Notebooks 06/07: the grid's results as a DataFrame (a row per entry and protocol). Committed results
    of the same settings are read (`collect`); only the missing jobs are trained, in parallel
    single-thread jobs, and recorded, or every job with REID_RETRAIN=1. Prints what it read and trained."""
    import pandas as pd

    grid = settings_grid(S, name)
    out = Path(S.results_dir) / "sweeps" / name
    if not S.retrain:
        adopt_records(grid, out)
    rows, missing = ([], list(range(len(grid.jobs)))) if S.retrain else collect(grid, out)
    print(f"grid {name}: {len(grid.entries)} entries, {len(grid.jobs)} jobs; "
          f"{len(grid.jobs) - len(missing)} read from {shown_path(out)}, {len(missing)} to run")
    if missing and S.missing == "skip":
        print(f"PARTIAL (REID_MISSING=skip): {len(missing)} jobs have no result and are left out: "
              + "; ".join(f"{row_label(grid.jobs[i].row)} seed {grid.jobs[i].seed} {grid.jobs[i].budget} steps"
                          for i in missing))
        return pd.DataFrame(rows)
    if missing:
        _train_missing(S, name, grid, missing, out, parallel)
        rows, still = collect(grid, out)
        if still:
            raise UserError(f"grid {name}: {len(still)} jobs ran but left no record in {out}")
    return pd.DataFrame(rows)
