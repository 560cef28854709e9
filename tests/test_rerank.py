"""k-reciprocal re-ranking: properties, and that it helps where mutual neighbours carry information."""

import numpy as np
import pytest
import torch

from reid.eval.metrics import eval_regdb
from reid.eval.rerank import k_reciprocal_rerank


def clustered(rng, num_ids=50, per_query=6, per_gallery=4, dim=16, noise=0.9):
    """Identities as Gaussian clusters: neighbours of neighbours are informative."""
    centers = rng.normal(size=(num_ids, dim))

    def sample(n):
        pid = np.repeat(np.arange(num_ids), n)
        return (centers[pid] + noise * rng.normal(size=(len(pid), dim))).astype(np.float32), pid

    (q, q_pids), (g, g_pids) = sample(per_query), sample(per_gallery)
    return torch.from_numpy(q), q_pids, torch.from_numpy(g), g_pids


def squared_euclidean(q, g):
    return torch.cdist(q.double(), g.double()).pow(2).numpy()


def test_shape_and_range():
    q, _, g, _ = clustered(np.random.default_rng(0), num_ids=10)
    d = k_reciprocal_rerank(q, g, k1=5, k2=3)
    assert isinstance(d, torch.Tensor) and d.shape == (len(q), len(g))
    assert torch.isfinite(d).all() and d.min() >= 0 and d.max() <= 1 + 1e-6


def test_identical_features_are_at_zero_distance():
    q, _, g, _ = clustered(np.random.default_rng(1), num_ids=10)
    g[7] = q[3]  # a gallery item identical to query 3
    d = k_reciprocal_rerank(q, g, k1=5, k2=3)
    assert d[3, 7].item() == pytest.approx(0.0, abs=1e-6)
    assert d[3].argmin().item() == 7


def test_lambda_one_keeps_the_original_ranking():
    q, _, g, _ = clustered(np.random.default_rng(2), num_ids=10)
    d = k_reciprocal_rerank(q, g, k1=5, k2=3, lambda_value=1.0).numpy()
    original = squared_euclidean(q, g)
    np.testing.assert_array_equal(np.argsort(d, axis=1, kind="stable")[:, :5],
                                  np.argsort(original, axis=1, kind="stable")[:, :5])


def test_rerank_changes_rankings_and_helps_on_clusters():
    q, q_pids, g, g_pids = clustered(np.random.default_rng(3))
    original = squared_euclidean(q, g)
    reranked = k_reciprocal_rerank(q, g).numpy()
    changed = (np.argmin(original, axis=1) != np.argmin(reranked, axis=1)).mean()
    assert changed > 0.05  # it does re-rank
    cmc0, map0, _ = eval_regdb(original, q_pids, g_pids)
    cmc1, map1, _ = eval_regdb(reranked, q_pids, g_pids)
    assert map1 > map0 + 0.05 and cmc1[0] > cmc0[0]


def test_bad_input():
    with pytest.raises(ValueError, match="features"):
        k_reciprocal_rerank(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="k1"):
        k_reciprocal_rerank(torch.zeros(3, 4), torch.zeros(3, 4), k1=0)
