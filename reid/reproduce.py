"""`make reproduce`: the main job of the repository.

With no arguments: make the default synthetic set (if missing), train the full model with the `smoke`
profile on its SYSU-MM01 layout and on its RegDB layout (one model per split), evaluate SYSU-MM01 all- and
indoor-search and RegDB in both directions, and write

    results/reproduce_<profile>_*.json + results/results.csv   every number, with provenance
    results/reproduce_<profile>.json                            the summary and the learning check
    figures/training_curves_<dataset>_<profile>.png             loss / lr / validation curves

The learning check: the trained model's IR->RGB all-search Rank-1 against chance (random distances,
same protocol) and against an untrained network of the same config evaluated the same way.

`--data ROOT --dataset sysu|regdb` runs on a real copy instead; `--profile paper` selects the paper's
settings (a GPU job). The smoke profile trains fewer RegDB splits than the protocol's 10 to stay at about
10 minutes on 2 CPU cores; the results say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from reid.errors import UserError

DEFAULT_SYNTHETIC_ROOT = Path("data/synthetic")
SMOKE_REGDB_TRIALS = 2


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default="smoke",
                        help="config: smoke (CPU), paper, paper_literal, or any config name/path")
    parser.add_argument("--data", default=None, help="root of a real SYSU-MM01 or RegDB copy")
    parser.add_argument("--dataset", default=None, choices=["sysu", "regdb"], help="which dataset --data is")
    parser.add_argument("--synthetic-root", default=str(DEFAULT_SYNTHETIC_ROOT))
    parser.add_argument("--runs-dir", default="runs/reproduce", help="training runs (checkpoints, logs)")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--figures-dir", default="figures")
    parser.add_argument("--regdb-trials", type=int, default=None,
                        help=f"RegDB splits to train and test (default: 10; {SMOKE_REGDB_TRIALS} for smoke)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every training run")
    parser.add_argument("--device", default=None)


def config_name(profile: str, dataset: str) -> str:
    """`paper` and `paper_literal` have one file per dataset; any other profile is used as is."""
    return f"{profile}_{dataset}" if profile in ("paper", "paper_literal") else profile


def guess_dataset(root: Path) -> str:
    if (root / "exp").is_dir():
        return "sysu"
    if (root / "idx").is_dir():
        return "regdb"
    raise UserError(f"--data {root}: neither a SYSU-MM01 root (exp/) nor a RegDB root (idx/); "
                    "pass --dataset sysu|regdb")


def chance_level(q_pids, g_pids, q_cams=None, g_cams=None, draws: int = 20, seed: int = 0) -> dict:
    """Rank-1 and mAP (percent) of random rankings under the same protocol: the floor to beat."""
    from reid.metrics import eval_regdb, eval_sysu

    rng = np.random.default_rng(seed)
    rank1, mAP = [], []
    for _ in range(draws):
        distmat = rng.random((len(q_pids), len(g_pids)))
        if q_cams is None:
            cmc, ap, _ = eval_regdb(distmat, q_pids, g_pids)
        else:
            cmc, ap, _ = eval_sysu(distmat, q_pids, g_pids, q_cams, g_cams)
        rank1.append(100 * cmc[0])
        mAP.append(100 * ap)
    return {"rank1": float(np.mean(rank1)), "mAP": float(np.mean(mAP)), "draws": draws}


def untrained_like(checkpoint: str | Path, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised network of the checkpoint's architecture (no ImageNet weights either)."""
    from reid.checkpoint import load_checkpoint
    from reid.models import ModelConfig, build_model

    ckpt = load_checkpoint(checkpoint)
    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict({**ckpt["model_config"], "pretrained_path": None})
    return build_model(cfg, ckpt["num_classes"]).eval()


def _train(cfg, out: Path, device) -> Path:
    """Train into `out`; an unfinished run there is resumed, a finished one reused as it is."""
    from reid.engine import train

    train(cfg, out, resume=(out / "last.pt").is_file(), device=device)
    return out / "best.pt"


def _record(result: dict, name: str, results_dir: Path, checkpoint, extra: dict) -> dict:
    from reid.provenance import provenance, write_result

    result = {**result, "checkpoint": checkpoint, "provenance": provenance(extra=extra)}
    path = write_result(result, results_dir, name)
    print(f"  {result['label']}: Rank-1 {result['rank1']:.2f}%  mAP {result['mAP']:.2f}%  -> {path}")
    return result


def reproduce_sysu(args, root: Path, runs: Path, results_dir: Path, extra: dict) -> dict:
    from reid.config import load_config
    from reid.data import SYSUMM01
    from reid.evaluate import evaluate_sysu, load_model

    cfg = load_config(config_name(args.profile, "sysu"),
                      [*args.overrides, "data.dataset=sysu", f"data.root={root}"])
    print(f"== SYSU-MM01 layout at {root}: training {cfg.name} -> {runs / 'sysu'}")
    best = _train(cfg, runs / "sysu", args.device)
    dataset = SYSUMM01(root)
    out = {"config": cfg.name, "checkpoint": str(best), "run": str(runs / "sysu")}
    for label, model in [("trained", load_model(best)), ("untrained", untrained_like(best, cfg.train.seed))]:
        for mode in ("all", "indoor"):
            result = evaluate_sysu(model, dataset, mode=mode, shots=1, trials=10, device=args.device)
            name = f"reproduce_{args.profile}_sysu_{mode}_{label}"
            out[f"{mode}_{label}"] = _record(result, name, results_dir, str(best) if label == "trained" else None,
                                             {**extra, "model": label})
    for mode in ("all", "indoor"):
        query = dataset.query(mode)
        gallery = dataset.gallery(mode, trial=0, shots=1)
        out[f"{mode}_chance"] = chance_level(np.array([p for _, p, _ in query]), np.array([p for _, p, _ in gallery]),
                                             np.array([c for _, _, c in query]), np.array([c for _, _, c in gallery]))
    return out


