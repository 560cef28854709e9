"""Decoded-once image cache, the torch `Dataset`s, and identity-level splitting helpers.

Items everywhere are ``(path, pid, camid)`` tuples (docs/architecture.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from reid.utils.errors import UserError

Item = tuple[str, int, int]


def relabel_pids(items: Iterable[Item]) -> list[Item]:
    """Map pids to ``0..N-1`` in sorted order of the original pids (the same map for every modality)."""
    items = list(items)
    mapping = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items]


def carve_validation(train_items: list[Item], ir_cameras: set[int], val_fraction: float = 0.1,
                     seed: int = 0) -> tuple[list[Item], list[Item], list[Item]]:
    """Hold out a fraction of the *training identities* for model selection (never select on test).

    Returns ``(train, val_query, val_gallery)``: train pids relabelled ``0..N'-1``; the held-out ids'
    IR images form the query and their visible images the gallery (pids kept as in ``train_items``).
    Only identities with both modalities are eligible, so every query has a true match.
    ``val_fraction=0`` holds out nothing: every training identity is trained on and the validation
    lists are empty (the engine then reports the last epoch).
    """
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0:
        return relabel_pids(train_items), [], []
    modalities: dict[int, set[bool]] = {}
    for _, pid, cam in train_items:
        modalities.setdefault(pid, set()).add(cam in ir_cameras)
    eligible = sorted(pid for pid, mods in modalities.items() if len(mods) == 2)
    num_val = max(1, round(val_fraction * len(modalities)))
    if num_val >= len(modalities) or num_val > len(eligible):
        raise UserError(f"val_fraction={val_fraction} leaves no training identities "
                        f"({len(modalities)} ids, {len(eligible)} with both modalities)")
    held_out = set(random.Random(seed).sample(eligible, num_val))
    train = relabel_pids(it for it in train_items if it[1] not in held_out)
    val_query = [it for it in train_items if it[1] in held_out and it[2] in ir_cameras]
    val_gallery = [it for it in train_items if it[1] in held_out and it[2] not in ir_cameras]
    return train, val_query, val_gallery


def read_text_file(path) -> str:
    """A dataset's text file (id lists, idx files) as str: UTF-8, a leading BOM ignored; UserError names it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r})") \
            from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None


SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def read_image(path: str) -> Image.Image:
    """Open an image as RGB (single-channel IR replicated to 3 channels); UserError names the file.

    16-bit greyscale (thermal cameras write it) is scaled to 8 bits, not clipped to white; floating-point
    images, and 32-bit integer ones outside 0..65535, have no agreed range and are refused."""
    try:
        with Image.open(path) as img:
            if img.mode in SIXTEEN_BIT_MODES or img.mode == "I":  # older Pillow opens 16-bit PNGs as "I"
                values = np.asarray(img, dtype=np.float64)
                if img.mode == "I" and (values.min() < 0 or values.max() > 65535):
                    raise UserError(f"cannot read image {path}: 32-bit integer values outside 0..65535; "
                                    "expected 8-bit RGB / greyscale or 16-bit greyscale")
                scaled = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
                return Image.fromarray(scaled, "L").convert("RGB")
            if img.mode == "F":
                raise UserError(f"cannot read image {path}: floating-point (mode F) images are not supported; "
                                "expected 8-bit RGB / greyscale or 16-bit greyscale")
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def read_resized(path: str, height: int, width: int) -> np.ndarray:
    """`read_image`, resized (bilinear) to (height, width): a uint8 (H, W, 3) array, what every test-time
    image goes through before the test transform normalises it."""
    img = read_image(path)
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns otherwise)


