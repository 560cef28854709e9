"""The experiment runner: the one path from (config, data, seed, split) to a trained run and a recorded result.

    cfg = resolve("table3_ta", "sysu", root, seed=0, profile="smoke")   # a fully resolved ExperimentConfig
    run = train_run(cfg, "runs")            # trains, resumes an unfinished run, or reuses a finished one
    result = evaluate_runs([run], "sysu-all", trials=10, results_dir="results", name="my_result")

`make reproduce`, `python -m reid train` and every notebook go through these functions, so a number means
the same thing wherever it appears.

- A run folder is named after the config, dataset, split and seed, plus a hash of the *fully resolved*
  config (every section typed, model defaults included) and of the synthetic generator's manifest: editing a
  YAML file, an override or the generator trains a new run instead of reusing a stale one.
- Every evaluation is cached in its run folder and recorded through `reid.records.provenance.write_result`
  (JSON + a row of `results.csv`): in `<run>/results/` always, and in `results_dir` when asked.

Words: a *profile* is the base settings a config runs on: `smoke` (the CPU budget of the notebooks and
CI), `paper` or `paper_literal` (the paper's settings, one file per dataset). The profile's full model is
the profile's own config; a table row under a profile is the row's switches on top of it. A SYSU-MM01
*trial* is one gallery draw; a RegDB *split* is one of its ten train/test partitions, one model each.

`settings()` is the notebooks' single switch: it reads every `REID_*` environment variable, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reid.config import (
    MAX_WORKERS,
    WORD_VALUES,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_config_path,
)
from reid.data import SYSUMM01, RegDB, dataset_root, ensure_synthetic
from reid.data.identity import is_synthetic, synthetic_manifest
from reid.data.regdb import NUM_SPLITS, check_split
from reid.data.train_data import DEFAULT_SYNTHETIC_ROOT
from reid.eval.evaluate import evaluate_regdb, evaluate_sysu, load_model, load_untrained
from reid.eval.metrics import chance_level
from reid.records.provenance import (
    check_result_location,
    check_writable_folder,
    provenance,
    repo_root,
    write_result,
)
from reid.train.engine import LINEAGE_CHECKPOINT, repair_best_checkpoint, train
from reid.utils.checkpoint import load_checkpoint
from reid.utils.errors import UserError

PAPER_PROFILES = ("paper", "paper_literal", "paper_literal_batch")  # paper_literal_batch: P4K4
SMOKE_REGDB_SPLITS = 1  # RegDB splits trained on a CPU profile (the protocol has 10; CI time)
PROTOCOLS = ("sysu-all", "sysu-indoor", "regdb-v2t", "regdb-t2v")


# ------------------------------------------------------------------------------------------- configs

def profile_config(profile: str, dataset: str) -> str:
    """The config a profile stands for on a dataset: `paper` -> `paper_sysu`, `smoke` -> `smoke`."""
    return f"{profile}_{dataset}" if profile in PAPER_PROFILES else profile


def override_seed(overrides) -> int | None:
    """The seed a `--set train.seed=S` among `overrides` asks for (the last one wins, as for any key); None
    when there is none. A value that is not an integer is left to the config's own check."""
    value = None
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if sep and key.strip() == "train.seed":
            try:
                value = int(text.strip())
            except ValueError:
                value = None
    return value


def resolve(config: str | None, dataset: str, root: str | Path, *, seed: int | None = None,
            split: int | None = None, profile: str | None = None, overrides=()):
    """The fully resolved `ExperimentConfig` of one run.

    `config` is a table row (or any config name / YAML path); None means the profile's own config (the full
    model). With a `profile`, a row's `base:` is swapped for the profile's config. `split` is a RegDB split.
    `seed` is `train.seed`; None: a `train.seed=S` among `overrides`, else 0. A `seed` and an override of
    another seed are refused (`--seed 0 --set train.seed=1`: which one was meant?), never one silently dropped.
    """

    if config is None and profile is None:
        raise UserError("resolve: name a config, a profile, or both")
    asked = override_seed(overrides)
    if seed is None:
        seed = 0 if asked is None else asked
    elif asked is not None and asked != seed:
        raise UserError(f"--set train.seed={asked} and seed {seed} (--seed / --seeds / REID_SEEDS) disagree: "
                        "give the seed once")
    base = profile_config(profile, dataset) if profile else None
    sets = [*overrides, f"data.dataset={dataset}", f"data.root={Path(root).resolve()}", f"train.seed={seed}"]
    if split is not None:
        sets.append(f"data.regdb_split={split}")
    if config is None:
        return load_config(base, sets)
    sets.insert(0, f"name={Path(config).stem}@{Path(profile).stem}" if profile else f"name={Path(config).stem}")
    return load_config(config, sets, base=base)


