"""Random-number state, so that a resumed run repeats the uninterrupted one bit for bit.

The engine reseeds python / numpy / torch at the start of every epoch from (seed, epoch, rank), and a
checkpoint stores every generator's state (as tensors and lists, readable with `weights_only=True`).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank: a function of the run's seed, the epoch and the rank only."""
    return (seed * 1_000_003 + epoch * 1009 + rank) % 2**31


def get_rng_state() -> dict:
    """Every RNG state as tensors / lists / numbers, so `torch.load(weights_only=True)` can read it."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _host(tensor: torch.Tensor) -> torch.Tensor:
    """A generator state as the CPU ByteTensor/LongTensor torch and numpy expect. A checkpoint loaded with
    `map_location="cuda"` holds them on the GPU, where `.numpy()` and `torch.set_rng_state` refuse them."""
    return tensor.cpu() if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)


def set_rng_state(state: dict) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", _host(keys).numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_host(state["torch"]))
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_host(s) for s in state["cuda"]])
