"""SYSU-MM01 reader (Wu et al., ICCV 2017): 491 identities, RGB cameras 1, 2, 4, 5, IR cameras 3, 6.

On-disk layout: ``<root>/cam{1..6}/<4-digit pid>/<4-digit n>.jpg`` and
``<root>/exp/{train,val,test}_id.txt``, each one comma-separated line of unpadded ids.

The test protocol follows the published cross-modal code (so numbers are comparable): the query is
every IR image of the test ids; the gallery draws ``shots`` images per (test id, RGB camera) with
Python's ``random`` seeded by ``trial``, choosing over the sorted file names. The official
``exp/rand_perm_cam.mat`` can be used instead by passing ``rand_perm_cam=``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from reid.data.dataset import Item, read_text_file, relabel_pids
from reid.utils.errors import UserError

RGB_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
IR_CAMERAS = (3, 6)
ALL_CAMERAS = (1, 2, 3, 4, 5, 6)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def is_image_name(name: str) -> bool:
    """An image by its name; hidden files (macOS `._0001.jpg` resource forks) are not images."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".")


def read_id_file(path: Path) -> list[int]:
    """Parse an ``exp/*_id.txt`` file: one line of comma-separated ids such as ``1,2,4,5``."""
    if not path.is_file():
        raise UserError(f"{path}: missing SYSU-MM01 id file (expected one line of comma-separated ids)")
    text = read_text_file(path).strip()
    try:
        ids = [int(tok) for tok in text.replace("\n", ",").split(",") if tok.strip()]
    except ValueError:
        raise UserError(f"{path}: expected comma-separated integer ids, got {text[:60]!r}") from None
    if not ids:
        raise UserError(f"{path}: no identities listed")
    bad = [i for i in ids if i < 1]
    if bad:
        raise UserError(f"{path}: ids must be positive integers (folders cam*/NNNN), got {bad[:5]}")
    return ids


