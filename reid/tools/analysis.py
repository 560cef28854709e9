"""Looking inside an embedding: a t-SNE map and distance histograms of a test set, `python -m reid analyse`.

    fig = embedding_map(features, pids, modalities)          # t-SNE of the L2-normalised features
    fig = distance_histograms(features, pids, modalities)    # same-id vs other-id distances per modality pair
    stats = distance_summary(features, pids, modalities)     # the numbers behind the histograms

`modalities` says "visible" or "infrared" per image (RegDB's thermal images are "infrared"). Distances are
cosine distances between L2-normalised features, the distance the test protocols rank by
(`reid.eval.evaluate.distances`).

Modality pairs: IR->RGB (every infrared image against every visible one: the SYSU-MM01 query's view),
RGB->RGB and IR->IR (pairs of two distinct images of one modality). For each: the mean same-identity
(intra) and other-identity (inter) distance, and the share of (intra, inter) distance pairs *of the same
anchor image* in which the intra one is smaller (ties count half): 0.5 is chance, 1 a perfect ranking.

t-SNE is quadratic in the number of points: the map shows at most `max_ids` identities (the first ones in
sorted order, default 40) and `max_per_id` images per identity and modality (default 20), so that it takes
seconds on a CPU. The histograms and numbers use every image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from reid.utils.atomic import atomic_outputs
from reid.utils.errors import UserError
from reid.viz import _legend_below, _save, use_style

MODALITIES = ("visible", "infrared")
# (key, title, anchor is infrared, other image is infrared)
PAIRS = (("ir_to_rgb", "IR→RGB", True, False), ("rgb_to_rgb", "RGB→RGB", False, False),
         ("ir_to_ir", "IR→IR", True, True))
MARKERS = {"visible": "o", "infrared": "^"}
# The t-SNE map's subset: seconds on a CPU, and few enough identities that each has a colour one can
# tell apart (tab10); more ids (--max-ids) get tab20, then hues that blur into each other.
MAX_IDS, MAX_PER_ID = 10, 20


def _inputs(features, pids, modalities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L2-normalised float features, pids, is_infrared), checked to have one entry per image."""
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    feats = np.asarray(features, dtype=np.float64)
    pids, modalities = np.asarray(pids), np.asarray(modalities)
    if feats.ndim != 2 or len(pids) != len(feats) or len(modalities) != len(feats):
        raise ValueError(f"expected features (N, D) with N pids and N modalities, got {feats.shape}, "
                         f"{len(pids)} pids, {len(modalities)} modalities")
    unknown = sorted(set(modalities.tolist()) - set(MODALITIES))
    if unknown:
        raise ValueError(f"modalities must be 'visible' or 'infrared', got {unknown[:3]}")
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return feats, pids, modalities == "infrared"


def tsne_subset(pids, modalities, max_ids: int = MAX_IDS, max_per_id: int = MAX_PER_ID) -> np.ndarray:
    """Indices of the images the t-SNE map shows: the first `max_ids` identities (sorted), at most
    `max_per_id` images of each in each modality (in the given order)."""
    pids, modalities = np.asarray(pids), np.asarray(modalities)
    keep = set(np.unique(pids)[:max_ids].tolist())
    taken: dict[tuple, int] = {}
    chosen = []
    for i, (pid, modality) in enumerate(zip(pids.tolist(), modalities.tolist())):
        if pid in keep and taken.get((pid, modality), 0) < max_per_id:
            taken[(pid, modality)] = taken.get((pid, modality), 0) + 1
            chosen.append(i)
    return np.array(chosen, dtype=np.int64)


