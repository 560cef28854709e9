"""`python -m reid <command>`: every command-line option of the package, one library call per command.

    synth      reid.data.synthetic.make_synthetic      the procedural dataset in both real layouts
    train      reid.experiments.train_command          a config -> a run folder (RegDB: one run per split)
    calibrate  reid.experiments.calibrate              AGW trained + evaluated here, beside its published numbers
    evaluate   reid.eval.evaluate.evaluate_checkpoint  a checkpoint -> a recorded result
    compare    reid.records.compare.compare            result JSONs -> their protocol cards side by side
    analyse    reid.tools.analysis.analyse_checkpoint  a checkpoint -> t-SNE map and distance histograms
    reproduce  reid.reproduce.run                      the main job: data -> train -> evaluate -> results
    search     reid.tools.search.search_command        rank a folder of one's own images for query images
    embed      reid.tools.search.embed_command         a folder of images -> an (N, D) .npy + the path list
    export     reid.tools.export.export_command        a checkpoint's embedding network -> an ONNX file
    check-data reid.data.check.check_data              a SYSU-MM01 / RegDB copy vs the published facts
    sweep      reid.sweep.sweep_command                rows x seeds x datasets x budgets as parallel jobs
    probe      reid.tools.probe.probe_command          a backbone start (pretrained or random), frozen, ranked by 1-NN
    claims     reid.records.claims.write_claims        docs/claims.md: each claim of the paper, ours, a verdict
    pretrain   reid.train.pretrain.pretrain            the backbone pretrained on FractalDB-style images

Imports happen inside each command, so `python -m reid synth` does not pay for importing the model.
Bad input is a `UserError`: one line on stderr, exit code 2, no traceback. Every command first checks that
the `reid` Python imports is this repository's (reid/install.py). check-data exits 1 when it finds differences.
"""

from __future__ import annotations

import argparse
import sys

from reid.utils.errors import UserError

EXAMPLES = {
    "synth": "python -m reid synth --out data/synthetic --seed 0",
    "train": "python -m reid train --config paper_sysu --data /data/SYSU-MM01",
    "calibrate": "python -m reid calibrate --data /data/SYSU-MM01 --set model.pretrained=torchvision",
    "evaluate": "python -m reid evaluate --checkpoint runs/sysu/best.pt --dataset sysu --data /data/SYSU-MM01",
    "compare": "python -m reid compare results/a.json results/b.json",
    "analyse": "python -m reid analyse --checkpoint runs/sysu/best.pt --dataset sysu --data /data/SYSU-MM01 "
               "--out figures/analysis_sysu",
    "reproduce": "python -m reid reproduce --profile smoke",
    "search": "python -m reid search --checkpoint runs/sysu/best.pt --query night/ --gallery day/ --top 10 "
              "--out ranks.png",
    "embed": "python -m reid embed --checkpoint runs/sysu/best.pt --images day/ --out feats.npy",
    "export": "python -m reid export --checkpoint runs/sysu/best.pt --format onnx --out model.onnx",
    "check-data": "python -m reid check-data --dataset sysu --data /data/SYSU-MM01",
    "probe": "python -m reid probe --data data/synthetic-v5 --pretrained weights.safetensors --random-seeds 0-2",
    "sweep": "python -m reid sweep --grid table3 --jobs 2   (or --name NAME --rows table3_baseline:0-4,"
             "table3_full --seeds 0-2 --budgets 540,3600)",
    "claims": "python -m reid claims",
    "release": "python -m reid release --checkpoint smoke-sysu-seed0-<hash>",
    "pretrain": "python -m reid pretrain --out results/pretrained/fractal_micro_conv_96x48 --steps 9000",
}


# -------------------------------------------------------------------------------------------- synth

