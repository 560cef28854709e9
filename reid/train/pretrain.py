"""Pretrain the re-ID backbone on FractalDB-style images: a stand-in for ImageNet weights on the CPU profile.

The paper fine-tunes ImageNet weights; none can be downloaded here, and the CPU smoke profile's micro preset
has no ImageNet checkpoint anyway. Formula-driven supervised learning (Kataoka et al., ACCV 2020; Nakashima
et al., AAAI 2022 for ViTs) gives a generic classification task without natural images and without persons
(reid/data/fractal.py): we train the *same* backbone the re-ID model builds on it, with a linear classifier
on the pooled feature, and keep the backbone.

    pretrain("results/pretrained/fractal_micro_conv_96x48", classes=1000, images_per_class=64, steps=9000)
    # -> results/pretrained/fractal_micro_conv_96x48.safetensors  (backbone.vit's state_dict, no head)
    #    results/pretrained/fractal_micro_conv_96x48.json         (arguments, provenance, sha256, accuracy)

The weights load with `model.pretrained=<file>.safetensors` like any timm checkpoint (reid/models/pretrained.py),
into the CrossViT and, through its coarse branch, into the Table 3 ViT baseline.

Deterministic: one torch thread, every draw seeded from `seed` (the images from reid.data.fractal's keyed
generators, the batch order and crops from numpy generators keyed by (seed, step), the weights' init and
drop-path from torch.manual_seed), no data-loader workers: the same arguments on the same CPU give the same
bytes. docs/pretraining.md explains the choices.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reid.config import OptimConfig
from reid.data.fractal import fractal_set
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from reid.models import ModelConfig, build_model
from reid.models.pretrained import FRACTAL_WEIGHTS, weights_file
from reid.records.provenance import check_output_file, provenance, replacing_note
from reid.train.engine import build_optimizer
from reid.utils.atomic import atomic_outputs
from reid.utils.errors import UserError

BATCH_STREAM, CROP_STREAM = 2, 3  # numpy streams of pretrain's own draws (fractal.py uses 0 and 1)


class FractalClassifier(nn.Module):
    """The re-ID backbone + a linear classifier on the concatenation, per branch, of the mean patch token and
    the CLS token: both poolings the re-ID model may use (`model.pooling`) are trained."""

    def __init__(self, backbone: nn.Module, classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(2 * sum(backbone.dims), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, maps = self.backbone(x)
        pooled = [part for token, fmap in zip(cls, maps) for part in (fmap.mean(dim=(2, 3)), token)]
        return self.head(torch.cat(pooled, dim=1))

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}


def output_paths(out: str | Path | None) -> tuple[Path, Path]:
    """(<out>.safetensors, <out>.json): `out` names both, with or without one of these suffixes; None is the
    repository's FRACTAL_WEIGHTS (the file the CPU profile would load)."""
    out = weights_file(FRACTAL_WEIGHTS) if out is None else Path(out)
    if out.suffix in (".safetensors", ".json"):
        out = out.with_suffix("")
    return out.with_name(out.name + ".safetensors"), out.with_name(out.name + ".json")


@functools.lru_cache(maxsize=2)
def pass_order(seed: int, number: int, count: int) -> np.ndarray:
    """The shuffled order of pass `number` over `count` training images, keyed by (seed, pass number)."""
    return np.random.default_rng([seed, BATCH_STREAM, number]).permutation(count)


