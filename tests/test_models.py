"""The model contract (docs/architecture.md): shapes for every preset and switch, gradients, size
checks, config round-trip, determinism, Grad-CAM targets. Small images (96x48) where size is not the point."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
import torch
from torch import nn

from reid.models import PRESETS, ModelConfig, build_model
from reid.utils.errors import UserError

SMALL = (96, 48)  # divisible by 12 and 16: grids 8x4 (patch 12) and 6x3 (patch 16)

# Tiny tensors: extra threads only add synchronisation, and on a busy 2-core machine OpenMP
# oversubscription made these tests ~30x slower. One thread for this process.


def small_cfg(**kw) -> ModelConfig:
    kw.setdefault("preset", "tiny")
    return ModelConfig(img_size=SMALL, **kw)


def images(n=2, size=SMALL, seed=0):
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def expected_dims(cfg: ModelConfig) -> list[int]:
    dims = list(PRESETS[cfg.preset]["embed_dim"])
    return dims if cfg.backbone == "crossvit" else dims[1:]


def check_outputs(model, cfg, x, num_classes):
    model.train()
    feats = model.forward_features(x)
    dims = expected_dims(cfg)
    grids = [(cfg.img_size[0] // p, cfg.img_size[1] // p) for p in cfg.patch_sizes]
    grids = grids if cfg.backbone == "crossvit" else grids[1:]
    assert [tuple(m.shape) for m in feats["maps"]] == [(len(x), d, *g) for d, g in zip(dims, grids)]
    assert [tuple(c.shape) for c in feats["cls"]] == [(len(x), d) for d in dims]
    per_branch = {"gap+cls": 2, "gap": 1, "cls": 1}[cfg.pooling]
    assert model.feature_dim == per_branch * sum(dims)
    assert feats["global"].shape == (len(x), model.feature_dim)
    head = model(x)
    assert set(head) == {"features", "bn_features", "logits"}
    assert head["features"].shape == head["bn_features"].shape == (len(x), model.feature_dim)
    assert head["logits"].shape == (len(x), num_classes)
    model.eval()
    with torch.no_grad():
        emb = model(x)
    assert emb.shape == (len(x), model.feature_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(x)), atol=1e-5)


@pytest.mark.parametrize("backbone", ["crossvit", "vit"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_with_timm_widths(preset, backbone):
    cfg = ModelConfig(backbone=backbone, preset=preset, img_size=SMALL)
    model = build_model(cfg, num_classes=5)
    check_outputs(model, cfg, images(), 5)
    if backbone == "vit":  # as wide and deep as the coarse CrossViT branch
        spec = PRESETS[preset]
        assert model.backbone.vit.embed_dim == spec["embed_dim"][1]
        assert len(model.backbone.vit.blocks) == sum(d[1] for d in spec["depth"])


# backbone x csa x spatial attention in full (the Table 3 ablation axes and the Eq. 12 readings);
# pooling and the multi-scale residual rotate through their values across these rows.
SWITCHES = [
    (backbone, csa, spatial, ["gap+cls", "gap", "cls"][i % 3], i % 2 == 0)
    for i, (backbone, csa, spatial) in enumerate(
        itertools.product(["crossvit", "vit"], [True, False], ["standard", "paper"])
    )
]


@pytest.mark.parametrize("backbone,csa,spatial,pooling,residual", SWITCHES)
def test_every_switch_combination(backbone, csa, spatial, pooling, residual):
    cfg = small_cfg(
        backbone=backbone, csa=csa, spatial_attention=spatial, pooling=pooling, multiscale_residual=residual
    )
    model = build_model(cfg, num_classes=3)
    check_outputs(model, cfg, images(), 3)
    assert all(isinstance(m, nn.Identity) for m in model.csa) == (not csa)


@pytest.mark.parametrize("backbone", ["crossvit", "vit"])
def test_conv_stem_replaces_the_linear_patch_projection(backbone):
    """conv_stem (CrossViT-dagger): three convolutions per patch embedding, same token grids."""
    torch.manual_seed(0)
    plain = build_model(small_cfg(backbone=backbone), num_classes=3)
    stem = build_model(small_cfg(backbone=backbone, conv_stem=True), num_classes=3)
    check_outputs(stem, stem.cfg, images(), 3)
    assert stem.backbone.grid_sizes == plain.backbone.grid_sizes
    convs = [m for m in stem.backbone.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3]
    assert len(convs) == len(stem.backbone.dims)  # one stem per branch, each starting with a 7x7 conv
    assert all(c.kernel_size == (7, 7) and c.stride == (4, 4) for c in convs)
    with pytest.raises(UserError, match="conv_stem"):
        ModelConfig(img_size=(96, 48), patch_sizes=(8, 16), conv_stem=True)


def test_default_model_at_paper_size():
    cfg = ModelConfig()
    assert (cfg.backbone, cfg.preset, cfg.img_size, cfg.patch_sizes) == (
        "crossvit",
        "9",
        (288, 144),
        (12, 16),
    )
    model = build_model(cfg, num_classes=4)
    assert model.backbone.grid_sizes == [(24, 12), (18, 9)]
    check_outputs(model, cfg, images(2, (288, 144)), 4)


@pytest.mark.parametrize("backbone", ["crossvit", "vit"])
def test_gradients_reach_every_parameter(backbone):
    torch.manual_seed(0)
    model = build_model(small_cfg(backbone=backbone), num_classes=3).train()
    out = model(images(4))
    (out["logits"].square().sum() + out["features"].square().sum()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []
    # the BN neck's shift is frozen on purpose (bias-free classifier after it)
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["bottleneck.bias"]


def test_multiscale_residual_starts_as_timm_and_changes_with_gamma():
    """gamma = 0 at init: our block loop computes exactly timm's CrossVit.forward_features."""
    torch.manual_seed(0)
    model = build_model(small_cfg(), num_classes=3).eval()
    x = images()
    with torch.no_grad():
        cls, maps = model.backbone(x)
        timm_tokens = model.backbone.vit.forward_features(x)
        for b in range(2):
            assert torch.allclose(cls[b], timm_tokens[b][:, 0], atol=1e-6)
            assert torch.allclose(maps[b].flatten(2).transpose(1, 2), timm_tokens[b][:, 1:], atol=1e-6)
        model.backbone.residual_gamma.fill_(1.0)
        cls_residual, _ = model.backbone(x)
    assert not torch.allclose(cls_residual[0], cls[0], atol=1e-3)
    off = build_model(small_cfg(multiscale_residual=False), num_classes=3)
    assert not hasattr(off.backbone, "residual_gamma")


