"""Cached experiments: train once, reuse everywhere.

Several notebooks need the same trained models (the full model appears in Tables 1, 3 and 4 and in
Figs. 3-4). `train_cached` names a run folder after its config, dataset, seed and overrides, trains
into it only when it holds no finished run (resuming an interrupted one), and returns it;
`evaluate_cached` stores each protocol's result as JSON beside the checkpoint.

The notebooks' single switch lives here too: `settings()` reads the environment variables
REID_SYSU_ROOT / REID_REGDB_ROOT (real data; default: the synthetic set), REID_PROFILE (default
`smoke`, a CPU profile) and REID_SEEDS (seeds per ablation row).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from reid.errors import UserError


def repo_root(start: str | Path | None = None) -> Path:
    """The repository folder (the one with pyproject.toml) above `start` (default: the working directory),
    so notebooks (run from notebooks/) and scripts write to the same data/, runs/, results/, figures/."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "reid").is_dir():
            return folder
    return here


@dataclass
class Settings:
    """What every notebook's parameters cell needs: data roots, profile, seeds, output folders."""

    sysu_root: Path
    regdb_root: Path
    synthetic: bool
    profile: str
    seeds: list[int]
    runs_dir: Path
    results_dir: Path
    figures_dir: Path

    @property
    def data_label(self) -> str:
        return "synthetic (procedural, SYSU-MM01 / RegDB layouts)" if self.synthetic else "real SYSU-MM01 / RegDB"


def settings() -> Settings:
    """Read the notebooks' switch from the environment; make the synthetic set when no real data is given."""
    root = repo_root()
    sysu, regdb = os.environ.get("REID_SYSU_ROOT"), os.environ.get("REID_REGDB_ROOT")
    synthetic = not (sysu or regdb)
    if synthetic:
        from reid.data import ensure_synthetic

        data = ensure_synthetic(root / "data" / "synthetic", seed=0)
        sysu_root, regdb_root = data / "SYSU-MM01", data / "RegDB"
    else:
        if not (sysu and regdb):
            raise UserError("set both REID_SYSU_ROOT and REID_REGDB_ROOT to use real data")
        sysu_root, regdb_root = Path(sysu), Path(regdb)
        for name, path in (("REID_SYSU_ROOT", sysu_root), ("REID_REGDB_ROOT", regdb_root)):
            if not path.is_dir():
                raise UserError(f"{name}={path}: no such directory")
    profile = os.environ.get("REID_PROFILE", "smoke")
    try:
        seeds = [int(s) for s in os.environ.get("REID_SEEDS", "0").split(",")]
    except ValueError:
        raise UserError(f"REID_SEEDS={os.environ['REID_SEEDS']!r}: expected a comma list of integers") from None
    return Settings(sysu_root, regdb_root, synthetic, profile, seeds, root / "runs" / "notebooks",
                    root / "results", root / "figures")


def config_for(profile: str, dataset: str, row: str | None = None) -> tuple[str, str | None]:
    """(config, base-profile) for a profile and an optional table row, e.g. ("table3_ta", "smoke").

    The `paper` profile has one config per dataset; a table row on top of a CPU profile swaps the row's
    base for that profile (see `reid.config.load_config`).
    """
    if row is None:
        return (f"{profile}_{dataset}" if profile in ("paper", "paper_literal") else profile), None
    if profile in ("paper", "paper_literal"):
        return row, f"{profile}_{dataset}"
    return row, profile


