"""What a training run reads: the dataset named by an experiment config, split into the identities it
trains on and those it holds out for model selection, with the loaders' ingredients.

    data = TrainData(cfg)             # cfg: reid.config.ExperimentConfig
    data.num_classes, data.val_query, data.val_gallery
    for batch in data.loader(epoch, seed): ...   # {"img": colour views + grayscale copies, "pid", "num_gray"}

The loader, for a GPU that must not wait on it:
- `data.workers: auto` sizes the worker processes from the CPUs this process may use (`resolve_workers`).
- With workers, one DataLoader serves the whole run (persistent workers): no processes are started and
  no cache is handed over again each epoch. Its augmentation is reseeded per batch from (epoch seed,
  batch number) (`_BatchSeeded`), so epoch e's batches stay a function of (seed, e) alone, as exact
  resume needs, and do not depend on how many workers made them.
- Workers are forked on Linux (`worker_context`): they share the decoded-image cache's pages with the
  main process instead of receiving a pickled copy (Python >= 3.14 makes forkserver the default).
- The grayscale copies join the batch in `collate_train`, inside the worker, so the batch the trainer
  moves to the GPU is one tensor that the DataLoader pins (`non_blocking` then overlaps the copy).
With `workers: 0` (the CPU profiles) the batches are made in the main process, from the global RNG that the
engine reseeds every epoch, in the same order as before these changes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from reid.data.dataset import CrossModalTrainSet, ImageCache, carve_validation
from reid.data.regdb import RegDB
from reid.data.sampler import CrossModalIdentitySampler
from reid.data.sysu import SYSUMM01
from reid.data.transforms import build_test_transform, build_train_transform
from reid.utils.errors import UserError
from reid.utils.rng import seed_everything

# Per rank. One worker made 350-700 images/s at 288x144 (P8K4 + grey copies) on a loaded 2-core EPYC
# (benchmarks/bench_pipeline.py): 8 make ~3-5 k images/s, about what one GPU trains preset 18 at (estimate).
AUTO_WORKERS_MAX = 8

# Batches each worker keeps ready ahead of the trainer (DataLoader's prefetch_factor): enough to ride out a
# slow batch (a large TrivialAugment op) without stalling the GPU.
PREFETCH_FACTOR = 4
# Where a worker's batches wait for the trainer: torch passes tensors between processes through shared
# memory, a tmpfs here on Linux (Docker gives a container 64 MiB of it unless told otherwise).
SHARED_MEMORY = Path("/dev/shm")

# The default synthetic set: data/synthetic of the repository this package is part of, whatever the working
# directory -- from a subfolder (notebooks/, a run folder) `python -m reid train` made a second set there,
# minutes of rendering and a run folder keyed to other data. A package copied outside a checkout
# (`pip install .`, no pyproject.toml above it) keeps the working directory's data/synthetic.
_CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_SYNTHETIC_ROOT = (_CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() else Path()) / "data" / "synthetic"
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


def layout_of(root: Path) -> str | None:
    """Which dataset a folder is, by its own layout: SYSU-MM01 (exp/), RegDB (idx/), or None."""
    return "sysu" if (root / "exp").is_dir() else "regdb" if (root / "idx").is_dir() else None


def data_roots(data: str | Path, datasets: tuple[str, ...] | None = None, flag: str = "--data") -> dict[str, Path]:
    """The one meaning of DATA (`make reproduce`, `make ablation`, `reproduce --data`, `sweep --data`): the
    folder that holds the datasets, `SYSU-MM01/` and/or `RegDB/`. A dataset's own folder (exp/: SYSU-MM01,
    idx/: RegDB) is accepted for that dataset, said in one line. `datasets`: the ones needed (None: every one found). Returns {dataset: its folder}."""
    data = Path(data)
    if not data.is_dir():
        raise UserError(f"{flag} {data}: no such directory")
    found = {d: data / name for d, name in LAYOUT_DIRS.items() if (data / name).is_dir()}
    own = layout_of(data)
    if own is not None and not found:
        found = {own: data}
        print(f"{flag} {data}: the {LAYOUT_DIRS[own]} folder itself, taken as {LAYOUT_DIRS[own]}/ (DATA is the "
              f"folder that holds the datasets: {data.parent})")
    wanted = tuple(found) if datasets is None else tuple(datasets)
    if not wanted and datasets is None:
        raise UserError(f"{flag} {data}: holds neither SYSU-MM01/ nor RegDB/ (DATA is the folder that holds them; "
                        "a dataset's own folder has exp/ for SYSU-MM01 or idx/ for RegDB)")
    for dataset in wanted:
        if dataset not in found:
            what = f"the {LAYOUT_DIRS[own]} folder itself" if own else f"no {LAYOUT_DIRS[dataset]}/ folder in it"
            raise UserError(f"{flag} {data}: {what}, and {dataset} needs {LAYOUT_DIRS[dataset]}/; give the folder "
                            f"that holds {' and '.join(LAYOUT_DIRS[d] + '/' for d in wanted)}")
    return {d: found[d] for d in wanted}


def open_dataset(dataset: str, root: str | Path, split: int = 1) -> SYSUMM01 | RegDB:
    """The reader of a SYSU-MM01 root, or of one RegDB split (1..10)."""
    return SYSUMM01(root) if dataset == "sysu" else RegDB(root, split=split)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container or `taskset` may allow fewer than
    the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(setting: int | str, local_ranks: int | None = None) -> tuple[int, str]:
    """(worker processes per rank, why): `data.workers` as given, or for "auto" the CPUs of this process
    shared among the node's ranks (torchrun's LOCAL_WORLD_SIZE), one left per rank for the training
    process itself, at most `AUTO_WORKERS_MAX`."""
    if setting != "auto":
        return int(setting), f"data.workers={setting}"
    local_ranks = local_ranks or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = available_cpus()
    workers = max(1, min(AUTO_WORKERS_MAX, cpus // max(1, local_ranks) - 1))
    return workers, (f"data.workers=auto: {cpus} CPUs for {local_ranks} rank{'s' if local_ranks > 1 else ''} "
                     f"on this node, one kept per rank, at most {AUTO_WORKERS_MAX}")


def images_per_batch(d) -> int:
    """Images in one training batch of the data config `d`: P x K visible + P x K infrared, and the
    grayscale copies `collate_train` appends (of the visible images, or of both modalities)."""
    per_modality = d.num_ids * d.num_instances
    copies = 0 if not d.with_gray else per_modality if d.gray_of == "visible" else 2 * per_modality
    return 2 * per_modality + copies


def shared_memory_free(path: Path = SHARED_MEMORY) -> int | None:
    """Free bytes of the shared-memory filesystem, or None where there is none to ask (macOS, Windows)."""
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return stat.f_bavail * stat.f_frsize


def check_shared_memory(d, workers: int, local_ranks: int | None = None) -> None:
    """Refuse, in one line and before the image cache is decoded, a loader whose batches would not fit in
    /dev/shm: every worker holds up to `PREFETCH_FACTOR` float32 batches there (P8K4 + grey copies at
    288x144 is ~46 MiB a batch: 8 workers need ~1.4 GiB), for every rank on the node. Past the limit a
    worker dies with a bus error in the middle of an epoch, which names neither the cause nor the fix."""
    free = shared_memory_free()
    if not workers or free is None:
        return
    local_ranks = local_ranks or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    batch = images_per_batch(d) * 3 * d.height * d.width * 4  # float32 after the transform
    per_worker = batch * PREFETCH_FACTOR * local_ranks
    if workers * per_worker <= free:
        return
    fits = free // per_worker
    ranks = f" x {local_ranks} ranks on this node" if local_ranks > 1 else ""
    raise UserError(
        f"data.workers: {workers} loader workers x {PREFETCH_FACTOR} batches of {batch / 2**20:.0f} MiB{ranks} "
        f"need {workers * per_worker / 2**20:,.0f} MiB of shared memory, {SHARED_MEMORY} has {free / 2**20:,.0f} "
        f"MiB free: " + (f"lower data.workers to {fits}, " if fits else "")
        + "give the container more (docker run --shm-size=8g), or set data.workers=0 (batches made in the "
        "training process)")


def worker_context():
    """(multiprocessing context, its name) for the DataLoader's workers. Fork on Linux: the workers then
    share the decoded-image cache (GBs) with the main process page by page; under spawn or forkserver
    (Python >= 3.14's Linux default) every worker would unpickle its own copy. The workers touch no CUDA
    state (batches are pinned and copied in the main process), so forking after CUDA has started is safe.
    Elsewhere (macOS, Windows: fork is unsafe or absent) the platform's default, which copies the cache
    once per worker and run (persistent workers)."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork"), "fork"
    return None, multiprocessing.get_start_method(allow_none=False)


