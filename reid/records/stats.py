"""Seed statistics of a sweep: means with their spread, differences paired by seed, their p-values
(Holm-adjusted per table and metric) and the smallest difference the experiment could detect.

    paired_difference([31.2, 29.8, 33.0], [25.1, 26.0, 27.3])
    -> {"n": 3, "mean": 5.2, "sd": ..., "t": 4.303, "low": ..., "high": ..., "excludes_zero": True, "p": 0.0197,
        "mde": ...}

Two configs trained with the same seed see the same initialisation draw and the same batches, so their
difference per seed carries less noise than the difference of two means: the interval is Student's t on
the n paired differences, mean +- t(0.975, n-1) * sd / sqrt(n) (two-sided 95 %; with n = 3 the factor is
4.30, with n = 5 it is 2.78), and `p` is the paired t test's two-sided p-value (scipy.stats.ttest_1samp of
the differences against 0: p < 0.05 exactly when the interval excludes 0).

Three rules keep a table of such comparisons honest:
- *Same seeds.* A difference, and the two means printed beside it, use only the seeds both rows share (n
  is shown): a baseline mean over five seeds beside a row over three would not be the pair the Δ compares.
- *Multiple comparisons.* A table of k comparisons makes some false 'resolved' verdicts likely at 5 % each.
  `holm` adjusts the p-values of one family, every comparison of one table (sweep) on one metric, all
  protocols together (Holm 1979: valid whatever the dependence between them; SYSU all- and indoor-search,
  RegDB V->T and T->V, come from the same trained models, so they are one result seen twice, not two).
  The verdict uses the adjusted p; the printed intervals stay unadjusted 95 %.
- *Power.* `min_detectable` is the smallest true mean difference a paired t test at this n and this sd
  finds with 80 % probability (two-sided alpha 0.05), from the noncentral t distribution (exact; the
  normal approximation (z_0.975 + z_0.8) * sd / sqrt(n) is 2x too small at n = 3). A paper margin below it
  could not be told from 0 here even if it were real. (The interval's half-width is the difference found
  half of the time: 50 % power, not 80 %.)
"""

from __future__ import annotations

import math

METRIC_TITLES = {"mAP": "mAP", "rank1": "Rank-1"}
ALPHA = 0.05  # two-sided, per family after Holm's adjustment
POWER = 0.8


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


def paired_p(diffs) -> float:
    """Two-sided p-value of the paired t test (the differences' mean against 0)."""
    from scipy.stats import ttest_1samp

    mean, sd = mean_sd(diffs)
    if sd == 0:  # scipy returns nan here: every difference equal, either all 0 or all the same sign
        return 1.0 if mean == 0 else 0.0
    return float(ttest_1samp(diffs, 0.0).pvalue)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of one family of p-values, returned in their order (nan stays nan and
    does not count in the family). Sorted ascending, the i-th smallest (i = 0, 1, ...) of m becomes
    (m - i) * p, then each is raised to the largest adjusted value before it (so the order of the raw
    p-values is kept) and capped at 1."""
    finite = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m, running = len(finite), 0.0
    adjusted = [float("nan")] * len(pvalues)
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))  # the monotonicity step
        adjusted[i] = running
    return adjusted


def min_detectable(n: int, sd: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true mean difference that a two-sided paired t test at level `alpha` on n pairs with
    standard deviation `sd` detects with probability `power`: the noncentrality nc solving
    P(|T| > t_crit) = power for T ~ noncentral t(n - 1, nc), times sd / sqrt(n)."""
    from scipy.optimize import brentq
    from scipy.stats import nct
    from scipy.stats import t as student

    if n < 2 or math.isnan(sd):
        return float("nan")
    crit, df = float(student.ppf(1 - alpha / 2, n - 1)), n - 1
    # both tails as survival functions: nct.cdf(-crit) returns nan for large nc in scipy 1.17
    nc = brentq(lambda x: nct.sf(crit, df, x) + nct.sf(crit, df, -x) - power, 0.0, 100.0)
    return nc * sd / math.sqrt(n)


def paired_difference(row, baseline, level: float = 0.95) -> dict:
    """Difference row - baseline, paired by position (seed), with its two-sided t interval, its paired t
    test's p-value and the smallest difference detectable at 80 % power (`mde`)."""
    if len(row) != len(baseline):
        raise ValueError(f"paired values need equal lengths, got {len(row)} and {len(baseline)}")
    diffs = [float(a) - float(b) for a, b in zip(row, baseline)]
    n = len(diffs)
    mean, sd = mean_sd(diffs)
    if n < 2:
        return {"n": n, "mean": mean, "sd": sd, "t": float("nan"), "low": float("nan"), "high": float("nan"),
                "excludes_zero": False, "p": float("nan"), "mde": float("nan")}
    t = t_factor(n, level)
    half = t * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "t": t, "low": mean - half, "high": mean + half,
            "excludes_zero": mean - half > 0 or mean + half < 0, "p": paired_p(diffs),
            "mde": min_detectable(n, sd)}


