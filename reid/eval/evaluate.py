"""The SYSU-MM01 and RegDB test protocols, and `python -m reid evaluate`.

    model = load_model("runs/sysu/best.pt")
    result = evaluate_sysu(model, "data/synthetic/SYSU-MM01", mode="all", shots=1, trials=10)
    result["rank1"], result["mAP"], result["std"]["rank1"], result["per_trial"]

SYSU-MM01: the query (every IR image of the test ids) is embedded once; the gallery is redrawn
for each trial (`shots` RGB images per identity and camera) and scored with `eval_sysu`.
RegDB: each of the 10 identity *splits* has its own test set and, in the standard protocol, its
own model trained on that split; pass one model per split (a list, a callable, or a checkpoint
path with `{split}` in it, e.g. `runs/regdb/split_{split:02d}/best.pt`). A single model for every
split is accepted but labelled `model_per_split: false`, because it has seen test identities of the
other splits in training.

Words: a SYSU-MM01 *trial* is one random draw of the gallery; a RegDB *split* is one of its ten
train/test identity partitions. Metrics are reported in percent, as mean and std over trials (or
splits) plus one row each; the feature used (`test_feature`: after or before the BN neck), flip TTA and
re-ranking are part of every result's `protocol`; the label names each one that is not the default
("before-BN feature", "flip", "re-ranked"). `protocol` is the result's protocol card (`reid.records.card`: also
the gallery sampler, model selection, training ids, pretrained weights, preset and the data's fingerprint).
`diagnostics`, beside it, is what the evaluation measured besides its metrics (`reid.eval.diagnostics`): each
feature part's share of the test features' pair distances (SYSU-MM01: the queries and the union of the trials'
galleries; RegDB: each split's query and gallery, the mean over splits) and each branch's CSA gate statistics
while the query features are extracted (forward hooks, which leave the features as they are).
`summary_text(result)` is what `python -m reid evaluate` prints: the card, the diagnostics, one line per trial
or split, the average.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from reid.data.identity import describe_data
from reid.data.regdb import NUM_SPLITS
from reid.eval.diagnostics import GateRecorder, diagnostics_entry, diagnostics_lines, feature_part_shares
from reid.eval.metrics import eval_regdb, eval_sysu
from reid.eval.rerank import card_value, k_reciprocal_rerank, variant_name
from reid.eval.rerank import label as rerank_label
from reid.models.agw import INFRARED, VISIBLE
from reid.records.card import card_fields, card_lines, model_fields, sysu_sampler
from reid.records.provenance import check_result_location, provenance, write_result
from reid.utils.device import check_device, default_device
from reid.utils.errors import UserError

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
SYSU_TRIALS, REGDB_SPLITS = 10, NUM_SPLITS


# ----------------------------------------------------------------------------- model and features
def load_model(checkpoint: str | Path, map_location: str = "cpu"):
    """Rebuild the model of a training checkpoint, in eval mode; any mismatch is a one-line `UserError`
    naming it. `model.checkpoint_info` keeps the path, epoch and experiment config for the result."""
    from reid.models import ModelConfig, build_model
    from reid.utils.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, map_location=map_location, required=("model", "model_config", "num_classes"))
    try:
        cfg = ModelConfig.from_dict(dict(ckpt["model_config"]))
        model = build_model(cfg, int(ckpt["num_classes"]), load_pretrained=False)
    except (UserError, TypeError, ValueError) as err:
        raise UserError(f"checkpoint {checkpoint}: its model_config cannot build a model: {err}") from None
    state = ckpt["model"]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        problems = [
            f"{len(found)} {what} (e.g. {found[0]})"
            for what, found in (("missing keys", missing), ("unexpected keys", unexpected),
                                ("shape mismatches", wrong_shape))
            if found
        ]
        raise UserError(f"checkpoint {checkpoint} does not fit the model its model_config describes: "
                        + ", ".join(problems))
    not_finite = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if not_finite:
        raise UserError(f"checkpoint {checkpoint}: {len(not_finite)} tensors hold NaN or infinite values "
                        f"(e.g. {not_finite[0]}); the run diverged before this checkpoint was written")
    model.load_state_dict(state, strict=True)
    model.eval()
    model.checkpoint_info = {"path": str(checkpoint), "epoch": ckpt.get("epoch"), "config": ckpt.get("config"),
                             "best": ckpt.get("best"), "history": ckpt.get("history"),
                             "selection": ckpt.get("selection")}
    return model


def load_untrained(checkpoint: str | Path, seed: int = 0):
    """A freshly initialised network of a checkpoint's architecture (no ImageNet weights either), in eval
    mode: the 'untrained' reference every result is read against."""
    from reid.models import ModelConfig, build_model
    from reid.utils.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, required=("model_config", "num_classes"))
    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict(dict(ckpt["model_config"]))
    model = build_model(cfg, int(ckpt["num_classes"]), load_pretrained=False).eval()
    model.checkpoint_info = {"path": str(checkpoint), "config": ckpt.get("config"), "untrained": True}
    return model


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    items: Sequence[tuple[str, int, int]],
    cache=None,
    transform: Callable | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = False,
    desc: str = "features",
    modality: int | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Embed `items` in batches -> (features (N, D) float32 on CPU, pids (N,), camids (N,)).

    The model's eval-mode output is used (L2-normalised, before/after the BN neck per its
    `cfg.test_feature`). `flip=True` averages the embeddings of the image and its mirror image.
    `modality` (0 visible, 1 infrared: every item's) is passed to the model, for AGW's modality stems.
    """
    from torch.utils.data import DataLoader

    from reid.data.dataset import ImageCache, ImageSet
    from reid.data.transforms import build_test_transform

    height, width = model.cfg.img_size
    cache = cache if cache is not None else ImageCache(height, width)
    transform = transform if transform is not None else build_test_transform(height, width)
    device = torch.device(device) if device is not None else default_device()
    model.eval().to(device)
    loader = DataLoader(ImageSet(list(items), transform, cache), batch_size=batch_size, shuffle=False,
                        num_workers=0, pin_memory=device.type == "cuda")
    features = []
    for images, _, _ in tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True, mininterval=1.0):
        images = images.to(device, non_blocking=True)
        embed = model if modality is None else (lambda x: model(x, modality))
        emb = embed(images)
        if flip:
            emb = F.normalize(emb + embed(torch.flip(images, dims=[3])), dim=1)
        features.append(emb.float().cpu())
    pids = np.array([pid for _, pid, _ in items], dtype=np.int64)
    camids = np.array([cam for _, _, cam in items], dtype=np.int64)
    return torch.cat(features), pids, camids


