"""ImageCache, the torch Datasets, and carve_validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import reid.data.dataset as dataset_module
from reid.data import (
    CrossModalTrainSet,
    ImageCache,
    ImageSet,
    build_test_transform,
    build_train_transform,
    carve_validation,
)
from reid.utils.errors import UserError


@pytest.fixture
def items(tmp_path) -> list[tuple[str, int, int]]:
    out = []
    for pid in range(3):
        for n, (cam, mode) in enumerate([(1, "RGB"), (2, "RGB"), (3, "L"), (6, "L")]):
            path = tmp_path / f"{pid}_{n}.{'jpg' if mode == 'RGB' else 'bmp'}"
            value = 40 * pid + 10 * n
            Image.new(mode, (32, 64), (value, 0, 255 - value) if mode == "RGB" else value).save(path)
            out.append((str(path), pid, cam))
    return out


def test_cache_decodes_each_file_once_and_resizes(items, monkeypatch):
    calls = []
    real = dataset_module.read_image
    monkeypatch.setattr(dataset_module, "read_image", lambda p: calls.append(p) or real(p))
    cache = ImageCache(48, 24)
    cache.preload(p for p, _, _ in items)
    cache.preload(p for p, _, _ in items)
    for p, _, _ in items:
        arr = cache.get(p)
        assert arr.shape == (48, 24, 3) and arr.dtype == np.uint8
    assert sorted(calls) == sorted(p for p, _, _ in items) and len(cache) == len(items)


def test_ir_single_channel_is_replicated(items):
    cache = ImageCache(64, 32)
    ir_path = next(p for p, _, cam in items if cam == 3)
    arr = cache.get(ir_path)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="broken.jpg"):
        ImageCache(8, 4).get(str(bad))
    with pytest.raises(UserError, match="missing.jpg"):
        ImageCache(8, 4).preload([str(tmp_path / "missing.jpg")])


def test_train_set_returns_the_contract_dict(items):
    ds = CrossModalTrainSet(items, {3, 6}, build_train_transform(96, 48), ImageCache(96, 48))
    sample = ds[2]
    assert set(sample) == {"img", "gray", "gray_keep", "pid", "camid", "modality"}
    assert sample["img"].shape == sample["gray"].shape == (3, 96, 48)
    assert sample["img"].dtype == torch.float32
    assert (sample["pid"], sample["camid"], sample["modality"]) == (0, 3, 1)
    assert ds[0]["modality"] == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["img"].shape == (4, 3, 96, 48) and batch["modality"].tolist() == [0, 0, 1, 1]


def test_gray_of_visible_keeps_grayscale_copies_of_modality_0_only(items):
    ds = CrossModalTrainSet(items, {3, 6}, build_train_transform(96, 48), ImageCache(96, 48), gray_of="visible")
    samples = [ds[i] for i in range(len(ds))]
    assert [s["gray_keep"] for s in samples] == [s["modality"] == 0 for s in samples]
    assert any(s["modality"] == 1 for s in samples) and any(s["modality"] == 0 for s in samples)
    both = CrossModalTrainSet(items, {3, 6}, build_train_transform(96, 48), ImageCache(96, 48), gray_of="both")
    assert all(both[i]["gray_keep"] for i in range(len(both)))
    # The engine's selection: the batch gains gray copies of the visible images only.
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    gray_modalities = batch["modality"][batch["gray_keep"]]
    assert gray_modalities.tolist() == [0] * int((batch["modality"] == 0).sum())
    with pytest.raises(UserError, match="gray_of"):
        CrossModalTrainSet(items, {3, 6}, build_train_transform(96, 48), ImageCache(96, 48), gray_of="ir")


def test_train_set_without_gray(items):
    ds = CrossModalTrainSet(items, {3, 6}, build_train_transform(96, 48), ImageCache(96, 48), with_gray=False)
    assert "gray" not in ds[0]
    with pytest.raises(TypeError, match="with_gray"):
        CrossModalTrainSet(items, {3, 6}, build_test_transform(96, 48), ImageCache(96, 48))


def test_image_set_and_shared_cache(items):
    cache = ImageCache(96, 48)
    ds = ImageSet(items, build_test_transform(96, 48), cache)
    img, pid, camid = ds[5]
    assert img.shape == (3, 96, 48) and (pid, camid) == (items[5][1], items[5][2])
    assert len(cache) == len(items)
    assert torch.equal(ds[5][0], img)


def test_carve_validation_holds_out_whole_training_identities():
    items = [(f"{pid}_{n}", pid, cam) for pid in range(20) for n, cam in enumerate([1, 2, 3, 6])]
    items.append(("rgb_only", 20, 1))
    train, query, gallery = carve_validation(items, {3, 6}, val_fraction=0.2, seed=0)
    held = {pid for _, pid, _ in query}
    assert len(held) == round(0.2 * 21) and held == {pid for _, pid, _ in gallery}
    assert 20 not in held  # only ids with both modalities can be validation ids
    assert {cam for _, _, cam in query} <= {3, 6} and {cam for _, _, cam in gallery} <= {1, 2}
    assert sorted({pid for _, pid, _ in train}) == list(range(21 - len(held)))
    assert len(train) + len(query) + len(gallery) == len(items)
    assert carve_validation(items, {3, 6}, 0.2, seed=0) == (train, query, gallery)
    assert carve_validation(items, {3, 6}, 0.2, seed=1)[1] != query
    with pytest.raises(UserError, match="val_fraction"):
        carve_validation(items, {3, 6}, val_fraction=1.0)


def test_carve_validation_zero_trains_on_every_identity():
    items = [(f"{pid}_{n}", pid + 5, cam) for pid in range(6) for n, cam in enumerate([1, 3])]
    train, query, gallery = carve_validation(items, {3, 6}, val_fraction=0.0)
    assert query == [] and gallery == []
    assert sorted({pid for _, pid, _ in train}) == list(range(6)) and len(train) == len(items)
