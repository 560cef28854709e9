"""What a training run reads: the dataset named by an experiment config, split into the identities it
trains on and those it holds out for model selection, with the loaders' ingredients.

    data = TrainData(cfg)             # cfg: reid.config.ExperimentConfig
    data.num_classes, data.val_query, data.val_gallery
    for batch in data.loader(epoch, seed): ...
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from reid.data.dataset import CrossModalTrainSet, ImageCache, carve_validation
from reid.data.regdb import RegDB
from reid.data.sampler import CrossModalIdentitySampler
from reid.data.sysu import SYSUMM01
from reid.data.transforms import build_test_transform, build_train_transform
from reid.errors import UserError

DEFAULT_SYNTHETIC_ROOT = Path("data/synthetic")
LAYOUT_DIRS = {"sysu": "SYSU-MM01", "regdb": "RegDB"}


def dataset_root(dataset: str, root: str | Path | None) -> Path:
    """`root`, or the default synthetic set's folder of that layout (generated when missing)."""
    if root is None:
        from reid.data.synthetic import ensure_synthetic

        return Path(ensure_synthetic(DEFAULT_SYNTHETIC_ROOT, seed=0)) / LAYOUT_DIRS[dataset]
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data {root}: no such directory (expected a {LAYOUT_DIRS[dataset]} root)")
    return root


def open_dataset(dataset: str, root: str | Path, split: int = 1) -> SYSUMM01 | RegDB:
    """The reader of a SYSU-MM01 root, or of one RegDB split (1..10)."""
    return SYSUMM01(root) if dataset == "sysu" else RegDB(root, split=split)


class TrainData:
    """The training identities split into train / validation, and the loaders' ingredients."""

    def __init__(self, cfg, rank: int = 0, world_size: int = 1) -> None:
        d = cfg.data
        self.root = dataset_root(d.dataset, d.root)
        dataset = open_dataset(d.dataset, self.root, d.regdb_split)
        self.ir_cameras = dataset.ir_cameras
        self.train_items, self.val_query, self.val_gallery = carve_validation(
            dataset.train, dataset.ir_cameras, val_fraction=d.val_fraction, seed=cfg.train.seed)
        self.num_classes = len({pid for _, pid, _ in self.train_items})
        self.cache = ImageCache(d.height, d.width)
        transform = build_train_transform(d.height, d.width, trivial_augment=d.trivial_augment,
                                          random_erasing=d.random_erasing, pad=d.pad, ta_space=d.ta_space)
        self.test_transform = build_test_transform(d.height, d.width)
        self.train_set = CrossModalTrainSet(self.train_items, dataset.ir_cameras, transform, self.cache,
                                            with_gray=d.with_gray, gray_of=d.gray_of)
        self.sampler = CrossModalIdentitySampler(self.train_items, dataset.ir_cameras, num_ids=d.num_ids,
                                                 num_instances=d.num_instances, seed=cfg.train.seed,
                                                 batches_per_epoch=d.batches_per_epoch or None,
                                                 epoch_size=d.epoch_size, rank=rank, world_size=world_size)
        self.workers = d.workers

    def loader(self, epoch: int, seed: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=self.workers,
                          generator=torch.Generator().manual_seed(seed), pin_memory=torch.cuda.is_available())
