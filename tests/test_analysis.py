"""Issue 14: t-SNE map, distance histograms and their numbers, on features with a planted identity
structure, and `python -m reid analyse` end to end on the small synthetic tree."""

import dataclasses
import json

import matplotlib
import numpy as np
import pytest
import torch

from reid.cli import main as cli
from reid.tools.analysis import (
    _intra_below_inter,
    distance_histograms,
    distance_summary,
    embedding_map,
    tsne_subset,
)
from reid.utils.checkpoint import save_checkpoint

matplotlib.use("Agg")


def planted(num_ids=12, per_modality=4, dim=32, noise=0.3, seed=0):
    """Each identity a random direction; every image of it that direction plus a shared modality offset plus
    noise: same-identity images are closer than other-identity ones, across modalities too."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    offset = {"visible": 0.5 * rng.normal(size=dim), "infrared": 0.5 * rng.normal(size=dim)}
    feats, pids, modalities = [], [], []
    for pid in range(num_ids):
        for modality in ("visible", "infrared"):
            for _ in range(per_modality):
                feats.append(centres[pid] + offset[modality] + noise * rng.normal(size=dim))
                pids.append(pid)
                modalities.append(modality)
    return np.array(feats), np.array(pids), np.array(modalities)


def test_planted_identities_are_closer_than_others():
    feats, pids, modalities = planted()
    stats = distance_summary(feats, pids, modalities)
    assert set(stats) == {"ir_to_rgb", "rgb_to_rgb", "ir_to_ir"}
    for row in stats.values():
        assert 0 <= row["mean_intra"] < row["mean_inter"] <= 2
        assert row["intra_below_inter"] > 0.95
    # pair counts: 12 ids x 4 IR x 4 RGB same-id pairs; IR->IR excludes an image paired with itself
    assert stats["ir_to_rgb"]["intra_pairs"] == 12 * 4 * 4 and stats["ir_to_ir"]["intra_pairs"] == 12 * 4 * 3
    assert stats["ir_to_rgb"]["inter_pairs"] == 48 * 48 - 12 * 4 * 4


def test_no_identity_structure_is_chance():
    feats, pids, modalities = planted()
    shuffled = np.random.default_rng(1).permutation(pids)  # labels unrelated to the features
    share = distance_summary(feats, shuffled, modalities)["ir_to_rgb"]["intra_below_inter"]
    assert 0.4 < share < 0.6


def test_intra_below_inter_counts_pairs_of_one_anchor_and_ties_half():
    dist = np.array([[0.1, 0.3, 0.2, 0.2]])
    intra = np.array([[True, False, True, False]])  # intra 0.1 and 0.2; inter 0.3 and 0.2
    # 0.1 < 0.3, 0.1 < 0.2, 0.2 < 0.3, 0.2 = 0.2 (half): 3.5 of 4
    assert _intra_below_inter(dist, intra, ~intra) == pytest.approx(3.5 / 4)


def test_figures_are_returned_and_saved(tmp_path):
    feats, pids, modalities = planted()
    fig = embedding_map(torch.tensor(feats), pids, modalities, max_ids=5, out_png=tmp_path / "map.png")
    assert isinstance(fig, matplotlib.figure.Figure) and (tmp_path / "map.png").stat().st_size > 0
    assert len(fig.axes[0].collections) == 2  # visible (circles) and infrared (triangles)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 5 * 8
    hist = distance_histograms(feats, pids, modalities, out_png=tmp_path / "hist.png")
    assert [ax.get_title() for ax in hist.axes] == ["IR→RGB", "RGB→RGB", "IR→IR"]
    assert (tmp_path / "hist.png").stat().st_size > 0
    assert embedding_map(feats, pids, modalities) is not None  # no file asked for: none written
    matplotlib.pyplot.close("all")


def test_tsne_subset_limits_identities_and_images():
    pids = np.repeat(np.arange(50), 30)
    modalities = np.tile(["visible", "infrared"], 750)
    subset = tsne_subset(pids, modalities, max_ids=40, max_per_id=5)
    assert len(np.unique(pids[subset])) == 40 and len(subset) == 40 * 2 * 5
    with pytest.raises(ValueError, match="modalities"):
        distance_summary(np.ones((2, 3)), [0, 1], ["visible", "rgb"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny", img_size=(48, 48), drop_path_rate=0.0)
    model = build_model(cfg, num_classes=8, load_pretrained=False)
    return save_checkpoint({"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "num_classes": 8},
                           tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.mark.parametrize("dataset, folder", [("sysu", "SYSU-MM01"), ("regdb", "RegDB")])
def test_analyse_command_writes_both_figures_and_numbers(synthetic_root, checkpoint, tmp_path, capsys, dataset,
                                                         folder):
    out = tmp_path / "analysis"
    assert cli(["analyse", "--checkpoint", str(checkpoint), "--dataset", dataset, "--data",
                str(synthetic_root / folder), "--out", str(out), "--batch-size", "16", "--device", "cpu"]) == 0
    assert (out / "embedding_map.png").stat().st_size > 0 and (out / "distance_histograms.png").stat().st_size > 0
    record = json.loads((out / "analysis.json").read_text())
    assert record["data"]["kind"] == "synthetic" and record["tsne"]["ids"] == min(10, record["num_ids"])
    for row in record["distances"].values():
        assert 0 <= row["mean_intra"] <= 2 and 0 <= row["intra_below_inter"] <= 1
    printed = capsys.readouterr().out
    assert "IR→RGB" in printed and "intra < inter" in printed and "t-SNE map:" in printed


def test_analyse_errors_are_one_line(synthetic_root, checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for args, word in ((["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], "nowhere"),
                       (["--data", str(synthetic_root / "SYSU-MM01"), "--out", str(tmp_path / "file")], "--out")):
        assert cli(["analyse", "--checkpoint", str(checkpoint), "--dataset", "sysu", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and word in err


def test_hinge_activity_counts_active_hinges_on_training_batches_and_leaves_the_model(sysu_root):
    from reid.config import load_config
    from reid.data import TrainData
    from reid.models import build_model
    from reid.tools.analysis import hinge_activity
    from tests.conftest import TINY

    cfg = load_config("smoke", [*TINY, f"data.root={sysu_root}", "data.num_ids=2", "data.num_instances=2"])
    data = TrainData(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.num_classes, load_pretrained=False).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = hinge_activity(model, data, margins=(0.0, 0.3, 100.0), batches=2)
    assert [r["loss"] for r in rows] == ["Eq. 14 (batch-hard)", "Eq. 15 (adaptive)"]
    for row in rows:
        shares = [row[f"active at α={m}"] for m in ("0", "0.3", "100")]
        assert row["anchors"] > 0 and 0.0 <= shares[0] <= shares[1] <= shares[2] == 1.0  # more margin, more active
    hard, adaptive = rows
    assert hard["mean gap"] >= adaptive["mean gap"]  # a weighted mean sits inside [min, max]: Eq. 15's gap is smaller
    assert not model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    state = torch.get_rng_state()
    assert hinge_activity(model, data, margins=(0.0, 0.3, 100.0), batches=2) == rows  # the same batches again
    assert torch.equal(torch.get_rng_state(), state)  # and the caller's stream untouched
