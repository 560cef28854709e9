"""RegDB reader (Nguyen et al., Sensors 2017): 412 identities, 10 visible + 10 thermal images each.

On-disk layout: ``<root>/Visible/<pid>/<name>.bmp``, ``<root>/Thermal/<pid>/<name>.bmp`` and the ten
random identity splits ``<root>/idx/{train,test}_{visible,thermal}_{1..10}.txt`` whose lines read
``Visible/1/female_back_v_06366_1.bmp 0`` (relative path, label). camid 1 = visible, 2 = thermal.
"""

from __future__ import annotations

import os
from pathlib import Path

from reid.data.dataset import Item, read_text_file, relabel_pids
from reid.utils.errors import UserError

VISIBLE, THERMAL = 1, 2
# The protocol's ten random half/half identity partitions (idx/*_{1..10}.txt), one model each: the one home of
# the number (configs, the runner, reproduce, evaluation, the data check and the synthetic set read it here).
NUM_SPLITS = 10
SPLITS = range(1, NUM_SPLITS + 1)
DIRECTIONS = ("v2t", "t2v")  # visible query -> thermal gallery, and the reverse


class RegDB:
    """Items are ``(path, pid, camid)``; ``.train`` pids are relabelled ``0..num_train_pids-1``."""

    ir_cameras = frozenset({THERMAL})

    def __init__(self, root: str | Path, split: int = 1):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: RegDB root not found (expected Visible/, Thermal/ and idx/)")
        check_split(split, f"RegDB split {split}")
        self.split = split
        train = self.read_idx("train", "visible", VISIBLE) + self.read_idx("train", "thermal", THERMAL)
        self.train: list[Item] = relabel_pids(train)
        self.num_train_pids = len({pid for _, pid, _ in self.train})
        self._test = {
            VISIBLE: self.read_idx("test", "visible", VISIBLE),
            THERMAL: self.read_idx("test", "thermal", THERMAL),
        }

    def read_idx(self, part: str, modality: str, camid: int) -> list[Item]:
        """Parse ``idx/<part>_<modality>_<split>.txt`` (part: train | test); every listed file must exist."""
        return read_idx_file(self.root, idx_path(self.root, part, modality, self.split), camid)

    def query(self, direction: str = "v2t") -> list[Item]:
        """Visible test images for ``v2t``, thermal for ``t2v`` (labels as in the idx files)."""
        return self._test[VISIBLE if _check(direction) == "v2t" else THERMAL]

    def gallery(self, direction: str = "v2t") -> list[Item]:
        """The other modality's test images: thermal for ``v2t``, visible for ``t2v``."""
        return self._test[THERMAL if _check(direction) == "v2t" else VISIBLE]


def check_split(value: int, what: str) -> None:
    """A one-line error when `value` (a split, or a number of splits) is outside 1..NUM_SPLITS; `what` names
    the setting and its value (`--splits 12`, `data.regdb_split=0 in <file>`)."""
    if value not in SPLITS:
        raise UserError(f"{what}: RegDB has splits 1..{NUM_SPLITS}")


def idx_path(root: Path, part: str, modality: str, split: int) -> Path:
    """``<root>/idx/<part>_<modality>_<split>.txt``: part train | test, modality visible | thermal, split 1..10."""
    return root / "idx" / f"{part}_{modality}_{split}.txt"


def read_idx_file(root: Path, path: Path, camid: int) -> list[Item]:
    """The items one idx file lists (paths relative to ``root``); UserError names the file and line."""
    if not path.is_file():
        raise UserError(f"{path}: missing RegDB split file (lines of 'relative/path label')")
    items = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise UserError(f"{path}:{lineno}: expected 'relative/path label' (label an integer >= 0), "
                            f"got {line!r}")
        rel = os.path.normpath(parts[0])
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
            raise UserError(f"{path}:{lineno}: {parts[0]} leaves the dataset root {root} "
                            "(expected a path relative to it, e.g. Visible/1/x.bmp)")
        image = root / rel
        if not image.is_file():
            raise UserError(f"{path}:{lineno}: listed image {image} does not exist")
        items.append((str(image), int(parts[1]), camid))
    if not items:
        raise UserError(f"{path}: split file lists no images")
    return items


def _check(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise UserError(f"RegDB direction must be 'v2t' (visible->thermal) or 't2v', got {direction!r}")
    return direction
