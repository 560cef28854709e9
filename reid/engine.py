"""The training loop and `python -m reid train`.

One step (Sec. 1.4 of the paper): the sampler's batch holds P ids x K visible + the same P ids x K
infrared images; with `data.with_gray` their grayscale copies join the batch as extra samples with the
same labels; everything goes through the one shared model, and

    loss = id_weight * LSCE(logits, pids)  (Eq. 13)  +  metric_weight * metric(features, pids)  (Eq. 14/15)

Outputs in the run folder: `last.pt` (every epoch), `best.pt` (best validation mAP on identities held out
of the *training* set, never the test set), `log.csv`, TensorBoard events in `tb/`, `config.yaml`.

Exact resume: every epoch starts by reseeding python/numpy/torch from (seed, epoch, rank) and builds its
data loader from a generator seeded the same way, so epoch e is a function of the weights/optimiser state
at its start and of e alone -- whatever the number of workers or ranks. The checkpoint also stores every
RNG state (restored on resume) for anything that runs between epochs.

Multi-GPU: `torchrun --nproc_per_node N -m reid train ...`; the process group comes from torchrun's
environment variables, the sampler gives each rank its share of the batches, and only rank 0 writes.
"""

from __future__ import annotations

import csv
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from reid.checkpoint import load_checkpoint, save_checkpoint
from reid.config import ExperimentConfig, config_from_dict, config_to_dict, load_config, save_config
from reid.errors import UserError

DEFAULT_SYNTHETIC_ROOT = Path("data/synthetic")
LAYOUT_DIRS = {"sysu": "SYSU-MM01", "regdb": "RegDB"}
LOG_FIELDS = ["epoch", "lr", "loss", "loss_id", "loss_metric", "train_acc", "images_per_s", "epoch_time_s",
              "val_mAP", "val_rank1"]


class DivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


