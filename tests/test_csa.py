"""CSA (Eq. 9-12) against direct computations of the equations."""

from __future__ import annotations

import pytest
import torch

from reid.models.csa import CSA, ChannelAttention, SpatialAttention

# Tiny tensors: extra threads only add synchronisation, and on a busy 2-core machine OpenMP
# oversubscription made these tests ~30x slower. One thread for this process.


def fmap(seed=0, shape=(2, 32, 24, 12)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_channel_attention_is_eq10():
    torch.manual_seed(0)
    ca = ChannelAttention(32, reduction=8)
    x = fmap()
    c1, c2 = ca.mlp[0].weight[:, :, 0, 0], ca.mlp[2].weight[:, :, 0, 0]  # (4, 32), (32, 4)

    def mlp(v):  # v: (B, C)
        return torch.relu(v @ c1.t()) @ c2.t()

    want = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    got = ca(x)
    assert got.shape == (2, 32, 1, 1)
    assert torch.allclose(got[:, :, 0, 0], want, atol=1e-6)
    assert ca.mlp[0].out_channels == 4


def test_channel_attention_keeps_one_hidden_channel_when_narrow():
    assert ChannelAttention(8, reduction=16).mlp[0].out_channels == 1


def test_standard_spatial_attention_weighs_positions():
    torch.manual_seed(0)
    sa = SpatialAttention(32, "standard", kernel_size=7)
    x = fmap(1)
    pooled = torch.stack([x.mean(dim=1), x.amax(dim=1)], dim=1)
    want = torch.sigmoid(torch.nn.functional.conv2d(pooled, sa.conv.weight, padding=3))
    got = sa(x)
    assert got.shape == (2, 1, 24, 12)
    assert torch.allclose(got, want, atol=1e-6)


def test_paper_spatial_attention_is_a_channel_gate():
    """The literal Eq. 12 text: per-channel avg and max -> 1x1x2C -> conv -> sigmoid: one weight
    per channel."""
    torch.manual_seed(0)
    sa = SpatialAttention(32, "paper")
    x = fmap(2)
    pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (B, 2C)
    want = torch.sigmoid(pooled @ sa.conv.weight[:, :, 0, 0].t())
    got = sa(x)
    assert got.shape == (2, 32, 1, 1)
    assert torch.allclose(got[:, :, 0, 0], want, atol=1e-6)


def test_unknown_spatial_mode_is_refused():
    with pytest.raises(ValueError, match="spatial attention mode"):
        SpatialAttention(8, "cbam")


@pytest.mark.parametrize("mode", ["standard", "paper"])
@pytest.mark.parametrize("shape", [(2, 32, 24, 12), (3, 64, 18, 9), (2, 32, 6, 3)])
def test_csa_applies_channel_then_spatial(mode, shape):
    torch.manual_seed(0)
    csa = CSA(shape[1], reduction=16, spatial_mode=mode, kernel_size=3)
    x = fmap(3, shape)
    refined = csa.channel(x) * x  # Eq. 9
    want = csa.spatial(refined) * refined  # Eq. 11
    got = csa(x)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-6)
    got.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in csa.parameters())
