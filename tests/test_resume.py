"""`--resume` continues a stopped run to exactly the weights and metrics of an uninterrupted one."""

import torch

from reid.config import load_config
from reid.train.engine import train
from reid.utils.checkpoint import load_checkpoint
from reid.utils.rng import get_rng_state, set_rng_state
from tests.conftest import TINY as TINY_RUN

# The center loss adds loss parameters to the optimiser: resumed too.
TINY = [*TINY_RUN, "loss.metric=center"]


def test_stop_and_resume_gives_identical_weights_and_metrics(sysu_root, tmp_path):
    def cfg(epochs):
        return load_config("smoke", [*TINY, f"data.root={sysu_root}", f"train.epochs={epochs}"])

    straight = train(cfg(2), tmp_path / "straight", device="cpu")
    train(cfg(1), tmp_path / "stopped", device="cpu")  # "killed" after epoch 1
    torch.manual_seed(12345)  # a resumed process starts from unrelated RNG states
    resumed = train(cfg(2), tmp_path / "stopped", resume=True, device="cpu")

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for name in ["model", "criterion"]:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    timing = {"images_per_s", "epoch_time_s"}

    def measured(history):  # losses, lr, train accuracy, validation mAP/R1 of both epochs
        return [{k: v for k, v in row.items() if k not in timing} for row in history]

    assert len(straight["history"]) == 2 and measured(straight["history"]) == measured(resumed["history"])
    assert (tmp_path / "stopped" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs, no repeats
    # Sanity: epoch 2 moved the weights, so the equality above is not trivial.
    epoch1 = load_checkpoint(tmp_path / "stopped" / "best.pt") if b["best"]["epoch"] == 1 else None
    if epoch1 is not None:
        assert any(not torch.equal(epoch1["model"][k], b["model"][k]) for k in b["model"])


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    import random

    import numpy as np

    from reid.utils.checkpoint import save_checkpoint

    state = get_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint({"model": {}, "rng": state}, tmp_path / "rng.pt")
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])  # weights_only=True load
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resume_continues_the_lineage_record_and_its_best_on_test_checkpoint(sysu_root, tmp_path):
    """train.test_every: the best-test-Rank-1 record and best_on_test.pt come out of a resumed run as out of a
    straight one (AGW's smoke variant: no pretrained file needed)."""

    def cfg(epochs):
        return load_config("agw_sysu", [*TINY_RUN, "model.preset=micro", "data.val_fraction=0",
                                        f"data.root={sysu_root}", "train.test_every=1", f"train.epochs={epochs}"],
                           base="smoke")

    train(cfg(2), tmp_path / "straight", device="cpu")
    train(cfg(1), tmp_path / "stopped", device="cpu")
    torch.manual_seed(12345)
    train(cfg(2), tmp_path / "stopped", resume=True, device="cpu")
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "stopped"))
    assert a["lineage"] == b["lineage"] and a["lineage"]["epoch"] in (1, 2)
    chosen = [load_checkpoint(tmp_path / run / "best_on_test.pt") for run in ("straight", "stopped")]
    assert chosen[0]["epoch"] == chosen[1]["epoch"] == a["lineage"]["epoch"]
    assert all(torch.equal(chosen[0]["model"][k], chosen[1]["model"][k]) for k in chosen[0]["model"])
