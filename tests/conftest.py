"""Shared data fixtures: one small synthetic tree per test session (a couple of seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """``<root>/SYSU-MM01`` and ``<root>/RegDB`` from ``make_synthetic(small=True, seed=0)``; read-only."""
    from reid.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), seed=0, small=True)


@pytest.fixture
def sysu_root(synthetic_root) -> Path:
    """The SYSU-MM01 layout of the session's small synthetic tree."""
    return synthetic_root / "SYSU-MM01"
