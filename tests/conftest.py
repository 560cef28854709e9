"""What every test shares: one torch thread, the tiny training settings, one small synthetic tree per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests are many small tensors: one thread is faster than two fighting over the cores, and reproducible.
torch.set_num_threads(1)

# A tiny run: two optimisation steps of the tiny preset per epoch, validated every epoch, one epoch: a real
# checkpoint in a second or two. Tests that need more epochs or other settings append overrides (the last wins).
TINY = ["data.height=96", "data.width=48", "data.num_ids=2", "data.num_instances=1", "data.workers=0",
        "data.val_fraction=0.3", "train.max_steps_per_epoch=2", "train.eval_every=1", "model.preset=tiny",
        "train.epochs=1", "model.pretrained=none"]  # the smoke profile's start fits its micro preset only


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """``<root>/SYSU-MM01`` and ``<root>/RegDB`` from ``make_synthetic(small=True, seed=0)``; read-only."""
    from reid.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), seed=0, small=True)


@pytest.fixture
def sysu_root(synthetic_root) -> Path:
    """The SYSU-MM01 layout of the session's small synthetic tree."""
    return synthetic_root / "SYSU-MM01"
