"""Issue 13: what a careless or hostile user does. Each case is a one-line error naming the file or value (exit
code 2, no traceback) or the correct behaviour, and nothing computed is lost.

Every tree here is written by the test itself (copies of the session's small synthetic set, or a few files).
"""

import csv
import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from reid.cli import main as cli
from reid.config import load_config
from reid.data import SYSUMM01, RegDB, read_image
from reid.data.identity import describe_data
from reid.records.provenance import CSV_COLUMNS, check_result_location, write_result
from reid.train.engine import DivergedError, train
from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.errors import UserError
from tests.conftest import TINY

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root ignores file permissions


def one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def tiny_config(root, *extra):
    return load_config("smoke", [*TINY, f"data.root={root}", *extra])


def train_args(root, out, *extra):
    sets = [a for s in TINY for a in ("--set", s)]
    return ["train", "--config", "smoke", "--data", str(root), "--output-dir", str(out), *sets, *extra]


@pytest.fixture
def sysu_copy(synthetic_root, tmp_path):
    return shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "SYSU-MM01")


@pytest.fixture
def regdb_copy(synthetic_root, tmp_path):
    return shutil.copytree(synthetic_root / "RegDB", tmp_path / "RegDB")


# ------------------------------------------------------------------------------- mislabelled data (high)

def test_a_link_or_a_lone_copy_of_a_synthetic_layout_is_still_synthetic(synthetic_root, tmp_path):
    link = tmp_path / "linked-SYSU-MM01"
    link.symlink_to(synthetic_root / "SYSU-MM01", target_is_directory=True)
    lone = shutil.copytree(synthetic_root / "RegDB", tmp_path / "elsewhere" / "RegDB")  # without its parent
    assert describe_data(link, "sysu")["kind"] == "synthetic"
    assert describe_data(lone, "regdb")["label"] == "synthetic RegDB-layout"


def test_an_older_generation_gets_its_layout_markers_without_regenerating(synthetic_root, tmp_path,
                                                                         monkeypatch):
    from reid.data.synthetic import MANIFEST, ensure_synthetic

    old = shutil.copytree(synthetic_root, tmp_path / "old")
    for name in ("SYSU-MM01", "RegDB"):
        (old / name / MANIFEST).unlink()
    stamp = (old / MANIFEST).stat().st_mtime_ns
    ensure_synthetic(old, seed=0, small=True)
    assert (old / MANIFEST).stat().st_mtime_ns == stamp  # not regenerated
    assert describe_data(shutil.copytree(old / "RegDB", tmp_path / "lone"), "regdb")["kind"] == "synthetic"
    (old / "SYSU-MM01" / MANIFEST).unlink()
    monkeypatch.setattr("pathlib.Path.write_text", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "ro")))
    assert ensure_synthetic(old, seed=0, small=True) == old  # a read-only old generation is used as it is


@pytest.mark.parametrize("inside", ["SYSU-MM01/cam1/0001/0001.jpg", "notes.txt", "deep/down/RegDB/idx/x.txt"])
def test_synth_refuses_an_out_holding_data_it_did_not_write(tmp_path, capsys, inside):
    out = tmp_path / "real"
    (out / inside).parent.mkdir(parents=True)
    (out / inside).write_bytes(b"precious")
    assert cli(["synth", "--out", str(out), "--small"]) == 2
    one_line_error(capsys, str(out), "refusing to overwrite")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [inside]


def test_synth_refuses_foreign_files_next_to_its_own_output(synthetic_root, tmp_path, capsys):
    out = shutil.copytree(synthetic_root, tmp_path / "mine")
    (out / "my_notes.txt").write_text("keep me")
    assert cli(["synth", "--out", str(out), "--small"]) == 2
    one_line_error(capsys, "my_notes.txt")


def test_synth_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert cli(["synth", "--out", str(tmp_path / "file"), "--small"]) == 2
    one_line_error(capsys, "is not a folder")


# -------------------------------------------------------------------------- resume and run folders (high)

@pytest.fixture
def trained(synthetic_root, tmp_path):
    """A one-epoch run folder."""
    out = tmp_path / "run"
    train(tiny_config(synthetic_root / "SYSU-MM01"), out, device="cpu")
    return out


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("change, key", [("optim.lr=1e6", "optim.lr"), ("model.preset=small", "model.preset"),
                                         ("optim.name=adam", "optim.name"), ("loss.metric=center", "loss.metric")])
