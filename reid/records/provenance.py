"""Provenance: every result says where it came from.

    provenance()                       git commit (+ dirty flag), command, UTC date, hardware, versions
    write_result(result, "results", name)   results/<name>.json + one row of results/results.csv
                                            (+ results.md / results.tex rewritten from the CSV), all under
                                            the folder's lock (results_lock), so parallel jobs may record

What the data are (synthetic or real, its label, its fingerprint) is reid.data.identity's; a result carries
it as `"data"` and write_result refuses one without it.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from reid.utils.atomic import file_lock
from reid.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]  # reid/records/ -> the repository
PACKAGES = ("torch", "torchvision", "timm", "numpy")

# results.csv: one row per evaluation; the column set never changes silently (see write_result).
# The protocol card's fields (reid.records.card) each have a column of the same name.
CARD_COLUMNS = ["mode", "shots", "direction", "gallery_sampler", "model_selection", "train_ids", "pretrained",
                "preset", "config", "seed", "epoch", "steps", "fingerprint"]
CSV_COLUMNS = [
    "name", "date", "commit", "dirty", "data", "data_kind", "dataset", "setting", "trials", "splits",
    "model_per_split", "weights", "test_feature", "flip", "rerank", *CARD_COLUMNS,
    "rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "rank1_std", "mAP_std", "mINP_std",
    "checkpoint", "command",
]
# Earlier column sets: before the protocol card, and before its "steps" field. Such a table gets today's
# columns, its rows left empty in the new ones.
PREVIOUS_CSV_COLUMNS = [c for c in CSV_COLUMNS if c not in CARD_COLUMNS]
PREVIOUS_CSV_COLUMN_SETS = (PREVIOUS_CSV_COLUMNS, [c for c in CSV_COLUMNS if c != "steps"])


def repo_root(start: str | Path | None = None) -> Path:
    """The repository folder (the one with pyproject.toml) above `start` (default: the working directory),
    so notebooks (run from notebooks/) and scripts write to the same data/, runs/, results/, figures/."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "reid").is_dir():
            return folder
    return here


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


def check_name(name: str, flag: str = "--name") -> None:
    """A result's (or a sweep's) name is a plain file name: it stays inside its results folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"{flag} {name!r}: expected a plain file name (no '/', not starting with '.')")


def check_result_location(results_dir: str | Path, name: str, json_path: str | Path | None = None) -> None:
    """Everything `write_result` (and an extra `--json` copy) will need, checked before any work: `name` is
    a plain file name, `results_dir` is (or can be created as) a writable folder, its results.csv has our
    columns, every row of it parses (so the tables can be rewritten after the new row) and it can be
    appended to, and neither output path is a folder. Writes nothing but the folder's lock file."""
    check_name(name)
    results_dir = Path(results_dir)
    check_writable_folder(results_dir, "--results-dir")
    json_file, csv_path = results_dir / f"{name}.json", results_dir / "results.csv"
    for path in (json_file, csv_path, results_dir / "results.md", results_dir / "results.tex"):
        if path.is_dir():
            raise UserError(f"{path} is a folder, expected a result file there")
    if csv_path.is_file():
        with results_lock(results_dir, shared=True):  # not while another process is half-way through a row
            _check_csv_header(csv_path)
            _check_csv_rows(csv_path)
        if not os.access(csv_path, os.W_OK):
            raise UserError(f"{csv_path}: cannot append a row (permission denied)")
    if json_path is not None:
        json_path = Path(json_path)
        if json_path.is_dir():
            raise UserError(f"--json {json_path}: is a folder, expected a file path")
        check_writable_folder(json_path.parent, f"--json {json_path}:")


RESULTS_LOCK = ".results.lock"


@contextmanager
def results_lock(results_dir: Path, shared: bool = False):
    """Hold `<results_dir>/.results.lock` (`flock`): exclusive while a result is recorded (header check,
    JSON, appended row, tables), shared while results.csv is only read. Parallel evaluations (a sweep's
    jobs, two notebooks) then record one after the other: one header, whole rows, tables of every row.
    Without fcntl (Windows) there is no lock. The lock file is created when missing (a hidden, empty file)."""
    lock = results_dir / RESULTS_LOCK
    if not shared:  # recording needs the lock: an unwritable folder is said here, before anything is written
        try:
            open(lock, "a").close()
        except OSError as err:
            raise UserError(f"cannot record the result in {results_dir}: {err.strerror or err}") from None
    with file_lock(lock, shared):  # a read-only results folder can still be read, unlocked
        yield


