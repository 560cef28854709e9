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
Launchers are submitit's: its local executor on one machine, its SLURM executor on a cluster. A job is one
task on one node: with `--gpus-per-job N` it starts N DDP processes itself (`_train_ddp`); at its time limit
or pre-empted it is requeued and resumes from its last epoch (`JobRunner.checkpoint`). RegDB jobs train the
profile's splits (10 on `paper*`). Stopping, killing and restarting a sweep: docs/sweeps.md.
"""

from __future__ import annotations

import csv
import hashlib
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
# RegDB: a job trains and tests `default_regdb_splits(profile)` splits (reid.experiments: the protocol's 10 on
# `paper*`, split 1 on the CPU profiles), one model per split in one job, recorded as their mean.


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
    # Controls of issue 32 (docs/claims.md, "Loss or modules, margin, recipe"). Table 3's full model gains over
    # the baseline only with the switch from Eq. 14 to Eq. 15, and at equal alpha Eq. 15's hinge is never
    # larger than Eq. 14's (a softmax-weighted mean of the positive distances is at most their maximum, of
    # the negative ones at least their minimum): the switch also softens the margin. Eq. 14 at smaller
    # alphas, and Eq. 15 without any alpha (soft margin), tell the weighting from the margin; Eq. 14 under a
    # soft margin is a batch-hard triplet with no hinge to sit open on. The two Table 4 rows are the
    # same trainings as Table 3's (+TA +CrossViT +CSA and the full model) and are reused, not trained.
    "controls_loss": {"rows": ["table4_trihardw", "table4_trihard", "control_trihard_m05", "control_trihard_m03",
                               "control_trihard_m01", "control_trihardw_soft", "control_trihard_soft"],
                      "seeds": "0-4", "datasets": ("sysu",), "budgets": None, "baseline": "table4_trihardw"},
    # CSA's channel gate at the micro widths: C/16 leaves 3 and 6 hidden units, mostly dead after training
    # (`python -m reid evaluate` prints the gates); C/4 leaves 12 and 24. Against the full model (Table 3's
    # trainings, reused).
    "controls_csa": {"rows": ["table3_full", "control_full_csa_r4"], "seeds": "0-4", "datasets": ("sysu",),
                     "budgets": None, "baseline": "table3_full"},
    # The smoke profile's lr was chosen on the full model alone: 4e-3 / 2e-3 / 1e-3, later 5e-4, one training
    # seed (0) on the development set of data seed 7, judged on that set's own test split
    # (docs/recipe_search.md); the baseline and the L_trihard rows inherit 1e-3 untuned. The same values on
    # the baseline, the same way: `data` is the folder the grid must run on, made by `data_command`.
    "recipe_parity": {"rows": ["table3_baseline", "control_baseline_lr5e4", "control_baseline_lr2e3",
                               "control_baseline_lr4e3"],
                      "seeds": "0", "datasets": ("sysu",), "budgets": None, "data": "data/dev-v5",
                      "data_command": "python -m reid synth --out data/dev-v5 --seed 7"},
    # Recipe parity's outcome, measured (docs/claims.md): on the development set the full model's lr rule picks
    # 5e-4 for the baseline (one seed), not the 1e-3 Tables 3-4 ran it at. The full model against the baseline
    # at that lr, on the default draw, at Table 3's seeds.
    "baseline_retuned": {"rows": ["control_baseline_lr5e4", "table3_full"], "seeds": "0-4", "datasets": ("sysu",),
                         "budgets": None, "baseline": "control_baseline_lr5e4"},
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
    splits: int = 1  # RegDB: splits 1..splits, one model each (1 for SYSU-MM01)
    procs: int = 1  # training processes of the job (DDP when > 1: one per GPU, `--gpus-per-job`)


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


def budget_label(budget: int) -> str:
    return f"{budget} steps" if budget else "the profile's own steps"


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
    """The resolved config of the job's (first) run: RegDB's split 1; `job_configs` gives every split's."""
    from reid.experiments import resolve

    split = 1 if job.dataset == "regdb" else None
    cfg = resolve(job.row, job.dataset, job.root, seed=job.seed, split=split, profile=job.profile,
                  overrides=list(job.overrides))
    if not job.budget:  # 0: the profile's own budget, as it is
        return cfg
    return resolve(job.row, job.dataset, job.root, seed=job.seed, split=split, profile=job.profile,
                   overrides=[*job.overrides, *budget_overrides(cfg, job.budget)])


