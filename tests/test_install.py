"""reid/install.py on fake trees written here: another project's `reid` first on sys.path, one further down,
a stale or copied install of crossvit-vireid; and the two places the check runs (the CLI, the file by path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reid.install import DISTRIBUTION, PACKAGE_DIR, check_package

REPO = str(PACKAGE_DIR.parent)


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> str:
    """A sys.path entry holding only this package (a link to it): the repository root itself may also hold
    pip's `*.egg-info` of whatever was installed there, which would make these checks depend on the machine."""
    base = tmp_path_factory.mktemp("ours")
    (base / "reid").symlink_to(PACKAGE_DIR, target_is_directory=True)
    return str(base)


def foreign_reid(base: Path) -> Path:
    """A package shaped like PyPI's other `reid`: a ReIDModel and a data/ folder, none of our files."""
    (base / "reid" / "data").mkdir(parents=True)
    (base / "reid" / "__init__.py").write_text("class ReIDModel:\n    pass\n")
    (base / "reid" / "data" / "__init__.py").write_text("")
    return base


def dist_info(site: Path, name: str, version: str = "0.1.0", editable_from: Path | None = None) -> Path:
    """An installed distribution's metadata folder, as pip writes it (editable: direct_url.json)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if editable_from is not None:
        (info / "direct_url.json").write_text(json.dumps({"url": editable_from.as_uri(), "dir_info": {"editable": True}}))
    return site


def test_this_repository_first_is_fine(tmp_path, ours):
    check = check_package([ours, str(tmp_path)])
    assert check.imported.folder == PACKAGE_DIR and not check.problems and not check.warnings


def test_foreign_reid_first_is_a_problem_naming_it(tmp_path, ours):
    foreign = foreign_reid(tmp_path / "elsewhere")
    check = check_package([str(foreign), ours])
    assert len(check.problems) == 1
    line = check.problems[0]
    assert str(foreign / "reid") in line and "not this repository's" in line and "\n" not in line
    assert f"take {foreign} off sys.path" in line and f"`python -m reid` from the repository root {REPO}" in line


def test_foreign_distribution_says_what_to_uninstall(tmp_path, ours):
    site = dist_info(foreign_reid(tmp_path / "site"), "reid", "0.3.0")
    check = check_package([str(site), ours])
    assert "distribution reid 0.3.0" in check.problems[0] and "`pip uninstall reid`" in check.problems[0]


def test_foreign_reid_further_down_is_a_warning(tmp_path, ours):
    foreign = foreign_reid(tmp_path / "site")
    check = check_package([ours, str(foreign)])
    assert not check.problems and len(check.warnings) == 1
    assert str(foreign / "reid") in check.warnings[0] and "from another folder" in check.warnings[0]


def test_stale_editable_install_is_a_warning(tmp_path, ours):
    site = dist_info(tmp_path / "site", DISTRIBUTION, editable_from=tmp_path / "moved-clone")
    check = check_package([ours, str(site)])
    assert not check.problems
    assert any(str(tmp_path / "moved-clone" / "reid") in w and "no longer holds" in w for w in check.warnings)


def our_package(folder: Path) -> Path:
    """The two marker files of this repository's reid/ (any version of it has them)."""
    (folder / "configs").mkdir(parents=True)
    (folder / "experiments.py").write_text("")
    return folder


def test_copy_install_warns_and_another_checkout_is_a_note(tmp_path, ours):
    site = dist_info(tmp_path / "site", DISTRIBUTION)
    our_package(site / "reid")  # what `pip install .` (not -e) copies into site-packages
    check = check_package([ours, str(site)])
    assert any(f"installed as a copy at {site / 'reid'}" in w for w in check.warnings)
    other = our_package(tmp_path / "other-clone" / "reid")
    check = check_package([ours, str(dist_info(tmp_path / "site2", DISTRIBUTION, editable_from=other.parent))])
    assert not check.warnings and any(f"another checkout, {other}" in n for n in check.notes)


def run(args, pythonpath, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)


