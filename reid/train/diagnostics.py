"""Training diagnostics: how much each part of the pooled feature contributes to the metric space.

The feature the losses see is a concatenation of parts, `[GAP(CSA(fine)), CLS_fine, GAP(CSA(coarse)),
CLS_coarse]` for the default `gap+cls` pooling (`ReIDModel.part_dims` gives their sizes). A triplet
loss on the concatenation only sees the parts with large distances: a part whose share of the pair
distances is tiny contributes nothing to retrieval ("collapsed").

    shares = part_shares(out["features"], model.part_dims)   # one dict per part
    for message in collapse_warnings(shares): print(message)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def part_shares(features: torch.Tensor, part_dims: Sequence[int], num_pairs: int = 4096,
                generator: torch.Generator | None = None) -> list[dict]:
    """Per part: `variance` (summed over its dimensions), `norm` (mean L2 norm of the part) and
    `share`, its share of the squared Euclidean distance between random pairs of different rows.

    features: (N, D) with D = sum(part_dims), N >= 2. The shares sum to 1 (all zero if every row is
    the same). Pairs are drawn with `generator` (a fixed seed by default, so the numbers are
    reproducible and the global RNG is untouched).
    """
    if features.ndim != 2 or features.shape[1] != sum(part_dims):
        raise ValueError(f"features of shape {tuple(features.shape)} do not split into parts {list(part_dims)}")
    n = features.shape[0]
    if n < 2:
        raise ValueError("part_shares needs at least two feature rows")
    feats = features.detach().float()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    first = torch.randint(n, (num_pairs,), generator=gen)
    second = (first + torch.randint(1, n, (num_pairs,), generator=gen)) % n  # never the same row
    diff2 = (feats[first] - feats[second]).pow(2)
    parts = torch.split(torch.arange(feats.shape[1]), list(part_dims))
    sq = torch.stack([diff2[:, idx].sum(1).mean() for idx in parts])
    total = float(sq.sum())
    out = []
    for idx, part_sq in zip(parts, sq):
        part = feats[:, idx]
        out.append({
            "dim": len(idx),
            "variance": float(part.var(dim=0, unbiased=False).sum()),
            "norm": float(part.norm(dim=1).mean()),
            "share": float(part_sq) / total if total > 0 else 0.0,
        })
    return out


def collapse_warnings(shares: list[dict], names: Sequence[str] | None = None,
                      min_share: float = 0.05) -> list[str]:
    """Messages for the parts whose share of the pair distances is below `min_share` (default 5 %;
    an even split of the default four parts would give 25 % each)."""
    names = list(names) if names is not None else [f"part {i}" for i in range(len(shares))]
    return [f"{name}: {100 * s['share']:.1f} % of the squared pair distance (variance {s['variance']:.3g}) "
            f"-- it hardly contributes to the metric space" for name, s in zip(names, shares)
            if s["share"] < min_share]


# The fix to try when a part's share is off (docs/deviations.md, "Metric geometry"): the triplet acts on the
# raw concatenation with margin alpha = 1 (Eq. 14-15), so whichever part has the largest scale decides the
# distances. ImageNet CLS tokens are larger than pooled maps on real data and may dominate; on CPU-sized
# runs from scratch the CLS parts collapse instead.
GEOMETRY_FIX = ("try model.part_norm=bn (each part batch-normalised before the concatenation, so every part "
                "counts at its own scale) or model.pooling=gap (no CLS parts)")


def geometry_warnings(shares: list[dict], names: Sequence[str] | None = None, min_share: float = 0.05,
                      max_share: float = 0.80) -> list[str]:
    """Messages for parts whose share of the pair distances is below `min_share` (it hardly contributes)
    or above `max_share` (it decides the distances alone), each with the fix to try. Nothing for a single
    part, which is the whole feature."""
    if len(shares) < 2:
        return []
    names = list(names) if names is not None else [f"part {i}" for i in range(len(shares))]
    messages = []
    for name, s in zip(names, shares):
        if s["share"] < min_share:
            what = "it hardly contributes to the metric space"
        elif s["share"] > max_share:
            what = "it dominates the distances the triplet loss sees; the other parts hardly count"
        else:
            continue
        messages.append(f"{name}: {100 * s['share']:.1f} % of the squared pair distance (variance "
                        f"{s['variance']:.3g}) -- {what}; {GEOMETRY_FIX}")
    return messages


def part_names(num_parts: int) -> list[str]:
    """Readable names of the parts for the default layouts (2 branches x gap+cls, or one per branch)."""
    if num_parts == 4:
        return ["gap_fine", "cls_fine", "gap_coarse", "cls_coarse"]
    if num_parts == 2:
        return ["fine", "coarse"]
    return [f"part{i}" for i in range(num_parts)]


def format_shares(shares: list[dict], names: Sequence[str] | None = None) -> str:
    names = list(names) if names is not None else part_names(len(shares))
    return " ".join(f"{n}={100 * s['share']:.1f}%" for n, s in zip(names, shares))


__all__ = ["collapse_warnings", "format_shares", "geometry_warnings", "part_names", "part_shares"]
