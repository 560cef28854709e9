"""Metrics: hand-computed tiny cases for every rule, and agreement with a plain per-query loop."""

import numpy as np
import pytest
import torch

from reid.eval.metrics import eval_regdb, eval_sysu


# ---------------------------------------------------------------- plain one-query-at-a-time loop
def loop_eval(distmat, q_pids, g_pids, q_camids=None, g_camids=None, max_rank=20, dedup=False):
    """The obvious reference: one query at a time, lists and Python control flow."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        ranked = [j for j in order if not (q_camids is not None and q_camids[i] == 3 and g_camids[j] == 2)]
        hits = [g_pids[j] == q_pids[i] for j in ranked]
        if not any(hits):
            continue
        if dedup:
            seen, unique = set(), []
            for j in ranked:
                if g_pids[j] not in seen:
                    seen.add(g_pids[j])
                    unique.append(g_pids[j])
            first = unique.index(q_pids[i])
        else:
            first = hits.index(True)
        cmcs.append([1.0 if first < r else 0.0 for r in range(1, max_rank + 1)])
        num_pos, precisions = 0, []
        for k, h in enumerate(hits):
            if h:
                num_pos += 1
                precisions.append(num_pos / (k + 1))
        aps.append(sum(precisions) / num_pos)
        hardest = max(k for k, h in enumerate(hits) if h) + 1
        inps.append(num_pos / hardest)
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


# ---------------------------------------------------------------- hand-computed rules
def test_regdb_hand_computed():
    # one query, gallery ranked [neg, pos, neg, pos] by distance
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    cmc, mAP, mINP = eval_regdb(dist, np.array([7]), np.array([1, 7, 2, 7]), max_rank=4)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])
    assert mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert mINP == pytest.approx(2 / 4)


def test_sysu_cam3_query_never_sees_cam2():
    # the only close positive is on camera 2; a camera-3 query must skip it, a camera-6 one not
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    g_pids, g_cams = np.array([5, 1, 5]), np.array([2, 1, 4])
    cmc3, ap3, inp3 = eval_sysu(dist[:1], [5], g_pids, [3], g_cams, max_rank=2)
    cmc6, ap6, inp6 = eval_sysu(dist[1:], [5], g_pids, [6], g_cams, max_rank=2)
    np.testing.assert_allclose(cmc3, [0, 1])
    assert ap3 == pytest.approx(1 / 2) and inp3 == pytest.approx(1 / 2)
    np.testing.assert_allclose(cmc6, [1, 1])
    assert ap6 == pytest.approx((1 + 2 / 3) / 2) and inp6 == pytest.approx(2 / 3)


def test_sysu_cmc_counts_each_identity_once():
    # ranked gallery pids: 1, 1, 1, 9 (the positive). Standard CMC: hit at rank 4;
    # deduplicated CMC: the list is [1, 9], hit at rank 2. AP stays on the full list (1/4).
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    g_pids, g_cams = np.array([1, 1, 1, 9]), np.array([1, 1, 1, 1])
    cmc, mAP, mINP = eval_sysu(dist, [9], g_pids, [6], g_cams, max_rank=4)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])
    assert mAP == pytest.approx(1 / 4) and mINP == pytest.approx(1 / 4)
    cmc_std, _, _ = eval_regdb(dist, [9], g_pids, max_rank=4)
    np.testing.assert_allclose(cmc_std, [0, 0, 0, 1])


def test_queries_without_positive_are_left_out():
    dist = np.array([[0.1, 0.2], [0.1, 0.2]])
    g_pids = np.array([1, 2])
    cmc, mAP, mINP = eval_regdb(dist, [1, 3], g_pids, max_rank=2)  # pid 3 is not in the gallery
    np.testing.assert_allclose(cmc, [1, 1])
    assert mAP == 1.0 and mINP == 1.0
    # SYSU: the only positive sits on camera 2 and the query is on camera 3 -> no positive left
    # (query 0, pid 2, would score 0 at Rank-1 if it were counted as a miss)
    cmc, mAP, _ = eval_sysu(dist, [2, 1], g_pids, [3, 3], [1, 2], max_rank=2)
    np.testing.assert_allclose(cmc, [1, 1])  # only query 1 (pid 1, found first) counts
    assert mAP == 1.0
    with pytest.raises(ValueError, match="no query has a positive"):
        eval_regdb(dist, [8, 9], g_pids)


def test_ties_are_broken_by_gallery_order():
    dist = np.zeros((1, 3))
    cmc, mAP, _ = eval_regdb(dist, [2], [1, 2, 2], max_rank=3)
    np.testing.assert_allclose(cmc, [0, 1, 1])  # stable sort keeps [1, 2, 2]
    assert mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_max_rank_beyond_gallery_size_and_torch_inputs():
    dist = torch.tensor([[0.3, 0.1]])
    cmc, _, _ = eval_sysu(dist, torch.tensor([4]), torch.tensor([4, 5]), torch.tensor([6]), torch.tensor([1, 1]))
    assert cmc.shape == (20,)
    np.testing.assert_allclose(cmc, [0] + [1] * 19)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: eval_regdb(np.zeros((2, 3)), [1, 2, 3], [1, 2, 3]), "rows"),
        (lambda: eval_regdb(np.zeros((2, 3)), [1, 2], [1, 2]), "columns"),
        (lambda: eval_regdb(np.zeros(3), [1], [1, 2, 3]), "2-D"),
        (lambda: eval_sysu(np.zeros((2, 3)), [1, 2], [1, 2, 3], [3], [1, 1, 1]), "q_camids"),
        (lambda: eval_sysu(np.zeros((2, 3)), [1, 2], [1, 2, 3], [3, 3], [1, 1]), "g_camids"),
        (lambda: eval_regdb(np.full((1, 2), np.nan), [1], [1, 2]), "NaN"),
        (lambda: eval_regdb(np.array([[0.0, np.inf]]), [1], [1, 2]), "infinite"),
        (lambda: eval_regdb(np.zeros((1, 2)), [1], [1, 2], max_rank=0), "max_rank"),
    ],
)
def test_bad_shapes_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- agreement with the loop
def sysu_shaped_problem(rng, num_q=3803, num_g=301, num_ids=96):
    """Random SYSU-like test set: IR queries on cameras 3/6, RGB gallery on 1/2/4/5, some ties."""
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.choice([3, 6], num_q)
    g_cams = rng.choice([1, 2, 4, 5], num_g)
    dist = rng.random((num_q, num_g)).round(2)  # rounding makes ties common
    dist -= 0.3 * (q_pids[:, None] == g_pids[None, :])  # positives tend to rank high
    return dist, q_pids, g_pids, q_cams, g_cams


def test_sysu_vectorised_equals_loop_on_full_size():
    rng = np.random.default_rng(0)
    dist, q_pids, g_pids, q_cams, g_cams = sysu_shaped_problem(rng)
    cmc, mAP, mINP = eval_sysu(dist, q_pids, g_pids, q_cams, g_cams)
    ref_cmc, ref_mAP, ref_mINP = loop_eval(dist, q_pids, g_pids, q_cams, g_cams, dedup=True)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-6)
    assert abs(mAP - ref_mAP) <= 1e-6 and abs(mINP - ref_mINP) <= 1e-6
    assert 0 < cmc[0] < cmc[-1] <= 1  # a non-trivial problem


def test_regdb_vectorised_equals_loop_on_full_size():
    rng = np.random.default_rng(1)
    num, num_ids = 2060, 206
    q_pids = np.repeat(np.arange(num_ids), 10)
    g_pids = rng.permutation(q_pids)
    dist = rng.random((num, num)).astype(np.float32) - 0.2 * (q_pids[:, None] == g_pids[None, :])
    cmc, mAP, mINP = eval_regdb(dist, q_pids, g_pids)
    # the loop on a subsample of queries (metrics are means over queries, so compare those)
    sub = rng.choice(num, 300, replace=False)
    sub_cmc, sub_mAP, sub_mINP = eval_regdb(dist[sub], q_pids[sub], g_pids)
    ref_cmc, ref_mAP, ref_mINP = loop_eval(dist[sub], q_pids[sub], g_pids)
    np.testing.assert_allclose(sub_cmc, ref_cmc, atol=1e-6)
    assert abs(sub_mAP - ref_mAP) <= 1e-6 and abs(sub_mINP - ref_mINP) <= 1e-6
    assert cmc.shape == (20,) and 0 < mINP < mAP < cmc[0] < 1


def test_sysu_without_cameras_3_or_duplicates_reduces_to_regdb():
    # every gallery identity appears once and no query is on camera 3: both rules are no-ops
    rng = np.random.default_rng(2)
    g_pids = rng.permutation(50)
    q_pids = rng.integers(0, 50, 200)
    dist = rng.random((200, 50))
    a = eval_sysu(dist, q_pids, g_pids, np.full(200, 6), np.full(50, 2))
    b = eval_regdb(dist, q_pids, g_pids)
    np.testing.assert_allclose(a[0], b[0])
    assert a[1:] == pytest.approx(b[1:])
