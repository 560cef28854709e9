"""Local ImageNet weights: a random timm crossvit_tiny_240 saved to disk loads into the 288x144 model
with resampled position embeddings, and bad files are clear errors."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from reid.models import ModelConfig, build_model
from reid.models.crossvit import TIMM_DAGGER_NAMES, TIMM_NAMES, timm_name
from reid.utils.errors import UserError

# Tiny tensors: extra threads only add synchronisation, and on a busy 2-core machine OpenMP
# oversubscription made these tests ~30x slower. One thread for this process.


@pytest.fixture(scope="module")
def timm_tiny() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model("crossvit_tiny_240", pretrained=False)  # random weights, no download
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_timm_240_models_have_20x20_and_14x14_grids(timm_tiny):
    """img_scale (1.0, 224/240): the coarse branch sees 224x224 -> 14x14, the fine one 240/12 = 20x20."""
    assert timm_tiny["pos_embed_0"].shape == (1, 1 + 20 * 20, 96)
    assert timm_tiny["pos_embed_1"].shape == (1, 1 + 14 * 14, 192)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_round_trip_resamples_pos_embed_and_copies_the_rest(timm_tiny, tmp_path, suffix):
    path = tmp_path / f"crossvit_tiny_240{suffix}"
    if suffix == ".pth":
        torch.save(timm_tiny, path)
    else:
        save_file({k: v.contiguous() for k, v in timm_tiny.items()}, str(path))
    torch.manual_seed(1)  # different random init, so that equality below means "loaded"
    model = build_model(ModelConfig(preset="tiny", pretrained=str(path)), num_classes=7)
    loaded = model.backbone.vit.state_dict()

    for b, (old, new) in enumerate([((20, 20), (24, 12)), ((14, 14), (18, 9))]):
        want = resample_abs_pos_embed(
            timm_tiny[f"pos_embed_{b}"], new_size=new, old_size=old, num_prefix_tokens=1
        )
        assert loaded[f"pos_embed_{b}"].shape == (
            1,
            1 + new[0] * new[1],
            timm_tiny[f"pos_embed_{b}"].shape[2],
        )
        assert torch.equal(loaded[f"pos_embed_{b}"], want)
        assert torch.equal(
            loaded[f"pos_embed_{b}"][:, 0], timm_tiny[f"pos_embed_{b}"][:, 0]
        )  # CLS entry kept

    copied = [k for k in timm_tiny if not k.startswith("head") and not k.startswith("pos_embed")]
    assert len(copied) > 100
    assert all(torch.equal(loaded[k], timm_tiny[k]) for k in copied)
    assert not any(k.startswith("head") for k in loaded)  # the ImageNet classifiers are dropped
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 288, 144))).all()


def test_wrapped_and_original_key_names_load(timm_tiny, tmp_path):
    """{"model": ...} containers, a DDP "module." prefix and IBM's "pos_embed.0" names are accepted."""
    renamed = {}
    for k, v in timm_tiny.items():
        k = k.replace("pos_embed_", "pos_embed.").replace("cls_token_", "cls_token.")
        renamed[f"module.{k}"] = v
    path = tmp_path / "ibm.pth"
    torch.save({"model": renamed, "epoch": 300}, path)
    model = build_model(ModelConfig(preset="tiny", pretrained=str(path)), num_classes=3)
    assert torch.equal(model.backbone.vit.cls_token_1, timm_tiny["cls_token_1"])


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        build_model(ModelConfig(preset="tiny", pretrained=str(tmp_path / "nope.pth")), num_classes=3)


def test_load_pretrained_false_skips_the_file(tmp_path):
    cfg = ModelConfig(preset="tiny", pretrained=str(tmp_path / "gone.pth"))
    build_model(cfg, num_classes=3, load_pretrained=False)  # e.g. evaluation of a trained checkpoint


