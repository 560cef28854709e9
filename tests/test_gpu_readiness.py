"""Issue 20: what a first GPU run on real data needs, tested without a GPU (meta tensors, a faked
`torch.cuda`, forked loader workers, gloo in tests/test_ddp.py).

1 resume on any device; 2 the device line and the refusal of a paper-sized CPU run on real data;
3 the loader (workers: auto, persistent workers reseeded per batch, grayscale copies in collate) and
sync-free logging; 4 forked workers that share the image cache; 5 DDP's device before the process group;
6 the paper configs' batch; 7 part-share warnings after epoch 1 and CSA's lr group.
"""

from __future__ import annotations

import multiprocessing
import shutil

import pytest
import torch

from reid.config import config_to_dict, load_config
from reid.utils.checkpoint import load_checkpoint
from reid.utils.errors import UserError
from tests.test_engine import tiny_config


def _state(cfg, num_classes):
    from reid.losses import Criterion
    from reid.models import build_model
    from reid.train.engine import build_optimizer, lr_factor

    model = build_model(cfg.model, num_classes, load_pretrained=False)
    criterion = Criterion(cfg.loss, num_classes, model.feature_dim)
    optimizer = build_optimizer(model, criterion, cfg.optim)
    return {"model": model, "criterion": criterion, "optimizer": optimizer,
            "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg.optim)),
            "scaler": torch.amp.GradScaler("cuda", enabled=False)}


# ---------------------------------------------------------------------------------------- 1 resume

def test_resume_reads_the_checkpoint_once_to_the_cpu_whatever_the_device(sysu_root, tmp_path, capsys):
    """Resume used `map_location=device`: on a GPU the RNG states became CUDA tensors and resume failed as
    "does not fit this run's model/optimiser". `_load_resume` takes no device: it reads `last.pt` once, to the
    CPU, checks its config, and `_restore` puts weights and RNG states back from that one copy."""
    from reid.train.engine import _load_resume, _restore, train
    from reid.utils.rng import get_rng_state

    cfg = tiny_config(sysu_root)
    train(cfg, tmp_path / "run", device="cpu")
    capsys.readouterr()
    last = tmp_path / "run" / "last.pt"
    ckpt = load_checkpoint(last)
    resumed = _load_resume(last, cfg, rank=0)
    assert {v.device.type for v in resumed["model"].values()} == {"cpu"}
    assert resumed["rng"]["torch"].device.type == "cpu"
    state = _state(cfg, ckpt["num_classes"])
    torch.manual_seed(999)
    progress = _restore(resumed, last, ckpt["num_classes"], state)
    assert progress["epoch"] == 1
    assert torch.equal(get_rng_state()["torch"], ckpt["rng"]["torch"])
    for key, value in state["model"].state_dict().items():
        assert torch.equal(value, ckpt["model"][key]), key


def test_rng_states_on_a_device_are_brought_to_the_host(monkeypatch):
    """`set_rng_state` accepts states that a GPU-mapped load left on the device; CUDA generator states go
    to `torch.cuda.set_rng_state_all` as the CPU ByteTensors it wants (torch.cuda faked)."""
    from reid.utils import rng

    state = rng.get_rng_state()
    given = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: given.setdefault("cuda", states))
    moved = []

    class OnDevice(torch.Tensor):  # stands for a CUDA tensor: .numpy() refuses it, .cpu() gives a plain one
        def numpy(self, *args, **kwargs):
            raise TypeError("can't convert cuda:0 device type tensor to numpy")

        def cpu(self, *args, **kwargs):
            moved.append(1)
            return self.as_subclass(torch.Tensor)

    state["numpy"][0] = state["numpy"][0].as_subclass(OnDevice)
    state["torch"] = state["torch"].as_subclass(OnDevice)
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8).as_subclass(OnDevice)]
    rng.set_rng_state(state)
    assert len(moved) == 3 and type(given["cuda"][0]) is torch.Tensor


# ---------------------------------------------------------------------------------------- 2 device

def test_every_run_states_its_device_and_amp(sysu_root, tmp_path, capsys):
    from reid.train.engine import train

    train(tiny_config(sysu_root), tmp_path / "run", device="cpu")
    out = capsys.readouterr().out
    assert out.startswith("device: cpu (")  # first, before the image cache is decoded (issue 33)
    assert "AMP off" in out and "data loader: in the main process" in out and "image cache:" in out


