"""Per-part shares of the pooled feature (reid.train.diagnostics) and the model's part normalisation."""

from __future__ import annotations

import pytest
import torch

from reid.models import ModelConfig, build_model
from reid.train.diagnostics import collapse_warnings, format_shares, part_shares


def test_shares_sum_to_one_and_follow_the_scale_of_each_part():
    torch.manual_seed(0)
    feats = torch.cat([torch.randn(64, 8), 0.01 * torch.randn(64, 8), 5 * torch.randn(64, 16)], dim=1)
    shares = part_shares(feats, [8, 8, 16])
    assert len(shares) == 3 and sum(s["share"] for s in shares) == pytest.approx(1.0)
    assert shares[2]["share"] > 0.9 and shares[1]["share"] < 1e-3
    assert shares[0]["variance"] == pytest.approx(8.0, rel=0.3) and shares[0]["dim"] == 8
    warnings = collapse_warnings(shares, names=["a", "b", "c"])
    assert len(warnings) == 2 and warnings[0].startswith("a:") and warnings[1].startswith("b:")
    assert "c=" in format_shares(shares, ["a", "b", "c"])


def test_shares_of_constant_features_and_bad_shapes():
    assert all(s["share"] == 0.0 for s in part_shares(torch.ones(4, 6), [3, 3]))
    with pytest.raises(ValueError):
        part_shares(torch.ones(4, 6), [3, 4])
    with pytest.raises(ValueError):
        part_shares(torch.ones(1, 6), [3, 3])


@pytest.mark.parametrize("part_norm", ["none", "bn", "ln", "l2"])
def test_part_norm_shapes(part_norm):
    torch.manual_seed(0)
    cfg = ModelConfig(preset="micro", img_size=(96, 48), conv_stem=True, part_norm=part_norm, drop_path_rate=0.0)
    model = build_model(cfg, num_classes=5).train()
    out = model(torch.randn(6, 3, 96, 48))
    assert out["features"].shape == (6, model.feature_dim) and sum(model.part_dims) == model.feature_dim
    assert len(model.part_dims) == 4
    parts = torch.split(out["features"], model.part_dims, dim=1)
    if part_norm == "l2":
        assert all(torch.allclose(p.norm(dim=1), torch.ones(6), atol=1e-5) for p in parts)
    if part_norm in ("ln", "l2", "bn"):  # normalised parts: no part dominates the pair distances
        shares = [s["share"] for s in part_shares(out["features"], model.part_dims)]
        assert min(shares) > 0.05
    model.eval()
    assert model(torch.randn(2, 3, 96, 48)).shape == (2, model.feature_dim)


def test_part_norm_is_validated():
    from reid.utils.errors import UserError

    with pytest.raises(UserError, match="part_norm"):
        ModelConfig(part_norm="zscore")