def test_resume_refuses_a_changed_config_before_touching_anything(synthetic_root, trained, capsys, change, key):
    before = snapshot(trained)
    rc = cli(train_args(synthetic_root / "SYSU-MM01", trained, "--resume", "--set", change, "--device", "cpu"))
    assert rc == 2
    one_line_error(capsys, key, "last.pt", "train.epochs")
    assert snapshot(trained) == before  # config.yaml, last.pt, best.pt, log.csv untouched


def test_resume_may_extend_the_epochs_and_records_what_ran(synthetic_root, trained):
    (trained / ".last.pt.killed.tmp").write_bytes(b"half a checkpoint")  # as left by a kill -9
    (trained / ".best.pt.x1y2.tmp").write_bytes(b"half")
    train(tiny_config(synthetic_root / "SYSU-MM01", "train.epochs=2"), trained, resume=True, device="cpu")
    assert not list(trained.glob(".*.tmp"))
    ckpt = load_checkpoint(trained / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["config"]["train"]["epochs"] == 2
    assert "epochs: 2" in (trained / "config.yaml").read_text()


def test_resume_accepts_the_same_data_folder_spelled_another_way(synthetic_root, trained, tmp_path, monkeypatch):
    (trained / ".config.yaml.tmp").write_text("killed")
    link = tmp_path / "link"
    link.symlink_to(synthetic_root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    train(tiny_config("link/SYSU-MM01", "train.epochs=2"), trained, resume=True, device="cpu")
    assert load_checkpoint(trained / "last.pt")["epoch"] == 2 and not (trained / ".config.yaml.tmp").exists()
    with pytest.raises(UserError, match="data.root"):
        train(tiny_config(shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "other"), "train.epochs=3"),
              trained, resume=True, device="cpu")


def test_resume_with_a_checkpoint_that_does_not_fit_is_one_line(synthetic_root, trained):
    ckpt = load_checkpoint(trained / "last.pt")
    del ckpt["optimizer"]["state"]  # e.g. written by another optimiser
    save_checkpoint(ckpt, trained / "last.pt")
    with pytest.raises(UserError, match="last.pt does not fit"):
        train(tiny_config(synthetic_root / "SYSU-MM01"), trained, resume=True, device="cpu")


def test_a_second_training_into_the_same_folder_refuses(synthetic_root, tmp_path):
    from reid.train.engine import _open_run_folder

    out = tmp_path / "run"
    lock = _open_run_folder(out)  # a first training holds the folder
    try:
        with pytest.raises(UserError, match="another training is running"):
            train(tiny_config(synthetic_root / "SYSU-MM01"), out, device="cpu")
    finally:
        lock.close()
    assert not (out / "last.pt").exists()


@pytest.mark.parametrize("change, key", [("data.test_batch_size=0", "data.test_batch_size"),
                                         ("data.workers=-1", "data.workers"),
                                         ("data.random_erasing=2", "data.random_erasing"),
                                         ("optim.lr=-1", "optim.lr"), ("train.grad_clip=-1", "train.grad_clip"),
                                         ("optim.milestones=[a]", "optim.milestones")])
def test_invalid_values_fail_before_any_work(synthetic_root, tmp_path, capsys, change, key):
    out = tmp_path / "run"
    assert cli(train_args(synthetic_root / "SYSU-MM01", out, "--set", change, "--device", "cpu")) == 2
    one_line_error(capsys, key)
    assert not out.exists()


def test_regdb_splits_check_where_the_results_go_before_training(synthetic_root, tmp_path):
    from reid.experiments import train_command

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--results-dir"):
        train_command("smoke", "regdb", synthetic_root / "RegDB", overrides=TINY, runs_dir=tmp_path / "runs",
                      splits=1, results_dir=tmp_path / "file", device="cpu")
    assert not (tmp_path / "runs").exists()


def test_a_yaml_value_of_the_wrong_type_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: smoke\noptim: {lr: abc}\n")
    with pytest.raises(UserError, match=r"optim\.lr='abc' in .*bad\.yaml.*expected a number"):
        load_config(str(path))


def test_nan_in_the_first_epoch_promises_no_checkpoint_and_writes_no_config(synthetic_root, tmp_path):
    cfg = tiny_config(synthetic_root / "SYSU-MM01", "optim.lr=1e30", "optim.warmup_epochs=0", "train.grad_clip=5",
                      "train.max_steps_per_epoch=3")
    with pytest.raises(DivergedError) as info:
        train(cfg, tmp_path / "run", device="cpu")
    message = str(info.value)
    assert "no checkpoint was written" in message and "epoch 0" not in message
    assert "train.grad_clip=5.0 is already on" in message and "enable train.grad_clip" not in message
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "last.pt").exists()