def test_paper_model_on_real_data_without_a_gpu_refuses_unless_cpu_is_asked_for(monkeypatch):
    from reid.train.engine import check_gpu_run

    paper = load_config("paper_sysu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU found.*--device cpu"):
        check_gpu_run(paper, None, torch.device("cpu"), synthetic=False)
    check_gpu_run(paper, "cpu", torch.device("cpu"), synthetic=False)  # asked for: it trains
    check_gpu_run(paper, None, torch.device("cpu"), synthetic=True)  # synthetic rehearsals may run on a CPU
    check_gpu_run(load_config("smoke"), None, torch.device("cpu"), synthetic=False)  # CPU-sized preset


def test_cli_refusal_is_one_line_and_leaves_nothing(sysu_root, tmp_path, capsys):
    from reid.cli import main

    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without a GPU")
    real = tmp_path / "copy" / "SYSU-MM01"
    shutil.copytree(sysu_root, real)
    (real / "synthetic.json").unlink()  # without the generator's marker the data count as real
    code = main(["train", "--config", "paper_sysu", "--data", str(real), "--output-dir", str(tmp_path / "out"),
                 "--set", "model.pretrained=none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--device cpu" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------- 3 loader, syncs

def test_workers_auto_is_sized_from_the_cpus_and_ranks(monkeypatch):
    from reid.data import train_data

    monkeypatch.setattr(train_data, "available_cpus", lambda: 16)
    assert train_data.resolve_workers("auto", 1)[0] == 8  # capped
    assert train_data.resolve_workers("auto", 4)[0] == 3  # 16 CPUs / 4 ranks, one kept per rank
    monkeypatch.setattr(train_data, "available_cpus", lambda: 2)
    assert train_data.resolve_workers("auto", 1)[0] == 1
    assert train_data.resolve_workers(0) == (0, "data.workers=0")
    assert load_config("paper_sysu").data.workers == "auto"
    assert load_config("paper_sysu", ["data.workers=3"]).data.workers == 3
    with pytest.raises(UserError, match="data.workers"):
        load_config("smoke", ["data.workers=-1"])


def test_collate_puts_the_grayscale_copies_after_the_colour_views():
    """The batch the engine used to build on the CPU after the loader: cat(img, gray[keep]), pids likewise."""
    from torch.utils.data import default_collate

    from reid.data.train_data import collate_train

    torch.manual_seed(0)
    samples = [{"img": torch.randn(3, 4, 2), "gray": torch.randn(3, 4, 2), "gray_keep": i % 2 == 0, "pid": i,
                "camid": 1, "modality": i % 2} for i in range(6)]
    batch = collate_train(samples)
    old = default_collate(samples)
    keep = old["gray_keep"]
    assert torch.equal(batch["img"], torch.cat([old["img"], old["gray"][keep]]))
    assert torch.equal(batch["pid"], torch.cat([old["pid"], old["pid"][keep]])) and batch["num_gray"] == 3
    assert torch.equal(batch["modality"], torch.cat([old["modality"], old["modality"][keep]]))  # AGW's stems
    plain = collate_train([{k: s[k] for k in ("img", "pid")} for s in samples])
    assert plain["img"].shape == (6, 3, 4, 2) and plain["num_gray"] == 0


def _batches(data, epoch, n=2):
    out = []
    for i, batch in enumerate(data.loader(epoch, seed=1000 + epoch)):
        out.append((batch["img"].clone(), batch["pid"].clone()))
        if i + 1 == n:
            break
    return out


def test_persistent_workers_give_each_epoch_the_same_batches_whatever_came_before(sysu_root, monkeypatch):
    """One loader for the run; epoch 1's batches are the same after epoch 0 (an uninterrupted run), in a
    fresh process state (a resumed run) and with another number of workers. And the image cache is never
    pickled to a worker, also where the default start method is forkserver (Python >= 3.14): issue item 4."""
    from reid.data.dataset import ImageCache
    from reid.data.train_data import TrainData, worker_context

    def refuse(self):
        raise AssertionError("the image cache was pickled to a worker")

    monkeypatch.setattr(ImageCache, "__getstate__", refuse, raising=False)
    default = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("forkserver", force=True)
    try:
        assert worker_context()[1] == "fork"
        one = TrainData(tiny_config(sysu_root, "data.workers=1"))
        first = _batches(one, 0)
        loader = one.loader(1, seed=1001)
        assert one.loader(1, seed=1001) is loader and loader.persistent_workers
        straight = _batches(one, 1)
        resumed = _batches(TrainData(tiny_config(sysu_root, "data.workers=1")), 1)
        two = _batches(TrainData(tiny_config(sysu_root, "data.workers=2")), 1)
    finally:
        multiprocessing.set_start_method(default, force=True)
    for (a, pa), (b, pb), (c, pc) in zip(straight, resumed, two):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(pa, pb) and torch.equal(pa, pc)
    assert not torch.equal(first[0][0], straight[0][0])  # epochs differ
    assert "persistent worker processes" in one.describe() and "fork" in one.describe()


def _run_epoch(root, extra, sync_every, monkeypatch=None):
    """One 4-step epoch from fixed weights and batches; counts the host reads of tensors in the loop."""
    from tqdm.auto import tqdm

    from reid.data.train_data import TrainData
    from reid.train.engine import _train_one_epoch
    from reid.utils.rng import seed_everything

    cfg = tiny_config(root, "train.max_steps_per_epoch=4", *extra)
    data = TrainData(cfg)
    torch.manual_seed(0)
    state = _state(cfg, data.num_classes)
    seed_everything(5)
    # The batches first: the CPU augmentation reads its own random draws (no GPU sync, not counted).
    batches = list(data.loader(0, 5))[:cfg.train.max_steps_per_epoch]
    reads = []
    if monkeypatch is not None:
        for name in ("item", "__bool__", "__float__", "tolist"):
            real = getattr(torch.Tensor, name)

            def counting(self, *a, real=real, name=name, **k):
                reads.append(name)
                return real(self, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counting)
    try:
        row = _train_one_epoch(state["model"], state["criterion"], state["optimizer"], state["scaler"],
                               batches, cfg, 0, torch.device("cpu"), None, 1, True, tqdm, sync_every=sync_every)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return row, reads


def test_logging_reads_the_losses_once_per_window_with_the_same_sums(sysu_root, monkeypatch):
    """On a GPU every host read of a tensor waits for the GPU: the loop reads the losses once per window
    (one `tolist` of one window), and the logged sums are those of a read every step, bit for bit.
    SGD here (the paper configs' optimiser): Adam reads its step counters, CPU tensors that never sync."""
    sgd = ["optim.name=sgd", "optim.lr=0.01"]
    every, _ = _run_epoch(sysu_root, sgd, sync_every=1)
    windowed, reads = _run_epoch(sysu_root, sgd, sync_every=50, monkeypatch=monkeypatch)
    assert every["host_reads"] == 4 and windowed["host_reads"] == 1
    assert reads == ["tolist"]
    for key in ("loss", "loss_id", "loss_metric", "train_acc"):
        assert every[key] == windowed[key], key


def test_a_nan_inside_a_window_is_still_named_by_its_step(sysu_root, monkeypatch):
    from reid.losses import Criterion
    from reid.train.engine import DivergedError

    real_forward, calls = Criterion.forward, []

    def nan_at_step_2(self, out, pids):
        loss, parts = real_forward(self, out, pids)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 2 else loss), parts

    monkeypatch.setattr(Criterion, "forward", nan_at_step_2)
    with pytest.raises(DivergedError, match=r"nan at epoch 1, step 2"):
        _run_epoch(sysu_root, [], sync_every=50)
    assert len(calls) == 4  # the window ran to its end, then the check named step 2


# ---------------------------------------------------------------------------------------- 5 DDP

def test_ddp_sets_this_ranks_gpu_before_the_process_group(sysu_root, tmp_path, monkeypatch):
    """torchrun's rank 1 with `--device cuda` (torch.cuda and the process group faked): the GPU is cuda:1,
    made current before `init_process_group`, which gets it as `device_id`."""
    import torch.distributed as dist

    from reid.train import engine

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("init", backend, kw)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(engine, "_train", lambda cfg, out, resume, device, rank, world, created: {
        "device": device, "rank": rank, "world": world})
    summary = engine.train(tiny_config(sysu_root), tmp_path / "run", device="cuda")
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl", {"device_id": torch.device("cuda", 1)})]
    assert summary == {"device": torch.device("cuda", 1), "rank": 1, "world": 2}


def test_lr_scales_linearly_with_the_ranks():
    from reid.losses import Criterion
    from reid.models import build_model
    from reid.train.engine import build_optimizer

    cfg = load_config("paper_sysu", ["model.preset=tiny", "data.height=96", "data.width=48"])
    model = build_model(cfg.model, 10, load_pretrained=False)
    criterion = Criterion(cfg.loss, 10, model.feature_dim)
    one = [g["lr"] for g in build_optimizer(model, criterion, cfg.optim).param_groups]
    four = [g["lr"] for g in build_optimizer(model, criterion, cfg.optim, lr_scale=4).param_groups]
    assert four == [4 * lr for lr in one]


# ---------------------------------------------------------------------------------------- 6 batch

def test_paper_configs_train_p8k4_and_the_literal_reading_is_kept():
    for dataset in ("sysu", "regdb"):
        paper = load_config(f"paper_{dataset}")
        assert (paper.data.num_ids, paper.data.num_instances) == (8, 4)
        literal = load_config(f"paper_literal_{dataset}")
        assert (literal.data.num_ids, literal.data.num_instances) == (4, 4)
        batch = config_to_dict(load_config(f"paper_literal_batch_{dataset}"))
        base = config_to_dict(paper)
        changed = {f"{s}.{k}" for s in base if isinstance(base[s], dict) for k in base[s]
                   if base[s][k] != batch[s][k]}
        assert changed == {"data.num_ids"}, changed  # the batch reading alone


# ---------------------------------------------------------------------------------------- 7 geometry, CSA lr

def test_part_share_warnings_after_epoch_1_name_the_fix(tmp_path, capsys):
    from reid.train.diagnostics import GEOMETRY_FIX, geometry_warnings, part_shares
    from reid.train.engine import _log_part_shares

    torch.manual_seed(0)
    dominated = torch.cat([10 * torch.randn(64, 8), torch.randn(64, 8), torch.randn(64, 8), torch.randn(64, 8)], 1)
    shares = part_shares(dominated, [8] * 4)
    messages = geometry_warnings(shares, ["gap_fine", "cls_fine", "gap_coarse", "cls_coarse"])
    assert messages[0].startswith("gap_fine:") and "dominates" in messages[0] and GEOMETRY_FIX in messages[0]
    assert geometry_warnings(part_shares(torch.randn(64, 16), [8, 8])) == []
    assert geometry_warnings(shares[:1]) == []
    collapsed = torch.cat([torch.randn(64, 8), 0.01 * torch.randn(64, 8)], 1)
    both = geometry_warnings(part_shares(collapsed, [8, 8]), ["fine", "coarse"])  # one dominates, one collapsed
    assert "dominates" in both[0] and both[1].startswith("coarse:") and "hardly contributes" in both[1]
    _log_part_shares(dominated, [8] * 4, epoch=0, output_dir=tmp_path, report=True)  # epoch 1 of many
    out = capsys.readouterr().out
    assert "after epoch 1" in out and "warning: gap_fine" in out and "model.part_norm=bn" in out
    _log_part_shares(dominated, [8] * 4, epoch=1, output_dir=tmp_path, report=False)
    assert capsys.readouterr().out == "" and (tmp_path / "part_shares.csv").read_text().count("\n") == 3
    vit = tmp_path / "vit"  # one branch, gap+cls: its two parts are gap and cls, not CrossViT's fine / coarse
    vit.mkdir()
    _log_part_shares(collapsed, [8, 8], epoch=0, output_dir=vit, report=False, branches=1)
    assert (vit / "part_shares.csv").read_text().startswith("epoch,gap_share,gap_variance,cls_share,")


def test_csa_trains_at_the_backbone_lr_as_the_lineages_inserted_modules_do():
    from reid.losses import Criterion
    from reid.models import build_model
    from reid.train.engine import build_optimizer

    cfg = load_config("paper_sysu", ["model.preset=tiny", "data.height=96", "data.width=48"])
    model = build_model(cfg.model, 10, load_pretrained=False)
    criterion = Criterion(cfg.loss, 10, model.feature_dim)
    lr_of = {id(p): g["lr"] for g in build_optimizer(model, criterion, cfg.optim).param_groups for p in g["params"]}
    backbone_lr = cfg.optim.lr * cfg.optim.backbone_lr_scale
    assert {lr_of[id(p)] for p in model.csa.parameters()} == {backbone_lr}
    assert {lr_of[id(p)] for p in model.classifier.parameters()} == {cfg.optim.lr}
    # One lr for all (the CPU profiles): CSA keeps its group of the checkpoints trained so far.
    smoke = load_config("smoke", ["model.preset=tiny"])
    model = build_model(smoke.model, 10, load_pretrained=False)
    groups = build_optimizer(model, Criterion(smoke.loss, 10, model.feature_dim), smoke.optim).param_groups
    csa, backbone = {id(p) for p in model.csa.parameters()}, {id(p) for p in model.backbone.parameters()}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert not (ids & csa and ids & backbone)  # CSA shares no group with the backbone, as before


# ---------------------------------------------------------------------------------------- the run lock

LOCK_HOLDER = """
import multiprocessing, os, signal, sys, time
from pathlib import Path
from reid.train.engine import _open_run_folder
out = Path(sys.argv[1])
lock = _open_run_folder(out)  # the trainer holds its folder
child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))  # a loader worker
child.start()
(out / "child.pid").write_text(str(child.pid))
os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of the trainer; the worker lives on for a while
"""


def test_a_killed_trainers_forked_workers_do_not_hold_its_folder(tmp_path):
    """Found by the CPU rehearsal of benchmarks/gpu_check.py: persistent loader workers inherited the flock
    of the run folder, so the `--resume` right after a kill -9 was refused as "another training is running"
    until they noticed their parent was gone. Forked children now close their copy of the lock."""
    import os
    import signal
    import subprocess
    import sys

    from reid.train.engine import _open_run_folder, _release_lock

    out = tmp_path / "run"
    subprocess.run([sys.executable, "-c", LOCK_HOLDER, str(out)], check=False, timeout=60,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    child = int((out / "child.pid").read_text())
    try:
        os.kill(child, 0)  # the worker is still alive ...
        lock = _open_run_folder(out)  # ... and the folder is free for the resume
        _release_lock(lock)
    finally:
        os.kill(child, signal.SIGKILL)


# ---------------------------------------------------------------------------------------- the GPU check

def _gpu_check():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_without_a_gpu_says_so_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    check = _gpu_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("sys.argv", ["gpu_check.py", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "gpu.md")])
    assert check.main() == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gpu-check: no CUDA GPU") and "nothing written" in err
    assert list(tmp_path.iterdir()) == []


def test_gpu_check_report_holds_every_figure():
    """The report of a GPU run, from made-up figures: every section renders (it cannot run here)."""
    check = _gpu_check()
    env = {"card": "NVIDIA H200", "driver": "580.159.03", "cuda": "13.0", "torch": "2.14.1"}
    bench = [{"preset": "9", "params_m": 20.1, "images_per_s": 9000.0, "ms_per_step": 10.7, "peak_gib": 6.1},
             {"preset": "18", "params_m": 43.3, "images_per_s": 4000.0, "ms_per_step": 24.0, "peak_gib": 11.0},
             {"preset": "base", "error": "exit 1: CUDA out of memory"}]
    loader = {"steps": 300, "workers": 8, "images_per_s": 3000.0, "epoch_s": 10.0, "run_s": 40.0, "data_s": 90.0}
    resume = {"killed_after_epoch": 1, "bit_equal": False, "max_abs_diff": 1e-6, "floor_max_abs_diff": 2e-6}
    evaluation = {"eval_s": 12.0, "rank1": 3.1, "mAP": 4.2, "steps": 300, "gradcam": "ran: 16 images"}
    text = check.report(env, bench, loader, resume, evaluation, 400.0)
    for needle in ("NVIDIA H200", "580.159.03", "| 18 | 43.3 M | 4000 |", "failed: exit 1: CUDA out of memory",
                   "8 workers", "75 % of the random-tensor rate", "after epoch 1", "differ by up to 2e-06",
                   "10-trial all-search evaluation: 12 s", "Grad-CAM: ran"):
        assert needle in text, needle
    assert "failed: boom" in check.report(env, bench, "boom", "boom", "boom", 1.0)


def test_the_cpu_rehearsal_report_says_what_ran():
    """Issue 34: the CPU rehearsal's headings said "on CUDA", "preset 18" and "bf16" whatever ran."""
    check = _gpu_check()
    env = {"card": "none: CPU rehearsal of this script"}
    bench = [{"preset": "micro", "params_m": 1.0, "images_per_s": 50.0, "ms_per_step": 100.0, "peak_gib": 0.5}]
    text = check.report(env, bench, "boom", "boom", "boom", 1.0, ran=check.what_runs(rehearse=True))
    headings = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for wrong in ("CUDA", "preset 18", "real-scale", "288x144"):
        assert wrong not in headings, wrong
    for right in ("on the CPU", "preset tiny at 96x48", "small synthetic", f"{check.RESUME_WORKERS} persistent workers"):
        assert right in headings, right
    assert "bf16" not in text and "288x144, fp32, SGD" in text  # part 1 runs paper_sysu's size, without autocast
    gpu = check.report(env, bench, "boom", "boom", "boom", 1.0)  # a GPU run's headings, as before
    for right in ("on CUDA", "preset 18", "real-scale synthetic", "288x144", "bf16 autocast"):
        assert right in gpu, right


def test_gpu_check_parts_report_what_is_missing_and_flag_a_slow_part():
    """Issue 33: the check runs in parts; the report names the parts not run yet (with their command) and a
    part over the 5-minute budget."""
    check = _gpu_check()
    assert check.PARTS == ("data", "bench", "loader", "resume", "eval") and check.PART_BUDGET_S == 300
    env = {"card": "Tesla V100-SXM2-32GB", "native bf16": False}
    data = {"root": "data/gpu_check/real_scale/SYSU-MM01", "data_s": 40.0, "workers": 16}
    text = check.report(env, check.not_run("bench"), check.not_run("loader"), "boom", check.not_run("eval"),
                        340.0, data=data, seconds={"data": 40.0, "resume": 300.5})
    for needle in ("Rendered by 16 processes in 40 s", "not run yet: make gpu-check PART=bench",
                   "not run yet: make gpu-check PART=loader", "not run yet: make gpu-check PART=eval",
                   "failed: boom", "resume 300 s (over the 300 s budget of a part)", "data 40 s,",
                   "fp16 autocast + GradScaler"):  # a V100 has no native bf16: fp16, as its runs train
        assert needle in text, needle
    assert check.parse_parts("data, bench") == ["data", "bench"]
    with pytest.raises(Exception, match="unknown part loder"):
        check.parse_parts("data,loder")


def test_gpu_check_records_each_part_and_eval_needs_the_loader_part(tmp_path, monkeypatch):
    """One part per call: the record keeps it, the report is rewritten from every recorded part, and `eval`
    without the loader's model fails in one line naming the part to run first (nothing trains here)."""
    import json

    check = _gpu_check()
    work, out = tmp_path / "work", tmp_path / "gpu.md"
    monkeypatch.setattr("sys.argv", ["gpu_check.py", "--rehearse-on-cpu", "--work", str(work), "--out", str(out),
                                     "--part", "eval"])
    assert check.main() == 1
    record = json.loads((work / "rehearsal.json").read_text())
    assert record["eval"]["outcome"] == ("RuntimeError: it evaluates the model of the loader part: "
                                         "make gpu-check PART=loader first")
    text = out.read_text()
    assert "not run yet: make gpu-check PART=data" in text and "failed: RuntimeError: it evaluates" in text
    monkeypatch.setattr(check, "resume_check", lambda work, steps: {"killed_after_epoch": 1, "bit_equal": True,
                                                                    "max_abs_diff": 0.0})
    monkeypatch.setattr("sys.argv", ["gpu_check.py", "--rehearse-on-cpu", "--work", str(work), "--out", str(out),
                                     "--part", "resume"])
    assert check.main() == 0
    text = out.read_text()
    assert "bit-equal" in text and "failed: RuntimeError: it evaluates" in text  # the earlier part is kept


def test_make_gpu_check_passes_the_part():
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    plan = subprocess.run(["make", "-n", "gpu-check-run", "OFFLINE=1", "PART=data,bench"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout
    assert "benchmarks/gpu_check.py --part data,bench" in plan
