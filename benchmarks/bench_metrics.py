"""Time the vectorised SYSU-MM01 metrics against the usual one-query-at-a-time loop.

    python benchmarks/bench_metrics.py [--repeats 3]

The loop is the conventional per-query numpy implementation (argsort a row, drop the cam3/cam2
pairs, deduplicate identities with np.unique, cumulative sums): a fair baseline, not a
pure-Python strawman. Target: the vectorised version is at least 20x faster on 3803 x 301.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from reid.eval.metrics import eval_sysu


def eval_sysu_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
    cmcs, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((q_camids[i] == 3) & (g_camids[order] == 2))
        ranked_pids = g_pids[order][keep]
        matches = (ranked_pids == q_pids[i]).astype(np.int32)
        if not matches.any():
            continue
        _, first_index = np.unique(ranked_pids, return_index=True)
        unique_pids = ranked_pids[np.sort(first_index)]
        hit = np.flatnonzero(unique_pids == q_pids[i])[0]
        cmcs.append((hit < np.arange(1, max_rank + 1)).astype(np.float64))
        hits = matches.cumsum()
        positions = np.flatnonzero(matches)
        aps.append(np.mean(hits[positions] / (positions + 1.0)))
        inps.append(hits[-1] / (positions[-1] + 1.0))
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    num_q, num_g, num_ids = 3803, 301, 96
    q_pids, g_pids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    q_cams, g_cams = rng.choice([3, 6], num_q), rng.choice([1, 2, 4, 5], num_g)
    dist = (rng.random((num_q, num_g)) - 0.3 * (q_pids[:, None] == g_pids[None, :])).astype(np.float32)
    inputs = (dist, q_pids, g_pids, q_cams, g_cams)

    fast, slow = eval_sysu(*inputs), eval_sysu_loop(*inputs)
    assert np.allclose(fast[0], slow[0], atol=1e-6) and abs(fast[1] - slow[1]) < 1e-6, "results differ"

    t_vec = best_time(lambda: eval_sysu(*inputs), args.repeats)
    t_loop = best_time(lambda: eval_sysu_loop(*inputs), args.repeats)
    print(f"eval_sysu on {num_q} x {num_g} (best of {args.repeats})")
    print(f"  per-query loop : {t_loop * 1000:8.1f} ms")
    print(f"  vectorised     : {t_vec * 1000:8.1f} ms")
    print(f"  speed-up       : {t_loop / t_vec:8.1f}x  (target >= 20x)")


if __name__ == "__main__":
    main()
