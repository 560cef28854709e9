"""The protocol runner end to end on a small synthetic tree with a random-weight tiny model."""

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from reid.cli import main as cli
from reid.eval.diagnostics import NO_CSA, GateRecorder, part_shares
from reid.eval.evaluate import (
    METRICS,
    evaluate_regdb,
    evaluate_sysu,
    extract_features,
    load_model,
    summary_text,
)
from reid.eval.metrics import eval_sysu
from reid.eval.rerank import card_value
from reid.records.provenance import CSV_COLUMNS
from reid.utils.checkpoint import save_checkpoint
from reid.utils.errors import UserError

IMG = (48, 48)  # the smallest size both patch sizes (12, 16) divide: keeps the tests fast


@pytest.fixture(scope="module")
def data(synthetic_root):
    """The session's small synthetic tree (tests/conftest.py); read-only."""
    return synthetic_root


@pytest.fixture(scope="module")
def tiny():
    """A random-weight tiny CrossViT at 48x48 and its checkpoint dict."""
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny", img_size=IMG, drop_path_rate=0.0)
    model = build_model(cfg, num_classes=8, load_pretrained=False).eval()
    state = {"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "num_classes": 8,
             "config": {"note": "test"}, "epoch": 3}
    return model, state


@pytest.fixture(scope="module")
def checkpoint(tiny, tmp_path_factory):
    return save_checkpoint(tiny[1], tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_sysu_runner_matches_a_direct_computation(tiny, data):
    from reid.data.sysu import SYSUMM01

    model = tiny[0]
    result = evaluate_sysu(model, data / "SYSU-MM01", mode="all", shots=1, trials=2, batch_size=8, device="cpu")
    assert len(result["per_trial"]) == 2 and [t["trial"] for t in result["per_trial"]] == [0, 1]
    for m in METRICS:
        assert 0 <= result[m] <= 100 and result["std"][m] >= 0
        assert result[m] == pytest.approx(np.mean([t[m] for t in result["per_trial"]]))
    assert result["data"]["kind"] == "synthetic" and result["label"].startswith("synthetic SYSU-MM01-layout")
    protocol = {"dataset": "sysu", "setting": "all-search, single-shot", "mode": "all", "shots": 1, "trials": 2,
                "test_feature": "after_bn", "flip": False, "rerank": False}
    assert {k: result["protocol"][k] for k in protocol} == protocol  # the card adds fields (test_protocol_card.py)
    assert result["protocol"]["splits"] == "n/a" and result["protocol"]["model_selection"] == "unknown"
    # trial 1 by hand: embed query and gallery, cosine distance, eval_sysu
    ds = SYSUMM01(data / "SYSU-MM01")
    q, q_pids, q_cams = extract_features(model, ds.query("all"), device="cpu")
    g, g_pids, g_cams = extract_features(model, ds.gallery("all", 1, 1), device="cpu")
    cmc, mAP, _ = eval_sysu((1 - q @ g.T).numpy(), q_pids, g_pids, q_cams, g_cams)
    assert result["per_trial"][1]["rank1"] == pytest.approx(100 * cmc[0])
    assert result["per_trial"][1]["mAP"] == pytest.approx(100 * mAP)
    # diagnostics: the part shares of the queries and the union of the trials' galleries, the gates of the queries
    diagnostics = result["diagnostics"]
    shares = diagnostics["part_shares"]
    assert list(shares) == ["gap_fine", "cls_fine", "gap_coarse", "cls_coarse"]
    assert sum(s["share"] for s in shares.values()) == pytest.approx(1.0)
    union = list(dict.fromkeys(ds.gallery("all", 0, 1) + ds.gallery("all", 1, 1)))
    by_hand = part_shares(torch.cat([q, extract_features(model, union, device="cpu")[0]]), model.part_dims)
    assert [s["share"] for s in shares.values()] == pytest.approx([s["share"] for s in by_hand])
    assert f"{len(q)} query and {len(union)} gallery features" in diagnostics["part_shares_of"]
    gates = diagnostics["csa_gates"]
    assert list(gates) == ["fine", "coarse"] and f"{len(q)} IR query images" in diagnostics["csa_gates_of"]
    assert all(0 <= v <= 1 for branch in gates.values() for v in branch.values())


def test_features_are_normalised_and_flip_is_an_average(tiny, data):
    from reid.data.sysu import SYSUMM01

    items = SYSUMM01(data / "SYSU-MM01").query("all")[:5]
    plain, pids, _ = extract_features(tiny[0], items, batch_size=2, device="cpu")
    flipped, _, _ = extract_features(tiny[0], items, batch_size=2, device="cpu", flip=True)
    assert plain.shape[0] == 5 and list(pids) == [pid for _, pid, _ in items]
    torch.testing.assert_close(plain.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(flipped.norm(dim=1), torch.ones(5))
    assert not torch.allclose(plain, flipped)
    with GateRecorder().recording(tiny[0]) as gates:  # what the runners do while they embed the queries
        hooked, _, _ = extract_features(tiny[0], items, batch_size=2, device="cpu")
    assert torch.equal(plain, hooked) and set(gates.summary()) == {"fine", "coarse"}


def test_regdb_one_model_versus_one_per_split(tiny, data):
    model = tiny[0]
    single = evaluate_regdb(model, data / "RegDB", splits=1, direction="t2v", device="cpu")
    assert single["protocol"]["model_per_split"] is False and "one model for all splits" in single["label"]
    assert single["label"].startswith("synthetic RegDB-layout, thermal to visible")
    seen = []
    per_split = evaluate_regdb(lambda t: seen.append(t) or model, data / "RegDB", splits=2, device="cpu",
                               rerank=True)
    assert seen == [1, 2] and per_split["protocol"]["model_per_split"] is True
    assert [row["split"] for row in per_split["per_split"]] == [1, 2]
    assert per_split["protocol"]["rerank"] == card_value("released") and per_split["label"].endswith("re-ranked")
    literal = evaluate_regdb(model, data / "RegDB", splits=1, device="cpu", rerank="eq7")
    assert literal["protocol"]["rerank"] == card_value("eq7") and literal["label"].endswith("(literal Eq. 7)")
    assert literal["per_split"][0] != per_split["per_split"][0]  # the variants measure differently here
    shares = per_split["diagnostics"]["part_shares"]  # the mean over the splits of shares that sum to 1
    assert sum(s["share"] for s in shares.values()) == pytest.approx(1.0)
    assert per_split["diagnostics"]["part_shares_of"].endswith("of the 2 splits, the mean over the splits")
    assert single["diagnostics"]["csa_gates_of"] == "the thermal query images of split 1"
    with pytest.raises(UserError, match="one per split"):
        evaluate_regdb([model], data / "RegDB", splits=2)
    with pytest.raises(UserError, match="--splits"):
        evaluate_regdb(model, data / "RegDB", splits=11)


def test_cli_sysu_writes_json_csv_and_provenance(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "out.json"
    rc = cli(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "sysu", "--data", str(data / "SYSU-MM01"),
              "--trials", "2", "--flip", "--test-feature", "before_bn", "--json", str(out),
              "--results-dir", str(tmp_path / "results"), "--name", "run1"])
    assert rc == 0
    result = json.loads(out.read_text())
    assert all(isinstance(result[m], float) for m in ("rank1", "rank10", "rank20", "mAP", "mINP"))
    assert result["protocol"]["flip"] is True and result["protocol"]["test_feature"] == "before_bn"
    assert result["config"] == {"note": "test"} and result["checkpoint"] == str(checkpoint)
    assert result["provenance"]["commit"] and "versions" in result["provenance"]
    assert json.loads((tmp_path / "results" / "run1.json").read_text())["rank1"] == result["rank1"]
    with open(tmp_path / "results" / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["data"] == "synthetic SYSU-MM01-layout" and row["flip"] == "True"
    assert list(row) == CSV_COLUMNS  # the diagnostics are in the JSON only
    printed = capsys.readouterr().out
    assert "synthetic SYSU-MM01-layout" in printed
    # the diagnostics, under the card and above the metrics: a line per part and per branch's gates
    card_end, metrics = printed.index("diagnostics (measured, not card fields):"), printed.index("per trial")
    assert printed.index("protocol card:") < card_end < metrics
    lines = printed[card_end:metrics].splitlines()
    assert lines[1].startswith("  part shares of the squared pair distance, on the ")
    assert [line.split()[0] for line in lines[2:6]] == ["gap_fine", "cls_fine", "gap_coarse", "cls_coarse"]
    shares = result["diagnostics"]["part_shares"]
    assert [float(line.split()[1]) for line in lines[2:6]] == pytest.approx(
        [100 * s["share"] for s in shares.values()], abs=0.05)
    assert lines[6].startswith("  CSA gates, mean ± sd") and lines[6].endswith("and their mirror images:")  # flip
    assert [line.split()[0] for line in lines[7:9]] == ["fine", "coarse"]
    assert all("channel 0." in line and "top quarter 0." in line for line in lines[7:9])
    assert float(lines[7].split("channel ")[1].split()[0]) == pytest.approx(
        result["diagnostics"]["csa_gates"]["fine"]["channel_mean"], abs=5e-4)
    assert lines[9].strip().startswith("(top quarter: ") and "0.25 = flat" in lines[9]


def test_a_model_without_csa_says_n_a(data):
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="tiny", img_size=IMG, csa=False), num_classes=8).eval()
    result = evaluate_regdb(model, data / "RegDB", splits=1, device="cpu")
    assert result["diagnostics"]["csa_gates"] == NO_CSA
    assert sum(s["share"] for s in result["diagnostics"]["part_shares"].values()) == pytest.approx(1.0)
    assert "  CSA gates: n/a: no CSA" in summary_text(result).splitlines()
    del result["diagnostics"]  # a result recorded before the diagnostics
    assert "diagnostics: not recorded (a result from before them)" in summary_text(result)


@pytest.mark.parametrize("template, written", [("split{split}.pt", "split1.pt"),
                                                ("split_{split:02d}.pt", "split_01.pt")])
def test_cli_regdb_with_a_checkpoint_per_split(tiny, data, tmp_path, template, written):
    save_checkpoint(tiny[1], tmp_path / written)
    out = tmp_path / "regdb.json"
    rc = cli(["evaluate", "--checkpoint", str(tmp_path / template), "--dataset", "regdb",
              "--data", str(data / "RegDB"), "--splits", "1", "--json", str(out),
              "--results-dir", str(tmp_path / "results")])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["model_per_split"] is True and result["protocol"]["splits"] == 1


def test_cli_regdb_checks_every_split_checkpoint_first(tiny, data, tmp_path, capsys):
    save_checkpoint(tiny[1], tmp_path / "split1.pt")
    rc = cli(["evaluate", "--checkpoint", str(tmp_path / "split{split}.pt"), "--dataset", "regdb",
              "--data", str(data / "RegDB"), "--splits", "2", "--results-dir", str(tmp_path / "results")])
    assert rc == 2 and "split2.pt" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_cli_errors_are_one_line(checkpoint, tiny, data, tmp_path, capsys):
    base = ["evaluate", "--dataset", "sysu", "--results-dir", str(tmp_path)]
    assert cli([*base, "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert cli([*base, "--checkpoint", str(tmp_path / "none.pt"), "--data", str(data / "SYSU-MM01")]) == 2
    assert "none.pt" in capsys.readouterr().err
    # weights that do not fit the config (CSA switched off in the config, weights still have it)
    bad = dict(tiny[1], model_config={**tiny[1]["model_config"], "csa": False})
    save_checkpoint(bad, tmp_path / "mismatch.pt")
    assert cli([*base, "--checkpoint", str(tmp_path / "mismatch.pt"), "--data", str(data / "SYSU-MM01")]) == 2
    err = capsys.readouterr().err
    assert "mismatch.pt" in err and "unexpected keys" in err and err.count("\n") == 1
    assert cli([*base, "--checkpoint", str(checkpoint), "--data", str(data / "SYSU-MM01"), "--device", "gpu0"]) == 2
    assert "--device gpu0" in capsys.readouterr().err
    # a config the model code rejects
    save_checkpoint(dict(tiny[1], model_config={"backbone": "resnet"}), tmp_path / "badcfg.pt")
    with pytest.raises(UserError, match="badcfg.pt"):
        load_model(tmp_path / "badcfg.pt")
    assert not list(tmp_path.glob("*.json"))  # nothing was evaluated


def test_missing_checkpoint_exits_without_traceback(data, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "reid", "evaluate", "--checkpoint", str(tmp_path / "gone.pt"), "--dataset", "regdb",
         "--data", str(data / "RegDB")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "gone.pt" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def _copy_without(data, tmp_path, drop, manifest=True):
    """A copy of the small synthetic SYSU-MM01 without the folders `drop` (relative paths; globs)."""
    import shutil

    root = tmp_path / "SYSU-MM01"
    shutil.copytree(data / "SYSU-MM01", root)
    for pattern in drop:
        for path in root.glob(pattern):
            shutil.rmtree(path)
    if not manifest:
        (root / "synthetic.json").unlink()
    return root


@pytest.mark.parametrize("drop,camera", [(["cam5"], "cam5"), (["cam2/*"], "cam2")])
def test_a_missing_or_emptied_protocol_camera(tiny, data, tmp_path, capsys, drop, camera):
    """Issue 34, case 2: a camera folder removed (or every identity in it) shrank the gallery without a word,
    and a copy without synthetic.json recorded the number as real SYSU-MM01. Real: one line; synthetic: a warning."""
    real = _copy_without(data, tmp_path / "real", drop, manifest=False)
    with pytest.raises(UserError, match=f"{camera} has no image folder .* all-search protocol"):
        evaluate_sysu(tiny[0], real, mode="all", trials=1, batch_size=8, device="cpu")
    synthetic = _copy_without(data, tmp_path / "synthetic", drop)
    result = evaluate_sysu(tiny[0], synthetic, mode="all", trials=1, batch_size=8, device="cpu")
    assert any(camera in w for w in result["warnings"])
    assert f"warning: {synthetic}: {camera}" in capsys.readouterr().err
    if camera == "cam5":  # indoor search does not use cam5
        indoor = evaluate_sysu(tiny[0], real, mode="indoor", trials=1, batch_size=8, device="cpu")
        assert not any("cam5" in w for w in indoor.get("warnings", []))


def test_a_missing_camera_refuses_training_on_real_data(data, tmp_path):
    """Issue 34, case 2, training: `TrainData` checks the cameras before any step."""
    from reid.config import load_config
    from reid.data.train_data import TrainData
    from tests.conftest import TINY

    real = _copy_without(data, tmp_path, ["cam2/*"], manifest=False)
    cfg = load_config("smoke", [*TINY, f"data.root={real}"])
    with pytest.raises(UserError, match="cam2 has no image folder .* training"):
        TrainData(cfg)
