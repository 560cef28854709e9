"""AGW's backbone, the field's calibration baseline (Ye et al., "Deep Learning for Person Re-identification:
A Survey and Outlook", TPAMI 2021, Sec. 4.2 and its cross-modality code `mangye16/Cross-Modal-Re-ID-baseline`).

A ResNet (Bottleneck blocks, He et al. 2016) with
- a *modality-specific first stage*: the stem (7x7 convolution, BN, ReLU, max-pool) exists twice, one for
  visible and one for infrared images (AGW's two-stream design: low-level statistics differ between the
  modalities, the later stages learn what they share);
- *shared later stages* layer1..layer4, with layer4's stride set to 1 (the last-stride trick the AGW paper
  adopts from Luo et al.'s "Bag of tricks": a 288x144 input gives an 18x9 map, not 9x5);
- *non-local attention blocks* (Wang et al. 2018) after the last 2 blocks of layer2 and the last 3 of
  layer3, as in AGW's code (ResNet-50 has 4 and 6 blocks there); the embedded dot-product form divided by
  the number of positions, its output projection's BN initialised to zero so that each block starts as the
  identity and the ImageNet weights keep their meaning on the first step.

Generalised-mean pooling (GeM, p = 3), the BN neck and the bias-free classifier are the head's
(`reid.models.reid_model`, `pooling: gem`), shared with the CrossViT model. The same outputs as the CrossViT
backbone: ([None], [map (B, C, h, w)]) -- one branch, no CLS token.

The backbone needs each image's modality (0 visible, 1 infrared): `forward(x, modality)`. A grayscale copy of a
visible image (data.with_gray) goes through the visible stem, as CAJ feeds its channel-augmented visible
images; AGW itself trains without copies (configs agw_*.yaml: with_gray false).

Presets: "50" is ResNet-50 (torchvision's layout and parameter names, so ImageNet weights load as they are);
"micro" is the CPU size of the smoke profile (an eighth of the widths, one block per stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from reid.utils.errors import UserError

VISIBLE, INFRARED = 0, 1


@dataclass(frozen=True)
class ResNetSize:
    label: str
    stem: int  # channels of the stem convolution
    planes: tuple[int, int, int, int]  # bottleneck widths of layer1..4 (outputs are 4x)
    depths: tuple[int, int, int, int]  # blocks per stage
    non_local: tuple[int, int, int, int]  # non-local blocks after the last n blocks of each stage


PRESETS = {
    # AGW: ResNet-50, non-local blocks [0, 2, 3, 0] (its code's `non_layers`).
    "50": ResNetSize("ResNet-50", 64, (64, 128, 256, 512), (3, 4, 6, 3), (0, 2, 3, 0)),
    # CPU smoke size: an eighth of ResNet-50's widths, one block per stage, one non-local block where AGW has
    # them. At 96x48, one thread, a 48-image forward + backward: 0.09 s (CrossViT's smoke model: 0.07 s);
    # a quarter of the widths 0.24 s, ResNet-50 ~7 s -- hours for a 3600-step smoke run (docs/agw.md).
    "micro": ResNetSize("micro ResNet", 8, (8, 16, 32, 64), (1, 1, 1, 1), (0, 1, 1, 0)),
}


def check_preset(preset: str) -> ResNetSize:
    if preset not in PRESETS:
        raise UserError(f"model preset={preset!r} is not an AGW size; expected one of {sorted(PRESETS)} "
                        "(backbone agw)")
    return PRESETS[preset]


class NonLocal(nn.Module):
    """z = x + BN(W g(x) f(x)), f the pairwise dot products of theta(x) and phi(x) divided by the number of
    positions N (Wang et al. 2018, Eq. 1 with the dot-product f; AGW uses this form, not the softmax one).
    Half the channels inside (AGW's reduction 2). BN starts at zero: the block starts as the identity."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        inner = channels // reduction
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi = self.phi(x).flatten(2)  # (B, C', N)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, C')
        affinity = theta @ phi / (h * w)  # (B, N, N)
        y = (affinity @ g).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.out(y)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage of Bottleneck blocks, laid out (and named) as torchvision's `_make_layer`."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _stem(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))


class AGWBackbone(nn.Module):
    """Two stems (visible, infrared) -> shared layer1..4 with non-local blocks -> ([None], [(B, C, h, w)])."""

    def __init__(self, preset: str = "50", img_size: tuple[int, int] = (288, 144)) -> None:
        super().__init__()
        size = check_preset(preset)
        self.size = size
        self.stems = nn.ModuleList([_stem(size.stem), _stem(size.stem)])  # [visible, infrared]
        inplanes, stages, non_local = size.stem, [], []
        for i, (planes, depth, n_local) in enumerate(zip(size.planes, size.depths, size.non_local)):
            stride = 1 if i in (0, 3) else 2  # layer4: last stride 1 (AGW, after Luo et al.)
            stages.append(_stage(inplanes, planes, depth, stride))
            inplanes = planes * Bottleneck.expansion
            if n_local > depth:
                raise UserError(f"AGW preset {preset!r}: {n_local} non-local blocks in a stage of {depth}")
            non_local.append(nn.ModuleList(NonLocal(inplanes) for _ in range(n_local)))
        self.layers = nn.ModuleList(stages)
        self.non_local = nn.ModuleList(non_local)
        self.img_size = tuple(img_size)
        self.dims: list[int] = [inplanes]
        height, width = img_size
        # stem /4 (conv stride 2, max-pool stride 2), layer2 /2, layer3 /2, layer4 /1; ceil at each halving
        for _ in range(4):
            height, width = (height + 1) // 2, (width + 1) // 2
        self.grid_sizes: list[tuple[int, int]] = [(height, width)]
        self.pos_embed_names: list[str] = []

    def stem(self, x: torch.Tensor, modality: torch.Tensor | None) -> torch.Tensor:
        """Each image through its modality's stem, the batch order kept."""
        if modality is None:
            raise UserError("model backbone agw needs each image's modality (0 visible, 1 infrared): its first "
                            "stage is modality-specific; this command passes none (it supports single-stream "
                            "models only)")
        modality = torch.as_tensor(modality, device=x.device).reshape(-1)
        if modality.numel() == 1:
            modality = modality.expand(x.shape[0])
        if modality.shape[0] != x.shape[0]:
            raise UserError(f"model backbone agw: {modality.shape[0]} modalities for {x.shape[0]} images")
        visible = modality == VISIBLE
        if bool(visible.all()):
            return self.stems[VISIBLE](x)
        if not bool(visible.any()):
            return self.stems[INFRARED](x)
        parts = self.stems[VISIBLE](x[visible]), self.stems[INFRARED](x[~visible])
        out = x.new_empty((x.shape[0], *parts[0].shape[1:]), dtype=parts[0].dtype)
        out[visible], out[~visible] = parts
        return out

    def forward(self, x: torch.Tensor, modality: torch.Tensor | None = None):
        x = self.stem(x, modality)
        for stage, blocks in zip(self.layers, self.non_local):
            first_local = len(stage) - len(blocks)  # after the last len(blocks) blocks of the stage
            for i, block in enumerate(stage):
                x = block(x)
                if i >= first_local:
                    x = blocks[i - first_local](x)
        return [None], [x]

    def no_weight_decay(self) -> set[str]:
        return set()  # AGW decays every parameter (SGD weight_decay 5e-4 on all groups)


def gem(fmap: torch.Tensor, p: float = 3.0) -> torch.Tensor:
    """Generalised-mean pooling (Radenovic et al. 2018) with AGW's fixed p = 3: (mean x^p)^(1/p) per channel.
    In fp32 (x^3 of bf16/fp16 activations loses range); the map is post-ReLU, clamped at 0 for safety."""
    return (fmap.float().clamp_min(0).pow(p).mean(dim=(2, 3)) + 1e-12).pow(1.0 / p).to(fmap.dtype)


def imagenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision/timm ResNet state_dict renamed onto AGWBackbone: conv1/bn1 into both stems (AGW starts
    both from the same ImageNet stem), layerN.* into the shared stages; the classifier (fc) dropped."""
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("conv1", "bn1"):
            for stem in (VISIBLE, INFRARED):
                out[f"stems.{stem}.{0 if head == 'conv1' else 1}.{rest}"] = value
        elif head.startswith("layer") and head[5:].isdigit():
            out[f"layers.{int(head[5:]) - 1}.{rest}"] = value
    return out


__all__ = ["PRESETS", "AGWBackbone", "NonLocal", "gem", "imagenet_keys"]
