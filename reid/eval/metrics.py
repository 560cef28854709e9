"""CMC, mAP and mINP with the SYSU-MM01 and RegDB rules, vectorised over queries.

The signatures are the field's usual ones (as in the official SYSU-MM01 and AGW code) so that
readers recognise them:

    cmc, mAP, mINP = eval_sysu(distmat, q_pids, g_pids, q_camids, g_camids)
    cmc, mAP, mINP = eval_regdb(distmat, q_pids, g_pids)

`distmat` is (num_query, num_gallery), smaller = more similar. `cmc` is a length-`max_rank`
array of fractions (cmc[0] = Rank-1); `mAP` and `mINP` are fractions.

Rules (see docs/deviations.md, "Evaluation protocol"):
- Ranking uses a *stable* sort, so ties keep gallery order and results are deterministic.
- SYSU-MM01: a query from IR camera 3 never sees gallery images of camera 2 (the two cameras
  share a room, so such matches would be trivially easy).
- SYSU-MM01 CMC counts each gallery identity once, at its first occurrence in the ranked list
  (the official protocol); RegDB uses the standard CMC (hit at the first positive).
- AP is computed over the full, non-deduplicated ranked list (after the cam3/cam2 removal).
- mINP = (number of positives) / (rank of the hardest positive) (Ye et al., TPAMI 2021).
- Queries without any positive in their gallery are left out of every average.

Every quantity is computed for all queries at once, without a Python loop over queries and
without sorting the (Q, G) matrix: each positive's rank is *counted* (how many gallery items come
before it), which is cheaper than an argsort because a query has only a few positives.
"""

from __future__ import annotations

import numpy as np

# SYSU-MM01: IR camera 3 and RGB camera 2 are in the same room.
SYSU_SAME_ROOM = (3, 2)


