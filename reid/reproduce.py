"""`make reproduce`: the main job of the repository, as a list of runner calls (reid.experiments).

With no data given: make the default synthetic set (if missing), train the profile's full model on its
SYSU-MM01 layout and on its RegDB layout (one model per split), evaluate SYSU-MM01 all- and indoor-search
and RegDB in both directions, trained and untrained, and write

    results/reproduce_<profile>_*.json + results/results.csv   every number, with provenance
    results/reproduce_<profile>.json                            the summary and the learning check
    figures/training_curves_<dataset>_<profile>.png             loss / lr / validation curves

The learning check reads the trained model's IR->RGB all-search Rank-1 against chance (random distances,
same protocol) and against an untrained network of the same config evaluated the same way. Runs are cached
in runs/ by their resolved config, shared with the notebooks.
"""

from __future__ import annotations

import json
from pathlib import Path

from reid.data.regdb import NUM_SPLITS, check_split
from reid.experiments import Settings, chance, default_regdb_splits
from reid.utils.atomic import atomic_outputs, write_text_atomically

SETTINGS = {"sysu": ("all", "indoor"), "regdb": ("v2t", "t2v")}


def learning_check(sysu: dict) -> dict:
    """Does the model learn at all? Trained all-search Rank-1 >= 5x chance and clearly above untrained."""
    trained, untrained, floor = (sysu[f"all_{k}"]["rank1"] for k in ("trained", "untrained", "chance"))
    return {"metric": "SYSU-layout IR->RGB all-search Rank-1 (%)", "trained": trained, "untrained": untrained,
            "chance": floor, "times_chance": trained / floor if floor else None,
            "passed": bool(trained >= 5 * floor and trained > untrained + 5.0)}


def reproduce_dataset(s: Settings, dataset: str, overrides, device) -> dict:
    root = s.root(dataset)
    what = "one model" if dataset == "sysu" else f"one model per split 1..{s.regdb_splits}"
    print(f"== {dataset} layout at {root}: training the {s.profile} profile's full model, {what}")
    runs = s.train(dataset, overrides=overrides, device=device)
    out: dict = {"runs": [str(r) for r in runs]}
    for setting in SETTINGS[dataset]:
        protocol = f"{dataset}-{setting}"
        for weights in ("trained", "untrained"):
            name = f"reproduce_{s.profile}_{dataset}_{setting}_{weights}"
            result = s.evaluate(runs, protocol, weights=weights, device=device, record_as=name)
            print(f"  {result['label']} ({weights}): Rank-1 {result['rank1']:.2f}%  mAP {result['mAP']:.2f}%"
                  f"  -> {s.results_dir / name}.json")
            out[f"{setting}_{weights}"] = result
        out[f"{setting}_chance"] = chance(protocol, root)
    return out


def reproduce(s: Settings, overrides=(), device=None) -> dict:
    """Train, evaluate and record every dataset the settings hold; write the summary and the figures."""
    import matplotlib.pyplot as plt

    from reid.viz import plot_training_curves

    summary: dict = {"profile": s.profile, "data": {d: str(s.root(d)) for d in s.datasets()},
                     "regdb_splits": s.regdb_splits}
    if s.regdb_splits < NUM_SPLITS and "regdb" in summary["data"]:
        summary["note"] = f"RegDB: {s.regdb_splits} of the protocol's {NUM_SPLITS} splits (profile {s.profile}, CPU budget)"
    figures = []
    for dataset in summary["data"]:
        summary[dataset] = reproduce_dataset(s, dataset, overrides, device)
        png = s.figures_dir / f"training_curves_{dataset}_{s.profile}.png"
        with atomic_outputs([png], "--figures-dir") as (tmp,):  # never a truncated figure over a good one
            plt.close(plot_training_curves(Path(summary[dataset]["runs"][0]) / "log.csv", tmp,
                                           title=f"{s.profile} profile, {dataset} layout"))
        figures.append(str(png))
    if "sysu" in summary:
        summary["learning_check"] = learning_check(summary["sysu"])
    summary["figures"] = figures
    s.results_dir.mkdir(parents=True, exist_ok=True)
    path = s.results_dir / f"reproduce_{s.profile}.json"
    write_text_atomically(path, json.dumps(summary, indent=2, default=str) + "\n", "--results-dir")

    print("\n== outputs")
    print(f"  training runs:   {s.runs_dir}/ (last.pt, best.pt, log.csv, tb/, config.yaml, results/ per run)")
    print(f"  results:         {s.results_dir}/results.csv and one JSON per evaluation")
    print(f"  summary:         {path}")
    for png in figures:
        print(f"  figure:          {png}")
    if "learning_check" in summary:
        check = summary["learning_check"]
        print(f"  learning check:  trained Rank-1 {check['trained']:.1f}% vs untrained {check['untrained']:.1f}% "
              f"vs chance {check['chance']:.1f}% ({check['times_chance']:.1f}x chance): "
              f"{'PASSED' if check['passed'] else 'FAILED'}")
    return summary


def run(profile: str = "smoke", data: str | None = None, dataset: str | None = None,
        synthetic_root: str | None = None, runs_dir: str = "runs", results_dir: str = "results",
        figures_dir: str = "figures", regdb_splits: int | None = None, overrides=(), device=None) -> dict:
    """`python -m reid reproduce`: settings from the command line (the synthetic set unless `data`)."""
    from reid.config import load_config
    from reid.data.identity import is_synthetic
    from reid.data.synthetic import ensure_synthetic, summarize
    from reid.data.train_data import DEFAULT_SYNTHETIC_ROOT, data_roots
    from reid.experiments import check_profile, profile_config

    # The profile and the overrides first: a typo is one line, not a minute of data generation before it.
    check_profile(profile)
    found = data_roots(data, (dataset,) if dataset else None) if data is not None else None
    for name in ("sysu", "regdb") if data is None else found:
        load_config(profile_config(profile, name), overrides)
    splits = regdb_splits or default_regdb_splits(profile)
    check_split(splits, f"--regdb-splits {splits}")
    if data is None:
        synthetic = Path(ensure_synthetic(Path(synthetic_root or DEFAULT_SYNTHETIC_ROOT), seed=0))
        roots = {"sysu": synthetic / "SYSU-MM01", "regdb": synthetic / "RegDB"}
        print(summarize(synthetic))
        print("(numbers below are synthetic-layout numbers, not SYSU-MM01/RegDB numbers)")
    else:
        roots = found
    # What the data say, as results do: `--data` pointing at (a link to) the synthetic set is synthetic.
    labelled_synthetic = any(is_synthetic(root) for root in roots.values())
    s = Settings(roots.get("sysu"), roots.get("regdb"), synthetic=labelled_synthetic, profile=profile,
                 regdb_splits=splits, runs_dir=Path(runs_dir), results_dir=Path(results_dir), figures_dir=Path(figures_dir))
    return reproduce(s, overrides, device)
