"""`python -m reid check-data`: does a copy of SYSU-MM01 or RegDB match the published facts?

    check_data(root, "sysu" | "regdb") -> DataReport      counts vs the facts, file problems, fingerprint
    DataReport.text()                                       what the command prints; .ok decides exit 0 / 1

One walk over the tree lists every file and its size (`reid.data.identity.walk_files`, the walk of the protocol
card too: links to folders are followed, loops are not; the fingerprint: a hash of the sorted relative
paths and sizes, the same on every machine that holds the same copy), then every image is decoded once
(to catch truncated files and odd modes) and files that share a size are hashed (exact duplicates).
A synthetic set (it carries the generator's synthetic.json) is compared with its own manifest instead,
and how its shape differs from the real dataset is listed as information, not as differences.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from reid.data.dataset import SIXTEEN_BIT_MODES
from reid.data.identity import DATASET_NAMES, fingerprint_of, synthetic_manifest, walk_files
from reid.data.regdb import NUM_SPLITS, SPLITS, THERMAL, VISIBLE, idx_path, read_idx_file
from reid.data.sysu import ALL_CAMERAS, IR_CAMERAS, RGB_CAMERAS, is_image_name, read_id_file
from reid.utils.errors import UserError

# SYSU-MM01: Wu et al., "RGB-Infrared Cross-Modality Person Re-Identification", ICCV 2017 (491 people, six
# cameras; 296 train + 99 val + 96 test identities) and its evaluation protocol as the published cross-modal
# code runs it (query: every IR image of the test ids; gallery: one RGB image per test id and camera).
SYSU_FACTS = {
    "identities (camN/NNNN folders)": 491,
    "train+val identities (exp/train_id.txt + val_id.txt)": 395,
    "test identities (exp/test_id.txt)": 96,
    "train+val visible images (cameras 1, 2, 4, 5)": 22258,
    "train+val IR images (cameras 3, 6)": 11909,
    "IR queries, all-search (test ids, cameras 3, 6)": 3803,
    "single-shot all-search gallery per trial": 301,
}
# RegDB: Nguyen et al., "Person Recognition System Based on a Combination of Body Images from Visible Light
# and Thermal Cameras", Sensors 17(3):605, 2017 (412 people, 10 visible + 10 thermal images each), with the
# ten random half/half identity splits of its idx/ files.
REGDB_FACTS = {
    "visible identities (Visible/<id>)": 412,
    "thermal identities (Thermal/<id>)": 412,
    "images per visible identity": 10,
    "images per thermal identity": 10,
    "split files (idx/{train,test}_{visible,thermal}_{1..10}.txt)": 4 * NUM_SPLITS,
    "train identities per split": 206,
    "test identities per split": 206,
    "images per train split file": 2060,
    "images per test split file": 2060,
}
FACTS = {"sysu": SYSU_FACTS, "regdb": REGDB_FACTS}
CITATION = {"sysu": "Wu et al., ICCV 2017", "regdb": "Nguyen et al., Sensors 2017"}
GOOD_MODES = {"RGB", "L"}  # 8-bit colour and greyscale; anything else is worth a look
JUNK = {".DS_Store": "macOS folder settings", "Thumbs.db": "Windows thumbnail cache"}
CHUNK = 1 << 20  # bytes read at a time when hashing


@dataclass
class Row:
    """One counted fact: what the reference says and what the tree holds (a count, a range "9..10", None)."""

    name: str
    expected: int
    found: int | str | None

    @property
    def ok(self) -> bool:
        return self.found == self.expected


@dataclass
class DataReport:
    dataset: str  # "sysu" | "regdb"
    root: Path
    manifest: dict | None  # the synthetic generator's manifest; None for real data
    rows: list[Row]  # against the reference: the published facts, or the synthetic manifest
    real_shape: list[Row] = field(default_factory=list)  # synthetic only: the real dataset's facts (information)
    problems: list[str] = field(default_factory=list)  # files missing, malformed, unreadable or suspicious
    notes: list[str] = field(default_factory=list)  # information (rand_perm_cam.mat, modes, sizes)
    fingerprint: str = ""
    files: int = 0
    size: int = 0

    @property
    def differences(self) -> list[Row]:
        return [row for row in self.rows if not row.ok]

    @property
    def ok(self) -> bool:
        return not self.differences and not self.problems

    def text(self) -> str:
        """The command's report: header, rows, problems, notes, fingerprint and a summary line."""
        name = DATASET_NAMES[self.dataset]
        if self.manifest is not None:
            version, seed = self.manifest.get("generator_version", "?"), self.manifest.get("seed", "?")
            header = (f"synthetic {name}-layout at {self.root} (generator version {version}, seed {seed}): "
                      f"compared with its synthetic.json, not with the real {name}")
        else:
            header = f"{name} at {self.root}: compared with the published facts ({CITATION[self.dataset]})"
        lines = [header]
        width = max((len(row.name) for row in self.rows + self.real_shape), default=0)
        for row in self.rows:
            found = "none (see problems)" if row.found is None else row.found
            lines.append(f"  {'ok  ' if row.ok else 'DIFF'}  {row.name:<{width}}  " +
                         (f"{row.expected}" if row.ok else f"expected {row.expected}, found {found}"))
        if self.real_shape:
            lines.append(f"information only, how this set differs from the real {name} ({CITATION[self.dataset]}):")
            lines += [f"        {row.name:<{width}}  real {row.expected}, here {row.found}" for row in self.real_shape]
        if self.problems:
            lines.append("problems:")
            lines += [f"  {line}" for line in self.problems]
        if self.notes:
            lines.append("notes:")
            lines += [f"  {line}" for line in self.notes]
        lines.append(f"fingerprint: {self.fingerprint} ({self.files} files, {self.size / 1e6:.1f} MB; "
                     "the protocol card's dataset_fingerprint: paths and sizes, hidden files left out)")
        reference = "its manifest" if self.manifest is not None else "the published facts"
        if self.ok:
            lines.append(f"ok: matches {reference}, no problem files")
        else:
            lines.append(f"differs: {len(self.differences)} difference(s) from {reference}, "
                         f"{len(self.problems)} problem(s) with files")
        return "\n".join(lines)


