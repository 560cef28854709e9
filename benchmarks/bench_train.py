"""Training throughput (images/s) and peak memory of a config's model, batch, losses and optimiser.

    python benchmarks/bench_train.py --steps 200 --warmup 20                  # the CPU profile (smoke)
    python benchmarks/bench_train.py --set optim.fused=true                   # any override, as in training
    python benchmarks/bench_train.py --config paper_sysu --set data.num_ids=8 --device cuda --amp  # P8K4 on a GPU

Counts every image the model sees per step: P*K visible + P*K infrared + the grayscale copies the config
makes (data.with_gray, data.gray_of).
Random tensors stand in for the data (benchmarks/bench_data.py measures the input pipeline), so the
figure is the model's training speed: forward, LSCE + adaptive triplet, backward, optimiser step.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.config import load_config
from reid.data.train_data import images_per_batch
from reid.losses import Criterion
from reid.models import build_model
from reid.train.engine import build_optimizer, train_step
from reid.utils.device import autocast_dtype, grad_scaler
from reid.utils.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast on CUDA (bf16 where native, else fp16)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--config", default="smoke", help="config name in reid/configs or a YAML path "
                        "(paper_sysu: preset 18 at 288x144, ~23 s a step and ~7 GiB on 2 CPU cores)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set model.preset=9 (repeatable)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    device = torch.device(args.device)
    cfg = load_config(args.config, args.set)
    num_classes = 395  # SYSU-MM01's training identities
    # Random weights: ImageNet ones (model.pretrained) would not change the speed.
    model = build_model(cfg.model, num_classes=num_classes, load_pretrained=False).to(device)
    criterion = Criterion(cfg.loss, num_classes, model.feature_dim).to(device)
    optimizer = build_optimizer(model, criterion, cfg.optim)
    amp_dtype = autocast_dtype(device, args.amp)
    scaler = grad_scaler(amp_dtype)
    net = torch.compile(model) if args.compile else model
    d = cfg.data
    per_modality = d.num_ids * d.num_instances
    batch = images_per_batch(d)
    pids = torch.arange(d.num_ids).repeat_interleave(d.num_instances).repeat(batch // per_modality).to(device)
    imgs = torch.randn(batch, 3, d.height, d.width, device=device)
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
    print(f"config: {' '.join([args.config, *args.set])}; optimiser: {cfg.optim.name}"
          f"{' (fused)' if cfg.optim.fused else ''}")
    print(f"model: {cfg.model.backbone} preset {cfg.model.preset}, {params:.1f} M parameters, {d.height}x{d.width}, "
          f"batch {batch} images ({d.num_ids} ids x {d.num_instances} x 2 modalities + {batch - 2 * per_modality} grayscale copies)")
    print(f"training: {args.steps * batch / elapsed:.1f} images/s ({1000 * elapsed / args.steps:.1f} ms/step over "
          f"{args.steps} steps)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        print(f"peak process memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a bad --config / --set: one line, no traceback, exit 2 (as the CLI)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
