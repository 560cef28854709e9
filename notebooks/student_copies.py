"""Write the student copies: every numbered notebook with its outputs stripped, into notebooks/clean/.

A student who opens a clean copy sees the code and the questions but no result, so "predict, then run"
means something (fastbook's `clean/` folder). `make notebooks` runs this after re-executing the
originals; `tests/test_notebooks_course.py` fails when a copy is out of step with its original.

    python notebooks/student_copies.py            # (re)write notebooks/clean/*.ipynb
"""

import os
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTE = ("**Student copy**: the outputs are stripped so that you can predict before you run. The original, "
        "with its committed outputs, is `notebooks/{name}`; answers are in `notebooks/answers/`.")


def student_copy(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path` without outputs, execution counts or widget state, with a first note."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    note = nbformat.v4.new_markdown_cell(NOTE.format(name=path.name))
    note.id = "student-copy-note"  # fixed, so that a copy is a function of its original only
    nb.cells.insert(0, note)
    return nb


def originals(folder: Path = HERE) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` whole or not at all: a hidden temporary file beside it, renamed at the end."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the copy private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(out: Path = HERE / "clean", folder: Path = HERE) -> int:
    """Every copy is made (each original read and validated) before the first one is written, and each is
    written atomically: a damaged original is one line naming it, and no copy is touched."""
    copies = {}
    for path in originals(folder):
        try:
            copies[path.name] = render(student_copy(path))
        except Exception as err:  # noqa: BLE001 -- nbformat raises JSON, validation and OS errors alike
            text = str(err).strip().splitlines()
            print(f"error: {path}: not a readable notebook ({type(err).__name__}: {text[0] if text else ''}); "
                  "no student copy was written", file=sys.stderr)
            return 2
    out.mkdir(exist_ok=True)
    for name, text in copies.items():
        write_atomically(out / name, text)
    print(f"{len(copies)} student copies in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
