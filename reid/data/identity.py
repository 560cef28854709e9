"""What a dataset folder is: synthetic or real (the generator's manifest), its label in results, and its
fingerprint (one walk of the tree, shared by the protocol card and `python -m reid check-data`).

    synthetic_manifest(root) / is_synthetic(root)   the generator's manifest, if any (links resolved)
    describe_data(root, "sysu")                     {"kind", "dataset", "root", "label"[, "generator"]}
    walk_files(root)                                every file under root with its size; folder links that loop
    dataset_fingerprint(root)                       hash of the relative paths and sizes of every file under root

A result computed on the synthetic dataset is labelled "synthetic SYSU-MM01-layout" (or "synthetic
RegDB-layout"), never "SYSU-MM01" or "RegDB": its numbers say nothing about the paper's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from reid.utils.errors import UserError

DATASET_NAMES = {"sysu": "SYSU-MM01", "regdb": "RegDB"}
# The synthetic generator writes this manifest at its root, the parent of SYSU-MM01/ and RegDB/, and a copy
# inside each of them (reid.data.synthetic).
SYNTHETIC_MANIFEST = "synthetic.json"


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
    """The `"data"` entry of a result; `synthetic=None` decides from the manifest file. `synthetic=False`
    on a folder that holds the manifest is a `UserError` (`evaluate --synthetic no` on the synthetic set);
    `synthetic=True` on any folder is allowed: it only makes the label more careful."""
    if dataset not in DATASET_NAMES:
        raise UserError(f"unknown dataset {dataset!r}: expected one of {sorted(DATASET_NAMES)}")
    name = DATASET_NAMES[dataset]
    if synthetic is not True:
        manifest = is_synthetic(root)
        if synthetic is False and manifest:  # never label the generator's images real, whatever the caller says
            raise UserError(f"--synthetic no: {root} is the synthetic {name}-layout (it holds the generator's "
                            f"{SYNTHETIC_MANIFEST}); its numbers cannot be recorded as real data")
        synthetic = manifest
    described = {
        "kind": "synthetic" if synthetic else "real",
        "dataset": name,
        "root": str(root),
        "label": f"synthetic {name}-layout" if synthetic else name,
    }
    # The generator's version and seed: the fingerprint alone cannot tell two versions apart where the
    # images keep their sizes (RegDB's bitmaps), and a reader of a record should not have to.
    generated = synthetic_manifest(root) if synthetic else None
    if generated:
        described["generator"] = {"version": generated.get("generator_version"), "seed": generated.get("seed")}
    return described


def fingerprint_of(files) -> str:
    """16 hex digits of the SHA-256 of the sorted `relative/path<TAB>size` lines of (path, size) pairs,
    hidden files and folders left out (the readers ignore them): the one fingerprint of a dataset copy,
    shared by the protocol card and `python -m reid check-data`."""
    def hidden(rel: str) -> bool:
        return any(part.startswith(".") for part in rel.split("/"))

    lines = sorted(f"{rel}\t{size}" for rel, size in files if not hidden(rel))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _dir_id(path) -> tuple[int, int]:
    info = os.stat(path)  # follows a link: the folder it points to
    return info.st_dev, info.st_ino


def walk_files(root: str | Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(every file under `root` as (relative POSIX path, bytes), sorted; the folder links that loop back).

    The one walk of a dataset tree, shared by the protocol card's fingerprint and `python -m reid check-data`,
    so both see the same files the readers read. It follows links to folders (a camera folder may be a link to
    another disk) but never enters a folder that is one of its own ancestors (`cam6/0003/loop -> ../..`):
    such a link is returned in the second list instead. Hidden files are listed (check-data reports
    `.DS_Store` and `._*`); `fingerprint_of` leaves them out. A broken link is a file of size -1; an
    unreadable folder is listed as a file of size -1 too, so that it is reported rather than skipped."""
    root = Path(root)
    files: list[tuple[str, int]] = []
    loops: list[str] = []
    stack = [("", frozenset([_dir_id(root)]))]
    while stack:
        rel, ancestors = stack.pop()
        try:
            with os.scandir(root / rel if rel else root) as it:
                entries = list(it)
        except OSError:
            if rel:
                files.append((rel, -1))
            continue
        for entry in entries:
            sub = f"{rel}/{entry.name}" if rel else entry.name
            try:
                ident = _dir_id(entry.path) if entry.is_dir() else None
            except OSError:
                ident = None
            if ident is not None:
                if ident in ancestors:
                    loops.append(sub)
                else:
                    stack.append((sub, ancestors | {ident}))
                continue
            try:
                size = os.stat(entry.path).st_size
            except OSError:  # a broken link: listed, without a size
                size = -1
            files.append((sub, size))
    return sorted(files), sorted(loops)


@functools.cache
def _fingerprint(root: str) -> str:
    return fingerprint_of(walk_files(root)[0])


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
