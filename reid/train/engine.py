"""The training loop: `train(cfg, output_dir)` trains one config into one run folder.

One step (Sec. 1.4 of the paper): the sampler's batch holds P ids x K visible + the same P ids x K
infrared images; with `data.with_gray` their grayscale copies join the batch as extra samples with the
same labels; everything goes through the one shared model, and

    loss = id_weight * LSCE(logits, pids)  (Eq. 13)  +  metric_weight * metric(features, pids)  (Eq. 14/15)

Outputs in the run folder: `last.pt` (every epoch), `best.pt` (the model the run reports: the best
validation mAP on identities held out of the *training* set, never the test set; with `data.val_fraction: 0`
the last epoch, see `_save_epoch`), with `train.test_every` also `best_on_test.pt` (the lineage's selection,
reported beside best.pt and labelled, see `_lineage_epoch`), `log.csv`, TensorBoard events in `tb/`, `config.yaml` (written
with each checkpoint: the config that ran), `.lock` (held while a process trains there). What `--resume`
may change, and what is checked before work starts: docs/architecture.md, "Reliability".

Exact resume: every epoch starts by reseeding python/numpy/torch from (seed, epoch, rank) and builds its
data loader from a generator seeded the same way, so epoch e is a function of the weights/optimiser state
at its start and of e alone -- whatever the number of workers or ranks. The checkpoint also stores every
RNG state (restored on resume) for anything that runs between epochs.

Multi-GPU: `torchrun --nproc_per_node N -m reid train ...`; the process group comes from torchrun's
environment variables, the sampler gives each rank its share of the batches, and only rank 0 writes.

What is not here: the data a run reads (`reid.data.TrainData`), the loss (`reid.losses.Criterion`),
turning a config into a cached run and a recorded result (`reid.experiments`), the command line
(`reid.cli`).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from reid.config import ExperimentConfig, config_from_dict, config_to_dict, save_config
from reid.data import TrainData, dataset_root
from reid.data.identity import is_synthetic
from reid.losses import Criterion
from reid.models.pretrained import check_pretrained
from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.device import autocast_dtype, check_device, describe_device, grad_scaler
from reid.utils.errors import UserError
from reid.utils.rng import epoch_seed, get_rng_state, seed_everything, set_rng_state

LOG_FIELDS = ["epoch", "steps", "lr", "loss", "loss_id", "loss_metric", "train_acc", "images_per_s", "epoch_time_s",
              "val_mAP", "val_rank1", "test_mAP", "test_rank1"]
LINEAGE_CHECKPOINT = "best_on_test.pt"  # train.test_every: the epoch of the best test Rank-1 (trial 0, flip)


class DivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


# ------------------------------------------------------------------------------------------ optimiser

def lr_factor(epoch: int, optim) -> float:
    """Multiplier of the base lr at a 0-based epoch: linear warm-up, then steps of `gamma` at milestones."""
    warmup = (epoch + 1) / optim.warmup_epochs if epoch < optim.warmup_epochs else 1.0
    return warmup * optim.gamma ** sum(epoch >= m for m in optim.milestones)


def build_optimizer(model: nn.Module, criterion: nn.Module, optim, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Backbone and CSA at lr * backbone_lr_scale, the BN neck, classifier (and loss parameters) at lr.

    CSA sits with the backbone as in the cross-modal code whose recipe the paper configs follow (AGW and
    its descendants): only the BN neck and the classifier train at the full lr, every other module -- their
    inserted non-local attention blocks too -- at 0.1 x lr (docs/deviations.md, "CSA's learning rate").
    Where backbone_lr_scale is 1 the two rates are the same and CSA stays in the head's group, the layout of
    the checkpoints trained before this rule (the CPU profiles), so that they still resume.
    `lr_scale` multiplies every rate: the linear scaling rule under DDP (`ddp_lr_scale`).
    Biases, norms, position embeddings and class tokens get no weight decay (the usual ViT practice).
    The center loss's centres are not here: `build_center_optimizer`.
    """
    csa_with_backbone = optim.backbone_lr_scale != 1.0
    no_decay_names = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    centers = {id(p) for p in criterion.center_parameters()} if hasattr(criterion, "center_parameters") else set()
    groups: dict[tuple[bool, bool], list] = {}
    named = [(n, p) for n, p in model.named_parameters()] + [(f"criterion.{n}", p)
                                                              for n, p in criterion.named_parameters()]
    for name, param in named:
        if not param.requires_grad or id(param) in centers:
            continue
        is_backbone = name.startswith("backbone.") or (csa_with_backbone and name.startswith("csa."))
        decay = param.ndim > 1 and name not in no_decay_names and not name.startswith("criterion.")
        groups.setdefault((is_backbone, decay), []).append(param)
    param_groups = [
        {"params": params, "lr": lr_scale * optim.lr * (optim.backbone_lr_scale if is_backbone else 1.0),
         "weight_decay": optim.weight_decay if decay else 0.0}
        for (is_backbone, decay), params in sorted(groups.items())
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr_scale * optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    # fused: one kernel for all parameters instead of a loop over ~175 small tensors (~8 % of a smoke-profile
    # CPU step, benchmarks/bench_train.py). Off by default: its float rounding differs, so runs would not
    # repeat the committed results.
    return cls(param_groups, lr=lr_scale * optim.lr, betas=(optim.momentum, optim.beta2), fused=optim.fused or None)


# The most the DDP lr is multiplied by (docs/deviations.md, "Several GPUs"). Linear scaling held up to large
# batches for ImageNet classification (Goyal et al. 2017), but no multi-GPU run of this recipe (hard-mined
# triplets, a 0.1 head lr) has validated it here: past 4 GPUs the factor stops at 4 (head 0.4, not 0.8 at
# 8 GPUs) and the run warns, until such a run says where the rule holds.
DDP_LR_SCALE_MAX = 4


def ddp_lr_scale(world_size: int) -> tuple[int, str | None]:
    """(the factor every group's lr is multiplied by under DDP, a warning when the cap cut it)."""
    scale = min(world_size, DDP_LR_SCALE_MAX)
    if scale == world_size:
        return scale, None
    return scale, (f"warning: lr x {scale}, not x {world_size}: the linear scaling rule is capped at "
                   f"DDP_LR_SCALE_MAX={DDP_LR_SCALE_MAX} until a multi-GPU run validates it "
                   "(docs/deviations.md, \"Several GPUs\")")


def build_center_optimizer(criterion: nn.Module, loss) -> torch.optim.Optimizer | None:
    """Plain SGD at `loss.center_lr` for the center loss's centres (Wen et al.), or None."""
    params = criterion.center_parameters() if hasattr(criterion, "center_parameters") else []
    return torch.optim.SGD(params, lr=loss.center_lr) if params else None


def _center_step(center_optimizer, criterion, scaler, world_size: int) -> None:
    """Wen et al.'s centre update: a step on the *unweighted* center loss (undo `metric_weight`), with the
    gradient averaged over ranks so that every rank keeps the same centres (DDP syncs the model only)."""
    scaler.unscale_(center_optimizer)
    for param in criterion.center_parameters():
        if param.grad is None:
            continue
        param.grad.div_(criterion.metric_weight)
        if world_size > 1:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world_size)
    scaler.step(center_optimizer)