def add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None,
                   help="output folder (gets SYSU-MM01/ and RegDB/; default: data/synthetic of the repository)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help="the tiny set used by the tests")
    p.add_argument("--num-ids", type=int, default=None, help="SYSU train identities")
    p.add_argument("--val-ids", type=int, default=None, help="SYSU val identities")
    p.add_argument("--test-ids", type=int, default=None, help="SYSU test identities")
    p.add_argument("--images-per-camera", type=int, default=None, help="SYSU images per RGB camera")
    p.add_argument("--ir-images-per-camera", type=int, default=None)
    p.add_argument("--regdb-ids", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--version", type=int, default=None,
                   help="generator version (default: the current default; 4 = centred people on one background "
                        "a camera, 5 = realistic capture, docs/synthetic.md)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering the images (same files for any number)")
    p.add_argument("--measure", action="store_true",
                   help="write nothing: print the realism table of --version (docs/synthetic.md) and stop")


def synth(args) -> None:
    from reid.data.synthetic import GENERATOR_VERSION, make_synthetic, summarize

    version = GENERATOR_VERSION if args.version is None else args.version
    if args.measure:
        from reid.data.realism import realism_table

        print(realism_table(version, seed=args.seed))
        return
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    sizes = {"sysu_train_ids": args.num_ids, "sysu_val_ids": args.val_ids, "sysu_test_ids": args.test_ids,
             "images_per_rgb_camera": args.images_per_camera, "images_per_ir_camera": args.ir_images_per_camera,
             "regdb_ids": args.regdb_ids, "height": args.height, "width": args.width}
    if args.out is None:
        from reid.data.train_data import DEFAULT_SYNTHETIC_ROOT

        args.out = DEFAULT_SYNTHETIC_ROOT
    root = make_synthetic(args.out, args.seed, args.small, version, args.workers,
                          **{k: v for k, v in sizes.items() if v is not None})
    print(summarize(root))


# -------------------------------------------------------------------------------------------- train

def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="smoke", help="config name in reid/configs or a YAML path (a table row too)")
    p.add_argument("--profile", default=None,
                   help="run the config on a profile's base settings, e.g. a Table 3 row with --profile smoke "
                        "(the name the notebooks record it under: table3_ta@smoke)")
    p.add_argument("--dataset", choices=["sysu", "regdb"], default=None, help="default: the config's data.dataset")
    p.add_argument("--data", default=None, help="dataset root (default: the synthetic set, made if missing)")
    p.add_argument("--seed", type=int, default=None,
                   help="train.seed (default: a --set train.seed=S, else 0; both, differing: refused)")
    p.add_argument("--runs-dir", default="runs",
                   help="runs go to RUNS_DIR/<config>-<dataset>[-split<n>]-seed<s>-<hash> (the notebooks' folder "
                        "for the same row): a finished run is reused, an unfinished one resumed")
    p.add_argument("--output-dir", default=None,
                   help="instead: this one run's folder (last.pt, best.pt, log.csv, tb/); --resume continues it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.01 (repeatable)")
    p.add_argument("--splits", type=int, default=None,
                   help="RegDB: train one model per split 1..N, test each, record both directions")
    p.add_argument("--results-dir", default="results", help="where --splits records its results")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")


def train(args) -> None:
    from reid.experiments import config_dataset, train_command

    train_command(args.config, args.dataset or config_dataset(args.config), args.data, profile=args.profile,
                  seed=args.seed, overrides=args.overrides, runs_dir=args.runs_dir, output_dir=args.output_dir,
                  resume=args.resume, splits=args.splits, results_dir=args.results_dir, device=args.device)


# ---------------------------------------------------------------------------------------- calibrate