def job_configs(job: Job) -> list:
    """One resolved config per run of the job: RegDB's splits 1..job.splits, else the one."""
    from reid.experiments import with_split

    cfg = job_config(job)
    return [with_split(cfg, split) for split in range(1, job.splits + 1)] if job.dataset == "regdb" else [cfg]


def job_key(job: Job) -> str:
    """`training_key` of the job's runs: a 10-split RegDB job is another training than a 1-split one, and a
    DDP job of N processes another than a single one (N batches a step, lr x N). Single-process 1-split keys
    are the run's own, so the records written before either existed still match."""
    key = training_key(job_config(job))
    return key + (f"-splits{job.splits}" if job.splits > 1 else "") + (f"-ddp{job.procs}" if job.procs > 1 else "")


def job_run_dir(job: Job, cfg) -> Path:
    """The run folder of one of the job's runs: the runner's (`run_dir`), `-ddpN` after it for a DDP job (a
    run of N processes learns otherwise, and a checkpoint does not say how many processes may resume it)."""
    from reid.experiments import run_dir

    folder = run_dir(job.runs_dir, cfg)
    return folder.with_name(f"{folder.name}-ddp{job.procs}") if job.procs > 1 else folder


def profile_budget(profile: str, dataset: str) -> int:
    """The profile's own number of steps (epochs x batches per epoch), when it fixes one; else 0."""
    from reid.config import load_config
    from reid.experiments import profile_config

    cfg = load_config(profile_config(profile, dataset))
    return cfg.train.epochs * cfg.data.batches_per_epoch


