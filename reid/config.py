"""Experiment configs: small dataclasses, loaded from YAML.

A config file names the settings it changes; everything else keeps the defaults below.

    base: paper_sysu          # optional, one level: a config name or a path (relative to this file)
    model: {backbone: vit, csa: false}
    data: {trivial_augment: false}
    profiles:                 # optional: settings of this file on a given base only (a row under a profile)
      smoke: {model: {preset: micro}}

`load_config("table3_ta")` finds `reid/configs/table3_ta.yaml`; a path works too.
`overrides=["optim.lr=0.01", "model.preset=tiny"]` (the CLI's `--set`) are typed from the
current value (bool, int, float, str, list). `base="smoke"` swaps the file's `base:` for
another config, so that every Table 3/4 row can be run with the CPU-sized `smoke` settings (the
runner's *profiles*, `reid.experiments`, are families of configs built this way).
Unknown keys are a `UserError` naming the key and the file or flag.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reid.data.regdb import check_split
from reid.models.reid_model import ModelConfig
from reid.utils.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    dataset: str = "sysu"  # "sysu" | "regdb"
    root: str | None = None  # None: the default synthetic set of that layout
    regdb_split: int = 1  # which of RegDB's identity splits (1..10, reid.data.regdb.NUM_SPLITS) to train on
    height: int = 288
    width: int = 144
    num_ids: int = 4  # P identities per batch
    num_instances: int = 4  # K images per identity and modality: batch = P*K visible + P*K infrared
    # An epoch: "images" = ceil(N_visible / (P*K)) batches, as in the cross-modal code whose lr schedule
    # the paper quotes (AGW); "identities" = one pass over the ids, ceil(ids / P) batches.
    epoch_size: str = "images"
    batches_per_epoch: int = 0  # > 0: at least this many batches per epoch (CPU profiles)
    trivial_augment: bool = True
    ta_space: str = "reid"  # TrivialAugment op space: "reid" (re-ID-sized) | "wide" (TrivialAugmentWide)
    random_erasing: float = 0.5
    pad: int = 10  # zero padding (pixels) before the random crop; scale it with the image size
    with_gray: bool = True  # feed grayscale copies as extra samples
    gray_of: str = "visible"  # which images get a grayscale copy: "visible" only | "both" modalities
    val_fraction: float = 0.1  # share of the training identities held out for model selection (0: none,
    # the last epoch is the model)
    workers: int = 2  # DataLoader worker processes per rank, or "auto": sized from this process's CPUs
    # (reid.data.train_data.resolve_workers, stated in the run's first lines)
    test_batch_size: int = 64


@dataclass
class LossConfig:
    id_loss: str = "lsce"  # "lsce" (Eq. 13) | "ce"
    epsilon: float = 0.1  # label smoothing xi
    metric: str = "adaptive_triplet"  # "adaptive_triplet" (Eq. 15) | "hard_triplet" (Eq. 14) | "center"
    margin: float = 1.0  # alpha
    soft_margin: bool = False
    id_weight: float = 1.0
    metric_weight: float = 1.0
    # Center loss only: its centres' own SGD rate on the unweighted loss (Wen et al. 2016: alpha = 0.5).
    center_lr: float = 0.5


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd" | "adam" | "adamw"
    lr: float = 0.1  # the head's learning rate (BN neck, classifier)
    backbone_lr_scale: float = 0.1  # backbone lr = lr * scale
    weight_decay: float = 5e-4
    momentum: float = 0.9  # SGD momentum; for Adam(W) this is beta1
    beta2: float = 0.999
    fused: bool = False  # Adam(W) only: torch's fused kernel (~8 % faster a CPU smoke step; other rounding)
    nesterov: bool = True
    milestones: list = field(default_factory=lambda: [20, 50])  # lr *= gamma from these epochs (0-based)
    gamma: float = 0.1
    warmup_epochs: int = 10  # linear warm-up from lr/warmup_epochs


@dataclass
class TrainConfig:
    epochs: int = 100
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA only (bf16 where native, else fp16 + GradScaler: reid.utils.device)
    compile: bool = False
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    eval_every: int = 1  # validate every N epochs (and after the last one)
    max_steps_per_epoch: int = 0  # 0 = a full pass of the sampler; >0 caps it (tests, smoke runs)
    # Lineage-style reporting (AGW, PMT, DEEN keep the epoch with the best *test* Rank-1): N > 0 tests the model
    # every N epochs (and after the last) on the test set's trial-0 gallery (SYSU-MM01 all-search; RegDB the
    # run's split, visible->thermal) with flip, and keeps that epoch's weights in best_on_test.pt, beside --
    # never instead of -- the last epoch (best.pt). 0 = off. Its results are labelled (docs/agw.md).
    test_every: int = 0


@dataclass
class ExperimentConfig:
    name: str = "default"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)  # img_size always comes from data.height/width
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig, "optim": OptimConfig,
            "train": TrainConfig}
CHOICES = {
    "data.dataset": ("sysu", "regdb"),
    "data.epoch_size": ("images", "identities"),
    "data.ta_space": ("reid", "wide"),
    "data.gray_of": ("visible", "both"),
    "loss.id_loss": ("lsce", "ce"),
    "loss.metric": ("adaptive_triplet", "hard_triplet", "center"),
    "optim.name": ("sgd", "adam", "adamw"),
}


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A path to a YAML file, or the name of one in reid/configs/."""
    candidates = [Path(name_or_path)]
    if relative_to is not None:
        candidates.insert(0, relative_to / name_or_path)
    candidates.append(CONFIG_DIR / f"{name_or_path}.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(
        f"config not found: {name_or_path!r} (not a file; known names: {', '.join(available_configs())})"
    )


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read config {path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"cannot parse config {path}{where}: {problem} (YAML syntax)") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(raw: dict, source: str = "config") -> ExperimentConfig:
    """Build and validate an `ExperimentConfig`; `source` names the file in error messages."""
    top = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r} in {source} (expected one of {sorted(top)})")
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k not in SECTIONS}
    sections = {}
    for section, cls in SECTIONS.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise UserError(f"{section!r} in {source} must be a mapping, got {values!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - names)
        if bad:
            raise UserError(f"unknown key '{section}.{bad[0]}' in {source} (expected one of {sorted(names)})")
        sections[section] = dict(values)
    data = DataConfig(**sections["data"])
    # The model's input size is the data's: one place to set it (a saved config repeats it, unchanged).
    model = sections["model"]
    size = [data.height, data.width]
    if "img_size" in model and list(model["img_size"]) != size:
        raise UserError(f"model.img_size={model['img_size']} in {source}: set data.height and data.width instead")
    model["img_size"] = size
    kwargs["model"] = ModelConfig(**model)
    kwargs["data"] = data
    for section in ("loss", "optim", "train"):
        kwargs[section] = SECTIONS[section](**sections[section])
    cfg = ExperimentConfig(**kwargs)
    _validate(cfg, source)
    return cfg


def _type_name(default: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(default), type(default).__name__)


def _check_types(cfg: ExperimentConfig, source: str) -> None:
    """Every value of the data / loss / optim / train sections has its default's type (an int is a valid
    float), so `optim: {lr: abc}` in a YAML fails here, not in the middle of an epoch."""
    for section in ("data", "loss", "optim", "train"):
        obj, defaults = getattr(cfg, section), SECTIONS[section]()
        for f in dataclasses.fields(obj):
            value, default = getattr(obj, f.name), getattr(defaults, f.name)
            if (section, f.name) in WORD_VALUES and value in WORD_VALUES[(section, f.name)]:
                continue
            if default is None:
                ok = value is None or isinstance(value, str)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                expected = "a path or null" if default is None else _type_name(default)
                words = WORD_VALUES.get((section, f.name))
                expected += f" or {' / '.join(words)}" if words else ""
                raise UserError(f"{section}.{f.name}={value!r} in {source}: expected {expected}")


# Words a numeric field accepts besides its numbers (resolved where the value is used).
WORD_VALUES = {("data", "workers"): ("auto",)}
# Data-loader worker processes per rank: the one bound of `data.workers` (any config, `--set`, a sweep's
# rows) and of the notebooks' REID_WORKERS, checked before a worker starts (100000 forked until the OOM killer).
MAX_WORKERS = 64

# (key, test, what is expected): value checks run on every config before any work starts.
RANGES = [
    ("data.workers", lambda v: v == "auto" or 0 <= v <= MAX_WORKERS, f"0..{MAX_WORKERS} or auto"),
    ("data.test_batch_size", lambda v: v >= 1, ">= 1"),
    ("data.random_erasing", lambda v: 0.0 <= v <= 1.0, "a probability, 0 <= p <= 1"),
    ("loss.epsilon", lambda v: 0.0 <= v < 1.0, "0 <= epsilon < 1"),
    ("loss.margin", lambda v: v >= 0, ">= 0"),
    ("loss.id_weight", lambda v: v >= 0, ">= 0"),
    ("loss.metric_weight", lambda v: v >= 0, ">= 0"),
    ("loss.center_lr", lambda v: v > 0, "> 0"),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.backbone_lr_scale", lambda v: v >= 0, ">= 0"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.momentum", lambda v: 0.0 <= v < 1.0, "0 <= momentum < 1"),
    ("optim.beta2", lambda v: 0.0 <= v < 1.0, "0 <= beta2 < 1"),
    ("optim.gamma", lambda v: v > 0, "> 0"),
    ("optim.warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("optim.milestones", lambda v: all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in v),
     "a list of epochs (integers >= 0)"),
    ("train.seed", lambda v: v >= 0, ">= 0"),
    ("train.grad_clip", lambda v: v >= 0, ">= 0 (0 = off)"),
    ("train.max_steps_per_epoch", lambda v: v >= 0, ">= 0 (0 = a full pass)"),
    ("train.test_every", lambda v: v >= 0, ">= 0 (0 = off)"),
]


