"""FractalDB pretraining (reid.train.pretrain): bit-identical weights for the same arguments, files that load
into the smoke CrossViT and the Table 3 ViT baseline at the same preset, relative paths from the repository
root, and the CLI's one-line errors before any work."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from reid.cli import main
from reid.models import build_model
from reid.models import pretrained as pretrained_module
from reid.models.pretrained import FRACTAL_WEIGHTS, coarse_branch_as_vit, weights_file
from reid.train.pretrain import batch_indices, lr_at, output_paths, pretrain

# A few steps on a few images: what is tested is the plumbing, not the accuracy.
TINY = {"classes": 3, "images_per_class": 4, "held_out_per_class": 1, "steps": 3, "batch_size": 4, "log_every": 2,
        "quiet": True}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(record, file) of one tiny pretraining with the smoke profile's backbone (micro, conv stem, 96x48)."""
    out = tmp_path_factory.mktemp("pretrain") / "fractal"
    return pretrain(out, **TINY), out.with_name("fractal.safetensors")


def smoke_model_configs(tmp_path):
    """The smoke profile's full model and its Table 3 ViT baseline, as the runner resolves them."""
    from reid.experiments import resolve

    return {row: resolve(row, "sysu", tmp_path, profile="smoke").model for row in (None, "table3_baseline")}


def test_same_arguments_give_the_same_bytes(weights, tmp_path):
    record, path = weights
    again = pretrain(tmp_path / "again", **TINY)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()
    assert again["sha256"] == record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    other = pretrain(tmp_path / "other", **{**TINY, "seed": 1})
    assert other["sha256"] != record["sha256"]


def test_the_json_says_what_was_run(weights):
    record, path = weights
    written = json.loads(path.with_suffix(".json").read_text())
    assert written["sha256"] == record["sha256"] and written["bytes"] == path.stat().st_size
    assert written["arguments"]["steps"] == 3 and written["arguments"]["preset"] == "micro"
    for key in ("commit", "dirty", "command", "hardware", "versions"):
        assert key in written["provenance"]
    assert 0 <= written["final_train_accuracy"] <= 1 and 0 <= written["held_out_accuracy"] <= 1
    assert written["images"] == {"train": 12, "held_out": 3} and written["wall_time_s"] >= 0
    assert not any(k.startswith("head") for k in load_file(str(path)))  # the backbone only


def test_weights_load_into_the_smoke_crossvit_and_the_vit_baseline(weights, tmp_path):
    _, path = weights
    saved = load_file(str(path))
    configs = smoke_model_configs(tmp_path)
    full, baseline = configs[None], configs["table3_baseline"]
    assert (full.backbone, baseline.backbone) == ("crossvit", "vit")
    assert full.preset == baseline.preset == "micro" and full.conv_stem and baseline.conv_stem
    torch.manual_seed(1)  # another init than the file's, so that equality means "loaded"
    crossvit = build_model(dataclasses.replace(full, pretrained=str(path)), num_classes=5).backbone.vit.state_dict()
    assert set(crossvit) == set(saved)
    assert all(torch.equal(crossvit[k], saved[k]) for k in saved)
    vit = build_model(dataclasses.replace(baseline, pretrained=str(path)), num_classes=5).backbone.vit.state_dict()
    lifted = coarse_branch_as_vit(saved)
    assert set(vit) == set(lifted)  # no missing or unexpected key: the coarse branch is the whole ViT
    assert all(torch.equal(vit[k], lifted[k]) for k in lifted)
    assert torch.equal(vit["patch_embed.proj.0.weight"], saved["patch_embed.1.proj.0.weight"])  # the conv stem


def test_another_size_of_the_same_aspect_loads_another_preset_or_aspect_is_a_clear_error(weights):
    from reid.models import ModelConfig
    from reid.utils.errors import UserError

    _, path = weights
    with pytest.raises(UserError, match="fractal.safetensors"):
        build_model(ModelConfig(preset="tiny", img_size=(96, 48), pretrained=str(path)), num_classes=3)
    # 96x48 -> 192x96: the 8x4 and 6x3 position grids are resampled to 16x8 and 12x6 (the smoke start at
    # twice the resolution), read as 2:1 grids, not as squares
    model = build_model(ModelConfig(preset="micro", conv_stem=True, img_size=(192, 96), pretrained=str(path)),
                        num_classes=3)
    assert [tuple(g) for g in model.backbone.grid_sizes] == [(16, 8), (12, 6)]
    with pytest.raises(UserError, match="fractal.safetensors.*neither a square grid nor one of the model's 1:1"):
        build_model(ModelConfig(preset="micro", conv_stem=True, img_size=(96, 96), pretrained=str(path)),
                    num_classes=3)


def test_a_relative_path_is_read_from_the_repository_root(weights, tmp_path, monkeypatch):
    from reid.models import ModelConfig

    _, path = weights
    assert weights_file(FRACTAL_WEIGHTS) == pretrained_module.REPOSITORY / FRACTAL_WEIGHTS
    assert weights_file(path) == path  # absolute paths stay
    repository = tmp_path / "repository"
    (repository / "results").mkdir(parents=True)
    (repository / "results" / "w.safetensors").write_bytes(path.read_bytes())
    monkeypatch.setattr(pretrained_module, "REPOSITORY", repository)
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory plays no part
    build_model(ModelConfig(preset="micro", conv_stem=True, img_size=(96, 48), pretrained="results/w.safetensors"),
                num_classes=3)
    assert output_paths(None)[0] == repository / FRACTAL_WEIGHTS


def test_batches_walk_shuffled_passes_that_visit_every_image_once():
    first_pass = np.concatenate([batch_indices(0, step, 4, 10) for step in range(5)])  # 20 places: 2 passes
    assert sorted(first_pass[:10]) == list(range(10)) and sorted(first_pass[10:]) == list(range(10))
    assert list(first_pass[:10]) != list(first_pass[10:])  # each pass its own order
    assert np.array_equal(batch_indices(0, 3, 4, 10), first_pass[12:16])  # a function of the step alone


def test_the_schedule_warms_up_then_decays_to_zero():
    assert lr_at(0, 100, 10) == pytest.approx(0.1) and lr_at(9, 100, 10) == 1.0
    assert lr_at(10, 100, 10) == 1.0 and lr_at(99, 100, 10) < 0.001
    assert output_paths("a/b")[0].name == "b.safetensors" and output_paths("a/b.safetensors")[1].name == "b.json"


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps=0"),
    (["--classes", "1"], "classes=1"),
    (["--lr", "2"], "lr=2"),
    (["--preset", "huge"], "preset='huge'"),
    (["--height", "100"], "100x48"),
    (["--conv-stem", "yes", "--preset", "micro", "--images-per-class", "-1"], "images_per_class=-1"),
])
def test_cli_bad_input_is_one_line_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "w"
    out.with_name("w.json").write_text("kept")  # an earlier output: a refused command leaves it as it was
    assert main(["pretrain", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"] and out.with_name("w.json").read_text() == "kept"


def test_cli_refuses_outputs_it_cannot_write(tmp_path, capsys):
    (tmp_path / "folder.safetensors").mkdir()
    assert main(["pretrain", "--out", str(tmp_path / "folder")]) == 2
    assert "is a folder" in capsys.readouterr().err
    locked = tmp_path / "locked.json"
    locked.write_text("mine")
    locked.chmod(0o444)
    assert main(["pretrain", "--out", str(tmp_path / "locked")]) == 2
    assert "read-only" in capsys.readouterr().err and locked.read_text() == "mine"
