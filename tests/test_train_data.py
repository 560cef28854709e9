"""reid/data/train_data.py: the shared-memory check of the loader, with /dev/shm's free space faked; the default
synthetic root anchored at the repository; `data_roots`, the one meaning of DATA (issue 33)."""

from __future__ import annotations

import pytest

from reid.cli import main
from reid.config import load_config
from reid.data import train_data
from reid.data.train_data import PREFETCH_FACTOR, check_shared_memory, data_roots, images_per_batch, layout_of
from reid.utils.errors import UserError

MiB = 2**20


def test_a_paper_batch_is_96_images_of_46_mib():
    d = load_config("paper_sysu").data
    assert images_per_batch(d) == 96  # P8K4 visible + P8K4 IR + 32 grey copies of the visible ones
    d.gray_of = "both"
    assert images_per_batch(d) == 128
    d.with_gray = False
    assert images_per_batch(d) == 64


def test_docker_default_shm_refuses_the_paper_loader_in_one_line_naming_the_fixes(monkeypatch):
    d = load_config("paper_sysu").data
    monkeypatch.setattr(train_data, "shared_memory_free", lambda: 64 * MiB)  # Docker's default
    with pytest.raises(UserError) as err:
        check_shared_memory(d, workers=8, local_ranks=1)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"data.workers: 8 loader workers x {PREFETCH_FACTOR} batches of 46 MiB need 1,458 MiB")
    assert "/dev/shm has 64 MiB free" in message and "--shm-size" in message and "data.workers=0" in message
    assert "lower data.workers" not in message  # not even one worker fits: no such advice


def test_the_advice_names_the_workers_that_fit_and_counts_every_rank_on_the_node(monkeypatch):
    d = load_config("paper_sysu").data
    monkeypatch.setattr(train_data, "shared_memory_free", lambda: 1024 * MiB)
    check_shared_memory(d, workers=5, local_ranks=1)  # 5 x 4 x 46 MiB = 911 MiB: fits
    with pytest.raises(UserError, match="lower data.workers to 5,"):
        check_shared_memory(d, workers=8, local_ranks=1)
    with pytest.raises(UserError, match=r"x 4 ranks on this node need .* lower data.workers to 1,"):
        check_shared_memory(d, workers=2, local_ranks=4)


def test_no_workers_or_no_dev_shm_checks_nothing(monkeypatch):
    d = load_config("paper_sysu").data
    monkeypatch.setattr(train_data, "shared_memory_free", lambda: 0)
    check_shared_memory(d, workers=0)  # batches made in the training process: no shared memory
    monkeypatch.setattr(train_data, "shared_memory_free", lambda: None)  # macOS, Windows
    check_shared_memory(d, workers=8)


def test_train_data_refuses_before_decoding_a_single_image(monkeypatch, sysu_root):
    from reid.data.dataset import ImageCache

    def preload(self, paths):
        raise AssertionError("the image cache was decoded before the check")

    monkeypatch.setattr(ImageCache, "preload", preload)
    monkeypatch.setattr(train_data, "shared_memory_free", lambda: 1 * MiB)
    cfg = load_config("smoke", [f"data.root={sysu_root}", "data.workers=2"])
    with pytest.raises(UserError, match="data.workers: 2 loader workers"):
        train_data.TrainData(cfg)


def test_the_default_synthetic_set_is_the_repositorys_from_any_working_folder(tmp_path, monkeypatch):
    """Issue 33: `data/synthetic` was relative to the working folder: from a subfolder `python -m reid train`
    rendered a second set there. Now one folder, anchored at the repository this package is part of."""
    from pathlib import Path

    from reid.data.train_data import DEFAULT_SYNTHETIC_ROOT, dataset_root

    repo = Path(train_data.__file__).resolve().parents[2]
    assert DEFAULT_SYNTHETIC_ROOT == repo / "data" / "synthetic" and DEFAULT_SYNTHETIC_ROOT.is_absolute()
    seen = []
    monkeypatch.setattr("reid.data.synthetic.ensure_synthetic", lambda root, seed: seen.append(root) or root)
    monkeypatch.chdir(tmp_path)  # a subfolder, or anywhere
    assert dataset_root("sysu", None) == repo / "data" / "synthetic" / "SYSU-MM01"
    assert seen == [DEFAULT_SYNTHETIC_ROOT] and not (tmp_path / "data").exists()


def test_data_is_the_folder_that_holds_the_datasets(synthetic_root, capsys):
    assert data_roots(synthetic_root) == {"sysu": synthetic_root / "SYSU-MM01", "regdb": synthetic_root / "RegDB"}
    assert data_roots(synthetic_root, ("regdb",)) == {"regdb": synthetic_root / "RegDB"}
    assert capsys.readouterr().out == ""


def test_a_datasets_own_folder_is_taken_for_it_in_one_line(synthetic_root, capsys):
    sysu = synthetic_root / "SYSU-MM01"
    assert layout_of(sysu) == "sysu" and layout_of(synthetic_root / "RegDB") == "regdb"
    assert layout_of(synthetic_root) is None
    assert data_roots(sysu, ("sysu",)) == {"sysu": sysu}
    out = capsys.readouterr().out.strip()
    assert out == f"--data {sysu}: the SYSU-MM01 folder itself, taken as SYSU-MM01/ (DATA is the folder that holds " \
                  f"the datasets: {synthetic_root})"
    assert data_roots(sysu) == {"sysu": sysu}  # reproduce without --dataset: the one it is
    with pytest.raises(UserError, match=r"the SYSU-MM01 folder itself, and regdb needs RegDB/; give the folder "
                                        r"that holds SYSU-MM01/ and RegDB/"):
        data_roots(sysu, ("sysu", "regdb"))  # Table 4 runs both


def test_a_folder_without_datasets_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(UserError, match="holds neither SYSU-MM01/ nor RegDB/"):
        data_roots(tmp_path)
    with pytest.raises(UserError, match="no such directory"):
        data_roots(tmp_path / "missing", ("sysu",))
    assert main(["reproduce", "--data", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --data {tmp_path}: holds neither") and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