def _validate(cfg: ExperimentConfig, source: str) -> None:
    _check_types(cfg, source)
    for key, ok, expected in RANGES:
        value = get_value(cfg, key)
        if not ok(value):
            raise UserError(f"{key}={value!r} in {source}: expected {expected}")
    for key, allowed in CHOICES.items():
        value = get_value(cfg, key)
        if value not in allowed:
            raise UserError(f"{key}={value!r} in {source}: expected one of {list(allowed)}")
    d, t = cfg.data, cfg.train
    if min(d.height, d.width, d.num_ids, d.num_instances, t.epochs, t.eval_every) < 1:
        raise UserError(f"{source}: sizes, batch P/K, epochs and eval_every must be positive")
    if d.num_ids < 2 and cfg.loss.metric_weight > 0:  # one id a batch: no negatives, no centre to tell apart
        raise UserError(f"data.num_ids={d.num_ids} in {source}: the metric loss ({cfg.loss.metric}, weight "
                        f"{cfg.loss.metric_weight}) needs P >= 2 identities a batch (with 1 it is 0 for the whole "
                        "run); set data.num_ids >= 2, or loss.metric_weight=0")
    if d.pad < 0 or d.batches_per_epoch < 0:
        raise UserError(f"{source}: data.pad and data.batches_per_epoch must be >= 0")
    if not 0.0 <= d.val_fraction < 1.0:
        raise UserError(f"data.val_fraction={d.val_fraction} in {source}: expected 0 <= f < 1")
    check_split(d.regdb_split, f"data.regdb_split={d.regdb_split} in {source}")


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """Plain dicts, lists and scalars (tuples become lists), as YAML and JSON write them."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def get_value(cfg: ExperimentConfig, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def _parse_like(text: str, current: Any, key: str) -> Any:
    """Type an override string like the value it replaces (YAML rules when there is none)."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    if current is None:
        return parsed
    if isinstance(current, bool):
        if isinstance(parsed, bool):
            return parsed
        raise UserError(f"--set {key}={text}: expected true or false")
    if isinstance(current, (int, float)):
        if isinstance(parsed, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            raise UserError(f"--set {key}={text}: expected a number")
        if isinstance(current, int) and not float(parsed).is_integer():
            raise UserError(f"--set {key}={text}: expected an integer")
        return type(current)(parsed)
    if isinstance(current, (list, tuple)):
        if not isinstance(parsed, list):
            raise UserError(f"--set {key}={text}: expected a list like [1, 2]")
        return parsed
    return text if isinstance(current, str) else parsed


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply `section.key=value` strings to a raw config dict (typed from the defaults/current values)."""
    defaults = config_to_dict(ExperimentConfig())
    raw = _deep_merge({}, raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected key=value, e.g. optim.lr=0.01")
        section, dot, name = key.partition(".")
        if not dot:
            if section not in ("name", "description"):
                raise UserError(f"--set {key}: expected section.key (sections: {', '.join(SECTIONS)})")
            raw[section] = text
            continue
        if section in SECTIONS:
            if name not in defaults[section]:
                raise UserError(f"--set {key}: unknown key {name!r} in section {section!r} "
                                f"(expected one of {sorted(defaults[section])})")
            current = raw.get(section, {}).get(name, defaults[section][name])
            words = WORD_VALUES.get((section, name), ())
            if text.strip() in words:
                raw.setdefault(section, {})[name] = text.strip()
                continue
            if current in words:  # a number over a word: typed like the default
                current = defaults[section][name]
        else:
            raise UserError(f"--set {key}: unknown section {section!r} (expected {', '.join(SECTIONS)})")
        raw.setdefault(section, {})[name] = _parse_like(text, current, key)
    return raw


def load_raw(name_or_path: str | Path, base: str | None = None) -> tuple[dict, str]:
    """The merged raw dict of a config file and its base (`base`, if given, instead of the file's own
    `base:`); returns (dict, source description)."""
    path = resolve_config_path(name_or_path)
    raw = _read_yaml(path)
    swapped = base is not None
    base = base if swapped else raw.pop("base", None)
    raw.pop("base", None)
    source = str(path)
    # `profiles: {<base config>: {section: {...}}}`: what this file sets on that base only, e.g. a row whose
    # model must be smaller on the CPU profile than on the paper's (agw_*.yaml: its ResNet size)
    variants = raw.pop("profiles", None) or {}
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise UserError(f"'profiles' in {path} must map base config names to sections, e.g. "
                        "profiles: {smoke: {model: {preset: micro}}}")
    for key in variants:  # a misspelt base would be skipped silently
        if str(key) not in available_configs():
            raise UserError(f"'profiles: {key}' in {path}: no config named {key!r} (known: {', '.join(available_configs())})")
    if base is not None and Path(str(base)).stem in variants:
        raw = _deep_merge(raw, variants[Path(str(base)).stem])
    base_path = resolve_config_path(base, path.parent) if base is not None else None
    if base_path is not None and base_path.resolve() == path.resolve() and not swapped:
        raise UserError(f"config {path}: 'base: {base}' names this file itself; name another config or remove it")
    if base_path is not None and base_path.resolve() != path.resolve():
        if swapped:  # a profile in place of the row's base, as it loads on its own (paper_regdb: paper_sysu on RegDB)
            base_raw = load_raw(base_path)[0]
        else:
            base_raw = _read_yaml(base_path)
            if "base" in base_raw:
                raise UserError(f"config {base_path} has its own 'base:'; only one level of inheritance is supported")
        # Validate each file on its own first, so an unknown key names the file it is in.
        config_from_dict(base_raw, str(base_path))
        raw = _deep_merge(base_raw, raw)
        source = f"{path} (base {base_path})"
    return raw, source


def load_config(
    name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = (), base: str | None = None
) -> ExperimentConfig:
    """Load a config by name or path, with one level of `base:` (or `base` instead of it: a profile, which may
    have a base of its own), then apply `--set` overrides."""
    raw, source = load_raw(name_or_path, base)
    config_from_dict(raw, source)  # unknown keys in the file are reported against the file
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, source + (" with --set overrides" if overrides else ""))


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