def verdict(diff) -> str:
    """Resolved when the family's Holm-adjusted p (`p_holm`; the raw p when there is no family) is below 5 %."""
    if diff["n"] < 2:
        return "one seed: no interval"
    p = diff["p_holm"] if "p_holm" in diff else diff["p"]
    if not p < ALPHA:
        return "not resolved (Holm-adjusted p >= 0.05)"
    return "higher than the baseline" if diff["mean"] > 0 else "lower than the baseline"


# The same verdicts, shortened for a notebook column (the interval beside them says the rest).
SHORT_VERDICT = {"higher than the baseline": "higher", "lower than the baseline": "lower",
                 "not resolved (Holm-adjusted p >= 0.05)": "not resolved", "one seed: no interval": "no interval"}


def paired_frame(frame, baseline: str, metric: str = "mAP"):
    """Per (dataset, protocol, budget, label): the paired difference against `baseline` on `metric`, over
    the seeds both have (`seeds`, n), the two means over those seeds (`row_mean`, `base_mean`), the raw
    p-value and the Holm-adjusted one (`p_holm`: the family is every comparison in `frame` on this metric),
    the detectable difference at 80 % power (`mde`) and the verdict. `frame` has columns label, dataset,
    protocol, budget, seed and the metrics."""
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
            mine, theirs = [values[s] for s in seeds], [base[s] for s in seeds]
            out.append({"dataset": dataset, "protocol": protocol, "budget": budget, "label": label,
                        "metric": metric, "seeds": seeds, "row_mean": mean_sd(mine)[0],
                        "base_mean": mean_sd(theirs)[0], **paired_difference(mine, theirs)})
    for d, p in zip(out, holm([d["p"] for d in out])):
        d["p_holm"] = p
        d["verdict"] = verdict(d)
    return pd.DataFrame(out)


def data_seed_components(diffs: dict) -> dict:
    """A paired difference measured on several synthetic data draws (data seeds) x training seeds:
    ``diffs`` = {data seed: [difference per training seed, ...]}, the same number of training seeds each.

    One-way random effects (data seed the factor, training seeds nested in it): the mean difference; the
    variance between data seeds, sigma_d^2 = max(0, (MS_between - MS_within) / k), and within one draw,
    sigma_s^2 = MS_within (k training seeds per draw); the data seeds' share sigma_d^2 / (sigma_d^2 +
    sigma_s^2); and the interval that generalises over data draws: Student t on the D per-draw means (D - 1
    degrees of freedom), wider than any one draw's when draws differ."""
    draws = [list(map(float, v)) for v in diffs.values()]
    k = len(draws[0])
    if len(draws) < 2 or k < 2 or any(len(v) != k for v in draws):
        raise ValueError("need >= 2 data seeds with the same number (>= 2) of training seeds each")
    means = [sum(v) / k for v in draws]
    grand, sd_means = mean_sd(means)
    within = sum(mean_sd(v)[1] ** 2 for v in draws) / len(draws)  # MS_within: the pooled variance
    between = k * sd_means ** 2  # MS_between
    sigma_d = max(0.0, (between - within) / k)
    half = t_factor(len(draws)) * sd_means / math.sqrt(len(draws))
    return {"data_seeds": len(draws), "training_seeds": k, "mean": grand, "low": grand - half,
            "high": grand + half, "var_data": sigma_d, "var_training": within,
            "share_data": sigma_d / (sigma_d + within) if sigma_d + within > 0 else float("nan"),
            "p": paired_p(means)}


def _cell(mean: float, sd: float) -> str:
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def _interval(d) -> str:
    if d["n"] < 2:
        return f"{d['mean']:+.2f} (n=1)"
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"


