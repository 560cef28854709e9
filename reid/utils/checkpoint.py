"""Checkpoints: written atomically, read safely.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(weights_only=True)` can read it without unpickling arbitrary code.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch

from reid.utils.errors import UserError

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: a temporary file in the same folder, then a rename.

    A crash (or a full disk) while writing leaves any previous file at `path` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        except RuntimeError as err:  # torch's zip writer reports a short write as a RuntimeError
            io_error = _write_error(Path(tmp), err)
            if io_error is None:  # not a write failure (e.g. an object that cannot be pickled): as it is
                raise
            raise io_error from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_error(tmp: Path, err: RuntimeError) -> OSError | None:
    """The OSError behind a failed `torch.save`: a file-size limit (`ulimit -f`) or a full disk, as far as
    can be told afterwards, or another failed write that torch's message names; None when the error is not
    about writing at all."""
    size = tmp.stat().st_size if tmp.exists() else 0
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size >= limit - (1 << 16):
            return OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)} (the file-size limit, ulimit -f)")
    except ImportError:  # no resource module (Windows)
        pass
    if shutil.disk_usage(tmp.parent).free < (1 << 20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    text = ANSI_ESCAPE.sub("", str(err)).strip()
    if "failed writing" in text or "unexpected pos" in text:  # torch's words for a short write
        return OSError(errno.EIO, f"the write stopped part-way: {text.splitlines()[0]}")
    return None


def pickle_refusal(err: pickle.UnpicklingError) -> str:
    """Our words for what `torch.load(weights_only=True)` refused, to follow a file's name: it holds pickled
    Python objects ("... is refused as unsafe"), or its pickle data do not parse. torch's own text here
    advises `weights_only=False`, i.e. running the file's code: never relay it. The one home of this wording
    (checkpoints here, pretrained weights in `reid.models.pretrained`)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if not found:
        return "is unreadable: its pickle data do not parse as tensors and plain data"
    return (f"holds pickled Python objects and is refused as unsafe: it names the Python object {found.group(1)}, "
            "and only tensors and plain data are loaded (reading it could run code)")


def load_checkpoint(path: str | os.PathLike, map_location="cpu", required=("model",), mmap: bool = False) -> dict:
    """Read a checkpoint written by `save_checkpoint`; any problem is a `UserError` naming the file.

    `mmap`: the tensors are mapped, not read (pages come from disk only when touched): for a decision that
    needs a checkpoint's epoch, config or best epoch but not its weights. Drop the dict before the file is
    replaced: a mapping keeps the old file's blocks on disk."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UserError(f"checkpoint {path} {pickle_refusal(err)}; use a checkpoint written by this package "
                        "(python -m reid train)") from None
    except Exception as err:  # noqa: BLE001 -- any read failure (truncated, not torch) becomes a UserError
        text = ANSI_ESCAPE.sub("", str(err)).strip()  # torch colours some messages: keep the line plain
        first_line = text.splitlines()[0] if text else type(err).__name__
        raise UserError(f"cannot read checkpoint {path}: {first_line}") from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    missing = [k for k in required if k not in state]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)} (keys present: {sorted(state)})")
    return state