# ------------------------------------------------------------------------------------------ training

def _rank_and_world() -> tuple[int, int]:
    """(rank, world size) before `_distributed` has run: the process group's when one has started, else
    torchrun's variables (rank 0 of 1 without them)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _distributed(device: torch.device | None = None) -> tuple[int, int, bool]:
    """(rank, world_size, created): join torchrun's process group when its variables say so. NCCL for a
    GPU run, bound to this rank's GPU (`device_id`, which `_device` has already made current: NCCL's
    communicator then starts on the right card instead of on cuda:0 for every rank), gloo for the CPU."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        if device is not None and device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        return dist.get_rank(), world_size, True
    return 0, 1, False


def _write_log(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # rewritten whole each epoch: a full disk leaves the old log
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _device(device) -> torch.device:
    """The requested device, or this rank's GPU under torchrun, or the CPU; a GPU is made current.

    `cuda` without an index means this rank's GPU (LOCAL_RANK), so that `--device cuda` under torchrun
    does not put every rank on cuda:0 (and DDP is never given `device_ids=[None]`)."""
    check_device(None if device is None else str(device))  # one line for `--device foo` or a missing GPU
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


# Presets small enough to train on a CPU (the smoke profiles, the tests); anything larger on real data is
# a GPU run (`check_gpu_run`).
CPU_PRESETS = ("micro", "tiny")


def check_gpu_run(cfg: ExperimentConfig, requested, device: torch.device, synthetic: bool) -> None:
    """Refuse, in one line, a paper-sized model on real data that would train on the CPU only because
    no GPU was found (a CUDA build that does not match the driver, say): ~23 s a step at preset 18, weeks
    for a run. `--device cpu` says it is meant."""
    if requested is not None or device.type != "cpu" or synthetic or cfg.model.preset in CPU_PRESETS:
        return
    raise UserError(f"no CUDA GPU found (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}, "
                    f"torch.cuda.is_available() is False): model preset {cfg.model.preset} on real data "
                    "would train on the CPU; fix the CUDA install, or pass --device cpu to train there on purpose")


# What `--resume` may change: keys that do not alter what the run learns. Anything else is refused before
# any work (docs/architecture.md, "Reliability"): the checkpoint's optimiser, schedule and weights belong to it.
RESUMABLE_CHANGES = ("train.epochs", "data.workers")
LOCK_NAME = ".lock"

# The run-folder locks this process holds (file descriptors). A forked child -- a DataLoader worker --
# inherits them, and an flock lasts while any process has the file open: after a kill -9 of the trainer its
# workers (alive until they notice, seconds later) would still hold the folder, and the `--resume` that
# follows would be refused as "another training is running". Children close their copies at once.
_HELD_LOCKS: list = []  # the open lock files; one closed without `_release_lock` is skipped


def _close_locks_in_child() -> None:
    for lock in _HELD_LOCKS:
        if not lock.closed:  # a closed one's number may be another file's by now
            try:
                os.close(lock.fileno())  # the child's copy only: the parent's lock stays
            except OSError:
                pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_locks_in_child)