def p_text(p: float) -> str:
    if math.isnan(p):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def summary_table(frame, baseline: str) -> str:
    """Markdown: per (dataset, protocol, budget) a table of rows with mean ± sd over all their seeds of
    Rank-1, mAP and mINP, then a table of the paired differences against `baseline` on the seeds both rows
    share (both means over those seeds, n, 95 % t interval, p and Holm-adjusted p, the detectable
    difference at 80 % power), mAP first and Rank-1 beside it."""
    lines = []
    paired = {m: paired_frame(frame, baseline, m) for m in ("mAP", "rank1")}
    for (dataset, protocol, budget), group in frame.groupby(["dataset", "protocol", "budget"], sort=False):
        lines += [f"### {protocol}, {budget} training steps", "",
                  "Each row over all its seeds:", "",
                  "| row | seeds | Rank-1 | mAP | mINP |", "|---|---|---|---|---|"]
        for label, rows in group.groupby("label", sort=False):
            seeds = ",".join(str(s) for s in sorted(rows["seed"]))
            cells = [_cell(*mean_sd(rows[m])) for m in ("rank1", "mAP", "mINP")]
            lines.append(f"| {label}{' (baseline)' if label == baseline else ''} | {seeds} | {' | '.join(cells)} |")
        lines += ["", f"Against {baseline}, on the seeds both rows share:", "",
                  ("| row | shared seeds (n) | mAP: row / baseline | Δ mAP [95 % t] | p | p Holm | Δ detectable "
                   "(80 % power) | Rank-1: row / baseline | Δ Rank-1 [95 % t] | p Holm | verdict (mAP, Holm) |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label in dict.fromkeys(group["label"]):
            if label == baseline:
                continue
            found = {}
            for m, p in paired.items():
                hit = p[(p["dataset"] == dataset) & (p["protocol"] == protocol) & (p["budget"] == budget)
                        & (p["label"] == label)] if len(p) else p
                found[m] = hit.iloc[0] if len(hit) else None
            d, r = found["mAP"], found["rank1"]
            if d is None or r is None:
                lines.append(f"| {label} | no shared seed | | | | | | | | | |")
                continue
            lines.append(f"| {label} | {','.join(str(s) for s in d['seeds'])} ({d['n']}) | "
                         f"{d['row_mean']:.2f} / {d['base_mean']:.2f} | {_interval(d)} | {p_text(d['p'])} | "
                         f"{p_text(d['p_holm'])} | {_number(d['mde'])} | "
                         f"{r['row_mean']:.2f} / {r['base_mean']:.2f} | {_interval(r)} | {p_text(r['p_holm'])} | "
                         f"{d['verdict']} |")
        lines.append("")
    lines.append("Means ± sample sd over training seeds; Δ is paired by seed on the shared seeds only (both means "
                 "beside it are over those seeds), two-sided 95 % Student t on the n paired differences "
                 "(unadjusted). p: paired t test; p Holm: Holm-adjusted over every comparison of this table "
                 "on that metric (all protocols together; the verdict uses it). Δ detectable: the smallest true "
                 "difference a paired t test at this n and sd finds with 80 % power (noncentral t, two-sided "
                 "0.05). Protocols of one dataset (all/indoor search, V→T/T→V) are evaluations of the same "
                 "trained models, not independent replications.")
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
    """Per setting and row: Δ against `baseline` paired by seed on the shared seeds, mAP first and Rank-1
    beside it, each with n, its 95 % t interval, the Holm-adjusted p (family: these rows, all settings, one
    metric) and the verdict on it."""
    import pandas as pd

    named = frame[frame["label"].isin(list(labels))]
    rows = []
    for metric in ("mAP", "rank1"):
        p = paired_frame(named, baseline, metric)
        for _, d in p.iterrows():
            rows.append({"setting": SETTING_OF[d["protocol"]], "row": labels[d["label"]], "metric": metric,
                         "budget": d["budget"], "n": d["n"], "Δ": round(d["mean"], 2),
                         "95 % interval": "" if d["n"] < 2 else f"[{d['low']:+.2f}, {d['high']:+.2f}]",
                         "p Holm": p_text(d["p_holm"]),
                         "verdict": SHORT_VERDICT.get(d["verdict"], d["verdict"])})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    wide = out.pivot_table(index=["setting", "row"], columns="metric",
                           values=["Δ", "95 % interval", "p Holm", "verdict", "n"], aggfunc="first", sort=False)
    wide = wide.reorder_levels([1, 0], axis=1)
    order = [(m, c) for m in ("mAP", "rank1") for c in ("n", "Δ", "95 % interval", "p Holm", "verdict")]
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


def detectable(frame, baseline: str, labels: dict, table: str, paper_baseline: str, metric: str = "mAP"):
    """The paper's margins beside the smallest difference this experiment detects with 80 % power (its n
    and its paired sd, two-sided 0.05, `min_detectable`): which of the paper's differences a true effect of
    that size would be found here 4 times in 5. (It replaces a rule that compared the margin with the
    interval's half-width: a true effect of exactly that size is found only half of the time.)"""
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
        margin = float(hit["paper Δ"].iloc[0])
        rows.append({"setting": setting, "row": row, f"paper Δ {metric}": round(margin, 2),
                     f"our Δ {metric}": round(d["mean"], 2), "paired sd here": round(d["sd"], 2), "n": d["n"],
                     "Δ detectable at 80 % power": round(d["mde"], 2),
                     "paper Δ detectable here": "yes" if abs(margin) >= d["mde"] else "no"})
    return pd.DataFrame(rows)
