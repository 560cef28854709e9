"""Cross-modal identity sampler: each batch = P ids x K visible images + the same P ids x K IR images.

This is the batch layout the hard triplet losses (Eq. 14-15) need: every anchor has positives and
negatives in both modalities. Batches walk shuffled passes over the identities (every identity is
visited once per pass). How many batches make an epoch (``epoch_size``):

- ``"images"``: ceil(N_visible / (P*K)) batches, N_visible = the visible training images: an epoch sees
  about as many visible images as the training set holds. This is the epoch of the cross-modal code
  (AGW) whose learning-rate schedule the paper quotes (Sec. 2.1): ~696 batches on SYSU-MM01 at P8 K4.
- ``"identities"``: ceil(ids / P) batches, one pass over the identities (89 on SYSU-MM01 at P4).

``batches_per_epoch`` raises it to at least that many. With several ranks the epoch is the same number
of batches *in all*: each rank runs 1/world_size of them, so an epoch still sees the data about once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from reid.utils.errors import UserError


class CrossModalIdentitySampler:
    """A batch sampler (iterable of index lists into ``items``) for `torch.utils.data.DataLoader`.

    Deterministic given ``(seed, epoch)``; call `set_epoch` before each epoch. With
    ``world_size > 1`` each rank takes a disjoint share of the epoch's batches and every rank gets
    the same number of batches. Identities with fewer than K images in a modality are sampled with
    replacement; identities that lack a modality entirely are skipped with a warning.
    """

    def __init__(self, items: list[tuple[str, int, int]], ir_cameras: set[int], num_ids: int = 8,
                 num_instances: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1,
                 batches_per_epoch: int | None = None, epoch_size: str = "identities"):
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
        if epoch_size == "images":
            visible = sum(len(self.index[pid][0]) for pid in self.pids)
            one_pass = -(-visible // (num_ids * num_instances))
        elif epoch_size == "identities":
            one_pass = -(-len(self.pids) // num_ids)
        else:
            raise UserError(f"sampler epoch_size={epoch_size!r}: expected 'images' or 'identities'")
        total = max(one_pass, batches_per_epoch or 0)
        self.total_batches = -(-total // world_size) * world_size  # equal share for every rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.total_batches // self.world_size

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> list[int]:
        replace = len(pool) < self.num_instances
        return rng.choice(pool, self.num_instances, replace=replace).tolist()

    def _groups(self, rng: np.random.Generator) -> Iterator[list[int]]:
        """The epoch's identity groups, lazily: shuffled passes over all ids, each cut into groups of P."""
        made = 0
        while True:
            order = rng.permutation(self.pids).tolist()
            for start in range(0, len(order), self.num_ids):
                group = order[start:start + self.num_ids]
                if len(group) < self.num_ids:  # top up the last group with other, distinct ids
                    others = [pid for pid in self.pids if pid not in group]
                    group += rng.choice(others, self.num_ids - len(group), replace=False).tolist()
                yield group
                made += 1
                if made == self.total_batches:
                    return

    def __iter__(self) -> Iterator[list[int]]:
        # Every rank walks the same epoch plan from (seed, epoch) and keeps every world_size-th batch.
        groups = self._groups(np.random.default_rng([self.seed, self.epoch]))
        for b, group in enumerate(groups):
            if b % self.world_size != self.rank:
                continue
            # Image draws are seeded per batch, so a rank need not replay the other ranks' draws.
            rng = np.random.default_rng([self.seed, self.epoch, b])
            visible = [i for pid in group for i in self._draw(rng, self.index[pid][0])]
            infrared = [i for pid in group for i in self._draw(rng, self.index[pid][1])]
            yield visible + infrared
