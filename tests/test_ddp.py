"""DistributedDataParallel on 2 CPU processes with gloo: both ranks end with identical weights."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.conftest import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, root: str, out: str, extra: list[str]) -> None:
    # The variables torchrun sets; the engine joins the process group from them.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    from reid.config import load_config
    from reid.train.engine import train

    cfg = load_config("smoke", [*TINY, f"data.root={root}", *extra])
    summary = train(cfg, os.path.join(out, "run"), device="cpu")
    state = {**summary["model"].state_dict(), **{f"criterion.{k}": v for k, v in summary["criterion"].state_dict().items()}}
    torch.save({k: v.clone() for k, v in state.items()}, os.path.join(out, f"rank{rank}.pt"))


AGW = ["model.backbone=agw", "model.preset=micro", "model.csa=false", "model.conv_stem=false", "model.pooling=gem",
       "model.pretrained=none", "data.with_gray=false", "train.test_every=1"]  # modality kwarg + rank-0 testing


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
@pytest.mark.parametrize("extra", [[], ["loss.metric=center", "loss.metric_weight=5e-4"], AGW],
                         ids=["adaptive_triplet", "center_loss", "agw_lineage"])
def test_two_gloo_ranks_end_identical(synthetic_root, tmp_path, extra):
    """Model and loss state (the center loss's centres too) are the same on every rank."""
    mp.spawn(_worker, args=(2, _free_port(), str(synthetic_root / "SYSU-MM01"), str(tmp_path), extra), nprocs=2)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between ranks"
    # Only rank 0 wrote the run; its checkpoint holds the same weights, and training changed them.
    from reid.utils.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["world_size"] == 2
    # Two ranks, two batches a step: every group's lr is scaled linearly (docs/deviations.md, "Several GPUs").
    cfg = ckpt["config"]["optim"]
    scaled = {g["initial_lr"] for g in ckpt["optimizer"]["param_groups"]}
    assert scaled == {2 * cfg["lr"] * s for s in {1.0, cfg["backbone_lr_scale"]}}
    assert all(torch.equal(ckpt["model"][k], a[k]) for k in ckpt["model"])
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    init = build_model(ModelConfig(**ckpt["model_config"]), ckpt["num_classes"]).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in init if init[k].is_floating_point())