def embedding_map(features, pids, modalities, max_ids: int = MAX_IDS, max_per_id: int = MAX_PER_ID, seed: int = 0,
                  out_png: str | Path | None = None, title: str | None = None):
    """t-SNE (sklearn, `random_state=seed`) of the L2-normalised features of a subset (`tsne_subset`):
    colour = identity, circle = visible, triangle = infrared. Returns the figure; writes `out_png` if given."""
    import seaborn as sns
    from matplotlib.lines import Line2D
    from sklearn.manifold import TSNE

    feats, pids, is_ir = _inputs(features, pids, modalities)
    subset = tsne_subset(pids, np.where(is_ir, "infrared", "visible"), max_ids, max_per_id)
    if len(subset) < 5:
        raise ValueError(f"t-SNE needs at least 5 images, the subset has {len(subset)}")
    # Perplexity must stay below the number of points; 30 (sklearn's default) for a full-size map.
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(subset) - 1) / 3), init="pca", learning_rate="auto",
                random_state=seed)
    xy = tsne.fit_transform(feats[subset])
    ids = np.unique(pids[subset])
    colours = "tab10" if len(ids) <= 10 else "tab20" if len(ids) <= 20 else "husl"
    palette = dict(zip(ids.tolist(), sns.color_palette(colours, len(ids))))
    use_style()
    fig, ax = plt.subplots(figsize=(7.0, 6.4))
    for modality, infrared in (("visible", False), ("infrared", True)):
        rows = is_ir[subset] == infrared
        ax.scatter(xy[rows, 0], xy[rows, 1], c=[palette[p] for p in pids[subset][rows].tolist()],
                   marker=MARKERS[modality], s=28, linewidths=0.3, edgecolors="black", alpha=0.85)
    ax.set(xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    total = len(np.unique(pids))
    ax.set_title(title or f"t-SNE of the test embeddings: {len(ids)} of {total} identities (colour), "
                          f"{len(subset)} images", fontsize=10)
    handles = [Line2D([], [], marker=MARKERS[m], linestyle="", color="grey", markeredgecolor="black")
               for m in MODALITIES]
    _legend_below(fig, handles, ["visible (RGB)", "infrared (IR / thermal)"])
    _save(fig, out_png)
    return fig


def _pair_distances(feats, pids, is_ir, anchor_ir: bool, other_ir: bool):
    """Cosine distances anchor x other images, and the masks of same-identity and other-identity pairs
    (an image is never paired with itself)."""
    anchors, others = np.flatnonzero(is_ir == anchor_ir), np.flatnonzero(is_ir == other_ir)
    dist = 1.0 - feats[anchors] @ feats[others].T
    same = pids[anchors][:, None] == pids[others][None, :]
    distinct = anchors[:, None] != others[None, :]
    return dist, same & distinct, ~same & distinct


def _intra_below_inter(dist, intra, inter) -> float:
    """Share of (intra, inter) distance pairs of one anchor with intra < inter, ties half, over all anchors."""
    wins = total = 0.0
    for row, pos_mask, neg_mask in zip(dist, intra, inter):
        pos, neg = row[pos_mask], np.sort(row[neg_mask])
        if len(pos) == 0 or len(neg) == 0:
            continue
        below, above = np.searchsorted(neg, pos, "left"), np.searchsorted(neg, pos, "right")
        wins += float((len(neg) - above).sum()) + 0.5 * float((above - below).sum())
        total += len(pos) * len(neg)
    return wins / total if total else float("nan")


def distance_summary(features, pids, modalities) -> dict:
    """Per modality pair (PAIRS): mean intra / inter distance, their numbers of pairs, and the share of
    same-anchor (intra, inter) pairs with intra < inter."""
    feats, pids, is_ir = _inputs(features, pids, modalities)
    out = {}
    for key, title, anchor_ir, other_ir in PAIRS:
        dist, intra, inter = _pair_distances(feats, pids, is_ir, anchor_ir, other_ir)
        out[key] = {"title": title, "intra_pairs": int(intra.sum()), "inter_pairs": int(inter.sum()),
                    "mean_intra": float(dist[intra].mean()) if intra.any() else float("nan"),
                    "mean_inter": float(dist[inter].mean()) if inter.any() else float("nan"),
                    "intra_below_inter": _intra_below_inter(dist, intra, inter)}
    return out


def distance_histograms(features, pids, modalities, bins: int = 50, out_png: str | Path | None = None,
                        title: str | None = None):
    """Histograms (densities) of same-identity vs other-identity cosine distances, one panel per modality
    pair (IR->RGB, RGB->RGB, IR->IR). Returns the figure; writes `out_png` if given."""
    feats, pids, is_ir = _inputs(features, pids, modalities)
    use_style()
    fig, axes = plt.subplots(1, len(PAIRS), figsize=(3.3 * len(PAIRS), 3.2))
    for ax, (_, name, anchor_ir, other_ir) in zip(axes, PAIRS):
        dist, intra, inter = _pair_distances(feats, pids, is_ir, anchor_ir, other_ir)
        paired = dist[intra | inter]
        # Both histograms of a panel on the same bins, over the distances that occur (a trained embedding
        # uses a small part of the cosine range 0..2).
        edges = np.linspace(paired.min(), paired.max() + 1e-9, bins + 1) if paired.size else bins
        for mask, label, color in ((intra, "same identity (intra)", "#1a9a3a"),
                                   (inter, "other identity (inter)", "#d62728")):
            if mask.any():
                ax.hist(dist[mask], bins=edges, density=True, alpha=0.55, color=color, label=label)
        if not (intra.any() or inter.any()):
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=name, xlabel="cosine distance", ylabel="density")
    handles, labels = axes[0].get_legend_handles_labels()
    if title:
        fig.suptitle(title)
    _legend_below(fig, handles, labels)
    _save(fig, out_png)
    return fig