def nearest_budget(budget: int, epochs: int) -> int:
    """The multiple of `epochs` nearest to `budget` (a tie goes up), at least one step per epoch."""
    return max(epochs, (budget + epochs // 2) // epochs * epochs)


def grid_budgets(name: str, budgets, profile: str, datasets: tuple[str, ...]) -> tuple[int, ...]:
    """A named grid's budgets on `profile`. None: the profile's own number of steps, or 0 (its own schedule,
    as it is) where it fixes none (`paper`: epochs of the data's size). A budget in steps is spread over the
    profile's epochs, so it must be a multiple of them: the grids are written for smoke's 9 epochs, and on a
    profile of other epochs (paper: 100) each budget becomes the nearest multiple (`nearest_budget`), said
    in one line. A budget typed with `--budgets` is never changed: it is refused instead (`budget_overrides`)."""
    from reid.config import load_config
    from reid.experiments import profile_config

    if budgets is None:
        return tuple(sorted({profile_budget(profile, d) for d in datasets}))
    epochs = load_config(profile_config(profile, datasets[0])).train.epochs
    out = tuple(dict.fromkeys(nearest_budget(int(b), epochs) for b in budgets))
    moved = [f"{b} -> {n}" for b, n in zip(budgets, (nearest_budget(int(b), epochs) for b in budgets)) if b != n]
    if moved:
        print(f"--grid {name} on profile {profile}: budgets {', '.join(moved)} steps (the nearest multiples of its "
              f"{epochs} epochs; a budget is spread evenly over the epochs)")
    return out


def plan(rows: list[str], seeds: tuple[int, ...], datasets: tuple[str, ...], budgets: tuple[int, ...],
         profile: str | None, roots: dict, overrides=(), runs_dir: str | Path = "runs/sweeps",
         trials: int = 10, procs: int = 1, regdb_splits: int | None = None) -> Grid:
    """Resolve every entry of the grid (so that any bad row or budget fails before a job starts) and give
    each distinct training one job. A row may carry its own seeds ('table3_full:0-4'). A budget of 0 is the
    profile's own schedule, as it is (a profile that fixes no number of steps: `paper`). RegDB jobs train
    the profile's splits (`default_regdb_splits`; `regdb_splits`, when given: the notebooks' REID_REGDB_SPLITS);
    `procs` > 1 trains each job with DDP over that many processes."""
    from reid.experiments import default_regdb_splits

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
                              tuple(overrides), str(runs_dir), trials,
                              splits=(regdb_splits or default_regdb_splits(profile or "")) if dataset == "regdb" else 1,
                              procs=procs)
                    key = job_key(job)  # equal settings under another name: one job
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

    if job.procs > 1:
        return None  # a twin is a single-process run: another training than a DDP job's
    return equal_finished_run(cfg or job_config(job), [job.runs_dir])


SWEEP_RESUME = "re-run the same sweep command, which resumes its unfinished runs from their last epoch"


def run_job(job: Job) -> dict:
    """Train (or reuse, or resume) the job's runs and evaluate them under its dataset's protocols; in a worker.
    RegDB: one run per split 1..job.splits, evaluated together (the protocol's mean over splits)."""
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    import torch

    from reid.experiments import evaluate_runs

    torch.set_num_threads(job.threads)
    start = time.perf_counter()
    from reid.train.engine import RESUME_ADVICE

    try:
        runs = [_train_one(job, cfg) for cfg in job_configs(job)]
    except UserError as err:  # a full disk: sweep has no --resume; the same sweep command resumes the run
        if RESUME_ADVICE not in str(err):
            raise
        raise UserError(str(err).replace(RESUME_ADVICE, SWEEP_RESUME)) from None
    trained = time.perf_counter() - start
    results = {p: evaluate_runs(runs, p, job.root, trials=job.trials) for p in PROTOCOLS_OF[job.dataset]}
    steps = {r["protocol"].get("steps") for r in results.values()}
    # The training time the runs' own logs recorded (epochs only; a reused or resumed run still reports all)
    logged = 0.0
    for run in runs:
        with open(run / "log.csv", newline="") as f:
            logged += sum(float(row["epoch_time_s"] or 0) for row in csv.DictReader(f))
    return {"run": str(runs[0]), **({"runs": [str(r) for r in runs]} if len(runs) > 1 else {}),
            "train_s": round(logged, 1), "wall_s": round(time.perf_counter() - start, 1),
            "this_job_s": round(trained, 1),
            "steps": steps.pop() if len(steps) == 1 else "mixed",
            "results": {p: {m: r.get(m) for m in METRICS} for p, r in results.items()}}


def _train_one(job: Job, cfg) -> Path:
    """One run of the job: reused when it (or a twin of equal settings) has finished, else trained or
    resumed, in this process or, with `job.procs` > 1, in that many DDP processes (`_train_ddp`)."""
    from reid.experiments import is_finished, train_run
    from reid.train.engine import repair_best_checkpoint

    if job.fresh:  # --retrain: never the finished run; a fresh folder beside it (an unfinished one resumes)
        folder = fresh_run_dir(job_run_dir(job, cfg), cfg)
    else:
        folder = job_run_dir(job, cfg)
        twin = None if is_finished(folder, cfg) or job.procs > 1 else finished_twin(job, cfg)
        if twin is not None:
            print(f"{folder.name}: the same settings trained already as {twin.name}, reusing it")
            repair_best_checkpoint(twin)
            return twin
    if job.procs > 1 and not is_finished(folder, cfg):
        _train_ddp(cfg, job.runs_dir, folder, job.procs)
    return train_run(cfg, job.runs_dir, folder=folder)  # finished now: reused (best.pt checked), or trained here


def _train_ddp(cfg, runs_dir, folder: Path, procs: int) -> None:
    """Train `cfg` into `folder` with DistributedDataParallel over `procs` processes on this node (one per
    GPU; gloo on the CPU), started here as torchrun would: a job is one task, so one submitit job on one node
    runs DDP the same way under the local and the SLURM launcher. Rank 0 writes the run; a run stopped
    mid-way resumes from its last epoch like any other."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the process group's rendezvous on this node
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_rank, args=(procs, port, cfg, str(runs_dir), str(folder), os.environ.get("OMP_NUM_THREADS", "1")),
             nprocs=procs)


def _ddp_rank(rank: int, procs: int, port: int, cfg, runs_dir: str, folder: str, threads: str) -> None:
    import signal

    # A local job ignores SIGINT (`_submit`); a rank must not: torch ends the ranks of a job that died with it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(procs), LOCAL_WORLD_SIZE=str(procs), OMP_NUM_THREADS=threads)
    import torch

    from reid.experiments import train_run

    torch.set_num_threads(int(threads))
    train_run(cfg, runs_dir, folder=folder)


def check_devices(jobs: list[Job], launcher: str) -> None:
    """What every job of a local sweep would refuse on this machine (`check_gpu_run`: a paper-sized model on
    real data and no GPU), refused once, before any job starts. Only jobs that will train count (a finished
    run or its twin is reused); a SLURM sweep's jobs run on the nodes it asks for, not here."""
    if launcher != "local":
        return
    import torch

    from reid.data import dataset_root
    from reid.data.identity import is_synthetic
    from reid.experiments import is_finished
    from reid.train.engine import check_gpu_run

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for job in jobs:
        cfg = job_config(job)
        if job.fresh or not (is_finished(job_run_dir(job, cfg), cfg) or finished_twin(job, cfg)):
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

    slurm = slurm or {}
    if launcher == "local":
        import torch

        executor = submitit.LocalExecutor(folder=str(folder))
        # submitit hides every GPU from a local job unless asked for (CUDA_VISIBLE_DEVICES=""): a local job
        # gets --gpus-per-job of them, or the first one where the machine has one (as `check_devices` assumed)
        gpus = slurm.get("gpus", 0) or min(1, torch.cuda.device_count())
        executor.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus)
        return executor
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    # one task per job on one node: a job with several GPUs starts its own DDP processes (`_train_ddp`)
    params = {"timeout_min": timeout_min, "slurm_array_parallelism": parallel, "nodes": 1, "tasks_per_node": 1,
              "gpus_per_node": slurm.get("gpus", 0), "cpus_per_task": slurm.get("cpus", 8)}
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    executor.update_parameters(**params)
    return executor