def check_data(root: str | Path, dataset: str) -> DataReport:
    """Check the SYSU-MM01 or RegDB tree at `root`; UserError when it is not that layout at all."""
    root = Path(root)
    _check_layout(root, dataset)
    manifest = synthetic_manifest(root)
    files, loops = walk_files(root)  # the protocol card's walk: links to folders followed, loops not
    problems: list[str] = []
    if loops:
        problems.append(_listing("folder links that loop back to a folder above them (not followed)", loops))
    notes: list[str] = []
    count = _sysu_counts if dataset == "sysu" else _regdb_counts
    found = count(root, files, problems, notes)
    if manifest is None:
        reference = FACTS[dataset]
    else:
        reference = _synthetic_facts(dataset, manifest, problems)
    report = DataReport(dataset, root, manifest, [Row(k, v, found.get(k)) for k, v in reference.items()])
    if manifest is not None:
        report.real_shape = [Row(k, v, found.get(k)) for k, v in FACTS[dataset].items() if found.get(k) != v]
    _check_files(root, files, problems, notes)
    report.problems, report.notes = problems, notes
    report.fingerprint = fingerprint_of(files)  # the protocol card's fingerprint of this copy
    report.files, report.size = len(files), sum(max(size, 0) for _, size in files)
    return report


# ------------------------------------------------------------------------------------------- layout

LAYOUT = {"sysu": ("cam1..cam6/ and exp/", (*(f"cam{c}" for c in ALL_CAMERAS), "exp")),
          "regdb": ("Visible/, Thermal/ and idx/", ("Visible", "Thermal", "idx"))}


def _check_layout(root: Path, dataset: str) -> None:
    if dataset not in LAYOUT:
        raise UserError(f"unknown dataset {dataset!r}: expected 'sysu' or 'regdb'")
    expected, names = LAYOUT[dataset]
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (expected a {DATASET_NAMES[dataset]} root with {expected})")
    if any((root / name).is_dir() for name in names):
        return
    if (root / DATASET_NAMES[dataset]).is_dir():
        hint = f"; did you mean {root / DATASET_NAMES[dataset]}?"
    else:
        other = next((d for d in LAYOUT if d != dataset and any((root / n).is_dir() for n in LAYOUT[d][1])), None)
        hint = f"; it looks like {DATASET_NAMES[other]} (--dataset {other})" if other else ""
    raise UserError(f"{root}: not a {DATASET_NAMES[dataset]} layout (expected {expected}){hint}")


