"""Plotting helpers for the notebooks and `make reproduce` (matplotlib/seaborn; files are PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


def plot_training_curves(log_csv: str | Path, out_png: str | Path | None = None, title: str | None = None):
    """Loss parts, learning rate and validation mAP / Rank-1 per epoch, from a run's `log.csv`.

    Returns the matplotlib figure; writes it to `out_png` when given.
    """
    import seaborn as sns

    log = pd.read_csv(log_csv)
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
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
    for ax in axes:
        ax.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out_png is not None:
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=120)
    return fig
