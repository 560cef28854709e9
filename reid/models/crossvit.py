"""The dual-branch CrossViT backbone (Sec. 1.2) at a non-square person size, on top of timm.

timm's `CrossVit` already implements Eq. 5-8: in every multi-scale block, each branch runs its own
transformer blocks (Eq. 1-4), then its CLS token is projected to the other branch's width (P, Eq. 5),
attends to that branch's patch tokens (Eq. 6-7, residual on the projected CLS) and is back-projected
(BP, Eq. 8). This module adds what timm lacks for re-ID:

- a (H, W) input such as 288x144 with `img_scale=(1, 1)`, so timm never interpolates or crops the
  input, and sizes that timm would miscount (a side not divisible by a patch size) are refused;
- the "multi-scale residual connection" of Sec. 1.2 (our reading, see docs/deviations.md);
- per-branch outputs: the CLS token and the patch tokens as a (B, C, h, w) map for CSA and Grad-CAM.

Branch 0 is the fine branch (patch 12, narrow), branch 1 the coarse one (patch 16, wide).
"""

from __future__ import annotations

import torch
from timm.models.crossvit import CrossVit
from torch import nn

from reid.utils.errors import UserError

# timm's widths and depths (crossvit_{tiny,9,small,15,18,base}_240). depth[k] = (fine blocks, coarse
# blocks, cross-attention blocks) of multi-scale block k; mlp_ratio = (fine, coarse, cross).
PRESETS: dict[str, dict] = {
    "tiny": {"embed_dim": (96, 192), "depth": ((1, 4, 0),) * 3, "num_heads": (3, 3),
             "mlp_ratio": (4.0, 4.0, 1.0)},
    "9": {"embed_dim": (128, 256), "depth": ((1, 3, 0),) * 3, "num_heads": (4, 4),
          "mlp_ratio": (3.0, 3.0, 1.0)},
    "small": {"embed_dim": (192, 384), "depth": ((1, 4, 0),) * 3, "num_heads": (6, 6),
              "mlp_ratio": (4.0, 4.0, 1.0)},
    "15": {"embed_dim": (192, 384), "depth": ((1, 5, 0),) * 3, "num_heads": (6, 6),
           "mlp_ratio": (3.0, 3.0, 1.0)},
    "18": {"embed_dim": (224, 448), "depth": ((1, 6, 0),) * 3, "num_heads": (7, 7),
           "mlp_ratio": (3.0, 3.0, 1.0)},
    "base": {"embed_dim": (384, 768), "depth": ((1, 4, 0),) * 3, "num_heads": (12, 12),
             "mlp_ratio": (4.0, 4.0, 1.0)},
    # Not a timm model (no ImageNet weights): a CPU-sized CrossViT for the smoke profile, the notebooks
    # and the tests. Same structure (two branches, cross-attention fusion in every multi-scale block).
    "micro": {"embed_dim": (48, 96), "depth": ((1, 2, 0),) * 2, "num_heads": (2, 2),
              "mlp_ratio": (2.0, 2.0, 1.0)},
}

# The timm model whose ImageNet checkpoint matches each preset (for `model.pretrained`), and with
# `conv_stem: true` (CrossViT-dagger, timm's `multi_conv`), where timm has one.
TIMM_NAMES = {p: f"crossvit_{p}_240" for p in ("tiny", "9", "small", "15", "18", "base")}
TIMM_DAGGER_NAMES = {p: f"crossvit_{p}_dagger_240" for p in ("9", "15", "18")}


def timm_embed(vit: CrossVit, x: torch.Tensor) -> list[torch.Tensor]:
    """Per branch: patch tokens with the CLS token in front and the position embedding added.

    This is timm's private `CrossVit._embed` (timm 1.0.x; the repository pins timm 1.0.31 in
    constraints.txt), the package's only call into timm's private API: forward_features would run
    the blocks too, and we need the tokens between them (the multi-scale residual). If a timm
    release renames it, this is the one place to change.
    """
    if not hasattr(vit, "_embed"):
        raise RuntimeError("this timm's CrossVit has no _embed (written for timm 1.0.x, tested with 1.0.31): "
                           "pip install -c constraints.txt -e .")
    return vit._embed(x)


def timm_name(preset: str, conv_stem: bool = False) -> str | None:
    """The timm model (and so the ImageNet checkpoint family) of a preset, or None (e.g. `micro`)."""
    return (TIMM_DAGGER_NAMES if conv_stem else TIMM_NAMES).get(preset)


def check_img_size(img_size: tuple[int, int], patch_sizes: tuple[int, ...], field: str = "img_size") -> None:
    """Refuse sizes timm would get wrong: it floors the patch count, and its PatchEmbed would then fail
    (or, with img_scale, silently resize). Raised at construction, before any weights are made."""
    height, width = img_size
    for p in patch_sizes:
        if height % p or width % p:
            raise UserError(
                f"model {field}={height}x{width} (HxW) is not divisible by patch size {p}; "
                f"use a size that is a multiple of every patch size {tuple(patch_sizes)}, e.g. 288x144"
            )


