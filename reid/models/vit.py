"""The single-branch ViT baseline of Table 3, with the same outputs as the CrossViT backbone.

As wide as CrossViT's coarse branch (its embedding width, heads and MLP ratio) and as deep as that
branch in total (e.g. 3 x 3 = 9 blocks for preset "9"), patch 16, one CLS token. One branch, so CSA,
the head and Grad-CAM work unchanged with lists of length 1.
"""

from __future__ import annotations

import torch
from timm.models.crossvit import PatchEmbed as CrossViTPatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from reid.models.crossvit import PRESETS, check_conv_stem, check_img_size, receptive_field, tokens_to_map
from reid.utils.errors import UserError


class ViTBackbone(nn.Module):
    """timm VisionTransformer at (H, W) -> ([CLS (B, C)], [token map (B, C, h, w)])."""

    def __init__(
        self,
        preset: str = "9",
        img_size: tuple[int, int] = (288, 144),
        patch_size: int = 16,
        drop_path_rate: float = 0.1,
        conv_stem: bool = False,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise UserError(f"model preset={preset!r} is unknown; expected one of {sorted(PRESETS)}")
        check_img_size(img_size, (patch_size,))
        check_conv_stem(conv_stem, (patch_size,))
        spec = PRESETS[preset]
        coarse = 1  # the coarse (wide) CrossViT branch sets the width
        self.vit = VisionTransformer(
            img_size=tuple(img_size),
            patch_size=patch_size,
            embed_dim=spec["embed_dim"][coarse],
            depth=sum(block[coarse] for block in spec["depth"]),
            num_heads=spec["num_heads"][coarse],
            mlp_ratio=spec["mlp_ratio"][coarse],
            qkv_bias=True,
            class_token=True,
            num_classes=0,
            drop_path_rate=drop_path_rate,
            dynamic_img_size=False,  # the patch embedding refuses other input sizes
        )
        if conv_stem:
            # The same three-convolution patch embedding as CrossViT's conv_stem (timm's multi_conv), so
            # a Table 3 comparison with conv_stem on changes only the backbone's transformer part.
            dim = spec["embed_dim"][coarse]
            self.vit.patch_embed.proj = CrossViTPatchEmbed(img_size, patch_size, 3, dim, multi_conv=True).proj
        self.img_size = tuple(img_size)
        self.dims: list[int] = [spec["embed_dim"][coarse]]
        self.grid_sizes: list[tuple[int, int]] = [(img_size[0] // patch_size, img_size[1] // patch_size)]
        self.receptive_fields = [receptive_field(self.vit.patch_embed.proj)]
        self.pos_embed_names = ["pos_embed"]  # key in self.vit

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        tokens = self.vit.forward_features(x)  # (B, 1 + h*w, C), after the final norm
        return [tokens[:, 0]], [tokens_to_map(tokens, self.grid_sizes[0])]

    def last_token_layer(self, branch: int) -> nn.Module:
        if branch != 0:
            raise ValueError(f"the ViT baseline has one branch (0), got branch={branch}")
        return self.vit.blocks[-1]

    def no_weight_decay(self) -> set[str]:
        return {f"vit.{n}" for n in self.vit.no_weight_decay()}
