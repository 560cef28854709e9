"""Is the `reid` that Python imports this repository's package? `check_package()` says so in one line.

The import name `reid` is shared: PyPI's distribution `reid` (Roboflow's re-ID library) also installs a
top-level `reid` package (with a `ReIDModel` and a `reid/data/` folder). This repository's distribution is
therefore called `crossvit-vireid` (pyproject.toml), while its import name stays `reid`.

What can be detected, and from where:
- `python -m reid ...` runs whichever `reid` Python finds first. From the repository root that is this
  checkout (Python puts the working folder first); elsewhere the first `reid` on sys.path (PYTHONPATH,
  site-packages), and only then an editable install (setuptools' import hook comes after sys.path).
- When another project's `reid` wins and this repository is not installed in editable mode, none of this
  code runs: Python says "No module named reid.__main__" (or runs that package). Nothing here can catch
  that, except this file run by its path, which imports nothing from `reid`:
  `python <repository>/reid/install.py`.
- With an editable install, Python imports `reid` itself from the other package but still finds
  `reid.__main__` and `reid.cli` through the install: a mix of two packages. The CLI's check catches it
  (the imported `reid` is not this one): one line, exit 2.
- When this package does run (every CLI command calls `check_package` first), it also sees what bites
  elsewhere: another `reid` further down sys.path (it wins outside the repository), and an installed
  `crossvit-vireid` whose recorded folder no longer holds this package (a moved or deleted clone) or
  that is a copy (`pip install .`, not `-e`) rather than this checkout. These are warnings.

`make install TORCH=system` (and every make target with `TORCH=system`) keeps the torch the machine already
has instead of the pinned wheel, whose CUDA build may need a newer driver than a cluster's: the venv sees the
system's site-packages, and pip installs the rest under constraints that pin torch (and torchvision, when
there is one) to the versions already there (`system_torch_constraints`); `check_system_torch` then says
which torch the venv imports, and refuses a venv that holds its own.

This module uses the standard library only, so that it runs by its path whichever `reid` is installed
(and by the machine's own python3, before the venv exists).
"""

from __future__ import annotations

import importlib.machinery
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

DISTRIBUTION = "crossvit-vireid"  # pip's name for this repository (pyproject.toml [project] name)
FORMER_DISTRIBUTION = "reid"  # this repository's name before; also PyPI's other `reid`
PACKAGE_DIR = Path(__file__).resolve().parent
# Files every version of this repository's reid/ has and the PyPI `reid` does not.
MARKERS = ("experiments.py", "configs")


def is_this_package(folder: Path) -> bool:
    """Does `folder` hold this repository's `reid` package (any checkout of it)?"""
    return (folder / MARKERS[0]).is_file() and (folder / MARKERS[1]).is_dir()


@dataclass(frozen=True)
class Found:
    folder: Path  # the package folder (or the module file of a single-file `reid.py`)
    via: str  # why Python finds it there: a sys.path entry or an import hook


def candidates(path: list[str] | None = None) -> list[Found]:
    """Every top-level `reid` the import system can find, in the order it tries them (first one wins).

    `path=None` is this interpreter: sys.meta_path in order, with sys.path where the path finder scans it,
    so editable-install hooks count too. A list examines only those sys.path entries (for tests)."""
    hooks = [importlib.machinery.PathFinder] if path is not None else sys.meta_path
    out: list[Found] = []
    for hook in hooks:
        if hook is importlib.machinery.PathFinder:
            out += [found for entry in (sys.path if path is None else path) if (found := _on_path(entry))]
        elif hook not in (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter):
            try:
                spec = hook.find_spec("reid", None)
            except (ImportError, AttributeError, TypeError, ValueError, OSError):  # a hook that cannot say
                spec = None
            if spec is not None and spec.origin:
                origin = Path(spec.origin).resolve()
                folder = origin.parent if origin.name == "__init__.py" else origin
                out.append(Found(folder, f"import hook {getattr(hook, '__name__', type(hook).__name__)}"))
    return out


def _on_path(entry: str) -> Found | None:
    base = Path(entry or ".")
    if (base / "reid" / "__init__.py").is_file():
        return Found((base / "reid").resolve(), f"sys.path entry {base.resolve()}")
    if (base / "reid.py").is_file():
        return Found((base / "reid.py").resolve(), f"sys.path entry {base.resolve()}")
    return None


