"""SYSU-MM01 reader on trees written here, including the published gallery-sampling convention."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.data import SYSUMM01
from reid.utils.errors import UserError

# camera -> {pid: number of images}; ids 1, 2 train, 5 val, 7, 11 test. pid 11 misses cam 2 and cam 6.
LAYOUT = {
    1: {1: 2, 2: 1, 5: 2, 7: 12, 11: 3},
    2: {1: 1, 5: 1, 7: 3},
    3: {1: 2, 2: 2, 7: 2, 11: 1},
    4: {2: 3, 7: 5, 11: 4},
    5: {1: 1, 5: 2, 11: 2},
    6: {2: 1, 5: 3, 7: 2},
}


def write_tree(root: Path, layout=LAYOUT, train="1,2", val="5", test="7,11") -> Path:
    for cam, pids in layout.items():
        for pid, count in pids.items():
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for n in range(1, count + 1):
                Image.new("L" if cam in (3, 6) else "RGB", (4, 8)).save(folder / f"{n:04d}.jpg")
    (root / "exp").mkdir()
    for name, ids in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{name}_id.txt").write_text(ids + "\n")
    return root


@pytest.fixture
def sysu(tmp_path) -> SYSUMM01:
    return SYSUMM01(write_tree(tmp_path / "SYSU-MM01"))


def test_train_holds_train_and_val_ids_relabelled(sysu):
    assert sysu.ir_cameras == {3, 6}
    assert sysu.train_ids == [1, 2, 5] and sysu.test_ids == [7, 11]
    assert sysu.num_train_pids == 3
    expected = sum(n for pids in LAYOUT.values() for pid, n in pids.items() if pid in (1, 2, 5))
    assert len(sysu.train) == expected
    # Relabelling follows the sorted original ids, identically in both modalities.
    for path, label, cam in sysu.train:
        original = int(Path(path).parent.name)
        assert label == [1, 2, 5].index(original)
        assert Path(path).parent.parent.name == f"cam{cam}"
    assert {label for _, label, cam in sysu.train if cam in (3, 6)} == {0, 1, 2}


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_query_is_every_ir_image_of_the_test_ids(sysu, mode):
    query = sysu.query(mode)
    assert {cam for _, _, cam in query} == {3, 6}
    assert [pid for _, pid, _ in query] == sorted(pid for _, pid, _ in query)  # sorted ids, originals kept
    assert len(query) == LAYOUT[3][7] + LAYOUT[3][11] + LAYOUT[6][7]
    assert all(Path(p).parent.name == f"{pid:04d}" for p, pid, _ in query)


def reference_gallery(root: Path, cams, trial: int) -> list[str]:
    """The published code's loop, restated: random.seed(trial); random.choice over sorted names."""
    random.seed(trial)
    out = []
    for pid in ("0007", "0011"):
        for cam in cams:
            folder = root / f"cam{cam}" / pid
            if folder.is_dir():
                out.append(random.choice(sorted(str(folder / n) for n in sorted(p.name for p in folder.iterdir()))))
    return out


@pytest.mark.parametrize("mode,cams", [("all", (1, 2, 4, 5)), ("indoor", (1, 2))])
def test_single_shot_gallery_follows_the_published_convention(sysu, mode, cams):
    for trial in range(3):
        gallery = sysu.gallery(mode, trial=trial, shots=1)
        assert [p for p, _, _ in gallery] == reference_gallery(sysu.root, cams, trial)
        assert {cam for _, _, cam in gallery} <= set(cams)
        # one image per (test id, camera that has it)
        expected = sum(1 for cam in cams for pid in (7, 11) if pid in LAYOUT[cam])
        assert len(gallery) == expected
    trials = {tuple(p for p, _, _ in sysu.gallery(mode, trial=t)) for t in range(10)}
    assert len(trials) > 1  # the trial really changes the draw (pid 7 has 12 images in cam 1)


