"""The GPU check (issue 20): what a first run on real data needs from a GPU, measured by `make gpu-check` on
one H100/H200 and written to results/gpu.md; in parts, each sized to take under 5 minutes (issue 33; not yet
timed on a GPU, the report flags a part that takes longer), so that each fits a lent machine's limit per command:

    PYTHONPATH=. python benchmarks/gpu_check.py [--part data,bench,...] [--work data/gpu_check] [--out results/gpu.md]
    make gpu-check PART=data    # then PART=bench, PART=loader, PART=resume, PART=eval (no PART: all, in order)

Every part records its outcome in --work (gpu_check.json) and every call rewrites --out from all the parts
recorded so far (one not run yet says so, with its command).

0. `data`: the synthetic SYSU-MM01 with the real set's counts, rendered by one process per CPU
   (`make_synthetic(workers=...)`); the parts below reuse it (and make it, the same way, when it is missing).
1. Training speed of the model alone (benchmarks/bench_train.py, random tensors): presets 9, 18 and base at
   P8K4 + grayscale copies of the visible images (96 images a step), 288x144, bf16 autocast, 50 timed steps
   after 10 warm-up: images/s and peak GPU memory.
2. One real epoch through the loader: a synthetic SYSU-MM01 with the real set's counts (made here, under
   --work), `paper_sysu` at preset 18 from scratch, `train.max_steps_per_epoch` 300, `data.workers: auto`:
   images/s with the loader against the random-tensor figure of 1.
3. Exact resume on CUDA: a short smoke run (3 epochs, persistent loader workers) killed with SIGKILL once
   its first checkpoint is written, resumed, and compared with an uninterrupted run, weight by weight
   (deterministic algorithms on; when the weights are not bit-equal, a second uninterrupted run gives
   the run-to-run floor of the GPU's own non-determinism).
4. `eval`: the 10-trial all-search evaluation and Grad-CAM (both branches) on CUDA, with the model of 2.
(1 is `bench`, 2 `loader`, 3 `resume`.)

Nothing is run and nothing written where torch sees no CUDA GPU: one line says so, exit 1.
`--rehearse-on-cpu` runs the same steps on the CPU at toy sizes (preset micro/tiny, 96x48, the small
synthetic set, a few steps) and writes --out (default then data/gpu_check/rehearsal.md): a check of this
script itself, not of a GPU. The data and
runs go under --work (git-ignored data/); only --out is written outside it, atomically, at the end.
Each part that fails is reported as failed in --out and makes the exit code 1; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

PRESETS = ("9", "18", "base")
# What the CPU rehearsal (--rehearse-on-cpu) shrinks; a GPU run uses none of it.
REHEARSAL = {"presets": ("micro",), "model": ["model.preset=tiny", "data.height=96", "data.width=48"],
             "resume_steps": 3}
DEVICE = "cuda"
LOADER_MODEL = ["model.preset=18"]  # part 2's model on a GPU (the rehearsal's REHEARSAL["model"] follows it)
RESUME_WORKERS = 2  # part 3's persistent loader workers
# The most one part may take on one GPU: lent machines allow 10 minutes a command, with the start-up.
PART_BUDGET_S = 300
# Deterministic kernels for the resume comparison: cuBLAS needs a fixed workspace for it.
DETERMINISTIC = ("import sys, torch; torch.use_deterministic_algorithms(True, warn_only=True); "
                 "torch.backends.cudnn.benchmark = False; from reid.cli import main; sys.exit(main(sys.argv[1:]))")


def what_runs(rehearse: bool, bf16: bool = True) -> dict:
    """What the parts run, for the report's headings: the device and its AMP (`bf16`: the GPU has it
    natively, reid.utils.device), part 2's data, preset and image size (the overrides `loader_epoch` passes,
    on paper_sysu's 288x144), part 3's workers."""
    settings = dict(item.split("=", 1) for item in
                    ["data.height=288", "data.width=144", *LOADER_MODEL, *(REHEARSAL["model"] if rehearse else [])])
    precision = "fp32" if rehearse else "bf16 autocast" if bf16 else "fp16 autocast + GradScaler"
    return {"device": "the CPU" if rehearse else "CUDA", "precision": precision,
            "data": "small synthetic" if rehearse else "real-scale synthetic", "preset": settings["model.preset"],
            "size": f"{settings['data.height']}x{settings['data.width']}", "workers": RESUME_WORKERS}


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1", CUBLAS_WORKSPACE_CONFIG=":4096:8")
    return env


def _run(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(cmd, check=False, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit {done.returncode}: {tail[0]}")
    return done.stdout


def environment() -> dict:
    from reid.utils.device import native_bf16

    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                check=False, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        driver = "unknown (nvidia-smi did not answer)"
    import timm

    return {"card": torch.cuda.get_device_name(0), "memory": f"{props.total_memory / 2**30:.0f} GiB",
            "multiprocessors": props.multi_processor_count, "driver": driver, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version(), "cpus": len(os.sched_getaffinity(0)),
            "native bf16": native_bf16(torch.device("cuda", 0))}


# --------------------------------------------------------------------------------------- 0 the data

def synthetic_sysu(work: Path, rehearse: bool) -> tuple[Path, float, int]:
    """(the SYSU-MM01 root of parts 2 and 4, seconds it took, render processes): the real-scale synthetic
    set (the rehearsal: the small one), rendered by one process per CPU; at once when it is there already."""
    from rehearse_real_scale import REAL_SCALE

    from reid.data import ensure_synthetic
    from reid.data.train_data import available_cpus

    sizes = {"small": True} if rehearse else REAL_SCALE
    workers = available_cpus()
    t = time.perf_counter()
    root = ensure_synthetic(work / ("small" if rehearse else "real_scale"), seed=0, workers=workers, **sizes)
    return Path(root) / "SYSU-MM01", time.perf_counter() - t, workers


def make_data(work: Path, rehearse: bool) -> dict:
    root, seconds, workers = synthetic_sysu(work, rehearse)
    return {"root": str(root), "data_s": seconds, "workers": workers}


# --------------------------------------------------------------------------------------- 1 the model

def bench_presets(presets, steps: int, warmup: int) -> list[dict]:
    rows = []
    for preset in presets:
        row = {"preset": preset}
        try:
            out = _run([sys.executable, "benchmarks/bench_train.py", "--config", "paper_sysu", "--device", DEVICE,
                        *(["--amp"] if DEVICE == "cuda" else []), "--steps", str(steps), "--warmup", str(warmup),
                        "--set", "data.num_ids=8", "--set", "data.num_instances=4", "--set", f"model.preset={preset}",
                        "--set", "model.pretrained=none"], timeout=240)
            rate = re.search(r"training: ([\d.]+) images/s \(([\d.]+) ms/step", out)
            memory = re.search(r"peak (?:GPU|process) memory[^:]*: ([\d.]+) GiB", out)
            params = re.search(r"([\d.]+) M parameters", out)
            row.update(images_per_s=float(rate.group(1)), ms_per_step=float(rate.group(2)),
                       peak_gib=float(memory.group(1)), params_m=float(params.group(1)))
        except (RuntimeError, subprocess.SubprocessError, AttributeError) as err:
            row["error"] = str(err)
        rows.append(row)
        print(f"bench preset {preset}: {row}", flush=True)
    return rows


# --------------------------------------------------------------------------------------- 2 the loader

def loader_epoch(work: Path, steps: int, rehearse: bool) -> dict:
    from reid.config import load_config
    from reid.data.train_data import resolve_workers
    from reid.train.engine import train

    root, made_s, _ = synthetic_sysu(work, rehearse)  # part 0's set: no time when it ran before
    run = work / "loader_epoch"
    shutil.rmtree(run, ignore_errors=True)
    cfg = load_config("paper_sysu", [f"data.root={root}", "model.pretrained=none", *LOADER_MODEL,
                                     "train.epochs=1", f"train.max_steps_per_epoch={steps}",
                                     *(REHEARSAL["model"] if rehearse else [])])
    t = time.perf_counter()
    summary = train(cfg, run, device=DEVICE)
    row = summary["history"][0]
    return {"root": str(root), "checkpoint": str(run / "last.pt"), "data_s": made_s, "run_s": time.perf_counter() - t,
            "steps": row["steps"], "images_per_s": row["images_per_s"], "epoch_s": row["epoch_time_s"],
            "workers": resolve_workers(cfg.data.workers)[0], "loss": row["loss"]}


# --------------------------------------------------------------------------------------- 3 resume

def resume_check(work: Path, steps: int) -> dict:
    from reid.data import ensure_synthetic
    from reid.utils.checkpoint import load_checkpoint

    small = Path(ensure_synthetic(work / "small", seed=0, small=True)) / "SYSU-MM01"
    base = [sys.executable, "-c", DETERMINISTIC, "train", "--config", "smoke", "--data", str(small),
            "--device", DEVICE, "--set", "train.epochs=3", "--set", f"train.max_steps_per_epoch={steps}",
            "--set", "train.eval_every=3", "--set", f"data.workers={RESUME_WORKERS}"]
    runs = {name: work / f"resume_{name}" for name in ("straight", "killed", "straight2")}
    for folder in runs.values():
        shutil.rmtree(folder, ignore_errors=True)
    _run([*base, "--output-dir", str(runs["straight"])], timeout=240)
    proc = subprocess.Popen([*base, "--output-dir", str(runs["killed"])], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (runs["killed"] / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(runs["killed"] / "last.pt", required=("epoch",))["epoch"]
    if killed_at >= 3:
        raise RuntimeError("the run finished before it could be killed: lengthen train.max_steps_per_epoch")
    _run([*base, "--output-dir", str(runs["killed"]), "--resume"], timeout=240)

    def weights(folder):
        return load_checkpoint(folder / "last.pt")["model"]

    def max_diff(a, b):
        return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())

    a, b = weights(runs["straight"]), weights(runs["killed"])
    out = {"killed_after_epoch": killed_at, "bit_equal": all(torch.equal(a[k], b[k]) for k in a),
           "max_abs_diff": max_diff(a, b)}
    if not out["bit_equal"]:  # how far two uninterrupted runs differ on this GPU: the floor
        _run([*base, "--output-dir", str(runs["straight2"])], timeout=240)
        out["floor_max_abs_diff"] = max_diff(a, weights(runs["straight2"]))
    return out


# --------------------------------------------------------------------------------------- 4 evaluation

def evaluation_and_gradcam(work: Path, checkpoint: Path, root: Path) -> dict:
    from reid.eval.evaluate import evaluate_checkpoint, load_model
    from reid.utils.checkpoint import load_checkpoint

    t = time.perf_counter()
    result = evaluate_checkpoint(str(checkpoint), "sysu", root, trials=10, device=DEVICE,
                                 results_dir=work / "results", name="gpu_check_all_search")
    out = {"eval_s": time.perf_counter() - t, "rank1": result["rank1"], "mAP": result["mAP"],
           "steps": load_checkpoint(checkpoint, required=("history",))["history"][-1]["steps"]}
    try:
        from reid.tools.gradcam import grid_cams
    except ImportError as err:  # grad-cam is a project dependency, but a bare GPU image may lack it
        out["gradcam"] = f"not run: {err}"
        return out
    model = load_model(checkpoint).to(DEVICE)
    h, w = model.cfg.img_size
    images = torch.randn(16, 3, h, w, device=DEVICE)
    references = torch.randn(16, model.feature_dim, device=DEVICE)
    t = time.perf_counter()
    maps = [grid_cams(model, images, references, branch=b) for b in (0, 1)]
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    finite = all(bool(torch.isfinite(m).all()) for m in maps)
    out["gradcam"] = (f"{'ran' if finite else 'NON-FINITE maps'}: 16 images, branch maps "
                      f"{' and '.join('x'.join(map(str, m.shape[1:])) for m in maps)}, "
                      f"{time.perf_counter() - t:.2f} s")
    return out


# --------------------------------------------------------------------------------------- report

PARTS = ("data", "bench", "loader", "resume", "eval")


def not_run(part: str) -> str:
    return f"not run yet: make gpu-check PART={part}"


def _outcome(value) -> str | None:
    """The line of a part that gave no figures (not run yet, or failed); None when it gave them."""
    if not isinstance(value, str):
        return None
    return value if value.startswith("not run") else f"failed: {value}"


def report(env: dict, bench: list | str, loader: dict | str, resume: dict | str, evaluation: dict | str,
           total_s: float, steps: int = 50, warmup: int = 10, ran: dict | None = None,
           data: dict | str | None = None, seconds: dict | None = None) -> str:
    """results/gpu.md from the parts' outcomes (a dict or list of figures, or a line: failed / not run yet);
    `seconds`: each recorded part's time, flagged past `PART_BUDGET_S`."""
    ran = ran or what_runs(rehearse=False, bf16=env.get("native bf16", True))
    seconds = seconds or {}
    over = f" (over the {PART_BUDGET_S} s budget of a part)"
    times = ", ".join(f"{name} {s:.0f} s{over if s > PART_BUDGET_S else ''}" for name, s in seconds.items())
    parts = f" (parts: {times})" if times else ""
    lines = ["# GPU check", "",
             f"`make gpu-check` (benchmarks/gpu_check.py), {time.strftime('%Y-%m-%d')}, {total_s:.0f} s in all{parts}.",
             "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items()]
    if data is not None:
        lines += ["", f"## 0. The {ran['data']} SYSU-MM01 of 2 and 4", "",
                  _outcome(data) or (f"Rendered by {data['workers']} processes in {data['data_s']:.0f} s "
                                     "(0 when it was there already).")]
    lines += ["", "## 1. Training speed, random tensors (bench_train.py)", "",
              ("P8K4 + grayscale copies of the visible images = 96 images a step, 288x144, "
               f"{ran['precision']}, SGD, "
               f"{steps} timed steps after {warmup} warm-up."), ""]
    if _outcome(bench):
        lines.append(_outcome(bench))
        bench = []
    else:
        lines += ["| preset | parameters | images/s | ms/step | peak memory |", "|---|---|---|---|---|"]
    for row in bench:
        if "error" in row:
            lines.append(f"| {row['preset']} | failed: {row['error']} | | | |")
        else:
            lines.append(f"| {row['preset']} | {row['params_m']:.1f} M | {row['images_per_s']:.0f} | "
                         f"{row['ms_per_step']:.1f} | {row['peak_gib']:.2f} GiB |")
    lines += ["", (f"## 2. One epoch through the loader ({ran['data']} SYSU-MM01, paper_sysu, preset {ran['preset']} "
              f"at {ran['size']})"), ""]
    if _outcome(loader):
        lines.append(_outcome(loader))
    else:
        ref = next((r.get("images_per_s") for r in bench if r["preset"] == "18"), None)  # the same model
        ratio = f", {100 * loader['images_per_s'] / ref:.0f} % of the random-tensor rate" if ref else ""
        workers = f"{loader['workers']} worker{'s' if loader['workers'] != 1 else ''}"
        lines.append(f"{loader['steps']} steps with {workers} (data.workers: auto): "
                     f"{loader['images_per_s']:.0f} images/s{ratio}; the epoch took {loader['epoch_s']:.0f} s "
                     f"(run {loader['run_s']:.0f} s with the cache preload; data made in {loader['data_s']:.0f} s).")
    lines += ["", (f"## 3. Kill and resume on {ran['device']} (smoke profile, 3 epochs, {ran['workers']} persistent "
              "workers)"), ""]
    if _outcome(resume):
        lines.append(_outcome(resume))
    else:
        verdict = "bit-equal to" if resume["bit_equal"] else f"max |diff| {resume['max_abs_diff']:.3g} from"
        floor = (f"; two uninterrupted runs differ by up to {resume['floor_max_abs_diff']:.3g}"
                 if "floor_max_abs_diff" in resume else "")
        lines.append(f"Killed (SIGKILL) after epoch {resume['killed_after_epoch']}, resumed: final weights "
                     f"{verdict} the uninterrupted run's{floor}.")
    lines += ["", f"## 4. Evaluation and Grad-CAM on {ran['device']} (the model of 2)", ""]
    if _outcome(evaluation):
        lines.append(_outcome(evaluation))
    else:
        lines.append(f"10-trial all-search evaluation: {evaluation['eval_s']:.0f} s (Rank-1 {evaluation['rank1']:.2f}, "
                     f"mAP {evaluation['mAP']:.2f} after {evaluation['steps']} steps from scratch on synthetic data: no accuracy "
                     f"figure). Grad-CAM: {evaluation['gradcam']}.")
    return "\n".join(lines) + "\n"


def parse_parts(text: str) -> list[str]:
    """`--part data,bench` (or repeated) -> the parts in the order they must run; unknown names refused."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown part {', '.join(unknown) or repr(text)}; expected some of "
                                         f"{', '.join(PARTS)}")
    return names


def _eval_inputs(record: dict) -> tuple[str, str]:
    loader = record.get("loader", {}).get("outcome")
    if isinstance(loader, dict):
        return loader["checkpoint"], loader["root"]
    # not run, or failed: a missing input
    raise RuntimeError("it evaluates the model of the loader part: make gpu-check PART=loader first")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", type=parse_parts, action="append", default=None,
                    help=f"which parts to run, comma-separated or repeated: {', '.join(PARTS)} (default: all, in "
                         f"order); each is sized for under {PART_BUDGET_S // 60} minutes on one GPU")
    ap.add_argument("--work", default="data/gpu_check", help="data, runs and the parts' record (made, reused)")
    ap.add_argument("--out", default=None, help="the report (default results/gpu.md; rehearsal: in --work)")
    ap.add_argument("--rehearse-on-cpu", action="store_true", help="the same steps on the CPU at toy sizes")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--loader-steps", type=int, default=300)
    args = ap.parse_args()
    chosen = [p for p in PARTS if any(p in group for group in args.part)] if args.part else list(PARTS)
    global DEVICE
    if args.rehearse_on_cpu:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU visible to torch {torch.__version__} (built for CUDA "
              f"{torch.version.cuda or 'none'}): nothing run, nothing written", file=sys.stderr)
        return 1
    from reid.utils.atomic import atomic_outputs

    work = REPO / args.work
    work.mkdir(parents=True, exist_ok=True)
    env = environment() if DEVICE == "cuda" else {"card": "none: CPU rehearsal of this script",
                                                  "torch": torch.__version__, "python": platform.python_version()}
    print(env, flush=True)
    # The parts run so far, on this card (another card's figures are not this one's): {part: {outcome, seconds}}.
    record_path = work / ("rehearsal.json" if args.rehearse_on_cpu else "gpu_check.json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("card") != env["card"]:
        record = {"card": env["card"]}
    resume_steps = REHEARSAL["resume_steps"] if args.rehearse_on_cpu else 80
    steps = {
        "data": lambda: make_data(work, args.rehearse_on_cpu),
        "bench": lambda: bench_presets(REHEARSAL["presets"] if args.rehearse_on_cpu else PRESETS, args.steps,
                                       args.warmup),
        "loader": lambda: loader_epoch(work, args.loader_steps, args.rehearse_on_cpu),
        "resume": lambda: resume_check(work, resume_steps),
        "eval": lambda: evaluation_and_gradcam(work, *map(Path, _eval_inputs(record))),
    }
    failed = False
    for name in chosen:
        t = time.perf_counter()
        try:
            outcome = steps[name]()
            failed |= name == "bench" and any("error" in r for r in outcome)
        except Exception as err:  # noqa: BLE001 -- reported in gpu.md, the other parts still run
            outcome = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            failed = True
        record[name] = {"outcome": outcome, "seconds": time.perf_counter() - t}
        if name == "bench":  # the report states the steps it timed, whichever call writes it
            record[name].update(steps=args.steps, warmup=args.warmup)
        print(f"{name} ({record[name]['seconds']:.0f} s): {outcome}", flush=True)
        with atomic_outputs([record_path], "--work") as (tmp,):  # a part killed later keeps this one's figures
            tmp.write_text(json.dumps(record, indent=1, default=str))
    outcomes = {p: record[p]["outcome"] if p in record else not_run(p) for p in PARTS}
    seconds = {p: record[p]["seconds"] for p in PARTS if p in record}
    text = report(env, outcomes["bench"], outcomes["loader"], outcomes["resume"], outcomes["eval"],
                  sum(seconds.values()), record.get("bench", {}).get("steps", args.steps),
                  record.get("bench", {}).get("warmup", args.warmup),
                  what_runs(args.rehearse_on_cpu, env.get("native bf16", True)), data=outcomes["data"],
                  seconds=seconds)
    out = REPO / (args.out or (Path(args.work) / "rehearsal.md" if args.rehearse_on_cpu else "results/gpu.md"))
    with atomic_outputs([out], "--out") as (tmp,):
        tmp.write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
