"""Local ImageNet weights for the backbone: a timm checkpoint file, never a download.

timm's crossvit_*_240 models run at 240x240 with img_scale (1.0, 224/240): the fine branch (patch 12)
sees 240x240 -> a 20x20 grid, the coarse branch (patch 16) sees 224x224 -> 14x14. Our 288x144 model has
24x12 and 18x9 grids, so each branch's position embedding is resampled (bicubic, CLS entry kept) with
`timm.layers.resample_abs_pos_embed`, passing both grid sizes (the new grids are not square).
The classifier heads are dropped; every other tensor must match exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from reid.errors import UserError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from .pth/.pt/.bin (torch, weights only) or .safetensors; unwrap the usual
    {"model": ...} / {"state_dict": ...} containers and a DDP "module." prefix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model pretrained_path={str(path)!r}: no such file")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise UserError(f"model pretrained_path={str(path)!r}: expected one of {list(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- truncated, not torch, unsafe pickle, bad header: a UserError
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"model pretrained_path={str(path)!r}: cannot read weights ({message})") from None
    for container in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model pretrained_path={str(path)!r}: not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _grid_of(num_tokens: int, key: str, path: Path) -> tuple[int, int]:
    """Square grid of a checkpoint's position embedding (timm's CrossViT and ViT train on squares)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise UserError(
            f"model pretrained_path={str(path)!r}: {key} has {num_tokens} patch positions, not a square grid"
        )
    return side, side


def load_pretrained_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load timm weights into `backbone.vit` (a CrossViTBackbone or ViTBackbone), resampling the
    position embeddings named in `backbone.pos_embed_names` to `backbone.grid_sizes`."""
    path = Path(path)
    state = read_state_dict(path)
    # The original IBM checkpoints name the per-branch tensors "pos_embed.0"; timm names them "pos_embed_0".
    state = {
        k.replace("pos_embed.", "pos_embed_").replace("cls_token.", "cls_token_"): v for k, v in state.items()
    }
    state = {k: v for k, v in state.items() if not k.startswith("head")}  # ImageNet classifier(s)
    target = backbone.vit.state_dict()
    for key, grid in zip(backbone.pos_embed_names, backbone.grid_sizes):
        if key in state and state[key].shape != target[key].shape and state[key].ndim == 3:
            old_grid = _grid_of(state[key].shape[1] - 1, key, path)
            state[key] = resample_abs_pos_embed(
                state[key], new_size=list(grid), old_size=list(old_grid), num_prefix_tokens=1
            )
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    mismatched = sorted(k for k in set(target) & set(state) if state[k].shape != target[k].shape)
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if mismatched:
            k = mismatched[0]
            details.append(
                f"{len(mismatched)} shape mismatches, e.g. {k}: "
                f"file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
            )
        raise UserError(
            f"model pretrained_path={str(path)!r} does not fit this backbone ({'; '.join(details)}); "
            f"is it the timm checkpoint of the same preset?"
        )
    backbone.vit.load_state_dict(state, strict=True)
