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

Every quantity is computed for all queries at once on (Q, G) arrays: no Python loop over queries.
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
    if np.isnan(distmat).any():
        raise ValueError("distmat contains NaN")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return distmat, q_pids, g_pids


def _ranked_matches(distmat, q_pids, g_pids):
    """Stable ranking; returns (order (Q,G), matches (Q,G) bool in ranked order)."""
    order = np.argsort(distmat, axis=1, kind="stable")
    matches = g_pids[order] == q_pids[:, None]
    return order, matches


def _ap_inp(matches: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP and INP per query over the ranked list restricted to `keep`.

    Returns (ap, inp, valid) where `valid` marks queries with at least one kept positive.
    """
    positives = matches & keep
    kept_rank = np.cumsum(keep, axis=1)  # 1-based rank among the kept entries
    hits_so_far = np.cumsum(positives, axis=1)
    num_pos = hits_so_far[:, -1]
    valid = num_pos > 0
    # precision@k at every positive, summed: AP = mean over positives of precision at that rank
    precision = np.where(positives, hits_so_far / np.maximum(kept_rank, 1), 0.0)
    ap = precision.sum(axis=1) / np.maximum(num_pos, 1)
    # rank of the hardest (last) positive: kept rank at the last positive position
    last_pos = positives.shape[1] - 1 - np.argmax(positives[:, ::-1], axis=1)
    hardest_rank = kept_rank[np.arange(len(kept_rank)), last_pos]
    inp = num_pos / np.maximum(hardest_rank, 1)
    return ap, inp, valid


def _cmc_from_hit_rank(hit_rank: np.ndarray, max_rank: int) -> np.ndarray:
    """CMC from the 0-based rank of the first hit of each (valid) query."""
    return (hit_rank[:, None] < np.arange(1, max_rank + 1)[None, :]).mean(axis=0)


def _summarise(cmc_hit_rank, ap, inp, valid, max_rank):
    if not valid.any():
        raise ValueError("no query has a positive in the gallery: the metrics are undefined")
    cmc = _cmc_from_hit_rank(cmc_hit_rank[valid], max_rank)
    return cmc.astype(np.float64), float(ap[valid].mean()), float(inp[valid].mean())


def eval_regdb(distmat, q_pids, g_pids, max_rank: int = 20) -> tuple[np.ndarray, float, float]:
    """Standard CMC, mAP and mINP (RegDB; also any single-gallery protocol)."""
    distmat, q_pids, g_pids = _check_inputs(distmat, q_pids, g_pids, max_rank)
    _, matches = _ranked_matches(distmat, q_pids, g_pids)
    keep = np.ones_like(matches)
    ap, inp, valid = _ap_inp(matches, keep)
    first_hit = np.argmax(matches, axis=1)  # only meaningful where valid
    return _summarise(first_hit, ap, inp, valid, int(max_rank))


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
    num_q, num_g = distmat.shape

    order, matches = _ranked_matches(distmat, q_pids, g_pids)
    ir_cam, rgb_cam = SYSU_SAME_ROOM
    keep = ~((q_camids[:, None] == ir_cam) & (g_camids[order] == rgb_cam))
    ap, inp, valid = _ap_inp(matches, keep)

    # Deduplicated CMC. The query's rank in the deduplicated list is the number of distinct
    # identities whose first kept occurrence comes before the first kept positive.
    # position[q, g] = where gallery item g sits in query q's ranked list (removed items: num_g).
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(num_g)[None, :].repeat(num_q, axis=0), axis=1)
    kept_by_gallery = np.empty_like(keep)
    np.put_along_axis(kept_by_gallery, order, keep, axis=1)
    position = np.where(kept_by_gallery, position, num_g)
    # first kept position of each identity: group gallery columns by identity, min within groups
    ids, id_of_gallery = np.unique(g_pids, return_inverse=True)
    by_id = np.argsort(id_of_gallery, kind="stable")
    group_starts = np.searchsorted(id_of_gallery[by_id], np.arange(len(ids)))
    first_of_id = np.minimum.reduceat(position[:, by_id], group_starts, axis=1)  # (Q, num_ids)
    # the query identity's column (queries whose pid is not in the gallery are invalid anyway)
    q_id_col = np.clip(np.searchsorted(ids, q_pids), 0, len(ids) - 1)
    first_pos = first_of_id[np.arange(num_q), q_id_col]
    dedup_rank = (first_of_id < first_pos[:, None]).sum(axis=1)
    return _summarise(dedup_rank, ap, inp, valid, int(max_rank))
