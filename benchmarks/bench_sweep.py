"""Sweep throughput: real smoke training (data loading included) as one job at 1 and at 2 torch threads,
and as 2 single-thread jobs side by side; images/s of each, printed (nothing asserted).

    python benchmarks/bench_sweep.py                 # 300 steps per job on the default synthetic set
    python benchmarks/bench_sweep.py --steps 100

Each job is `python -m reid train --config smoke` for one epoch of --steps steps in a fresh folder; its
images/s is read from the run's log.csv (images the model saw / epoch time, so start-up is not counted).
Run it on a quiet machine: anything else on the cores changes every figure (a two-thread job beside one
other process slows about 10x).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start(out: Path, steps: int, threads: int, data: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "reid", "train", "--config", "smoke", "--data", str(data), "--output-dir",
           str(out), "--set", "train.epochs=1", "--set", f"data.batches_per_epoch={steps}", "--set",
           f"train.max_steps_per_epoch={steps}", "--set", "optim.warmup_epochs=0", "--set", "optim.milestones=[5]"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def images_per_s(out: Path) -> float:
    with open(out / "log.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["images_per_s"])


def run(jobs: list[tuple[Path, int]], steps: int, data: Path) -> list[float]:
    procs = [start(out, steps, threads, data) for out, threads in jobs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a benchmark job failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    return [images_per_s(out) for out, _ in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per job (one epoch)")
    parser.add_argument("--data", default=None, help="SYSU-MM01 folder (default: the synthetic set)")
    args = parser.parse_args()
    from reid.data import ensure_synthetic
    from reid.records.provenance import hardware

    data = Path(args.data) if args.data else ensure_synthetic(ROOT / "data" / "synthetic", seed=0) / "SYSU-MM01"
    print(f"smoke training, {args.steps} steps per job, data loading included; {os.cpu_count()} cores "
          f"({hardware().get('cpu', 'unknown CPU')})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        one = run([(tmp / "one-1", 1)], args.steps, data)[0]
        two = run([(tmp / "one-2", 2)], args.steps, data)[0]
        pair = run([(tmp / "pair-a", 1), (tmp / "pair-b", 1)], args.steps, data)
        wall = time.perf_counter() - t0
    print(f"  1 job, 1 thread:              {one:7.1f} images/s")
    print(f"  1 job, 2 threads:             {two:7.1f} images/s")
    print(f"  2 jobs, 1 thread each:        {pair[0]:7.1f} + {pair[1]:7.1f} = {sum(pair):7.1f} images/s")
    print(f"  2 single-thread jobs / 1 two-thread job: {sum(pair) / two:.2f}x the work ({wall:.0f} s in all)")


if __name__ == "__main__":
    main()