def add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["sysu", "regdb"], default="sysu", help="config agw_<dataset>")
    p.add_argument("--data", default=None, help="dataset root (default: the synthetic set, made if missing)")
    p.add_argument("--profile", default=None,
                   help="default: AGW's own paper-size settings; smoke: the CPU variant (micro ResNet, 96x48)")
    p.add_argument("--seed", type=int, default=None, help="train.seed (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.pretrained=torchvision (repeatable)")
    p.add_argument("--splits", type=int, default=None, help="RegDB splits 1..N (default: 10; 1 on smoke)")
    p.add_argument("--runs-dir", default="runs", help="runs go to RUNS_DIR/<config>-<dataset>-seed<s>-<hash>")
    p.add_argument("--results-dir", default="results", help="where the results are recorded")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")


def calibrate(args) -> None:
    from reid.experiments import calibrate as run_calibration

    run_calibration(args.dataset, args.data, profile=args.profile, seed=args.seed, overrides=args.overrides,
                    runs_dir=args.runs_dir, results_dir=args.results_dir, splits=args.splits, device=args.device)


# ----------------------------------------------------------------------------------------- evaluate

def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="trained checkpoint; for RegDB a path with {split} (e.g. split_{split:02d}) gives one per split")
    p.add_argument("--dataset", required=True, choices=["sysu", "regdb"])
    p.add_argument("--data", required=True, help="dataset root (the SYSU-MM01 or RegDB folder)")
    p.add_argument("--mode", default="all", choices=["all", "indoor"], help="SYSU-MM01 search mode")
    p.add_argument("--shots", default=1, type=int, choices=[1, 10], help="SYSU-MM01 gallery images per id/camera")
    p.add_argument("--trials", default=10, type=int, help="SYSU-MM01 gallery draws (<= 10)")
    p.add_argument("--splits", default=None, type=int, help="RegDB splits 1..N (default: all ten)")
    p.add_argument("--direction", default="v2t", choices=["v2t", "t2v"], help="RegDB query -> gallery")
    p.add_argument("--rerank", nargs="?", const="released", default=False, choices=["released", "eq7"],
                   help="k-reciprocal re-ranking, named in the result: the authors' released code (default) or "
                        "eq7, the paper's literal Eq. 6-7")
    p.add_argument("--flip", action="store_true", help="average the embeddings of each image and its mirror")
    p.add_argument("--test-feature", choices=["after_bn", "before_bn"], default=None,
                   help="embedding to use (default: the checkpoint's model config)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--synthetic", choices=["auto", "yes", "no"], default="auto",
                   help="is --data the synthetic dataset? auto: look for the generator's manifest")
    p.add_argument("--results-dir", default="results", help="where <name>.json and results.csv go")
    p.add_argument("--name", default=None, help="result name (default: date, dataset and setting)")
    p.add_argument("--json", default=None, help="also write the result JSON here")


def evaluate(args) -> None:
    from reid.eval.evaluate import REGDB_SPLITS, evaluate_checkpoint

    evaluate_checkpoint(
        args.checkpoint, args.dataset, args.data, mode=args.mode, shots=args.shots, trials=args.trials,
        splits=REGDB_SPLITS if args.splits is None else args.splits, direction=args.direction,
        test_feature=args.test_feature, batch_size=args.batch_size, device=args.device, flip=args.flip, rerank=args.rerank,
        synthetic={"auto": None, "yes": True, "no": False}[args.synthetic], results_dir=args.results_dir,
        name=args.name, json_path=args.json)


# ------------------------------------------------------------------------------------------ compare

def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="result JSONs (results/<name>.json)")


def compare(args) -> None:
    from reid.records.compare import compare as compare_results

    print(compare_results(args.results))


# ------------------------------------------------------------------------------------------ analyse

def add_analyse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="trained checkpoint (RegDB: may hold {split})")
    p.add_argument("--dataset", required=True, choices=["sysu", "regdb"])
    p.add_argument("--data", required=True, help="dataset root (the SYSU-MM01 or RegDB folder)")
    p.add_argument("--out", required=True, help="folder for embedding_map.png, distance_histograms.png, "
                                                "analysis.json")
    p.add_argument("--mode", default="all", choices=["all", "indoor"], help="SYSU-MM01 search mode")
    p.add_argument("--split", default=1, type=int, help="RegDB split")
    p.add_argument("--max-ids", default=10, type=int,
                   help="identities on the t-SNE map (first ones, sorted; up to 10 get colours one can tell apart)")
    p.add_argument("--test-feature", choices=["after_bn", "before_bn"], default=None,
                   help="embedding to use (default: the checkpoint's model config)")
    p.add_argument("--flip", action="store_true", help="average the embeddings of each image and its mirror")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")


