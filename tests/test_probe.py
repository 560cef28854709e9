"""reid.tools.probe: a backbone start, frozen, ranked by nearest neighbour on the SYSU-MM01 protocol."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from reid.cli import main
from reid.config import load_config
from reid.models import build_model
from reid.tools.probe import frozen_probe


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 'pretrained' start: a backbone drawn with another seed, saved as a weights file."""
    cfg = load_config("smoke", ["model.csa=false"])
    torch.manual_seed(123)
    backbone = build_model(cfg.model, num_classes=1, load_pretrained=False).backbone.vit
    path = tmp_path_factory.mktemp("w") / "start.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(path))
    return path


def test_a_start_is_loaded_and_changes_the_ranking(synthetic_root, weights):
    random0 = frozen_probe(synthetic_root, None, seed=0, trials=2)
    again = frozen_probe(synthetic_root, None, seed=0, trials=2)
    loaded = frozen_probe(synthetic_root, str(weights), trials=2)
    assert random0 == again  # a random start is reproducible from its seed
    assert loaded["start"] == str(weights) and random0["start"] == "random (seed 0)"
    assert (loaded["rank1"], loaded["mAP"]) != (random0["rank1"], random0["mAP"])
    assert all(0 <= row[m] <= 100 for row in (random0, loaded) for m in ("rank1", "mAP", "mINP"))


def test_cli_probe_writes_its_rows_with_provenance(synthetic_root, weights, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert main(["probe", "--data", str(synthetic_root), "--pretrained", str(weights), "--random-seeds", "0",
                 "--trials", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["start"] for r in record["rows"]] == [str(weights), "random (seed 0)"]
    assert "commit" in json.dumps(record["provenance"]) and "Rank-1" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--data", "nowhere", "--random-seeds", "0"], "no SYSU-MM01/"),
    (["--pretrained", "missing.safetensors"], "no such file"),
    ([], "name at least one start"),
    (["--random-seeds", "x"], "--random-seeds"),
])
def test_cli_probe_refuses_bad_input_before_any_work(synthetic_root, args, message, capsys):
    argv = ["probe", *(args if "--data" in args else ["--data", str(synthetic_root), *args])]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
