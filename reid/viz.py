"""Plotting helpers for the notebooks and `make reproduce` (matplotlib/seaborn; files are PNG).

Every figure uses one style (`use_style`): seaborn's white grid, fonts readable at the committed size,
legends outside the data, PNGs written at `SAVE_DPI`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from reid.records.tables import paper_rows

SAVE_DPI = 110  # figures/ PNGs: legible at the README's width, a few hundred kB at most
STYLE = {"axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
         "legend.fontsize": 9, "legend.title_fontsize": 9, "figure.titlesize": 11}


def use_style(inline_dpi: int | None = None) -> None:
    """The one look of every figure; `inline_dpi` sets the notebooks' on-screen size (60 keeps the committed
    notebooks small: figures/ holds the full-size PNGs)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", rc=STYLE)
    if inline_dpi is not None:
        plt.rcParams["figure.dpi"] = inline_dpi


def _legend_below(fig, handles, labels, ncol: int | None = None) -> None:
    """One legend for the whole figure, under the panels, never over the data."""
    fig.legend(handles, labels, loc="lower center", ncol=ncol or len(labels), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.08, 1, 1))


def plot_training_curves(log_csv: str | Path, out_png: str | Path | None = None, title: str | None = None):
    """Loss parts, learning rate and validation mAP / Rank-1 per epoch, from a run's `log.csv`.

    Returns the matplotlib figure; writes it to `out_png` when given.
    """
    import seaborn as sns

    log = pd.read_csv(log_csv)
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
    losses = log.melt(id_vars="epoch", value_vars=["loss", "loss_id", "loss_metric"], var_name="part",
                      value_name="value")
    sns.lineplot(data=losses, x="epoch", y="value", hue="part", marker="o", ax=axes[0])
    axes[0].set(title="training loss", ylabel="loss")
    sns.lineplot(data=log, x="epoch", y="lr", marker="o", ax=axes[1])
    axes[1].set(title="learning rate", yscale="log")
    val = log.dropna(subset=["val_mAP"])
    if len(val):
        curves = val.melt(id_vars="epoch", value_vars=["val_mAP", "val_rank1"], var_name="metric",
                          value_name="percent")
        sns.lineplot(data=curves, x="epoch", y="percent", hue="metric", marker="o", ax=axes[2])
        axes[2].set(title="validation (held-out training ids)", ylabel="%")
    else:  # every training identity trained on (data.val_fraction: 0): show the training accuracy instead
        sns.lineplot(data=log, x="epoch", y="train_acc", marker="o", ax=axes[2])
        axes[2].set(title="training accuracy (no ids held out)", ylabel="%")
    for ax in axes:
        ax.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out_png is not None:
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=SAVE_DPI)
    return fig


# ------------------------------------------------------------------------------------ image figures

def _frame(ax, color: str | None, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(width)


def _show(ax, image, title: str | None = None, color: str | None = None, fontsize: int = 10) -> None:
    """Show a PIL image, uint8/float array, or a normalised (3, H, W) tensor on `ax`."""
    import torch

    if isinstance(image, torch.Tensor):
        from reid.data.transforms import denormalize

        image = denormalize(image)
    ax.imshow(image, cmap="gray" if getattr(image, "ndim", 3) == 2 else None)
    _frame(ax, color)
    if title:
        ax.set_title(title, fontsize=fontsize)


def _row_title(ax, title: str) -> None:
    """A row's title left of its first image, written horizontally (a rotated label is unreadable at grid size)."""
    ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=11, labelpad=6)


def show_identities(items_by_camera: dict, pids: list[int], ir_cameras, max_cameras: int = 6,
                    out_png: str | Path | None = None):
    """A grid: one row per identity, one column per camera (first image of that id in that camera).

    `items_by_camera` maps camid -> list of (path, pid, camid). Infrared cameras are labelled IR.
    """
    from reid.data import read_image

    cams = sorted(items_by_camera)[:max_cameras]
    fig, axes = plt.subplots(len(pids), len(cams), figsize=(1.6 * len(cams), 2.9 * len(pids)), squeeze=False)
    for r, pid in enumerate(pids):
        for c, cam in enumerate(cams):
            ax = axes[r][c]
            paths = sorted(p for p, q, _ in items_by_camera[cam] if q == pid)
            kind = "IR" if cam in ir_cameras else "RGB"
            if paths:
                _show(ax, read_image(paths[0]), f"id {pid}\ncam{cam} ({kind})")
            else:
                ax.set_axis_off()
                ax.set_title(f"id {pid}\ncam{cam}: absent", fontsize=10)
    fig.tight_layout()
    _save(fig, out_png)
    return fig