def test_test_feature_selects_the_embedding():
    torch.manual_seed(0)
    model = build_model(small_cfg(), num_classes=3)
    x = images(4)
    model.train()
    model(x)  # one step of BN statistics so that before/after BN differ
    model.eval()
    with torch.no_grad():
        head = model.forward_head(model.forward_features(x)["global"])
        after = model(x)
        model.cfg.test_feature = "before_bn"
        before = model(x)
    assert torch.allclose(after, nn.functional.normalize(head["bn_features"], dim=1), atol=1e-6)
    assert torch.allclose(before, nn.functional.normalize(head["features"], dim=1), atol=1e-6)
    assert not torch.allclose(after, before, atol=1e-3)


@pytest.mark.parametrize(
    "size", [(100, 48), (96, 50), (288, 150), (240, 136)]
)  # each has a side not divisible by 12 or 16
def test_indivisible_sizes_are_refused_at_construction(size):
    with pytest.raises(UserError, match="img_size"):
        ModelConfig(img_size=size)


def test_vit_only_needs_its_own_patch_size():
    ModelConfig(backbone="vit", img_size=(96, 32))  # 32 % 12 != 0 but the ViT uses patch 16 only
    with pytest.raises(UserError, match="img_size"):
        ModelConfig(backbone="crossvit", img_size=(96, 32))


@pytest.mark.parametrize("backbone", ["crossvit", "vit"])
def test_wrong_input_sizes_are_refused_not_resized(backbone):
    model = build_model(small_cfg(backbone=backbone), num_classes=3)
    for shape in [(2, 3, 288, 144), (2, 3, 48, 96), (2, 1, 96, 48), (3, 96, 48)]:
        with pytest.raises(UserError, match=r"expected \(B, 3, 96, 48\)"):
            model(torch.randn(*shape))


def test_timm_scale_and_crop_are_disabled():
    model = build_model(ModelConfig(), num_classes=3)
    assert model.backbone.vit.img_size_scaled == [(288, 144), (288, 144)]
    assert model.backbone.vit.crop_scale is False


def test_config_round_trips_through_json_and_yaml_types():
    cfg = ModelConfig(
        preset="small",
        img_size=(192, 96),
        csa=False,
        spatial_attention="paper",
        pooling="gap",
        test_feature="before_bn",
        drop_path_rate=0.2,
        pretrained="w.pth",
    )
    d = dataclasses.asdict(cfg)
    assert ModelConfig(**d) == cfg
    from_json = json.loads(json.dumps(d))  # tuples become lists
    assert isinstance(from_json["img_size"], list)
    assert ModelConfig(**from_json) == cfg
    assert ModelConfig(preset=9) == ModelConfig(preset="9")  # YAML reads `preset: 9` as an int


@pytest.mark.parametrize(
    "field,value",
    [
        ("backbone", "resnet"),
        ("preset", "huge"),
        ("img_size", (288,)),
        ("img_size", "288x144"),
        ("patch_sizes", (12, 0)),
        ("csa", "yes"),
        ("spatial_attention", "cbam"),
        ("csa_reduction", 0),
        ("sa_kernel_size", 4),
        ("sa_kernel_size", "auto"),
        ("pooling", "max"),
        ("test_feature", "bn"),
        ("drop_path_rate", 1.5),
        ("multiscale_residual", 1),
        ("conv_stem", "yes"),
        ("pretrained", 3),
        ("pretrained", ""),
    ],
)
def test_invalid_config_values_name_the_field(field, value):
    with pytest.raises(UserError, match=field):
        ModelConfig(**{field: value})


