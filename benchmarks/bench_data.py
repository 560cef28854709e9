"""Training-pipeline throughput of the data layer, in images/s.

    PYTHONPATH=. python benchmarks/bench_data.py [--root data/synthetic] [--workers 2] [--batches 20]

Measures the real training path: SYSU-MM01 train items -> CrossModalIdentitySampler ->
CrossModalTrainSet (cached uint8 images, full train transform incl. TrivialAugmentWide, random
erasing and the grayscale copy) -> DataLoader with N workers; and, for contrast, the same
pipeline decoding every JPEG each time (what an uncached Dataset does). Numbers are images/s
counting the colour images of a batch (each also carries its grayscale copy).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from reid.data import (
    SYSUMM01,
    CrossModalIdentitySampler,
    CrossModalTrainSet,
    ImageCache,
    build_train_transform,
    ensure_synthetic,
)


class NoCache(ImageCache):
    """Decodes on every access: the baseline the cache is measured against."""

    def preload(self, paths) -> None:
        pass

    def get(self, path: str):
        return self._decode(path)


def throughput(dataset, sampler, workers: int, batches: int) -> float:
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        images += batch["img"].shape[0]
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic", help="synthetic root (generated if missing)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    args = parser.parse_args()

    root = ensure_synthetic(Path(args.root))
    sysu = SYSUMM01(root / "SYSU-MM01")
    transform = build_train_transform(args.height, args.width)
    sampler = CrossModalIdentitySampler(sysu.train, sysu.ir_cameras, num_ids=8, num_instances=4,
                                        batches_per_epoch=10 ** 6)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.workers} workers, "
          f"{args.height}x{args.width}, batch {2 * 8 * 4} (8 ids x 4 x 2 modalities) + grayscale copies")

    cache = ImageCache(args.height, args.width)
    start = time.perf_counter()
    cached = CrossModalTrainSet(sysu.train, sysu.ir_cameras, transform, cache)
    decode_s = time.perf_counter() - start
    print(f"cache fill: {len(cache)} images decoded once in {decode_s:.1f} s "
          f"({len(cache) / decode_s:.0f} images/s, {len(cache) * args.height * args.width * 3 / 2**20:.0f} MiB)")
    print(f"cached pipeline:         {throughput(cached, sampler, args.workers, args.batches):7.0f} images/s")
    uncached = CrossModalTrainSet(sysu.train, sysu.ir_cameras, transform, NoCache(args.height, args.width))
    print(f"decode-every-time:       {throughput(uncached, sampler, args.workers, args.batches):7.0f} images/s")
    no_ta = CrossModalTrainSet(sysu.train, sysu.ir_cameras, build_train_transform(
        args.height, args.width, trivial_augment=False), cache)
    print(f"cached, no TrivialAugment: {throughput(no_ta, sampler, args.workers, args.batches):5.0f} images/s")


if __name__ == "__main__":
    main()
