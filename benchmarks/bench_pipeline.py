"""The training input pipeline against a GPU's appetite: images/s per worker, the main process's work per
step, the cost of an epoch's start, and host syncs per training step (issue 20, item 3).

    PYTHONPATH=. python benchmarks/bench_pipeline.py [--batches 20] [--model-rate 4000]
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/bench_pipeline.py   # the same figures, before

It runs against whichever `reid` is imported, so the same script measures the code before and after a change.
Data: the small synthetic SYSU-MM01 (generated under --root when missing), decoded into the cache at the
paper's 288x144, the paper configs' pipeline (TrivialAugment, random erasing, grayscale copies of the
visible images) at P8K4: 32 visible + 32 infrared + 32 grayscale copies = 96 images a batch.

1. images/s made by one worker process (`data.workers=1`, after its first batches): what each worker adds;
2. the main process's work per step between the loader and `.to(device)` (before issue 20 it concatenated the
   grayscale copies there, a copy of the whole batch outside pinned memory; now they come in the batch);
3. time to the first batch of the second epoch (a new loader and new workers each epoch before; persistent,
   already prefetching, now);
4. host reads of tensor values per training step in the loop (each one a GPU sync on CUDA), counted on a
   tiny model with SGD (the paper configs' optimiser; Adam's step counters are CPU tensors and never sync);
   on CUDA the loop reads once every `SYNC_EVERY_CUDA` steps, measured here by asking for that window;
5. what 8 workers would have to make each to feed a GPU at `--model-rate` images/s (an estimate until
   `make gpu-check` has measured the model on a GPU: results/gpu.md).
"""

from __future__ import annotations

import argparse
import inspect
import os
import time
from pathlib import Path

import torch


def _config(root: Path, workers: int, *extra: str):
    from reid.config import load_config

    return load_config("paper_sysu", [f"data.root={root}", f"data.workers={workers}", "data.num_ids=8",
                                      "data.num_instances=4", "model.pretrained=none", *extra])


def _batch_images(batch: dict) -> int:
    if "gray_keep" in batch:  # before issue 20: the copies beside the batch
        return batch["img"].shape[0] + int(batch["gray_keep"].sum())
    return batch["img"].shape[0]


def _assemble(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """What the engine does with a batch before `.to(device)`."""
    if "gray_keep" in batch:
        keep = batch["gray_keep"]
        return torch.cat([batch["img"], batch["gray"][keep]]), torch.cat([batch["pid"], batch["pid"][keep]])
    return batch["img"], batch["pid"]


def worker_rate(root: Path, batches: int) -> tuple[float, float, float]:
    """(images/s of one worker, ms of main-process assembly per batch, s to the first batch of epoch 2)."""
    from reid.data.train_data import TrainData

    data = TrainData(_config(root, 1, f"data.batches_per_epoch={batches + 3}"))
    images, start, assemble = 0, None, 0.0
    for i, batch in enumerate(data.loader(0, 0)):
        if i == 2:  # the worker has started and its prefetch queue is drained at the rate it makes batches
            start, images = time.perf_counter(), 0
        t = time.perf_counter()
        _assemble(batch)
        assemble += time.perf_counter() - t
        images += _batch_images(batch)
        if i == 2 + batches:
            break
    rate = images / (time.perf_counter() - start)
    t = time.perf_counter()
    next(iter(data.loader(1, 1)))
    return rate, 1000 * assemble / (batches + 3), time.perf_counter() - t


def syncs_per_step(root: Path, steps: int = 50) -> dict:
    """Host reads of tensor values per step in `_train_one_epoch`, per read-window setting."""
    from tqdm.auto import tqdm

    from reid.data.train_data import TrainData
    from reid.losses import Criterion
    from reid.models import build_model
    from reid.train import engine

    cfg = _config(root, 0, "model.preset=tiny", "data.height=96", "data.width=48", "data.num_ids=2",
                  "data.num_instances=2", "optim.lr=0.01", f"train.max_steps_per_epoch={steps}",
                  f"data.batches_per_epoch={steps}")
    data = TrainData(cfg)
    batches = list(data.loader(0, 0))[:steps]  # made first: the CPU augmentation's own reads are no GPU sync
    windows = {"every step (CPU default)": 1}
    if "sync_every" in inspect.signature(engine._train_one_epoch).parameters:
        windows[f"CUDA default (every {engine.SYNC_EVERY_CUDA} steps)"] = engine.SYNC_EVERY_CUDA
    else:
        windows = {"any device": None}
    out = {}
    for label, window in windows.items():
        torch.manual_seed(0)
        model = build_model(cfg.model, data.num_classes, load_pretrained=False)
        criterion = Criterion(cfg.loss, data.num_classes, model.feature_dim)
        optimizer = engine.build_optimizer(model, criterion, cfg.optim)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        reads = []
        saved = {name: getattr(torch.Tensor, name) for name in ("item", "__bool__", "__float__", "tolist")}

        def counting(real, reads=reads):
            def read(self, *a, **k):
                reads.append(1)
                return real(self, *a, **k)
            return read

        for name, real in saved.items():
            setattr(torch.Tensor, name, counting(real))
        try:
            kwargs = {} if window is None else {"sync_every": window}
            engine._train_one_epoch(model, criterion, optimizer, scaler, batches, cfg, 0, torch.device("cpu"),
                                    None, 1, True, tqdm, **kwargs)
        finally:
            for name, real in saved.items():
                setattr(torch.Tensor, name, real)
        out[label] = len(reads) / steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/bench_pipeline", help="where the small synthetic set is (made)")
    ap.add_argument("--batches", type=int, default=20, help="batches timed through one worker")
    ap.add_argument("--model-rate", type=float, default=4000.0,
                    help="images/s the GPU trains at (default: an estimate for preset 18 at 288x144, bf16, "
                         "on an H100: ~40 GFLOP per training image at ~16 %% of 989 TFLOP/s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import reid
    from reid.data.synthetic import ensure_synthetic

    root = Path(ensure_synthetic(args.root, seed=0, small=True)) / "SYSU-MM01"
    print(f"reid from {Path(reid.__file__).parent}; {os.cpu_count()} CPUs; torch {torch.__version__}")
    rate, assemble_ms, restart_s = worker_rate(root, args.batches)
    print(f"one worker: {rate:.0f} images/s at 288x144 (P8K4 + grayscale copies, 96 images a batch)")
    print(f"main process per batch before .to(device): {assemble_ms:.2f} ms")
    print(f"epoch 2's first batch after epoch 1: {restart_s:.2f} s")
    for label, reads in syncs_per_step(root).items():
        print(f"host syncs per training step, {label}: {reads:.2f}")
    need = args.model_rate / 8
    print(f"to feed {args.model_rate:.0f} images/s, 8 workers must make {need:.0f} images/s each: "
          f"{need / rate:.1f} x this machine's worker ({8 * rate:.0f} images/s from 8 such workers)")


if __name__ == "__main__":
    main()