def distances(query: torch.Tensor, gallery: torch.Tensor, rerank: bool | str = False) -> np.ndarray:
    """Cosine distance between L2-normalised embeddings, or the k-reciprocal re-ranked distance (`rerank`:
    True for the default variant, or a name from `reid.eval.rerank.VARIANTS`)."""
    if variant_name(rerank):
        return k_reciprocal_rerank(query, gallery, variant=variant_name(rerank)).numpy()
    return (1.0 - query @ gallery.T).numpy()


# ----------------------------------------------------------------------------- summaries
def _percent(cmc: np.ndarray, mAP: float, mINP: float) -> dict:
    return {"rank1": 100 * cmc[0], "rank5": 100 * cmc[4], "rank10": 100 * cmc[9], "rank20": 100 * cmc[19],
            "mAP": 100 * mAP, "mINP": 100 * mINP}


def summarize(rows: list[dict], key: str) -> dict:
    """Mean (top level) and population std (under "std") of every metric over the rows (trials or
    splits), the rows themselves under `key` ("per_trial" or "per_split")."""
    out = {m: float(np.mean([t[m] for t in rows])) for m in METRICS}
    out["std"] = {m: float(np.std([t[m] for t in rows])) for m in METRICS}
    out[key] = rows
    return out


METRIC_NAMES = {"rank1": "Rank-1", "rank5": "Rank-5", "rank10": "Rank-10", "rank20": "Rank-20", "mAP": "mAP",
                "mINP": "mINP"}


def metric_line(row: dict, std: dict | None = None) -> str:
    """`Rank-1: 47.50% | Rank-5: ... | mAP: ... | mINP: ...`, the line the AGW/DDAG test scripts print per
    trial; with `std`, each value as mean ± std."""
    return " | ".join(f"{METRIC_NAMES[m]}: {row[m]:.2f}" + (f" ± {std[m]:.2f}%" if std is not None else "%")
                      for m in METRICS)