# ------------------------------------------------------------------------------- `python -m reid analyse`

def analyse_checkpoint(checkpoint: str | Path, dataset: str, root: str | Path, out: str | Path, *,
                       mode: str = "all", split: int = 1, max_ids: int = MAX_IDS, test_feature: str | None = None,
                       flip: bool = False, batch_size: int = 64, device: str | None = None) -> dict:
    """Embed a test set with a checkpoint and write `embedding_map.png`, `distance_histograms.png` and
    `analysis.json` (the numbers, with provenance) into `out`; print the numbers. The test set: SYSU-MM01's
    queries (every IR test image) and the gallery of trial 0 (single-shot, `mode`); RegDB split `split`'s
    visible and thermal test images (a `{split}` checkpoint template is filled with `split`)."""
    from reid.data import SYSUMM01, RegDB
    from reid.data.identity import describe_data
    from reid.eval.evaluate import checkpoint_for_split, extract_features, load_model
    from reid.records.provenance import provenance
    from reid.utils.device import check_device

    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise UserError(f"--data {root}: dataset root not found")
    if max_ids < 1 or batch_size < 1:
        raise UserError(f"--max-ids and --batch-size must be >= 1, got {max_ids} and {batch_size}")
    check_device(device)
    from reid.records.provenance import check_output_file, check_writable_folder

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    check_writable_folder(out, "--out")  # before the embedding and t-SNE, not after them
    outputs = [out / "embedding_map.png", out / "distance_histograms.png", out / "analysis.json"]
    for path in outputs:
        check_output_file(path, "--out")
    if dataset == "sysu":
        data = SYSUMM01(root)
        items = data.query(mode) + data.gallery(mode, trial=0, shots=1)
        what = f"{mode}-search queries + the trial-0 single-shot gallery"
    elif dataset == "regdb":
        data = RegDB(root, split=split)
        items = data.query("v2t") + data.gallery("v2t")
        what = f"split {split}'s visible and thermal test images"
        checkpoint = checkpoint_for_split(checkpoint, split)
    else:
        raise UserError(f"--dataset {dataset!r}: expected sysu or regdb")
    model = load_model(checkpoint)
    if test_feature is not None:
        model.cfg = dataclasses.replace(model.cfg, test_feature=test_feature)

    feats, pids, camids = extract_features(model, items, batch_size=batch_size, device=device, flip=flip)
    modalities = np.where(np.isin(camids, sorted(data.ir_cameras)), "infrared", "visible")
    data_entry = describe_data(root, dataset)
    label = data_entry["label"]
    subset = tsne_subset(pids, modalities, max_ids)
    num_ids = len(np.unique(pids))
    stats = distance_summary(feats, pids, modalities)
    record = {"checkpoint": str(checkpoint), "data": data_entry, "images": what,
              "num_images": len(items), "num_ids": num_ids, "test_feature": model.cfg.test_feature, "flip": flip,
              "tsne": {"ids": min(max_ids, num_ids), "images": len(subset), "max_per_id": MAX_PER_ID},
              "distances": stats, "provenance": provenance()}
    # The three files are written beside their names and renamed together at the end: a failure (a full
    # disk) leaves the previous analysis whole, never a mix of old, new and truncated files.
    with atomic_outputs(outputs, "--out") as (map_tmp, hist_tmp, json_tmp):
        plt.close(embedding_map(feats, pids, modalities, max_ids=max_ids, out_png=map_tmp,
                                title=f"{label}: t-SNE of {min(max_ids, num_ids)} of {num_ids} test identities"))
        plt.close(distance_histograms(feats, pids, modalities, out_png=hist_tmp,
                                      title=f"{label}: cosine distances ({model.cfg.test_feature} feature)"))
        json_tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")

    print(f"{label}, {what}: {int((modalities == 'infrared').sum())} infrared and "
          f"{int((modalities == 'visible').sum())} visible images of {num_ids} identities")
    print(f"t-SNE map: {min(max_ids, num_ids)} of {num_ids} identities, at most {MAX_PER_ID} images per identity "
          f"and modality ({len(subset)} images)")
    print(f"cosine distances ({model.cfg.test_feature} feature)   mean intra   mean inter   intra < inter")
    for row in stats.values():
        print(f"  {row['title']:<34} {row['mean_intra']:>10.3f}   {row['mean_inter']:>10.3f}   "
              f"{100 * row['intra_below_inter']:>11.1f} %")
    print(f"wrote {out / 'embedding_map.png'}, {out / 'distance_histograms.png'} and {out / 'analysis.json'}")
    return record