def test_multi_shot_gallery_draws_up_to_ten_distinct_images(sysu):
    gallery = sysu.gallery("all", trial=0, shots=10)
    per_cell: dict = {}
    for path, pid, cam in gallery:
        per_cell.setdefault((pid, cam), []).append(path)
    for (pid, cam), paths in per_cell.items():
        assert len(paths) == min(10, LAYOUT[cam][pid]) == len(set(paths))
    assert len(per_cell[(7, 1)]) == 10
    assert sysu.gallery("all", trial=0, shots=10) == gallery  # deterministic


def test_rand_perm_cam_mat_selects_the_listed_images(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    root = write_tree(tmp_path / "SYSU-MM01")
    # Per camera a cell per pid (1-based) holding a (trials, n) array of 1-based image numbers.
    cams = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((11, 1), dtype=object)
        for pid in range(1, 12):
            n = LAYOUT[cam].get(pid, 0)
            per_id[pid - 1, 0] = np.array([[((k + t) % n) + 1 for k in range(n)] for t in range(10)]) if n else np.zeros((0, 0))
        cams[cam - 1, 0] = per_id
    scipy_io.savemat(root / "exp" / "rand_perm_cam.mat", {"rand_perm_cam": cams})
    sysu = SYSUMM01(root, rand_perm_cam=root / "exp" / "rand_perm_cam.mat")
    gallery = sysu.gallery("all", trial=1, shots=1)
    names = {(pid, cam): Path(p).name for p, pid, cam in gallery}
    assert names[(7, 1)] == "0002.jpg" and names[(11, 4)] == "0002.jpg" and names[(7, 2)] == "0002.jpg"
    assert len(sysu.gallery("all", trial=0, shots=10)) == sum(
        min(10, LAYOUT[c][p]) for c in (1, 2, 4, 5) for p in (7, 11) if p in LAYOUT[c])


def test_bad_mode_and_shots(sysu):
    with pytest.raises(UserError, match="'all' or 'indoor'"):
        sysu.query("outdoor")
    with pytest.raises(UserError, match="shots"):
        sysu.gallery("all", 0, shots=0)


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="nowhere.*SYSU-MM01 root not found"):
        SYSUMM01(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["train_id.txt", "val_id.txt", "test_id.txt"])
def test_missing_exp_file(tmp_path, name):
    root = write_tree(tmp_path / "SYSU-MM01")
    (root / "exp" / name).unlink()
    with pytest.raises(UserError, match=name):
        SYSUMM01(root)


def test_malformed_id_file(tmp_path):
    root = write_tree(tmp_path / "SYSU-MM01", train="1,two")
    with pytest.raises(UserError, match="train_id.txt.*comma-separated"):
        SYSUMM01(root)


def test_ids_in_train_and_test(tmp_path):
    root = write_tree(tmp_path / "SYSU-MM01", test="2,7")
    with pytest.raises(UserError, match="both"):
        SYSUMM01(root)


def test_empty_identity_folder(tmp_path):
    root = write_tree(tmp_path / "SYSU-MM01")
    (root / "cam4" / "0001").mkdir()
    with pytest.raises(UserError, match="cam4/0001.*no images"):
        SYSUMM01(root)


def test_bad_rand_perm_cam(tmp_path):
    root = write_tree(tmp_path / "SYSU-MM01")
    bad = root / "exp" / "rand_perm_cam.mat"
    bad.write_text("not a mat file")
    with pytest.raises(UserError, match="rand_perm_cam"):
        SYSUMM01(root, rand_perm_cam=bad)


def test_reads_the_synthetic_tree(synthetic_root):
    sysu = SYSUMM01(synthetic_root / "SYSU-MM01")
    assert sysu.num_train_pids == len(sysu.train_ids) and sysu.query() and sysu.gallery()
    assert {cam for _, _, cam in sysu.train} <= set(range(1, 7))
