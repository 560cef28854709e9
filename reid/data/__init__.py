"""Data layer: dataset readers, the synthetic cross-modal dataset, sampler, transforms, datasets."""

from reid.data.dataset import (
    CrossModalTrainSet,
    ImageCache,
    ImageSet,
    Item,
    carve_validation,
    read_image,
    relabel_pids,
)
from reid.data.regdb import RegDB
from reid.data.sampler import CrossModalIdentitySampler
from reid.data.synthetic import ensure_masks, ensure_synthetic, make_synthetic, summarize
from reid.data.sysu import SYSUMM01
from reid.data.train_data import TrainData, dataset_root, open_dataset
from reid.data.transforms import TrainTransform, build_test_transform, build_train_transform

__all__ = [
    "SYSUMM01",
    "CrossModalIdentitySampler",
    "CrossModalTrainSet",
    "ImageCache",
    "ImageSet",
    "Item",
    "RegDB",
    "TrainData",
    "TrainTransform",
    "build_test_transform",
    "build_train_transform",
    "carve_validation",
    "dataset_root",
    "ensure_masks",
    "ensure_synthetic",
    "make_synthetic",
    "open_dataset",
    "read_image",
    "relabel_pids",
    "summarize",
]