def test_file_by_path_names_a_foreign_reid_that_wins(tmp_path):
    """When another `reid` comes first and nothing is installed (-S: no site-packages), `python -m reid`
    cannot run our check at all; reid/install.py run by its path still can."""
    foreign = foreign_reid(tmp_path / "elsewhere")
    proc = run(["-S", "-m", "reid", "--help"], [foreign, REPO], tmp_path)
    assert proc.returncode != 0 and "No module named reid.__main__" in proc.stderr
    proc = run(["-S", str(PACKAGE_DIR / "install.py")], [foreign, REPO], tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and str(foreign / "reid") in proc.stderr and "Traceback" not in proc.stderr


def test_cli_refuses_a_foreign_reid_mixed_with_ours(tmp_path):
    """What an editable install does when another `reid` comes first: `reid` from there, `reid.cli` from ours."""
    foreign = foreign_reid(tmp_path / "elsewhere")
    script = (f"import sys; sys.path.insert(0, {str(foreign)!r}); import reid; reid.__path__.append({str(PACKAGE_DIR)!r}); "
              "from reid.cli import main; sys.exit(main(['train', '--output-dir', 'x']))")
    proc = run(["-c", script], [REPO], tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: `import reid` gives another package named reid at {foreign / 'reid'}")


@pytest.mark.slow
def test_cli_warns_about_a_shadowed_foreign_reid(tmp_path):
    foreign = foreign_reid(tmp_path / "site")
    proc = run(["-m", "reid", "train", "--data", str(tmp_path / "gone"), "--output-dir", str(tmp_path / "out")],
               [REPO, foreign], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2
    assert lines[0].startswith("warning: another package named reid") and str(foreign / "reid") in lines[0]
    assert lines[1].startswith("error: ") and "gone" in lines[1]


# ------------------------------------------------------------------------------ make ... TORCH=system (issue 33)

def test_system_torch_constraints_pin_the_installed_torch_and_free_or_pin_torchvision():
    from reid.install import system_torch_constraints, torch_minimum

    pinned = (Path(REPO) / "constraints.txt").read_text()
    minimum = torch_minimum((Path(REPO) / "pyproject.toml").read_text())
    assert minimum == "2.4"
    out = system_torch_constraints(pinned, {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121"}, minimum)
    assert "torch==2.5.1+cu121  #" in out and "torchvision==0.20.1+cu121  #" in out
    assert "torch==2.14.1" not in out and "timm==" in out  # the rest stays pinned
    out = system_torch_constraints(pinned, {"torch": "2.6.0", "torchvision": None}, minimum)
    assert "torch==2.6.0  #" in out
    assert not any(line.startswith("torchvision") for line in out.splitlines())


def test_system_torch_refuses_no_torch_or_one_too_old_in_one_line():
    from reid.install import system_torch_constraints

    with pytest.raises(ValueError, match="this python has no torch installed"):
        system_torch_constraints("torch==2.14.1\n", {"torch": None}, "2.4")
    with pytest.raises(ValueError, match=r"the system's torch is 2.3.1\+cu121; this repository needs torch>=2.4"):
        system_torch_constraints("torch==2.14.1\n", {"torch": "2.3.1+cu121"}, "2.4")


def test_a_venv_with_its_own_torch_is_refused_under_torch_system():
    """The torch of this interpreter lives in some folder: that folder as the venv's prefix is a venv with its
    own torch (refused); any other prefix is a venv that imports the system's (named)."""
    from importlib.metadata import distribution

    from reid.install import check_system_torch

    where = Path(distribution("torch").locate_file("")).resolve()
    with pytest.raises(ValueError, match="holds its own torch .* shadows the system's"):
        check_system_torch(where.parent)
    assert check_system_torch(Path("/nonexistent/venv")).startswith("TORCH=system: the venv imports the system's torch")


def test_make_torch_system_makes_a_venv_on_the_system_site_packages():
    """`make -n` (nothing run): the venv sees the system's packages and pip installs under the generated
    constraints, checked before and after; without TORCH the pinned constraints, as before."""
    def plan(*args):
        return subprocess.run(["make", "-n", "install", "VENV=/tmp/v", *args], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout

    system, pinned = plan("TORCH=system"), plan()
    assert "-m venv --system-site-packages /tmp/v" in system
    assert "reid/install.py --system-torch-constraints > /tmp/v/constraints-system-torch.txt" in system
    assert '-c /tmp/v/constraints-system-torch.txt -e ".[dev]"' in system
    assert system.count("reid/install.py --check-system-torch") == 2
    assert "--system-site-packages" not in pinned and '-c constraints.txt -e ".[dev]"' in pinned
