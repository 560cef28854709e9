"""ImageNet weights for the backbone (`model.pretrained`): a local timm checkpoint file, or "timm".

- a file (.pth / .pt / .bin / .safetensors): read from disk, nothing is downloaded;
- "timm": `timm.create_model(<preset's model>, pretrained=True)`, i.e. timm's own download and cache
  (the Hugging Face hub cache every timm user knows); offline, a one-line error names the checkpoint;
- "none": from scratch, on purpose. Left unset, a run on real data refuses to start (`check_pretrained`):
  the paper trains from ImageNet weights, and a silent from-scratch run is the commonest cause of
  numbers far below a paper's.

The Table 3 ViT baseline loads the *same* CrossViT checkpoint: its coarse branch alone (patch embedding,
CLS token, position embedding, that branch's transformer blocks in order, final norm), which is exactly
a ViT as wide and as deep as that branch; so "+CrossViT" compares like with like. A plain timm ViT
checkpoint file loads into it too.

timm's crossvit_*_240 models run at 240x240 with img_scale (1.0, 224/240): the fine branch (patch 12)
sees 240x240 -> a 20x20 grid, the coarse branch (patch 16) sees 224x224 -> 14x14. Our 288x144 model has
24x12 and 18x9 grids, so each branch's position embedding is resampled (bicubic, CLS entry kept) with
`timm.layers.resample_abs_pos_embed`, passing both grid sizes (the new grids are not square).
The classifier heads are dropped; every other tensor must match exactly.

AGW's ResNet (`backbone: agw`, `reid.models.agw`) loads ResNet-50 ImageNet weights the same three ways: a file
(a torchvision or timm resnet50 state_dict), "torchvision" (torchvision's IMAGENET1K_V1, the weights AGW's code
loads through `resnet50(pretrained=True)`), "timm" (timm's resnet50 default), or "none". The stem goes into both
modality stems, as AGW starts both streams from one ImageNet network; its non-local blocks start as identities.

A relative file path is read from the repository root (`weights_file`), whatever the working directory
(a notebook runs in notebooks/), so a config can name a committed file such as `FRACTAL_WEIGHTS`, the
CPU profile's FractalDB-pretrained backbone (docs/pretraining.md; `python -m reid pretrain` writes it).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from reid.utils.checkpoint import pickle_refusal
from reid.utils.errors import UserError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
REPOSITORY = Path(__file__).resolve().parents[2]  # reid/models/ -> the repository (an editable install)
# The one home of the default FractalDB-pretrained backbone of the smoke profile (micro preset, conv stem,
# 96x48), relative to the repository: `python -m reid pretrain` writes it (and its .json) by default.
FRACTAL_WEIGHTS = "results/pretrained/fractal_micro_conv_96x48.safetensors"


def weights_file(source: str | Path) -> Path:
    """The file `model.pretrained` names: an absolute path as is, a relative one from the repository root
    (not the working directory), so one config means one file from the command line and the notebooks."""
    path = Path(source).expanduser()
    return path if path.is_absolute() else REPOSITORY / path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from .pth/.pt/.bin (torch, weights only) or .safetensors; unwrap the usual
    {"model": ...} / {"state_dict": ...} containers and a DDP "module." prefix. A relative `path` is read
    from the repository root (`weights_file`)."""
    given, path = str(path), weights_file(path)
    if not path.is_file():
        where = "" if Path(given).is_absolute() else f" ({path}: a relative path is read from the repository root)"
        raise UserError(f"model pretrained={given!r}: no such file{where}")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise UserError(f"model pretrained={str(path)!r}: expected one of {list(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"model pretrained={str(path)!r}: cannot read weights: the file {pickle_refusal(err)}; use a "
                        "weights file of tensors (.safetensors, or a state_dict saved with torch.save)") from None
    except Exception as err:  # noqa: BLE001 -- truncated, not torch, bad header: a UserError
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"model pretrained={str(path)!r}: cannot read weights ({message})") from None
    for container in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model pretrained={str(path)!r}: not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _grid_of(num_tokens: int, key: str, path: Path, like: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The grid of a checkpoint's position embedding: square for timm's ImageNet weights, or the target
    grid's aspect (`like`: rows, columns) for a start pretrained on person-shaped 2:1 crops (the FractalDB
    start at 96x48 has 8x4 and 6x3 grids). Anything else is ambiguous and refused."""
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return side, side
    rows, cols = like
    for c in range(1, num_tokens + 1):
        if num_tokens % c == 0 and (num_tokens // c) * cols == c * rows:
            return num_tokens // c, c
    g = math.gcd(rows, cols)
    raise UserError(f"model pretrained={str(path)!r}: {key} has {num_tokens} patch positions, neither a square "
                    f"grid nor one of the model's {rows // g}:{cols // g} aspect")


def timm_state_dict(preset: str, conv_stem: bool) -> dict[str, torch.Tensor]:
    """timm's ImageNet weights of a preset through timm's own pretrained mechanism (download or cache)."""
    import timm

    from reid.models.crossvit import timm_name

    name = timm_name(preset, conv_stem)
    if name is None:
        raise UserError(f"model pretrained=timm: preset {preset!r}{' with conv_stem' if conv_stem else ''} has "
                        "no timm ImageNet checkpoint; use a timm preset or model.pretrained=none")
    try:
        return timm.create_model(name, pretrained=True).state_dict()
    except Exception as err:  # noqa: BLE001 -- offline, not cached, hub errors: one line naming the checkpoint
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"model pretrained=timm: cannot get timm's {name} ImageNet weights ({message[:160]}); on a machine "
            f"without internet, download {name} elsewhere and pass the file: model.pretrained=/path/to/{name}"
            ".safetensors") from None


def coarse_branch_as_vit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CrossViT state_dict's coarse branch (branch 1) renamed to a timm ViT's keys; other tensors dropped.

    CrossViT block k holds `blocks.k.blocks.1.j` (j = 0..d-1 for the coarse branch): ViT block k*d + j.
    """
    depth = 1 + max(int(k.split(".")[4]) for k in state if k.startswith("blocks.0.blocks.1."))
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("patch_embed.1."):
            out["patch_embed." + key.removeprefix("patch_embed.1.")] = value
        elif key in ("cls_token_1", "pos_embed_1"):
            out[key.removesuffix("_1")] = value
        elif key.startswith("norm.1."):
            out["norm." + key.removeprefix("norm.1.")] = value
        elif len(parts) > 4 and parts[0] == "blocks" and parts[2] == "blocks" and parts[3] == "1":
            out[".".join(["blocks", str(int(parts[1]) * depth + int(parts[4])), *parts[5:]])] = value
    return out


