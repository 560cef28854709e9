"""Cross-modal identity sampler: each batch = P ids x K visible images + the same P ids x K IR images.

This is the batch layout the hard triplet losses (Eq. 14-15) need: every anchor has positives and
negatives in both modalities. An epoch is one shuffled pass over the identities (every identity is
visited), optionally repeated to reach ``batches_per_epoch``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from reid.errors import UserError


class CrossModalIdentitySampler:
    """A batch sampler (iterable of index lists into ``items``) for `torch.utils.data.DataLoader`.

    Deterministic given ``(seed, epoch)``; call `set_epoch` before each epoch. With
    ``world_size > 1`` each rank takes a disjoint share of the epoch's batches and every rank gets
    the same number of batches. Identities with fewer than K images in a modality are sampled with
    replacement; identities that lack a modality entirely are skipped with a warning.
    """

    def __init__(self, items: list[tuple[str, int, int]], ir_cameras: set[int], num_ids: int = 8,
                 num_instances: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1,
                 batches_per_epoch: int | None = None):
        if num_ids < 1 or num_instances < 1:
            raise UserError(f"sampler needs num_ids >= 1 and num_instances >= 1, got {num_ids}, {num_instances}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..world_size-1 (world_size={world_size})")
        self.num_ids, self.num_instances = num_ids, num_instances
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        by_pid: dict[int, tuple[list[int], list[int]]] = {}
        for index, (_, pid, cam) in enumerate(items):
            by_pid.setdefault(pid, ([], []))[int(cam in ir_cameras)].append(index)
        skipped = sorted(pid for pid, (vis, ir) in by_pid.items() if not vis or not ir)
        if skipped:
            warnings.warn(f"sampler skips {len(skipped)} identities lacking a modality: {skipped[:10]}",
                          stacklevel=2)
        self.pids = sorted(pid for pid in by_pid if pid not in skipped)
        self.index = {pid: (np.array(by_pid[pid][0]), np.array(by_pid[pid][1])) for pid in self.pids}
        if len(self.pids) < num_ids:
            raise UserError(f"sampler: num_ids={num_ids} but only {len(self.pids)} identities have "
                            "both visible and infrared images")
        one_pass = -(-len(self.pids) // num_ids)
        total = max(one_pass, batches_per_epoch or 0)
        self.total_batches = -(-total // world_size) * world_size  # equal share for every rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.total_batches // self.world_size

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> list[int]:
        replace = len(pool) < self.num_instances
        return rng.choice(pool, self.num_instances, replace=replace).tolist()

    def _groups(self, rng: np.random.Generator) -> list[list[int]]:
        """The epoch's identity groups: shuffled passes over all ids, each cut into groups of P."""
        groups: list[list[int]] = []
        while len(groups) < self.total_batches:
            order = rng.permutation(self.pids).tolist()
            for start in range(0, len(order), self.num_ids):
                group = order[start:start + self.num_ids]
                if len(group) < self.num_ids:  # top up the last group with other, distinct ids
                    others = [pid for pid in self.pids if pid not in group]
                    group += rng.choice(others, self.num_ids - len(group), replace=False).tolist()
                groups.append(group)
        return groups[:self.total_batches]

    def __iter__(self) -> Iterator[list[int]]:
        # Every rank builds the same epoch plan from (seed, epoch), then keeps its own slice.
        groups = self._groups(np.random.default_rng([self.seed, self.epoch]))
        for b in range(self.rank, self.total_batches, self.world_size):
            # Image draws are seeded per batch, so a rank need not replay the other ranks' draws.
            rng = np.random.default_rng([self.seed, self.epoch, b])
            visible = [i for pid in groups[b] for i in self._draw(rng, self.index[pid][0])]
            infrared = [i for pid in groups[b] for i in self._draw(rng, self.index[pid][1])]
            yield visible + infrared