# ---------------------------------------------------------------------------------------------- RNG

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """Every RNG state as tensors / lists / numbers, so `torch.load(weights_only=True)` can read it."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 1009 + rank) % 2**31


# ------------------------------------------------------------------------------------ loss, optimiser

class Criterion(nn.Module):
    """Identity loss (Eq. 13) + weighted metric loss (Eq. 14, Eq. 15 or center), on the head's outputs."""

    def __init__(self, cfg, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        from reid.losses import AdaptiveTripletLoss, LabelSmoothingCrossEntropy, build_metric_loss

        self.id_loss = LabelSmoothingCrossEntropy(epsilon=cfg.epsilon if cfg.id_loss == "lsce" else 0.0)
        if cfg.soft_margin and cfg.metric == "adaptive_triplet":
            self.metric_loss = AdaptiveTripletLoss(margin=cfg.margin, soft_margin=True)
        else:
            self.metric_loss = build_metric_loss(cfg.metric, margin=cfg.margin, num_classes=num_classes,
                                                 feat_dim=feat_dim)
        self.id_weight, self.metric_weight = cfg.id_weight, cfg.metric_weight

    def forward(self, out: dict, pids: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss_id = self.id_loss(out["logits"].float(), pids)
        loss_metric = self.metric_loss(out["features"].float(), pids)
        loss = self.id_weight * loss_id + self.metric_weight * loss_metric
        return loss, {"loss_id": loss_id.detach(), "loss_metric": loss_metric.detach()}


def lr_factor(epoch: int, optim) -> float:
    """Multiplier of the base lr at a 0-based epoch: linear warm-up, then steps of `gamma` at milestones."""
    warmup = (epoch + 1) / optim.warmup_epochs if epoch < optim.warmup_epochs else 1.0
    return warmup * optim.gamma ** sum(epoch >= m for m in optim.milestones)


def build_optimizer(model: nn.Module, criterion: nn.Module, optim) -> torch.optim.Optimizer:
    """Backbone at lr * backbone_lr_scale, the rest (CSA, BN neck, classifier, loss centres) at lr.

    Biases, norms, position embeddings and class tokens get no weight decay (the usual ViT practice).
    """
    no_decay_names = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list] = {}
    named = [(n, p) for n, p in model.named_parameters()] + [(f"criterion.{n}", p)
                                                              for n, p in criterion.named_parameters()]
    for name, param in named:
        if not param.requires_grad:
            continue
        is_backbone = name.startswith("backbone.")
        decay = param.ndim > 1 and name not in no_decay_names and not name.startswith("criterion.")
        groups.setdefault((is_backbone, decay), []).append(param)
    param_groups = [
        {"params": params, "lr": optim.lr * (optim.backbone_lr_scale if is_backbone else 1.0),
         "weight_decay": optim.weight_decay if decay else 0.0}
        for (is_backbone, decay), params in sorted(groups.items())
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(param_groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    return cls(param_groups, lr=optim.lr, betas=(optim.momentum, optim.beta2))


# ---------------------------------------------------------------------------------------------- data

def resolve_root(cfg: ExperimentConfig) -> Path:
    """`data.root`, or the default synthetic set of that layout (generated when missing)."""
    if cfg.data.root is None:
        from reid.data.synthetic import ensure_synthetic

        return Path(ensure_synthetic(DEFAULT_SYNTHETIC_ROOT, seed=0)) / LAYOUT_DIRS[cfg.data.dataset]
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise UserError(f"--data {root}: no such directory (expected a {LAYOUT_DIRS[cfg.data.dataset]} root)")
    return root


def open_dataset(cfg: ExperimentConfig, root: Path):
    from reid.data import SYSUMM01, RegDB

    if cfg.data.dataset == "sysu":
        return SYSUMM01(root)
    return RegDB(root, trial=cfg.data.regdb_trial)


class TrainData:
    """The training identities split into train / validation, and the loaders' ingredients."""

    def __init__(self, cfg: ExperimentConfig, rank: int = 0, world_size: int = 1) -> None:
        from reid.data import (
            CrossModalIdentitySampler,
            CrossModalTrainSet,
            ImageCache,
            build_test_transform,
            build_train_transform,
            carve_validation,
        )

        d = cfg.data
        self.root = resolve_root(cfg)
        dataset = open_dataset(cfg, self.root)
        self.ir_cameras = dataset.ir_cameras
        self.train_items, self.val_query, self.val_gallery = carve_validation(
            dataset.train, dataset.ir_cameras, val_fraction=d.val_fraction, seed=cfg.train.seed)
        self.num_classes = len({pid for _, pid, _ in self.train_items})
        self.cache = ImageCache(d.height, d.width)
        transform = build_train_transform(d.height, d.width, trivial_augment=d.trivial_augment,
                                          random_erasing=d.random_erasing, pad=d.pad, ta_space=d.ta_space)
        self.test_transform = build_test_transform(d.height, d.width)
        self.train_set = CrossModalTrainSet(self.train_items, dataset.ir_cameras, transform, self.cache,
                                            with_gray=d.with_gray, gray_of=d.gray_of)
        self.sampler = CrossModalIdentitySampler(self.train_items, dataset.ir_cameras, num_ids=d.num_ids,
                                                 num_instances=d.num_instances, seed=cfg.train.seed,
                                                 batches_per_epoch=d.batches_per_epoch or None,
                                                 rank=rank, world_size=world_size)
        self.workers = d.workers

    def loader(self, epoch: int, seed: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=self.workers,
                          generator=torch.Generator().manual_seed(seed), pin_memory=torch.cuda.is_available())


def validate(model: nn.Module, data: TrainData, batch_size: int, device: torch.device) -> dict:
    """mAP and Rank-1 (percent) of held-out training identities: IR queries against their visible images."""
    from reid.evaluate import distances, extract_features
    from reid.metrics import eval_regdb

    if not data.val_query or not data.val_gallery:
        return {}
    was_training = model.training
    q, q_pids, _ = extract_features(model, data.val_query, data.cache, data.test_transform, batch_size, device,
                                    desc="val query")
    g, g_pids, _ = extract_features(model, data.val_gallery, data.cache, data.test_transform, batch_size,
                                    device, desc="val gallery")
    model.train(was_training)
    cmc, mAP, _ = eval_regdb(distances(q, g), q_pids, g_pids)
    return {"val_mAP": 100.0 * float(mAP), "val_rank1": 100.0 * float(cmc[0])}


# ------------------------------------------------------------------------------------------ training

def _distributed() -> tuple[int, int, bool]:
    """(rank, world_size, created): join torchrun's process group when its variables say so."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), world_size, True
    return 0, 1, False


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast where the GPU supports it, else fp16 (with a GradScaler); nothing on the CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _write_log(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def train(cfg: ExperimentConfig, output_dir: str | os.PathLike, resume: bool = False,
          device: str | torch.device | None = None) -> dict:
    """Train `cfg` into `output_dir`; returns the run summary (paths, best epoch, history, the model)."""
    from tqdm.auto import tqdm

    from reid.models import ModelConfig, build_model

    output_dir = Path(output_dir)
    rank, world_size, created_group = _distributed()
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    last_path, best_path = output_dir / "last.pt", output_dir / "best.pt"
    if resume and not last_path.is_file():
        raise UserError(f"--resume: nothing to resume in {output_dir} (no last.pt)")
    if not resume and last_path.is_file():
        raise UserError(f"--output-dir {output_dir} already holds a run (last.pt); pass --resume or choose "
                        "another folder")

    seed_everything(cfg.train.seed)
    data = TrainData(cfg, rank, world_size)
    try:
        model_cfg = ModelConfig(**{**cfg.model, "img_size": [cfg.data.height, cfg.data.width]})
    except TypeError as err:
        raise UserError(f"model section of config {cfg.name!r}: {err}") from None
    # On resume the trained weights replace the ImageNet ones right away: the ImageNet file is not needed.
    model = build_model(model_cfg, data.num_classes, load_pretrained=not resume).to(device)
    criterion = Criterion(cfg.loss, data.num_classes, model.feature_dim).to(device)
    optimizer = build_optimizer(model, criterion, cfg.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg.optim))
    amp_dtype = _autocast(device, cfg.train.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_epoch, history, best = 0, [], {"val_mAP": -1.0, "epoch": 0}
    if resume:
        ckpt = load_checkpoint(last_path, map_location=device)
        if ckpt["num_classes"] != data.num_classes:
            raise UserError(f"--resume: {last_path} was trained on {ckpt['num_classes']} identities, "
                            f"the data now gives {data.num_classes}")
        changed = _config_changes(config_from_dict(ckpt["config"], str(last_path)), cfg)
        if changed and rank == 0:
            print(f"resume: config differs from {last_path} in {', '.join(changed)}")
        model.load_state_dict(ckpt["model"])
        criterion.load_state_dict(ckpt["criterion"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start_epoch, history, best = ckpt["epoch"], ckpt["history"], ckpt["best"]

    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                  else None)
    if cfg.train.compile:
        net = torch.compile(net)

    writer = None
    if rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output_dir / "config.yaml")
        _write_log(output_dir / "log.csv", history)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(output_dir / "tb"), purge_step=start_epoch + 1)

    def checkpoint(epoch: int) -> dict:
        return {
            "model": model.state_dict(), "criterion": criterion.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch, "rng": get_rng_state(),
            "sampler_epoch": epoch, "model_config": asdict(model_cfg), "num_classes": data.num_classes,
            "config": config_to_dict(cfg), "history": history, "best": best, "world_size": world_size,
        }

    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            seed = epoch_seed(cfg.train.seed, epoch, rank)
            seed_everything(seed)
            row = _train_one_epoch(net, criterion, optimizer, scaler, data.loader(epoch, seed), cfg, epoch,
                                   device, amp_dtype, world_size, disable_bar=rank != 0, tqdm=tqdm)
            row["lr"] = optimizer.param_groups[-1]["lr"]
            # --- recipe branch (issue 11): per-part shares of the feature the losses see, last batch ---
            feats = row.pop("last_features", None)
            if rank == 0 and feats is not None and len(getattr(model, "part_dims", [])) > 1:
                _log_part_shares(feats, model.part_dims, epoch, output_dir)
            # --- end recipe branch ---
            if world_size > 1:
                _average_buffers(model, world_size)
            scheduler.step()
            last = epoch + 1 == cfg.train.epochs
            if rank == 0 and ((epoch + 1) % cfg.train.eval_every == 0 or last):
                row.update(validate(model, data, cfg.data.test_batch_size, device))
            history.append({k: row.get(k, "") for k in LOG_FIELDS})
            if rank == 0:
                improved = row.get("val_mAP", -1.0) > best["val_mAP"] or (last and best["epoch"] == 0)
                if improved:
                    best = {"val_mAP": row.get("val_mAP", -1.0), "epoch": epoch + 1}
                state = checkpoint(epoch + 1)
                save_checkpoint(state, last_path)
                if improved:
                    save_checkpoint(state, best_path)
                _write_log(output_dir / "log.csv", history)
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
            "num_classes": data.num_classes, "model": model, "rank": rank}


def _log_part_shares(features: torch.Tensor, part_dims: list, epoch: int, output_dir: Path) -> None:
    """Print and append to part_shares.csv each part's share of the pair distances (reid.diagnostics)."""
    from reid.diagnostics import collapse_warnings, format_shares, part_names, part_shares

    shares, names = part_shares(features, part_dims), part_names(len(part_dims))
    print(f"epoch {epoch + 1} part shares: {format_shares(shares, names)}")
    for message in collapse_warnings(shares, names):
        print(f"warning (epoch {epoch + 1}): {message}")
    path = output_dir / "part_shares.csv"
    with open(path, "a" if epoch and path.is_file() else "w") as f:
        if f.tell() == 0:
            f.write("epoch," + ",".join(f"{n}_share,{n}_variance" for n in names) + "\n")
        f.write(f"{epoch + 1}," + ",".join(f"{s['share']:.4f},{s['variance']:.4g}" for s in shares) + "\n")


def train_step(net, criterion, optimizer, scaler, imgs, pids, amp_dtype=None, grad_clip: float = 0.0,
               check=None) -> tuple[torch.Tensor, dict, dict]:
    """One optimisation step on a batch; `check(loss)` runs before the backward pass (the NaN guard)."""
    context = torch.autocast(imgs.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    with context:
        out = net(imgs)
    loss, parts = criterion(out, pids)  # in fp32: the losses exponentiate distances (Eq. 15)
    if check is not None:
        check(loss)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, parts, out


def _check_finite(loss: torch.Tensor, epoch: int, step: int, world_size: int) -> None:
    finite = torch.isfinite(loss.detach()).float()
    if world_size > 1:  # every rank must stop together, or the others hang in the next all-reduce
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not bool(finite):
        raise DivergedError(
            f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}: training stopped; the last good "
            f"checkpoint (epoch {epoch}) is left intact. Lower optim.lr or enable train.grad_clip.")


def _train_one_epoch(net, criterion, optimizer, scaler, loader, cfg, epoch, device, amp_dtype, world_size,
                     disable_bar, tqdm) -> dict:
    net.train()
    max_steps = cfg.train.max_steps_per_epoch or len(loader)
    sums = {"loss": 0.0, "loss_id": 0.0, "loss_metric": 0.0, "correct": 0.0, "images": 0}
    start = time.perf_counter()
    # At most one redraw per second: every redraw is a message from a Jupyter kernel, and thousands of them
    # in one long cell overflow its output channel (nbval then loses the cell's end and reports a timeout).
    bar = tqdm(total=min(max_steps, len(loader)), desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
               disable=disable_bar, leave=False, mininterval=1.0)
    for step, batch in enumerate(loader):
        if step >= max_steps:
            break
        imgs, pids = batch["img"], batch["pid"]
        if cfg.data.with_gray:  # only the copies the dataset kept (data.gray_of)
            keep = batch["gray_keep"]
            imgs, pids = torch.cat([imgs, batch["gray"][keep]]), torch.cat([pids, pids[keep]])
        imgs, pids = imgs.to(device, non_blocking=True), pids.to(device, non_blocking=True)
        loss, parts, out = train_step(net, criterion, optimizer, scaler, imgs, pids, amp_dtype, cfg.train.grad_clip,
                                      check=lambda loss, step=step: _check_finite(loss, epoch, step, world_size))
        sums["loss"] += loss.item()
        sums["loss_id"] += parts["loss_id"].item()
        sums["loss_metric"] += parts["loss_metric"].item()
        sums["correct"] += (out["logits"].argmax(1) == pids).float().mean().item()
        sums["images"] += imgs.shape[0] * world_size
        last_features = out["features"].detach()  # recipe branch: for the per-part diagnostics
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)  # drawn with the next throttled update
    bar.close()
    steps = max(1, bar.n)
    elapsed = time.perf_counter() - start
    return {"epoch": epoch + 1, "loss": sums["loss"] / steps, "loss_id": sums["loss_id"] / steps,
            "loss_metric": sums["loss_metric"] / steps, "train_acc": 100.0 * sums["correct"] / steps,
            "images_per_s": sums["images"] / elapsed, "epoch_time_s": elapsed,
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


# ----------------------------------------------------------------------------------------------- CLI

def parse_trials(text: str) -> int:
    """`--trials N`: RegDB splits 1..N (the protocol uses all 10)."""
    try:
        trials = int(text)
    except ValueError:
        raise UserError(f"--trials {text!r}: expected a number of RegDB splits, 1..10") from None
    if not 1 <= trials <= 10:
        raise UserError(f"--trials {text!r}: RegDB splits are numbered 1..10")
    return trials


def train_regdb_splits(cfg: ExperimentConfig, output_dir: str | os.PathLike, trials: int, resume: bool = False,
                       device: str | None = None) -> dict:
    """One model per RegDB split 1..trials (the protocol), each in OUTPUT_DIR/trial_NN, then the test
    protocol in both directions with each split's own model: mean +- std over the splits.

    Returns {"v2t": result, "t2v": result, "checkpoints": [best.pt per split]} (empty off rank 0).
    With `resume`, splits already trained to the end are reused as they are."""
    import json

    from reid.evaluate import evaluate_regdb, load_model

    checkpoints = []
    for trial in range(1, trials + 1):
        cfg.data.regdb_trial = trial
        out = Path(output_dir) / f"trial_{trial:02d}"
        summary = train(cfg, out, resume=resume and (out / "last.pt").is_file(), device=device)
        if summary["rank"] != 0:
            continue
        print(f"RegDB split {trial}: best validation mAP {summary['best_val_mAP']:.2f}% -> {out}")
        checkpoints.append(summary["best"])
    if not checkpoints:  # not rank 0
        return {}
    models = [load_model(path) for path in checkpoints]
    results = {d: evaluate_regdb(models, resolve_root(cfg), trials=trials, direction=d, device=device)
               for d in ("v2t", "t2v")}
    for result in results.values():
        print(f"{result['label']}: Rank-1 {result['rank1']:.2f} +- {result['std']['rank1']:.2f}%, "
              f"mAP {result['mAP']:.2f} +- {result['std']['mAP']:.2f}%")
    results["checkpoints"] = checkpoints
    path = Path(output_dir) / "regdb_results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return results


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="smoke", help="config name in reid/configs or a YAML path")
    parser.add_argument("--profile", default=None,
                        help="swap the config's base for this one, e.g. a Table 3 row with --profile smoke")
    parser.add_argument("--dataset", choices=["sysu", "regdb"], default=None, help="overrides data.dataset")
    parser.add_argument("--data", default=None, help="dataset root (default: the synthetic set, made if missing)")
    parser.add_argument("--output-dir", required=True, help="run folder: last.pt, best.pt, log.csv, tb/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=0.01 (repeatable)")
    parser.add_argument("--trials", default=None,
                        help="RegDB: train one model per split 1..N (in OUTPUT_DIR/trial_NN) and test each")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")


def config_from_args(args) -> ExperimentConfig:
    overrides = list(args.overrides)
    if args.dataset:
        overrides.append(f"data.dataset={args.dataset}")
    if args.data:
        if not Path(args.data).is_dir():
            raise UserError(f"--data {args.data}: no such directory")
        overrides.append(f"data.root={args.data}")
    return load_config(args.config, overrides, profile=args.profile)


def run(args) -> int:
    cfg = config_from_args(args)
    if args.trials is None:
        summary = train(cfg, args.output_dir, resume=args.resume, device=args.device)
        if summary["rank"] == 0:
            print(f"best validation mAP {summary['best_val_mAP']:.2f}% at epoch {summary['best_epoch']}; "
                  f"checkpoints in {summary['output_dir']}")
        return 0
    if cfg.data.dataset != "regdb":
        raise UserError("--trials is for RegDB (one model per identity split); add --dataset regdb")
    train_regdb_splits(cfg, args.output_dir, parse_trials(args.trials), resume=args.resume, device=args.device)
    return 0
