"""CSA: channel attention (Eq. 9-10) followed by spatial attention (Eq. 11-12), Sec. 1.3.

Applied to each branch's patch-token map (B, C, H, W) after the backbone. The order (channel first,
then spatial on the channel-refined map M') follows Eq. 11, which feeds M' into A_s.
"""

from __future__ import annotations

import torch
from torch import nn

SPATIAL_ATTENTION_MODES = ("standard", "paper")


class ChannelAttention(nn.Module):
    """Eq. 10: A_c(M) = sigmoid(C2(ReLU(C1(Avg(M)))) + C2(ReLU(C1(Max(M))))).

    C1 and C2 are 1x1 convolutions shared by the two pooled descriptors (a bottleneck of
    `channels // reduction`, at least 1 channel). Returns the gate (B, C, 1, 1); Eq. 9 multiplies it on.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """Eq. 12, two readings.

    "standard" (default, CBAM): channel-wise mean and max maps (B, 2, H, W) -> k x k conv -> sigmoid,
    a gate (B, 1, H, W) that weighs positions. This is what "spatial attention map" means everywhere else.

    "paper": the literal text of Sec. 1.3.2: every channel average- and max-pooled to 1x1, concatenated
    to a 1x1x2C vector, a (1x1) conv back to C, sigmoid. The gate is (B, C, 1, 1): effectively a second
    channel gate, it cannot weigh positions. Kept to reproduce the text; see docs/deviations.md.
    """

    def __init__(self, channels: int, mode: str = "standard", kernel_size: int = 7) -> None:
        super().__init__()
        if mode not in SPATIAL_ATTENTION_MODES:
            raise ValueError(f"spatial attention mode must be one of {SPATIAL_ATTENTION_MODES}, got {mode!r}")
        self.mode = mode
        if mode == "standard":
            self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        else:
            self.conv = nn.Conv2d(2 * channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "standard":
            pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        else:
            pooled = torch.cat([x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CSA(nn.Module):
    """M' = A_c(M) * M (Eq. 9), then M'' = A_s(M') * M' (Eq. 11)."""

    def __init__(
        self, channels: int, reduction: int = 16, spatial_mode: str = "standard", kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(channels, spatial_mode, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel(x) * x
        return self.spatial(x) * x