def analyse(args) -> None:
    from reid.tools.analysis import analyse_checkpoint

    analyse_checkpoint(args.checkpoint, args.dataset, args.data, args.out, mode=args.mode, split=args.split,
                       max_ids=args.max_ids, test_feature=args.test_feature, flip=args.flip,
                       batch_size=args.batch_size, device=args.device)


# ---------------------------------------------------------------------------------------- reproduce

def add_reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", help="smoke (CPU), paper, paper_literal, paper_literal_batch (P4K4), or any config name/path")
    p.add_argument("--data", default=None,
                   help="DATA: the folder that holds a real SYSU-MM01/ and/or RegDB/ (each found is reproduced), or "
                        "one dataset's own folder")
    p.add_argument("--dataset", default=None, choices=["sysu", "regdb"], help="which dataset --data is")
    p.add_argument("--synthetic-root", default=None, help="the synthetic set (default: data/synthetic of the repository)")
    p.add_argument("--runs-dir", default="runs", help="training runs, cached by their resolved config")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--figures-dir", default="figures")
    p.add_argument("--regdb-splits", type=int, default=None,
                   help="RegDB splits to train and test (default: 10 on paper profiles, 1 otherwise)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every training run")
    p.add_argument("--device", default=None)


def reproduce(args) -> None:
    from reid.reproduce import run

    run(profile=args.profile, data=args.data, dataset=args.dataset, synthetic_root=args.synthetic_root,
        runs_dir=args.runs_dir, results_dir=args.results_dir, figures_dir=args.figures_dir,
        regdb_splits=args.regdb_splits, overrides=args.overrides, device=args.device)


# ------------------------------------------------------------------------------------- search, embed

def _add_embedding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="trained checkpoint (best.pt / last.pt of a run)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--flip", action="store_true", help="average the embeddings of each image and its mirror")


def add_search(p: argparse.ArgumentParser) -> None:
    _add_embedding_options(p)
    p.add_argument("--query", required=True, help="a query image, or a folder of them (subfolders too)")
    p.add_argument("--gallery", required=True, help="folder of images to rank (subfolders too), no labels needed")
    p.add_argument("--top", type=int, default=10, help="gallery images kept per query")
    p.add_argument("--out", required=True,
                   help="figure (.png, .jpg, .pdf, .svg); the full ranking goes beside it as a .csv")
    p.add_argument("--figure-queries", type=int, default=8,
                   help="the figure shows the first N queries (the CSV has every query)")


def search(args) -> None:
    from reid.tools.search import search_command

    search_command(args.checkpoint, args.query, args.gallery, args.out, top=args.top,
                   figure_queries=args.figure_queries, batch_size=args.batch_size, device=args.device,
                   flip=args.flip)


def add_embed(p: argparse.ArgumentParser) -> None:
    _add_embedding_options(p)
    p.add_argument("--images", required=True, help="an image or a folder of images (subfolders too)")
    p.add_argument("--out", required=True, help="(N, D) float32 .npy; the image paths, one a line, go beside it "
                                                "as a .txt in row order")


def embed(args) -> None:
    from reid.tools.search import embed_command

    embed_command(args.checkpoint, args.images, args.out, batch_size=args.batch_size, device=args.device,
                  flip=args.flip)


# ------------------------------------------------------------------------------------------- export

def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="trained checkpoint (best.pt / last.pt of a run)")
    p.add_argument("--format", dest="fmt", default="onnx", choices=["onnx"])
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the file with onnxruntime against torch")


