"""Per-part shares of the pooled feature (reid.eval.diagnostics, re-exported by reid.train.diagnostics), the
model's part normalisation, and the CSA gate statistics an evaluation records (reid.eval.diagnostics)."""

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


# ------------------------------------------------------------------------------------------ CSA gate statistics
def test_gate_statistics_of_fixed_gates_by_hand():
    from reid.eval.diagnostics import GateRecorder, top_quarter_share

    recorder = GateRecorder()
    recorder.found_csa = True  # gates added by hand, as the hooks would
    recorder.add("fine", "channel", torch.tensor([0.2, 0.4, 0.6, 0.8]).reshape(2, 2, 1, 1))
    flat, peaked = torch.full((1, 1, 2, 2), 0.5), torch.tensor([0.9, 0.1, 0.1, 0.1]).reshape(1, 1, 2, 2)
    recorder.add("fine", "spatial", flat)  # two batches of one image: pooled as one batch of two
    recorder.add("fine", "spatial", peaked)
    stats = recorder.summary()["fine"]
    # channel: mean of 0.2..0.8 = 0.5; population sd = sqrt(mean of squares 0.3 - 0.25) = sqrt(0.05)
    assert stats["channel_mean"] == pytest.approx(0.5) and stats["channel_sd"] == pytest.approx(0.05 ** 0.5)
    # spatial: 8 values summing to 3.2 -> 0.4; squares 1.84 / 8 = 0.23, minus 0.16 -> sd sqrt(0.07)
    assert stats["spatial_mean"] == pytest.approx(0.4) and stats["spatial_sd"] == pytest.approx(0.07 ** 0.5)
    # top quarter of 4 positions = the highest one: 0.5 / 2 = 0.25 (flat) and 0.9 / 1.2 = 0.75; mean 0.5
    assert stats["spatial_top_quarter"] == pytest.approx(0.5)
    # 6 positions: a quarter is 1.5 of them, the highest plus half the next: (0.6 + 0.15) / 1.3
    six = torch.tensor([[0.1, 0.6, 0.1, 0.3, 0.1, 0.1], [0.7] * 6]).reshape(2, 1, 2, 3)
    assert top_quarter_share(six).tolist() == pytest.approx([0.75 / 1.3, 0.25])


def test_gate_recorder_hooks_leave_the_features_equal_and_go_away():
    from reid.eval.diagnostics import GateRecorder

    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="tiny", img_size=(48, 48), drop_path_rate=0.0), num_classes=3).eval()
    images = torch.rand(5, 3, 48, 48)
    with torch.no_grad():
        plain = model(images)
        with GateRecorder().recording(model) as recorder:
            hooked = model(images)
        after = model(images)
    assert torch.equal(plain, hooked) and torch.equal(plain, after)
    gates = recorder.summary()
    assert list(gates) == ["fine", "coarse"]
    # images x channels: the 5 images of the block only, its exit removed the hooks before `after`
    assert recorder.channel["fine"].count == 5 * model.backbone.dims[0]
    assert recorder.spatial["coarse"].count == 5 * 3 * 3  # images x positions (48 / 16 = 3)
    assert all(0 <= v <= 1 for branch in gates.values() for v in branch.values())
    assert all(0.25 <= branch["spatial_top_quarter"] <= 1 for branch in gates.values())


def test_literal_spatial_gate_no_csa_and_a_single_part_say_n_a():
    from reid.eval.diagnostics import NO_CSA, SINGLE_PART, GateRecorder, feature_part_shares

    torch.manual_seed(0)
    images = torch.rand(2, 3, 48, 48)
    literal = build_model(ModelConfig(preset="tiny", img_size=(48, 48), spatial_attention="paper"), num_classes=3)
    with torch.no_grad(), GateRecorder().recording(literal.eval()) as recorder:
        literal(images)
    fine = recorder.summary()["fine"]
    assert fine["spatial_top_quarter"].startswith("n/a") and 0 <= fine["spatial_sd"] <= fine["spatial_mean"] <= 1
    assert recorder.spatial["fine"].count == 2 * literal.backbone.dims[0]  # the literal gate: images x channels
    plain = build_model(ModelConfig(preset="tiny", img_size=(48, 48), csa=False, pooling="gap"), num_classes=3)
    with torch.no_grad(), GateRecorder().recording(plain.eval()) as recorder:
        features = plain(images)
    assert recorder.summary() == NO_CSA
    assert set(feature_part_shares(features, plain)) == {"fine", "coarse"}  # one part per branch
    vit = build_model(ModelConfig(backbone="vit", preset="tiny", img_size=(48, 48), pooling="gap"), num_classes=3)
    assert feature_part_shares(torch.randn(4, vit.feature_dim), vit) == SINGLE_PART