def collate_train(samples: list[dict]) -> dict:
    """A training batch: `img` holds the colour views, then the grayscale copies the dataset kept
    (`gray_keep`), `pid` their labels in the same order (the copies repeat their originals' pids), and
    `num_gray` how many copies there are. The same tensors, in the same order, as concatenating the
    collated `img` and `gray[gray_keep]`; made here, so that a worker hands over one tensor the loader
    can pin (default_collate writes it straight into shared memory in a worker). `modality` (0 visible,
    1 infrared), when the samples have one, follows the same order: a copy keeps its original's modality
    (AGW's two-stream model routes each image through its modality's first stage)."""
    imgs = [s["img"] for s in samples]
    pids = [s["pid"] for s in samples]
    kept = [s for s in samples if s["gray_keep"]] if "gray" in samples[0] else []
    imgs += [s["gray"] for s in kept]
    pids += [s["pid"] for s in kept]
    batch = {"img": default_collate(imgs), "pid": default_collate(pids), "num_gray": len(kept)}
    if "modality" in samples[0]:
        batch["modality"] = default_collate([s["modality"] for s in samples + kept])
    return batch


class _EpochBatches:
    """The sampler's batches as (batch seed, index) pairs: the seed of batch b of an epoch is a function
    of the epoch's seed (set before each epoch) and b, whichever worker makes the batch."""

    def __init__(self, sampler) -> None:
        self.sampler, self.seed = sampler, 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for b, batch in enumerate(self.sampler):
            batch_seed = (self.seed * 100_003 + b) % 2**31
            yield [(batch_seed, index) for index in batch]


