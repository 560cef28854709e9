"""Real-scale rehearsal: a synthetic SYSU-MM01 with the real set's counts through `paper_sysu`'s data path.

    PYTHONPATH=. python benchmarks/rehearse_real_scale.py [--out data/real_scale] [--workers 2]
        [--batches 30] [--eval-preset micro]

What a researcher meets on the first real run, measured before it: the synthetic generator writes the real
counts (296 + 99 training identities, 96 test identities, 20 images per RGB camera and 24 per IR camera,
~22 k visible + ~12 k infrared training images), then `paper_sysu` (the paper's data settings, 288x144,
P8K4 + grayscale copies, epochs counted in images) is resolved on it and this prints:

1. steps per epoch, checked against the image-count definition ceil(N_visible / (P*K));
2. the decoded-image cache: preload time and memory;
3. the training pipeline's images/s with N DataLoader workers (sampler -> cache -> TrivialAugment ->
   random erasing -> grayscale copies; no model);
4. the full 10-trial all-search evaluation time with an untrained `--eval-preset` network at 288x144
   (`micro` on a CPU; give `18` on a GPU): feature extraction of the queries and of every trial's
   gallery, distances, CMC / mAP / mINP per trial.

Synthetic images are 128x64 on disk (the generator's default) and resized into the cache at 288x144, as
real ones are. Nothing here trains; nothing is written outside `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import time

import torch

REAL_SCALE = {"sysu_train_ids": 296, "sysu_val_ids": 99, "sysu_test_ids": 96, "images_per_rgb_camera": 20,
              "images_per_ir_camera": 24}


def main() -> None:
    from reid.data import ensure_synthetic
    from reid.data.train_data import TrainData
    from reid.eval.evaluate import evaluate_sysu
    from reid.experiments import resolve
    from reid.models import build_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/real_scale")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=30, help="batches timed through the training pipeline")
    ap.add_argument("--eval-preset", default="micro", help="untrained network used for the evaluation timing")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}")

    t = time.perf_counter()
    root = ensure_synthetic(args.out, seed=0, **REAL_SCALE) / "SYSU-MM01"
    print(f"synthetic real-scale SYSU-MM01 at {root}: {time.perf_counter() - t:.0f} s (0 if it was there)")

    cfg = resolve(None, "sysu", root, seed=0, profile="paper",
                  overrides=["model.pretrained=none", f"data.workers={args.workers}"])
    d = cfg.data
    t = time.perf_counter()
    data = TrainData(cfg)
    preload_s = time.perf_counter() - t
    ir = data.ir_cameras
    n_vis = sum(1 for _, _, cam in data.train_items if cam not in ir)
    n_ir = len(data.train_items) - n_vis
    steps, expected = len(data.sampler), math.ceil(n_vis / (d.num_ids * d.num_instances))
    cache_bytes = sum(block.nbytes for block in data.cache._blocks)
    print(f"train: {data.num_classes} identities, {n_vis} visible + {n_ir} infrared images "
          f"(val_fraction {d.val_fraction})")
    print(f"steps per epoch: {steps} (images definition ceil({n_vis} / ({d.num_ids}*{d.num_instances})) = "
          f"{expected}): {'equal' if steps == expected else 'DIFFERENT'}; "
          f"{cfg.train.epochs} epochs = {steps * cfg.train.epochs} steps")
    print(f"decoded cache: {len(data.cache._where)} images at {d.height}x{d.width}, "
          f"{cache_bytes / 2**30:.2f} GiB, preloaded in {preload_s:.0f} s")

    loader = data.loader(epoch=0, seed=0)
    images, t = 0, None
    for i, batch in enumerate(loader):
        if i == 2:  # workers started and warm
            t, images = time.perf_counter(), 0
        images += batch["img"].shape[0] + (int(batch["gray_keep"].sum()) if "gray_keep" in batch else 0)
        if i == 2 + args.batches:
            break
    rate = images / (time.perf_counter() - t)
    print(f"training pipeline: {rate:.0f} images/s with {args.workers} workers "
          f"({args.batches} batches of {d.num_ids}x{d.num_instances} per modality + grayscale copies)")

    torch.manual_seed(0)
    model_cfg = dataclasses.replace(cfg.model, preset=args.eval_preset, pretrained="none",
                                    img_size=(d.height, d.width))
    model = build_model(model_cfg, data.num_classes, load_pretrained=False).eval()
    t = time.perf_counter()
    result = evaluate_sysu(model, root, mode="all", trials=10, batch_size=d.test_batch_size)
    trial = result["per_trial"][0]
    print(f"10-trial all-search evaluation, untrained preset {args.eval_preset} at {d.height}x{d.width}: "
          f"{time.perf_counter() - t:.0f} s ({trial['num_query']} queries, {trial['num_gallery']}-image "
          f"gallery per trial; Rank-1 {result['rank1']:.2f} untrained)")


if __name__ == "__main__":
    main()
