"""The layout of docs/architecture.md is the package's: one module list, and no import from a higher floor."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (\d+) \| `(reid/[\w/]+\.py)` \|")


def floors() -> dict[str, int]:
    """{module path: floor} from the module table of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    return {m.group(2): int(m.group(1)) for line in text.splitlines() if (m := ROW.match(line))}


def modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "reid").rglob("*.py") if p.name != "__init__.py"}


def imported(path: Path) -> set[str]:
    """Every `reid.*` module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from reid.data import check`
    return {n for n in names if n.startswith("reid.")}


def target(name: str, floor: dict[str, int]) -> tuple[str, int] | None:
    """The file or package (`reid/data/`) a dotted name stands for, and its floor; None for a name inside a
    module (`reid.data.TrainData`)."""
    path = name.replace(".", "/")
    if f"{path}.py" in floor:
        return f"{path}.py", floor[f"{path}.py"]
    members = {f for f in floor if f.startswith(path + "/")}
    if members:
        (level,) = {floor[f] for f in members}  # a package lives on one floor
        return path + "/", level
    return None


def test_the_module_list_names_every_module_once():
    listed = floors()
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert len(listed) == sum(bool(ROW.match(line)) for line in text.splitlines())  # no module twice
    assert set(listed) == modules(), (set(listed) ^ modules())


def test_no_module_imports_from_a_higher_floor_or_a_neighbour_on_its_own():
    floor = floors()
    wrong = []
    for module, level in floor.items():
        package = module.rsplit("/", 1)[0] + "/"
        for name in imported(ROOT / module):
            hit = target(name, floor)
            if hit is None:
                continue
            where, other = hit
            same_package = package != "reid/" and (where == package or where.startswith(package))
            if other > level or (other == level and not same_package and where != module):
                wrong.append(f"{module} (floor {level}) imports {name} (floor {other})")
    assert not wrong, "\n".join(wrong)


def test_the_check_fails_on_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from reid.experiments import resolve\n")
    assert "reid.experiments" in imported(bad)
    assert target("reid.experiments", floors())[1] > floors()["reid/data/sysu.py"]