# ------------------------------------------------------------------------------------ the triplet hinge
HINGE_LOSSES = (("Eq. 14 (batch-hard)", False), ("Eq. 15 (adaptive)", True))


def hinge_activity(model, data, margins=(0.1, 0.3, 1.0), batches: int = 4, seed: int = 0) -> list[dict]:
    """How often the triplet hinges [gap + alpha]_+ of Eq. 14 and Eq. 15 are active on training batches:
    per loss, the anchors counted, their mean gap (`reid.losses.triplet_gaps`) and, per margin alpha, the
    share of anchors with gap + alpha > 0.

    `data` is a `reid.data.TrainData`; its first `batches` batches of epoch 0 (loader seed `seed`) go through
    a copy of `model` in training mode with no gradient, so the features f are those the losses saw in
    training (BN on batch statistics) and the model's own buffers are left as they were. Where the share is
    1 at two margins, a training run with either margin takes the same steps (the gradient of the mean
    hinge does not depend on alpha while every hinge is active)."""
    import copy

    import torch

    from reid.losses import triplet_gaps
    from reid.utils.rng import get_rng_state, seed_everything, set_rng_state

    net = copy.deepcopy(model).train()
    gaps = {name: [] for name, _ in HINGE_LOSSES}
    caller_rng = get_rng_state()
    seed_everything(seed)  # the augmentations and drop-path draw from it: the same batches every call
    try:
        with torch.no_grad():
            for _, batch in zip(range(batches), data.loader(epoch=0, seed=seed)):
                modality = batch.get("modality")
                out = net(batch["img"]) if modality is None else net(batch["img"], modality)
                for name, adaptive in HINGE_LOSSES:
                    gap, valid = triplet_gaps(out["features"].float(), batch["pid"], adaptive)
                    gaps[name].append(gap[valid])
    finally:
        set_rng_state(caller_rng)  # the caller's random streams go on as if nothing was drawn
    rows = []
    for name, parts in gaps.items():
        gap = torch.cat(parts)
        rows.append({"loss": name, "anchors": len(gap), "mean gap": float(gap.mean()),
                     **{f"active at α={m:g}": float((gap + m > 0).double().mean()) for m in margins}})
    return rows
