"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), written from the paper's description. Off by default in `reid.eval.evaluate`;
every number produced with it is labelled `rerank: true`.

The idea: a true match tends to be a *mutual* nearest neighbour of the query. Each sample is
encoded by its (expanded) set of k-reciprocal neighbours; the Jaccard distance between two such
sets is blended with the original distance:

    d*(p, g) = (1 - lambda) * d_J(p, g) + lambda * d(p, g)

Steps, with the paper's equation numbers:
1. N(p, k): the k nearest neighbours of p among all query and gallery samples (transductive, as
   in the authors' code); R(p, k) = {g in N(p, k) : p in N(g, k)} (Eq. 4).
2. R*(p, k): add R(q, k/2) for each q in R(p, k) that shares at least 2/3 of it with R(p, k) (Eq. 6).
3. V_p[g] = exp(-d(p, g)) for g in R*(p, k), else 0 (Eq. 7).
4. Local query expansion: V_p <- mean of V_g over the k2 nearest neighbours g of p (Eq. 11).
5. d_J(p, g) = 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj) (Eq. 10).

N(p, k) includes p itself (its own nearest neighbour), as in the authors' code, so "k1 = 20"
means 20 neighbours besides p.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def _scaled_distances(features: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, each row divided by its maximum.

    The scaling makes the Gaussian kernel exp(-d) independent of the feature scale (the paper
    uses a Mahalanobis distance; the authors' code, and we, use squared Euclidean).
    """
    sq = (features**2).sum(axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * features @ features.T, 0.0)
    np.fill_diagonal(dist, 0.0)
    return dist / np.maximum(dist.max(axis=1, keepdims=True), 1e-12)


def _reciprocal(rank: np.ndarray, k: int) -> sp.csr_matrix:
    """R(., k) as a sparse boolean matrix: j in N(i, k) and i in N(j, k) (Eq. 4)."""
    n = rank.shape[0]
    rows = np.repeat(np.arange(n), k + 1)
    neighbours = sp.csr_matrix((np.ones(n * (k + 1), dtype=bool), (rows, rank[:, : k + 1].ravel())), shape=(n, n))
    return neighbours.multiply(neighbours.T).tocsr()


def k_reciprocal_rerank(
    query_features: torch.Tensor | np.ndarray,
    gallery_features: torch.Tensor | np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> torch.Tensor:
    """Re-ranked (num_query, num_gallery) distance matrix; smaller = more similar."""
    q = np.asarray(query_features.detach().cpu() if hasattr(query_features, "detach") else query_features)
    g = np.asarray(gallery_features.detach().cpu() if hasattr(gallery_features, "detach") else gallery_features)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"expected (Q, D) and (G, D) features, got {q.shape} and {g.shape}")
    if not (k1 >= 1 and k2 >= 1 and 0.0 <= lambda_value <= 1.0):
        raise ValueError(f"need k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
    num_q = len(q)
    feats = np.concatenate([q, g]).astype(np.float32)
    n = len(feats)
    k1, k2 = min(k1, n - 1), min(k2, n)

    dist = _scaled_distances(feats)
    rank = np.argsort(dist, axis=1, kind="stable")

    # Eq. 4 and 6: k-reciprocal sets, expanded by the half-size sets that overlap them enough
    recip = _reciprocal(rank, k1)
    half = _reciprocal(rank, round(k1 / 2))
    overlap = (recip.astype(np.float32) @ half.T.astype(np.float32)).multiply(recip)  # only q in R(p)
    half_size = np.asarray(half.sum(axis=1)).ravel()
    overlap = overlap.tocoo()
    accepted = overlap.data >= (2.0 / 3.0) * half_size[overlap.col]
    accept = sp.csr_matrix(
        (np.ones(accepted.sum(), dtype=np.float32), (overlap.row[accepted], overlap.col[accepted])), shape=(n, n)
    )
    expanded = ((recip.astype(np.float32) + accept @ half.astype(np.float32)) > 0).tocoo()

    # Eq. 7: Gaussian-kernel weights on the expanded set
    weights = np.exp(-dist[expanded.row, expanded.col]).astype(np.float32)
    v = sp.csr_matrix((weights, (expanded.row, expanded.col)), shape=(n, n))

    # Eq. 11: local query expansion over the k2 nearest neighbours (p itself included)
    if k2 > 1:
        rows = np.repeat(np.arange(n), k2)
        mean_op = sp.csr_matrix((np.full(n * k2, 1.0 / k2, dtype=np.float32), (rows, rank[:, :k2].ravel())), (n, n))
        v = (mean_op @ v).tocsr()

    # Eq. 10: Jaccard distance between query and gallery encodings.
    # sum_j min(V_pj, V_gj) is accumulated column by column, over the rows that are non-zero
    # there: each column holds only a few, so this is cheap. sum max = sum V_p + sum V_g - sum min.
    v_q, v_g = v[:num_q].tocsc(), v[num_q:].tocsc()
    sum_min = np.zeros((num_q, n - num_q))
    for j in range(n):
        q_rows, q_vals = v_q.indices[v_q.indptr[j] : v_q.indptr[j + 1]], v_q.data[v_q.indptr[j] : v_q.indptr[j + 1]]
        g_rows, g_vals = v_g.indices[v_g.indptr[j] : v_g.indptr[j + 1]], v_g.data[v_g.indptr[j] : v_g.indptr[j + 1]]
        if len(q_rows) and len(g_rows):
            sum_min[np.ix_(q_rows, g_rows)] += np.minimum.outer(q_vals, g_vals)
    row_sums = np.asarray(v.sum(axis=1)).ravel()
    sum_max = row_sums[:num_q, None] + row_sums[None, num_q:] - sum_min
    jaccard = 1.0 - sum_min / np.maximum(sum_max, 1e-12)

    final = (1.0 - lambda_value) * jaccard + lambda_value * dist[:num_q, num_q:]
    return torch.from_numpy(final.astype(np.float32))
