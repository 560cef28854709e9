"""The protocol card: under which protocol, with which model and on which data a result was measured.

Every result's `"protocol"` entry holds the card (`reid.eval.evaluate` fills it), `results.csv` has a column per
field, `python -m reid compare` sets cards side by side, and `python -m reid evaluate` prints it:

    dataset, mode, shots, trials      SYSU-MM01: search mode, gallery images per (id, RGB camera), gallery draws
    gallery_sampler                   how each SYSU-MM01 trial's gallery is drawn (below)
    splits, direction, model_per_split   RegDB: splits 1..N, v2t | t2v, one model per split or one for all
    test_feature, flip, rerank        embedding before / after the BN neck, flip averaging, k-reciprocal re-ranking
    model_selection                   which checkpoint of the run: the last epoch (data.val_fraction 0), the
                                      best validation mAP on training identities held out of training, or
                                      (train.test_every, best_on_test.pt) the lineage's: the best test Rank-1
                                      every N epochs, with flip, on the SYSU-MM01 trial-0 gallery or the RegDB
                                      split visible to thermal (LINEAGE_SELECTION)
    train_ids                         training identities trained on: all, or the share left by the hold-out
    pretrained, preset                model.pretrained (the ImageNet weights the run started from), model.preset
                                      (AGW's: "agw 50" = its ResNet-50, "agw micro")
    config, seed, epoch               the run's config name, training seed, and the checkpoint's epoch
    steps                             optimisation steps the checkpoint was trained for (the budget: a
                                      comparison of configs holds only at a budget where the ranking settled)
    fingerprint                       `reid.data.identity.dataset_fingerprint` of the data root

A field that does not apply to the dataset is "n/a". A field the result cannot know is "unknown", never a
guess: e.g. a model built in memory has no training config, a result from before the card has no card.

Not on the card: the result's `"diagnostics"` entry beside `"protocol"` (`reid.eval.diagnostics`; `evaluate` prints
it under the card): each feature part's share of the test features' pair distances and the statistics of each
branch's CSA gates (Eq. 10, 12) on the query images. They are measurements of the model, like its metrics, not
settings of the protocol or the model: two results whose diagnostics differ are still comparable, so `compare`
does not read them; and `results.csv` keeps its fixed columns (a column more would need a migration of every
committed table), so they live in the result's JSON only.

SYSU-MM01 gallery sampler: the published AGW code's seeded draw (`process_gallery_sysu` with
`random.seed(trial)`): for each test identity (sorted) and RGB camera of the search mode, one
`random.choice` over the sorted file names, Python's `random` seeded with the trial number 0..N-1
(`reid.data.sysu.SYSUMM01.gallery`). The official `exp/rand_perm_cam.mat` is not used unless a SYSUMM01
is built with it, and the card then says so. Multi-shot draws `random.sample(files, shots)` from the same
stream (AGW's code has no multi-shot). RegDB has no draw: the gallery is the split's whole test set of the
other modality.
"""

from __future__ import annotations

from pathlib import Path

UNKNOWN, NOT_APPLICABLE = "unknown", "n/a"
SYSU_SAMPLER = "AGW seeded draw (random.seed(trial))"
SYSU_SAMPLER_MULTI = "AGW-style seeded draw, {shots} per id and camera"
OFFICIAL_SAMPLER = "official exp/rand_perm_cam.mat"
REGDB_SAMPLER = "n/a (RegDB: the whole test split)"
# The lineage's model selection (AGW, PMT, DEEN: the epoch of the best Rank-1 on the test set). A protocol field:
# `compare` calls results selected this way and by the last epoch NOT comparable.
LINEAGE_SELECTION = "lineage: best test Rank-1 of every {every} epochs ({tested}, flip)"
LINEAGE_TESTED = {"sysu": "trial-0 gallery", "regdb": "visible to thermal"}  # reid.eval.evaluate_test_trial0

# (key, what the compare table calls it). Protocol fields: a difference makes two results incomparable.
PROTOCOL_FIELDS = [
    ("dataset", "dataset"), ("mode", "SYSU search mode"), ("shots", "SYSU shots"), ("trials", "SYSU trials"),
    ("gallery_sampler", "gallery sampler"), ("splits", "RegDB splits"), ("direction", "RegDB direction"),
    ("model_per_split", "RegDB model per split"), ("test_feature", "test feature"), ("flip", "flip"),
    ("rerank", "re-ranking"), ("model_selection", "model selection"), ("train_ids", "training ids used"),
    ("fingerprint", "dataset fingerprint"),
]
# Model fields: a difference is what a comparison of two models is about, not a different protocol.
MODEL_FIELDS = [("pretrained", "pretrained"), ("preset", "preset"), ("config", "config"), ("seed", "seed"),
                ("epoch", "checkpoint epoch"), ("steps", "training steps")]


# Fields of one dataset's protocol only: "n/a" on the other's results.
SYSU_ONLY, REGDB_ONLY = ("mode", "shots", "trials"), ("splits", "direction", "model_per_split")