def show_tensor_grid(rows: list[list], row_titles: list[str] | None = None, col_titles: list[str] | None = None,
                     out_png: str | Path | None = None, scale: float = 1.2):
    """Images (tensors / arrays / PIL) laid out in rows, with optional row and column titles."""
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(scale * n_cols, scale * 2.1 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            _show(ax, row[c], col_titles[c] if (col_titles and r == 0) else None)
            if c == 0 and row_titles:
                _row_title(ax, row_titles[r])
    fig.tight_layout()
    _save(fig, out_png)
    return fig


def plot_retrieval(queries: list, galleries: list[list], correct: list[list[bool]] | None, row_titles: list[str],
                   out_png: str | Path | None = None, title: str | None = None,
                   captions: list[list[str]] | None = None):
    """The paper's Fig. 4: each row is a query and its top-k gallery images, framed green (same identity)
    or red (wrong identity). `correct=None` (unlabelled images, `python -m reid search`) draws no frames;
    `captions` (e.g. distances) go under the gallery images."""
    k = max(len(g) for g in galleries)
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(0.82 * (k + 1), 1.75 * len(queries)), squeeze=False)
    for r, (query, gallery) in enumerate(zip(queries, galleries)):
        _show(axes[r][0], query, "query" if r == 0 else None, color="#1f4e9c")
        _row_title(axes[r][0], row_titles[r])
        for c in range(k):
            ax = axes[r][c + 1]
            if c < len(gallery):
                color = None if correct is None else "#1a9a3a" if correct[r][c] else "#d62728"
                _show(ax, gallery[c], f"{c + 1}" if r == 0 else None, color=color)
                if captions is not None:
                    ax.set_xlabel(captions[r][c], fontsize=9)
            else:
                ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)
    return fig


def _save(fig, out_png) -> None:
    if out_png is not None:
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=SAVE_DPI)


# ------------------------------------------------------------------------------ paper vs ours tables

# The paper's own method is "Ours (paper)" in its transcribed tables: shown under its authors' name, so that
# "ours" never means two things in one table.
PAPER_MODEL = "Huang et al. 2024 (the paper's model)"


def _paper_rows(table: str) -> pd.DataFrame:
    return paper_rows(table).replace({"method": {"Ours (paper)": PAPER_MODEL}})


def measured_row(name: str, results: dict, metrics=("rank1", "rank10", "rank20", "mAP")) -> dict:
    """One row of measured numbers for `paper_table`: {"method": name, (setting, metric): "mean ± std"},
    from {setting: result} (results of `reid.experiments.evaluate_runs`, or `chance`'s Rank-1 and mAP: a
    metric a result lacks stays empty). ± is the std over the result's SYSU-MM01 trials or RegDB splits, and
    only where there are several: one split is one number, not a precise one."""
    row = {"method": name}
    for setting, r in results.items():
        spread = r.get("std") and len(r.get("per_trial") or r.get("per_split") or []) > 1
        for m in metrics:
            if m in r:
                row[(setting, m)] = f"{r[m]:.2f} ± {r['std'][m]:.2f}" if spread else f"{r[m]:.2f}"
    return row


def paper_table(table: str, extra_rows: list[dict] | None = None) -> pd.DataFrame:
    """The paper's table (verbatim from results/paper/) with our measured rows appended.

    Columns are (setting, metric); a `source` column says which rows are the paper's and which are ours.
    `extra_rows` are dicts {"method": name, (setting, metric): value-or-"mean ± std"}.
    """
    paper = _paper_rows(table)
    wide = paper.pivot_table(index="method", columns=["setting", "metric"], values="value", sort=False)
    wide = wide.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    wide.insert(0, ("", "source"), "paper")
    rows = [wide]
    for extra in extra_rows or []:
        ours = {k: v for k, v in extra.items() if k != "method"}
        row = pd.DataFrame([ours], index=[extra["method"]])
        row.insert(0, ("", "source"), "ours (measured)")
        rows.append(row)
    out = pd.concat(rows).fillna("")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    order = [("", "source")] + [c for c in wide.columns if c != ("", "source")]
    return out[order].rename_axis("method")


def plot_paper_vs_ours(table: str, ours: dict, ours_label: str, metrics=("rank1", "mAP"),
                       out_png: str | Path | None = None):
    """Bars: every method's Rank-1 and mAP per setting from the paper, and ours (hatched) beside them.

    `ours` maps setting -> a result dict (percent numbers, e.g. from `reid.eval.evaluate`).
    """
    import seaborn as sns

    paper = _paper_rows(table)
    paper = paper[paper.metric.isin(metrics)].assign(source="paper")
    mine = pd.DataFrame([{"method": ours_label, "setting": s, "metric": m, "value": r[m], "source": "ours"}
                         for s, r in ours.items() for m in metrics])
    data = pd.concat([paper, mine], ignore_index=True)
    settings = list(dict.fromkeys(data.setting))
    use_style()
    fig, axes = plt.subplots(1, len(settings), figsize=(3.6 * len(settings) + 2.4, 4.6), squeeze=False, sharey=True)
    for ax, setting in zip(axes[0], settings):
        part = data[data.setting == setting]
        sns.barplot(data=part, y="method", x="value", hue="metric", ax=ax, orient="h")
        n_methods = part.method.nunique()
        for bar_group in ax.containers:
            bars = list(bar_group)
            if len(bars) == n_methods:
                bars[-1].set_hatch("//")
                bars[-1].set_edgecolor("black")
        ax.set(title=setting, xlabel="%", ylabel="", xlim=(0, 100))
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    from matplotlib.patches import Patch

    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//"))
    labels.append(f"ours, measured ({ours_label})")
    fig.suptitle(f"{table}: the paper's numbers (real data) and ours")
    _legend_below(fig, handles, labels)
    _save(fig, out_png)
    return fig


