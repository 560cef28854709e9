"""The paper's losses (Sec. 1.4): label-smoothing CE (Eq. 13), batch-hard triplet (Eq. 14), the
adaptive-weight triplet (Eq. 15), and the center loss compared in Table 4.

Metric losses take `(features, pids)` with features (B, D) taken before the BN neck and return a
scalar; the CE takes `(logits, pids)`. Distances are Euclidean, as Eq. 14 says.

Eq. 14 and 15 write a sum over the N anchors of the batch; we average (reduction="mean", the usual
implementation: the loss scale then does not depend on the batch size). reduction="sum" is the
literal form. Anchors that have no positive (other than themselves) or no negative in the batch are
left out; the cross-modal sampler never produces them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid.utils.errors import UserError

REDUCTIONS = ("mean", "sum")


def pairwise_distances(features: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances.

    Computed from the differences, not as |a|^2 + |b|^2 - 2ab: that form loses ~1e-3 to cancellation
    on near-identical features, and its square root has an infinite gradient at 0. torch's cdist
    backward gives a zero gradient for zero distances (the diagonal, duplicated images).
    """
    if features.dtype in (torch.float16, torch.bfloat16):  # AMP: half precision loses small distances
        features = features.float()
    return torch.cdist(features, features, compute_mode="donot_use_mm_for_euclid_dist")


def _pair_masks(pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, negatives) boolean (B, B) masks; an anchor is not its own positive."""
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    return same & ~eye, ~same


def _reduce(per_anchor: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    kept = per_anchor[valid]
    if kept.numel() == 0:  # nothing to compare: zero, still attached to the graph
        return per_anchor.sum() * 0.0
    return kept.mean() if reduction == "mean" else kept.sum()


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise UserError(f"loss reduction={reduction!r} is not valid; expected one of {list(REDUCTIONS)}")
    return reduction


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of `scores` over the entries where `mask` is true (zero elsewhere).

    Subtracts each row's largest masked score before exp, so large distances cannot overflow; rows
    with no masked entry give all zeros instead of NaN.
    """
    masked = scores.masked_fill(~mask, float("-inf"))
    row_max = masked.amax(dim=1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(masked - row_max)  # exp(-inf) = 0 outside the mask
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)


