"""Training throughput (images/s) and peak memory of the full model at 288x144.

    python benchmarks/bench_train.py                         # CPU, preset 9, a few steps
    python benchmarks/bench_train.py --device cuda --amp     # GPU with bf16/fp16 autocast

Counts every image the model sees per step: P*K visible + P*K infrared + their grayscale copies.
Random tensors stand in for the data (benchmarks/bench_data.py measures the input pipeline), so the
figure is the model's training speed: forward, LSCE + adaptive triplet, backward, optimiser step.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.config import load_config
from reid.engine import _autocast, build_optimizer, train_step
from reid.losses import Criterion
from reid.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast on CUDA (bf16 where supported)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--preset", default="9")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--ids", type=int, default=2, help="P identities per batch (paper: 4)")
    parser.add_argument("--instances", type=int, default=2, help="K images per identity and modality (paper: 4)")
    parser.add_argument("--no-gray", action="store_true", help="leave out the grayscale copies")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    device = torch.device(args.device)
    cfg = load_config("paper_sysu")
    model = build_model(replace(cfg.model, preset=args.preset, img_size=(args.height, args.width)),
                        num_classes=395).to(device)
    criterion = Criterion(cfg.loss, 395, model.feature_dim).to(device)
    optimizer = build_optimizer(model, criterion, cfg.optim)
    amp_dtype = _autocast(device, args.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    net = torch.compile(model) if args.compile else model
    per_modality = args.ids * args.instances
    batch = 2 * per_modality * (1 if args.no_gray else 2)
    pids = torch.arange(args.ids).repeat_interleave(args.instances).repeat(batch // per_modality).to(device)
    imgs = torch.randn(batch, 3, args.height, args.width, device=device)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        train_step(net, criterion, optimizer, scaler, imgs, pids, amp_dtype, grad_clip=5.0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"device: {name}; amp: {amp_dtype}; compile: {args.compile}")
    print(f"model: crossvit preset {args.preset}, {params:.1f} M parameters, {args.height}x{args.width}, "
          f"batch {batch} images ({args.ids} ids x {args.instances} x 2 modalities{'' if args.no_gray else ' x 2 gray'})")
    print(f"training: {args.steps * batch / elapsed:.1f} images/s ({elapsed / args.steps:.2f} s/step over {args.steps} steps)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        print(f"peak process memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