# The process id of the sweep that started a local job (`launch`), read by the job: an orphaned job stops.
SWEEP_PID_VARIABLE = "REID_SWEEP_PID"


class JobRunner:
    """What a sweep submits: `run_job` in the worker, requeued by submitit on a timeout or a pre-emption
    (submitit's `Checkpointable`: its `checkpoint` resubmits the same job, which resumes its run from the last
    epoch, exactly as a sweep started again does; SLURM's timeout signal reaches it `signal_delay_s` before the
    limit). A local job also stops on a SIGTERM (submitit would ignore it) and when the sweep that started it
    is gone (`kill -9` of the sweep): never an orphan training on and holding its run folder."""

    def __call__(self, job: Job) -> dict:
        if os.environ.get("SUBMITIT_EXECUTOR") == "local":
            _stop_with_the_sweep()
        return run_job(job)

    def checkpoint(self, job: Job):
        from submitit.helpers import DelayedSubmission

        print(f"{row_label(job.row)} {job.dataset} seed {job.seed}: timed out or pre-empted; requeued, the run "
              "resumes from its last epoch", flush=True)
        return DelayedSubmission(JobRunner(), job)


def _stop_with_the_sweep(poll_s: float = 2.0) -> None:
    """In a local job: a SIGTERM ends it (a KeyboardInterrupt: its run keeps its last epoch), and so does the
    end of the sweep process that started it, checked every `poll_s` seconds."""
    import signal
    import threading

    signal.signal(signal.SIGTERM, _interrupted)
    sweep_pid = int(os.environ.get(SWEEP_PID_VARIABLE) or 0)
    if not sweep_pid:
        return

    def watch() -> None:
        while _alive(sweep_pid):
            time.sleep(poll_s)
        print(f"the sweep that started this job (pid {sweep_pid}) is gone: stopping (the run resumes from its "
              "last epoch when the sweep is started again)", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="sweep-watch").start()