def run_dir(runs_dir: Path, config: str, dataset: str, seed: int, resolved: dict, trial: int | None = None,
            profile: str | None = None) -> Path:
    """The run folder of one training: readable name + a hash of the *resolved* config, so that editing a
    YAML file, an override or the ablation budget trains a new run instead of reusing a stale one."""
    config, profile = Path(config).stem, Path(profile).stem if profile else None  # names or YAML paths
    name = f"{config}{'@' + profile if profile else ''}-{dataset}{f'-split{trial}' if trial else ''}-seed{seed}"
    digest = hashlib.sha1(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return runs_dir / f"{name}-{digest}"


def train_cached(config: str, dataset: str, root: str | Path, runs_dir: str | Path, seed: int = 0,
                 overrides=(), profile: str | None = None, trial: int | None = None, device=None) -> Path:
    """Train `config` on `root` into its run folder unless a finished run is there; return the folder."""
    from reid.checkpoint import load_checkpoint
    from reid.config import config_to_dict, load_config
    from reid.engine import train

    sets = [*overrides, f"data.dataset={dataset}", f"data.root={root}", f"train.seed={seed}"]
    if trial is not None:
        sets.append(f"data.regdb_trial={trial}")
    cfg = load_config(config, sets, profile=profile)
    out = run_dir(Path(runs_dir), config, dataset, seed, config_to_dict(cfg), trial, profile)
    last = out / "last.pt"
    if last.is_file() and load_checkpoint(last)["epoch"] >= cfg.train.epochs:
        print(f"{out.name}: trained already, reusing it")
        return out
    train(cfg, out, resume=last.is_file(), device=device)
    return out


def evaluate_cached(runs: str | Path | list, protocol: str, root: str | Path, trials: int = 10, device=None,
                    flip: bool = False) -> dict:
    """Evaluate trained runs with `protocol` and cache the result as JSON in the (first) run folder.

    sysu-all / sysu-indoor: one run, `trials` random galleries. regdb-v2t / regdb-t2v: one run per split,
    in split order 1..n (the RegDB protocol trains one model per split); `trials` is ignored.
    """
    from reid.evaluate import evaluate_regdb, evaluate_sysu, load_model
    from reid.provenance import provenance

    runs = [Path(r) for r in runs] if isinstance(runs, (list, tuple)) else [Path(runs)]
    dataset, _, setting = protocol.partition("-")
    if dataset == "sysu" and setting in ("all", "indoor"):
        if len(runs) != 1:
            raise UserError(f"{protocol}: expected one run, got {len(runs)}")
        tag = f"t{trials}"
    elif dataset == "regdb" and setting in ("v2t", "t2v"):
        tag = f"splits{len(runs)}"
    else:
        raise UserError(f"unknown protocol {protocol!r}; expected sysu-all, sysu-indoor, regdb-v2t or regdb-t2v")
    cached = runs[0] / f"eval_{protocol}{'_flip' if flip else ''}_{tag}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    if dataset == "sysu":
        result = evaluate_sysu(load_model(runs[0] / "best.pt"), root, mode=setting, trials=trials, device=device,
                               flip=flip)
    else:
        result = evaluate_regdb(lambda split: load_model(runs[split - 1] / "best.pt"), root, trials=len(runs),
                                direction=setting, device=device, flip=flip)
    result = {**result, "runs": [r.name for r in runs], "provenance": provenance(extra={"runs": [r.name for r in runs]})}
    cached.write_text(json.dumps(result, indent=2, default=str))
    return result


def ablation_budget(s: Settings) -> list[str]:
    """Overrides that keep each ablation row's run short on the CPU `smoke` profile (none otherwise).

    Tables 3 and 4 train nine models; at the smoke profile's full length (1800 steps) they would not fit the
    notebooks' CPU budget. Each row keeps the profile's epochs and learning-rate schedule but runs fewer
    batches per epoch: REID_ABLATION_BATCHES (default 60 on `smoke`, i.e. 540 steps, about 40 s each);
    0 means "the profile as is". The notebooks print the budget next to every table.
    """
    batches = os.environ.get("REID_ABLATION_BATCHES")
    if batches is None:
        batches = "60" if s.profile == "smoke" else "0"
    try:
        batches = int(batches)
    except ValueError:
        raise UserError(f"REID_ABLATION_BATCHES={batches!r}: expected an integer") from None
    if batches < 0:
        raise UserError(f"REID_ABLATION_BATCHES={batches}: expected 0 (the profile as is) or a positive number")
    return [f"data.batches_per_epoch={batches}"] if batches > 0 else []