def _spread(values) -> int | str | None:
    """One number when all agree, "lo..hi" when they do not, None when there is nothing."""
    values = sorted(set(values))
    if not values:
        return None
    return values[0] if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _listing(what: str, paths: list[str], limit: int = 5) -> str:
    more = f" ... ({len(paths) - limit} more)" if len(paths) > limit else ""
    return f"{what} ({len(paths)}): {', '.join(paths[:limit])}{more}"


# ---------------------------------------------------------------------------------------- SYSU-MM01

def _sysu_counts(root: Path, files, problems: list[str], notes: list[str]) -> dict:
    per_folder: Counter = Counter()
    for rel, _ in files:
        parts = rel.split("/")
        if len(parts) == 3 and re.fullmatch(r"cam[1-6]", parts[0]) and re.fullmatch(r"\d{4}", parts[1]) \
                and is_image_name(parts[2]):
            per_folder[int(parts[0][3:]), int(parts[1])] += 1
    folders = set()
    for cam in ALL_CAMERAS:
        if not (root / f"cam{cam}").is_dir():
            problems.append(f"cam{cam}/: missing camera folder")
            continue
        folders |= {(cam, int(d.name)) for d in (root / f"cam{cam}").iterdir() if re.fullmatch(r"\d{4}", d.name)}
    empty = sorted(f"cam{c}/{p:04d}" for c, p in folders if not per_folder[c, p])
    if empty:
        problems.append(_listing("identity folders without images", empty))
    ids = {pid for _, pid in folders}
    lists = {}
    for part in ("train", "val", "test"):
        try:
            lists[part] = set(read_id_file(root / "exp" / f"{part}_id.txt"))
        except UserError as err:
            problems.append(str(err))
    train = lists["train"] | lists["val"] if "train" in lists and "val" in lists else None
    test = lists.get("test")
    listed = set().union(*lists.values())
    if listed - ids:
        problems.append(f"exp/*_id.txt list {len(listed - ids)} id(s) with no camN/NNNN folder: "
                        f"{sorted(listed - ids)[:10]}")
    if len(lists) == 3 and ids - listed:
        problems.append(f"{len(ids - listed)} identity folder(s) in no exp/*_id.txt: {sorted(ids - listed)[:10]}")
    if train is not None and test is not None and train & test:
        problems.append(f"ids in both train/val and test: {sorted(train & test)[:10]}")
    rgb, ir = RGB_CAMERAS["all"], IR_CAMERAS
    _rand_perm_cam(root, problems, notes)
    return {
        "identities (camN/NNNN folders)": len(ids),
        "train+val identities (exp/train_id.txt + val_id.txt)": None if train is None else len(train),
        "test identities (exp/test_id.txt)": None if test is None else len(test),
        "train+val visible images (cameras 1, 2, 4, 5)":
            None if train is None else sum(per_folder[c, p] for p in train for c in rgb),
        "train+val IR images (cameras 3, 6)": None if train is None else sum(per_folder[c, p] for p in train for c in ir),
        "IR queries, all-search (test ids, cameras 3, 6)":
            None if test is None else sum(per_folder[c, p] for p in test for c in ir),
        "single-shot all-search gallery per trial":
            None if test is None else sum(per_folder[c, p] > 0 for p in test for c in rgb),
        "images per visible folder (cameras 1, 2, 4, 5)": _spread(n for (c, _), n in per_folder.items() if c in rgb),
        "images per IR folder (cameras 3, 6)": _spread(n for (c, _), n in per_folder.items() if c in ir),
    }


