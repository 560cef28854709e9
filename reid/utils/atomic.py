"""Outputs written whole or not at all: a temporary file beside each output, renamed over it at the end.

    with atomic_outputs([out / "a.png", out / "b.json"], "--out") as (a, b):
        fig.savefig(a)            # any writer that takes a path: np.save, savefig, onnx's save, write_text
        b.write_text("...")
    # here both outputs are in place; if anything above failed (a full disk, `ulimit -f`, a bug, Ctrl-C),
    # neither was touched and the temporary files are gone

A rename within one folder is atomic, so a reader sees the old file or the new one, never half of one.
The temporary names keep the output's suffix (matplotlib and numpy choose the format from it) and start
with a dot (hidden: the dataset readers and `git status` of results/ figures/ skip them). A full disk or
an unwritable folder is a one-line `UserError` naming the outputs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from reid.utils.errors import UserError


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside `path` with the same suffix: unique per process and call, so two
    processes writing the same output never write into the same temporary file."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


@contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike], label: str = "output") -> Iterator[list[Path]]:
    """Yield one temporary path per output; when the block ends without error, rename each over its
    output (in order). On any error the temporary files are removed and the outputs are left as they
    were; an OSError (ENOSPC, EFBIG, EACCES, ...) becomes a `UserError` naming `label` and the outputs."""
    paths = [Path(p) for p in paths]
    temps = [temp_path(p) for p in paths]
    try:
        for folder in dict.fromkeys(p.parent for p in paths):
            folder.mkdir(parents=True, exist_ok=True)
        yield temps
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"{label}: cannot write {', '.join(str(p) for p in paths)} ({err.strerror or err}); "
                        "any earlier file there is left as it was") from None
    finally:
        for tmp in temps:  # after a success they are renamed already: nothing to remove
            tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str, label: str = "output") -> Path:
    """`Path(path).write_text(text)`, whole or not at all."""
    with atomic_outputs([path], label) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def file_lock(path: str | os.PathLike, shared: bool = False) -> Iterator[bool]:
    """Hold an `flock` on `path` (created when missing, an empty file) while the block runs: exclusive, or
    shared among readers. Yields True while held; False where no lock can be taken (no fcntl on Windows, or
    a folder that cannot be written, which no other process can be writing either). Two processes that
    would write the same output take turns through it."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    try:
        handle = open(path, "a")  # noqa: SIM115 -- closed below, after the unlock
    except OSError:
        yield False
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