def config_dataset(config: str) -> str:
    """The dataset a config trains on when none is named (its `data.dataset`)."""
    return load_config(config).data.dataset


def with_split(cfg, split: int):
    """A copy of `cfg` that trains on RegDB split `split` (the caller's config is left as it is)."""
    return replace(cfg, data=replace(cfg.data, regdb_split=split))


# ---------------------------------------------------------------------------------------------- runs

def _hashed(cfg) -> dict:
    """The config as the run and training keys hash it: an option added later is left out while it is off,
    so run folders and committed records from before it keep their keys (train.test_every)."""
    config = config_to_dict(cfg)
    if not config["train"]["test_every"]:
        del config["train"]["test_every"]
    return config


def run_key(cfg) -> str:
    """Hash of everything that decides what a run learns: the resolved config and the data's generator.
    It reads the data root `resolve` wrote into the config and never creates data."""
    if cfg.data.root is None:
        raise UserError(f"{cfg.name}: the config names no data root (experiments.resolve sets data.root)")
    blob = json.dumps({"config": _hashed(cfg), "synthetic": synthetic_manifest(cfg.data.root)},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def run_dir(runs_dir: str | Path, cfg) -> Path:
    """`<runs_dir>/<name>-<dataset>[-split<n>]-seed<seed>-<hash>`: readable, and new for any changed setting."""
    split = f"-split{cfg.data.regdb_split}" if cfg.data.dataset == "regdb" else ""
    return Path(runs_dir) / f"{cfg.name}-{cfg.data.dataset}{split}-seed{cfg.train.seed}-{run_key(cfg)}"


def last_checkpoint(run: Path) -> dict | None:
    """A run's last.pt for a decision about it (finished? resume from which epoch? its config), or None:
    mapped, not read (its weights are not needed for that; the engine reads them when it resumes)."""
    last = run / "last.pt"
    return load_checkpoint(last, required=("epoch", "config"), mmap=True) if last.is_file() else None


def is_finished(run: Path, cfg) -> bool:
    last = last_checkpoint(run)
    return last is not None and last["epoch"] >= cfg.train.epochs


def training_key(cfg) -> str:
    """What a run learns, independent of where the clone and its data live: the resolved config without its
    name and data root, plus the synthetic generator's manifest (None for real data, whose records are
    matched on the protocol card's dataset fingerprint as well). A committed result answers a notebook's
    entry only when this key is equal."""
    d = _hashed(cfg)
    for key in ("name", "description"):
        d.pop(key, None)
    d["data"] = {k: v for k, v in d["data"].items() if k != "root"}
    manifest = synthetic_manifest(dataset_root(cfg.data.dataset, cfg.data.root))
    blob = json.dumps({"config": d, "synthetic": manifest}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def equal_finished_run(cfg, runs_dirs) -> Path | None:
    """A finished run in one of `runs_dirs` that trained exactly what `cfg` trains (`training_key`) under
    another folder name: a sweep's `table3_full@smoke` run is the profile's full model, Table 4's L_trihardw
    row is Table 3's full model, and a run of the same row whose folder hash differs only by where the data
    lay (the data root is in the folder's hash, not in what the run learns). The folder `run_dir` gives `cfg`
    itself is not this function's business."""
    key = None
    for runs in runs_dirs:
        own = run_dir(runs, cfg).name
        for folder in sorted(Path(runs).glob(f"*-{cfg.data.dataset}*-seed{cfg.train.seed}-*")):
            saved = folder / "config.yaml"
            if folder.name == own or not saved.is_file() or not (folder / "last.pt").is_file():
                continue
            try:
                other = load_config(saved)
            except (UserError, OSError, ValueError):
                continue
            key = key or training_key(cfg)
            if training_key(other) == key and is_finished(folder, other):
                return folder
    return None


def train_run(cfg, runs_dir: str | Path, device=None, folder: str | Path | None = None) -> Path:
    """Train `cfg` into its run folder (`folder`, when given, instead) unless a finished run is there (an
    unfinished one is resumed). last.pt is read once for the decision (and once more, whole, by a resume)."""
    out = Path(folder) if folder is not None else run_dir(runs_dir, cfg)
    last = last_checkpoint(out)
    if last is not None and last["epoch"] >= cfg.train.epochs:
        print(f"{out.name}: trained already, reusing it")
        repair_best_checkpoint(out, last=last)  # a kill after the last last.pt, before its best.pt: evaluation needs it
        return out
    resume = last is not None
    if resume:
        print(f"{out.name}: resuming an unfinished run after epoch {last['epoch']} of {cfg.train.epochs}")
    del last  # unmapped before training replaces last.pt (a mapping would keep the old file's blocks)
    train(cfg, out, resume=resume, device=device)
    return out


def _splits(splits: int) -> range:
    check_split(splits, f"--splits {splits}")
    return range(1, splits + 1)


def train_splits(cfg, runs_dir: str | Path, splits: int, device=None) -> list[Path]:
    """One run per RegDB split 1..splits (the protocol trains one model per split)."""
    return [train_run(with_split(cfg, split), runs_dir, device) for split in _splits(splits)]


def run_config(run: Path):
    return config_from_dict(load_checkpoint(run / "last.pt", required=("config",), mmap=True)["config"],
                            str(run / "last.pt"))


# ------------------------------------------------------------------------------------------ evaluate

def _check_protocol(protocol: str) -> tuple[str, str]:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    dataset, _, setting = protocol.partition("-")
    return dataset, setting


def cached_result(runs: list[Path], protocol: str, *, trials: int = 10, flip: bool = False,
                  weights: str = "trained") -> Path:
    """Where `evaluate_runs` caches the result of `runs` under `protocol`: `<first run>/results/`, named by
    the protocol, the trials (SYSU-MM01) or the splits and their runs (RegDB), flip and weights."""
    runs = [Path(r) for r in runs]
    runs_digest = hashlib.sha1("|".join(r.name for r in runs).encode()).hexdigest()[:6]
    tag = f"t{trials}" if protocol.startswith("sysu") else f"splits{len(runs)}-{runs_digest}"
    return runs[0] / "results" / f"{protocol}{'-flip' if flip else ''}-{tag}-{weights}.json"


def evaluate_runs(runs: list[Path] | Path, protocol: str, root: str | Path | None = None, *, trials: int = 10,
                  flip: bool = False, weights: str = "trained", device=None, results_dir: str | Path | None = None,
                  name: str | None = None) -> dict:
    """Evaluate trained runs with a protocol; cache and record the result with its provenance.

    sysu-all / sysu-indoor: one run, `trials` gallery draws. regdb-v2t / regdb-t2v: one run per split, in
    split order 1..n. `weights="untrained"` evaluates a freshly initialised network of the same architecture
    (seeded with the run's seed), the reference every trained number is read against. `root` defaults to
    the data the runs were trained on. The result is cached in `<first run>/results/` (a cached result
    without a protocol card, written before it existed, is evaluated again); with `results_dir` it is also
    written there as `<name>.json` + a `results.csv` row.

    Runs trained with `train.test_every` hold `best_on_test.pt`, the lineage's selection: it is evaluated too
    (with flip, under the same protocol), summarised in the result's `"lineage"` entry and recorded beside it
    as `<name>-lineage`, whose card names the selection (`compare` flags it against the last epoch's).
    """

    runs = [Path(r) for r in runs] if isinstance(runs, (list, tuple)) else [Path(runs)]
    dataset, setting = _check_protocol(protocol)
    if weights not in ("trained", "untrained"):
        raise UserError(f"weights={weights!r}: expected 'trained' or 'untrained'")
    if dataset == "sysu" and len(runs) != 1:
        raise UserError(f"{protocol}: expected one run, got {len(runs)}")
    cached = cached_result(runs, protocol, trials=trials, flip=flip, weights=weights)
    cache_name = cached.stem
    record_name = name or f"{runs[0].name}-{cache_name}"
    # train.test_every: the lineage's selection (best_on_test.pt) is evaluated too, with flip, and reported
    # beside the last epoch's result (its "lineage" entry and its own record), never instead of it.
    lineage = weights == "trained" and all((r / LINEAGE_CHECKPOINT).is_file() for r in runs)
    if results_dir is not None:  # before the work: a result is never computed only to be lost
        check_result_location(results_dir, record_name)
        if lineage:
            check_result_location(results_dir, f"{record_name}-lineage")
    args = (runs, dataset, setting, root, trials, weights, device)
    result = _evaluate_cached(*args, flip=flip, cache_name=cache_name, checkpoint="best.pt")
    if lineage:
        lineage_name = cached_result(runs, protocol, trials=trials, flip=True, weights="lineage").stem
        selected = _evaluate_cached(*args, flip=True, cache_name=lineage_name,
                                    checkpoint=LINEAGE_CHECKPOINT)
        result = {**result, "lineage": {
            "label": selected["label"], **{k: selected[k] for k in ("rank1", "mAP", "mINP", "std") if k in selected},
            **{k: selected["protocol"].get(k) for k in ("model_selection", "flip", "epoch")},
            "record": f"{record_name}-lineage"}}
        if results_dir is not None:
            write_result(selected, results_dir, f"{record_name}-lineage")
    if results_dir is not None:
        write_result(result, results_dir, record_name)
    return result


def _evaluate_cached(runs: list[Path], dataset: str, setting: str, root, trials: int, weights: str, device, *,
                     flip: bool, cache_name: str, checkpoint: str) -> dict:
    """One evaluation of `checkpoint` in each run, cached in `<first run>/results/<cache_name>.json`."""
    cached = runs[0] / "results" / f"{cache_name}.json"
    result = json.loads(cached.read_text()) if cached.is_file() else None
    if result is None or "steps" not in result.get("protocol", {}):  # no cache, or one from an older card
        configs = [run_config(r) for r in runs]  # read from last.pt: only when there is work to do
        root = Path(root) if root is not None else Path(configs[0].data.root)

        def model(i: int):
            path = runs[i] / checkpoint
            return load_model(path) if weights == "trained" else load_untrained(path, configs[i].train.seed)

        if dataset == "sysu":
            result = evaluate_sysu(model(0), root, mode=setting, trials=trials, device=device, flip=flip)
        else:
            result = evaluate_regdb(lambda split: model(split - 1), root, splits=len(runs), direction=setting,
                                    device=device, flip=flip)
        if checkpoint == LINEAGE_CHECKPOINT:
            result["label"] = f"{result['protocol']['model_selection']}: {result['label']}"
        names = [r.name for r in runs]
        result = {**result, "weights": weights, "runs": names,
                  "checkpoints": [str(r / checkpoint) for r in runs] if weights == "trained" else None,
                  "provenance": provenance(extra={"runs": names, "config": configs[0].name})}
        write_result(result, runs[0] / "results", cache_name)
    return result


def chance(protocol: str, root: str | Path) -> dict:
    """Rank-1 / mAP of random rankings under a protocol (SYSU-MM01 trial 0, RegDB split 1)."""
    dataset, setting = _check_protocol(protocol)
    if dataset == "sysu":
        data = SYSUMM01(root)
        query, gallery = data.query(setting), data.gallery(setting, trial=0, shots=1)
        cams = (np.array([c for _, _, c in query]), np.array([c for _, _, c in gallery]))
    else:
        data = RegDB(root, split=1)
        query, gallery = data.query(setting), data.gallery(setting)
        cams = (None, None)
    return chance_level(np.array([p for _, p, _ in query]), np.array([p for _, p, _ in gallery]), *cams)


# ---------------------------------------------------------------------------------- the CLI's `train`

def train_command(config: str | None, dataset: str, root: str | Path | None, *, profile: str | None = None,
                  seed: int | None = None,
                  overrides=(), runs_dir: str | Path = "runs", output_dir: str | Path | None = None,
                  resume: bool = False, splits: int | None = None, results_dir: str | Path = "results",
                  device=None) -> list[Path]:
    """`python -m reid train`: the config `resolve` gives the notebooks for the same row, profile and seed,
    trained by `train_run` / `train_splits` into the runner's folder under `runs_dir` (so a row trained here
    and in a notebook is one run, recorded under one name). `output_dir` instead names the folder of one
    run, with the training loop's own contract (`resume=True` to continue it): for torchrun and schedulers.
    With `splits` (RegDB) it trains splits 1..N and records the test protocol in both directions."""
    resolve(config, dataset, ".", seed=seed, profile=profile, overrides=overrides)  # a typo: one line, before any data
    root = dataset_root(dataset, root)  # the synthetic set when no root is given (made if missing)
    cfg = resolve(config, dataset, root, seed=seed, profile=profile, overrides=overrides)
    if output_dir is not None:
        if splits is not None:
            raise UserError("--output-dir names one run's folder; with --splits the runs go under --runs-dir")
        summary = train(cfg, output_dir, resume=resume, device=device)
        if summary["rank"] == 0:
            print(f"best validation mAP {summary['best_val_mAP']:.2f}% at epoch {summary['best_epoch']}; "
                  f"checkpoints in {summary['output_dir']}")
        return [Path(output_dir)]
    if resume:
        raise UserError("--resume is for --output-dir: a run under --runs-dir resumes by itself when started again")
    if splits is None:
        return [train_run(cfg, runs_dir, device)]
    if cfg.data.dataset != "regdb":
        raise UserError("--splits is for RegDB (one model per identity split); add --dataset regdb")
    names = {direction: f"{cfg.name}_regdb_{direction}" for direction in ("v2t", "t2v")}
    for name in names.values():  # before hours of training, not after
        check_result_location(results_dir, name)
    runs = train_splits(cfg, runs_dir, splits, device)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: the other ranks trained, rank 0 evaluates
        return runs
    for direction, name in names.items():
        result = evaluate_runs(runs, f"regdb-{direction}", device=device, results_dir=results_dir, name=name)
        print(f"{result['label']}: Rank-1 {result['rank1']:.2f} +- {result['std']['rank1']:.2f}%, "
              f"mAP {result['mAP']:.2f} +- {result['std']['mAP']:.2f}%  -> {Path(results_dir) / name}.json")
    return runs


# ------------------------------------------------------------------------------ the CLI's `calibrate`

CALIBRATION_PUBLISHED = {"sysu-all": ("SYSU-MM01", "all-search"), "regdb-v2t": ("RegDB", "visible to thermal")}


def calibrate(dataset: str, root: str | Path | None, *, profile: str | None = None, seed: int | None = None,
              overrides=(), runs_dir: str | Path = "runs", results_dir: str | Path = "results",
              splits: int | None = None, device=None) -> list[dict]:
    """`python -m reid calibrate` (`make calibrate DATA=...`): AGW (`agw_<dataset>.yaml`, the field's reference
    baseline) trained and evaluated on this pipeline's readers, protocol, loop and records, printed beside AGW's
    published numbers (results/paper/agw.csv). Within a few points of them on real data, the data, readers and
    protocol are right before any CrossViT number is trusted (docs/agw.md). `profile=None` is AGW's own
    (paper-size) setting, "smoke" the CPU variant. RegDB: splits 1..`splits` (the protocol's 10 on the paper
    size), both directions. Recorded in `results_dir` as calibrate_<config>_<protocol>_seed<s>[-lineage]."""
    from reid.records.tables import paper_rows

    config = f"agw_{dataset}"
    resolve(config, dataset, ".", seed=seed, profile=profile, overrides=overrides)  # a typo: before any data
    root = dataset_root(dataset, root)
    cfg = resolve(config, dataset, root, seed=seed, profile=profile, overrides=overrides)
    protocols = ["sysu-all"] if dataset == "sysu" else ["regdb-v2t", "regdb-t2v"]
    names = {p: f"calibrate_{cfg.name.replace('@', '-')}_{p}_seed{cfg.train.seed}" for p in protocols}
    for name in names.values():  # before hours of training, not after
        check_result_location(results_dir, name)
    if dataset == "sysu":
        runs = [train_run(cfg, runs_dir, device)]
    else:
        runs = train_splits(cfg, runs_dir, splits or default_regdb_splits(profile or "paper"), device)
    published = paper_rows("agw")
    results = []
    for protocol in protocols:
        result = evaluate_runs(runs, protocol, trials=10, device=device, results_dir=results_dir,
                               name=names[protocol])
        rows = [("AGW here, last epoch", result)]
        if "lineage" in result:
            rows.append(("AGW here, lineage selection", result["lineage"]))
        print(f"{result['label']}  -> {Path(results_dir) / names[protocol]}.json")
        for title, r in rows:
            print(f"  {title:<32} Rank-1 {r['rank1']:6.2f}  mAP {r['mAP']:6.2f}  mINP {r['mINP']:6.2f}")
        if protocol in CALIBRATION_PUBLISHED:
            data_name, setting = CALIBRATION_PUBLISHED[protocol]
            row = published[(published.dataset == data_name) & (published.setting == setting)]
            value = dict(zip(row.metric, row.value))
            note = "" if result["data"].get("kind") == "real" else "  (real data; not comparable with synthetic)"
            print(f"  {'AGW published (results/paper)':<32} Rank-1 {value['rank1']:6.2f}  mAP {value['mAP']:6.2f}  "
                  f"mINP {value['mINP']:6.2f}{note}")
        results.append(result)
    return results


# ------------------------------------------------------------------------------- the notebooks' switch

@dataclass
class Settings:
    """What every notebook (and `make reproduce`) needs: data roots, profile, seeds, budgets, folders."""
    sysu_root: Path | None
    regdb_root: Path | None
    synthetic: bool
    profile: str = "smoke"
    seeds: tuple[int, ...] = (0,)
    regdb_splits: int = SMOKE_REGDB_SPLITS  # RegDB splits trained and tested (the protocol: 10)
    steps_cap: int = 0  # at most this many steps per epoch in every run (make test's budget); 0 = no cap
    pretrained: str | None = None  # model.pretrained for every run (a file, "timm", "none"); None: the config's
    workers: int | str | None = None  # data.workers for every run (a number or "auto"); None: the config's
    seeds_given: bool = False  # REID_SEEDS was set: a sweep grid then uses these seeds for every row
    retrain: bool = False  # REID_RETRAIN=1: sweep notebooks run every job instead of reading committed results
    # REID_MISSING: what sweep notebooks (06/07) do with jobs that have no committed result: "skip" (default:
    # a partial table, printed as such; opening a notebook never starts hours of training) or "train"
    missing: str = "skip"
    runs_dir: Path = Path("runs")
    results_dir: Path = Path("results")
    figures_dir: Path = Path("figures")

    @property
    def data_label(self) -> str:
        return "synthetic (procedural, SYSU-MM01 / RegDB layouts)" if self.synthetic else "real SYSU-MM01 / RegDB"

    def datasets(self) -> list[str]:
        """The datasets these settings have data for, in the paper's order."""
        return [d for d, root in (("sysu", self.sysu_root), ("regdb", self.regdb_root)) if root is not None]

    def root(self, dataset: str) -> Path:
        root = self.sysu_root if dataset == "sysu" else self.regdb_root
        if root is None:
            raise UserError(f"no {dataset} data in these settings")
        return root

    def run_overrides(self) -> list[str]:
        """What these settings change in every run: ImageNet weights, loader workers (not the budget)."""
        return [*([f"model.pretrained={self.pretrained}"] if self.pretrained else []),
                *([f"data.workers={self.workers}"] if self.workers is not None else [])]

    def train(self, dataset: str, row: str | None = None, seed: int | None = None, overrides=(),
              device=None) -> list[Path]:
        """The runs of the profile's full model (`row=None`) or of a table row on one dataset, at the
        profile's budget: one run on SYSU-MM01, one per split on RegDB."""
        if seed is None:  # a --set train.seed=S (reproduce --set) is honoured; against REID_SEEDS, refused
            asked = override_seed(overrides)
            seed = asked if asked is not None and not self.seeds_given else self.seeds[0]
        sets = [*([f"train.max_steps_per_epoch={self.steps_cap}"] if self.steps_cap else []),
                *self.run_overrides(), *overrides]
        cfg = resolve(row, dataset, self.root(dataset), seed=seed, profile=self.profile, overrides=sets)
        if dataset == "sysu":
            return [self._train_or_reuse(cfg, device)]
        return [self._train_or_reuse(with_split(cfg, split), device) for split in _splits(self.regdb_splits)]

    def _train_or_reuse(self, cfg, device=None) -> Path:
        """`train_run`, reusing an equal finished training of a sweep (`runs/sweeps/`) or of another row
        name: one training, whoever asked for it first (notebook 08's three seeds are Table 3's runs)."""
        if not is_finished(run_dir(self.runs_dir, cfg), cfg):
            twin = equal_finished_run(cfg, [self.runs_dir, Path(self.runs_dir) / "sweeps"])
            if twin is not None:
                print(f"{run_dir(self.runs_dir, cfg).name}: an equal training finished in {twin}, reusing it")
                return train_run(cfg, self.runs_dir, device, folder=twin)
        return train_run(cfg, self.runs_dir, device)

    def evaluate(self, runs: list[Path], protocol: str, weights: str = "trained", device=None,
                 record_as: str | None = None) -> dict:
        """`evaluate_runs` on these settings' data (10 SYSU-MM01 trials); `record_as` also writes the result
        to `results_dir` under that name."""
        dataset, _ = _check_protocol(protocol)
        return evaluate_runs(runs, protocol, self.root(dataset), trials=10, weights=weights, device=device,
                             results_dir=self.results_dir if record_as else None, name=record_as)


def _flagged(flag: str, text: str) -> str:
    return f"{flag}{'' if flag.endswith('=') else ' '}{text!r}"


def parse_seeds(text: str, flag: str = "--seeds") -> tuple[int, ...]:
    """'0-4' | '0,1,2' | '0-2,7' -> (0, 1, 2, ...); anything else (a repeat too) is a UserError naming `flag`
    and `text`. The one rule for `sweep --seeds`, a row's own seeds, `probe --random-seeds` and REID_SEEDS."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 0 or last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise UserError(f"{_flagged(flag, text)}: expected non-negative integers such as 0-4 or 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{_flagged(flag, text)}: a seed appears twice")
    return tuple(seeds)


def parse_budgets(text: str, flag: str = "--budgets") -> tuple[int, ...]:
    """'540,3600' -> (540, 3600): total training steps, each >= 1 (0 used to mean the profile's own budget,
    silently: leave the flag out for that), none twice."""
    try:
        budgets = tuple(int(b) for b in str(text).split(","))
    except ValueError:
        raise UserError(f"{_flagged(flag, text)}: expected a comma list of step counts, e.g. 540,3600") from None
    if min(budgets) < 1:
        raise UserError(f"{_flagged(flag, text)}: a budget is a number of training steps >= 1 (leave the flag "
                        "out for the profile's own)")
    if len(set(budgets)) != len(budgets):
        raise UserError(f"{_flagged(flag, text)}: a budget appears twice")
    return budgets


def _env_int(environ, name: str, default: int, low: int, high: int, words: tuple[str, ...] = ()) -> int | str:
    """An integer from `low` to `high`, or one of `words` (a config field's `WORD_VALUES`, e.g. workers=auto)."""
    text = environ.get(name)
    if text is None:
        return default
    expected = f"expected an integer from {low} to {high}" + (f" or {' / '.join(words)}" if words else "")
    if text.strip() in words:
        return text.strip()
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{name}={text!r}: {expected}") from None
    if not low <= value <= high:
        raise UserError(f"{name}={value}: {expected}")
    return value


def check_profile(profile: str, flag: str = "--profile ") -> None:
    """A profile is a config on every dataset (`profile_config`): refuse one that is not, naming the flag or
    variable, before data are generated or anything trains."""

    try:
        for dataset in ("sysu", "regdb"):
            resolve_config_path(profile_config(profile, dataset))
    except UserError as err:
        raise UserError(f"{flag}{profile}: expected smoke, paper, paper_literal, paper_literal_batch or a config name or path "
                        f"({err})") from None


def _env_choice(environ, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = environ.get(name, default)
    if value not in allowed:
        raise UserError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def default_regdb_splits(profile: str) -> int:
    return NUM_SPLITS if profile in PAPER_PROFILES else SMOKE_REGDB_SPLITS


def settings(environ=None) -> Settings:
    """The notebooks' switch, read from the environment in this one place. Its variables (REID_SYSU_ROOT,
    REID_PROFILE, REID_SEEDS, ...) are tabled once, in docs/notebooks.md ("The switch"; a test holds that table
    to the variables this function reads)."""
    environ = os.environ if environ is None else environ
    root = repo_root()
    sysu, regdb = environ.get("REID_SYSU_ROOT"), environ.get("REID_REGDB_ROOT")
    synthetic = not (sysu or regdb)
    if not synthetic:
        if not (sysu and regdb):
            raise UserError("set both REID_SYSU_ROOT and REID_REGDB_ROOT to use real data")
        sysu_root, regdb_root = Path(sysu), Path(regdb)
        for name, path in (("REID_SYSU_ROOT", sysu_root), ("REID_REGDB_ROOT", regdb_root)):
            if not path.is_dir():
                raise UserError(f"{name}={path}: no such directory")
        # "Real" is what the data say, not which variables are set: a link to (or a copy of) the synthetic
        # set keeps its manifest, and the notebooks must not print its numbers as real beside the paper's.
        synthetic = is_synthetic(sysu_root) or is_synthetic(regdb_root)
        if synthetic:  # through the links: the notebooks find the generation root as the roots' parent
            sysu_root, regdb_root = sysu_root.resolve(), regdb_root.resolve()
    profile = environ.get("REID_PROFILE", "smoke")
    check_profile(profile, "REID_PROFILE=")
    outputs = root / environ.get("REID_OUTPUT_DIR", ".")  # relative to the repository; absolute paths stay
    for folder in (outputs / "results", outputs / "figures"):  # a file, or no write access: say so here
        check_writable_folder(folder, "REID_OUTPUT_DIR")
    seeds = parse_seeds(environ.get("REID_SEEDS", "0"), "REID_SEEDS=")  # the rule of --seeds: here, not at first use
    switches = {
        "regdb_splits": _env_int(environ, "REID_REGDB_SPLITS", default_regdb_splits(profile), 1, NUM_SPLITS),
        "steps_cap": _env_int(environ, "REID_STEPS_CAP", 0, 0, 10**6),
        "pretrained": environ.get("REID_PRETRAINED") or None,
        "workers": _env_int(environ, "REID_WORKERS", 0, 0, MAX_WORKERS, WORD_VALUES[("data", "workers")])
        if "REID_WORKERS" in environ or sys.platform in ("win32", "darwin") else None,
        "seeds_given": "REID_SEEDS" in environ, "retrain": _env_int(environ, "REID_RETRAIN", 0, 0, 1) == 1,
        "missing": _env_choice(environ, "REID_MISSING", "skip", ("skip", "train")),
    }
    if not (sysu or regdb):  # the default synthetic set: generated (minutes) only once every switch is valid
        data = ensure_synthetic(DEFAULT_SYNTHETIC_ROOT, seed=0)
        sysu_root, regdb_root = data / "SYSU-MM01", data / "RegDB"
    return Settings(
        sysu_root, regdb_root, synthetic, profile, seeds, **switches,
        runs_dir=root / "runs", results_dir=outputs / "results", figures_dir=outputs / "figures",
    )
