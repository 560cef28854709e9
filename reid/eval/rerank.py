"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), written from the paper's description. Off by default in `reid.eval.evaluate`;
every number produced with it names its variant in the protocol card.

The idea: a true match tends to be a *mutual* nearest neighbour of the query. Each sample is
encoded by its (expanded) set of k-reciprocal neighbours; the Jaccard distance between two such
sets is blended with the original distance:

    d*(p, g) = (1 - lambda) * d_J(p, g) + lambda * d(p, g)

Steps, with the paper's equation numbers:
1. N(p, k): the k nearest neighbours of p among all query and gallery samples (transductive, as
   in the authors' code); R(p, k) = {g in N(p, k) : p in N(g, k)} (Eq. 4).
2. R*(p, k): add R(q, k/2) for each q in R(p, k) that shares enough of it with R(p, k) (Eq. 6).
3. V_p[g] = exp(-d(p, g)) for g in R*(p, k), else 0 (Eq. 7).
4. Local query expansion: V_p <- mean of V_g over the k2 nearest neighbours g of p (Eq. 11).
5. d_J(p, g) = 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj) (Eq. 10).

Two variants differ in steps 2 and 3 (`VARIANTS`):
- "released" (the default): the authors' released code, which torchreid, fast-reid and the VI-ReID
  repositories use and from which every published "with re-ranking" number comes. Each row of V is
  divided by its sum, so every V_p (and its query-expanded mean) sums to 1 and
  d_J = 1 - m / (2 - m) with m = sum_j min(V_pj, V_gj); a candidate q is accepted when
  |R(p, k) & R(q, k/2)| > 2/3 |R(q, k/2)|.
- "eq7": the paper's equations read literally: weights exp(-d) as they are, acceptance at >= 2/3.

N(p, k) includes p itself (its own nearest neighbour), as in the authors' code, so "k1 = 20"
means 20 neighbours besides p.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

VARIANTS = {
    "released": "released code: row weights normalised, expansion when overlap > 2/3",
    "eq7": "the paper's literal Eq. 6-7: unnormalised weights, expansion when overlap >= 2/3",
}
DEFAULT_VARIANT = "released"
K1, K2, LAMBDA = 20, 6, 0.3  # the paper's (and everyone's) parameters


def variant_name(rerank: bool | str | None) -> str | None:
    """What a `rerank=` argument means: False / None -> off (None), True -> the default variant, or a name."""
    if rerank is None or rerank is False:
        return None
    if rerank is True:
        return DEFAULT_VARIANT
    if rerank not in VARIANTS:
        raise ValueError(f"unknown re-ranking variant {rerank!r}; expected one of {', '.join(VARIANTS)}")
    return rerank


def label(rerank: bool | str | None) -> str | None:
    """What a result's label says of its re-ranking: None when off."""
    return {None: None, "released": "re-ranked", "eq7": "re-ranked (literal Eq. 7)"}[variant_name(rerank)]


def card_value(rerank: bool | str | None) -> bool | str:
    """The protocol card's re-ranking field: False when off, else the variant and its parameters."""
    variant = variant_name(rerank)
    if variant is None:
        return False
    return f"k-reciprocal, {VARIANTS[variant]} (k1 {K1}, k2 {K2}, lambda {LAMBDA})"


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


def _expanded(rank: np.ndarray, k1: int, strict: bool) -> sp.csr_matrix:
    """R*(., k1) as a sparse boolean matrix (Eq. 6): R(p, k1) plus every R(q, k1/2), q in R(p, k1), that
    shares more than (strict, the released code) or at least (the literal Eq. 6) 2/3 of itself with R(p, k1).
    Counts are compared as integers (3 * overlap vs 2 * size), so an overlap of exactly 2/3 is decided
    exactly, not by rounding."""
    n = rank.shape[0]
    recip = _reciprocal(rank, k1)
    half = _reciprocal(rank, round(k1 / 2))  # Python's round, like the released code's np.around
    overlap = (recip.astype(np.int64) @ half.T.astype(np.int64)).multiply(recip).tocoo()  # only q in R(p)
    half_size = np.asarray(half.sum(axis=1)).ravel()
    lhs, rhs = 3 * overlap.data, 2 * half_size[overlap.col]
    accepted = lhs > rhs if strict else lhs >= rhs
    accept = sp.csr_matrix(
        (np.ones(accepted.sum(), dtype=np.float32), (overlap.row[accepted], overlap.col[accepted])), shape=(n, n)
    )
    return ((recip.astype(np.float32) + accept @ half.astype(np.float32)) > 0).tocsr()


def k_reciprocal_rerank(
    query_features: torch.Tensor | np.ndarray,
    gallery_features: torch.Tensor | np.ndarray,
    k1: int = K1,
    k2: int = K2,
    lambda_value: float = LAMBDA,
    variant: str = DEFAULT_VARIANT,
) -> torch.Tensor:
    """Re-ranked (num_query, num_gallery) distance matrix; smaller = more similar. `variant`: a key of
    `VARIANTS` ("released", the default, or "eq7")."""
    q = np.asarray(query_features.detach().cpu() if hasattr(query_features, "detach") else query_features)
    g = np.asarray(gallery_features.detach().cpu() if hasattr(gallery_features, "detach") else gallery_features)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"expected (Q, D) and (G, D) features, got {q.shape} and {g.shape}")
    if not (k1 >= 1 and k2 >= 1 and 0.0 <= lambda_value <= 1.0):
        raise ValueError(f"need k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown re-ranking variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    num_q = len(q)
    feats = np.concatenate([q, g]).astype(np.float32)
    n = len(feats)
    k1, k2 = min(k1, n - 1), min(k2, n)

    dist = _scaled_distances(feats)
    rank = np.argsort(dist, axis=1, kind="stable")

    # Eq. 4 and 6: k-reciprocal sets, expanded by the half-size sets that overlap them enough
    expanded = _expanded(rank, k1, strict=variant == "released").tocoo()

    # Eq. 7: Gaussian-kernel weights on the expanded set; the released code divides each row by its sum
    weights = np.exp(-dist[expanded.row, expanded.col]).astype(np.float32)
    if variant == "released":
        weights /= np.bincount(expanded.row, weights=weights, minlength=n)[expanded.row].astype(np.float32)
    v = sp.csr_matrix((weights, (expanded.row, expanded.col)), shape=(n, n))

    # Eq. 11: local query expansion over the k2 nearest neighbours (p itself included)
    if k2 > 1:
        rows = np.repeat(np.arange(n), k2)
        mean_op = sp.csr_matrix((np.full(n * k2, 1.0 / k2, dtype=np.float32), (rows, rank[:, :k2].ravel())), (n, n))
        v = (mean_op @ v).tocsr()

    # Eq. 10: Jaccard distance between query and gallery encodings.
    # sum_j min(V_pj, V_gj) is accumulated column by column, over the rows that are non-zero
    # there: each column holds only a few, so this is cheap. sum max = sum V_p + sum V_g - sum min
    # (= 2 - sum min for the released variant, whose rows sum to 1: its 1 - m / (2 - m)).
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