def export(args) -> None:
    from reid.tools.export import export_command

    export_command(args.checkpoint, args.out, fmt=args.fmt, check=args.check)


# --------------------------------------------------------------------------------------- check-data

def add_check_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=["sysu", "regdb"])
    p.add_argument("--data", required=True, help="dataset root (the SYSU-MM01 or RegDB folder)")


def check_data(args) -> int:
    from reid.data.check import check_data

    report = check_data(args.data, args.dataset)
    print(report.text())
    return 0 if report.ok else 1


# -------------------------------------------------------------------------------------------- sweep

def add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", default=None,
                   help="a named grid (table3, table4, budget, budget_long, controls_loss, controls_csa, "
                        "recipe_parity, baseline_retuned, data_seed1, data_seed2 in reid/sweep.py): its name, rows, seeds, datasets and budgets, each of which a flag below "
                        "can still override")
    p.add_argument("--name", default=None, help="the sweep's name: results in RESULTS_DIR/NAME (default: --grid)")
    p.add_argument("--rows", default=None,
                   help="comma list of configs (table rows, 'full' = the profile's own), each optionally with "
                        "its own seeds after ':' (e.g. table3_baseline:0-4,table3_ta)")
    p.add_argument("--seeds", default=None, help="training seeds of rows without their own, e.g. 0-2 or 0,3 "
                                               "(default 0-2)")
    p.add_argument("--datasets", default=None, help="comma list: sysu, regdb (RegDB: split 1 on the CPU profiles, its 10 splits on "
                        "paper*; default sysu)")
    p.add_argument("--budgets", default=None,
                   help="comma list of total training steps, each a multiple of the profile's epochs (default: "
                        "the grid's, made valid for the profile, or the profile's own, e.g. 3600 on smoke)")
    p.add_argument("--profile", default="smoke", help="base settings every row runs on")
    p.add_argument("--data", default=None,
                   help="DATA: the folder that holds SYSU-MM01/ and RegDB/ (a dataset's own folder is taken for "
                        "that dataset; default: the synthetic set, made when missing)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value in every row (repeatable)")
    p.add_argument("--baseline", default=None, help="row the paired differences are taken against (default: the first)")
    p.add_argument("--launcher", default="local", help="local (submitit's local executor) or slurm")
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs at a time (default: the number of CPU cores; one torch thread each)")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--time", type=int, default=24 * 60, help="minutes a job may run (SLURM time limit)")
    p.add_argument("--gpus-per-job", type=int, default=0,
                   help="GPUs per job; N > 1: each job trains with DDP over N processes, one per GPU")
    p.add_argument("--cpus-per-job", type=int, default=8, help="SLURM CPUs per job")
    p.add_argument("--finished-only", action="store_true",
                   help="train nothing: record and tabulate the runs that have finished (a partial table)")
    p.add_argument("--retrain", action="store_true",
                   help="train every job, also those whose results are recorded already in RESULTS_DIR")
    p.add_argument("--check", action="store_true",
                   help="train and write nothing: validate the whole sweep (rows, seeds, budgets, data, launcher, "
                        "baseline, results folder) and stop (make ablation checks every grid first)")
    p.add_argument("--summary-only", action="store_true",
                   help="train and read nothing: rewrite RESULTS_DIR/NAME/summary.md from its committed runs.csv "
                        "with today's statistics")
    p.add_argument("--runs-dir", default="runs/sweeps")
    p.add_argument("--results-dir", default="results/sweeps")


