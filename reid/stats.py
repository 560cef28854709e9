"""Seed statistics of a sweep: means with their spread, and differences paired by seed.

    paired_difference([31.2, 29.8, 33.0], [25.1, 26.0, 27.3])
    -> {"n": 3, "mean": 5.2, "sd": ..., "t": 4.303, "low": ..., "high": ..., "excludes_zero": True}

Two configs trained with the same seed see the same initialisation draw and the same batches, so their
difference per seed carries less noise than the difference of two means: the interval is Student's t on
the n paired differences, mean +- t(0.975, n-1) * sd / sqrt(n) (two-sided 95 %; with n = 3 the factor is
4.30, with n = 5 it is 2.78). A table of many such intervals makes false positives likelier than 5 % each:
`summary_table` says so beside its verdicts (no correction is applied).
"""

from __future__ import annotations

import math

METRIC_TITLES = {"mAP": "mAP", "rank1": "Rank-1"}


def t_factor(n: int, level: float = 0.95) -> float:
    """Two-sided Student t quantile for n paired values (n - 1 degrees of freedom)."""
    from scipy.stats import t

    if n < 2:
        raise ValueError(f"a t interval needs at least 2 paired values, got {n}")
    return float(t.ppf(0.5 + level / 2, n - 1))


def mean_sd(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return mean, sd


def paired_difference(row, baseline, level: float = 0.95) -> dict:
    """Difference row - baseline, paired by position (seed), with its two-sided t interval."""
    if len(row) != len(baseline):
        raise ValueError(f"paired values need equal lengths, got {len(row)} and {len(baseline)}")
    diffs = [float(a) - float(b) for a, b in zip(row, baseline)]
    n = len(diffs)
    mean, sd = mean_sd(diffs)
    if n < 2:
        return {"n": n, "mean": mean, "sd": sd, "t": float("nan"), "low": float("nan"), "high": float("nan"),
                "excludes_zero": False}
    t = t_factor(n, level)
    half = t * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "t": t, "low": mean - half, "high": mean + half,
            "excludes_zero": mean - half > 0 or mean + half < 0}


def verdict(diff: dict) -> str:
    if diff["n"] < 2:
        return "one seed: no interval"
    if not diff["excludes_zero"]:
        return "not resolved (interval includes 0)"
    return "higher than the baseline" if diff["mean"] > 0 else "lower than the baseline"


def paired_frame(frame, baseline: str, metric: str = "mAP"):
    """Per (dataset, protocol, budget, label): the paired difference against `baseline` on `metric`, over
    the seeds both have. `frame` has columns label, dataset, protocol, budget, seed and the metrics."""
    import pandas as pd

    out = []
    for (dataset, protocol, budget), group in frame.groupby(["dataset", "protocol", "budget"], sort=False):
        base = group[group["label"] == baseline].set_index("seed")[metric]
        for label, rows in group.groupby("label", sort=False):
            if label == baseline:
                continue
            values = rows.set_index("seed")[metric]
            seeds = sorted(set(values.index) & set(base.index))
            if not seeds:
                continue
            diff = paired_difference([values[s] for s in seeds], [base[s] for s in seeds])
            out.append({"dataset": dataset, "protocol": protocol, "budget": budget, "label": label,
                        "metric": metric, "seeds": seeds, **diff, "verdict": verdict(diff)})
    return pd.DataFrame(out)


def _cell(mean: float, sd: float) -> str:
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def _interval(d) -> str:
    if d["n"] < 2:
        return f"{d['mean']:+.2f} (n=1)"
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] (n={d['n']})"


def summary_table(frame, baseline: str) -> str:
    """Markdown: per (dataset, protocol, budget) a table of rows with mean ± sd (seeds) of Rank-1 and mAP,
    and the paired differences against `baseline` (mAP first, Rank-1 beside it) with 95 % t intervals."""
    lines = []
    paired = {m: paired_frame(frame, baseline, m) for m in ("mAP", "rank1")}
    for (dataset, protocol, budget), group in frame.groupby(["dataset", "protocol", "budget"], sort=False):
        lines += [f"### {protocol}, {budget} training steps", "",
                  "| row | seeds | Rank-1 | mAP | mINP | Δ mAP vs baseline [95 % t] | Δ Rank-1 [95 % t] | verdict (mAP) |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, rows in group.groupby("label", sort=False):
            seeds = ",".join(str(s) for s in sorted(rows["seed"]))
            cells = [_cell(*mean_sd(rows[m])) for m in ("rank1", "mAP", "mINP")]
            if label == baseline:
                lines.append(f"| {label} (baseline) | {seeds} | {' | '.join(cells)} | | | |")
                continue
            found = []
            for m in ("mAP", "rank1"):
                p = paired[m]
                hit = p[(p["dataset"] == dataset) & (p["protocol"] == protocol) & (p["budget"] == budget)
                        & (p["label"] == label)] if len(p) else p
                found.append(hit.iloc[0] if len(hit) else None)
            diff = [_interval(d) if d is not None else "no shared seed" for d in found]
            lines.append(f"| {label} | {seeds} | {' | '.join(cells)} | {diff[0]} | {diff[1]} | "
                         f"{found[0]['verdict'] if found[0] is not None else ''} |")
        lines.append("")
    lines.append("Rows are means ± sample sd over training seeds; Δ is paired by seed, two-sided 95 % Student t "
                 "on the n paired differences. With several rows each interval keeps its own 5 % error rate: "
                 "across a table of k comparisons about 0.05·k false 'resolved' verdicts are expected under no "
                 "effect (no multiple-comparison correction applied).")
    return "\n".join(lines)
