"""RegDB reader on trees written here: idx parsing, relabelling, directions, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reid.data import RegDB
from reid.utils.errors import UserError

PIDS = [3, 8, 12, 20]  # folder ids; split 1 trains on 3 and 12, tests on 8 and 20


def write_tree(root: Path, images: int = 2) -> Path:
    split = {"train": [3, 12], "test": [8, 20]}
    for folder, tag, mode in (("Visible", "v", "RGB"), ("Thermal", "t", "L")):
        for pid in PIDS:
            (root / folder / str(pid)).mkdir(parents=True)
            for n in range(images):
                Image.new(mode, (4, 8)).save(root / folder / str(pid) / f"male_back_{tag}_{pid * 100 + n:05d}_{pid}.bmp")
    (root / "idx").mkdir()
    for name, ids in split.items():
        for folder, tag, modality in (("Visible", "v", "visible"), ("Thermal", "t", "thermal")):
            lines = [f"{folder}/{pid}/male_back_{tag}_{pid * 100 + n:05d}_{pid}.bmp {label}"
                     for label, pid in enumerate(ids) for n in range(images)]
            (root / "idx" / f"{name}_{modality}_1.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def regdb(tmp_path) -> RegDB:
    return RegDB(write_tree(tmp_path / "RegDB"), split=1)


def test_train_from_both_idx_files_relabelled(regdb):
    assert regdb.ir_cameras == {2}
    assert regdb.num_train_pids == 2
    assert len(regdb.train) == 8
    for path, label, cam in regdb.train:
        assert Path(path).is_file()
        assert Path(path).parts[-3] == ("Visible" if cam == 1 else "Thermal")
        assert label == [3, 12].index(int(Path(path).parent.name))


def test_directions(regdb):
    for direction, (q_cam, g_cam) in (("v2t", (1, 2)), ("t2v", (2, 1))):
        query, gallery = regdb.query(direction), regdb.gallery(direction)
        assert {c for _, _, c in query} == {q_cam} and {c for _, _, c in gallery} == {g_cam}
        assert len(query) == len(gallery) == 4
        assert sorted({pid for _, pid, _ in query}) == [0, 1]  # labels as written in the idx files
    assert regdb.query("v2t") == regdb.gallery("t2v")


def test_bad_direction_and_split(regdb, tmp_path):
    with pytest.raises(UserError, match="v2t"):
        regdb.query("rgb")
    with pytest.raises(UserError, match="1..10"):
        RegDB(regdb.root, split=11)
    with pytest.raises(UserError, match="train_visible_2.txt"):
        RegDB(regdb.root, split=2)


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="RegDB root not found"):
        RegDB(tmp_path / "absent")


def test_idx_line_pointing_to_a_missing_file(tmp_path):
    root = write_tree(tmp_path / "RegDB")
    victim = root / "Thermal" / "20" / "male_back_t_02001_20.bmp"
    victim.unlink()
    with pytest.raises(UserError, match=r"test_thermal_1.txt:4: .*male_back_t_02001_20.bmp does not exist"):
        RegDB(root)


@pytest.mark.parametrize("line", ["Visible/3/x.bmp", "Visible/3/x.bmp zero", "a b c"])
def test_malformed_idx_line(tmp_path, line):
    root = write_tree(tmp_path / "RegDB")
    path = root / "idx" / "train_visible_1.txt"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(UserError, match="train_visible_1.txt:5: expected 'relative/path label'"):
        RegDB(root)


def test_empty_idx_file(tmp_path):
    root = write_tree(tmp_path / "RegDB")
    (root / "idx" / "test_visible_1.txt").write_text("\n")
    with pytest.raises(UserError, match="lists no images"):
        RegDB(root)


def test_reads_every_synthetic_split(synthetic_root):
    for split in range(1, 11):
        regdb = RegDB(synthetic_root / "RegDB", split=split)
        train_ids = {Path(p).parent.name for p, _, _ in regdb.train}
        test_ids = {Path(p).parent.name for p, _, _ in regdb.query("v2t")}
        assert train_ids and test_ids and not train_ids & test_ids


def test_ten_splits_is_one_constant_every_check_reads(synthetic_root, monkeypatch):
    """Issue 33: "RegDB has 10 splits" was written in eight places. Every check reads NUM_SPLITS: with it
    patched to 3, the config, the runner, reproduce and the reader all refuse a fourth split."""
    from reid.config import load_config
    from reid.data import regdb as regdb_module
    from reid.data.check import REGDB_FACTS
    from reid.eval.evaluate import REGDB_SPLITS
    from reid.experiments import default_regdb_splits, train_splits

    assert regdb_module.NUM_SPLITS == REGDB_SPLITS == 10 and list(regdb_module.SPLITS) == list(range(1, 11))
    assert default_regdb_splits("paper") == 10
    assert REGDB_FACTS["split files (idx/{train,test}_{visible,thermal}_{1..10}.txt)"] == 4 * 10
    assert len(list((synthetic_root / "RegDB" / "idx").glob("train_visible_*.txt"))) == 10
    monkeypatch.setattr(regdb_module, "NUM_SPLITS", 3)
    monkeypatch.setattr(regdb_module, "SPLITS", range(1, 4))
    with pytest.raises(UserError, match=r"data.regdb_split=4 in .*: RegDB has splits 1..3$"):
        load_config("smoke", ["data.dataset=regdb", "data.regdb_split=4"])
    with pytest.raises(UserError, match=r"^--splits 4: RegDB has splits 1..3$"):
        train_splits(load_config("smoke"), "unused", splits=4)
    with pytest.raises(UserError, match=r"^RegDB split 4: RegDB has splits 1..3$"):
        RegDB(synthetic_root / "RegDB", split=4)
