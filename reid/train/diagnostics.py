"""Training diagnostics: how much each part of the pooled feature contributes to the metric space.

The feature the losses see is a concatenation of parts, `[GAP(CSA(fine)), CLS_fine, GAP(CSA(coarse)),
CLS_coarse]` for the default `gap+cls` pooling (`ReIDModel.part_dims` gives their sizes). A triplet
loss on the concatenation only sees the parts with large distances: a part whose share of the pair
distances is tiny contributes nothing to retrieval ("collapsed").

    shares = part_shares(out["features"], model.part_dims)   # one dict per part
    for message in collapse_warnings(shares): print(message)

The part-share math (`part_shares`, `part_names`, `format_shares`) lives in `reid.eval.diagnostics`, where an
evaluation measures the same shares on its test features; it is imported here under the same names. This
module keeps what is training advice: the warnings and the fix to try.
"""

from __future__ import annotations

from collections.abc import Sequence

from reid.eval.diagnostics import format_shares, part_names, part_shares


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


__all__ = ["collapse_warnings", "format_shares", "geometry_warnings", "part_names", "part_shares"]
