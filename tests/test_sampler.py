"""CrossModalIdentitySampler: batch layout, coverage, determinism, replacement, DDP sharding."""

from __future__ import annotations

import pytest

from reid.data import CrossModalIdentitySampler
from reid.utils.errors import UserError

IR = {3, 6}


def make_items(num_pids: int = 11, visible: int = 5, infrared: int = 3) -> list[tuple[str, int, int]]:
    items = []
    for pid in range(num_pids):
        items += [(f"v{pid}_{n}.jpg", pid, 1 + n % 2) for n in range(visible)]
        items += [(f"t{pid}_{n}.jpg", pid, 3 if n % 2 else 6) for n in range(infrared)]
    return items


def pid_of(items, index):
    return items[index][1]


def test_batch_is_p_ids_by_k_visible_then_the_same_ids_infrared():
    items = make_items()
    sampler = CrossModalIdentitySampler(items, IR, num_ids=4, num_instances=2, seed=3)
    for batch in sampler:
        assert len(batch) == 2 * 4 * 2
        vis, ir = batch[:8], batch[8:]
        assert all(items[i][2] not in IR for i in vis) and all(items[i][2] in IR for i in ir)
        vis_pids = [pid_of(items, i) for i in vis]
        assert vis_pids == [pid_of(items, i) for i in ir]
        assert len(set(vis_pids)) == 4 and vis_pids == [p for p in vis_pids[::2] for _ in range(2)]


def test_every_identity_each_epoch_and_deterministic():
    items = make_items()
    sampler = CrossModalIdentitySampler(items, IR, num_ids=4, num_instances=2, seed=0)
    assert len(sampler) == 3  # ceil(11 / 4)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert {pid_of(items, i) for b in batches for i in b} == set(range(11))
        epochs.append(batches)
        sampler.set_epoch(epoch)
        assert list(sampler) == batches  # same (seed, epoch) -> same batches
    assert epochs[0] != epochs[1]
    other = CrossModalIdentitySampler(items, IR, num_ids=4, num_instances=2, seed=1)
    assert list(other) != epochs[0]


def test_few_images_are_drawn_with_replacement():
    items = make_items(num_pids=4, visible=1, infrared=2)
    sampler = CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=4)
    batch = next(iter(sampler))
    assert len(batch) == 16
    assert len(set(batch[:8])) == 2  # one visible image per id, repeated


def test_enough_images_are_drawn_without_replacement():
    items = make_items(num_pids=4, visible=6, infrared=6)
    for batch in CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=4):
        assert len(set(batch)) == len(batch)


def test_identities_lacking_a_modality_are_skipped_with_a_warning():
    items = make_items(num_pids=5) + [("only_rgb.jpg", 99, 1)]
    with pytest.warns(UserWarning, match="lacking a modality"):
        sampler = CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=2)
    assert 99 not in {pid_of(items, i) for b in sampler for i in b}


def test_too_few_identities():
    with pytest.raises(UserError, match="num_ids=8"):
        CrossModalIdentitySampler(make_items(num_pids=5), IR, num_ids=8)


def test_batches_per_epoch_repeats_passes_without_duplicate_ids_in_a_batch():
    items = make_items()
    sampler = CrossModalIdentitySampler(items, IR, num_ids=4, num_instances=2, batches_per_epoch=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    for batch in batches:
        assert len({pid_of(items, i) for i in batch}) == 4


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_get_disjoint_equal_shares_of_one_plan(world_size):
    items = make_items(num_pids=13)
    shards = []
    for rank in range(world_size):
        sampler = CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=2, seed=5, rank=rank,
                                            world_size=world_size)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    assert len({len(s) for s in shards}) == 1
    total = sum(len(s) for s in shards)
    full = CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=2, seed=5, batches_per_epoch=total)
    full.set_epoch(2)
    plan = list(full)
    # rank r holds batches r, r + world_size, ... of the single-process plan: disjoint, and together all of it
    for rank, shard in enumerate(shards):
        assert shard == plan[rank::world_size]
    assert {pid_of(items, i) for s in shards for b in s for i in b} == set(range(13))


def test_works_as_a_dataloader_batch_sampler():
    torch = pytest.importorskip("torch")
    items = make_items()
    sampler = CrossModalIdentitySampler(items, IR, num_ids=2, num_instances=2)
    loader = torch.utils.data.DataLoader(list(range(len(items))), batch_sampler=sampler)
    first = next(iter(loader))
    assert first.tolist() == next(iter(sampler))


def test_long_epochs_start_immediately():
    items = make_items()
    sampler = CrossModalIdentitySampler(items, IR, num_ids=4, num_instances=2, batches_per_epoch=10 ** 12)
    assert len(sampler) == 10 ** 12
    assert len(next(iter(sampler))) == 16  # the plan is built lazily, not 10**12 groups up front


def test_image_count_epoch_is_the_published_codes_epoch():
    """epoch_size="images": ceil(N_visible / (P*K)) batches, ~696 on SYSU-MM01 (22,258 visible images of
    395 ids) at P8 K4, against ceil(395 / 8) = 50 for one pass over the identities."""
    items, per_id = [], [57] * 138 + [56] * 257  # 22,258 visible images over 395 identities
    for pid, count in enumerate(per_id):
        items += [(f"v{pid}_{i}", pid, 1) for i in range(count)] + [(f"t{pid}_{i}", pid, 3) for i in range(30)]
    assert sum(per_id) == 22258
    images = CrossModalIdentitySampler(items, IR, num_ids=8, num_instances=4, epoch_size="images")
    identities = CrossModalIdentitySampler(items, IR, num_ids=8, num_instances=4, epoch_size="identities")
    assert len(images) == 696 and len(identities) == 50
    # Several ranks share one epoch of the same size: each runs its part.
    ranks = [CrossModalIdentitySampler(items, IR, num_ids=8, num_instances=4, epoch_size="images", rank=r,
                                       world_size=4) for r in range(4)]
    assert {len(r) for r in ranks} == {174} and 4 * 174 >= 696
    with pytest.raises(UserError, match="epoch_size"):
        CrossModalIdentitySampler(items, IR, epoch_size="steps")
