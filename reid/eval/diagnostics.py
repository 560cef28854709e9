"""What an evaluation measures besides its metrics: the part shares of the test features and the CSA gates.

Every result of `reid.eval.evaluate` carries a `"diagnostics"` entry beside its protocol card (not a card field:
`reid.records.card` says why), and `python -m reid evaluate` prints it under the card:

    part_shares       each part of the evaluated embedding (`ReIDModel.part_dims`, e.g. gap_fine, cls_fine,
                      gap_coarse, cls_coarse): its share of the squared distance between random pairs of test
                      features (the shares sum to 1) and its variance; "n/a" for a single-part feature
    part_shares_of    which features: SYSU-MM01 the queries and the union of the trials' galleries, RegDB
                      each split's query and gallery (the mean over the splits, each split its own model)
    csa_gates         per branch (fine, coarse), while the query features are extracted (with flip, the mirror
                      images too): the channel gate A_c of Eq. 10 (mean, sd over images x channels), the spatial
                      gate A_s of Eq. 12 (mean, sd over images x positions; the literal "paper" reading's gate is
                      per channel, so over images x channels) and its top-quarter share (below); "n/a: no CSA"
    csa_gates_of      which images went through the gates

The part shares are those of the features the distances are computed on (after or before the BN neck per
`test_feature`, L2-normalised, flip-averaged with flip): a part with a tiny share takes no part in the
ranking. Training logs the same numbers on the features its losses see (`part_shares.csv`, the warnings of
`reid.train.diagnostics`); the math lives here, on the floor evaluation may import.

The *top-quarter share* of a spatial gate is the share of its sum carried by its highest quarter of positions
(the Lorenz curve of the gate at 25 %, interpolated when the number of positions is not a multiple of 4),
averaged over images: 0.25 is a flat gate that weighs every position alike, 1 a gate whose whole mass sits on
a quarter of the positions or fewer. The gates are sigmoids, so every gate statistic lies in [0, 1].

    with GateRecorder().recording(model) as gates:   # forward hooks, removed on leaving the block
        features, _, _ = extract_features(model, query)
    gates.summary(), feature_part_shares(features, model)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from reid.models.csa import CSA

NO_CSA = "n/a: no CSA"
SINGLE_PART = "n/a: a single-part feature"
TOP_QUARTER_MEANING = ("the spatial gate's share of its sum on its highest quarter of positions; 0.25 = flat, "
                       "1 = all on a quarter")


# ------------------------------------------------------------------------------------------ part shares
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


def part_names(num_parts: int, branches: int = 2) -> list[str]:
    """Readable names of the parts for the default layouts: 2 branches x gap+cls, or one part per branch;
    with `branches=1` (the ViT baseline) gap+cls is "gap", "cls"."""
    if branches == 2 and num_parts == 4:
        return ["gap_fine", "cls_fine", "gap_coarse", "cls_coarse"]
    if branches == 2 and num_parts == 2:
        return ["fine", "coarse"]
    if branches == 1 and num_parts == 2:
        return ["gap", "cls"]
    return [f"part{i}" for i in range(num_parts)]


def format_shares(shares: list[dict], names: Sequence[str] | None = None) -> str:
    names = list(names) if names is not None else part_names(len(shares))
    return " ".join(f"{n}={100 * s['share']:.1f}%" for n, s in zip(names, shares))


def branch_names(num_branches: int) -> list[str]:
    """CrossViT's branch 0 has the small patches (fine), branch 1 the large ones (coarse)."""
    return ["fine", "coarse"] if num_branches == 2 else [f"branch{i}" for i in range(num_branches)]


def feature_part_shares(features: torch.Tensor, model) -> dict | str:
    """The `part_shares` entry of an evaluation: {part name: {"share", "variance"}} of `features` (the test
    features, (N, D)), or why there is none."""
    dims = list(getattr(model, "part_dims", None) or [])
    if len(dims) < 2:
        return SINGLE_PART if dims else "n/a: the model does not name the parts of its feature"
    names = part_names(len(dims), len(getattr(model, "csa", [])))
    return {name: {"share": s["share"], "variance": s["variance"]}
            for name, s in zip(names, part_shares(features, dims))}


def mean_part_shares(entries: Sequence[dict | str]) -> dict | str:
    """The mean, part by part, of `feature_part_shares` entries of several feature sets (RegDB: one per split
    and model): the means of shares that each sum to 1 sum to 1. An "n/a" entry among them is the answer."""
    for entry in entries:
        if isinstance(entry, str):
            return entry
    return {name: {key: sum(e[name][key] for e in entries) / len(entries) for key in ("share", "variance")}
            for name in entries[0]}


# ------------------------------------------------------------------------------------------ CSA gates
def top_quarter_share(gate: torch.Tensor) -> torch.Tensor:
    """Per image of a spatial gate (B, 1, H, W): the share of the gate's sum on its highest H*W/4 positions,
    the fraction of a position counted where H*W/4 is not whole (so a flat gate gives exactly 0.25)."""
    values = gate.detach().double().flatten(1).sort(dim=1, descending=True).values
    quarter = values.shape[1] / 4
    whole = math.floor(quarter)
    top = values[:, :whole].sum(dim=1)
    if whole < values.shape[1]:
        top = top + (quarter - whole) * values[:, whole]
    return top / values.sum(dim=1).clamp_min(torch.finfo(torch.float64).tiny)


