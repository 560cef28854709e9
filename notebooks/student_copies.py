"""Write the student copies: every numbered notebook made into a copy to work through, in notebooks/clean/.

A copy keeps the headings, the code, the exercises and the questionnaire, so that "predict, then run" and
"recall, then check" mean something (fastbook's `clean/` folder); what would give the results away goes:

- every output, execution count and widget state;
- every markdown cell marked `<!-- reference-run -->` (prose that reads the reference run's numbers) is
  replaced by its `<!-- student: ... -->` block when it has one (the same reading with "your number: ___"
  blanks), else by a generic "write down what your run shows" prompt; a heading the cell opens with stays;
- every code line marked `# fill in` keeps its name and its comment, its value becomes `...`: the
  `assert` below it passes once the student has filled it in (Karpathy's notebooks);
- the pointer to `notebooks/answers/` (the student lab, `make lab-student`, serves the copies only).

`make notebooks` runs this after re-executing the originals; `tests/test_notebooks_course.py` fails when a
copy is out of step with its original.

    python notebooks/student_copies.py            # (re)write notebooks/clean/*.ipynb
"""

import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTE = ("**Student copy**: no outputs, and no sentence that gives a result away: predict, run, then write "
        "down what *your* run shows where it says \"your number: ___\". Cells with `...  # fill in` are "
        "yours to complete; the `assert` below each tells you when it is right. The questionnaire at the end "
        "is for recall: answer it without scrolling up. The original of this copy is `notebooks/{name}`.")
REFERENCE_RUN = "<!-- reference-run -->"
STUDENT_BLOCK = re.compile(r"<!-- student:\s*(.*?)\s*-->", re.DOTALL)
GENERIC = ("**Your run.** The original notebook reads the reference run's numbers here. Read the output "
           "above and write down what your run shows (your number: ___), and what it means, before you "
           "compare with the original.")
FILL_IN = re.compile(r"^(\s*[A-Za-z_][\w.]*\s*=\s*)(.+?)(\s+# fill in\b.*)$")
ANSWERS = re.compile(r"^Answers: `notebooks/answers/[^`]+`.*$", re.MULTILINE)
ANSWERS_NOTE = "Answers: your teacher has them."
REFRESH = re.compile(r"<!-- REFRESH:.*?-->\n?", re.DOTALL)  # notes for whoever re-executes the originals


def _markdown(text: str) -> str:
    if REFERENCE_RUN in text:
        block = STUDENT_BLOCK.search(text)
        heading = [line for line in text.splitlines()[:1] if line.startswith("#")]
        text = "\n\n".join(heading + [block.group(1) if block else GENERIC])
    return ANSWERS.sub(ANSWERS_NOTE, REFRESH.sub("", text))


def _code(text: str) -> str:
    return "\n".join(FILL_IN.sub(r"\1...\3", line) for line in text.split("\n"))


def student_copy(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path` as a student copy (the module's docstring says what goes), with a first note."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.source = _code(cell.source)
        elif cell.cell_type == "markdown":
            cell.source = _markdown(cell.source)
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