def _rand_perm_cam(root: Path, problems: list[str], notes: list[str]) -> None:
    """Say whether the official gallery permutation is there, and which galleries results use."""
    from reid.data.sysu import _load_rand_perm_cam

    path = root / "exp" / "rand_perm_cam.mat"
    ours = ("`python -m reid evaluate` draws each trial's gallery with the published cross-modal code's seeded "
            "sampler (random.seed(trial) over the sorted file names)")
    if not path.is_file():
        notes.append(f"exp/rand_perm_cam.mat: absent. Our results do not need it: {ours}; only the fixed galleries "
                     "of SYSU-MM01's MATLAB evaluation come from it")
        return
    try:
        _load_rand_perm_cam(path)
    except UserError as err:
        problems.append(str(err))
        return
    notes.append(f"exp/rand_perm_cam.mat: present, the fixed gallery permutation of SYSU-MM01's official MATLAB "
                 f"evaluation. It changes nothing for our results: {ours} and does not read it, so trial by trial "
                 "its galleries differ from the MATLAB ones (SYSUMM01(root, rand_perm_cam=...) uses the file)")


# -------------------------------------------------------------------------------------------- RegDB

def _regdb_counts(root: Path, files, problems: list[str], notes: list[str]) -> dict:
    per_folder: dict[str, Counter] = {"Visible": Counter(), "Thermal": Counter()}
    for rel, _ in files:
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] in per_folder and parts[1].isdigit() and is_image_name(parts[2]):
            per_folder[parts[0]][parts[1]] += 1
    ids = {}
    for modality in per_folder:
        if not (root / modality).is_dir():
            problems.append(f"{modality}/: missing modality folder")
        ids[modality] = {d.name for d in (root / modality).glob("*") if d.is_dir() and d.name.isdigit()}
        empty = sorted(f"{modality}/{pid}" for pid in ids[modality] if not per_folder[modality][pid])
        if empty:
            problems.append(_listing("identity folders without images", empty))
    split_ids: dict[str, list[int]] = defaultdict(list)
    split_images: dict[str, list[int]] = defaultdict(list)
    present = 0
    for split in SPLITS:
        seen = {}
        for part in ("train", "test"):
            for modality, camid in (("visible", VISIBLE), ("thermal", THERMAL)):
                path = idx_path(root, part, modality, split)
                if not path.is_file():
                    problems.append(f"{path.relative_to(root).as_posix()}: missing split file")
                    continue
                present += 1
                try:
                    items = read_idx_file(root, path, camid)
                except UserError as err:
                    problems.append(str(err))
                    continue
                seen[part, modality] = {Path(p).parent.name for p, _, _ in items}
                split_ids[part].append(len(seen[part, modality]))
                split_images[part].append(len(items))
        for part in ("train", "test"):
            if len({frozenset(seen[part, m]) for m in ("visible", "thermal") if (part, m) in seen}) > 1:
                problems.append(f"idx split {split}: {part}_visible and {part}_thermal list different identities")
        train = set().union(*(v for (part, _), v in seen.items() if part == "train"))
        test = set().union(*(v for (part, _), v in seen.items() if part == "test"))
        if train & test:
            problems.append(f"idx split {split}: identities in both train and test: {sorted(train & test)[:10]}")
    return {
        "visible identities (Visible/<id>)": len(ids["Visible"]),
        "thermal identities (Thermal/<id>)": len(ids["Thermal"]),
        "images per visible identity": _spread(per_folder["Visible"].values()),
        "images per thermal identity": _spread(per_folder["Thermal"].values()),
        "split files (idx/{train,test}_{visible,thermal}_{1..10}.txt)": present,
        "train identities per split": _spread(split_ids["train"]),
        "test identities per split": _spread(split_ids["test"]),
        "images per train split file": _spread(split_images["train"]),
        "images per test split file": _spread(split_images["test"]),
    }


# ---------------------------------------------------------------------------------------- synthetic