class _Running:
    """Count, sum and sum of squares of gate values (float64): mean and population sd over every value seen."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: torch.Tensor) -> None:
        values = values.detach().double()
        self.count += values.numel()
        self.total += float(values.sum())
        self.squares += float(values.pow(2).sum())

    def mean_sd(self) -> tuple[float, float]:
        mean = self.total / self.count
        return mean, math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


class GateRecorder:
    """Statistics of each branch's CSA gates over every image a hooked model embeds (`recording`). One
    recorder may record several models in turn (RegDB: a model per split): the statistics pool their images."""

    def __init__(self) -> None:
        self.channel: dict[str, _Running] = {}
        self.spatial: dict[str, _Running] = {}
        self.top_quarter: dict[str, _Running] = {}
        self.literal: dict[str, bool] = {}  # the literal Eq. 12 reading: a per-channel gate, no positions
        self.found_csa = False

    def add(self, branch: str, kind: str, gate: torch.Tensor, positions: bool = True) -> None:
        """One batch of a gate: `kind` "channel" (A_c of Eq. 10, (B, C, 1, 1)) or "spatial" (A_s of Eq. 12,
        (B, 1, H, W); with `positions=False` the literal reading's (B, C, 1, 1), which weighs no positions)."""
        if kind == "channel":
            self.channel.setdefault(branch, _Running()).add(gate)
            return
        self.spatial.setdefault(branch, _Running()).add(gate)
        self.literal[branch] = not positions
        if positions:
            self.top_quarter.setdefault(branch, _Running()).add(top_quarter_share(gate))

    @contextmanager
    def recording(self, model: torch.nn.Module) -> Iterator[GateRecorder]:
        """Forward hooks on each branch's ChannelAttention and SpatialAttention (`model.csa`), removed on
        leaving the block. The hooks read the gates (their modules' outputs) and return None, so the model's
        outputs are unchanged."""
        handles = []
        modules = list(getattr(model, "csa", None) or [])
        try:
            for name, csa in zip(branch_names(len(modules)), modules):
                if not isinstance(csa, CSA):
                    continue  # nn.Identity: CSA off
                self.found_csa = True
                handles.append(csa.channel.register_forward_hook(
                    lambda _module, _args, gate, name=name: self.add(name, "channel", gate)))
                handles.append(csa.spatial.register_forward_hook(
                    lambda module, _args, gate, name=name: self.add(name, "spatial", gate,
                                                                   positions=module.mode == "standard")))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def summary(self) -> dict | str:
        """{branch: {"channel_mean", "channel_sd", "spatial_mean", "spatial_sd", "spatial_top_quarter"}}, or
        NO_CSA. The literal spatial gate's statistics are over images x channels and it has no top quarter."""
        if not self.found_csa:
            return NO_CSA
        out = {}
        for branch, channel in self.channel.items():
            spatial = self.spatial[branch]
            out[branch] = {**dict(zip(("channel_mean", "channel_sd"), channel.mean_sd())),
                           **dict(zip(("spatial_mean", "spatial_sd"), spatial.mean_sd())),
                           "spatial_top_quarter": ("n/a: the literal Eq. 12 gate is per channel"
                                                   if self.literal[branch] else self.top_quarter[branch].mean_sd()[0])}
        return out


# ------------------------------------------------------------------------------------------ the entry
def diagnostics_entry(shares: Sequence[dict | str], shares_of: str, gates: GateRecorder, gates_of: str) -> dict:
    """A result's `"diagnostics"`: the part shares (the mean over `shares`, one `feature_part_shares` entry per
    feature set) and the gate statistics, each with what it was measured on."""
    return {"part_shares": mean_part_shares(shares), "part_shares_of": shares_of, "csa_gates": gates.summary(),
            "csa_gates_of": gates_of}


def diagnostics_lines(diagnostics: dict | None, indent: str = "  ") -> list[str]:
    """The diagnostics of one result, a line per part and per branch (what `python -m reid evaluate` prints
    under the card)."""
    if not diagnostics:
        return ["diagnostics: not recorded (a result from before them)"]
    lines = ["diagnostics (measured, not card fields):"]
    shares, gates = diagnostics.get("part_shares"), diagnostics.get("csa_gates")
    if isinstance(shares, str):
        lines.append(f"{indent}part shares: {shares}")
    else:
        lines.append(f"{indent}part shares of the squared pair distance, on {diagnostics.get('part_shares_of')}:")
        width = max(len(name) for name in shares)
        lines += [f"{indent * 2}{name:<{width}}  {100 * s['share']:5.1f} %  variance {s['variance']:.3g}"
                  for name, s in shares.items()]
    if isinstance(gates, str):
        return [*lines, f"{indent}CSA gates: {gates}"]
    lines.append(f"{indent}CSA gates, mean ± sd (sigmoids, 0..1), on {diagnostics.get('csa_gates_of')}:")
    width = max(len(branch) for branch in gates)
    for branch, g in gates.items():
        top = g["spatial_top_quarter"]
        lines.append(f"{indent * 2}{branch:<{width}}  channel {g['channel_mean']:.3f} ± {g['channel_sd']:.3f}"
                     f" | spatial {g['spatial_mean']:.3f} ± {g['spatial_sd']:.3f}"
                     f" | top quarter {top if isinstance(top, str) else f'{top:.3f}'}")
    return [*lines, f"{indent * 2}(top quarter: {TOP_QUARTER_MEANING})"]


__all__ = ["NO_CSA", "SINGLE_PART", "GateRecorder", "branch_names", "diagnostics_entry", "diagnostics_lines",
           "feature_part_shares", "format_shares", "mean_part_shares", "part_names", "part_shares",
           "top_quarter_share"]