def check_writable_folder(folder: Path, flag: str) -> None:
    """`folder` is a writable folder, or the nearest one that exists above it is (so it can be created)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {folder}: {existing} exists and is not a folder")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{flag} {folder}: cannot write in {existing} (permission denied)")


def check_output_file(path: Path, flag: str, suffixes: tuple[str, ...] | None = None) -> None:
    """An output file a command will write, checked before any work: its suffix is one of `suffixes` (None:
    any), it is not a folder, an existing file there is not read-only (its owner protected it: it is not
    replaced), and its folder is (or can be created as) a writable one. Writes nothing."""
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: expected a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a file path")
    # The mode bits, not os.access: as root os.access says every file is writable.
    if path.is_file() and (not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222):
        raise UserError(f"{flag} {path}: the existing file is read-only; not replacing it (remove it or "
                        "choose another name)")
    check_writable_folder(path.parent, flag)


def replacing_note(paths) -> str | None:
    """"replacing the existing a, b" for the outputs that exist already (a command says so before it
    overwrites them), or None."""
    existing = [str(p) for p in paths if Path(p).is_file()]
    return f"replacing the existing {', '.join(existing)}" if existing else None


def _check_csv_rows(csv_path: Path) -> None:
    """Every row of results.csv has one cell per column and numbers in its metric cells: a damaged table
    is refused before the work of a new result, not found broken after its JSON and row are written."""
    from reid.records.tables import METRICS

    metric_columns = [m for m, _ in METRICS] + [f"{m}_std" for m in ("rank1", "mAP", "mINP")]
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            where = [header.index(m) for m in metric_columns if m in header]
            for row in reader:
                line = reader.line_num
                if len(row) != len(header):
                    raise UserError(f"{csv_path} line {line}: {len(row)} cells, expected {len(header)} (a row "
                                    "cut short or glued to another?): fix or remove that line")
                for i in where:
                    try:
                        float(row[i] or 0)
                    except ValueError:
                        raise UserError(f"{csv_path} line {line}: {header[i]}={row[i]!r} is not a number: fix or "
                                        "remove that line") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{csv_path}: cannot read it ({err})") from None


def _end_with_newline(csv_path: Path) -> None:
    """A results.csv whose last row lacks its line end (edited by hand, or written by another tool) gets
    one, so the next row starts on a line of its own instead of being glued onto that row."""
    with open(csv_path, "rb+") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) not in (b"\n", b"\r"):
            f.write(b"\r\n")  # the csv module's own line end


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


def _truncate(path: Path, size: int) -> None:
    """Cut `path` back to `size` bytes (what it held before a failed append); quietly, since the caller is
    already reporting the failure."""
    try:
        if path.is_file() and path.stat().st_size > size:
            os.truncate(path, size)
    except OSError:
        pass


def _add_card_columns(csv_path: Path) -> None:
    """Rewrite a results.csv from before the protocol card with today's columns (its rows: empty there),
    atomically, and say so: the column set never changes silently."""
    from reid.utils.atomic import temp_path

    tmp = temp_path(csv_path)
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
    then rewrite the mean ± std tables `results.md` and `results.tex` beside them (`reid.records.tables`).

    The result must carry `"data"` (from `describe_data`) so that no number loses its label.
    An existing results.csv with another column set is an error rather than a silently
    misaligned table (one from before the protocol card gets the card's columns, and a message).
    Callers check the location with `check_result_location` before their work. Everything from the header
    check to the tables happens under the folder's lock (`results_lock`), so processes that record into
    one folder at once each add one whole row and never a second header.
    """
    from reid.records.tables import write_tables_unlocked
    from reid.utils.atomic import temp_path

    if "data" not in result or "kind" not in result["data"]:
        raise ValueError("a result must say which data it was computed on: add describe_data(...) as 'data'")
    check_result_location(results_dir, name)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--results-dir {results_dir}: cannot create it ({err.strerror or err})") from None
    csv_path = results_dir / "results.csv"
    json_path = results_dir / f"{name}.json"
    with results_lock(results_dir):
        state = _check_csv_header(csv_path)  # again: another process may have written it since the check
        if state == "previous":
            _add_card_columns(csv_path)
        tmp = temp_path(json_path)
        size = csv_path.stat().st_size if csv_path.is_file() else 0
        try:
            if state != "new":
                _end_with_newline(csv_path)
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
            _truncate(csv_path, size)  # a row cut short by a full disk would break every later table
            raise UserError(f"cannot record the result in {results_dir}: {err.strerror or err}; results.csv "
                            "is left as it was") from None
        write_tables_unlocked(results_dir)
    return json_path