class SYSUMM01:
    """Items are ``(path, pid, camid)``; ``.train`` pids are relabelled ``0..num_train_pids-1``."""

    ir_cameras = frozenset(IR_CAMERAS)

    def __init__(self, root: str | Path, rand_perm_cam: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: SYSU-MM01 root not found (expected cam1..cam6/ and exp/)")
        exp = self.root / "exp"
        # The paper (like every published method) trains on train + val identities: 395 on the real set.
        train_ids = read_id_file(exp / "train_id.txt") + read_id_file(exp / "val_id.txt")
        self.train_ids = sorted(set(train_ids))
        self.test_ids = sorted(set(read_id_file(exp / "test_id.txt")))
        overlap = set(self.train_ids) & set(self.test_ids)
        if overlap:
            raise UserError(f"{exp}: ids {sorted(overlap)[:5]} are in both train/val and test")
        self._files: dict[tuple[int, int], list[str]] = {}
        for files, ids in (("train_id.txt + val_id.txt", self.train_ids), ("test_id.txt", self.test_ids)):
            absent = [pid for pid in ids
                      if not any((self.root / f"cam{c}" / f"{pid:04d}").is_dir() for c in ALL_CAMERAS)]
            if absent:
                raise UserError(f"{exp}: ids {absent[:5]}{' ...' if len(absent) > 5 else ''} listed in {files} "
                                f"have no image folder in any of {self.root}/cam1..cam6")
        items = [(p, pid, cam) for pid in self.train_ids for cam in ALL_CAMERAS for p in self.files(cam, pid)]
        if not items:
            raise UserError(f"{self.root}: no training images found under cam1..cam6/<pid>/")
        self.train: list[Item] = relabel_pids(items)
        self.num_train_pids = len({pid for _, pid, _ in self.train})
        self._perm = _load_rand_perm_cam(Path(rand_perm_cam)) if rand_perm_cam is not None else None

    @property
    def uses_rand_perm_cam(self) -> bool:
        """Galleries from the official permutation file rather than the seeded draw (the result card says which)."""
        return self._perm is not None

    def empty_cameras(self, ids, cameras=ALL_CAMERAS) -> list[int]:
        """The cameras of `cameras` in which none of `ids` has an image folder (a camera folder removed, or
        every identity folder in it)."""
        return [c for c in cameras if not any((self.root / f"cam{c}" / f"{pid:04d}").is_dir() for pid in ids)]

    def check_cameras(self, ids, cameras, what: str, synthetic: bool) -> list[str]:
        """Every camera of a protocol (`what`: its name) holds some of `ids`: otherwise its gallery or query,
        or the training set, silently shrinks. On data labelled real a one-line `UserError`; on synthetic
        data a warning (printed to stderr and returned, for the result's `warnings`)."""
        empty = self.empty_cameras(ids, cameras)
        if not empty:
            return []
        names = ", ".join(f"cam{c}" for c in empty)
        line = (f"{self.root}: {names} {'has' if len(empty) == 1 else 'have'} no image folder of any of the "
                f"{len(ids)} identities {what} uses (missing or emptied camera folder; "
                f"python -m reid check-data)")
        if not synthetic:
            raise UserError(line)
        print(f"warning: {line}", file=sys.stderr)
        return [line]

    def files(self, cam: int, pid: int) -> list[str]:
        """Sorted image paths of one identity in one camera; [] when the id never passed that camera."""
        key = (cam, pid)
        if key not in self._files:
            folder = self.root / f"cam{cam}" / f"{pid:04d}"
            names = []
            if folder.is_dir():
                names = sorted(f.name for f in folder.iterdir() if is_image_name(f.name) and f.is_file())
                if not names:
                    raise UserError(f"{folder}: identity folder holds no images (.jpg/.png/.bmp)")
            self._files[key] = [str(folder / n) for n in names]
        return self._files[key]

    def query(self, mode: str = "all") -> list[Item]:
        """Every IR image (cameras 3 and 6) of the test ids; the same for both search modes."""
        _check_mode(mode)
        return [(p, pid, cam) for pid in self.test_ids for cam in IR_CAMERAS for p in self.files(cam, pid)]

    def gallery(self, mode: str = "all", trial: int = 0, shots: int = 1) -> list[Item]:
        """``shots`` RGB images per (test id, RGB camera of ``mode``) that has the id, drawn per ``trial``."""
        _check_mode(mode)
        if shots < 1:
            raise UserError(f"shots must be >= 1 (1 = single-shot, 10 = multi-shot), got {shots}")
        if self._perm is not None:
            return self._gallery_from_mat(mode, trial, shots)
        rng = random.Random(trial)  # same stream as the published code's random.seed(trial)
        out = []
        for pid in self.test_ids:
            for cam in RGB_CAMERAS[mode]:
                files = self.files(cam, pid)
                if not files:
                    continue
                chosen = [rng.choice(files)] if shots == 1 else rng.sample(files, min(shots, len(files)))
                out += [(p, pid, cam) for p in chosen]
        return out

    def _gallery_from_mat(self, mode: str, trial: int, shots: int) -> list[Item]:
        out = []
        for pid in self.test_ids:
            for cam in RGB_CAMERAS[mode]:
                per_id = self._perm[cam - 1]
                if pid - 1 >= len(per_id) or per_id[pid - 1].size == 0:
                    continue
                trials = per_id[pid - 1]
                for n in trials[trial % trials.shape[0]][:shots]:
                    path = self.root / f"cam{cam}" / f"{pid:04d}" / f"{int(n):04d}.jpg"
                    if not path.is_file():
                        raise UserError(f"rand_perm_cam.mat points to {path}, which does not exist")
                    out.append((str(path), pid, cam))
        return out


def _check_mode(mode: str) -> None:
    if mode not in RGB_CAMERAS:
        raise UserError(f"SYSU-MM01 search mode must be 'all' or 'indoor', got {mode!r}")


def _load_rand_perm_cam(path: Path) -> list[list]:
    """The official permutation file: per camera, per pid (1-based), a (trials, n) array of 1-based image numbers."""
    import numpy as np
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        cells = scipy.io.loadmat(str(path))["rand_perm_cam"]
    except (MatReadError, OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a readable .mat file with a 'rand_perm_cam' variable ({err})") from None
    cams = [np.asarray(c[0] if c.shape == (1,) else c).squeeze() for c in np.asarray(cells).reshape(-1)]
    if len(cams) != 6:
        raise UserError(f"{path}: expected 6 camera cells in rand_perm_cam, found {len(cams)}")
    out = []
    for cam in cams:
        per_id = [np.atleast_2d(np.asarray(c, dtype=np.int64)) if np.size(c) else np.zeros((0, 0), np.int64)
                  for c in np.asarray(cam, dtype=object).reshape(-1)]
        out.append(per_id)
    return out