def _interrupted(signum, frame):
    """A SIGTERM handler: stop as Ctrl-C does (a KeyboardInterrupt), so every `finally` runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def _alive(pid: int) -> bool:
    """Is process `pid` running (a zombie, killed and not yet reaped by its parent, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process of that number
        return True
    try:  # Linux: the state after the command name in /proc/PID/stat
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def check_run_locks(jobs: list[Job], launcher: str, name: str, wait_s: float = 15.0) -> None:
    """Before a local sweep starts its jobs: a run folder that another process trains (the engine's `.lock`,
    which names its holder) would fail that job. An orphan of a sweep stopped by `kill -9` stops by itself
    within seconds (`_stop_with_the_sweep`): waited for, up to `wait_s`; anything still training is refused
    in one line naming its process."""
    if launcher != "local":
        return  # a cluster's jobs hold their locks on the nodes, not here
    from reid.train.engine import lock_holder

    folders = [job_run_dir(job, cfg) for job in jobs if not job.fresh for cfg in job_configs(job)]
    deadline = time.monotonic() + wait_s
    while True:
        held = [(folder, lock_holder(folder)) for folder in folders]
        held = [(folder, pid) for folder, pid in held if pid is not None]
        if not held or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if held:
        folder, pid = held[0]
        who = f"process {pid}" if pid else "another process"
        raise UserError(f"sweep {name}: {folder} is being trained by {who} (a sweep still running, or a job left "
                        f"by one that was killed); wait for it to end, or stop it (kill {pid or 'PID'}: its run "
                        "resumes from its last epoch), then run the same command again")


def _failure(err: BaseException, handle=None) -> str:
    """The one line to report for a failed job: the worker's own UserError when there is one, the Python
    error it died of, or, when it left neither (a signal: `kill -9`, the out-of-memory killer), that."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("reid.utils.errors.UserError", "UserError", "reid.train.engine.DivergedError")):
            return line.split(":", 1)[-1].strip()
    state = getattr(handle, "state", None) if handle is not None else None
    if any("has not produced any output" in line for line in lines):  # no result, no Python error of its own
        where = f"; submitit state {state}" if state not in (None, "FINISHED") else ""  # local: the controller's
        if state in ("OUT_OF_MEMORY", "TIMEOUT", "CANCELLED", "PREEMPTED", "NODE_FAIL"):
            return f"the job ended without a result: SLURM state {state}"
        return ("the worker was killed without a result or an error of its own: a signal such as SIGKILL "
                f"(`kill -9`, or the kernel's out-of-memory killer: `dmesg` names it){where}")
    # the last line of the error stream that is not a progress bar (tqdm's lines hold '|' and 'it/s' or '%|')
    for line in reversed(lines):
        if not set(line) <= set("-=") and "%|" not in line and "it/s]" not in line and "s/it]" not in line:
            return line
    return type(err).__name__


class SweepStopped(KeyboardInterrupt):
    """The sweep was stopped (Ctrl-C, SIGTERM); `stopped`: how many of its running jobs it cancelled."""

    def __init__(self, why: str, stopped: int):
        super().__init__(why)
        self.why, self.stopped = why, stopped


def launch(grid: Grid, launcher: str = "local", parallel: int = 1, folder: str | Path = "runs/sweeps/jobs",
           slurm: dict | None = None, timeout_min: int = 24 * 60, on_done=None, poll_s: float = 2.0) -> list:
    """Run `grid.jobs` through submitit, at most `parallel` at a time; returns one summary per job (a dict
    from `run_job`, or {"error": one line, "log": its error stream, "job_id"} for a job that failed).
    `on_done(index, summary)` is called in this process as each job ends (the sweep's line per job and its
    records).

    Stopping the sweep stops its jobs: Ctrl-C, a SIGTERM, or a failure here (a record that cannot be
    written: a full disk) cancels every job still running (they resume from their last epoch when the sweep
    is started again), never leaving one training on, orphaned; a local job whose sweep was killed (`kill -9`)
    stops by itself. Ctrl-C and SIGTERM end in `SweepStopped`."""
    import signal
    import threading

    check_launcher(launcher, parallel, timeout_min, slurm)
    # submitit's workers inherit this process's environment at submission: one thread each, the sweep's pid
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", SWEEP_PID_VARIABLE)}
    os.environ["OMP_NUM_THREADS"] = str(grid.jobs[0].threads if grid.jobs else 1)
    os.environ[SWEEP_PID_VARIABLE] = str(os.getpid())
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if main_thread:
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _launch(grid, launcher, parallel, folder, slurm, timeout_min, on_done, poll_s)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _submit(executor, launcher: str, job: Job):
    """Submit one job. A local job's processes start with SIGINT ignored: a Ctrl-C at the terminal reaches
    the whole process group, and submitit's job controller answers it with a traceback on the sweep's
    terminal; this process alone takes it, and stops its jobs itself (`_stop`)."""
    import signal
    import threading

    if launcher != "local" or threading.current_thread() is not threading.main_thread():
        return executor.submit(JobRunner(), job)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return executor.submit(JobRunner(), job)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(running: dict, wait_s: float = 30.0) -> int:
    """Cancel every job still running (scancel on SLURM; a local job's controller gets a SIGTERM, which it
    passes to the job, which stops: `JobRunner`); how many. Local jobs are waited for (up to `wait_s`), so
    that their run folders are free when the sweep has ended."""
    import signal

    stopped, waiting = 0, []
    for handle in running.values():
        try:
            process = getattr(handle, "_process", None)  # submitit's LocalJob: its controller
            if process is not None:
                process.send_signal(signal.SIGTERM)
                waiting.append(process)
            else:
                handle.cancel(check=False)
            stopped += 1
        except Exception as err:  # noqa: BLE001 -- stop the others all the same
            print(f"warning: could not cancel job {getattr(handle, 'job_id', '?')}: {err}")
    running.clear()
    deadline = time.monotonic() + wait_s
    for process in waiting:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 -- still running after the wait: SIGKILL (its last epoch is kept)
            process.kill()
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
            summaries[index] = {"error": _failure(err, handle), "log": str(handle.paths.stderr),
                                "job_id": str(getattr(handle, "job_id", "?"))}
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
                    handles = [_submit(executor, launcher, grid.jobs[i]) for i in pending]
            except (FailedJobError, OSError, RuntimeError) as err:
                text = [line for line in str(err).splitlines() if line.strip()]
                raise UserError(f"--launcher slurm: sbatch refused the job array: "
                                f"{text[-1].strip() if text else type(err).__name__}") from None
            running = dict(zip(pending, handles))
            pending = []
        while pending or running:
            while launcher == "local" and pending and len(running) < parallel:
                index = pending.pop(0)
                running[index] = _submit(executor, launcher, grid.jobs[index])
            for index, handle in list(running.items()):
                if handle.done():
                    del running[index]
                    finish(index, handle)
            if running:
                time.sleep(poll_s)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the caller says what was recorded, in one line
        raise SweepStopped(str(err) or "Ctrl-C", _stop(running)) from None
    except BaseException:
        if running:
            print(f"stopping the sweep: cancelling its {_stop(running)} running jobs", flush=True)
        raise
    return summaries


# -------------------------------------------------------------------------------------- recording

def is_temporary(path: Path) -> bool:
    """A hidden file: the temporary of an atomic write (`.NAME.json.PID-HEX.tmp.json`, left by a kill)."""
    return path.name.startswith(".")


def read_record(path: Path, warn: bool = True, runs_dir: str | Path | None = None) -> dict | None:
    """A sweep record (a result JSON with its `sweep` and `protocol` parts), or None when there is none, or
    when the file is damaged (truncated, not JSON, of another shape) or its numbers are not what was measured
    (`record_problem`, with the runs in `runs_dir`): then a warning names it and it counts as missing, so one
    bad file never blocks the rest, and none is adopted (a sweep records that entry again from its run)."""
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
        record = {**record, "sweep": record.get("sweep", {}), "protocol": record.get("protocol", {})}
        problem = record_problem(record, runs_dir)
    if problem is None:
        return record
    if warn:
        print(f"warning: {path}: {problem}; treated as missing")
    return None


def metrics_digest(record: dict) -> str:
    """A hash of what a record says was measured (its metrics and steps), written with it (`sweep.digest`)."""
    blob = json.dumps({"metrics": {m: record.get(m) for m in METRICS}, "steps": record["protocol"].get("steps")},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def record_problem(record: dict, runs_dir: str | Path | None = None) -> str | None:
    """Why a record's numbers cannot be trusted, or None: they differ from the digest written with them, or
    (its run folder in `runs_dir` still there) from the run's own cached result of the same protocol. A record
    edited by hand (rank1 99.9, its training key intact) is never adopted."""
    digest = record["sweep"].get("digest")
    if digest is not None and digest != metrics_digest(record):
        return "its metrics differ from the digest written with them (edited by hand?)"
    names, protocol = record.get("runs"), record["sweep"].get("protocol")
    if runs_dir is None or not protocol or not isinstance(names, list) or not names:
        return None
    from reid.experiments import cached_result

    cache = cached_result([Path(runs_dir) / n for n in names], protocol,
                          trials=record["protocol"].get("trials") or 10, flip=bool(record["protocol"].get("flip")))
    try:
        measured = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # no run folder (results are committed, runs are not): the digest is the check
    differ = [m for m in METRICS if measured.get(m) != record.get(m)]
    if differ:
        verb = "differs" if len(differ) == 1 else "differ"
        return f"its {', '.join(differ)} {verb} from its run's cached result {cache} (edited by hand?)"
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
    from reid.experiments import cached_result

    runs = [Path(r) for r in summary.get("runs", [summary["run"]])]
    run, job = runs[0], grid.jobs[index]
    written = []
    for entry in (e for e in grid.entries if e["job"] == index):
        for protocol in summary["results"]:
            name = entry_name(entry, protocol)
            old = read_record(Path(results_dir) / f"{name}.json", runs_dir=job.runs_dir)
            if old is not None and old.get("runs") == [r.name for r in runs] and "training_key" in old["sweep"]:
                continue
            result = json.loads(cached_result(runs, protocol, trials=job.trials).read_text())
            # The worker's command line is submitit's; the command that asked for this result is the sweep's.
            prov = result.get("provenance", {})
            result["provenance"] = {**prov, "command": current_command(), "worker_command": prov.get("command")}
            result["sweep"] = {**{k: entry[k] for k in ("label", "dataset", "budget", "seed")},
                               "protocol": protocol, "run": run.name, "train_s": summary["train_s"],
                               "training_key": job_key(job)}
            result["sweep"]["digest"] = metrics_digest(result)
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
        lines += [f"- {row_label(j.row)} {j.dataset} seed {j.seed} {budget_label(j.budget)}: "
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
    head = f"{row_label(job.row)} {job.dataset} seed {job.seed} {budget_label(job.budget)}"
    if "error" in summary:
        job_id = f"job {summary['job_id']}, " if summary.get("job_id") else ""
        return f"FAILED {head}: {summary['error']} ({job_id}log: {summary.get('log')})"
    cells = ", ".join(f"{p} {m['rank1']:.2f} / {m['mAP']:.2f}" for p, m in summary["results"].items())
    return f"done {head}: {summary['steps']} steps in {summary['train_s']:.0f} s; Rank-1 / mAP {cells}"


def finished_jobs(grid: Grid) -> list[int]:
    """The jobs whose run folder already holds a finished run."""
    from reid.experiments import is_finished

    out = []
    for index, job in enumerate(grid.jobs):
        cfg = job_config(job)
        if is_finished(job_run_dir(job, cfg), cfg) or finished_twin(job, cfg) is not None:
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
    # --gpus-per-job N: each job trains with DDP over N processes, one per GPU (`_train_ddp`)
    grid = plan(rows, seeds, datasets, budgets, profile, roots, overrides, runs_dir,
                procs=max(1, (slurm or {}).get("gpus", 0)))
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
        check_run_locks([grid.jobs[i] for i in todo_index], launcher, name)  # e.g. a killed sweep's orphan
    print(f"sweep {name}: {len(grid.entries)} entries -> {len(grid.jobs)} jobs, {len(todo_index)} to run, "
          f"{parallel} at a time ({launcher}); results in {out}")
    bar = tqdm(total=len(grid.jobs), initial=len(grid.jobs) - len(todo_index), desc=f"sweep {name}", unit="job")

    def done(i: int, summary: dict) -> None:
        index = todo_index[i]
        bar.write(describe(grid.jobs[index], summary))
        record_job(grid, index, summary, out)
        bar.update()

    try:
        if todo_index:
            todo = Grid(jobs=[grid.jobs[i] for i in todo_index], entries=[])
            for i, summary in zip(todo_index, launch(todo, launcher, parallel, Path(runs_dir) / "jobs" / name,
                                                     slurm, timeout_min, done)):
                summaries[i] = summary
    except SweepStopped as stop:  # one line (the CLI's "interrupted: ..."), exit 130; every record is kept
        recorded = bar.n
        bar.close()
        why = "Ctrl-C" if stop.why in ("", "Ctrl-C") else stop.why
        raise SweepStopped(f"sweep {name} stopped ({why}): {recorded} of {len(grid.jobs)} jobs recorded in {out}"
                           + (f", {stop.stopped} running jobs stopped at their last epoch" if stop.stopped else "")
                           + f"; {SWEEP_RESUME}", stop.stopped) from None
    bar.close()
    write_grid(grid, summaries, out)
    tables = write_sweep_tables(grid, summaries, out, baseline)
    for index, summary in enumerate(summaries):  # each failure again, one line each, after the bar's lines
        if summary and "error" in summary and not summary["error"].startswith("not trained yet"):
            print(describe(grid.jobs[index], summary))
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

    keys = [job_key(job) for job in grid.jobs]
    prints = {job.root: dataset_fingerprint(job.root) for job in grid.jobs}
    for entry in grid.entries:
        job = grid.jobs[entry["job"]]
        found = []
        for protocol in PROTOCOLS_OF[entry["dataset"]]:
            record = read_record(Path(results_dir) / f"{entry_name(entry, protocol)}.json", runs_dir=job.runs_dir) or {}
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
        key = keys.setdefault(entry["job"], job_key(job))
        fingerprint = dataset_fingerprint(job.root)
        budget = f"{entry['budget']}steps" if entry["budget"] else "profile-budget"
        for protocol in PROTOCOLS_OF[entry["dataset"]]:
            pattern = f"*/*-{entry['dataset']}-seed{entry['seed']}-{budget}-{protocol}.json"
            for path in sorted(out.parent.glob(pattern)):
                if path.parent.resolve() == out.resolve():
                    continue
                record = read_record(path, runs_dir=job.runs_dir)
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


def settings_grid(S, name: str, rows: list[str] | None = None) -> Grid:
    """A named grid on a notebook's settings: its rows (`rows`: only these of them) and seeds (REID_SEEDS, when
    set, for every row), the profile's budget (REID_STEPS_CAP caps each epoch, as in every run), the datasets
    the settings have."""
    from reid.config import load_config
    from reid.experiments import profile_config

    spec = grid_spec(name)
    chosen = list(spec["rows"])
    if rows is not None:
        unknown = sorted(set(rows) - {parse_row(r)[0] for r in chosen})
        if unknown:
            raise UserError(f"grid {name}: rows {unknown} are not in it; its rows: "
                            f"{[parse_row(r)[0] for r in chosen]}")
        chosen = [r for r in chosen if parse_row(r)[0] in rows]
    rows = [parse_row(r)[0] for r in chosen] if S.seeds_given else chosen
    seeds = S.seeds if S.seeds_given else parse_seeds(spec["seeds"])
    datasets = tuple(d for d in spec["datasets"] if d in S.datasets())
    epochs = load_config(profile_config(S.profile, datasets[0])).train.epochs
    budgets = []
    for budget in grid_budgets(name, spec["budgets"], S.profile, datasets[:1]):
        if S.steps_cap:
            budget = epochs * min(S.steps_cap, budget // epochs if budget else S.steps_cap)
        budgets.append(budget)
    return plan(rows, seeds, datasets, tuple(dict.fromkeys(budgets)), S.profile,
                {d: S.root(d) for d in datasets}, S.run_overrides(), S.runs_dir / "sweeps", regdb_splits=S.regdb_splits)


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


def sweep_runs(S, name: str, rows: list[str], parallel: int | None = None,
               seeds: list[int] | None = None) -> dict[tuple[str, int], Path]:
    """Notebooks 07-09: the run folders {(row, seed): folder} of a grid's `rows` at the settings' seeds (`seeds`:
    only these of them), trained (and recorded) where no finished run is there: Fig. 3 is measured on Table 3's
    own baseline and full-model trainings, not on others of the same name."""
    from reid.experiments import is_finished

    grid = settings_grid(S, name, rows)
    grid = Grid(jobs=grid.jobs, entries=[e for e in grid.entries if seeds is None or e["seed"] in seeds])

    def folder(entry) -> Path | None:
        job = grid.jobs[entry["job"]]
        cfg = job_config(job)
        own = job_run_dir(job, cfg)
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

def notebook_sweep(S, name: str, parallel: int | None = None, rows: list[str] | None = None):
    """Notebooks 06/07: the grid's results as a DataFrame (a row per entry and protocol; `rows`: only these
    rows of the grid). Committed results of the same settings are read (`collect`); only the missing jobs are
    trained, in parallel single-thread jobs, and recorded, or every job with REID_RETRAIN=1. Prints what it
    read and trained."""
    import pandas as pd

    grid = settings_grid(S, name, rows)
    out = Path(S.results_dir) / "sweeps" / name
    if not S.retrain:
        adopt_records(grid, out)
    rows, missing = ([], list(range(len(grid.jobs)))) if S.retrain else collect(grid, out)
    print(f"grid {name}: {len(grid.entries)} entries, {len(grid.jobs)} jobs; "
          f"{len(grid.jobs) - len(missing)} read from {shown_path(out)}, {len(missing)} to run")
    if missing and S.missing == "skip" and not S.retrain:
        print(f"PARTIAL (REID_MISSING=skip): {len(missing)} jobs have no result and are left out "
              f"(REID_MISSING=train trains them): "
              + "; ".join(f"{row_label(grid.jobs[i].row)} seed {grid.jobs[i].seed} {budget_label(grid.jobs[i].budget)}"
                          for i in missing))
        return pd.DataFrame(rows)
    if missing:
        _train_missing(S, name, grid, missing, out, parallel)
        rows, still = collect(grid, out)
        if still:
            raise UserError(f"grid {name}: {len(still)} jobs ran but left no record in {out}")
    return pd.DataFrame(rows)