def installed(name: str, path: list[str] | None = None) -> tuple[Path, str, str] | None:
    """(the `reid` folder it provides, "editable" | "copy", version) of an installed distribution, or None."""
    from importlib.metadata import distributions

    dist = next(iter(distributions(name=name, **({} if path is None else {"path": path}))), None)
    if dist is None:
        return None
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        url = {}
    if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file:"):
        return Path(url2pathname(urlparse(url["url"]).path)).resolve() / "reid", "editable", dist.version
    return Path(dist.locate_file("reid")).resolve(), "copy", dist.version


def _owner(folder: Path, path: list[str] | None) -> str | None:
    """The installed distribution (name and version) that put `folder` there, when one did."""
    from importlib.metadata import packages_distributions

    # packages_distributions() reads sys.path; on a given path (tests) the two names that matter here.
    names = packages_distributions().get("reid", []) if path is None else [FORMER_DISTRIBUTION, DISTRIBUTION]
    for name in dict.fromkeys(names):
        where = installed(name, path)
        if where and where[0] == folder:
            return f"{name} {where[2]}"
    return None


def _fix(other: Found, path: list[str] | None) -> tuple[str, str]:
    """(what `other` is, how to get rid of it) for a `reid` that is not this repository's."""
    owner = _owner(other.folder, path)
    what = f"another package named reid{f' (distribution {owner})' if owner else ''} at {other.folder}"
    if owner:
        fix = f"`pip uninstall {owner.split()[0]}`"
    elif other.via.startswith("sys.path entry"):
        fix = f"take {other.via.removeprefix('sys.path entry ')} off sys.path (PYTHONPATH)"
    else:
        fix = f"uninstall what installed {other.via}"
    return what, fix


@dataclass
class PackageCheck:
    """`problems`: the `reid` Python imports is not this package. `warnings`: it is, but something will
    give another one elsewhere. `notes`: harmless facts (another checkout installed, not installed)."""

    imported: Found | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_package(path: list[str] | None = None, package_dir: Path = PACKAGE_DIR) -> PackageCheck:
    """Which `reid` does `import reid` give here, and is it this repository's (`package_dir`)?

    In this interpreter (`path=None`) the `reid` already imported counts first: with an editable install,
    another `reid` found earlier on sys.path is imported while `reid.cli` still comes from the install."""
    repo = package_dir.parent
    found = candidates(path)
    module = sys.modules.get("reid") if path is None else None
    if module is not None and getattr(module, "__file__", None):
        origin = Path(module.__file__).resolve()
        folder = origin.parent if origin.name == "__init__.py" else origin
        found = [next((f for f in found if f.folder == folder), Found(folder, "already imported"))] + \
            [f for f in found if f.folder != folder]
    check = PackageCheck(found[0] if found else None)
    if not found:
        check.warnings.append(f"`import reid` finds no package here; run from the repository root {repo} "
                              f"or install it there with `pip install -e .`")
    for n, other in enumerate(found):
        if is_this_package(other.folder):
            if n == 0 and other.folder != package_dir:
                check.notes.append(f"`import reid` gives another checkout of this repository: {other.folder} "
                                   f"({other.via}), not {package_dir}")
            continue
        what, fix = _fix(other, path)
        if n == 0:
            check.problems.append(f"`import reid` gives {what} ({other.via}), not this repository's {package_dir}: "
                                  f"{fix}, or use `python -m reid` from the repository root {repo}")
        else:
            check.warnings.append(f"{what} is installed too: this repository's reid comes first here, but from "
                                  f"another folder (or the `reid` command) `import reid` gives that one: {fix}")
    install, former = installed(DISTRIBUTION, path), installed(FORMER_DISTRIBUTION, path)
    if former and is_this_package(former[0]):
        check.notes.append(f"this repository is installed under its former distribution name "
                           f"'{FORMER_DISTRIBUTION}' ({former[0]}): `pip uninstall {FORMER_DISTRIBUTION}`, then "
                           f"`pip install -e .` in {repo}")
    elif install is None:
        check.notes.append(f"{DISTRIBUTION} is not installed: `import reid` works from {repo} only "
                           "(`pip install -e .` there)")
    else:
        folder, kind, version = install
        if not is_this_package(folder):
            check.warnings.append(f"the installed {DISTRIBUTION} {version} points to {folder}, which no longer "
                                  f"holds this package (moved or deleted?): `pip install -e .` in {repo}")
        elif folder != package_dir and kind == "copy":
            check.warnings.append(f"{DISTRIBUTION} {version} is installed as a copy at {folder} (`pip install .`, "
                                  f"not `-e`): outside {repo} `import reid` gives that copy, whose results record "
                                  f"no commit: `pip install -e .` in {repo}")
        elif folder != package_dir:
            check.notes.append(f"{DISTRIBUTION} is installed from another checkout, {folder}: outside {repo}, "
                               "`import reid` and the `reid` command run that one")
    return check