def test_wrong_preset_names_the_file_and_a_mismatch(timm_tiny, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(timm_tiny, path)
    with pytest.raises(UserError, match=r"tiny\.pth.*(shape mismatch|missing)"):
        build_model(ModelConfig(preset="9", img_size=(96, 48), pretrained=str(path)), num_classes=3)


@pytest.mark.parametrize(
    "content,suffix,message",
    [
        (b"not a checkpoint", ".pth", "cannot read"),
        (b"{}", ".json", "expected one of"),
    ],
)
def test_unreadable_files_are_user_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        build_model(ModelConfig(preset="tiny", pretrained=str(path)), num_classes=3)


def test_vit_baseline_loads_a_timm_vit_checkpoint(tmp_path):
    """The same loader resamples a square ViT grid (224/16 = 14x14) to 18x9."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    source = VisionTransformer(
        img_size=224,
        patch_size=16,
        embed_dim=192,
        depth=12,
        num_heads=3,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=10,
    ).state_dict()
    path = tmp_path / "vit.pth"
    torch.save(source, path)
    model = build_model(ModelConfig(backbone="vit", preset="tiny", pretrained=str(path)), num_classes=3)
    want = resample_abs_pos_embed(
        source["pos_embed"], new_size=(18, 9), old_size=(14, 14), num_prefix_tokens=1
    )
    assert torch.equal(model.backbone.vit.pos_embed, want)
    assert torch.equal(model.backbone.vit.blocks[3].mlp.fc1.weight, source["blocks.3.mlp.fc1.weight"])


@pytest.mark.parametrize("preset, conv_stem", [(p, False) for p in sorted(TIMM_NAMES)]
                         + [(p, True) for p in sorted(TIMM_DAGGER_NAMES)])
def test_presets_match_timm_checkpoints(preset, conv_stem):
    """Every preset (and its dagger variant) has exactly the tensors of its timm model, so its ImageNet
    file would load."""
    theirs = timm.create_model(timm_name(preset, conv_stem), pretrained=False).state_dict()
    ours = build_model(ModelConfig(preset=preset, conv_stem=conv_stem), num_classes=3).backbone.vit.state_dict()
    shapes = {k: tuple(v.shape) for k, v in theirs.items() if not k.startswith(("head", "pos_embed"))}
    assert shapes == {k: tuple(v.shape) for k, v in ours.items() if not k.startswith("pos_embed")}


def test_legacy_pretrained_path_key_still_reads():
    """Checkpoints written before `model.pretrained` carry `pretrained_path` in their model_config."""
    assert ModelConfig.from_dict({"preset": "tiny", "pretrained_path": None}).pretrained is None
    assert ModelConfig.from_dict({"preset": "tiny", "pretrained_path": "w.pth"}).pretrained == "w.pth"


def test_vit_baseline_loads_the_crossvit_checkpoints_coarse_branch(timm_tiny, tmp_path):
    """Table 3's ViT baseline starts from the same ImageNet checkpoint as the CrossViT: its coarse branch."""
    path = tmp_path / "crossvit_tiny_240.pth"
    torch.save(timm_tiny, path)
    model = build_model(ModelConfig(backbone="vit", preset="tiny", pretrained=str(path)), num_classes=3)
    vit = model.backbone.vit
    depth = 4  # coarse blocks per multi-scale block of crossvit_tiny (3 multi-scale blocks: 12 ViT blocks)
    assert len(vit.blocks) == 3 * depth
    assert torch.equal(vit.blocks[0].attn.qkv.weight, timm_tiny["blocks.0.blocks.1.0.attn.qkv.weight"])
    assert torch.equal(vit.blocks[7].mlp.fc2.bias, timm_tiny["blocks.1.blocks.1.3.mlp.fc2.bias"])
    assert torch.equal(vit.blocks[11].norm1.weight, timm_tiny["blocks.2.blocks.1.3.norm1.weight"])
    assert torch.equal(vit.patch_embed.proj.weight, timm_tiny["patch_embed.1.proj.weight"])
    assert torch.equal(vit.cls_token, timm_tiny["cls_token_1"]) and torch.equal(vit.norm.bias, timm_tiny["norm.1.bias"])
    want = resample_abs_pos_embed(timm_tiny["pos_embed_1"], new_size=(18, 9), old_size=(14, 14), num_prefix_tokens=1)
    assert torch.equal(vit.pos_embed, want)


def _write_hub_cache(cache, repo: str, tensors: dict) -> None:
    """What a finished timm download leaves in the Hugging Face hub cache (written by the test itself)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "snapshots" / commit / "model.safetensors"))


def test_timm_source_uses_timms_cache_offline_and_names_the_checkpoint_when_absent(timm_tiny, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # nothing is ever downloaded in tests
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError, match=r"crossvit_tiny_240.*model.pretrained=/path/to/crossvit_tiny_240"):
        build_model(ModelConfig(preset="tiny", pretrained="timm"), num_classes=3)
    # timm saves its checkpoints with the original per-branch names ("pos_embed.0"), then renames them.
    original = {k.replace("pos_embed_", "pos_embed.").replace("cls_token_", "cls_token."): v
                for k, v in timm_tiny.items()}
    _write_hub_cache(tmp_path / "hub", "timm/crossvit_tiny_240.in1k", original)
    model = build_model(ModelConfig(preset="tiny", pretrained="timm"), num_classes=3)
    key = "blocks.1.blocks.0.0.attn.qkv.weight"
    assert torch.equal(model.backbone.vit.state_dict()[key], timm_tiny[key])
    with pytest.raises(UserError, match="no timm ImageNet checkpoint"):
        build_model(ModelConfig(preset="micro", pretrained="timm", img_size=(96, 48)), num_classes=3)


def test_real_data_refuses_an_unset_pretrained(tmp_path):
    from reid.models.pretrained import check_pretrained

    with pytest.raises(UserError, match=r"model.pretrained is not set.*model.pretrained=none"):
        check_pretrained(ModelConfig(preset="18"), tmp_path, synthetic=False)
    check_pretrained(ModelConfig(preset="18"), tmp_path, synthetic=True)  # synthetic: from scratch is fine
    check_pretrained(ModelConfig(preset="18", pretrained="none"), tmp_path, synthetic=False)  # on purpose


def test_a_pickled_weights_file_is_refused_as_unsafe_in_our_words(tmp_path):
    """torch's own text advises `weights_only=False` (running the file's code): never relay it (issue 34)."""
    import os

    from reid.models.pretrained import read_state_dict

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, path)
    with pytest.raises(UserError, match="pickled Python objects.*refused as unsafe") as err:
        read_state_dict(path)
    line = str(err.value)
    assert "\n" not in line and "weights_only" not in line and "evil.pth" in line
    assert not (tmp_path / "pwned").exists()


def test_agw_on_real_data_without_weights_names_the_resnet50_sources():
    from reid.models.pretrained import check_pretrained

    cfg = ModelConfig(backbone="agw", preset="50", csa=False, pooling="gem", drop_path_rate=0.0)
    with pytest.raises(UserError, match=r"resnet50\.safetensors \(or =torchvision, AGW's, or =timm"):
        check_pretrained(cfg, "/data/SYSU-MM01", synthetic=False)


def test_agw_weights_without_internet_are_one_line_naming_the_file_to_pass(monkeypatch):
    import torchvision

    from reid.models.pretrained import resnet_state_dict

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "resnet50", offline)
    with pytest.raises(UserError, match=r"cannot get torchvision's ResNet-50 .*model\.pretrained=/path/to/resnet50"):
        resnet_state_dict("torchvision")