class ImageCache:
    """Decodes each file once, resized to (height, width), and keeps uint8 (H, W, 3) arrays in memory.

    Fill it with `preload` in the main process before DataLoader workers fork: the workers then share
    the pages and no epoch ever re-decodes a JPEG/BMP. (Real SYSU-MM01 train at 288x144: ~4.3 GB.)
    """

    def __init__(self, height: int = 288, width: int = 144, threads: int = 4):
        self.height, self.width, self.threads = height, width, threads
        self._index: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []  # one uint8 (n, H, W, 3) block per preload call
        self._where: list[tuple[int, int]] = []  # cache index -> (block, row)

    def _decode(self, path: str) -> np.ndarray:
        return read_resized(path, self.height, self.width)

    def preload(self, paths: Iterable[str]) -> None:
        """Decode every path not cached yet (in a few threads: PIL releases the GIL while decoding)."""
        new = list(dict.fromkeys(p for p in paths if p not in self._index))
        if not new:
            return
        block = np.empty((len(new), self.height, self.width, 3), np.uint8)
        with ThreadPoolExecutor(max(1, self.threads)) as pool:
            for row, array in enumerate(pool.map(self._decode, new)):
                block[row] = array
        for row, path in enumerate(new):
            self._index[path] = len(self._where)
            self._where.append((len(self._blocks), row))
        self._blocks.append(block)

    def get(self, path: str) -> np.ndarray:
        """The uint8 (H, W, 3) array of ``path``; decodes (and caches) it on a miss."""
        if path not in self._index:
            self.preload([path])
        block, row = self._where[self._index[path]]
        return self._blocks[block][row]

    def tensor(self, path: str) -> torch.Tensor:
        """uint8 (3, H, W) tensor view of the cached image (shares memory; transforms must not write)."""
        return torch.from_numpy(self.get(path)).permute(2, 0, 1)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def nbytes(self) -> int:
        return sum(block.nbytes for block in self._blocks)

    def __contains__(self, path: str) -> bool:
        return path in self._index


class UncachedImages:
    """`ImageCache`'s reading interface without the memory: decodes a file on every access. For one pass
    over a folder of any size (`reid.tools.search`), where keeping every decoded image would only cost memory."""

    def __init__(self, height: int = 288, width: int = 144):
        self.height, self.width = height, width

    def preload(self, paths: Iterable[str]) -> None:
        """Nothing to do: images are decoded when they are asked for."""

    def tensor(self, path: str) -> torch.Tensor:
        """uint8 (3, H, W) tensor of the image, resized like `ImageCache` resizes it."""
        return torch.from_numpy(read_resized(path, self.height, self.width)).permute(2, 0, 1)


GRAY_OF = ("visible", "both")


class CrossModalTrainSet(Dataset):
    """Training items as ``{"img", "gray", "gray_keep", "pid", "camid", "modality"}`` dicts (modality 1 = IR).

    ``gray`` is the grayscale copy of the same augmented view (needs a `TrainTransform`); with
    ``with_gray=False`` the keys are absent, for the ablations without grayscale copies.
    ``gray_of="visible"`` (default) makes grayscale copies of the visible images only: an IR image is
    already single-channel, its "grayscale copy" is a near-duplicate. For IR items ``gray_keep`` is then
    False and ``gray`` is a placeholder (the colour view itself, no extra work) that the engine drops;
    ``gray_of="both"`` keeps a copy of every image (``gray_keep`` always True).
    """

    def __init__(self, items: list[Item], ir_cameras: set[int], transform, cache: ImageCache,
                 with_gray: bool = True, gray_of: str = "visible"):
        if with_gray and not hasattr(transform, "with_gray"):
            raise TypeError("with_gray=True needs a transform with .with_gray (build_train_transform)")
        if gray_of not in GRAY_OF:
            raise UserError(f"gray_of={gray_of!r} is not valid; expected one of {list(GRAY_OF)}")
        self.items, self.ir_cameras = list(items), set(ir_cameras)
        self.transform, self.cache, self.with_gray = transform, cache, with_gray
        self.gray_of = gray_of
        self.cache.preload(p for p, _, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, pid, camid = self.items[index]
        img = self.cache.tensor(path)
        out = {"pid": pid, "camid": camid, "modality": int(camid in self.ir_cameras)}
        if self.with_gray and (self.gray_of == "both" or not out["modality"]):
            out["img"], out["gray"] = self.transform.with_gray(img)
            out["gray_keep"] = True
        elif self.with_gray:  # an IR image under gray_of="visible": placeholder, dropped by the engine
            out["img"] = self.transform(img)
            out["gray"], out["gray_keep"] = out["img"], False
        else:
            out["img"] = self.transform(img)
        return out


class ImageSet(Dataset):
    """Test-time items as ``(img, pid, camid)`` tuples."""

    def __init__(self, items: list[Item], transform: Callable, cache: ImageCache):
        self.items, self.transform, self.cache = list(items), transform, cache
        self.cache.preload(p for p, _, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, pid, camid = self.items[index]
        return self.transform(self.cache.tensor(path)), pid, camid