class _BatchSeeded(Dataset):
    """The training set behind persistent workers: every batch reseeds the worker's RNGs from its batch
    seed before its images are augmented, so no state carries over from the batches a worker made before."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        return self.dataset[key[1]]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        seed_everything(keys[0][0])
        return [self.dataset[index] for _, index in keys]


class TrainData:
    """The training identities split into train / validation, and the loaders' ingredients."""

    def __init__(self, cfg, rank: int = 0, world_size: int = 1) -> None:
        d = cfg.data
        self.workers, self.workers_reason = resolve_workers(d.workers)
        check_shared_memory(d, self.workers)  # before minutes of decoding, not as a bus error mid-epoch
        self.root = dataset_root(d.dataset, d.root)
        dataset = open_dataset(d.dataset, self.root, d.regdb_split)
        if isinstance(dataset, SYSUMM01):  # a camera gone: one line on real data, a warning on synthetic
            from reid.data.identity import is_synthetic
            from reid.data.sysu import ALL_CAMERAS

            dataset.check_cameras(dataset.train_ids, ALL_CAMERAS, "training", is_synthetic(self.root))
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
        self.pin_memory = torch.cuda.is_available()  # the engine sets it from the device it trains on
        self.start_method = worker_context()[1] if self.workers else None
        self._loader: DataLoader | None = None
        self._batches: _EpochBatches | None = None

    @property
    def cache_bytes(self) -> int:
        """Memory of the decoded-image cache in this process (each rank of a node keeps its own)."""
        return self.cache.nbytes

    def describe(self) -> str:
        """The loader in one line, for the run's first lines."""
        if not self.workers:
            return f"data loader: in the main process ({self.workers_reason})"
        return (f"data loader: {self.workers} persistent worker processes ({self.workers_reason}), started by "
                f"{self.start_method}{' (sharing the image cache)' if self.start_method == 'fork' else ' (each worker gets a copy of the image cache)'}"
                f", pinned memory {'on' if self.pin_memory else 'off'}")

    def loader(self, epoch: int, seed: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        if not self.workers:  # no processes to keep: a plain loader each epoch, on the reseeded global RNG
            return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=0, collate_fn=collate_train,
                              generator=torch.Generator().manual_seed(seed), pin_memory=self.pin_memory)
        if self._loader is None:
            context, _ = worker_context()
            self._batches = _EpochBatches(self.sampler)
            self._loader = DataLoader(_BatchSeeded(self.train_set), batch_sampler=self._batches,
                                      num_workers=self.workers, collate_fn=collate_train, persistent_workers=True,
                                      prefetch_factor=PREFETCH_FACTOR, pin_memory=self.pin_memory,
                                      multiprocessing_context=context)
        self._batches.seed = seed  # read in the main process, where the batch sampler runs
        return self._loader
