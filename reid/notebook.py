"""The first cell of every notebook: find (or clone) this repository, install what is lacking, read the switch.

The cell (the same in all nine notebooks and their student copies; docs/notebooks.md, "The first cell, and
Colab") runs before `reid` is importable: outside a clone of this repository (Colab, a notebook opened alone)
it clones `$REID_REPO_URL` with the standard library and git and moves into the clone's notebooks/; then its
path line puts this repository's `reid` first (a notebook runs from notebooks/, a student copy from
notebooks/clean/) and its last line is `from reid.notebook import setup; S = setup()`. `setup()` then
- installs the package (`pip install -e` of this repository) and what it needs (timm, grad-cam, ...) when
  they are missing, as on Colab or in a bare Jupyter, keeping the torch already there (in `make lab`'s .venv
  there is nothing to do);
- refuses a `reid` that is not this repository's (PyPI's `reid` is another project, or another clone's);
- sets one figure style at a readable on-screen size and torch's threads;
- reads the one switch (`reid.experiments.settings`, the `REID_*` variables; their one table is in
  docs/notebooks.md, "The switch") and prints what it selected.

Only the standard library is imported before the install step, so this module loads in a bare Python.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("timm", "pytorch_grad_cam", "yaml", "pandas", "matplotlib", "seaborn")


def install_missing(root: Path = ROOT) -> bool:
    """`pip install -e root` when a needed module is missing (torch itself is never replaced); True if it ran."""
    if all(importlib.util.find_spec(name) is not None for name in NEEDED):
        return False
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(root)], check=True)
    importlib.invalidate_caches()  # this kernel's import system then finds what pip just installed
    return True


def check_this_repository(cwd: str | Path | None = None) -> None:
    """The imported `reid` must be the one of the repository the notebook sits in."""
    here = Path(cwd or os.getcwd()).resolve()
    repo = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), None)
    if repo is not None and repo != ROOT:
        raise ImportError(f"`import reid` gave {ROOT / 'reid'}, not this repository's ({repo / 'reid'}): "
                          "restart the kernel and run the first cell first, or `pip uninstall reid`")


def _inline_figures() -> None:
    """`%matplotlib inline` in a Jupyter kernel, once matplotlib is installed: the first cell cannot say it
    itself, since in a bare Jupyter (no matplotlib yet) the magic fails before `install_missing` runs."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "IPKernelApp" in shell.config:
        shell.run_line_magic("matplotlib", "inline")


def setup(inline_dpi: int = 100, threads: int | None = None, environ=None):
    """Install if needed, check the package, set the figure style and threads; the notebook's `Settings`."""
    install_missing()
    check_this_repository()
    _inline_figures()
    import torch

    from reid.experiments import settings
    from reid.viz import use_style

    use_style(inline_dpi=inline_dpi)
    # Every core by default; OMP_NUM_THREADS (the usual variable) caps it, e.g. make test's notebooks run
    # beside the tests on one core each.
    env = os.environ if environ is None else environ
    capped = env.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(threads or (int(capped) if capped.isdigit() and int(capped) > 0 else 0)
                          or max(1, os.cpu_count() or 1))
    S = settings(environ)
    print("data:", S.data_label, "| profile:", S.profile, "| seeds:", S.seeds, "| RegDB splits:", S.regdb_splits,
          "| committed results:", "ignored (REID_RETRAIN=1)" if S.retrain else "read",
          *(["| test budget: at most", S.steps_cap, "steps per epoch"] if S.steps_cap else []))
    return S