# ------------------------------------------------------------------------------------------ sweeps

def plot_paired_deltas(frame: pd.DataFrame, baseline: str, labels: dict, table: str | None = None,
                       paper_baseline: str | None = None, metrics=("mAP", "rank1"),
                       out_png: str | Path | None = None):
    """Each row's difference from the baseline, paired by seed, with its 95 % t interval (bars); the paper's
    own margin (one run each) as a red diamond on the same Δ axis. One panel per (setting, metric)."""
    from reid.records.stats import SETTING_OF, paired_frame, paper_deltas

    named = frame[frame["label"].isin(list(labels))]
    settings = [SETTING_OF[p] for p in dict.fromkeys(named["protocol"])]
    rows = [labels[k] for k in labels if k != baseline]
    paper = paper_deltas(table, paper_baseline) if table and paper_baseline else None
    use_style()
    # At most two panels side by side (Table 4 has four settings): readable in a notebook column.
    ncols = min(2, len(settings))
    nrows = -(-len(metrics) * len(settings) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(4.8 * ncols, (0.42 * len(rows) + 1.1) * nrows + 1.1))
    for i, metric in enumerate(metrics):
        pairs = paired_frame(named, baseline, metric)
        for j, setting in enumerate(settings):
            k = i * len(settings) + j
            ax = axes[k // ncols][k % ncols]
            part = pairs[pairs["protocol"].map(SETTING_OF) == setting] if len(pairs) else pairs
            for y, row in enumerate(rows):
                hit = part[part["label"].map(labels) == row] if len(part) else part
                if len(hit):
                    d = hit.iloc[0]
                    # dark: resolved by the Holm-adjusted p of its table (reid.records.stats), as the verdicts
                    # The legend is deduplicated by label, so a label names what its colour means (not
                    # the row's seed count, which differs between rows: the paired table gives it).
                    resolved = d["p_holm"] < 0.05
                    color = "#08519c" if resolved else "#6baed6"
                    verdict = "resolved (Holm p < 0.05)" if resolved else "not resolved"
                    if d["n"] > 1:
                        ax.errorbar(d["mean"], y, xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]],
                                    fmt="o", color=color, capsize=3,
                                    label=f"ours, {verdict}: mean Δ over seeds, 95 % t interval")
                    else:
                        ax.plot(d["mean"], y, "o", color=color, label=f"ours, {verdict}: Δ (one seed)")
                if paper is not None:
                    p = paper[(paper["method"] == row) & (paper["setting"] == setting) & (paper["metric"] == metric)]
                    if len(p):
                        ax.plot(p["paper Δ"].iloc[0], y, "D", color="#d62728", label="paper: Δ (one run, real data)")
            ax.axvline(0, color="0.4", lw=0.8)
            ax.set_yticks(range(len(rows)), rows if k % ncols == 0 else [""] * len(rows))
            ax.invert_yaxis()
            ax.set(title=f"{setting}: Δ {metric} vs {labels[baseline]}", xlabel=f"Δ {metric} (points)")
    for ax in axes.flat[len(metrics) * len(settings):]:
        ax.set_axis_off()
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    _legend_below(fig, handles, names, ncol=2)
    _save(fig, out_png)
    return fig


def plot_budget_curve(frame: pd.DataFrame, labels: dict, setting: str = "sysu-all", metrics=("rank1", "mAP"),
                      out_png: str | Path | None = None):
    """Rank-1 and mAP against training steps (log axis), one line per row through the seed means, every
    seed as a dot: where the rows' order settles."""
    frame = frame[(frame["protocol"] == setting) & frame["label"].isin(list(labels))]
    use_style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for k, (label, name) in enumerate(labels.items()):
            part = frame[frame["label"] == label]
            if part.empty:
                continue
            means = part.groupby("budget")[metric].agg(["mean", "std", "count"]).sort_index()
            color = colors[k % len(colors)]
            ax.plot(means.index, means["mean"], "-", color=color, lw=1.8, label=f"{name} (mean over seeds)")
            ax.scatter(part["budget"], part[metric], s=14, color=color, alpha=0.6)
        ax.set_xscale("log")
        budgets = sorted(frame["budget"].unique())
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.minorticks_off()
        title = {"rank1": "Rank-1"}.get(metric, metric)
        ax.set(xlabel="training steps (log scale)", ylabel=f"{title} (%)", title=f"{setting}: {title}")
    handles, names = axes[0][0].get_legend_handles_labels()
    _legend_below(fig, handles, names)
    _save(fig, out_png)
    return fig
