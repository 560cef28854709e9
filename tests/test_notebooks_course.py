"""The notebooks as course material: student copies in step with the originals, answers true to the outputs."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _student_copies():
    spec = importlib.util.spec_from_file_location("student_copies", NOTEBOOKS / "student_copies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_copies_are_in_step_with_the_originals():
    copies = _student_copies()
    originals = copies.originals()
    assert len(originals) == 9
    assert sorted(p.name for p in (NOTEBOOKS / "clean").glob("*.ipynb")) == [p.name for p in originals]
    for path in originals:
        expected = copies.render(copies.student_copy(path))
        assert (NOTEBOOKS / "clean" / path.name).read_text(encoding="utf-8") == expected, (
            f"notebooks/clean/{path.name} is out of step with its original: run python notebooks/student_copies.py")
        stripped = json.loads(expected)
        assert not [c for c in stripped["cells"] if c["cell_type"] == "code" and c["outputs"]]


def _notebook_text(path: Path) -> str:
    """Everything a reader of the committed notebook sees: markdown, code and the text of every output."""
    parts = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for kind in ("text/plain", "text/html", "text/markdown"):
                parts.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(parts)


# Numbers an answer derives rather than quotes (checked by hand, with what they are).
DERIVED = {
    "03_training": {"5.74": "log 310"},
    "07_table4_losses": {"5e-5": "0.1 x 5e-4"},
}
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


def test_every_number_an_answer_quotes_is_in_its_notebook():
    """An answer's decimal numbers appear in its notebook's committed outputs or text, or in those of a
    notebook it names ("notebook 07"), or are derived (above)."""
    answers = sorted((NOTEBOOKS / "answers").glob("[0-9][0-9]_*.md"))
    assert len(answers) == 9
    missing = []
    for answer in answers:
        body = answer.read_text(encoding="utf-8")
        named = {answer.stem[:2], *re.findall(r"notebook (\d\d)", body)}
        text = "\n".join(_notebook_text(p) for n in sorted(named) for p in NOTEBOOKS.glob(f"{n}_*.ipynb"))
        derived = DERIVED.get(answer.stem, {})
        for number in sorted(set(NUMBER.findall(body))):
            if number not in derived and not re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", text):
                missing.append(f"{answer.name}: {number}")
    assert not missing, "answers quote numbers their notebooks no longer show: " + ", ".join(missing)


def test_every_notebook_opens_with_the_one_setup_call():
    """The first code cell finds (or clones) this repository, then calls the library's setup (install, this
    repository's reid, the switch), nothing else; tests/test_notebook_setup.py runs it."""
    copies = _student_copies()
    for path in copies.originals():
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first = next(c for c in cells if c["cell_type"] == "code")
        lines = "".join(first["source"]).splitlines()
        assert lines[-1].startswith("from reid.notebook import setup; S = setup()"), path.name
        assert len(lines) <= 8 and not any("pip" in line for line in lines), path.name


def test_setup_refuses_the_reid_of_another_repository(tmp_path):
    from reid.notebook import ROOT, check_this_repository

    check_this_repository(ROOT / "notebooks")  # this repository: fine
    other = tmp_path / "other-clone"
    (other / "notebooks").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(ImportError, match="not this repository's"):
        check_this_repository(other / "notebooks")


def test_setup_reads_the_switch_and_sets_a_readable_figure_size(capsys):
    import matplotlib.pyplot as plt

    from reid.notebook import setup

    S = setup(inline_dpi=100, threads=1, environ={"REID_SEEDS": "0,1"})
    assert S.seeds == (0, 1) and plt.rcParams["figure.dpi"] == 100
    assert "seeds: (0, 1)" in capsys.readouterr().out


def test_student_copies_validate_every_original_before_writing(tmp_path, capsys):
    """Issue 34, case 15: a damaged notebook was a traceback naming no file, after earlier copies had been
    rewritten in place."""
    copies = _student_copies()
    folder, out = tmp_path / "notebooks", tmp_path / "clean"
    folder.mkdir()
    out.mkdir()
    first = copies.originals()[0]
    (folder / first.name).write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "99_damaged.ipynb").write_text('{"cells": [', encoding="utf-8")
    (out / first.name).write_text("the earlier copy", encoding="utf-8")
    assert copies.main(out, folder) == 2
    err = capsys.readouterr().err.strip()
    assert f"{folder / '99_damaged.ipynb'}: not a readable notebook" in err and len(err.splitlines()) == 1
    assert (out / first.name).read_text(encoding="utf-8") == "the earlier copy"  # nothing written
    (folder / "99_damaged.ipynb").unlink()
    assert copies.main(out, folder) == 0
    assert (out / first.name).read_text(encoding="utf-8") == copies.render(copies.student_copy(first))
    assert sorted(p.name for p in out.iterdir()) == [first.name]  # no temporary file left
