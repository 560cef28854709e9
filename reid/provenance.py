"""Provenance: every result says where it came from.

    provenance()                       git commit (+ dirty flag), command, UTC date, hardware, versions
    describe_data(root, "sysu")        {"kind": "synthetic"|"real", "dataset", "root", "label"}
    dataset_fingerprint(root)          hash of the relative paths and sizes of every file under root
    write_result(result, "results", name)   results/<name>.json + one row of results/results.csv
                                            (+ results.md / results.tex rewritten from the CSV)

A result computed on the synthetic dataset is labelled "synthetic SYSU-MM01-layout" (or
"synthetic RegDB-layout"), never "SYSU-MM01" or "RegDB": its numbers say nothing about the paper's.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from reid.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "torchvision", "timm", "numpy")
DATASET_NAMES = {"sysu": "SYSU-MM01", "regdb": "RegDB"}
# The synthetic generator writes this manifest at its root, the parent of SYSU-MM01/ and RegDB/
# (reid.data.synthetic.MANIFEST; repeated here so that provenance does not import the data layer).
SYNTHETIC_MANIFEST = "synthetic.json"

# results.csv: one row per evaluation; the column set never changes silently (see write_result).
# The protocol card's fields (reid.card) each have a column of the same name.
CARD_COLUMNS = ["mode", "shots", "direction", "gallery_sampler", "model_selection", "train_ids", "pretrained",
                "preset", "config", "seed", "epoch", "steps", "fingerprint"]
CSV_COLUMNS = [
    "name", "date", "commit", "dirty", "data", "data_kind", "dataset", "setting", "trials", "splits",
    "model_per_split", "weights", "test_feature", "flip", "rerank", *CARD_COLUMNS,
    "rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "rank1_std", "mAP_std", "mINP_std",
    "checkpoint", "command",
]
# Earlier column sets: before the protocol card (issue 14), and before its "steps" field (issue 19). Such a
# table gets today's columns, its rows left empty in the new ones.
PREVIOUS_CSV_COLUMNS = [c for c in CSV_COLUMNS if c not in CARD_COLUMNS]
PREVIOUS_CSV_COLUMN_SETS = (PREVIOUS_CSV_COLUMNS, [c for c in CSV_COLUMNS if c != "steps"])


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# Folders that hold what runs *write* (results, figures): a change there does not make the code dirty.
OUTPUT_PATHS = ("results", "figures")


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """The commit of the code that ran, and whether the code (tracked files outside results/ and figures/)
    differed from it. Computed once per process, so the results a run writes cannot change its answer."""
    commit = _git("rev-parse", "HEAD")
    excludes = [f":(exclude){p}" for p in OUTPUT_PATHS]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *excludes)
    return {"commit": commit or "unknown", "dirty": None if status is None else bool(status)}


def current_command() -> str:
    """The exact command line, as the user would retype it."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "reid":
        argv = ["python", "-m", "reid", *argv[1:]]
    return shlex.join(argv)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """CPU model, core count and GPU name; deliberately no hostname."""
    import torch

    info = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}",
        "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(command: str | None = None, extra: dict | None = None) -> dict:
    """Everything needed to tell where a number came from."""
    record = {
        **git_state(),
        "command": command if command is not None else current_command(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "versions": versions(),
    }
    record.update(extra or {})
    return record


def synthetic_manifest(root: str | Path) -> dict | None:
    """The generator's manifest of a synthetic dataset folder: the copy inside the folder itself (it travels
    with a copied SYSU-MM01/ or RegDB/), else the one at the generation root, its parent. Symlinks are
    resolved first, so a link to the synthetic set is synthetic too. None for real data."""
    root = Path(root).resolve()
    for path in (root / SYNTHETIC_MANIFEST, root.parent / SYNTHETIC_MANIFEST):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                raise UserError(f"{path}: unreadable synthetic-data manifest (expected JSON)") from None
    return None


def is_synthetic(root: str | Path) -> bool:
    """True when `root` (or its parent, for <synthetic>/SYSU-MM01) holds the generator's manifest."""
    return synthetic_manifest(root) is not None


def describe_data(root: str | Path, dataset: str, synthetic: bool | None = None) -> dict:
    """The `"data"` entry of a result; `synthetic=None` decides from the manifest file."""
    if dataset not in DATASET_NAMES:
        raise UserError(f"unknown dataset {dataset!r}: expected one of {sorted(DATASET_NAMES)}")
    name = DATASET_NAMES[dataset]
    synthetic = is_synthetic(root) if synthetic is None else synthetic
    return {
        "kind": "synthetic" if synthetic else "real",
        "dataset": name,
        "root": str(root),
        "label": f"synthetic {name}-layout" if synthetic else name,
    }


def fingerprint_of(files) -> str:
    """16 hex digits of the SHA-256 of the sorted `relative/path<TAB>size` lines of (path, size) pairs,
    hidden files and folders left out (the readers ignore them): the one fingerprint of a dataset copy,
    shared by the protocol card and `python -m reid check-data`."""
    def hidden(rel: str) -> bool:
        return any(part.startswith(".") for part in rel.split("/"))

    lines = sorted(f"{rel}\t{size}" for rel, size in files if not hidden(rel))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@functools.cache
def _fingerprint(root: str) -> str:
    entries = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(folder, name)
            try:
                size = os.stat(path).st_size
            except OSError:  # a broken link: listed, without a size
                size = -1
            entries.append((Path(os.path.relpath(path, root)).as_posix(), size))
    return fingerprint_of(entries)


def dataset_fingerprint(root: str | Path, refresh: bool = False) -> str:
    """16 hex digits of the SHA-256 of the sorted `relative/path<TAB>size` lines of every file under `root`.

    Two copies of a dataset with the same files of the same sizes get the same fingerprint wherever they
    live (paths are relative, with '/'); a file added, removed, renamed or resized changes it. Contents are
    not read (35 k files: a stat each, no hashing of images). Hidden files and folders (`.DS_Store`,
    `._x.jpg`) are left out, as the readers ignore them. Cached per resolved root for the process;
    `refresh=True` recomputes it (a file changed since)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise UserError(f"{root}: dataset root not found (cannot fingerprint it)")
    if refresh:
        _fingerprint.cache_clear()
    return _fingerprint(str(root))


def _two_decimals(value):
    return round(value, 2) if isinstance(value, float) else value


def _csv_row(name: str, result: dict) -> dict:
    prov, data, protocol = result.get("provenance", {}), result.get("data", {}), result.get("protocol", {})
    std = result.get("std", {})
    row = {
        "name": name,
        "date": prov.get("date"),
        "commit": prov.get("commit"),
        "dirty": prov.get("dirty"),
        "data": data.get("label"),
        "data_kind": data.get("kind"),
        "dataset": data.get("dataset"),
        "setting": protocol.get("setting"),
        "trials": protocol.get("trials"),
        "splits": protocol.get("splits"),
        "model_per_split": protocol.get("model_per_split"),
        "weights": result.get("weights", "trained"),
        "test_feature": protocol.get("test_feature"),
        "flip": protocol.get("flip"),
        "rerank": protocol.get("rerank"),
        **{column: protocol.get(column) for column in CARD_COLUMNS},
        "checkpoint": result.get("checkpoint"),
        "command": prov.get("command"),
    }
    for metric in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP"):
        row[metric] = _two_decimals(result.get(metric))
    for metric in ("rank1", "mAP", "mINP"):
        row[f"{metric}_std"] = _two_decimals(std.get(metric))
    return row


def check_result_location(results_dir: str | Path, name: str, json_path: str | Path | None = None) -> None:
    """Everything `write_result` (and an extra `--json` copy) will need, checked before any work: `name` is
    a plain file name, `results_dir` is (or can be created as) a writable folder, its results.csv has our
    columns and can be appended to, and neither output path is a folder. Writes nothing."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"--name {name!r}: expected a plain file name (no '/', not starting with '.')")
    results_dir = Path(results_dir)
    check_writable_folder(results_dir, "--results-dir")
    json_file, csv_path = results_dir / f"{name}.json", results_dir / "results.csv"
    for path in (json_file, csv_path, results_dir / "results.md", results_dir / "results.tex"):
        if path.is_dir():
            raise UserError(f"{path} is a folder, expected a result file there")
    if csv_path.is_file():
        _check_csv_header(csv_path)
        if not os.access(csv_path, os.W_OK):
            raise UserError(f"{csv_path}: cannot append a row (permission denied)")
    if json_path is not None:
        json_path = Path(json_path)
        if json_path.is_dir():
            raise UserError(f"--json {json_path}: is a folder, expected a file path")
        check_writable_folder(json_path.parent, f"--json {json_path}:")


def check_writable_folder(folder: Path, flag: str) -> None:
    """`folder` is a writable folder, or the nearest one that exists above it is (so it can be created)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {folder}: {existing} exists and is not a folder")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{flag} {folder}: cannot write in {existing} (permission denied)")


def check_output_file(path: Path, flag: str, suffixes: tuple[str, ...]) -> None:
    """An output file a command will write, checked before any work: its suffix is one of `suffixes`, it is
    not a folder, and its folder is (or can be created as) a writable one. Writes nothing."""
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: expected a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a file path")
    check_writable_folder(path.parent, flag)


def _check_csv_header(csv_path: Path) -> str:
    """"new" when results.csv is missing or empty, "current" when it has our columns, "previous" when it has
    the columns from before the protocol card (write_result adds them); any other header is an error."""
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return "new"
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{csv_path}: cannot read its header ({err})") from None
    if header == CSV_COLUMNS:
        return "current"
    if header in PREVIOUS_CSV_COLUMN_SETS:
        return "previous"
    raise UserError(f"{csv_path} has columns {header}, expected {CSV_COLUMNS}: move it aside to start a new table")


def _add_card_columns(csv_path: Path) -> None:
    """Rewrite a results.csv from before the protocol card with today's columns (its rows: empty there),
    atomically, and say so: the column set never changes silently."""
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            added = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, csv_path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{csv_path}: cannot add the protocol-card columns ({err.strerror or err})") from None
    print(f"{csv_path}: added the protocol-card columns {', '.join(added)} (empty in its {len(rows)} "
          "earlier rows)")


def write_result(result: dict, results_dir: str | Path, name: str) -> Path:
    """Write `<results_dir>/<name>.json` and append a row to `<results_dir>/results.csv`: both or neither;
    then rewrite the mean ± std tables `results.md` and `results.tex` beside them (`reid.tables`).

    The result must carry `"data"` (from `describe_data`) so that no number loses its label.
    An existing results.csv with another column set is an error rather than a silently
    misaligned table (one from before the protocol card gets the card's columns, and a message).
    Callers check the location with `check_result_location` before their work.
    """
    from reid.tables import write_tables

    if "data" not in result or "kind" not in result["data"]:
        raise ValueError("a result must say which data it was computed on: add describe_data(...) as 'data'")
    check_result_location(results_dir, name)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--results-dir {results_dir}: cannot create it ({err.strerror or err})") from None
    csv_path = results_dir / "results.csv"
    state = _check_csv_header(csv_path)
    if state == "previous":
        _add_card_columns(csv_path)
    json_path = results_dir / f"{name}.json"
    tmp = json_path.with_name(f".{json_path.name}.tmp")
    try:
        # The table is opened first: if it cannot take the row, no JSON appears either.
        with open(csv_path, "a", newline="", encoding="utf-8") as f:
            tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            if state == "new":
                writer.writeheader()
            writer.writerow(_csv_row(name, result))
            f.flush()
            os.replace(tmp, json_path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot record the result in {results_dir}: {err.strerror or err}") from None
    write_tables(results_dir)
    return json_path
