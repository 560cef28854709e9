"""Is the synthetic dataset cross-modal yet learnable? Two probes on its SYSU-MM01 test split.

    PYTHONPATH=. python benchmarks/probe_synthetic.py [--root data/synthetic] [--seconds 180]

1. No learning: IR query -> RGB gallery matching on raw grayscale pixels (should be near chance:
   hue is gone and IR brightness is unrelated to colour).
2. A small CNN (not the paper's model) trained for ``--seconds`` on CPU at 64x32 with label-smoothed
   CE + batch-hard triplet through the real data pipeline (sampler, transforms, cache), then the
   all-search single-shot rank-1 over 3 gallery trials (should be well above chance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reid.data import (
    SYSUMM01,
    CrossModalIdentitySampler,
    CrossModalTrainSet,
    ImageCache,
    build_test_transform,
    build_train_transform,
    ensure_synthetic,
)


def rank1(query_feats, query_pids, gallery_of_trial, features) -> float:
    hits = []
    for trial in range(3):
        gallery = gallery_of_trial("all", trial)
        gallery_pids = np.array([pid for _, pid, _ in gallery])
        best = (query_feats @ features(gallery).T).argmax(1)
        hits.append(float((gallery_pids[np.asarray(best)] == query_pids).mean()))
    return float(np.mean(hits))


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.MaxPool2d(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a net this small gains nothing)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    sysu = SYSUMM01(ensure_synthetic(Path(args.root)) / "SYSU-MM01")
    query = sysu.query("all")
    query_pids = np.array([pid for _, pid, _ in query])
    print(f"{len(sysu.test_ids)} test ids: chance rank-1 ~ {1 / len(sysu.test_ids):.3f}")

    def pixels(items):
        x = np.stack([np.asarray(ImageCache(32, 16).get(p).mean(-1), np.float32).ravel() for p, _, _ in items])
        x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)
        return x / np.sqrt(x.shape[1])

    print(f"raw-pixel IR->RGB rank-1: {rank1(pixels(query), query_pids, sysu.gallery, pixels):.3f}")

    height, width = 64, 32
    cache = ImageCache(height, width)
    train = CrossModalTrainSet(sysu.train, sysu.ir_cameras, build_train_transform(height, width, pad=4), cache,
                               with_gray=False)
    sampler = CrossModalIdentitySampler(sysu.train, sysu.ir_cameras, num_ids=8, num_instances=2,
                                        batches_per_epoch=10 ** 9)
    net = nn.Sequential(conv_block(3, 16), conv_block(16, 32), conv_block(32, 64), conv_block(64, 128),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    neck, classifier = nn.BatchNorm1d(128), nn.Linear(128, sysu.num_train_pids, bias=False)
    params = [*net.parameters(), *neck.parameters(), *classifier.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-4)
    start, steps = time.perf_counter(), 0
    for batch in torch.utils.data.DataLoader(train, batch_sampler=sampler):
        feats, pids = net(batch["img"]), batch["pid"]
        dist = torch.cdist(feats, feats)
        same = pids[:, None] == pids[None]
        hardest = dist.masked_fill(~same, 0).amax(1) - dist.masked_fill(same, float("inf")).amin(1)
        loss = F.cross_entropy(classifier(neck(feats)), pids, label_smoothing=0.1) + F.relu(hardest + 0.3).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if time.perf_counter() - start > args.seconds:
            break

    net.eval()
    neck.eval()
    test_tf = build_test_transform(height, width)

    @torch.no_grad()
    def embed(items):
        return F.normalize(neck(net(torch.stack([test_tf(cache.tensor(p)) for p, _, _ in items]))), dim=1).numpy()

    print(f"small CNN, {steps} steps in {time.perf_counter() - start:.0f} s (loss {loss.item():.2f}): "
          f"IR->RGB all-search rank-1 {rank1(embed(query), query_pids, sysu.gallery, embed):.3f}")


if __name__ == "__main__":
    main()