def _release_lock(lock) -> None:
    if lock in _HELD_LOCKS:
        _HELD_LOCKS.remove(lock)
    lock.close()


def _open_run_folder(output_dir: Path):
    """Create the run folder (a one-line error when it cannot be) and lock it for this process: a second
    training into the same folder fails at once instead of silently replacing this one's files.
    Returns the open lock file (closing it releases the lock)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir}: exists and is not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        lock = open(output_dir / LOCK_NAME, "a")  # noqa: SIM115 -- held open for the whole run
    except OSError as err:
        raise UserError(f"--output-dir {output_dir}: cannot write there ({err.strerror or err})") from None
    if not os.access(output_dir, os.W_OK):
        lock.close()
        raise UserError(f"--output-dir {output_dir}: cannot write there (permission denied)")
    try:
        import fcntl

        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no fcntl (Windows): no lock
        pass
    except OSError:
        lock.close()
        pid = lock_holder(output_dir)
        who = f"process {pid}" if pid else "another process"
        raise UserError(f"--output-dir {output_dir}: another training is running in this folder ({who} holds "
                        f"{output_dir / LOCK_NAME}); wait for it, stop it (kill {pid or 'PID'}: `--resume` goes on "
                        "from its last epoch), or choose another folder") from None
    # The holder's process id, for the refusal above and a sweep's check before it starts (`lock_holder`)
    os.ftruncate(lock.fileno(), 0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _HELD_LOCKS[:] = [held for held in _HELD_LOCKS if not held.closed] + [lock]
    # Temporary files of checkpoint writes that a killed process left behind (we hold the lock: no
    # other process is writing them).
    for tmp in [*output_dir.glob(".*.pt.*.tmp"), *output_dir.glob(".config.yaml.tmp"),
                *output_dir.glob(".log.csv.tmp"), *output_dir.glob(".part_shares.csv.tmp")]:
        tmp.unlink(missing_ok=True)
    return lock


def lock_holder(output_dir: Path) -> int | None:
    """The process that trains in `output_dir` now (the pid it wrote into its `.lock`; 0 when it wrote none),
    or None when no process holds the lock (a `.lock` left by a killed run is no lock: flock ends with its
    holder)."""
    try:
        import fcntl

        with open(Path(output_dir) / LOCK_NAME) as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = lock.read().strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
            return None
    except (ImportError, OSError):  # no fcntl (Windows), or no lock file: nothing holds the folder
        return None


def _load_resume(path: Path, cfg: ExperimentConfig, rank: int) -> dict:
    """`last.pt`, loaded once, after refusing a config that differs from its own outside `RESUMABLE_CHANGES`.

    Loaded to the CPU whatever the device: load_state_dict copies each tensor to where its parameter lives
    (the optimiser moves its state to its parameters' device), and the RNG states must stay CPU tensors
    (torch.set_rng_state, numpy). map_location=device made them CUDA tensors: resume failed on a GPU."""
    ckpt = load_checkpoint(path, map_location="cpu", required=("model", "config", "epoch"))
    if not isinstance(ckpt["config"], dict):
        raise UserError(f"--resume: {path} holds no readable config")
    old = config_from_dict(ckpt["config"], str(path))
    changes = _config_changes(old, cfg)
    changed = [k for k in changes if k not in RESUMABLE_CHANGES
               and not (k == "data.root" and _same_folder(old.data.root, cfg.data.root))]
    if changed:
        raise UserError(f"--resume: the config differs from the one {path} was trained with in "
                        f"{', '.join(changed)}; a resumed run may only change {', '.join(RESUMABLE_CHANGES)} "
                        "(start a new --output-dir for anything else)")
    if changes and rank == 0:
        print(f"resume: {', '.join(changes)} changed from {path} (allowed on resume)")
    return ckpt


def _same_folder(a: str | None, b: str | None) -> bool:
    """The same dataset folder, however it is spelled (relative, absolute, through a symlink)."""
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _check_run_folder(output_dir: Path, resume: bool) -> None:
    if resume and not (output_dir / "last.pt").is_file():
        raise UserError(f"--resume: nothing to resume in {output_dir} (no last.pt)")
    if not resume and (output_dir / "last.pt").is_file():
        raise UserError(f"--output-dir {output_dir} already holds a run (last.pt); pass --resume or choose "
                        "another folder")


def _restore(ckpt: dict, path: Path, num_classes: int, state: dict) -> dict:
    """Load the checkpoint `_load_resume` read into the training objects of `state` (model, criterion,
    optimizer, ...) in place; returns the progress it recorded: {"epoch", "history", "best"}."""
    if ckpt["num_classes"] != num_classes:
        raise UserError(f"--resume: {path} was trained on {ckpt['num_classes']} identities, "
                        f"the data now gives {num_classes}")
    try:
        for key, obj in state.items():
            obj.load_state_dict(ckpt[key])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise UserError(f"--resume: {path} does not fit this run's model/optimiser: {_first_line(err)}") from None
    try:  # apart from the weights: a bad RNG state is not a model/optimiser mismatch
        set_rng_state(ckpt["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise UserError(f"--resume: {path} holds no usable RNG state ({_first_line(err)}); it cannot continue "
                        "the run exactly") from None
    return {"epoch": ckpt["epoch"], "history": ckpt["history"], "best": ckpt["best"],
            "lineage": ckpt.get("lineage")}


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def train(cfg: ExperimentConfig, output_dir: str | os.PathLike, resume: bool = False,
          device: str | torch.device | None = None) -> dict:
    """Train `cfg` into `output_dir`; returns the run summary (paths, best epoch, history, the model).

    Before any work: the device exists, real data comes with a word on ImageNet weights
    (`model.pretrained`), the folder is writable and locked (one training per folder), a resumed run's
    config differs from its checkpoint's only in `RESUMABLE_CHANGES`."""
    output_dir = Path(output_dir)
    requested = device
    device = _device(device)  # the GPU is current before the process group starts (NCCL binds to it)
    rank, world_size = _rank_and_world()
    if rank == 0:  # first: before the data root is checked (or the default set rendered), last.pt is read and
        # the image cache is decoded (minutes on real data)
        print(describe_device(device, autocast_dtype(device, cfg.train.amp))
              + (f" x {world_size} ranks" if world_size > 1 else ""))
    root = dataset_root(cfg.data.dataset, cfg.data.root)
    synthetic = is_synthetic(root)
    check_gpu_run(cfg, requested, device, synthetic)
    rank, world_size, created_group = _distributed(device)
    if not resume:  # real data and no word on ImageNet weights: refuse before the folder is made
        check_pretrained(cfg.model, root, synthetic=synthetic)
    created = rank == 0 and not output_dir.exists()
    lock = _open_run_folder(output_dir) if rank == 0 else None
    try:
        return _train(cfg, output_dir, resume, device, rank, world_size, created_group)
    except BaseException:
        if created:  # e.g. a data or sampler error before any output: leave no empty folder holding a .lock
            _remove_if_only_lock(output_dir)
        raise
    finally:
        if lock is not None:
            _release_lock(lock)


def _remove_if_only_lock(output_dir: Path) -> None:
    try:
        if [p.name for p in output_dir.iterdir()] == [LOCK_NAME]:
            (output_dir / LOCK_NAME).unlink()
            output_dir.rmdir()
    except OSError:  # the folder stays; the error being raised matters more
        pass


# ------------------------------------------------------------------------------------------ best.pt

def _reports_last_epoch(val_fraction: float, epoch: int, best: dict) -> bool:
    """Whether best.pt must hold the weights of last.pt: always with last-epoch selection (no identities
    held out, `data.val_fraction: 0`), and with validation when the last epoch is the best one."""
    return val_fraction == 0 or (isinstance(best, dict) and best.get("epoch") == epoch)


def copy_checkpoint(source: Path, target: Path) -> None:
    """Make `target` a copy of the checkpoint `source`, atomically: copied under a temporary name, then
    renamed over `target`. A copy, not a hard link: with a link, a tool that writes into best.pt in place
    (`cp other.pt best.pt`) would overwrite last.pt too."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.copy.tmp")  # removed by _open_run_folder if killed
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _best_is_current(best_path: Path, last_path: Path, epoch: int) -> bool:
    if not best_path.is_file():
        return False
    if best_path.stat().st_size != last_path.stat().st_size:
        return False
    try:  # the same size: ask the file which epoch it holds
        return load_checkpoint(best_path, required=("epoch",), mmap=True)["epoch"] == epoch
    except UserError:
        return False


def repair_best_checkpoint(output_dir: str | os.PathLike, locked: bool = False, last: dict | None = None) -> bool:
    """Make `best.pt` the model the run reports, after a kill or an extended resume left it missing or
    stale: where it must equal `last.pt` (`_reports_last_epoch`) and does not, it is copied again from
    `last.pt`, holding the folder's lock (`locked`: the caller holds it already). Returns True when it
    repaired. Where validation chose an earlier epoch and best.pt is gone, its weights are lost: a warning
    says so. Called by every `--resume` (also of a finished run) and by the runner before it reuses a run.
    `last`: last.pt as the caller has already read it (its epoch, config and best are all this needs), so that
    one decision reads the file once."""
    output_dir = Path(output_dir)
    last_path, best_path = output_dir / "last.pt", output_dir / "best.pt"
    ckpt = last if last is not None else load_checkpoint(last_path, required=("epoch", "config"), mmap=True)
    config = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    val_fraction = (config.get("data") or {}).get("val_fraction", 0.1)
    epoch, best = ckpt["epoch"], ckpt.get("best")
    if not _reports_last_epoch(val_fraction, epoch, best):
        if not best_path.is_file():
            chosen = best.get("epoch") if isinstance(best, dict) else "unknown"
            print(f"warning: {best_path} is missing and validation chose epoch {chosen}: its weights "
                  f"are lost (evaluate {last_path}, epoch {epoch}, or train a new run)")
        return False
    if _best_is_current(best_path, last_path, epoch):
        return False
    lock = None if locked else _open_run_folder(output_dir)
    try:
        copy_checkpoint(last_path, best_path)
    except OSError as err:
        raise UserError(f"{best_path}: cannot restore it from last.pt ({err.strerror or err})") from None
    finally:
        if lock is not None:
            _release_lock(lock)
    print(f"{best_path}: restored from last.pt (epoch {epoch}), the model this run reports")
    return True


# What a full disk advises; a sweep job says its own instead (`reid.sweep.run_job`: sweep has no --resume).
RESUME_ADVICE = "continue with --resume"


def _lineage_epoch(snapshot: dict, output_dir: Path, cfg: ExperimentConfig, epoch: int) -> None:
    """Write `best_on_test.pt`: this epoch's checkpoint, the best test Rank-1 so far (`train.test_every`).

    AGW's `train.py` keeps the epoch of the best Rank-1 on the test set's trial-0 gallery (tested every 2
    epochs); PMT and DEEN do the same. That is a selection on the test set: the numbers it gives are
    optimistic, and only ever reported beside the last epoch's, under their own card (model_selection). Written
    *before* last.pt: a kill between the two retrains this epoch on resume (exact resume) and writes it again,
    so the file is never behind the record that names it."""
    path = output_dir / LINEAGE_CHECKPOINT
    selection = {"rule": "best test Rank-1", "every": cfg.train.test_every, "gallery": "trial 0", "flip": True,
                 "epoch": epoch + 1}
    try:
        save_checkpoint({**snapshot, "selection": selection}, path)
    except OSError as err:
        raise UserError(f"cannot write {path} after epoch {epoch + 1} ({err.strerror or err}); make room and "
                        f"{RESUME_ADVICE}") from None


def _save_epoch(snapshot: dict, output_dir: Path, cfg: ExperimentConfig, history: list, improved: bool,
                epoch: int) -> None:
    """Write an epoch's outputs: `last.pt`, then `best.pt` when this epoch is the reported model (always
    with last-epoch selection), then config.yaml and log.csv.

    The rule for best.pt: it is a copy of the `last.pt` of the epoch it reports, made right after last.pt is
    written. A kill between the two leaves best.pt one epoch behind or missing, and `--resume` (or the
    runner, before it reuses a finished run) repairs it from last.pt (`repair_best_checkpoint`); so best.pt
    never stays behind the model the card describes, also after `--resume --set train.epochs=N` extends a
    finished run. A full disk or a file-size limit is a one-line error saying what was kept."""
    last_path, best_path = output_dir / "last.pt", output_dir / "best.pt"
    try:
        save_checkpoint(snapshot, last_path)
    except OSError as err:
        kept = f"last.pt still holds epoch {epoch}" if epoch > 0 else "no checkpoint was written"
        raise UserError(f"cannot write {last_path} after epoch {epoch + 1} ({err.strerror or err}): {kept}; "
                        f"make room and {RESUME_ADVICE}") from None
    try:
        if improved:
            copy_checkpoint(last_path, best_path)
        _save_config_atomically(cfg, output_dir / "config.yaml")  # the config that ran, no sooner
        _write_log(output_dir / "log.csv", history)
    except OSError as err:
        raise UserError(f"{output_dir}: cannot finish the outputs of epoch {epoch + 1} ({err.strerror or err}); "
                        f"last.pt holds epoch {epoch + 1}: make room and {RESUME_ADVICE} (it restores "
                        "best.pt)") from None


def _train(cfg: ExperimentConfig, output_dir: Path, resume: bool, device: torch.device, rank: int,
           world_size: int, created_group: bool) -> dict:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from reid.data.dataset import ImageCache
    from reid.eval.evaluate import evaluate_held_out, evaluate_test_trial0
    from reid.models import build_model

    amp_dtype = autocast_dtype(device, cfg.train.amp)  # the dtype the device line (`train`) stated
    _check_run_folder(output_dir, resume)
    last_path, best_path = output_dir / "last.pt", output_dir / "best.pt"
    resumed = _load_resume(last_path, cfg, rank) if resume else None
    if not resume and cfg.model.pretrained in (None, "none") and rank == 0:
        print(f"{cfg.name}: backbone from scratch (model.pretrained={cfg.model.pretrained or 'not set'})")

    seed_everything(cfg.train.seed)
    data = TrainData(cfg, rank, world_size)
    data.pin_memory = device.type == "cuda"  # pinned batches: the host-to-GPU copy overlaps the step
    # On resume the trained weights replace the ImageNet ones right away: the ImageNet file is not needed.
    model = build_model(cfg.model, data.num_classes, load_pretrained=not resume).to(device)
    criterion = Criterion(cfg.loss, data.num_classes, model.feature_dim).to(device)
    # Under DDP every rank draws its own P x K batch, so a step sees world_size batches: the linear scaling
    # rule (Goyal et al. 2017) keeps the lr per image, the warm-up of the paper configs included, up to its
    # cap; the checkpoint keeps the rates it was trained with (docs/deviations.md, "Several GPUs").
    lr_scale, lr_warning = ddp_lr_scale(world_size)
    optimizer = build_optimizer(model, criterion, cfg.optim, lr_scale=lr_scale)
    center_optimizer = build_center_optimizer(criterion, cfg.loss)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg.optim))
    scaler = grad_scaler(amp_dtype)
    state = {"model": model, "criterion": criterion, "optimizer": optimizer, "scheduler": scheduler,
             "scaler": scaler}
    if center_optimizer is not None:
        state["center_optimizer"] = center_optimizer
    if rank == 0:
        print(data.describe())
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        print(f"image cache: {data.cache_bytes / 2**20:,.0f} MiB decoded in this process"
              + (f"; each rank keeps its own: {per_node} x that per node" if world_size > 1 else ""))
        if world_size > 1:
            batch = 2 * cfg.data.num_ids * cfg.data.num_instances
            print(f"DDP: {world_size} ranks x {batch} images (+ grayscale copies) per step; lr x {lr_scale} "
                  f"(linear scaling of every group's rate, at most x {DDP_LR_SCALE_MAX})")
            if lr_warning:
                print(lr_warning)
        print(f"{cfg.name}: {data.sampler.total_batches} batches per epoch ({cfg.data.epoch_size} epoch"
              f"{', at least data.batches_per_epoch' if cfg.data.batches_per_epoch else ''}"
              f"{f'; {len(data.sampler)} per rank' if world_size > 1 else ''}), {cfg.train.epochs} epochs, "
              f"{len(data.train_items)} training images of {data.num_classes} identities")
    progress = {"epoch": 0, "history": [], "best": {"val_mAP": -1.0, "epoch": 0}, "lineage": None}
    if resume:
        progress = _restore(resumed, last_path, data.num_classes, state)
        if rank == 0:  # a kill between last.pt and best.pt, or a run from before this rule
            repair_best_checkpoint(output_dir, locked=True, last=resumed)  # from the copy read: no second read
        del resumed  # the weights live in the model and optimiser now
    start_epoch, history, best = progress["epoch"], progress["history"], progress["best"]
    lineage = progress["lineage"] or {"test_rank1": -1.0, "test_mAP": -1.0, "epoch": 0}
    test_cache = ImageCache(cfg.data.height, cfg.data.width) if cfg.train.test_every else None
    # Last-epoch selection: no identities held out (or none left to validate on); best.pt follows last.pt.
    last_epoch_selection = cfg.data.val_fraction == 0 or not data.val_query

    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                  else None)
    if cfg.train.compile:
        net = torch.compile(net)

    writer = None
    if rank == 0:
        _write_log(output_dir / "log.csv", history)
        writer = SummaryWriter(str(output_dir / "tb"), purge_step=start_epoch + 1)

    def checkpoint(epoch: int) -> dict:
        return {
            **{key: obj.state_dict() for key, obj in state.items()}, "epoch": epoch, "rng": get_rng_state(),
            "sampler_epoch": epoch, "model_config": asdict(cfg.model), "num_classes": data.num_classes,
            "config": config_to_dict(cfg), "history": history, "best": best, "world_size": world_size,
            **({"lineage": lineage} if cfg.train.test_every else {}),
        }

    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            seed = epoch_seed(cfg.train.seed, epoch, rank)
            seed_everything(seed)
            row = _train_one_epoch(net, criterion, optimizer, scaler, data.loader(epoch, seed), cfg, epoch,
                                   device, amp_dtype, world_size, disable_bar=rank != 0, tqdm=tqdm,
                                   center_optimizer=center_optimizer)
            row["lr"] = optimizer.param_groups[-1]["lr"]
            # Each part of the feature the losses see: its variance and share of the pair distances (item 4).
            feats = row.pop("last_features", None)
            if rank == 0 and feats is not None and len(getattr(model, "part_dims", [])) > 1:
                try:
                    shares = _log_part_shares(feats, model.part_dims, epoch, output_dir,
                                              epoch == 0 or epoch + 1 == cfg.train.epochs, len(model.csa))
                except OSError as err:
                    kept = f"last.pt still holds epoch {epoch}" if epoch > 0 else "no checkpoint was written"
                    raise UserError(f"cannot write {output_dir / 'part_shares.csv'} after epoch {epoch + 1} "
                                    f"({err.strerror or err}): {kept}; make room and continue with --resume") from None
                for name, share in shares.items():
                    writer.add_scalar(f"part_share/{name}", share, epoch + 1)
            if world_size > 1:
                _average_buffers(model, world_size)
            scheduler.step()
            last = epoch + 1 == cfg.train.epochs
            if rank == 0 and ((epoch + 1) % cfg.train.eval_every == 0 or last):
                row.update(evaluate_held_out(model, data.val_query, data.val_gallery, data.cache,
                                             data.test_transform, cfg.data.test_batch_size, device))
            tested = rank == 0 and cfg.train.test_every > 0 and ((epoch + 1) % cfg.train.test_every == 0 or last)
            if tested:
                row.update(evaluate_test_trial0(model, cfg.data.dataset, data.root, cfg.data.regdb_split,
                                                cfg.data.test_batch_size, device, flip=True, cache=test_cache))
            history.append({k: row.get(k, "") for k in LOG_FIELDS})
            if rank == 0:
                improved = last_epoch_selection or row.get("val_mAP", -1.0) > best["val_mAP"] or (
                    last and best["epoch"] == 0)
                if improved:
                    best = {"val_mAP": row.get("val_mAP", -1.0), "epoch": epoch + 1}
                lineage_improved = tested and row["test_rank1"] > lineage["test_rank1"]
                if lineage_improved:
                    lineage = {"test_rank1": row["test_rank1"], "test_mAP": row["test_mAP"], "epoch": epoch + 1}
                snapshot = checkpoint(epoch + 1)
                if lineage_improved:
                    _lineage_epoch(snapshot, output_dir, cfg, epoch)
                _save_epoch(snapshot, output_dir, cfg, history, improved, epoch)
                for key in LOG_FIELDS[1:]:
                    if row.get(key, "") != "":
                        writer.add_scalar(key, row[key], epoch + 1)
                writer.flush()
            if world_size > 1:
                dist.barrier()
    finally:
        if writer is not None:
            writer.close()
        if created_group:
            dist.destroy_process_group()
    return {"output_dir": str(output_dir), "last": str(last_path), "best": str(best_path),
            "best_epoch": best["epoch"], "best_val_mAP": best["val_mAP"], "history": history,
            "num_classes": data.num_classes, "model": model, "criterion": criterion, "rank": rank}


def _save_config_atomically(cfg: ExperimentConfig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_config(cfg, tmp)
    os.replace(tmp, path)


def _log_part_shares(features: torch.Tensor, part_dims: list, epoch: int, output_dir: Path,
                     report: bool, branches: int = 2) -> dict:
    """Append each part's share of the pair distances (reid.train.diagnostics), on the epoch's last batch, to
    part_shares.csv; when `report` (after epoch 1 and after the last) print them and warn about parts that
    collapsed or dominate, with the fix to try (one line each, so a long run's log stays readable).
    Returns {part: share} for TensorBoard."""
    from reid.train.diagnostics import format_shares, geometry_warnings, part_names, part_shares

    shares, names = part_shares(features, part_dims), part_names(len(part_dims), branches)
    if report:
        print(f"part shares of the pair distances after epoch {epoch + 1}: {format_shares(shares, names)}")
        for message in geometry_warnings(shares, names):
            print(f"warning: {message}")
    path = output_dir / "part_shares.csv"
    earlier = path.read_text() if epoch and path.is_file() else ""
    if not earlier:
        earlier = "epoch," + ",".join(f"{n}_share,{n}_variance" for n in names) + "\n"
    row = f"{epoch + 1}," + ",".join(f"{s['share']:.4f},{s['variance']:.4g}" for s in shares) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")  # rewritten whole: a full disk never leaves half a row
    try:
        tmp.write_text(earlier + row)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {n: s["share"] for n, s in zip(names, shares)}


# Steps between host reads of the running losses on a GPU: each read waits for the GPU to finish its queue
# (a sync), so reading every step would stall the pipeline of kernel launches. On the CPU a read costs
# nothing and the loss is checked before every backward pass, as it always was.
SYNC_EVERY_CUDA = 50


def _diverged(value: float, epoch: int, step: int, grad_clip: float) -> DivergedError:
    kept = (f"the last good checkpoint (epoch {epoch}) is left intact in last.pt" if epoch > 0
            else "no checkpoint was written (it diverged in the first epoch)")
    # A resume may not change optim.lr (RESUMABLE_CHANGES): the advice is a new run.
    advice = (f"Start a new --output-dir with a lower optim.lr (train.grad_clip={grad_clip} is already on)"
              if grad_clip > 0 else "Start a new --output-dir with a lower optim.lr or with train.grad_clip on")
    return DivergedError(f"loss is {value} at epoch {epoch + 1}, step {step + 1}: training stopped; "
                         f"{kept}. {advice}.")


class _StepStats:
    """The epoch's running sums (loss, its two terms, batch accuracy) without a host sync per step.

    Each step appends its four scalars, still on the device; every `sync_every` steps (and at the end of
    the epoch) they come to the host in one copy, are added in step order in float64 (the sums a
    `.item()` per step gave, bit for bit) and checked: a non-finite loss raises `DivergedError` naming its
    epoch and step. With `sync_every` > 1 a few steps may run on after a NaN; nothing is saved before the
    epoch's last check, so last.pt still holds the last good epoch. Under DDP the finite flags are
    all-reduced once per read, so that every rank stops at the same read."""

    def __init__(self, epoch: int, world_size: int, grad_clip: float, sync_every: int, bar) -> None:
        self.epoch, self.world_size, self.grad_clip = epoch, world_size, grad_clip
        self.sync_every, self.bar = max(1, sync_every), bar
        self.pending: list[torch.Tensor] = []
        self.first_step = 0
        self.sums = [0.0, 0.0, 0.0, 0.0]
        self.reads = 0

    def add(self, loss: torch.Tensor, parts: dict, correct: torch.Tensor) -> None:
        self.pending.append(torch.stack([loss.detach(), parts["loss_id"].detach(), parts["loss_metric"].detach(),
                                         correct.detach().to(loss.dtype)]))
        if len(self.pending) >= self.sync_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        window = torch.stack(self.pending)
        finite = torch.isfinite(window[:, 0]).float()
        if self.world_size > 1:  # every rank must stop together, or the others hang in the next all-reduce
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        rows = torch.cat([window, finite[:, None].to(window.dtype)], dim=1).cpu().tolist()  # the window's one sync
        values, finite = [r[:4] for r in rows], [r[4] for r in rows]
        self.reads += 1
        first, self.pending = self.first_step, []
        self.first_step += len(values)
        for i, (row, ok) in enumerate(zip(values, finite)):
            if not ok:
                raise _diverged(row[0], self.epoch, first + i, self.grad_clip)
            for k in range(4):
                self.sums[k] += row[k]
        self.bar.set_postfix(loss=f"{values[-1][0]:.3f}", refresh=False)  # drawn with the next throttled update


def train_step(net, criterion, optimizer, scaler, imgs, pids, amp_dtype=None, grad_clip: float = 0.0,
               check=None, center_optimizer=None, world_size: int = 1, modality=None) -> tuple[torch.Tensor, dict, dict]:
    """One optimisation step on a batch; `check(loss, parts, out)` runs before the backward pass (the NaN
    guard and the running sums)."""
    context = torch.autocast(imgs.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    with context:
        out = net(imgs) if modality is None else net(imgs, modality)  # modality: AGW's two stems
    loss, parts = criterion(out, pids)  # in fp32: the losses exponentiate distances (Eq. 15)
    if check is not None:
        check(loss, parts, out)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    scaler.step(optimizer)
    if center_optimizer is not None:
        _center_step(center_optimizer, criterion, scaler, world_size)
        center_optimizer.zero_grad(set_to_none=True)
    scaler.update()
    return loss, parts, out


def _train_one_epoch(net, criterion, optimizer, scaler, loader, cfg, epoch, device, amp_dtype, world_size,
                     disable_bar, tqdm, center_optimizer=None, sync_every: int | None = None) -> dict:
    """One epoch; returns its log row. `sync_every`: steps between host reads of the losses (default 1 on
    the CPU, `SYNC_EVERY_CUDA` on a GPU)."""
    net.train()
    max_steps = cfg.train.max_steps_per_epoch or len(loader)
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" else SYNC_EVERY_CUDA
    images = 0
    start = time.perf_counter()
    # At most one redraw per second: every redraw is a message from a Jupyter kernel, and thousands of them
    # in one long cell overflow its output channel (nbval then loses the cell's end and reports a timeout).
    bar = tqdm(total=min(max_steps, len(loader)), desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
               disable=disable_bar, leave=False, mininterval=1.0)
    stats = _StepStats(epoch, world_size, cfg.train.grad_clip, sync_every, bar)
    done = 0  # optimisation steps of this epoch (the budget a result reports: protocol card "steps")
    last_features = None
    for step, batch in enumerate(loader):
        if step >= max_steps:
            break
        done += 1
        # The grayscale copies are in the batch already (reid.data.train_data.collate_train): one pinned
        # tensor, copied without blocking the host.
        imgs = batch["img"].to(device, non_blocking=True)
        pids = batch["pid"].to(device, non_blocking=True)
        modality = batch["modality"].to(device, non_blocking=True) if "modality" in batch else None

        def check(loss, parts, out, pids=pids):
            stats.add(loss, parts, (out["logits"].detach().argmax(1) == pids).float().mean())

        _, _, out = train_step(net, criterion, optimizer, scaler, imgs, pids, amp_dtype, cfg.train.grad_clip,
                               check=check, center_optimizer=center_optimizer, world_size=world_size,
                               modality=modality)
        images += imgs.shape[0] * world_size
        last_features = out["features"].detach()  # for the per-part diagnostics
        bar.update()
    stats.flush()
    bar.close()
    steps = max(1, bar.n)
    elapsed = time.perf_counter() - start
    loss, loss_id, loss_metric, correct = stats.sums
    return {"epoch": epoch + 1, "steps": done, "loss": loss / steps, "loss_id": loss_id / steps,
            "loss_metric": loss_metric / steps, "train_acc": 100.0 * correct / steps,
            "images_per_s": images / elapsed, "epoch_time_s": elapsed, "host_reads": stats.reads,
            "last_features": last_features if bar.n else None}


@torch.no_grad()
def _average_buffers(model: nn.Module, world_size: int) -> None:
    """Average BN running statistics over ranks. DDP keeps the parameters in step but lets every rank
    update its buffers from its own last batch; averaging makes all ranks (and rank 0's checkpoint)
    hold the same model, with statistics from every rank's data."""
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world_size)


def _config_changes(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    a, b = config_to_dict(old), config_to_dict(new)
    return [f"{s}.{k}" for s in a if isinstance(a[s], dict) for k in sorted(set(a[s]) | set(b[s]))
            if a[s].get(k) != b[s].get(k)]