# ------------------------------------------------------------------------- data silently wrong (medium)

def test_16_bit_images_are_scaled_not_clipped_to_white(tmp_path):
    path = tmp_path / "thermal16.png"
    Image.fromarray(np.full((8, 4), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(read_image(str(path)))
    assert pixels.shape == (8, 4, 3) and abs(int(pixels.max()) - 128) <= 1


def test_32_bit_images_are_scaled_as_16_bit_or_refused_by_name(tmp_path):
    as_older_pillow = tmp_path / "int32.tif"  # a 16-bit PNG opened by an older Pillow: mode "I", 0..65535
    Image.fromarray(np.full((8, 4), 65535, dtype=np.int32)).save(as_older_pillow)
    assert Image.open(as_older_pillow).mode == "I" and np.asarray(read_image(str(as_older_pillow))).min() == 255
    too_wide = tmp_path / "wide.tif"
    Image.fromarray(np.full((8, 4), 70000, dtype=np.int32)).save(too_wide)
    with pytest.raises(UserError, match="wide.tif.*outside 0..65535"):
        read_image(str(too_wide))
    path = tmp_path / "float.tif"
    Image.fromarray(np.ones((8, 4), dtype=np.float32)).save(path)
    with pytest.raises(UserError, match="float.tif.*mode F"):
        read_image(str(path))


def test_an_image_above_the_decompression_bomb_limit_is_named(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100: PIL refuses it
    with pytest.raises(UserError, match="bomb.png"):
        read_image(str(path))


@pytest.mark.parametrize("ids, words", [("1,-12", ["test_id.txt", "-12"]), ("777,888", ["777", "888", "test_id"])])
def test_sysu_id_files_with_bad_or_absent_ids(sysu_copy, ids, words):
    test_ids = sysu_copy / "exp" / "test_id.txt"
    test_ids.write_text(test_ids.read_text().strip() + "," + ids + "\n")
    with pytest.raises(UserError) as info:
        SYSUMM01(sysu_copy)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_sysu_id_file_that_is_not_utf8(sysu_copy):
    (sysu_copy / "exp" / "test_id.txt").write_bytes(b"1,2\xff,3\n")
    with pytest.raises(UserError, match="test_id.txt: not UTF-8"):
        SYSUMM01(sysu_copy)


def test_macos_metadata_files_are_not_images(sysu_copy):
    clean = SYSUMM01(sysu_copy)
    pid = clean.test_ids[0]
    folder = next(f for f in (sysu_copy / f"cam{c}" / f"{pid:04d}" for c in (1, 2, 4, 5)) if f.is_dir())
    (folder / "._0001.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._0001.jpg").write_bytes(b"junk")
    cam = int(folder.parent.name[3:])
    assert SYSUMM01(sysu_copy).files(cam, pid) == clean.files(cam, pid)


def edit_idx(regdb, transform):
    path = regdb / "idx" / "train_visible_1.txt"
    lines = path.read_text().splitlines()
    path.write_bytes(transform(lines))
    return path


def test_regdb_negative_label_is_refused(regdb_copy):
    edit_idx(regdb_copy, lambda lines: ("\n".join([lines[0].rsplit(" ", 1)[0] + " -4", *lines[1:]]) + "\n").encode())
    with pytest.raises(UserError, match=r"train_visible_1.txt:1: .*label an integer >= 0"):
        RegDB(regdb_copy)


def test_regdb_path_leaving_the_root_is_refused(regdb_copy, tmp_path):
    outside = tmp_path / "outside.bmp"
    shutil.copy(regdb_copy / RegDB(regdb_copy).train[0][0], outside)
    for path in (str(outside), "../outside.bmp"):
        edit_idx(regdb_copy, lambda lines, p=path: f"{p} 0\n".encode() + "\n".join(lines[1:]).encode())
        with pytest.raises(UserError, match="leaves the dataset root"):
            RegDB(regdb_copy)


def test_regdb_idx_with_a_bom_reads_and_non_utf8_is_named(regdb_copy):
    reference = RegDB(regdb_copy).train
    edit_idx(regdb_copy, lambda lines: b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    assert RegDB(regdb_copy).train == reference
    edit_idx(regdb_copy, lambda lines: ("\n".join(lines) + "\n").encode() + b"Visible/\xfe.bmp 1\n")
    with pytest.raises(UserError, match="train_visible_1.txt: not UTF-8"):
        RegDB(regdb_copy)


def test_yaml_errors_name_the_line_and_non_utf8_yaml_the_file(tmp_path):
    bad = tmp_path / "syntax.yaml"
    bad.write_text("base: smoke\noptim:\n  lr: [0.1\n  gamma: 0.1\n")
    with pytest.raises(UserError, match=r"syntax\.yaml:\d+:\d+: "):
        load_config(str(bad))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"base: smoke\nname: \xff\n")
    with pytest.raises(UserError, match=r"binary\.yaml: not UTF-8"):
        load_config(str(binary))


def tiny_checkpoint(path, **edit):
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny", img_size=(48, 48), drop_path_rate=0.0)
    state = build_model(cfg, num_classes=8, load_pretrained=False).state_dict()
    for key, value in edit.items():
        state[key] = value
    return save_checkpoint({"model": state, "model_config": dataclasses.asdict(cfg), "num_classes": 8,
                            "config": {}, "epoch": 1}, path)


def test_a_checkpoint_with_nan_statistics_is_named(synthetic_root, tmp_path, capsys):
    from reid.models import ModelConfig, build_model

    model = build_model(ModelConfig(preset="tiny", img_size=(48, 48)), num_classes=8, load_pretrained=False)
    key = next(k for k in model.state_dict() if k.endswith("running_var"))
    path = tiny_checkpoint(tmp_path / "nan.pt", **{key: torch.full_like(model.state_dict()[key], float("nan"))})
    rc = cli(["evaluate", "--checkpoint", str(path), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01"),
              "--trials", "1", "--results-dir", str(tmp_path / "results")])
    assert rc == 2
    one_line_error(capsys, "nan.pt", key)
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ commands that crash or lose results

def test_regdb_checkpoint_templates_take_format_specs():
    from reid.eval.evaluate import checkpoint_for_split, is_split_template

    assert checkpoint_for_split("runs/regdb/split_{split:02d}/best.pt", 10) == "runs/regdb/split_10/best.pt"
    assert checkpoint_for_split("runs/regdb/split_{split:02d}/best.pt", 1) == "runs/regdb/split_01/best.pt"
    assert checkpoint_for_split("s{split:>3}.pt", 7) == "s  7.pt" and is_split_template("s{split:>3}.pt")
    with pytest.raises(UserError, match=r"write \{split\}"):
        checkpoint_for_split("runs/regdb/trial_{trial:02d}/best.pt", 1)


@pytest.mark.parametrize("device", ["foo", *([] if torch.cuda.is_available() else ["cuda"])])
def test_train_device_errors_are_one_line(synthetic_root, tmp_path, capsys, device):
    assert cli(train_args(synthetic_root / "SYSU-MM01", tmp_path / "run", "--device", device)) == 2
    one_line_error(capsys, f"--device {device}")
    assert not (tmp_path / "run").exists()


def test_output_dir_that_is_a_file_or_under_a_file(synthetic_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "file", ["is not a folder"]), (tmp_path / "file" / "run", ["cannot write"])):
        assert cli(train_args(synthetic_root / "SYSU-MM01", out, "--device", "cpu")) == 2
        one_line_error(capsys, "--output-dir", *words)


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only folders")
def test_unwritable_output_dir(synthetic_root, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for out in (locked, locked / "run"):
            assert cli(train_args(synthetic_root / "SYSU-MM01", out, "--device", "cpu")) == 2
            one_line_error(capsys, "--output-dir")
    finally:
        locked.chmod(0o700)


def test_unwritable_output_dir_simulated(synthetic_root, tmp_path, capsys, monkeypatch):
    """The same two cases as above, where the tests run as root: the OS's answers are simulated."""
    import pathlib

    real_mkdir = pathlib.Path.mkdir

    def mkdir_denied(self, *args, **kwargs):
        if self.name == "run":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir_denied)
    assert cli(train_args(synthetic_root / "SYSU-MM01", tmp_path / "parent" / "run", "--device", "cpu")) == 2
    one_line_error(capsys, "--output-dir", "Permission denied")
    monkeypatch.undo()
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith("ro"))
    assert cli(train_args(synthetic_root / "SYSU-MM01", tmp_path / "ro", "--device", "cpu")) == 2
    one_line_error(capsys, "--output-dir", "permission denied")
    assert not (tmp_path / "ro" / "last.pt").exists()


def a_result(tmp_path):
    return {"rank1": 1.0, "mAP": 1.0, "std": {}, "data": describe_data(tmp_path, "sysu", synthetic=True),
            "protocol": {}}


@pytest.mark.parametrize("name", ["sub/dir", "../../x", ".hidden", ""])
def test_result_names_stay_inside_the_results_dir(tmp_path, name):
    with pytest.raises(UserError, match="--name"):
        check_result_location(tmp_path / "results", name)
    with pytest.raises(UserError, match="--name"):
        write_result(a_result(tmp_path), tmp_path / "results", name)
    assert not (tmp_path / "results").exists() and not (tmp_path / "x.json").exists()


def test_output_locations_are_checked_before_the_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--results-dir .*not a folder"):
        check_result_location(tmp_path / "file", "r")
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(UserError, match="--json .*is a folder"):
        check_result_location(tmp_path / "results", "r", json_path=tmp_path / "a_dir")
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.csv").write_text("name,rank1\n")
    with pytest.raises(UserError, match="has columns"):
        check_result_location(results, "r")


def test_evaluate_checks_its_outputs_before_evaluating(synthetic_root, tmp_path, capsys, monkeypatch):
    import reid.eval.evaluate

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated although the result could not be written")

    monkeypatch.setattr(reid.eval.evaluate, "evaluate_sysu", no_evaluation)
    path = tiny_checkpoint(tmp_path / "ok.pt")
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.json").mkdir()
    base = ["evaluate", "--checkpoint", str(path), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01")]
    for extra, word in ((["--results-dir", str(tmp_path / "file")], "--results-dir"),
                        (["--name", "sub/dir", "--results-dir", str(tmp_path / "r")], "--name"),
                        (["--name", "../../x", "--results-dir", str(tmp_path / "r")], "--name"),
                        (["--json", str(tmp_path / "dir.json"), "--results-dir", str(tmp_path / "r")], "--json")):
        assert cli([*base, *extra]) == 2
        one_line_error(capsys, word)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only files")
def test_a_read_only_results_csv_leaves_no_json(tmp_path):
    results = tmp_path / "results"
    write_result(a_result(tmp_path), results, "first")
    (results / "results.csv").chmod(0o444)
    with pytest.raises(UserError, match="results.csv"):
        write_result(a_result(tmp_path), results, "second")
    assert not (results / "second.json").exists()


def test_json_and_csv_row_are_written_together(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_result(a_result(tmp_path), results, "first")
    real_open = open

    def csv_fails(path, *args, **kwargs):
        if str(path).endswith("results.csv") and args and args[0] == "a":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", csv_fails)
    with pytest.raises(UserError, match="cannot record the result"):
        write_result(a_result(tmp_path), results, "second")
    monkeypatch.undo()
    assert not (results / "second.json").exists() and not list(results.glob(".*.tmp"))
    with real_open(results / "results.csv", newline="") as f:
        assert [row["name"] for row in csv.DictReader(f)] == ["first"]
    with real_open(results / "results.csv", newline="") as f:
        assert next(csv.reader(f)) == CSV_COLUMNS


def test_labels_name_flip_and_a_non_default_test_feature():
    from reid.eval.evaluate import _label

    data = {"label": "RegDB"}
    assert _label(data, "visible to thermal", 10, "split", False) == "RegDB, visible to thermal, 10 splits"
    label = _label(data, "visible to thermal", 1, "split", True, flip=True, test_feature="before_bn")
    assert label == "RegDB, visible to thermal, 1 split, before-BN feature, flip, re-ranked"