def summary_text(result: dict) -> str:
    """What `python -m reid evaluate` prints: the label, the protocol card, the diagnostics (part shares, CSA
    gates: `reid.eval.diagnostics`), one metric line per SYSU-MM01 trial (RegDB split) and the all-average line
    (mean ± population std over them)."""
    rows = result.get("per_trial") or result.get("per_split") or []
    word = "trial" if "per_trial" in result else "split"
    lines = [result["label"], "protocol card:", *card_lines(result.get("protocol", {})),
             *diagnostics_lines(result.get("diagnostics"))]
    lines.append(f"per {word} (percent):")
    lines += [f"  {word} {row[word]:<3}      {metric_line(row)}" for row in rows]
    lines.append(f"  all average    {metric_line(result, result.get('std'))}")
    return "\n".join(lines)


def _label(data: dict, setting: str, count: int, word: str, rerank: bool | str, flip: bool = False,
           test_feature: str | None = "after_bn") -> str:
    extras = [*(["before-BN feature"] if test_feature == "before_bn" else []), *(["flip"] if flip else []),
              *([rerank_label(rerank)] if variant_name(rerank) else [])]
    return ", ".join([data["label"], setting, f"{count} {word}{'s' if count != 1 else ''}", *extras])


def _check_count(count: int, most: int, flag: str) -> None:
    if not 1 <= int(count) <= most:
        raise UserError(f"{flag} must be between 1 and {most}, got {count}")


# ----------------------------------------------------------------------------- SYSU-MM01
def evaluate_sysu(
    model: torch.nn.Module,
    root_or_dataset,
    mode: str = "all",
    shots: int = 1,
    trials: int = SYSU_TRIALS,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = False,
    rerank: bool | str = False,
    synthetic: bool | None = None,
) -> dict:
    """The SYSU-MM01 protocol: IR queries vs a redrawn RGB gallery per trial (trial seeds 0..trials-1)."""
    from reid.data.dataset import ImageCache
    from reid.data.sysu import IR_CAMERAS, RGB_CAMERAS, SYSUMM01

    _check_count(trials, SYSU_TRIALS, "--trials")
    dataset = root_or_dataset if isinstance(root_or_dataset, SYSUMM01) else SYSUMM01(root_or_dataset)
    data = describe_data(dataset.root, "sysu", synthetic)
    # Every camera of the protocol holds test ids: a missing one shrinks the gallery (or the query) silently
    camera_warnings = dataset.check_cameras(dataset.test_ids, (*RGB_CAMERAS[mode], *IR_CAMERAS),
                                            f"the {mode}-search protocol", data.get("kind") != "real")
    query = dataset.query(mode)
    galleries = [dataset.gallery(mode, trial, shots) for trial in range(trials)]
    if not query or not any(galleries):
        raise UserError(f"{dataset.root}: the SYSU-MM01 test set is empty (mode={mode}, shots={shots})")
    cache = ImageCache(*model.cfg.img_size)
    gates = GateRecorder()
    with gates.recording(model):  # the CSA gates of the query images (reid.eval.diagnostics); hooks that only read
        q_feat, q_pids, q_cams = extract_features(model, query, cache, batch_size=batch_size, device=device,
                                                  flip=flip, desc="query", modality=INFRARED)
    # Every trial's gallery is a subset of the test RGB images: embed their union once.
    union = list(dict.fromkeys(item for gallery in galleries for item in gallery))
    g_feat_all, _, _ = extract_features(model, union, cache, batch_size=batch_size, device=device, flip=flip,
                                        desc="gallery", modality=VISIBLE)
    row_of = {item: i for i, item in enumerate(union)}

    per_trial = []
    for trial, gallery in enumerate(galleries):
        rows = torch.tensor([row_of[item] for item in gallery])
        g_pids = np.array([pid for _, pid, _ in gallery])
        g_cams = np.array([cam for _, _, cam in gallery])
        cmc, mAP, mINP = eval_sysu(distances(q_feat, g_feat_all[rows], rerank), q_pids, g_pids, q_cams, g_cams)
        per_trial.append({"trial": trial, "num_query": len(query), "num_gallery": len(gallery),
                          **_percent(cmc, mAP, mINP)})

    counts = {"IR queries, all-search (test ids, cameras 3, 6)": len(query),
              "test identities (exp/test_id.txt)": len(dataset.test_ids)}
    if mode == "all" and shots == 1 and not dataset.uses_rand_perm_cam:
        counts["single-shot all-search gallery per trial"] = len(galleries[0])
    warnings = camera_warnings + published_count_warnings(data, counts)
    setting = f"{'all' if mode == 'all' else 'indoor'}-search, {'single' if shots == 1 else f'{shots}'}-shot"
    diagnostics = diagnostics_entry(
        [feature_part_shares(torch.cat([q_feat, g_feat_all]), model)],
        f"the {len(query)} query and {len(union)} gallery features, the union of the {trials} trials' galleries",
        gates, f"the {len(query)} IR query images{' and their mirror images' if flip else ''}")
    return {
        "label": _label(data, setting, trials, "trial", rerank, flip, model.cfg.test_feature),
        **summarize(per_trial, "per_trial"),
        "data": data,
        **({"warnings": warnings} if warnings else {}),
        "protocol": {"dataset": "sysu", "setting": setting, "mode": mode, "shots": shots, "trials": trials,
                     "test_feature": model.cfg.test_feature, "flip": flip, "rerank": card_value(rerank),
                     **card_fields("sysu", [model_fields(model)], dataset.root,
                                   sysu_sampler(shots, official=dataset.uses_rand_perm_cam))},
        "diagnostics": diagnostics,
    }


