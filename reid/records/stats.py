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


# The same verdicts, shortened for a notebook column (the interval beside them says the rest).
SHORT_VERDICT = {"higher than the baseline": "higher", "lower than the baseline": "lower",
                 "not resolved (interval includes 0)": "not resolved", "one seed: no interval": "no interval"}


def paired_frame(frame, baseline: str, metric: str = "mAP"):
    """Per (dataset, protocol, budget, label): the paired difference against `baseline` on `metric`, over
    the seeds both have. `frame` has columns label, dataset, protocol, budget, seed and the metrics."""
    import pandas as pd

    out = []
    for (dataset, protocol, budget), group in frame.groupby(["dataset", "protocol", "budget"], sort=False):
        # a seed recorded twice (e.g. two grids that share a budget) counts once: its last row
        base = group[group["label"] == baseline].groupby("seed")[metric].last()
        for label, rows in group.groupby("label", sort=False):
            if label == baseline:
                continue
            values = rows.groupby("seed")[metric].last()
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


# ------------------------------------------------------------------------------- notebook tables

SETTING_OF = {"sysu-all": "all-search", "sysu-indoor": "indoor-search", "regdb-v2t": "visible-to-infrared",
              "regdb-t2v": "infrared-to-visible"}


def _named(frame, labels: dict):
    """Keep the rows of `labels` (config label -> display name), renamed and in that order."""
    frame = frame[frame["label"].isin(list(labels))].copy()
    frame["row"] = frame["label"].map(labels)
    frame["setting"] = frame["protocol"].map(SETTING_OF)
    return frame


def seed_table(frame, labels: dict, metrics=("rank1", "mAP", "mINP")):
    """Display (setting, row) x (metric, mean | sd over seeds) and n, from a sweep's rows: numbers in their own
    columns (narrow enough for a notebook), one block of rows per setting."""
    import pandas as pd

    frame = _named(frame, labels)
    order = [labels[k] for k in labels if labels[k] in set(frame["row"])]
    rows = []
    for setting in dict.fromkeys(frame["setting"]):
        part = frame[frame["setting"] == setting]
        for row in order:
            g = part[part["row"] == row]
            if g.empty:
                continue
            cells = {("n", ""): len(g)}
            for metric in metrics:
                mean, sd = mean_sd(g[metric])
                cells[(metric, "mean")], cells[(metric, "sd over seeds")] = round(mean, 2), round(sd, 2)
            rows.append({("setting", ""): setting, ("row", ""): row, **cells})
    table = pd.DataFrame(rows).set_index([("setting", ""), ("row", "")])
    table.index.names = ["setting", "row"]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def paired_table(frame, baseline: str, labels: dict):
    """Per setting and row: Δ against `baseline` paired by seed, mAP first and Rank-1 beside it, each with its
    95 % t interval and verdict; plus the interval's half-width (what a difference must exceed here)."""
    import pandas as pd

    named = frame[frame["label"].isin(list(labels))]
    rows = []
    for metric in ("mAP", "rank1"):
        p = paired_frame(named, baseline, metric)
        for _, d in p.iterrows():
            rows.append({"setting": SETTING_OF[d["protocol"]], "row": labels[d["label"]], "metric": metric,
                         "budget": d["budget"], "n": d["n"], "Δ": round(d["mean"], 2),
                         "95 % interval": "" if d["n"] < 2 else f"[{d['low']:+.2f}, {d['high']:+.2f}]",
                         "half-width": round((d["high"] - d["low"]) / 2, 2) if d["n"] > 1 else float("nan"),
                         "verdict": SHORT_VERDICT.get(d["verdict"], d["verdict"])})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    wide = out.pivot_table(index=["setting", "row"], columns="metric",
                           values=["Δ", "95 % interval", "verdict", "n"], aggfunc="first", sort=False)
    wide = wide.reorder_levels([1, 0], axis=1)
    order = [(m, c) for m in ("mAP", "rank1") for c in ("n", "Δ", "95 % interval", "verdict")]
    return wide[[c for c in order if c in wide.columns]]


def paper_deltas(table: str, baseline: str):
    """The paper's own margins: each row minus its baseline row, per setting and metric (one run each)."""

    from reid.records.tables import paper_rows

    paper = paper_rows(table)
    base = paper[paper["method"] == baseline].set_index(["setting", "metric"])["value"]
    paper = paper[paper["method"] != baseline].copy()
    paper["paper Δ"] = [v - base.get((s, m), float("nan"))
                        for v, s, m in zip(paper["value"], paper["setting"], paper["metric"])]
    return paper[["method", "setting", "metric", "paper Δ"]]


def resolvable(frame, baseline: str, labels: dict, table: str, paper_baseline: str, metric: str = "mAP"):
    """The paper's margins beside the interval half-width measured here (same n): which of the paper's
    differences an experiment with our seed noise and n seeds could tell from 0."""
    import pandas as pd

    named = frame[frame["label"].isin(list(labels))]
    ours = paired_frame(named, baseline, metric)
    paper = paper_deltas(table, paper_baseline)
    rows = []
    for _, d in ours.iterrows():
        row, setting = labels[d["label"]], SETTING_OF[d["protocol"]]
        hit = paper[(paper["method"] == row) & (paper["setting"] == setting) & (paper["metric"] == metric)]
        if hit.empty or d["n"] < 2:
            continue
        half = (d["high"] - d["low"]) / 2
        margin = float(hit["paper Δ"].iloc[0])
        rows.append({"setting": setting, "row": row, f"paper Δ {metric}": round(margin, 2),
                     f"our Δ {metric}": round(d["mean"], 2), "paired sd here": round(d["sd"], 2), "n": d["n"],
                     "half-width here": round(half, 2),
                     "resolvable at this n": "yes" if abs(margin) > half else "no"})
    return pd.DataFrame(rows)
