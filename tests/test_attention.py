"""Grad-CAM measured: token-grid order, maps of a model that sees one known region, the person scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image

from reid.data import SYSUMM01
from reid.data.synthetic import ensure_masks
from reid.models import ModelConfig, build_model
from reid.models.crossvit import tokens_to_map
from reid.tools.gradcam import (
    EmbeddingSimilarityTarget,
    attention_maps,
    grid_cams,
    on_image,
    person_attention,
    person_scores,
    token_cover,
)
from reid.utils.errors import UserError

SIZE = (96, 48)


def micro(backbone: str = "crossvit", conv_stem: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone=backbone, preset="micro", img_size=SIZE, conv_stem=conv_stem, drop_path_rate=0.0,
                      test_feature="before_bn", pretrained="none")
    return build_model(cfg, num_classes=5).eval()


def isolate_tokens(model) -> None:
    """Make every patch token depend on its own patch only: the transformer blocks' residual branches,
    the position embeddings and the patch-embedding bias become zero (the blocks are then identities),
    so a patch of zeros gives a token of zeros, all the way through the final norm and CSA."""
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if (name.endswith(("attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias"))
                    or "pos_embed" in name or ("patch_embed" in name and name.endswith("bias"))):
                p.zero_()


def test_tokens_to_map_is_row_major_and_drops_cls():
    h, w, c = 6, 3, 2
    tokens = torch.arange(1 + h * w, dtype=torch.float32)[None, :, None].repeat(2, 1, c)  # token k holds k
    fmap = tokens_to_map(tokens, (h, w))
    assert fmap.shape == (2, c, h, w)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    assert torch.equal(fmap[1, 0], (1 + rows * w + cols).float())  # token 1 + r*w + c is cell (r, c); CLS gone
    with pytest.raises(ValueError, match="do not fill a 5x3 grid"):
        tokens_to_map(tokens, (5, 3))


@pytest.mark.parametrize("backbone,conv_stem", [("crossvit", False), ("crossvit", True), ("vit", False),
                                               ("vit", True)])
def test_each_token_sees_its_receptive_field(backbone, conv_stem):
    """Cell (r, c) of a branch's map holds the token of the pixels `receptive_fields` names, shifted by
    patch * (r, c): exactly its patch with a plain patch embedding; with the conv stem at patch 16, a
    31-pixel window centred on the patch's top-left corner (the gradient's support, row and column)."""
    model = micro(backbone, conv_stem)
    isolate_tokens(model)
    x = torch.randn(1, 3, *SIZE, requires_grad=True)
    maps = model.backbone(x)[1]
    for b, (grid, (start, size)) in enumerate(zip(model.backbone.grid_sizes, model.backbone.receptive_fields)):
        patch = SIZE[0] // grid[0]
        for r, c in [(0, grid[1] - 1), (grid[0] - 2, 0), (grid[0] // 2, 1)]:
            (grad,) = torch.autograd.grad(maps[b][0, :, r, c].square().sum(), x, retain_graph=True)
            seen = grad.abs().sum(dim=(0, 1)) > 0
            rows, cols = seen.any(dim=1).nonzero()[:, 0], seen.any(dim=0).nonzero()[:, 0]
            top, left = start + patch * r, start + patch * c
            assert (rows.min(), rows.max()) == (max(top, 0), min(top + size, SIZE[0]) - 1), (b, r, c)
            assert (cols.min(), cols.max()) == (max(left, 0), min(left + size, SIZE[1]) - 1), (b, r, c)
            if not conv_stem:
                assert (start, size) == (0, patch)
    if conv_stem:
        assert model.backbone.receptive_fields[-1] == (-15, 31)  # patch 16: half a patch up and left


def test_maps_are_drawn_at_the_tokens_receptive_field_centres():
    one_hot = torch.zeros(2, 6, 3)
    one_hot[:, 4, 1] = 1.0
    plain, stem = on_image(one_hot, SIZE, (0, 16))[0], on_image(one_hot, SIZE, (-15, 31))[1]
    assert np.unravel_index(int(plain.argmax()), SIZE) in {(72, 24), (72, 23), (71, 24), (71, 23)}  # patch centre
    assert np.unravel_index(int(stem.argmax()), SIZE) == (64, 16)  # 16 * (4, 1): the window's centre
    assert torch.allclose(on_image(torch.ones(1, 6, 3), SIZE, (-15, 31)), torch.ones(1, *SIZE))


@pytest.mark.parametrize("layer", ["csa", "tokens"])
@pytest.mark.parametrize("backbone,branch", [("crossvit", 0), ("crossvit", 1), ("vit", 0)])
def test_cam_lights_the_only_region_the_output_depends_on(backbone, branch, layer):
    """A model whose branch map is zero but at one patch: Grad-CAM must be there and nowhere else, on the
    token grid (`grid_cams`) and in the displayed map at the input size (`attention_maps`)."""
    model = micro(backbone)
    isolate_tokens(model)
    grid = model.backbone.grid_sizes[branch]
    patch = SIZE[0] // grid[0]
    # Explain against the embedding with its CLS parts zeroed (parts: per branch GAP, CLS): the similarity
    # then grows with the GAP part, so the one non-zero token adds to the score (its CAM is positive).
    cls_parts = torch.cat([torch.full((d,), i % 2 == 1) for i, d in enumerate(model.part_dims)])
    for r, c in [(1, grid[1] - 1), (grid[0] - 1, 0), (grid[0] - 2, 1)]:
        x = torch.zeros(1, 3, *SIZE)
        x[..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = torch.randn(3, patch, patch)
        with torch.no_grad():
            ref = model(x).masked_fill(cls_parts, 0.0)
        cam = grid_cams(model, x, ref, branch, layer)[0]
        assert cam.shape == grid and cam[r, c] > 0
        assert torch.count_nonzero(cam) == 1
        shown = attention_maps(model, x, ref, branch, layer)[0]
        y, x_ = np.unravel_index(shown.argmax(), shown.shape)
        assert r * patch <= y < (r + 1) * patch and c * patch <= x_ < (c + 1) * patch


@pytest.mark.parametrize("conv_stem", [False, True])
@pytest.mark.parametrize("branch", [0, 1])
def test_grid_cams_are_pytorch_grad_cams_maps(branch, conv_stem):
    """`grid_cams` is the package's Grad-CAM before its display scaling and resize; `attention_maps` is its
    display, which differs only where the patch embedding does not see its own patch (the conv stem)."""
    model = micro(conv_stem=conv_stem, seed=3)
    torch.manual_seed(4)
    images = torch.randn(3, 3, *SIZE)
    with torch.no_grad():
        refs = model(images.roll(1, 0))
    cams = grid_cams(model, images, refs, branch).numpy()
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind
    layers, reshape = model.gradcam_targets(branch)
    with GradCAM(model, layers, reshape) as cam:
        shown = cam(images, [EmbeddingSimilarityTarget(r) for r in refs])
    # pytorch-grad-cam: ReLU, scaled to [0, 1] and resized per layer, scaled again after aggregating layers.
    np.testing.assert_allclose(scale_cam_image(scale_cam_image(cams, (SIZE[1], SIZE[0]))), shown, atol=1e-5)
    ours = attention_maps(model, images, refs, branch)
    assert np.allclose(ours, shown, atol=1e-5) != conv_stem


def test_person_scores_and_their_chance_levels():
    masks = torch.zeros(4, 96, 48)
    masks[:, 16:80, 16:32] = 1.0  # cells (1..4, 1) of a 6x3 grid: 4 of 18 tokens, area 4/18
    masks[:, 80:96, 32:40] = 1.0  # half of cell (5, 2)
    cams = torch.zeros(4, 6, 3)
    cams[0] = 1.0  # uniform: energy share = area
    cams[1, 2, 1] = 5.0  # on the person
    cams[2, 5, 2] = 1.0  # a half-person token: energy share 0.5, counts as person (cover >= 0.5)
    cams[3, 0, 0] = 2.0  # background corner
    cover = token_cover(masks, (6, 3))
    assert cover[0, 2, 1] == 1.0 and cover[0, 5, 2] == 0.5 and cover[0, 0, 0] == 0.0
    out = person_scores(cams, cover)
    area = (4 + 0.5) / 18
    assert torch.allclose(out["area"], torch.full((4,), area))
    assert torch.allclose(out["energy_share"], torch.tensor([area, 1.0, 0.5, 0.0]))
    assert out["hit"].tolist() == [0.0, 1.0, 1.0, 0.0]  # a uniform map's maximum is its first cell, (0, 0)
    assert torch.allclose(out["pointing_chance"], torch.full((4,), 5 / 18))
    assert not out["empty"].any()
    near = person_scores(cams, cover, tolerance=1)  # one token of slack: (0, 0) touches (1, 1)
    assert near["hit"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert torch.allclose(near["pointing_chance"], torch.ones(4))  # every token is within one of a person token
    assert person_scores(torch.zeros(1, 6, 3), cover[:1])["empty"].item()
    with pytest.raises(ValueError, match="do not tile"):
        token_cover(torch.zeros(4, 95, 48), (6, 3))
    # A conv-stem token sees a 31-pixel window centred on its patch's top-left corner: token (1, 1) sees
    # rows 1..31 and columns 1..31, of which the person (columns 16..31, rows 16..79) covers 16 x 16.
    shifted = token_cover(masks, (6, 3), (-15, 31))
    assert shifted[0, 1, 1] == pytest.approx(16 * 16 / (31 * 31))
    assert shifted[0, 0, 0] == 0.0 and shifted.shape == (4, 6, 3)


def test_person_attention_over_a_query_set(synthetic_root, tmp_path):
    masks = ensure_masks(synthetic_root, tmp_path / "masks")  # the session's set stays as it is
    model = micro(seed=1)
    n_query = len(SYSUMM01(synthetic_root / "SYSU-MM01").query("all"))
    for branch, grid in ((0, [8, 4]), (1, [6, 3])):
        out = person_attention(model, synthetic_root / "SYSU-MM01", masks, branch=branch, batch_size=5,
                               progress=False)
        assert out["images"] == n_query and out["grid"] == grid
        assert 0.1 < out["area_fraction"] < 0.6 and 0.1 < out["pointing_chance"] < 0.6
        for key in ("energy_share", "pointing", "empty_maps"):
            assert 0.0 <= out[key] <= 1.0
    with pytest.raises(UserError, match="no person masks"):
        person_attention(model, synthetic_root / "SYSU-MM01", tmp_path, progress=False)


def test_attention_record_has_a_row_per_model_branch_and_seed_and_its_provenance(synthetic_root, tmp_path):
    import json

    from reid.experiments import resolve, train_run
    from reid.tools.gradcam import attention_record, write_attention_record
    from tests.conftest import TINY

    masks = ensure_masks(synthetic_root, tmp_path / "masks")
    runs = {}
    for name, row in (("baseline", "table3_baseline"), ("full model", "table3_full")):
        cfg = resolve(row, "sysu", synthetic_root / "SYSU-MM01", profile="smoke", overrides=TINY)
        runs[(name, 0)] = train_run(cfg, tmp_path / "runs", device="cpu")
    record = attention_record(runs, synthetic_root / "SYSU-MM01", masks, command="test", device="cpu")
    assert [(r["model"], r["branch"], r["seed"]) for r in record["scores"]] == [
        ("baseline", "single", 0), ("full model", "fine", 0), ("full model", "coarse", 0)]
    assert all(0 <= r["energy_share"] <= 100 and 0 < r["area_fraction"] < 100 for r in record["scores"])
    assert record["provenance"]["command"] == "test" and record["data"]["kind"] == "synthetic"
    path = write_attention_record(record, tmp_path / "results" / "fig3.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
