"""k-reciprocal re-ranking: properties, and that it helps where mutual neighbours carry information."""

import numpy as np
import pytest
import torch

from reid.eval.metrics import eval_regdb
from reid.eval.rerank import _expanded, card_value, k_reciprocal_rerank, variant_name


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


# ---------------------------------------------------------------- the two variants, derived by hand
# Three 1-D points: query a = 0, gallery b = 1, c = 3. Squared distances d(a,b) = 1, d(a,c) = 9,
# d(b,c) = 4, each row scaled by its maximum (a: 9, b: 4, c: 9):
#   a: [0, 1/9, 1]   b: [1/4, 0, 1]   c: [1, 4/9, 0]
# k1 = 1: N(a) = {a, b}, N(b) = {b, a}, N(c) = {c, b}, so R(a) = R(b) = {a, b}, R(c) = {c}; k1/2 rounds
# to 0, R(., 0) = {.}, so the expansion adds nothing. With x = exp(-1/9), y = exp(-1/4):
#   eq7:      V_a = [1, x, 0], V_b = [y, 1, 0], V_c = [0, 0, 1]
#   released: the same rows divided by their sums.
THREE = (torch.tensor([[0.0]]), torch.tensor([[1.0], [3.0]]))
X, Y = np.exp(-1 / 9), np.exp(-1 / 4)


def test_three_points_without_query_expansion_by_hand():
    lam = 0.5
    # eq7: sum min(V_a, V_b) = y + x, sum max = 1 + 1
    eq7 = k_reciprocal_rerank(*THREE, k1=1, k2=1, lambda_value=lam, variant="eq7").numpy()
    np.testing.assert_allclose(eq7, [[lam * (1 - (X + Y) / 2) + lam / 9, lam * 1 + lam * 1]], rtol=1e-6)
    # released: V_a = [1, x] / (1 + x), V_b = [y, 1] / (1 + y); m = sum min, d_J = 1 - m / (2 - m)
    m = min(1 / (1 + X), Y / (1 + Y)) + min(X / (1 + X), 1 / (1 + Y))
    released = k_reciprocal_rerank(*THREE, k1=1, k2=1, lambda_value=lam, variant="released").numpy()
    np.testing.assert_allclose(released, [[lam * (1 - m / (2 - m)) + lam / 9, 1.0]], rtol=1e-6)
    assert abs(released[0, 0] - eq7[0, 0]) > 5e-4  # the variants differ here (0.1381 vs 0.1371)


def test_three_points_with_query_expansion_by_hand():
    # k2 = 2 (Eq. 11): V'_a = V'_b = (V_a + V_b) / 2, so d_J(a, b) = 0 in both variants;
    # eq7: V'_a = [(1 + y), (1 + x), 0] / 2, V'_c = (V_c + V_b) / 2 = [y, 1, 1] / 2, so
    # sum min = (y + 1) / 2, sum max = (1 + y + 1 + x + 1) / 2, d_J(a, c) = 1 - (1 + y) / (3 + x + y)
    lam = 0.5
    eq7 = k_reciprocal_rerank(*THREE, k1=1, k2=2, lambda_value=lam, variant="eq7").numpy()
    np.testing.assert_allclose(eq7, [[lam / 9, lam * (1 - (1 + Y) / (3 + X + Y)) + lam]], rtol=1e-6)
    released = k_reciprocal_rerank(*THREE, k1=1, k2=2, lambda_value=lam, variant="released").numpy()
    assert released[0, 0] == pytest.approx(lam / 9, rel=1e-6)


def test_expansion_at_exactly_two_thirds_by_hand():
    # Six samples, k1 = 4 (k1/2 = 2); rows of the neighbour ranking (each sample first):
    rank = np.array([[0, 1, 2, 3, 4, 5],
                     [1, 0, 5, 2, 3, 4],
                     [2, 3, 4, 0, 1, 5],
                     [3, 2, 4, 0, 1, 5],
                     [4, 3, 2, 5, 0, 1],
                     [5, 1, 4, 3, 2, 0]])
    # R(0, 4) = {0, 1, 2, 3, 4} (5 is not among 0's four nearest). R(1, 2) = {1, 0, 5}: 0 and 5 both
    # have 1 among their two nearest. |R(0, 4) & R(1, 2)| = 2 = 2/3 * 3, exactly on the threshold:
    # the literal Eq. 6 (>=) adds 5 to R*(0), the released code (>) does not. Every other candidate's
    # half set lies inside R(0, 4) already.
    assert set(_expanded(rank, 4, strict=False)[0].indices) == {0, 1, 2, 3, 4, 5}
    assert set(_expanded(rank, 4, strict=True)[0].indices) == {0, 1, 2, 3, 4}


def reference_rerank(q, g, k1, k2, lam, variant):
    """The same definition written as plain loops over sets, for the property test below."""
    feats = np.concatenate([q, g]).astype(np.float64)
    n, num_q = len(feats), len(q)
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1, kind="stable")

    def recip(i, k):
        return {j for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        star = set(r)
        for c in r:
            rc = recip(c, round(k1 / 2))
            overlap = len(rc & r)
            if (3 * overlap > 2 * len(rc)) if variant == "released" else (3 * overlap >= 2 * len(rc)):
                star |= rc
        idx = sorted(star)
        v[i, idx] = np.exp(-dist[i, idx])
        if variant == "released":
            v[i] /= v[i].sum()
    v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((num_q, n - num_q))
    for i in range(num_q):
        for j in range(n - num_q):
            a, b = v[i], v[num_q + j]
            out[i, j] = 1 - np.minimum(a, b).sum() / np.maximum(a, b).sum()
    return (1 - lam) * out + lam * dist[:num_q, num_q:]


@pytest.mark.parametrize("variant", ["released", "eq7"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_definition_on_random_problems(variant, seed):
    q, _, g, _ = clustered(np.random.default_rng(10 + seed), num_ids=8, per_query=3, per_gallery=2, dim=6)
    ours = k_reciprocal_rerank(q, g, k1=6, k2=3, lambda_value=0.3, variant=variant).numpy()
    np.testing.assert_allclose(ours, reference_rerank(q.numpy(), g.numpy(), 6, 3, 0.3, variant), atol=2e-5)


def test_the_result_ignores_feature_scale():
    q, _, g, _ = clustered(np.random.default_rng(4), num_ids=10)
    a = k_reciprocal_rerank(q, g, k1=6, k2=3).numpy()
    b = k_reciprocal_rerank(3.0 * q, 3.0 * g, k1=6, k2=3).numpy()  # distances scaled per row: same result
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_variant_names_and_the_card():
    assert variant_name(False) is None and variant_name(None) is None
    assert variant_name(True) == "released" and variant_name("eq7") == "eq7"
    assert card_value(False) is False and "released code" in card_value(True) and "Eq. 6-7" in card_value("eq7")
    with pytest.raises(ValueError, match="variant"):
        variant_name("fast")
    with pytest.raises(ValueError, match="variant"):
        k_reciprocal_rerank(torch.zeros(3, 4), torch.zeros(3, 4), variant="fast")