def _synthetic_facts(dataset: str, manifest: dict, problems: list[str]) -> dict:
    """What the generator's manifest promises (reid.data.synthetic.Sizes), in the rows' names."""
    sizes = manifest.get("sizes")
    if not isinstance(sizes, dict):
        problems.append("synthetic.json: no sizes (the generation did not finish?): rerun `python -m reid synth`")
        return {}
    try:
        if dataset == "sysu":
            trainval = sizes["sysu_train_ids"] + sizes["sysu_val_ids"]
            return {
                "identities (camN/NNNN folders)": trainval + sizes["sysu_test_ids"],
                "train+val identities (exp/train_id.txt + val_id.txt)": trainval,
                "test identities (exp/test_id.txt)": sizes["sysu_test_ids"],
                "images per visible folder (cameras 1, 2, 4, 5)": sizes["images_per_rgb_camera"],
                "images per IR folder (cameras 3, 6)": sizes["images_per_ir_camera"],
            }
        ids, images = sizes["regdb_ids"], sizes["regdb_images"]
        return {
            "visible identities (Visible/<id>)": ids,
            "thermal identities (Thermal/<id>)": ids,
            "images per visible identity": images,
            "images per thermal identity": images,
            "split files (idx/{train,test}_{visible,thermal}_{1..10}.txt)": 4 * len(SPLITS),
            "train identities per split": ids // 2,
            "test identities per split": ids - ids // 2,
            "images per train split file": ids // 2 * images,
            "images per test split file": (ids - ids // 2) * images,
        }
    except KeyError as err:
        problems.append(f"synthetic.json: sizes lack {err} (an older generator?): rerun `python -m reid synth`")
        return {}


# -------------------------------------------------------------------------------------------- files

def _check_files(root: Path, files, problems: list[str], notes: list[str]) -> None:
    """Junk left by other systems, unreadable or odd images, exact duplicates (by content)."""
    from tqdm import tqdm

    junk = defaultdict(list)
    for rel, _ in files:
        name = rel.rsplit("/", 1)[-1]
        if rel.split("/")[0] == "__MACOSX" or "/__MACOSX/" in rel:
            junk["macOS archive folder __MACOSX/"].append(rel)
        elif name.startswith("._"):
            junk["macOS AppleDouble files ._*"].append(rel)
        elif name in JUNK:
            junk[f"{JUNK[name]} files {name}"].append(rel)
    problems += [_listing(what, paths) for what, paths in junk.items()]
    broken = [f"{rel} (cannot stat: a broken link?)" for rel, size in files if size < 0]
    skip = {rel for paths in junk.values() for rel in paths} | {rel for rel, size in files if size < 0}
    by_size = defaultdict(list)
    for rel, size in files:
        if rel not in skip:
            by_size[size].append(rel)
    to_hash = {rel for group in by_size.values() if len(group) > 1 for rel in group}
    images = [rel for rel, _ in files if rel not in skip and is_image_name(rel.rsplit("/", 1)[-1])]
    work = sorted(to_hash | set(images))
    hashes: dict[str, list[str]] = defaultdict(list)
    modes: dict[str, list[str]] = defaultdict(list)
    sizes: Counter = Counter()
    image_set = set(images)
    for rel in tqdm(work, desc="checking files", unit="file", leave=False, dynamic_ncols=True, mininterval=1.0):
        path = root / rel
        if rel in to_hash:
            digest = _sha256(path)
            if digest is None:
                broken.append(f"{rel} (unreadable)")
                continue
            hashes[digest].append(rel)
        if rel in image_set:
            result = _inspect_image(path)
            if isinstance(result, str):
                broken.append(f"{rel} ({result})")
            else:
                modes[result[0]].append(rel)
                sizes[result[1]] += 1
    if broken:
        problems.append(_listing("unreadable or truncated files", broken, limit=20))
    for mode, paths in sorted(modes.items()):
        if mode not in GOOD_MODES:
            kind = "16-bit" if mode in SIXTEEN_BIT_MODES or mode == "I" else "not 8-bit RGB / greyscale"
            problems.append(_listing(f"images in mode {mode} ({kind})", paths))
    duplicates = [sorted(group) for group in hashes.values() if len(group) > 1]
    if duplicates:
        problems.append(_listing("groups of identical files (same content)", [" = ".join(g) for g in duplicates]))
    if modes:
        notes.append("image modes: " + ", ".join(f"{mode} {len(paths)}" for mode, paths in sorted(modes.items())))
    if sizes:
        small, large = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
        notes.append(f"image sizes (width x height): {len(sizes)} distinct, from {small[0]}x{small[1]} "
                     f"to {large[0]}x{large[1]}")


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _inspect_image(path: Path) -> tuple[str, tuple[int, int]] | str:
    """(mode, size) of a fully decodable image, else the reason it is not."""
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
            if img.format == "JPEG" and mode in GOOD_MODES:
                img.draft(mode, (1, 1))  # decode at 1/8 scale: every byte is still read, in a fraction of the time
            img.load()
        return mode, size
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        return f"{type(err).__name__}: {err}"
