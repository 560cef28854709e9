"""The re-ID model: backbone -> CSA per branch -> pooling -> BN neck -> bias-free classifier.

The backbone is CrossViT (the paper's), the Table 3 ViT baseline, or AGW's two-stream ResNet with non-local
blocks (`backbone: agw`, the calibration baseline of `reid.models.agw`; GeM pooling, no CSA).

Every image (visible, infrared, and the grayscale copies the engine appends to the batch with the same
labels) goes through the same weights: one shared backbone, one CSA per branch, one head.

    model = build_model(ModelConfig(), num_classes=395)
    model.train(); out = model(x)          # {"features", "bn_features", "logits"}
    model.eval();  emb = model(x)          # (B, D) L2-normalised embedding
    model(x, modality)                     # modality (B,) or one int, 0 visible / 1 infrared: AGW's stems
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from reid.models import agw
from reid.models.crossvit import PRESETS, CrossViTBackbone, check_conv_stem, check_img_size, tokens_to_map
from reid.models.csa import CSA, SPATIAL_ATTENTION_MODES
from reid.models.vit import ViTBackbone
from reid.utils.errors import UserError

BACKBONES = ("crossvit", "vit", "agw")
POOLINGS = ("gap+cls", "gap", "cls", "gem")  # gem: AGW's generalised-mean pooling (backbone agw only)
TEST_FEATURES = ("after_bn", "before_bn")
PART_NORMS = ("none", "bn", "ln", "l2")


def _choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise UserError(f"model {field}={value!r} is not valid; expected one of {list(allowed)}")


def _int_pair(field: str, value) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise UserError(f"model {field}={value!r} is not valid; expected two positive integers")
    return (int(value[0]), int(value[1]))


@dataclass
class ModelConfig:
    """Everything that decides the architecture. `ModelConfig(**dataclasses.asdict(cfg))` round-trips,
    also after YAML/JSON (lists are turned back into tuples). Invalid values raise `UserError`."""

    backbone: str = "crossvit"  # "crossvit" | "vit" (the Table 3 baseline) | "agw" (the calibration baseline)
    preset: str = "9"  # "tiny" | "9" | "small": timm's widths and depths; backbone agw: "50" | "micro"
    img_size: tuple[int, int] = (288, 144)  # (H, W)
    patch_sizes: tuple[int, int] = (12, 16)  # (fine, coarse); the ViT baseline uses the coarse one
    csa: bool = True  # channel + spatial attention on each branch's token map (Sec. 1.3)
    spatial_attention: str = "standard"  # "standard" (CBAM) | "paper" (literal Eq. 12 text)
    csa_reduction: int = 16  # bottleneck ratio of the channel-attention MLP (Eq. 10)
    # Spatial-attention conv kernel ("standard" mode): an odd int, or "grid": per branch, the largest odd
    # kernel <= 7 (the paper's) not wider than the token grid's short side: 7 at 288x144 (grids 24x12, 18x9),
    # 3 at 96x48 (8x4, 6x3), where a 7x7 kernel would read mostly padding (docs/deviations.md).
    sa_kernel_size: int | str = "grid"
    multiscale_residual: bool = True  # our reading of Sec. 1.2, see crossvit.py
    # CrossViT-dagger: three convolutions instead of one linear patch projection (timm `multi_conv`).
    # Off for the paper; on in the CPU smoke profile, where a from-scratch ViT must learn in minutes.
    conv_stem: bool = False
    pooling: str = "gap+cls"  # per branch: GAP of the CSA map and/or the CLS token, concatenated
    test_feature: str = "after_bn"  # "after_bn" | "before_bn": which embedding eval mode returns
    # Normalisation of each pooled part (GAP / CLS per branch) before they are concatenated into the
    # feature the losses see: "none" (concatenate as they are), "bn" | "ln" (per-part BatchNorm /
    # LayerNorm, affine), "l2" (each part scaled to unit norm). See docs/deviations.md.
    part_norm: str = "none"
    drop_path_rate: float = 0.1
    # ImageNet weights for the backbone: a local timm checkpoint file (.pth / .safetensors), "timm" (timm's
    # own download and cache), or "none" (from scratch, on purpose). Unset (None) is refused on real data.
    # Backbone agw: a torchvision/timm ResNet-50 file, "torchvision" (AGW's IMAGENET1K_V1), "timm" or "none".
    pretrained: str | None = None

    def __post_init__(self) -> None:
        _choice("backbone", self.backbone, BACKBONES)
        self.preset = str(self.preset)  # YAML reads `preset: 9` as an int
        _choice("preset", self.preset, list(agw.PRESETS if self.backbone == "agw" else PRESETS))
        self.img_size = _int_pair("img_size", self.img_size)
        self.patch_sizes = _int_pair("patch_sizes", self.patch_sizes)
        for name in ("csa", "multiscale_residual", "conv_stem"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"model {name}={getattr(self, name)!r} is not valid; expected true or false")
        _choice("spatial_attention", self.spatial_attention, SPATIAL_ATTENTION_MODES)
        value = self.csa_reduction
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"model csa_reduction={value!r} is not valid; expected a positive integer")
        value = self.sa_kernel_size
        if value != "grid" and (not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0):
            raise UserError(f"model sa_kernel_size={value!r} is not valid; expected 'grid' or a positive odd "
                            "integer (same-size output)")
        _choice("pooling", self.pooling, POOLINGS)
        _choice("test_feature", self.test_feature, TEST_FEATURES)
        _choice("part_norm", self.part_norm, PART_NORMS)
        if not isinstance(self.drop_path_rate, (int, float)) or not 0.0 <= self.drop_path_rate < 1.0:
            raise UserError(f"model drop_path_rate={self.drop_path_rate!r} is not valid; expected 0 <= p < 1")
        self.drop_path_rate = float(self.drop_path_rate)
        if self.pretrained is not None and not (isinstance(self.pretrained, str) and self.pretrained):
            raise UserError(f"model pretrained={self.pretrained!r} is not valid; expected a file path, 'timm' "
                            "or 'none'")
        if self.backbone == "agw":
            self._check_agw()
            return
        if self.pooling == "gem":
            raise UserError(f"model pooling=gem is AGW's (backbone agw); backbone {self.backbone} expects one of "
                            f"{[p for p in POOLINGS if p != 'gem']}")
        used_patches = self.patch_sizes if self.backbone == "crossvit" else self.patch_sizes[1:]
        check_img_size(self.img_size, used_patches)
        check_conv_stem(self.conv_stem, used_patches)

    def _check_agw(self) -> None:
        """AGW has no CSA, conv stem, part norms or drop path: a setting that claims one is refused, never
        silently ignored (the patch sizes and CSA internals are CrossViT's, unused here as by the ViT)."""
        _choice("pooling", self.pooling, ("gem", "gap"))
        wrong = [f"{name}={getattr(self, name)!r} (expected {want!r})" for name, want in
                 (("csa", False), ("conv_stem", False), ("part_norm", "none"), ("drop_path_rate", 0.0))
                 if getattr(self, name) != want]
        if wrong:
            raise UserError(f"model backbone=agw: {', '.join(wrong)}; AGW's ResNet has none of these")

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Like `ModelConfig(**d)` but an unknown key is a `UserError` naming it."""
        known = {f.name for f in fields(cls)}
        if "pretrained_path" in d:  # the key's name in checkpoints written before `pretrained`
            d = {**{k: v for k, v in d.items() if k != "pretrained_path"}, "pretrained": d["pretrained_path"]}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"model config has unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


def spatial_kernel(setting: int | str, grid: tuple[int, int], largest: int = 7) -> int:
    """The spatial-attention kernel on an h x w token grid: `setting` itself, or for "grid" the largest odd
    k <= `largest` with k <= min(h, w), so that no position's window is mostly padding."""
    if setting != "grid":
        return int(setting)
    short = max(1, min(grid))
    return min(largest, short if short % 2 else short - 1)


class ReIDModel(nn.Module):
    """Backbone -> CSA -> pooling -> BN neck -> classifier. See docs/architecture.md for the contract."""

    def __init__(self, cfg: ModelConfig, num_classes: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise UserError(f"num_classes={num_classes!r} is not valid; expected a positive integer")
        self.cfg = cfg
        self.num_classes = num_classes
        if cfg.backbone == "crossvit":
            self.backbone = CrossViTBackbone(
                cfg.preset, cfg.img_size, cfg.patch_sizes, cfg.drop_path_rate, cfg.multiscale_residual,
                cfg.conv_stem,
            )
        elif cfg.backbone == "vit":
            self.backbone = ViTBackbone(cfg.preset, cfg.img_size, cfg.patch_sizes[1], cfg.drop_path_rate,
                                        cfg.conv_stem)
        else:
            self.backbone = agw.AGWBackbone(cfg.preset, cfg.img_size)
        dims = self.backbone.dims
        # nn.Identity when CSA is off keeps the module path (and Grad-CAM hooks) the same.
        self.csa = nn.ModuleList(
            CSA(d, cfg.csa_reduction, cfg.spatial_attention, spatial_kernel(cfg.sa_kernel_size, grid))
            if cfg.csa else nn.Identity()
            for d, grid in zip(dims, self.backbone.grid_sizes)
        )
        per_branch = {"gap+cls": 2, "gap": 1, "cls": 1, "gem": 1}[cfg.pooling]
        # Dimensions of the parts of the pooled feature, in order: per branch [GAP(CSA map)], [CLS].
        self.part_dims = [d for d in dims for _ in range(per_branch)]
        self.feature_dim = sum(self.part_dims)
        if cfg.part_norm == "bn":
            self.part_norms = nn.ModuleList(nn.BatchNorm1d(d) for d in self.part_dims)
        elif cfg.part_norm == "ln":
            self.part_norms = nn.ModuleList(nn.LayerNorm(d) for d in self.part_dims)
        else:
            self.part_norms = None
        # BN neck (Luo et al., "Bag of tricks"): metric losses see the features before BN, the
        # classifier those after. The BN shift is frozen at 0 so the classifier needs no bias.
        self.bottleneck = nn.BatchNorm1d(self.feature_dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def check_input(self, x: torch.Tensor) -> None:
        """Never resize silently: an input of another size is a configuration mistake."""
        height, width = self.cfg.img_size
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (height, width):
            raise UserError(
                f"model input has shape {tuple(x.shape)}; expected (B, 3, {height}, {width}) as set by "
                f"model img_size={height}x{width}: make the transforms produce that size"
            )

    def forward_features(self, x: torch.Tensor, modality=None) -> dict:
        """-> {"global": (B, D) pooled before the BN neck, "maps": per-branch (B, C, h, w) after CSA,
        "cls": per-branch (B, C) CLS tokens (None for AGW)}. `modality` (0 visible, 1 infrared, per image or
        one for all) routes AGW's first stage; the single-stream backbones do not read it."""
        self.check_input(x)
        cls, maps = self.backbone(x, modality) if self.cfg.backbone == "agw" else self.backbone(x)
        maps = [attend(m) for attend, m in zip(self.csa, maps)]
        pooled = []
        for token, fmap in zip(cls, maps):
            if self.cfg.pooling == "gem":
                pooled.append(agw.gem(fmap))
            if self.cfg.pooling in ("gap+cls", "gap"):
                pooled.append(fmap.mean(dim=(2, 3)))
            if self.cfg.pooling in ("gap+cls", "cls"):
                pooled.append(token)
        if self.part_norms is not None:
            pooled = [norm(part) for norm, part in zip(self.part_norms, pooled)]
        elif self.cfg.part_norm == "l2":
            pooled = [F.normalize(part, dim=1) for part in pooled]
        return {"global": torch.cat(pooled, dim=1), "maps": maps, "cls": cls}

    def forward_head(self, global_feature: torch.Tensor) -> dict:
        """-> {"features": before BN (metric losses), "bn_features": after BN, "logits": (B, num_classes)}."""
        bn_features = self.bottleneck(global_feature)
        return {
            "features": global_feature,
            "bn_features": bn_features,
            "logits": self.classifier(bn_features),
        }

    def forward(self, x: torch.Tensor, modality=None):
        head = self.forward_head(self.forward_features(x, modality)["global"])
        if self.training:
            return head
        key = "bn_features" if self.cfg.test_feature == "after_bn" else "features"
        return F.normalize(head[key], dim=1)

    def gradcam_targets(self, branch: int = 0, layer: str = "csa") -> tuple[list[nn.Module], Callable | None]:
        """Target layers and reshape transform for pytorch-grad-cam, for one branch.

        layer="csa": the branch's CSA module (an identity when CSA is off); its output is already a
        (B, C, h, w) map, so no reshape transform is needed.
        layer="tokens": the branch's last transformer block; its (B, 1 + h*w, C) output is turned into
        a (B, C, h, w) map by the returned transform (the grids are not square: 24x12 and 18x9 at 288x144).

        `reid.tools.gradcam.attention_maps` uses them with the model in eval mode, whose output is the embedding,
        and a cosine-similarity target. To explain class logits instead, give grad-cam an nn.Module that
        returns `model.forward_head(model.forward_features(x)["global"])["logits"]`.
        """
        if not 0 <= branch < len(self.csa):
            raise ValueError(f"branch={branch} does not exist; this model has {len(self.csa)} branch(es)")
        if layer == "csa":
            return [self.csa[branch]], None
        if layer == "tokens" and self.cfg.backbone == "agw":
            raise ValueError("layer='tokens' is a transformer's; backbone agw has no tokens (use layer='csa')")
        if layer == "tokens":
            grid = self.backbone.grid_sizes[branch]
            return [self.backbone.last_token_layer(branch)], partial(tokens_to_map, grid=grid)
        raise ValueError(f"layer={layer!r} is not valid; expected 'csa' or 'tokens'")

    def no_weight_decay(self) -> set[str]:
        """Parameter names usually kept out of weight decay (CLS tokens, position embeddings, gammas)."""
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}


def build_model(cfg: ModelConfig, num_classes: int, load_pretrained: bool = True) -> ReIDModel:
    """Build the model; load the `cfg.pretrained` ImageNet weights (a file or "timm") into the backbone.

    Pass `load_pretrained=False` when a trained checkpoint's weights will be loaded right after
    (evaluation, resume): the ImageNet file is then not needed.
    """
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    model = ReIDModel(cfg, num_classes)
    if load_pretrained and cfg.pretrained not in (None, "none"):
        from reid.models.pretrained import load_pretrained_backbone, load_resnet_backbone

        if cfg.backbone == "agw":
            load_resnet_backbone(model.backbone, cfg.pretrained, cfg.preset)
        else:
            load_pretrained_backbone(model.backbone, cfg.pretrained, cfg.preset, cfg.conv_stem)
    return model


__all__ = ["ModelConfig", "ReIDModel", "build_model"]