def sysu_sampler(shots: int, official: bool = False) -> str:
    if official:
        return OFFICIAL_SAMPLER
    return SYSU_SAMPLER if shots == 1 else SYSU_SAMPLER_MULTI.format(shots=shots)


def _pretrained(value) -> str:
    """model.pretrained as the card says it: where the backbone's starting weights came from."""
    if value is None:
        return "unset (random init)"
    if value == "none":
        return "none (random init)"
    if value == "timm":
        return "timm (ImageNet, timm's download)"
    if value == "torchvision":
        return "torchvision (ImageNet IMAGENET1K_V1, torchvision's download)"
    return f"file {value}"


def model_fields(model) -> dict:
    """The card's model fields of one evaluated model, from its `cfg` (the checkpoint's model_config) and
    `checkpoint_info` (the run's config, epoch and best epoch; `reid.eval.evaluate.load_model` sets it)."""
    cfg = getattr(model, "cfg", None)
    info = getattr(model, "checkpoint_info", None) or {}
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    out = {"pretrained": _pretrained(cfg.pretrained) if cfg is not None else UNKNOWN,
           "preset": (f"agw {cfg.preset}" if cfg.backbone == "agw" else str(cfg.preset)) if cfg is not None else UNKNOWN,
           "config": str(config.get("name", UNKNOWN)), "seed": train.get("seed", UNKNOWN)}
    if info.get("untrained"):  # reid.eval.evaluate.load_untrained: an initialised network, never trained
        return {**out, "pretrained": "none (untrained network)", "model_selection": "n/a (untrained network)",
                "train_ids": "n/a (untrained network)", "epoch": 0, "steps": 0}
    history = info.get("history")
    counted = [row.get("steps") for row in history] if isinstance(history, list) and history else [None]
    out["steps"] = sum(counted) if all(isinstance(n, int) for n in counted) else UNKNOWN  # older runs: unknown
    epoch, epochs, best = info.get("epoch"), train.get("epochs"), info.get("best")
    out["epoch"] = UNKNOWN if epoch is None else f"{epoch} of {epochs}" if epochs is not None else epoch
    val = data.get("val_fraction")
    if val is None:
        out["model_selection"], out["train_ids"] = UNKNOWN, UNKNOWN
    elif val == 0:
        out["train_ids"] = "all"
        finished = epoch is None or epochs is None or epoch >= epochs
        out["model_selection"] = "last epoch" if finished else f"epoch {epoch} of {epochs} (unfinished run)"
    else:
        out["train_ids"] = f"{1 - val:.0%} ({val:.0%} held out for validation)"
        best_epoch = best.get("epoch") if isinstance(best, dict) else None
        if best_epoch is None or epoch is None:
            out["model_selection"] = UNKNOWN
        elif best_epoch == epoch:
            out["model_selection"] = "best validation mAP on held-out training ids"
        else:
            out["model_selection"] = f"epoch {epoch}, not the best validation one (epoch {best_epoch})"
    selection = info.get("selection")
    if isinstance(selection, dict):  # best_on_test.pt (reid.train.engine._lineage_epoch)
        tested = LINEAGE_TESTED.get(data.get("dataset"), UNKNOWN)
        out["model_selection"] = LINEAGE_SELECTION.format(every=selection.get("every", UNKNOWN), tested=tested)
    return out


def merge_fields(per_model: list[dict]) -> dict:
    """One card for several models (RegDB: one per split): a field they share, or "mixed: a; b"."""
    out = {}
    for key in dict.fromkeys(k for fields in per_model for k in fields):
        values = list(dict.fromkeys(fields.get(key, UNKNOWN) for fields in per_model))
        out[key] = values[0] if len(values) == 1 else "mixed: " + "; ".join(str(v) for v in values)
    return out


def card_fields(dataset: str, per_model: list[dict], root: str | Path, sampler: str | None = None) -> dict:
    """The card's fields beyond the protocol entry's own (dataset, setting, mode/direction, shots, trials /
    splits, test_feature, flip, rerank): the other dataset's fields as "n/a", the sampler, the models'
    fields and the data's fingerprint."""
    from reid.data.identity import dataset_fingerprint

    other = dict.fromkeys(REGDB_ONLY if dataset == "sysu" else SYSU_ONLY, NOT_APPLICABLE)
    return {**other, "gallery_sampler": sampler or REGDB_SAMPLER, **merge_fields(per_model),
            "fingerprint": dataset_fingerprint(root)}


def show(value) -> str:
    """A card value as the tables print it: yes / no for flags, "unknown" for a missing field."""
    if value is None or value == "":
        return UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def card_lines(protocol: dict, indent: str = "  ") -> list[str]:
    """The card of one result, a field per line (what `python -m reid evaluate` prints)."""
    fields = PROTOCOL_FIELDS + MODEL_FIELDS
    width = max(len(title) for _, title in fields)
    return [f"{indent}{title:<{width}}  {show(protocol.get(key))}" for key, title in fields
            if show(protocol.get(key)) != NOT_APPLICABLE]