def triplet_gaps(features: torch.Tensor, pids: torch.Tensor, adaptive: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor, the triplet hinge's argument before the margin, and whether the anchor has both a positive
    and a negative in the batch (`valid`; the gap of an invalid anchor is meaningless):

        Eq. 14 (adaptive=False): max_p d(a, p) - min_n d(a, n)
        Eq. 15 (adaptive=True):  sum_p w_p d(a, p) - sum_n w_n d(a, n)   (softmax weights, AdaptiveTripletLoss)

    The hinge [gap + margin]_+ is active where gap > -margin. While it is active for every anchor, the mean
    loss is mean(gap) + margin and its gradient does not depend on the margin at all."""
    dist = pairwise_distances(features)
    positives, negatives = _pair_masks(pids)
    valid = positives.any(dim=1) & negatives.any(dim=1)
    if adaptive:
        weighted_positive = (_masked_softmax(dist, positives) * dist).sum(dim=1)
        weighted_negative = (_masked_softmax(-dist, negatives) * dist).sum(dim=1)
        return weighted_positive - weighted_negative, valid
    hardest_positive = dist.masked_fill(~positives, float("-inf")).amax(dim=1)
    hardest_negative = dist.masked_fill(~negatives, float("inf")).amin(dim=1)
    # where(valid, ...) keeps the +-inf of invalid anchors out of the graph (their grad would be NaN)
    return torch.where(valid, hardest_positive - hardest_negative, torch.zeros_like(hardest_positive)), valid


class LabelSmoothingCrossEntropy(nn.Module):
    """Eq. 13: cross-entropy against q_i = 1 - (N-1)/N * eps for the true class and eps/N otherwise,
    i.e. (1 - eps) * one_hot + eps / N (N = number of training identities). Averaged over the batch.
    The same value and gradient as `F.cross_entropy(logits, pids, label_smoothing=eps)` (tested); written out
    because it reads as the equation, and every committed run was trained with this form."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise UserError(f"label smoothing epsilon={epsilon!r} is not valid; expected 0 <= epsilon < 1")
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        num_classes = logits.shape[1]
        targets = torch.full_like(log_probs, self.epsilon / num_classes)
        targets.scatter_(1, pids[:, None], 1.0 - self.epsilon + self.epsilon / num_classes)
        return -(targets * log_probs).sum(dim=1).mean()


class HardTripletLoss(nn.Module):
    """Eq. 14, batch-hard: for each anchor, [max_p d(a, p) - min_n d(a, n) + margin]_+.

    soft_margin=True replaces the hinge by softplus without a margin, Hermans et al.'s soft-margin batch-hard
    (a control of issue 32: a batch-hard triplet with no hinge to sit open on; on the stand-in it collapses
    all the same, docs/deviations.md, Losses)."""

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = margin
        self.soft_margin = soft_margin
        self.reduction = _check_reduction(reduction)

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        gap, valid = triplet_gaps(features, pids, adaptive=False)
        per_anchor = F.softplus(gap) if self.soft_margin else F.relu(gap + self.margin)
        return _reduce(per_anchor, valid, self.reduction)


class AdaptiveTripletLoss(nn.Module):
    """Eq. 15, the adaptive-weight hard triplet: for each anchor,

        [ sum_p w_p d(a, p) - sum_n w_n d(a, n) + margin ]_+,
        w_p = softmax(d(a, .)) over the anchor's positives, w_n = softmax(-d(a, .)) over its negatives,

    so far positives and near negatives dominate, like batch-hard but with every pair contributing.
    The weights are not detached (they are part of the loss, as in Eq. 15).
    soft_margin=True replaces the hinge by softplus(x) = log(1 + e^x) and drops the margin
    (Hermans et al.'s soft margin).
    """

    def __init__(self, margin: float = 1.0, soft_margin: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = margin
        self.soft_margin = soft_margin
        self.reduction = _check_reduction(reduction)

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        gap, valid = triplet_gaps(features, pids, adaptive=True)
        per_anchor = F.softplus(gap) if self.soft_margin else F.relu(gap + self.margin)
        return _reduce(per_anchor, valid, self.reduction)


class CenterLoss(nn.Module):
    """Center loss (Wen et al., 2016): 1/2 |f_i - c_{y_i}|^2, averaged over the batch.

    The centers are parameters, but not the network's: as in Wen et al. they get their own SGD step
    (`Criterion.center_parameters`, `loss.center_lr`, alpha = 0.5) on the *unweighted* loss, so that a
    small weight (5e-4) damps what the loss does to the features without freezing the centres. Under
    the network's optimiser at lr 0.1 a centre would close about 0.3 % of its gap in 100 epochs.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        return 0.5 * (features - self.centers[pids]).pow(2).sum(dim=1).mean()


METRIC_LOSSES = ("hard_triplet", "adaptive_triplet", "center")


def build_metric_loss(name: str, *, margin: float, num_classes: int, feat_dim: int,
                      soft_margin: bool = False) -> nn.Module:
    """The metric loss of Table 4 by name: "hard_triplet" | "adaptive_triplet" | "center"."""
    if name == "hard_triplet":
        return HardTripletLoss(margin=margin, soft_margin=soft_margin)
    if name == "adaptive_triplet":
        return AdaptiveTripletLoss(margin=margin, soft_margin=soft_margin)
    if name == "center":
        return CenterLoss(num_classes=num_classes, feat_dim=feat_dim)
    raise UserError(f"metric loss {name!r} is unknown; expected one of {list(METRIC_LOSSES)}")


class Criterion(nn.Module):
    """The training objective of Sec. 1.4 on the head's outputs (see `ReIDModel.forward_head`):

        loss = id_weight * LSCE(logits, pids)  (Eq. 13)  +  metric_weight * metric(features, pids)  (Eq. 14/15)

    `cfg` is the experiment's `LossConfig`. Both terms are computed in fp32: Eq. 15 exponentiates distances.
    """

    def __init__(self, cfg, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.id_loss = LabelSmoothingCrossEntropy(epsilon=cfg.epsilon if cfg.id_loss == "lsce" else 0.0)
        self.metric_loss = build_metric_loss(cfg.metric, margin=cfg.margin, num_classes=num_classes,
                                             feat_dim=feat_dim, soft_margin=cfg.soft_margin)
        self.id_weight, self.metric_weight = cfg.id_weight, cfg.metric_weight

    def center_parameters(self) -> list[nn.Parameter]:
        """The center loss's centres (empty for the triplet losses): updated by their own optimiser."""
        return [self.metric_loss.centers] if isinstance(self.metric_loss, CenterLoss) else []

    def forward(self, out: dict, pids: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss_id = self.id_loss(out["logits"].float(), pids)
        loss_metric = self.metric_loss(out["features"].float(), pids)
        loss = self.id_weight * loss_id + self.metric_weight * loss_metric
        return loss, {"loss_id": loss_id.detach(), "loss_metric": loss_metric.detach()}