def sweep(args) -> int:
    import os
    from pathlib import Path

    from reid.sweep import PROTOCOLS_OF, grid_budgets, grid_spec, parse_budgets, parse_seeds, sweep_command

    spec = grid_spec(args.grid) if args.grid else {}
    name = args.name or args.grid
    if not name:
        raise UserError("--name: name the sweep (or give --grid)")
    if args.rows is None and not spec and not args.summary_only:  # a summary is rewritten from runs.csv alone
        raise UserError("--rows: name at least one config (or give --grid)")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows is not None else list(spec.get("rows", []))
    datasets = (tuple(d.strip() for d in args.datasets.split(",") if d.strip()) if args.datasets is not None
                else tuple(spec.get("datasets", ("sysu",))))
    baseline = args.baseline or spec.get("baseline")
    if args.summary_only:
        from reid.sweep import rewrite_summary

        rewrite_summary(Path(args.results_dir) / name, baseline)
        return 0
    if spec.get("data") and not args.data:
        raise UserError(f"--grid {args.grid} runs on {spec['data']}, not the default set: make it with "
                        f"`{spec['data_command']}`, then add --data {spec['data']}")
    for d in datasets:
        if d not in PROTOCOLS_OF:
            raise UserError(f"--datasets {d!r}: expected sysu and/or regdb")
    seeds = parse_seeds(args.seeds if args.seeds is not None else spec.get("seeds", "0-2"))
    parallel = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    # typed budgets are taken as they are (or refused); a grid's own are made valid for the profile
    budgets = parse_budgets(args.budgets) if args.budgets is not None else \
        grid_budgets(name, spec.get("budgets"), args.profile, datasets) if datasets else ()
    from reid.data.train_data import data_roots

    if args.data:
        roots = data_roots(args.data, datasets)
    else:
        from reid.data import ensure_synthetic
        from reid.data.train_data import DEFAULT_SYNTHETIC_ROOT

        roots = data_roots(ensure_synthetic(DEFAULT_SYNTHETIC_ROOT, seed=0), datasets)
    slurm = {"partition": args.partition, "gpus": args.gpus_per_job, "cpus": args.cpus_per_job}
    result = sweep_command(rows, seeds, datasets, budgets, args.profile, roots, args.overrides, args.launcher,
                           parallel, name, args.runs_dir, args.results_dir, baseline, slurm, args.time,
                           finished_only=args.finished_only, retrain=args.retrain, check_only=args.check)
    failed = [s for s in result["summaries"] if "error" in s and not s["error"].startswith("not trained yet")]
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------- claims

def add_claims(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="where to write the page (default: docs/claims.md)")


def claims(args) -> None:
    from reid.records.claims import write_claims

    write_claims(out=args.out)


# ------------------------------------------------------------------------------------------ release

def add_release(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", default=[], metavar="RUN",
                   help="also release this recorded run's weights to results/checkpoints/ (repeatable)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--runs-dir", action="append", default=None,
                   help="where the run folders are (repeatable; default: runs and runs/sweeps)")


def release(args) -> None:
    from reid.records.release import RUNS_DIRS
    from reid.records.release import release as release_runs

    done = release_runs(args.results_dir, args.runs_dir or RUNS_DIRS, checkpoints=args.checkpoint)
    print(f"{args.results_dir}/runs/: the log and config of {len(done['logs'])} recorded runs"
          + (f"; {len(done['missing'])} recorded runs are no longer in runs/" if done["missing"] else ""))
    for entry in done["checkpoints"]:
        print(f"{args.results_dir}/checkpoints/{entry['file']}: {entry['bytes']:,} bytes, sha256 {entry['sha256']}")


# ----------------------------------------------------------------------------------------- pretrain

def add_pretrain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None,
                   help="writes OUT.safetensors (the backbone) and OUT.json (provenance); default: the "
                        "repository's results/pretrained/fractal_micro_conv_96x48 (FRACTAL_WEIGHTS)")
    p.add_argument("--preset", default="micro", help="backbone preset (model.preset)")
    p.add_argument("--conv-stem", choices=["yes", "no"], default="yes", help="model.conv_stem")
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=48)
    p.add_argument("--classes", type=int, default=1000, help="fractal categories")
    p.add_argument("--images-per-class", type=int, default=64, help="training instances per category")
    p.add_argument("--held-out-per-class", type=int, default=5, help="held-out instances per category")
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (warm-up, then cosine)")
    p.add_argument("--seed", type=int, default=0)


