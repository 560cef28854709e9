"""Part shares of a feature: how much each part of the pooled feature contributes to the metric space.

The math `reid.train.diagnostics` logs during training (`part_shares.csv` and its warnings), on the floor
evaluation may import, so that an evaluation can measure the same shares on its test features.
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


__all__ = ["format_shares", "part_names", "part_shares"]
