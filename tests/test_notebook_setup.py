"""The notebooks' front door: the first cell clones the repository where there is none (Colab, a notebook opened
alone), and the `REID_*` switch has one table (docs/notebooks.md) that lists what `settings()` reads."""

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def first_cells() -> dict[str, str]:
    """{notebook path: source of its first code cell}, for the nine notebooks and their student copies."""
    cells = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted((NOTEBOOKS / "clean").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells[str(path.relative_to(ROOT))] = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    return cells


def test_the_eighteen_first_cells_are_one_cell_and_docs_notebooks_shows_it():
    cells = first_cells()
    assert len(cells) == 18
    assert len(set(cells.values())) == 1, "the notebooks' first cells differ: change them identically"
    cell = next(iter(cells.values()))
    page = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    assert f"```python\n{cell}\n```" in page, "docs/notebooks.md does not show the notebooks' first cell"


def _run_cell_body(cwd: Path, url: str) -> subprocess.CompletedProcess:
    """The first cell with `import reid` in place of setup() (which would install and generate data), in a
    fresh Python, in `cwd`, with REID_REPO_URL=url. The cell holds no IPython magic: in a bare Jupyter
    `%matplotlib inline` fails before anything is installed (setup() turns the inline backend on after)."""
    lines = next(iter(first_cells().values())).splitlines()
    assert not any(line.lstrip().startswith("%") for line in lines) and lines[-1].startswith("from reid.notebook import setup")
    body = "\n".join(lines[:-1]) + "\nimport reid.notebook\nprint(reid.notebook.ROOT)\nprint(os.getcwd())\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["REID_REPO_URL"] = url
    return subprocess.run([sys.executable, "-c", body], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a git checkout")
def test_outside_a_repository_the_first_cell_clones_it_and_imports_its_reid(tmp_path):
    """Colab's route, with this repository's file:// URL in place of GitHub's: clone, move into the clone's
    notebooks/, import the clone's `reid` (not the one installed in this Python); a second run clones nothing."""
    outside = tmp_path / "content"  # Colab's working folder; no repository above it
    outside.mkdir()
    assert not any((p / "reid" / "notebook.py").is_file() for p in (outside, *outside.parents))
    out = _run_cell_body(outside, ROOT.as_uri())
    assert out.returncode == 0, out.stderr
    clone = outside / "crossvit-vireid"
    assert out.stdout.split("\n")[:2] == [str(clone), str(clone / "notebooks")], out.stdout
    assert (clone / ".git").is_dir() and (clone / "reid" / "notebook.py").is_file()

    again = _run_cell_body(outside, "file:///nonexistent")  # a clone is there already: git is not run
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\n")[0] == str(clone)


def test_inside_the_repository_the_first_cell_clones_nothing(tmp_path):
    for folder in (NOTEBOOKS, NOTEBOOKS / "clean"):
        out = _run_cell_body(folder, "file:///nonexistent")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:2] == [str(ROOT), str(folder)]
    assert not (NOTEBOOKS / "crossvit-vireid").exists()


# ---------------------------------------------------------------------------------------- the switch

class _Recording(dict):
    """An environment that remembers every name looked up in it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _switch_table() -> dict[str, str]:
    """{variable: its row} from docs/notebooks.md's table under "The switch"."""
    page = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    section = page.split("## The switch", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `REID_"):
            for name in re.findall(r"`(REID_[A-Z_]+)`", line.split("|")[1]):
                rows[name] = line
    return rows


def test_the_switch_table_lists_exactly_what_settings_reads(tmp_path):
    from reid import experiments

    (tmp_path / "sysu").mkdir()
    (tmp_path / "regdb").mkdir()
    environ = _Recording({"REID_SYSU_ROOT": str(tmp_path / "sysu"), "REID_REGDB_ROOT": str(tmp_path / "regdb")})
    experiments.settings(environ)  # real-data roots: nothing is generated
    read = {name for name in environ.read if name.startswith("REID_")}
    quoted = set(re.findall(r'"(REID_[A-Z_]+)"', inspect.getsource(experiments.settings)))
    table = _switch_table()
    assert set(table) == read | quoted, (
        f"docs/notebooks.md's REID_* table and settings() disagree: only in the table {sorted(set(table) - read - quoted)}, "
        f"only in settings() {sorted((read | quoted) - set(table))}")


def test_the_switch_table_names_every_profile():
    from reid.experiments import PAPER_PROFILES

    row = _switch_table()["REID_PROFILE"]
    for profile in ("smoke", *PAPER_PROFILES):
        assert f"`{profile}`" in row, f"REID_PROFILE's row lacks {profile}"
