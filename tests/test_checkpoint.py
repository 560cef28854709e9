import pytest
import torch

from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.errors import UserError


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 4, "config": {"lr": 0.1}}
    save_checkpoint(state, tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    assert back["epoch"] == 4 and torch.equal(back["model"]["w"], torch.arange(3.0))
    assert list(tmp_path.iterdir()) == [tmp_path / "last.pt"]  # no temporary file left behind


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint({"model": {}, "epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(UserError, match="not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt"):
        load_checkpoint(bad)
    save_checkpoint({"epoch": 1}, tmp_path / "nomodel.pt")
    with pytest.raises(UserError, match="lacks model"):
        load_checkpoint(tmp_path / "nomodel.pt")
