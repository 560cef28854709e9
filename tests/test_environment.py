"""Installs: pyproject.toml states compatible ranges, constraints.txt the exact versions CI tests, and
environment.yml repeats those pins; the three must agree."""

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)\s*(#.*)?", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_every_range_admits_its_tested_pin():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for req in _requirements():
        name = req.name.lower().replace("_", "-")
        assert name in constraints, f"{name} is in pyproject.toml but has no exact version in constraints.txt"
        assert req.specifier.contains(constraints[name]), f"{req} does not admit the tested {constraints[name]}"
        assert "==" not in str(req.specifier), f"{req}: pyproject.toml states ranges, constraints.txt pins"


def test_environment_yml_pins_what_constraints_txt_pins():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins([r for r in pip_section if not r.startswith("-e")]) == constraints


def test_torch_is_the_local_release():
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == "2.14.1"
    assert torchvision.__version__.split("+")[0] == "0.29.1"