def check_conv_stem(conv_stem: bool, patch_sizes: tuple[int, ...]) -> None:
    """timm's convolutional patch embedding (CrossViT-dagger, `multi_conv`) exists for patches 12 and 16 only."""
    if conv_stem and not set(patch_sizes) <= {12, 16}:
        raise UserError(
            f"model conv_stem=true needs patch sizes 12 and/or 16 (timm's three-conv patch embedding), "
            f"got {tuple(patch_sizes)}"
        )


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, 1 + h*w, C) tokens -> (B, C, h, w) map of the patch tokens (the CLS token is dropped)."""
    patches = tokens[:, 1:]
    batch, count, channels = patches.shape
    if count != grid[0] * grid[1]:
        raise ValueError(f"{count} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    return patches.transpose(1, 2).reshape(batch, channels, grid[0], grid[1])


def receptive_field(proj: nn.Module) -> tuple[int, int]:
    """``(start, size)``: the input window, in pixels (rows and columns alike), that token (0, 0) of the
    patch embedding ``proj`` sees (a Conv2d, or a Sequential of them: activations do not move it); token
    (r, c) sees it shifted by ``patch * (r, c)``. Composed backwards through the convolutions
    (start <- stride * start - padding, size <- stride * (size - 1) + kernel).

    A plain patch embedding (kernel = stride = patch) sees its own patch: ``(0, patch)``. timm's
    three-convolution stem (CrossViT-dagger, `multi_conv`, our ``conv_stem``) does not: ``(-15, 31)`` for
    patch 16, a window centred on the patch's *top-left corner*, half a patch up and left of the patch
    the token is numbered by; ``(-15, 39)`` for patch 12, 1.5 pixels up and left. Maps drawn on the
    image must put each token at its window's centre (reid/tools/gradcam.py).
    """
    start, size = 0, 1
    for conv in reversed([m for m in proj.modules() if isinstance(m, nn.Conv2d)]):
        if conv.stride[0] != conv.stride[1] or conv.kernel_size[0] != conv.kernel_size[1] or conv.dilation != (1, 1):
            raise ValueError(f"receptive_field: {conv} is not a square, undilated convolution")
        start = conv.stride[0] * start - conv.padding[0]
        size = conv.stride[0] * (size - 1) + conv.kernel_size[0]
    return start, size


class CrossViTBackbone(nn.Module):
    """timm CrossVit at (H, W) -> per-branch CLS tokens (B, C_b) and token maps (B, C_b, h_b, w_b).

    The timm model lives in `self.vit` unchanged, so its state_dict keys are exactly timm's (prefixed
    `vit.`) and ImageNet checkpoints load into it (see reid/models/pretrained.py).
    """

    def __init__(
        self,
        preset: str = "9",
        img_size: tuple[int, int] = (288, 144),
        patch_sizes: tuple[int, int] = (12, 16),
        drop_path_rate: float = 0.1,
        multiscale_residual: bool = True,
        conv_stem: bool = False,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise UserError(f"model preset={preset!r} is unknown; expected one of {sorted(PRESETS)}")
        if len(patch_sizes) != 2:
            raise UserError(
                f"model patch_sizes={tuple(patch_sizes)} must name two patch sizes (fine, coarse)"
            )
        check_img_size(img_size, patch_sizes)
        check_conv_stem(conv_stem, patch_sizes)
        spec = PRESETS[preset]
        self.vit = CrossVit(
            img_size=tuple(img_size),
            img_scale=(1.0, 1.0),  # both branches see the input as is: no interpolation, no crop
            crop_scale=False,
            patch_size=tuple(patch_sizes),
            num_classes=0,
            drop_path_rate=drop_path_rate,
            multi_conv=conv_stem,
            **spec,
        )
        self.img_size = tuple(img_size)
        self.dims: list[int] = list(spec["embed_dim"])
        self.grid_sizes: list[tuple[int, int]] = [(img_size[0] // p, img_size[1] // p) for p in patch_sizes]
        self.receptive_fields = [receptive_field(embed.proj) for embed in self.vit.patch_embed]
        self.pos_embed_names = [f"pos_embed_{b}" for b in range(len(self.dims))]  # keys in self.vit
        # Multi-scale residual (our reading of Sec. 1.2): timm's fusion *replaces* each branch's CLS
        # token by the back-projection BP(.) of the cross-attended one, so a branch's own CLS survives
        # only through the projection round trip. We add a skip from each multi-scale block's input CLS
        # to its output CLS, per branch, scaled by a learnable gamma that starts at 0 (ReZero style):
        # at initialisation the backbone computes exactly timm's function, so ImageNet weights keep
        # their meaning, and training decides how much of the skip to use.
        self.multiscale_residual = multiscale_residual
        if multiscale_residual:
            self.residual_gamma = nn.Parameter(torch.zeros(len(self.vit.blocks), len(self.dims)))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        tokens = timm_embed(self.vit, x)
        for k, block in enumerate(self.vit.blocks):
            out = block(tokens)
            if self.multiscale_residual:
                out = [
                    torch.cat([o[:, :1] + self.residual_gamma[k, b] * t[:, :1], o[:, 1:]], dim=1)
                    for b, (o, t) in enumerate(zip(out, tokens))
                ]
            tokens = out
        tokens = [norm(t) for norm, t in zip(self.vit.norm, tokens)]
        cls = [t[:, 0] for t in tokens]
        maps = [tokens_to_map(t, grid) for t, grid in zip(tokens, self.grid_sizes)]
        return cls, maps

    def last_token_layer(self, branch: int) -> nn.Module:
        """The last transformer block of `branch`: its output holds that branch's final patch tokens."""
        return self.vit.blocks[-1].blocks[branch][-1]

    def no_weight_decay(self) -> set[str]:
        names = {f"vit.{n}" for n in self.vit.no_weight_decay()}
        return names | ({"residual_gamma"} if self.multiscale_residual else set())
