"""What a reproduction releases beside its numbers: each recorded run's training log and resolved config,
and the checkpoints the headline records and figures rest on.

    python -m reid release                                   # logs and configs of every recorded run still in runs/
    python -m reid release --checkpoint smoke-sysu-seed0-xxx # ... and that run's weights in results/checkpoints/

`runs/` is not committed (checkpoints with optimiser state, TensorBoard files), so without this a committed
number could not be re-read from its log or re-evaluated (with flip, another feature) without retraining.
Every run a result JSON under `results/` names (its `runs` list) gets `results/runs/<run>/log.csv` and
`config.yaml`, once, whichever records share the run. A released checkpoint is the run's `best.pt`
without the optimiser, scheduler and RNG state (the model, its config and its history: about a third of
the size), `results/checkpoints/<run>.pt`, with its sha256, size, the records it produced and the release's provenance (commit, command) in
`results/checkpoints/manifest.json`; `python -m reid evaluate --checkpoint` reads it as it reads `best.pt`
and gives the recorded numbers exactly on the same data (tests/test_release.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from reid.records.provenance import provenance
from reid.utils.atomic import write_text_atomically
from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.errors import UserError

RELEASED_FILES = ("log.csv", "config.yaml")
# What evaluation and reading a run's history need; optimiser, scheduler, scaler and RNG state stay behind.
RELEASED_KEYS = ("model", "model_config", "num_classes", "config", "epoch", "history", "best", "world_size")
RUNS_DIRS = ("runs", "runs/sweeps")


def _records(results_dir: Path) -> dict[str, list[str]]:
    """{run name: [result JSON paths naming it]} over every result JSON under `results_dir`."""
    named: dict[str, list[str]] = {}
    for path in sorted(results_dir.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        runs = record.get("runs") if isinstance(record, dict) else None
        if isinstance(runs, list) and "provenance" in record:
            for run in runs:
                named.setdefault(str(run), []).append(str(path.relative_to(results_dir)))
    return named


def _run_folder(name: str, runs_dirs) -> Path | None:
    return next((Path(d) / name for d in runs_dirs if (Path(d) / name / "config.yaml").is_file()), None)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def release(results_dir: str | Path = "results", runs_dirs=RUNS_DIRS, checkpoints=()) -> dict:
    """Copy the log and config of every recorded run still in `runs_dirs` to `results/runs/<run>/`, and
    release the checkpoints of the runs named in `checkpoints`. Checks every named checkpoint before
    writing anything. Returns {"logs": [run names], "missing": [runs no longer on disk], "checkpoints":
    [manifest entries]}."""
    results_dir = Path(results_dir)
    named = _records(results_dir)
    chosen = {}
    for run in checkpoints:
        folder = _run_folder(run, runs_dirs)
        if folder is None or not (folder / "best.pt").is_file():
            raise UserError(f"--checkpoint {run}: no run folder with a best.pt under {', '.join(map(str, runs_dirs))}")
        if run not in named:
            raise UserError(f"--checkpoint {run}: no result JSON under {results_dir} names this run; release the "
                            "weights behind a recorded number only")
        chosen[run] = folder
    logs, missing = [], []
    for run in named:
        folder = _run_folder(run, runs_dirs)
        if folder is None:
            missing.append(run)
            continue
        out = results_dir / "runs" / run
        out.mkdir(parents=True, exist_ok=True)
        for name in RELEASED_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, out / name)
        logs.append(run)
    manifest_path = results_dir / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for run, folder in chosen.items():
        state = load_checkpoint(folder / "best.pt", required=("model", "model_config", "num_classes"))
        path = save_checkpoint({k: state[k] for k in RELEASED_KEYS if k in state},
                               results_dir / "checkpoints" / f"{run}.pt")
        manifest[run] = {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size,
                         "from": str(folder / "best.pt"), "records": named[run], "provenance": provenance()}
    if chosen:
        write_text_atomically(manifest_path, json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    return {"logs": logs, "missing": missing, "checkpoints": [manifest[r] for r in chosen]}
