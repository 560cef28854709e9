"""reid/models/agw.py: AGW's two-stream ResNet (stems per modality, shared stages, non-local blocks, GeM), its
ImageNet weights, its configs (agw_sysu / agw_regdb, the smoke variant) and a CPU smoke run with the lineage's
best-on-test selection beside the last epoch."""

import csv
import json

import pytest
import torch

from reid.config import config_to_dict, load_config
from reid.models import ModelConfig, build_model
from reid.models.agw import AGWBackbone, NonLocal, gem, imagenet_keys
from reid.utils.errors import UserError


def micro(**extra):
    return ModelConfig(backbone="agw", preset="micro", img_size=(96, 48), csa=False, pooling="gem",
                       drop_path_rate=0.0, **extra)


def test_resnet50_preset_is_torchvision_resnet50_with_two_stems_and_non_local_blocks():
    import torchvision

    own = AGWBackbone("50").state_dict()
    mapped = imagenet_keys(torchvision.models.resnet50().state_dict())
    assert set(mapped) == {k for k in own if not k.startswith("non_local.")}
    assert all(mapped[k].shape == own[k].shape for k in mapped)
    backbone = AGWBackbone("50")
    assert [len(blocks) for blocks in backbone.non_local] == [0, 2, 3, 0]  # AGW's non_layers
    assert backbone.dims == [2048] and backbone.grid_sizes == [(18, 9)]  # last stride 1 at 288x144


def test_imagenet_file_loads_into_both_stems_and_the_shared_stages(tmp_path):
    import torchvision

    reference = torchvision.models.resnet50()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    cfg = ModelConfig(backbone="agw", preset="50", csa=False, pooling="gem", drop_path_rate=0.0,
                      pretrained=str(tmp_path / "resnet50.pth"))
    backbone = build_model(cfg, num_classes=4).backbone
    for stem in backbone.stems:
        assert torch.equal(stem[0].weight, reference.conv1.weight)
    assert torch.equal(backbone.layers[3][0].conv2.weight, reference.layer4[0].conv2.weight)
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not fit AGW's ResNet-50"):
        build_model(ModelConfig(**{**cfg.__dict__, "pretrained": str(tmp_path / "other.pth")}), num_classes=4)
    with pytest.raises(UserError, match="no ImageNet weights"):
        build_model(micro(pretrained=str(tmp_path / "resnet50.pth")), num_classes=4)


def test_each_image_goes_through_its_modality_stem_and_the_order_is_kept():
    torch.manual_seed(0)
    backbone = AGWBackbone("micro", (96, 48)).eval()
    x = torch.randn(4, 3, 96, 48)
    modality = torch.tensor([0, 1, 1, 0])
    mixed = backbone.stem(x, modality)
    assert torch.allclose(mixed[[0, 3]], backbone.stems[0](x[[0, 3]]))
    assert torch.allclose(mixed[[1, 2]], backbone.stems[1](x[[1, 2]]))
    assert torch.equal(backbone.stem(x, 1), backbone.stems[1](x))  # one int for the whole batch
    with pytest.raises(UserError, match="needs each image's modality"):
        backbone(x)


def test_non_local_block_starts_as_the_identity_and_gem_is_agws_pooling():
    block = NonLocal(8).eval()
    x = torch.randn(2, 8, 6, 3)
    assert torch.equal(block(x), x)
    fmap = torch.rand(2, 4, 6, 3)
    expected = (fmap.flatten(2).pow(3).mean(-1) + 1e-12).pow(1 / 3)  # AGW's gm_pool, p = 3
    assert torch.allclose(gem(fmap), expected)


def test_model_config_refuses_what_agw_does_not_have():
    with pytest.raises(UserError, match="csa=True"):
        ModelConfig(backbone="agw", preset="micro", csa=True, pooling="gem", drop_path_rate=0.0)
    with pytest.raises(UserError, match="not valid"):
        ModelConfig(backbone="agw", preset="9", csa=False, pooling="gem", drop_path_rate=0.0)
    with pytest.raises(UserError, match="pooling=gem is AGW's"):
        ModelConfig(backbone="crossvit", pooling="gem")


def test_model_trains_and_embeds_with_modalities():
    model = build_model(micro(), num_classes=3)
    out = model(torch.randn(4, 3, 96, 48), torch.tensor([0, 0, 1, 1]))
    assert out["features"].shape == (4, 256) and out["logits"].shape == (4, 3)
    model.eval()
    emb = model(torch.randn(2, 3, 96, 48), 1)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2))


def test_configs_agw_regdb_is_agw_sysu_on_regdb_and_smoke_is_the_micro_resnet_from_scratch():
    sysu, regdb = config_to_dict(load_config("agw_sysu", ["data.dataset=regdb"])), config_to_dict(load_config("agw_regdb"))
    assert [k for k in sysu if sysu[k] != regdb[k]] == ["name", "description"]
    paper = load_config("agw_sysu")
    assert (paper.model.backbone, paper.model.preset, paper.model.pretrained, paper.train.epochs) == ("agw", "50", None, 81)
    assert (paper.data.height, paper.data.width, paper.loss.id_loss, paper.loss.soft_margin) == (288, 144, "ce", True)
    smoke = load_config("agw_sysu", base="smoke")
    assert (smoke.model.preset, smoke.model.pretrained, smoke.train.epochs, smoke.data.height) == ("micro", "none", 9, 96)


def test_smoke_variant_trains_and_reports_the_last_epoch_beside_the_lineage_selection(synthetic_root, tmp_path):
    from reid.experiments import evaluate_runs, resolve, train_run
    from reid.records.compare import compare

    cfg = resolve("agw_sysu", "sysu", synthetic_root / "SYSU-MM01", profile="smoke",
                  overrides=["train.max_steps_per_epoch=2", "train.epochs=3", "train.test_every=1",
                             "data.num_ids=2", "data.num_instances=1"])
    run = train_run(cfg, tmp_path / "runs", device="cpu")
    with open(run / "log.csv") as f:
        log = list(csv.DictReader(f))
    assert len(log) == 3 and all(row["test_rank1"] != "" for row in log)
    best = max(log, key=lambda row: float(row["test_rank1"]))  # first of the best: a tie keeps the earlier
    chosen = torch.load(run / "best_on_test.pt", weights_only=False)
    assert chosen["epoch"] == int(best["epoch"]) and chosen["selection"]["flip"] is True
    result = evaluate_runs(run, "sysu-all", trials=2, results_dir=tmp_path / "results", name="agw")
    lineage = json.loads((tmp_path / "results" / "agw-lineage.json").read_text())
    assert result["protocol"]["model_selection"] == "last epoch" and not result["protocol"]["flip"]
    assert lineage["protocol"]["model_selection"].startswith("lineage: best test Rank-1 of every 1 epochs")
    assert lineage["protocol"]["flip"] is True and result["lineage"]["rank1"] == lineage["rank1"]
    table = compare([tmp_path / "results" / "agw.json", tmp_path / "results" / "agw-lineage.json"])
    assert "protocol differs: flip, model selection" in table and "note: B chose the epoch" in table
