"""Model size and cost at 288x144: parameters, FLOPs, and training-step time per image.

    PYTHONPATH=. python benchmarks/bench_model.py [--presets tiny,9,small] [--time-preset 9]
                                                  [--batch 4] [--iters 3] [--device cpu|cuda]

1. For every preset: parameters and forward FLOPs per image (torch.utils.flop_counter) of the bare
   timm CrossViT, of the full re-ID model (CSA, BN neck, classifier) and of the ViT baseline.
2. Forward + backward time per image of the full model vs the bare CrossViT backbone, on the same
   batch in one run: `batch` colour images plus their grayscale copies (2 x batch images, as the
   engine feeds them), same weights. The full step also computes the paper's losses (LSCE + adaptive
   triplet). Target: full / bare <= 1.3 (issue 4). Per-image cost counts every image fed.
3. AGW, the calibration baseline (docs/agw.md): parameters and FLOPs of its ResNet-50 and of the CPU `micro`
   size, at 288x144 and at the smoke profile's 96x48 (`--agw-presets`, empty to skip).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from reid.losses import AdaptiveTripletLoss, LabelSmoothingCrossEntropy
from reid.models import PRESETS, ModelConfig, build_model

SIZE = (288, 144)


def count_flops(fn, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops()


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sizes(preset: str) -> None:
    x = torch.randn(1, 3, *SIZE)
    full = build_model(ModelConfig(preset=preset), num_classes=395).eval()
    vit = build_model(ModelConfig(backbone="vit", preset=preset), num_classes=395).eval()
    bare = full.backbone.vit
    with torch.no_grad():
        rows = [
            ("bare CrossViT", params(bare), count_flops(bare.forward_features, x)),
            ("full model", params(full), count_flops(full, x)),
            ("ViT baseline", params(vit), count_flops(vit, x)),
        ]
    for name, n, flops in rows:
        # FlopCounterMode counts a multiply-add as 2 FLOPs
        print(f"  preset {preset:5s} {name:13s} {n / 1e6:7.2f} M params {flops / 1e9:7.2f} GFLOPs/image")


def agw_sizes(preset: str) -> None:
    for size in (SIZE, (96, 48)):
        cfg = ModelConfig(backbone="agw", preset=preset, img_size=size, csa=False, pooling="gem", drop_path_rate=0.0)
        model = build_model(cfg, num_classes=395).eval()
        with torch.no_grad():  # modality 0: one stem, as every image takes exactly one
            flops = count_flops(lambda x, model=model: model(x, 0), torch.randn(1, 3, *size))
        print(f"  AGW {preset:5s} at {size[0]}x{size[1]}  {params(model) / 1e6:7.2f} M params "
              f"({params(model.backbone) / 1e6:.2f} M backbone)  {flops / 1e9:7.3f} GFLOPs/image")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(steps: dict, iters: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each step, the steps alternating within every iteration so that a
    busy machine slows them alike (timed back to back, load drift alone moved the ratio by 0.4)."""
    for step in steps.values():
        step()  # warm-up (allocations, cudnn choices)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(iters):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def timing(preset: str, batch: int, iters: int, device: torch.device) -> float:
    torch.manual_seed(0)
    num_ids = max(1, batch // 2)
    model = build_model(ModelConfig(preset=preset), num_classes=num_ids).to(device).train()
    bare = model.backbone.vit
    colour = torch.randn(batch, 3, *SIZE, device=device)
    gray = colour.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    images = torch.cat([colour, gray])  # the engine appends the grayscale views, same labels
    pids = torch.arange(num_ids, device=device).repeat_interleave(2)[:batch].repeat(2)
    ce, triplet = LabelSmoothingCrossEntropy(0.1), AdaptiveTripletLoss(1.0)

    def full_step():
        model.zero_grad(set_to_none=True)
        out = model(images)
        (ce(out["logits"], pids) + triplet(out["features"], pids)).backward()

    def bare_step():
        model.zero_grad(set_to_none=True)
        tokens = bare.forward_features(images)
        sum(t[:, 0].square().mean() + t[:, 1:].square().mean() for t in tokens).backward()

    n = len(images)
    medians = time_interleaved({"bare": bare_step, "full": full_step}, iters, device)
    bare_s, full_s = medians["bare"] / n, medians["full"] / n
    ratio = full_s / bare_s
    print(
        f"  preset {preset}, {batch} colour + {batch} grayscale images, "
        f"{iters} interleaved iterations on {device}, medians"
    )
    print(f"  bare CrossViT backbone  {bare_s * 1e3:8.2f} ms/image (forward + backward)")
    print(f"  full model + losses     {full_s * 1e3:8.2f} ms/image (forward + backward)")
    print(f"  ratio full / bare       {ratio:8.3f}   (target <= 1.3: {'ok' if ratio <= 1.3 else 'OVER'})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="presets for the size table")
    parser.add_argument("--time-preset", default="9", help="preset for the timing run")
    parser.add_argument("--batch", type=int, default=4, help="colour images per batch (plus as many gray)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--agw-presets", default="50,micro", help="AGW sizes for its table (empty: none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"Sizes at {SIZE[0]}x{SIZE[1]} (395 training identities, SYSU-MM01):")
    for preset in args.presets.split(","):
        sizes(preset.strip())
    print("AGW (395 training identities):")
    for preset in filter(None, args.agw_presets.split(",")):
        agw_sizes(preset.strip())
    print("Training step time per image:")
    timing(args.time_preset, args.batch, args.iters, device)


if __name__ == "__main__":
    main()