def pretrain(args) -> None:
    from reid.train.pretrain import pretrain as pretrain_backbone

    pretrain_backbone(args.out, preset=args.preset, conv_stem=args.conv_stem == "yes", height=args.height,
                      width=args.width, classes=args.classes, images_per_class=args.images_per_class,
                      held_out_per_class=args.held_out_per_class, steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed)


# ------------------------------------------------------------------------------------------- main

# -------------------------------------------------------------------------------------------- probe

def add_probe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with SYSU-MM01/ (e.g. a synthetic set)")
    p.add_argument("--pretrained", action="append", default=[], metavar="FILE",
                   help="a weights file to start from (repeatable)")
    p.add_argument("--random-seeds", default=None, help="random starts to compare with, e.g. 0-2")
    p.add_argument("--config", default="smoke", help="the config whose backbone is probed")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--out", default=None, help="a JSON of the rows with their provenance")


def probe(args) -> None:
    from reid.sweep import parse_seeds
    from reid.tools.probe import probe_command

    seeds = parse_seeds(args.random_seeds, "--random-seeds") if args.random_seeds else []
    probe_command(args.data, args.pretrained, seeds, args.config, args.trials, args.out)


COMMANDS = {
    "synth": (add_synth, synth, "write the procedural synthetic dataset in the SYSU-MM01 and RegDB layouts"),
    "train": (add_train, train, "train a model from a config"),
    "calibrate": (add_calibrate, calibrate, "train and evaluate AGW, the calibration baseline, beside its published numbers"),
    "evaluate": (add_evaluate, evaluate, "evaluate a checkpoint with the SYSU-MM01 / RegDB protocols"),
    "compare": (add_compare, compare, "set result cards side by side: are the numbers comparable?"),
    "analyse": (add_analyse, analyse, "t-SNE map and distance histograms of a checkpoint's test embeddings"),
    "reproduce": (add_reproduce, reproduce, "the main job: synthetic data -> train -> evaluate -> tables and figures"),
    "search": (add_search, search, "rank a folder of unlabelled images for each query image: a figure and a CSV"),
    "embed": (add_embed, embed, "embed a folder of images: an (N, D) .npy and the image path of each row"),
    "export": (add_export, export, "export a checkpoint's embedding network (eval mode) to ONNX"),
    "check-data": (add_check_data, check_data,
                   ("compare a SYSU-MM01 / RegDB copy with the published counts; list odd files; print a "
                    "fingerprint (exit 0: all match, 1: differences, 2: not such a dataset)")),
    "sweep": (add_sweep, sweep, "train and evaluate a grid of table rows x seeds x datasets x budgets as parallel jobs"),
    "probe": (add_probe, probe, "what a backbone start knows before training: frozen features ranked by 1-NN"),
    "claims": (add_claims, claims, "write docs/claims.md: each claim of the paper, our number, a verdict (from records)"),
    "pretrain": (add_pretrain, pretrain, "pretrain the backbone on FractalDB-style images (a stand-in for ImageNet)"),
    "release": (add_release, release, "commit beside the records: each recorded run's log and config, chosen weights"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=f"example: {EXAMPLES[name]}")
        add(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reid.install import check_package
    from reid.records.provenance import git_state

    try:
        package = check_package()  # before anything else: is the `reid` Python imports this repository's?
        for line in package.warnings:
            print(f"warning: {line}", file=sys.stderr)
        if package.problems:
            raise UserError(package.problems[0])
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        git_state()  # the code's state when the command starts: what every result of this run records
        return COMMANDS[args.command][1](args) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a sweep says what it recorded and how to resume (reid.sweep.SweepStopped)
        print(f"interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