def load_pretrained_backbone(backbone: nn.Module, source: str | Path, preset: str = "9",
                             conv_stem: bool = False) -> None:
    """Load timm ImageNet weights (a file, or "timm") into `backbone.vit` (a CrossViTBackbone or
    ViTBackbone), resampling the position embeddings named in `backbone.pos_embed_names` to
    `backbone.grid_sizes`. A CrossViT checkpoint given to the ViT baseline loads its coarse branch."""
    path = weights_file(source)
    state = timm_state_dict(preset, conv_stem) if str(source) == "timm" else read_state_dict(path)
    # The original IBM checkpoints name the per-branch tensors "pos_embed.0"; timm names them "pos_embed_0".
    state = {
        k.replace("pos_embed.", "pos_embed_").replace("cls_token.", "cls_token_"): v for k, v in state.items()
    }
    state = {k: v for k, v in state.items() if not k.startswith("head")}  # ImageNet classifier(s)
    if "pos_embed" in backbone.pos_embed_names and "pos_embed_1" in state:
        state = coarse_branch_as_vit(state)
    target = backbone.vit.state_dict()
    for key, grid in zip(backbone.pos_embed_names, backbone.grid_sizes):
        if key in state and state[key].shape != target[key].shape and state[key].ndim == 3:
            old_grid = _grid_of(state[key].shape[1] - 1, key, path, like=tuple(grid))
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
            f"model pretrained={str(source)!r} does not fit this backbone ({'; '.join(details)}); "
            f"is it the timm checkpoint of the same preset?"
        )
    backbone.vit.load_state_dict(state, strict=True)


def resnet_state_dict(source: str) -> dict[str, torch.Tensor]:
    """ResNet-50 ImageNet weights through torchvision's or timm's own download and cache."""
    try:
        if source == "torchvision":
            from torchvision.models import ResNet50_Weights, resnet50

            return resnet50(weights=ResNet50_Weights.IMAGENET1K_V1).state_dict()
        import timm

        return timm.create_model("resnet50", pretrained=True).state_dict()
    except Exception as err:  # noqa: BLE001 -- offline, not cached: one line naming the weights and the fix
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"model pretrained={source}: cannot get {source}'s ResNet-50 ImageNet weights ({message[:160]}); on a "
            "machine without internet, download them elsewhere and pass the file: "
            "model.pretrained=/path/to/resnet50.pth") from None


def load_resnet_backbone(backbone: nn.Module, source: str | Path, preset: str = "50") -> None:
    """ResNet-50 ImageNet weights (a file, "torchvision" or "timm") into an `AGWBackbone`; its non-local
    blocks keep their identity start. Only preset "50" has ImageNet weights."""
    from reid.models.agw import imagenet_keys

    if preset != "50":
        raise UserError(f"model pretrained={str(source)!r}: AGW preset {preset!r} has no ImageNet weights (they "
                        "are ResNet-50's); use preset 50 or model.pretrained=none")
    if str(source) in ("torchvision", "timm"):
        state = resnet_state_dict(str(source))
    else:
        state = read_state_dict(source)
    state = imagenet_keys(state)
    target = {k: v for k, v in backbone.state_dict().items() if not k.startswith("non_local.")}
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    mismatched = sorted(k for k in set(target) & set(state) if state[k].shape != target[k].shape)
    if missing or unexpected or mismatched:
        example = (missing or unexpected or mismatched)[0]
        raise UserError(f"model pretrained={str(source)!r} does not fit AGW's ResNet-50 ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected, {len(mismatched)} mismatched tensors, e.g. {example}); "
                        "expected a torchvision/timm resnet50 state_dict")
    backbone.load_state_dict(state, strict=False)  # strict on every tensor but the new non-local blocks


def check_pretrained(model_cfg, data_root: str | Path, synthetic: bool) -> None:
    """Refuse, before any work, a run on real data whose config leaves `model.pretrained` unset."""
    if model_cfg.pretrained is not None or synthetic:
        return
    from reid.models.crossvit import timm_name

    if model_cfg.backbone == "agw":
        name, download = "resnet50", "=torchvision, AGW's, or =timm to let that library download them"
    else:
        name, download = timm_name(model_cfg.preset, model_cfg.conv_stem) or "a timm CrossViT", "=timm to let timm download them"
    raise UserError(
        f"{data_root} is real data and model.pretrained is not set: the paper trains from ImageNet weights. "
        f"Pass --set model.pretrained=/path/to/{name}.safetensors (or {download}), "
        "or --set model.pretrained=none to train from scratch on purpose")