def batch_indices(seed: int, step: int, batch_size: int, count: int) -> np.ndarray:
    """The training images of a 0-based step: the next `batch_size` places of consecutive shuffled passes
    (a batch may end one pass and start the next), a function of (seed, step) alone."""
    places = step * batch_size + np.arange(batch_size)
    return np.array([pass_order(seed, int(place // count), count)[place % count] for place in places])


def lr_at(step: int, steps: int, warmup: int) -> float:
    """Multiplier of the base lr at a 0-based step: linear warm-up over `warmup` steps, then a cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _positive(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"pretrain {name}={value!r} is not valid; expected an integer >= {minimum}")


def _check(classes, images_per_class, held_out_per_class, steps, batch_size, seed, lr, weight_decay,
           warmup_fraction, pad, log_every) -> None:
    """Every argument, before anything is generated or written."""
    for name, value, minimum in (("classes", classes, 2), ("images_per_class", images_per_class, 1),
                                 ("held_out_per_class", held_out_per_class, 0), ("steps", steps, 1),
                                 ("batch_size", batch_size, 2), ("seed", seed, 0), ("pad", pad, 0),
                                 ("log_every", log_every, 1)):
        _positive(name, value, minimum)
    if not isinstance(lr, (int, float)) or not 0 < lr < 1:
        raise UserError(f"pretrain lr={lr!r} is not valid; expected 0 < lr < 1")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise UserError(f"pretrain weight_decay={weight_decay!r} is not valid; expected >= 0")
    if not isinstance(warmup_fraction, (int, float)) or not 0 <= warmup_fraction < 1:
        raise UserError(f"pretrain warmup_fraction={warmup_fraction!r} is not valid; expected 0 <= f < 1")


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, normalised with the ImageNet statistics the re-ID transforms use, so the
    fine-tuned model sees inputs on the scale the weights learned."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def random_crops(images: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """Pad with black (the images' background) and crop back at a random offset per image: a small shift,
    the only augmentation (flip, colour, size and place are already drawn per instance)."""
    if pad == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = rng.integers(0, 2 * pad + 1, size=(len(images), 2))
    return torch.stack([p[:, r:r + height, c:c + width] for p, (r, c) in zip(padded, offsets)])


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy in eval mode (no augmentation)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(to_input(images[start:start + batch_size]))
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    model.train()
    return correct / max(1, len(images))


def pretrain(out: str | Path | None = None, preset: str = "micro", conv_stem: bool = True, height: int = 96, width: int = 48,
             classes: int = 1000, images_per_class: int = 64, held_out_per_class: int = 5, steps: int = 9000,
             batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05, warmup_fraction: float = 0.05,
             drop_path_rate: float = 0.0, pad: int = 4, seed: int = 0, log_every: int = 100,
             command: str | None = None, quiet: bool = False) -> dict:
    """Pretrain the backbone of (preset, conv_stem, height x width) on `classes` fractal categories; write
    `<out>.safetensors` (the backbone's `vit` state_dict) and `<out>.json` (provenance and results) whole or
    not at all, and return the JSON's content. Bad arguments are a `UserError` before any work."""
    say = (lambda *_: None) if quiet else (lambda text: print(text, flush=True))
    arguments = {"preset": str(preset), "conv_stem": conv_stem, "height": height, "width": width, "classes": classes,
                 "images_per_class": images_per_class, "held_out_per_class": held_out_per_class, "steps": steps,
                 "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                 "warmup_fraction": warmup_fraction, "drop_path_rate": drop_path_rate, "pad": pad, "seed": seed}
    _check(classes, images_per_class, held_out_per_class, steps, batch_size, seed, lr, weight_decay,
           warmup_fraction, pad, log_every)
    weights_path, json_path = output_paths(out)
    check_output_file(weights_path, "--out")
    check_output_file(json_path, "--out")
    # The backbone the re-ID model builds, through build_model (ModelConfig validates preset, size, stem).
    # CSA and the re-ID head are not part of backbone.vit and are dropped with the classifier. No
    # multi-scale residual: its gammas live outside backbone.vit, so they could not be saved; without
    # them the saved weights compute exactly the function that was trained (the re-ID model's gammas then
    # start at 0, which is that same function).
    model_cfg = ModelConfig(backbone="crossvit", preset=preset, img_size=(height, width), conv_stem=conv_stem,
                            csa=False, multiscale_residual=False, drop_path_rate=drop_path_rate, pretrained="none")
    note = replacing_note([weights_path, json_path])
    if note:
        say(note)
    record = {"provenance": provenance(command)}  # git state now: the code that runs, before any edit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        train_images, train_labels = fractal_set(seed, classes, images_per_class, height, width)
        held_images, held_labels = fractal_set(seed, classes, held_out_per_class, height, width,
                                               first_instance=images_per_class)
        data_time = time.perf_counter() - started
        say(f"pretrain: {len(train_images)} training + {len(held_images)} held-out fractal images of {classes} "
            f"categories at {height}x{width} in {data_time:.0f} s")
        train_x = torch.from_numpy(train_images).permute(0, 3, 1, 2).contiguous()
        held_x = torch.from_numpy(held_images).permute(0, 3, 1, 2).contiguous()
        train_y, held_y = torch.from_numpy(train_labels), torch.from_numpy(held_labels)

        torch.manual_seed(seed)
        model = FractalClassifier(build_model(model_cfg, num_classes=1).backbone, classes)
        model.train()
        optim = OptimConfig(name="adamw", lr=lr, backbone_lr_scale=1.0, weight_decay=weight_decay)
        optimizer = build_optimizer(model, nn.Module(), optim)
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        warmup = int(warmup_fraction * steps)
        history, recent = [], []
        tick = time.perf_counter()
        for step in range(steps):
            indices = batch_indices(seed, step, batch_size, len(train_x))
            batch = random_crops(train_x[indices], pad, np.random.default_rng([seed, CROP_STREAM, step]))
            labels = train_y[indices]
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * lr_at(step, steps, warmup)
            logits = model(to_input(batch))
            loss = F.cross_entropy(logits, labels)
            if not torch.isfinite(loss):
                raise UserError(f"pretrain: the loss became {loss.item()} at step {step + 1}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            recent.append((loss.item(), (logits.argmax(1) == labels).float().mean().item()))
            recent = recent[-log_every:]
            if (step + 1) % log_every == 0 or step + 1 == steps:
                seconds = time.perf_counter() - tick
                row = {"step": step + 1, "lr": optimizer.param_groups[0]["lr"],
                       "loss": float(np.mean([r[0] for r in recent])),
                       "train_acc": float(np.mean([r[1] for r in recent])),
                       "steps_per_s": round((step + 1) / seconds, 3)}
                history.append(row)
                say(f"pretrain: step {row['step']}/{steps} loss {row['loss']:.3f} train acc {row['train_acc']:.3f} "
                    f"({row['steps_per_s']:.2f} steps/s)")
        train_time = time.perf_counter() - tick
        # Eval-mode accuracy on the held-out instances, and on as many training images (spread over the
        # categories) for comparison.
        spread = torch.arange(0, len(train_x), max(1, len(train_x) // max(1, len(held_x))))[:len(held_x) or None]
        train_eval = accuracy(model, train_x[spread], train_y[spread], 256)
        held_out = accuracy(model, held_x, held_y, 256) if len(held_x) else None
        wall = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)

    state = {k: v.detach().contiguous().clone() for k, v in model.backbone.vit.state_dict().items()}
    record.update({
        "what": "FractalDB-style pretrained backbone (backbone.vit state_dict) for model.pretrained; "
                "docs/pretraining.md",
        "weights": weights_path.name,
        "arguments": arguments,
        "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model_cfg).items()},
        "tensors": len(state),
        "parameters": int(sum(v.numel() for v in state.values())),
        "images": {"train": len(train_x), "held_out": len(held_x)},
        "data_time_s": round(data_time, 1),
        "train_time_s": round(train_time, 1),
        "wall_time_s": round(wall, 1),
        "steps_per_s": round(steps / train_time, 3),
        "threads": 1,
        "final_train_loss": history[-1]["loss"],
        "final_train_accuracy": history[-1]["train_acc"],
        "train_eval_accuracy": train_eval,
        "held_out_accuracy": held_out,
        "history": history,
    })
    from safetensors.torch import save_file

    with atomic_outputs([weights_path, json_path], "--out") as (weights_tmp, json_tmp):
        save_file(state, str(weights_tmp))
        record["sha256"] = hashlib.sha256(weights_tmp.read_bytes()).hexdigest()
        record["bytes"] = weights_tmp.stat().st_size
        json_tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    say(f"pretrain: wrote {weights_path} ({record['bytes'] / 1e6:.1f} MB, sha256 {record['sha256'][:16]}...) and "
        f"{json_path}; final train acc {record['final_train_accuracy']:.3f}, held-out acc {held_out}")
    return record