def _as_numpy(x, name: str, ndim: int) -> np.ndarray:
    """Accept numpy arrays, lists or (CPU/GPU) torch tensors; check the number of dimensions."""
    if hasattr(x, "detach"):  # a torch tensor, possibly on GPU
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def _check_inputs(distmat, q_pids, g_pids, max_rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    distmat = _as_numpy(distmat, "distmat", 2)
    q_pids = _as_numpy(q_pids, "q_pids", 1)
    g_pids = _as_numpy(g_pids, "g_pids", 1)
    num_q, num_g = distmat.shape
    if len(q_pids) != num_q:
        raise ValueError(f"distmat has {num_q} rows (queries) but q_pids has {len(q_pids)} entries")
    if len(g_pids) != num_g:
        raise ValueError(f"distmat has {num_g} columns (gallery) but g_pids has {len(g_pids)} entries")
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat must not be empty, got shape {distmat.shape}")
    if not np.isfinite(distmat).all():  # +inf is reserved for removed pairs
        raise ValueError("distmat contains NaN or infinite values")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return distmat, q_pids, g_pids


def _positive_ranks(dist: np.ndarray, positive: np.ndarray, chunk_elems: int = 1 << 20):
    """Rank of every positive pair (q, g) in query q's stably sorted list, without sorting.

    `dist` holds +inf at removed pairs so they never come before a positive. The 0-based rank
    of gallery item g for query q is the number of items j with (dist[q, j], j) < (dist[q, g], g):
    counting beats a full argsort because each query has only a few positives.
    Returns (rows, cols, ranks) with one entry per positive, in row-major order.
    """
    rows, cols = np.divmod(np.flatnonzero(positive), positive.shape[1])  # much faster than nonzero
    ranks = np.empty(len(rows), dtype=np.int64)
    gallery_index = np.arange(dist.shape[1])
    step = max(1, chunk_elems // dist.shape[1])  # bound the (positives x gallery) temporaries
    for s in range(0, len(rows), step):
        r, c = rows[s : s + step], cols[s : s + step]
        d_row, d_pos = dist[r], dist[r, c][:, None]
        ranks[s : s + step] = np.count_nonzero(d_row < d_pos, axis=1)
        # ties: equal distances come in gallery order (a stable sort); only rows with ties pay
        tied = np.flatnonzero(np.count_nonzero(d_row == d_pos, axis=1) > 1)
        if len(tied):
            earlier = (d_row[tied] == d_pos[tied]) & (gallery_index[None, :] < c[tied, None])
            ranks[s + tied] += np.count_nonzero(earlier, axis=1)
    return rows, cols, ranks


def _per_query_stats(rows, cols, ranks, num_q: int):
    """AP, INP, first-hit rank and column per query from the positives' 0-based ranks."""
    if len(rows) == 0:
        raise ValueError("no query has a positive in the gallery: the metrics are undefined")
    num_pos = np.bincount(rows, minlength=num_q)
    valid = num_pos > 0
    by_rank = np.lexsort((ranks, rows))  # group by query, best rank first
    rows, cols, ranks = rows[by_rank], cols[by_rank], ranks[by_rank]
    starts = np.searchsorted(rows, np.arange(num_q))
    # AP: the k-th positive (1-based) at rank r (1-based) has precision k / r
    k = np.arange(len(rows)) - starts[rows] + 1
    ap = np.bincount(rows, weights=k / (ranks + 1), minlength=num_q) / np.maximum(num_pos, 1)
    first = np.where(valid, starts, 0).clip(max=max(len(rows) - 1, 0))
    last = np.where(valid, starts + num_pos - 1, 0)
    # mINP: number of positives over the (1-based) rank of the hardest one
    inp = np.where(valid, num_pos / (ranks[last] + 1), 0.0)
    return ap, inp, valid, ranks[first], cols[first]


def _cmc(hit_rank: np.ndarray, max_rank: int) -> np.ndarray:
    """CMC from the 0-based rank of each query's first hit: cmc[r-1] = P(hit within top r)."""
    return (hit_rank[:, None] < np.arange(1, max_rank + 1)[None, :]).mean(axis=0).astype(np.float64)


def eval_regdb(distmat, q_pids, g_pids, max_rank: int = 20) -> tuple[np.ndarray, float, float]:
    """Standard CMC, mAP and mINP (RegDB; also any single-gallery protocol)."""
    distmat, q_pids, g_pids = _check_inputs(distmat, q_pids, g_pids, max_rank)
    positive = q_pids[:, None] == g_pids[None, :]
    ap, inp, valid, first_rank, _ = _per_query_stats(*_positive_ranks(distmat, positive), len(q_pids))
    return _cmc(first_rank[valid], int(max_rank)), float(ap[valid].mean()), float(inp[valid].mean())


def sysu_excluded(q_camids, g_camids) -> np.ndarray:
    """(num_query, num_gallery) mask of the pairs the SYSU-MM01 protocol never compares: an IR query of
    camera 3 against RGB gallery images of camera 2 (the same room)."""
    ir_cam, rgb_cam = SYSU_SAME_ROOM
    return (np.asarray(q_camids)[:, None] == ir_cam) & (np.asarray(g_camids)[None, :] == rgb_cam)


def eval_sysu(
    distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 20
) -> tuple[np.ndarray, float, float]:
    """The official SYSU-MM01 evaluation: cam3-vs-cam2 removal, identity-deduplicated CMC."""
    distmat, q_pids, g_pids = _check_inputs(distmat, q_pids, g_pids, max_rank)
    q_camids = _as_numpy(q_camids, "q_camids", 1)
    g_camids = _as_numpy(g_camids, "g_camids", 1)
    if len(q_camids) != len(q_pids):
        raise ValueError(f"q_camids has {len(q_camids)} entries but there are {len(q_pids)} queries")
    if len(g_camids) != len(g_pids):
        raise ValueError(f"g_camids has {len(g_camids)} entries but there are {len(g_pids)} gallery items")

    removed = sysu_excluded(q_camids, g_camids)
    dist = np.where(removed, np.inf, distmat)  # removed items rank after everything kept
    positive = (q_pids[:, None] == g_pids[None, :]) & ~removed
    ap, inp, valid, _, first_col = _per_query_stats(*_positive_ranks(dist, positive), len(q_pids))

    # Deduplicated CMC: the query's rank in the identity-deduplicated list is the number of
    # other identities with at least one kept item ranked before its first positive.
    gallery_index = np.arange(len(g_pids))
    d_first = dist[np.arange(len(q_pids)), first_col][:, None]
    before_first = (dist < d_first) | ((dist == d_first) & (gallery_index[None, :] < first_col[:, None]))
    before_first &= ~removed
    ids, id_of_gallery = np.unique(g_pids, return_inverse=True)
    q_index, g_index = np.divmod(np.flatnonzero(before_first), len(g_pids))
    seen = np.zeros((len(q_pids), len(ids)), dtype=bool)  # seen[q, identity]
    seen[q_index, id_of_gallery[g_index]] = True
    dedup_rank = np.count_nonzero(seen, axis=1)
    return _cmc(dedup_rank[valid], int(max_rank)), float(ap[valid].mean()), float(inp[valid].mean())


def chance_level(q_pids, g_pids, q_cams=None, g_cams=None, draws: int = 20, seed: int = 0) -> dict:
    """Rank-1 and mAP (percent) of random rankings under the same protocol (SYSU-MM01's when cameras are
    given, RegDB's otherwise): the floor every trained number is read against."""
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