# The pinned wheels that TORCH=system replaces with the machine's own: torchvision's builds each require one
# exact torch, so it follows torch (the system's torchvision, or whichever release fits the system's torch).
TORCH_PACKAGES = ("torch", "torchvision")


def _release(version: str) -> tuple[int, ...]:
    """(2, 3, 1) of "2.3.1+cu121": the numbers pip compares, without the local build label."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3])


def system_torch_constraints(constraints: str, versions: dict[str, str | None], minimum: str) -> str:
    """`constraints` (constraints.txt's text) with torch pinned to the installed `versions["torch"]`, and
    torchvision to its installed version or left free (pip then picks the release built for that torch).
    ValueError, in one line, when there is no torch or it is older than `minimum` (pyproject.toml's)."""
    torch = versions.get("torch")
    if torch is None:
        raise ValueError("TORCH=system: this python has no torch installed (install it, or leave TORCH unset "
                         "for the pinned wheel)")
    if _release(torch) < _release(minimum):
        raise ValueError(f"TORCH=system: the system's torch is {torch}; this repository needs torch>={minimum} "
                         "(pyproject.toml): upgrade it, or leave TORCH unset for the pinned wheel")
    lines = []
    for line in constraints.splitlines():
        name = line.split("==")[0].strip()
        if name in TORCH_PACKAGES:
            if versions.get(name):
                lines.append(f"{name}=={versions[name]}  # TORCH=system: the version already installed")
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def torch_minimum(pyproject: str) -> str:
    """The lowest torch pyproject.toml's dependencies allow (one home for it)."""
    found = re.search(r'"torch>=([\d.]+)', pyproject)
    if not found:
        raise ValueError("pyproject.toml: no torch>= requirement found")
    return found.group(1)


def _installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_system_torch(prefix: Path | None = None) -> str:
    """One line naming the torch this interpreter (the venv's) imports, from the system's site-packages;
    ValueError when the venv holds a torch of its own, which would shadow the system's (a venv made
    before without TORCH=system)."""
    from importlib.metadata import PackageNotFoundError, distribution

    prefix = Path(sys.prefix if prefix is None else prefix).resolve()
    try:
        dist = distribution("torch")
    except PackageNotFoundError:
        raise ValueError("TORCH=system: the venv sees no torch (was it made with --system-site-packages?): "
                         f"remove {prefix} and run make again") from None
    where = Path(dist.locate_file("")).resolve()
    if where == prefix or prefix in where.parents:
        raise ValueError(f"TORCH=system: {prefix} holds its own torch {dist.version} ({where}), which shadows the "
                         f"system's: remove {prefix} and run make again with TORCH=system")
    return f"TORCH=system: the venv imports the system's torch {dist.version} from {where}"


def _make_step(argv: list[str]) -> int:
    """The two steps of `make ... TORCH=system` (Makefile): the constraints, then the check of the venv."""
    try:
        if argv[0] == "--system-torch-constraints":
            repo = PACKAGE_DIR.parent
            minimum = torch_minimum((repo / "pyproject.toml").read_text())
            versions = {name: _installed_version(name) for name in TORCH_PACKAGES}
            sys.stdout.write(system_torch_constraints((repo / "constraints.txt").read_text(), versions, minimum))
        else:
            print(check_system_torch())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python reid/install.py`: what `import reid` gives outside the repository (exit 2: not this package).
    `--system-torch-constraints` / `--check-system-torch`: the steps of `make ... TORCH=system`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--system-torch-constraints", "--check-system-torch"):
        return _make_step(argv)
    check = check_package()
    for kind, lines in (("error", check.problems), ("warning", check.warnings), ("note", check.notes)):
        for line in lines:
            print(f"{kind}: {line}", file=sys.stdout if kind == "note" else sys.stderr)
    if check.problems:
        return 2
    if check.imported and check.imported.folder == PACKAGE_DIR:
        print(f"ok: `import reid` gives this repository's package, {PACKAGE_DIR} ({check.imported.via})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