def _spatial_kernels(model):
    return [m.spatial.conv.kernel_size for m in model.csa]


def test_csa_spatial_kernel_is_sized_to_the_token_grid():
    from reid.models.reid_model import spatial_kernel

    assert [spatial_kernel("grid", g) for g in [(24, 12), (18, 9), (8, 4), (6, 3), (4, 2), (1, 1)]] == [7, 7, 3, 3, 1, 1]
    assert spatial_kernel(5, (6, 3)) == 5
    # the paper's size keeps the paper's 7x7 on both branches ...
    paper = build_model(ModelConfig(preset="tiny"), num_classes=4)
    assert _spatial_kernels(paper) == [(7, 7), (7, 7)]
    # ... the smoke size (grids 8x4 and 6x3) gets 3x3, and 7 stays available as an option
    small = {"preset": "micro", "img_size": (96, 48), "conv_stem": True, "drop_path_rate": 0.0}
    assert _spatial_kernels(build_model(ModelConfig(**small), num_classes=4)) == [(3, 3), (3, 3)]
    assert _spatial_kernels(build_model(ModelConfig(**small, sa_kernel_size=7), num_classes=4)) == [(7, 7), (7, 7)]


def test_unknown_config_key_is_a_user_error():
    with pytest.raises(UserError, match="patch_size"):
        ModelConfig.from_dict({"patch_size": 16})
    assert build_model({"preset": "tiny", "img_size": [96, 48]}, num_classes=2).cfg.img_size == SMALL


def test_bad_num_classes_is_refused():
    with pytest.raises(UserError, match="num_classes"):
        build_model(small_cfg(), num_classes=0)


def test_same_seed_same_model_and_outputs():
    def run():
        torch.manual_seed(123)
        model = build_model(small_cfg(), num_classes=3).train()
        out = model(images(3))["logits"]
        return model.state_dict(), out

    (sd1, out1), (sd2, out2) = run(), run()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(out1, out2)
    torch.manual_seed(124)
    other = build_model(small_cfg(), num_classes=3).state_dict()
    assert not torch.equal(other["classifier.weight"], sd1["classifier.weight"])


class Logits(nn.Module):
    """What grad-cam calls: images -> logits (see ReIDModel.gradcam_targets)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_head(self.model.forward_features(x)["global"])["logits"]


@pytest.mark.parametrize(
    "backbone,branch,layer",
    [
        ("crossvit", 0, "csa"),
        ("crossvit", 1, "tokens"),
        ("crossvit", 0, "tokens"),
        ("vit", 0, "csa"),
        ("vit", 0, "tokens"),
    ],
)
def test_gradcam_targets_work_with_pytorch_grad_cam(backbone, branch, layer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = build_model(small_cfg(backbone=backbone), num_classes=3).eval()
    layers, reshape = model.gradcam_targets(branch, layer)
    assert (reshape is None) == (layer == "csa")
    with GradCAM(model=Logits(model), target_layers=layers, reshape_transform=reshape) as cam:
        heat = cam(input_tensor=images(2), targets=[ClassifierOutputTarget(1)] * 2)
    assert heat.shape == (2, *SMALL)
    assert heat.min() >= 0 and heat.max() <= 1


def test_gradcam_refuses_missing_branch():
    model = build_model(small_cfg(backbone="vit"), num_classes=3)
    with pytest.raises(ValueError, match="branch"):
        model.gradcam_targets(1)


# The Table 3/4 model axes (backbone x CSA); the metric losses of Table 4 rotate across them.
@pytest.mark.parametrize(
    "backbone,csa,metric",
    [
        ("crossvit", True, "adaptive_triplet"),
        ("crossvit", False, "hard_triplet"),
        ("vit", True, "center"),
        ("vit", False, "adaptive_triplet"),
    ],
)
def test_every_ablation_combination_trains(backbone, csa, metric):
    """A few Adam steps on one fixed batch (colour + grayscale views) lower LSCE + metric loss."""
    from reid.losses import LabelSmoothingCrossEntropy, build_metric_loss

    torch.manual_seed(0)
    model = build_model(small_cfg(backbone=backbone, csa=csa, drop_path_rate=0.0), num_classes=3).train()
    metric_loss = build_metric_loss(metric, margin=0.3, num_classes=3, feat_dim=model.feature_dim)
    ce = LabelSmoothingCrossEntropy(0.1)
    optimizer = torch.optim.Adam([*model.parameters(), *metric_loss.parameters()], lr=1e-3)
    colour = images(6, seed=1)
    x = torch.cat([colour, colour.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)])
    pids = torch.tensor([0, 0, 1, 1, 2, 2] * 2)
    losses = []
    for _ in range(6):
        out = model(x)
        loss = ce(out["logits"], pids) + metric_loss(out["features"], pids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