def published_count_warnings(data: dict, counts: dict) -> list[str]:
    """For data labelled real: a warning per count that differs from the published dataset's (the names are
    `reid.data.check`'s facts), each printed to stderr. A copy that lost its synthetic.json, or a subset,
    is then never reported as SYSU-MM01 / RegDB without a word; `python -m reid check-data` says more."""
    import sys

    from reid.data.check import FACTS

    if data.get("kind") != "real":
        return []
    facts = FACTS["sysu" if data.get("dataset") == "SYSU-MM01" else "regdb"]
    out = [f"{data['root']}: labelled real {data['dataset']}, but it has {found} {name.split(' (')[0]} where the "
           f"published dataset has {facts[name]}: a subset, or synthetic data without its synthetic.json? "
           f"(python -m reid check-data)" for name, found in counts.items() if found != facts[name]]
    for line in out:
        print(f"warning: {line}", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------- RegDB
def checkpoint_for_split(template: str | Path, split: int) -> str:
    """`runs/regdb/split_{split:02d}/best.pt` -> the path of one split (any str.format spec works)."""
    try:
        return str(template).format(split=split)
    except KeyError as err:
        hint = " (RegDB checkpoints are numbered by split: write {split}, e.g. split_{split:02d})" \
            if err.args and err.args[0] == "trial" else ""
        raise UserError(f"--checkpoint {template}: unknown field {{{err.args[0] if err.args else ''}}}; only "
                        f"{{split}} (with an optional format spec such as {{split:02d}}) may appear in braces"
                        f"{hint}") from None
    except (IndexError, ValueError) as err:
        raise UserError(f"--checkpoint {template}: only {{split}} (with an optional format spec such as "
                        f"{{split:02d}}) may appear in braces ({err})") from None


def is_split_template(path: str | Path) -> bool:
    return checkpoint_for_split(path, 1) != checkpoint_for_split(path, 2)


def _model_for_split(models, split: int):
    """`models`: one model, a list (index = split - 1), a callable split -> model, or a path with {split}."""
    if isinstance(models, torch.nn.Module):
        return models
    if isinstance(models, (str, Path)):
        return load_model(checkpoint_for_split(models, split))
    if callable(models):
        return models(split)
    return models[split - 1]


def evaluate_regdb(
    models,
    root: str | Path,
    splits: int = REGDB_SPLITS,
    direction: str = "v2t",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = False,
    rerank: bool | str = False,
    synthetic: bool | None = None,
) -> dict:
    """The RegDB protocol over splits 1..splits, in one direction (v2t: visible query, thermal gallery).

    `models` is one model for all splits (labelled `model_per_split: false`), or one per split:
    a list, a callable `split -> model`, or a checkpoint path containing `{split}`.
    """
    from reid.data.regdb import RegDB

    _check_count(splits, REGDB_SPLITS, "--splits")
    if isinstance(models, (list, tuple)) and len(models) < splits:
        raise UserError(f"{len(models)} models given for {splits} RegDB splits: need one per split")
    per_split_models = not isinstance(models, torch.nn.Module) and not (
        isinstance(models, (str, Path)) and not is_split_template(models))
    per_split, test_feature, fields, shares, gates = [], None, [], [], GateRecorder()
    for split in range(1, splits + 1):
        dataset = RegDB(root, split=split)
        model = _model_for_split(models, split)
        test_feature = model.cfg.test_feature
        fields.append(model_fields(model))
        query, gallery = dataset.query(direction), dataset.gallery(direction)
        q_mod, g_mod = (VISIBLE, INFRARED) if direction == "v2t" else (INFRARED, VISIBLE)
        with gates.recording(model):  # the CSA gates of the query images, pooled over the splits
            q_feat, q_pids, _ = extract_features(model, query, batch_size=batch_size, device=device, flip=flip,
                                                 desc=f"split {split} query", modality=q_mod)
        g_feat, g_pids, _ = extract_features(model, gallery, batch_size=batch_size, device=device, flip=flip,
                                             desc=f"split {split} gallery", modality=g_mod)
        shares.append(feature_part_shares(torch.cat([q_feat, g_feat]), model))
        cmc, mAP, mINP = eval_regdb(distances(q_feat, g_feat, rerank), q_pids, g_pids)
        per_split.append({"split": split, "num_query": len(query), "num_gallery": len(gallery),
                          **_percent(cmc, mAP, mINP)})

    data = describe_data(root, "regdb", synthetic)
    warnings = published_count_warnings(data, {"images per test split file": per_split[0]["num_query"]})
    setting = "visible to thermal" if direction == "v2t" else "thermal to visible"
    if not per_split_models:
        setting += ", one model for all splits"
    which = f"the {splits} splits" if splits > 1 else "split 1"
    diagnostics = diagnostics_entry(
        shares, f"the query and gallery features of {which}{', the mean over the splits' if splits > 1 else ''}",
        gates, f"the {'visible' if direction == 'v2t' else 'thermal'} query images of {which}"
               f"{' and their mirror images' if flip else ''}")
    return {
        "label": _label(data, setting, splits, "split", rerank, flip, test_feature),
        **summarize(per_split, "per_split"),
        "data": data,
        **({"warnings": warnings} if warnings else {}),
        "protocol": {"dataset": "regdb", "setting": setting, "direction": direction, "splits": splits,
                     "test_feature": test_feature, "flip": flip, "rerank": card_value(rerank),
                     "model_per_split": per_split_models, **card_fields("regdb", fields, root)},
        "diagnostics": diagnostics,
    }


# ----------------------------------------------------------------------------- held-out training ids
def evaluate_held_out(model: torch.nn.Module, query, gallery, cache, transform, batch_size: int,
                      device) -> dict:
    """mAP and Rank-1 (percent) of identities held out of the *training* set (IR queries against their
    visible images): the engine's model selection, which never looks at the test set."""
    if not query or not gallery:
        return {}
    was_training = model.training
    q, q_pids, _ = extract_features(model, query, cache, transform, batch_size, device, desc="val query",
                                    modality=INFRARED)
    g, g_pids, _ = extract_features(model, gallery, cache, transform, batch_size, device, desc="val gallery",
                                    modality=VISIBLE)
    model.train(was_training)
    cmc, mAP, _ = eval_regdb(distances(q, g), q_pids, g_pids)
    return {"val_mAP": 100.0 * float(mAP), "val_rank1": 100.0 * float(cmc[0])}


# ------------------------------------------------------------------- the lineage's selection on the test set
def evaluate_test_trial0(model: torch.nn.Module, dataset: str, root: str | Path, split: int, batch_size: int,
                         device, flip: bool = True, cache=None) -> dict:
    """Rank-1 and mAP (percent) on the *test* set as the lineage's training scripts measure them for their
    best-epoch selection (AGW `train.py`: every 2 epochs, SYSU-MM01 all-search with the trial-0 gallery,
    RegDB visible->thermal on the run's split; PMT and DEEN the same), here with flip averaging (CAJ's
    test). Only `train.test_every` calls it; the result it selects is labelled as such (protocol card)."""
    from reid.data.regdb import RegDB
    from reid.data.sysu import SYSUMM01

    was_training = model.training
    if dataset == "sysu":
        data = SYSUMM01(root)
        query, gallery, mods = data.query("all"), data.gallery("all", trial=0, shots=1), (INFRARED, VISIBLE)
    else:
        data = RegDB(root, split=split)
        query, gallery, mods = data.query("v2t"), data.gallery("v2t"), (VISIBLE, INFRARED)
    q, q_pids, q_cams = extract_features(model, query, cache, None, batch_size, device, flip, "test query", mods[0])
    g, g_pids, g_cams = extract_features(model, gallery, cache, None, batch_size, device, flip, "test gallery",
                                         mods[1])
    model.train(was_training)
    if dataset == "sysu":
        cmc, mAP, _ = eval_sysu(distances(q, g), q_pids, g_pids, q_cams, g_cams)
    else:
        cmc, mAP, _ = eval_regdb(distances(q, g), q_pids, g_pids)
    return {"test_rank1": 100.0 * float(cmc[0]), "test_mAP": 100.0 * float(mAP)}


# ----------------------------------------------------------------------------- `python -m reid evaluate`
def _checked_model(path: str | Path, test_feature: str | None):
    model = load_model(path)
    if test_feature is not None:
        model.cfg = dataclasses.replace(model.cfg, test_feature=test_feature)
    return model


def evaluate_checkpoint(checkpoint: str, dataset: str, root: str | Path, *, mode: str = "all", shots: int = 1,
                        trials: int = SYSU_TRIALS, splits: int = REGDB_SPLITS, direction: str = "v2t",
                        test_feature: str | None = None, batch_size: int = 64, device: str | None = None,
                        flip: bool = False, rerank: bool | str = False, synthetic: bool | None = None,
                        results_dir: str | Path = "results", name: str | None = None,
                        json_path: str | Path | None = None) -> dict:
    """Evaluate a checkpoint (RegDB: a `{split}` template, one checkpoint per split) with a protocol and
    record the result with its provenance: `<results_dir>/<name>.json` and a row of `results.csv`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data {root}: dataset root not found")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    try:
        variant = variant_name(rerank)
    except ValueError as err:
        raise UserError(f"--rerank: {err}") from None
    check_device(device)
    # Inputs first (the checkpoints load, or every split's exists), then every output location, then the work:
    # a result is never computed only to be lost.
    models, config = None, None
    if dataset == "regdb" and is_split_template(checkpoint):
        for split in range(1, splits + 1):
            if not Path(checkpoint_for_split(checkpoint, split)).is_file():
                raise UserError(f"checkpoint not found: {checkpoint_for_split(checkpoint, split)} "
                                f"(--checkpoint {checkpoint} with split {split})")
        models = lambda split: _checked_model(checkpoint_for_split(checkpoint, split), test_feature)
    else:
        models = _checked_model(checkpoint, test_feature)
        config = models.checkpoint_info["config"]
    name = name or "_".join([dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S"), dataset,
                             mode if dataset == "sysu" else direction,
                             *([] if variant is None else ["rerank" if variant == "released" else f"rerank-{variant}"])])
    check_result_location(results_dir, name, json_path)
    if json_path:
        from reid.records.provenance import check_output_file

        check_output_file(Path(json_path), "--json")
    describe_data(root, dataset, synthetic)  # `--synthetic no` on the synthetic set: refused before the work
    common = {"batch_size": batch_size, "device": device, "flip": flip, "rerank": rerank, "synthetic": synthetic}
    if dataset == "sysu":
        result = evaluate_sysu(models, root, mode=mode, shots=shots, trials=trials, **common)
    else:
        result = evaluate_regdb(models, root, splits=splits, direction=direction, **common)
    result = {**result, "checkpoint": str(checkpoint), "config": config, "provenance": provenance()}
    print(summary_text(result))
    path = write_result(result, results_dir, name)
    print(f"wrote {path} and a row of {Path(results_dir) / 'results.csv'}")
    if json_path:
        from reid.utils.atomic import write_text_atomically

        write_text_atomically(json_path, json.dumps(result, indent=2, default=str) + "\n",
                              f"--json (the result is in {path})")
    return result