def reproduce_regdb(args, root: Path, runs: Path, results_dir: Path, extra: dict, trials: int) -> dict:
    from reid.config import load_config
    from reid.data import RegDB
    from reid.engine import train_regdb_splits
    from reid.evaluate import evaluate_regdb

    cfg = load_config(config_name(args.profile, "regdb"),
                      [*args.overrides, "data.dataset=regdb", f"data.root={root}"])
    print(f"== RegDB layout at {root}: training {cfg.name}, one model per split 1..{trials} -> {runs / 'regdb'}")
    trained = train_regdb_splits(cfg, runs / "regdb", trials, resume=True, device=args.device)
    checkpoints = trained["checkpoints"]
    out = {"config": cfg.name, "trials": trials, "checkpoints": checkpoints}
    for direction in ("v2t", "t2v"):
        out[f"{direction}_trained"] = _record(trained[direction], f"reproduce_{args.profile}_regdb_{direction}_trained",
                                              results_dir, checkpoints, {**extra, "model": "trained"})
    untrained = [untrained_like(c, cfg.train.seed) for c in checkpoints]
    for direction in ("v2t", "t2v"):
        result = evaluate_regdb(untrained, root, trials=trials, direction=direction, device=args.device)
        out[f"{direction}_untrained"] = _record(result, f"reproduce_{args.profile}_regdb_{direction}_untrained",
                                                results_dir, None, {**extra, "model": "untrained"})
    dataset = RegDB(root, trial=1)
    for direction in ("v2t", "t2v"):
        query, gallery = dataset.query(direction), dataset.gallery(direction)
        out[f"{direction}_chance"] = chance_level(np.array([p for _, p, _ in query]),
                                                  np.array([p for _, p, _ in gallery]))
    return out


def learning_check(summary: dict) -> dict:
    """The issue's bar: trained IR->RGB all-search Rank-1 >= 5x chance and clearly above untrained."""
    trained, untrained = summary["all_trained"]["rank1"], summary["all_untrained"]["rank1"]
    chance = summary["all_chance"]["rank1"]
    return {"metric": "SYSU-layout IR->RGB all-search Rank-1 (%)", "trained": trained, "untrained": untrained,
            "chance": chance, "times_chance": trained / chance if chance else None,
            "passed": bool(trained >= 5 * chance and trained > untrained + 5.0)}


def run(args) -> int:
    from reid.data.synthetic import ensure_synthetic, summarize
    from reid.viz import plot_training_curves

    runs, results_dir, figures_dir = Path(args.runs_dir), Path(args.results_dir), Path(args.figures_dir)
    if args.data is None:
        synthetic = Path(ensure_synthetic(Path(args.synthetic_root), seed=0))
        roots = {"sysu": synthetic / "SYSU-MM01", "regdb": synthetic / "RegDB"}
        print(summarize(synthetic))
        print("(numbers below are synthetic-layout numbers, not SYSU-MM01/RegDB numbers)")
    else:
        root = Path(args.data)
        if not root.is_dir():
            raise UserError(f"--data {root}: no such directory")
        roots = {args.dataset or guess_dataset(root): root}
    trials = args.regdb_trials or (SMOKE_REGDB_TRIALS if args.profile == "smoke" else 10)
    if not 1 <= trials <= 10:
        raise UserError(f"--regdb-trials {trials}: RegDB has splits 1..10")
    extra = {"profile": args.profile}
    if trials < 10:
        extra["note"] = f"RegDB: {trials} of the protocol's 10 splits (profile {args.profile}, CPU budget)"
    runs = runs / args.profile
    summary: dict = {"profile": args.profile, "data": {k: str(v) for k, v in roots.items()}, **extra}
    figures = []
    if "sysu" in roots:
        summary["sysu"] = reproduce_sysu(args, roots["sysu"], runs, results_dir, extra)
        summary["learning_check"] = learning_check(summary["sysu"])
    if "regdb" in roots:
        summary["regdb"] = reproduce_regdb(args, roots["regdb"], runs, results_dir, extra, trials)
    for key, run_dir in [("sysu", runs / "sysu"), ("regdb", runs / "regdb" / "trial_01")]:
        if key in roots:
            png = figures_dir / f"training_curves_{key}_{args.profile}.png"
            plot_training_curves(run_dir / "log.csv", png, title=f"{args.profile} profile, {key} layout")
            figures.append(str(png))
    summary["figures"] = figures
    results_dir.mkdir(parents=True, exist_ok=True)
    summary_path = results_dir / f"reproduce_{args.profile}.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")

    print("\n== outputs")
    print(f"  training runs:   {runs}/ (last.pt, best.pt, log.csv, tb/, config.yaml per run)")
    print(f"  results:         {results_dir}/results.csv and one JSON per evaluation")
    print(f"  summary:         {summary_path}")
    for png in figures:
        print(f"  figure:          {png}")
    if "learning_check" in summary:
        check = summary["learning_check"]
        print(f"  learning check:  trained Rank-1 {check['trained']:.1f}% vs untrained {check['untrained']:.1f}% "
              f"vs chance {check['chance']:.1f}% ({check['times_chance']:.1f}x chance): "
              f"{'PASSED' if check['passed'] else 'FAILED'}")
    return 0
