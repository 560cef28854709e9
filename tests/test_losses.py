"""Every loss against a plain per-anchor loop written here from the equations."""

from __future__ import annotations

import math

import pytest
import torch

from reid.losses import (
    AdaptiveTripletLoss,
    CenterLoss,
    HardTripletLoss,
    LabelSmoothingCrossEntropy,
    build_metric_loss,
    pairwise_distances,
)
from reid.utils.errors import UserError


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


# Tiny tensors: extra threads only add synchronisation, and on a busy 2-core machine OpenMP
# oversubscription made these tests ~30x slower. One thread for this process.


def loop_pairs(features, pids, anchor):
    positives = [
        distance(features[anchor], features[j])
        for j in range(len(pids))
        if j != anchor and pids[j] == pids[anchor]
    ]
    negatives = [distance(features[anchor], features[j]) for j in range(len(pids)) if pids[j] != pids[anchor]]
    return positives, negatives


def loop_hard_triplet(features, pids, margin, reduction="mean", soft_margin=False):
    losses = []
    for a in range(len(pids)):
        pos, neg = loop_pairs(features, pids, a)
        if pos and neg:
            gap = max(pos) - min(neg)
            losses.append(math.log1p(math.exp(gap)) if soft_margin else max(0.0, gap + margin))
    if not losses:
        return 0.0
    return sum(losses) / len(losses) if reduction == "mean" else sum(losses)


def loop_adaptive_triplet(features, pids, margin, soft_margin=False, reduction="mean"):
    losses = []
    for a in range(len(pids)):
        pos, neg = loop_pairs(features, pids, a)
        if not (pos and neg):
            continue
        # softmax written out, with Python floats in double precision (math.exp of a shifted value)
        pos_w = [math.exp(d - max(pos)) for d in pos]
        neg_w = [math.exp(-d + min(neg)) for d in neg]
        wp = sum(w * d for w, d in zip(pos_w, pos)) / sum(pos_w)
        wn = sum(w * d for w, d in zip(neg_w, neg)) / sum(neg_w)
        gap = wp - wn
        losses.append(math.log1p(math.exp(gap)) if soft_margin else max(0.0, gap + margin))
    if not losses:
        return 0.0
    return sum(losses) / len(losses) if reduction == "mean" else sum(losses)


def batch(seed=0, ids=4, per_id=4, dim=8, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(ids * per_id, dim, generator=g) * scale
    pids = torch.arange(ids).repeat_interleave(per_id)
    perm = torch.randperm(len(pids), generator=g)  # identities interleaved, not in blocks
    return features[perm], pids[perm]


def test_pairwise_distances_match_norms():
    features, _ = batch()
    expected = torch.cdist(features.double(), features.double())
    assert torch.allclose(pairwise_distances(features).double(), expected, atol=1e-5)
    assert (pairwise_distances(features).diagonal() == 0).all()


@pytest.mark.parametrize("margin", [0.3, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hard_triplet_matches_loop(margin, reduction, seed):
    features, pids = batch(seed)
    got = HardTripletLoss(margin, reduction=reduction)(features, pids)
    assert got.item() == pytest.approx(
        loop_hard_triplet(features, pids, margin, reduction), rel=1e-4, abs=1e-4
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_soft_margin_hard_triplet_is_softplus_of_the_batch_hard_gap(seed):
    """The soft-margin control of Eq. 14: softplus(max_p d - min_n d), the margin plays no part."""
    features, pids = batch(seed)
    got = HardTripletLoss(margin=5.0, soft_margin=True)(features, pids)
    assert got.item() == pytest.approx(loop_hard_triplet(features, pids, 0.0, soft_margin=True), rel=1e-4)
    assert got.item() != pytest.approx(HardTripletLoss(margin=5.0)(features, pids).item(), rel=1e-2)


@pytest.mark.parametrize("soft_margin", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_triplet_matches_loop(soft_margin, reduction, seed):
    features, pids = batch(seed, ids=3, per_id=5)
    got = AdaptiveTripletLoss(1.0, soft_margin=soft_margin, reduction=reduction)(features, pids)
    want = loop_adaptive_triplet(features, pids, 1.0, soft_margin, reduction)
    assert got.item() == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("margin", [0.1, 0.3, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_hinge_is_never_larger_than_batch_hard_at_equal_margin(margin, seed):
    """The margin confound of Table 4 (issue 32): per anchor, Eq. 15's softmax-weighted positive distance is
    at most the hardest (largest) positive distance of Eq. 14, its weighted negative distance at least the
    hardest (smallest) negative, so [gap_15 + a]_+ <= [gap_14 + a]_+ anchor by anchor, hence in the mean."""
    features, pids = batch(seed, ids=3, per_id=4)
    assert AdaptiveTripletLoss(margin)(features, pids).item() <= HardTripletLoss(margin)(features, pids).item() + 1e-6
    d = torch.cdist(features, features)
    for a in range(len(pids)):  # anchor by anchor
        pos = [j for j in range(len(pids)) if pids[j] == pids[a] and j != a]
        neg = [j for j in range(len(pids)) if pids[j] != pids[a]]
        hard = d[a, pos].max() - d[a, neg].min()
        weighted = (torch.softmax(d[a, pos], 0) * d[a, pos]).sum() - (torch.softmax(-d[a, neg], 0) * d[a, neg]).sum()
        assert weighted <= hard + 1e-6
        assert max(0.0, weighted.item() + margin) <= max(0.0, hard.item() + margin) + 1e-6


def test_soft_margin_is_agws_weighted_regularisation_triplet():
    """control_trihardw_soft: softplus(sum_p w_p d_ap - sum_n w_n d_an), w = softmax(d) over the positives and
    softmax(-d) over the negatives, no margin (AGW's WeightedRegularizedTriplet), on a toy batch by hand."""
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    pids = torch.tensor([0, 0, 1, 1])
    d = torch.cdist(features, features)
    expected = []
    for a in range(4):
        pos = [j for j in range(4) if pids[j] == pids[a] and j != a]
        neg = [j for j in range(4) if pids[j] != pids[a]]
        wp, wn = torch.softmax(d[a, pos], 0), torch.softmax(-d[a, neg], 0)
        expected.append(math.log1p(math.exp((wp * d[a, pos]).sum() - (wn * d[a, neg]).sum())))
    got = AdaptiveTripletLoss(margin=5.0, soft_margin=True)(features, pids)  # the margin plays no part
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-5)


def test_single_positive_per_anchor():
    """Two images per identity: each anchor has exactly one positive, whose weight is then 1."""
    features, pids = batch(3, ids=5, per_id=2)
    assert HardTripletLoss(0.3)(features, pids).item() == pytest.approx(
        loop_hard_triplet(features, pids, 0.3), rel=1e-4, abs=1e-4
    )
    assert AdaptiveTripletLoss(1.0)(features, pids).item() == pytest.approx(
        loop_adaptive_triplet(features, pids, 1.0), rel=1e-4, abs=1e-4
    )


def test_anchor_without_positive_is_left_out():
    features, pids = batch(4, ids=3, per_id=3)
    pids = pids.clone()
    pids[0] = 99  # a singleton identity: no positive for that anchor
    for loss, loop in [
        (HardTripletLoss(0.3), lambda: loop_hard_triplet(features, pids, 0.3)),
        (AdaptiveTripletLoss(1.0), lambda: loop_adaptive_triplet(features, pids, 1.0)),
    ]:
        assert loss(features, pids).item() == pytest.approx(loop(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("loss", [HardTripletLoss(0.3), AdaptiveTripletLoss(1.0)])
def test_single_identity_gives_zero_with_finite_gradient(loss):
    features = torch.randn(6, 4, requires_grad=True)
    value = loss(features, torch.zeros(6, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(features.grad).all()


def test_equal_distances_give_uniform_weights():
    """Four points on a square's corners: all positive distances equal, all negative distances equal,
    so the weighted means equal the plain means (and the hard ones)."""
    features = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    pids = torch.tensor([0, 0, 1, 1])  # positives across the diagonal (sqrt 2), negatives on the edges (1)
    expected = math.sqrt(2) - 1.0 + 0.5
    assert AdaptiveTripletLoss(0.5)(features, pids).item() == pytest.approx(expected, abs=1e-5)
    assert HardTripletLoss(0.5)(features, pids).item() == pytest.approx(expected, abs=1e-5)


def test_identical_features_have_finite_gradient():
    features = torch.ones(4, 3, requires_grad=True)
    pids = torch.tensor([0, 0, 1, 1])
    for loss in (HardTripletLoss(0.3), AdaptiveTripletLoss(1.0)):
        features.grad = None
        loss(features, pids).backward()
        assert torch.isfinite(features.grad).all()


def test_adaptive_triplet_is_stable_for_large_distances():
    """Distances of thousands would overflow exp() without the max subtraction."""
    features, pids = batch(5, ids=3, per_id=4, scale=1000.0)
    features.requires_grad_(True)
    value = AdaptiveTripletLoss(1.0)(features, pids)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(features.grad).all()
    want = loop_adaptive_triplet(features.detach(), pids, 1.0)
    assert value.item() == pytest.approx(want, rel=1e-3, abs=1e-2)


def test_adaptive_weights_interpolate_between_mean_and_hard():
    """Adaptive positives lie between the mean and the max of the positive distances, so with the
    same margin the loss is at most the batch-hard loss."""
    features, pids = batch(6, ids=4, per_id=4, scale=3.0)
    assert AdaptiveTripletLoss(1.0)(features, pids) <= HardTripletLoss(1.0)(features, pids) + 1e-6


def test_adaptive_triplet_gradient_matches_finite_differences():
    features, pids = batch(7, ids=2, per_id=3, dim=3)
    features = features.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: AdaptiveTripletLoss(1.0)(f, pids), (features,))


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_eq13(epsilon):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g)
    pids = torch.tensor([0, 3, 6, 2, 3])
    total = 0.0
    for row, y in zip(logits, pids):
        log_p = torch.log_softmax(row.double(), dim=0)
        n = len(row)
        q = [1 - (n - 1) / n * epsilon if i == y else epsilon / n for i in range(n)]
        total += -sum(qi * float(lp) for qi, lp in zip(q, log_p))
    got = LabelSmoothingCrossEntropy(epsilon)(logits, pids).item()
    assert got == pytest.approx(total / len(pids), rel=1e-5)
    # Eq. 13 is torch's label smoothing (q = (1 - eps) one_hot + eps / N): the same value and gradient at every
    # eps. We keep the explicit form because it reads as the equation and every committed run was trained
    # with it (a switch would move the last float bits, and `--retrain` would no longer repeat them exactly).
    ours, torchs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    LabelSmoothingCrossEntropy(epsilon)(ours, pids).backward()
    reference = torch.nn.functional.cross_entropy(torchs, pids, label_smoothing=epsilon)
    reference.backward()
    assert got == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(ours.grad, torchs.grad, atol=1e-7)


def test_center_loss_matches_loop_and_moves_centers():
    loss = CenterLoss(num_classes=3, feat_dim=4)
    features, pids = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    want = sum(0.5 * float(((f - loss.centers[y].detach()) ** 2).sum()) for f, y in zip(features, pids)) / 6
    value = loss(features, pids)
    assert value.item() == pytest.approx(want, rel=1e-5)
    value.backward()
    assert loss.centers.grad is not None and loss.centers.grad.abs().sum() > 0


def test_build_metric_loss():
    assert isinstance(
        build_metric_loss("hard_triplet", margin=0.3, num_classes=5, feat_dim=8), HardTripletLoss
    )
    adaptive = build_metric_loss("adaptive_triplet", margin=1.0, num_classes=5, feat_dim=8)
    assert isinstance(adaptive, AdaptiveTripletLoss) and adaptive.margin == 1.0
    center = build_metric_loss("center", margin=1.0, num_classes=5, feat_dim=8)
    assert isinstance(center, CenterLoss) and center.centers.shape == (5, 8)
    with pytest.raises(UserError, match="triplet_hard"):
        build_metric_loss("triplet_hard", margin=0.3, num_classes=5, feat_dim=8)


def test_bad_arguments_raise_user_error():
    with pytest.raises(UserError, match="reduction"):
        HardTripletLoss(0.3, reduction="max")
    with pytest.raises(UserError, match="epsilon"):
        LabelSmoothingCrossEntropy(1.5)


def test_half_precision_features_are_measured_in_float32():
    features, pids = batch(8)
    half = features.half()
    assert pairwise_distances(half).dtype == torch.float32
    assert AdaptiveTripletLoss(1.0)(half, pids).item() == pytest.approx(
        AdaptiveTripletLoss(1.0)(half.float(), pids).item(), rel=1e-6
    )


def test_center_loss_centres_reach_the_class_means_under_their_own_optimiser():
    """Wen et al.: the centres get their own SGD step (alpha = 0.5) on the unweighted loss, so even at the
    paper's weight 5e-4 they move to the class means (under the network's lr they would barely move)."""
    from types import SimpleNamespace

    from reid.losses import Criterion
    from reid.train.engine import build_center_optimizer, build_optimizer, train_step

    torch.manual_seed(0)
    cfg = SimpleNamespace(id_loss="ce", epsilon=0.0, metric="center", margin=1.0, soft_margin=False,
                          id_weight=0.0, metric_weight=5e-4, center_lr=0.5)
    features = torch.randn(3, 16) * 5
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    batch = features[pids] + 0.1 * torch.randn(6, 16)

    class Fixed(torch.nn.Module):  # features are the input; a frozen-at-zero classifier
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(16, 3))

        def forward(self, x):
            return {"features": x, "logits": x @ self.w}

    net, criterion = Fixed(), Criterion(cfg, num_classes=3, feat_dim=16)
    optim_cfg = SimpleNamespace(name="sgd", lr=0.1, backbone_lr_scale=1.0, weight_decay=0.0, momentum=0.9,
                                nesterov=True)
    optimizer = build_optimizer(net, criterion, optim_cfg)
    assert all(p is not criterion.metric_loss.centers for g in optimizer.param_groups for p in g["params"])
    center_optimizer = build_center_optimizer(criterion, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    means = torch.stack([batch[pids == c].mean(0) for c in range(3)])
    start = (criterion.metric_loss.centers.detach() - means).norm()
    for _ in range(60):  # each step closes 0.5 * 2/6 of the gap: (5/6)^60 ~ 2e-5
        train_step(net, criterion, optimizer, scaler, batch, pids, center_optimizer=center_optimizer)
    end = (criterion.metric_loss.centers.detach() - means).norm()
    assert end < 1e-3 * start


def test_triplet_gaps_by_hand_and_the_margin_drops_out_while_every_hinge_is_active():
    """Issue 32's margin control: Eq. 14 at alpha 0.3 trained bit for bit as at alpha 1 (every weight equal).
    The reason, in miniature: while gap + alpha > 0 for every anchor, the mean hinge is mean(gap) + alpha, and
    its gradient is the same for any such alpha."""
    from reid.losses import triplet_gaps

    feats = torch.tensor([[0.0], [3.0], [1.0], [2.5]])  # 1-D points: distances are |x - y|
    pids = torch.tensor([0, 0, 1, 1])
    gap, valid = triplet_gaps(feats, pids, adaptive=False)
    # anchor 0: positive at 3, nearest negative at 1 -> 3 - 1; anchor 1: 3 - 0.5; anchor 2: 1.5 - 1; anchor 3: 1.5 - 0.5
    assert valid.all() and torch.allclose(gap, torch.tensor([2.0, 2.5, 0.5, 1.0]))
    adaptive, _ = triplet_gaps(feats, pids, adaptive=True)  # one positive each: w_p = 1
    w_n0 = torch.softmax(-torch.tensor([1.0, 2.5]), 0)  # anchor 0's negatives at distances 1 and 2.5
    assert torch.isclose(adaptive[0], 3.0 - (w_n0 * torch.tensor([1.0, 2.5])).sum())

    def grad(loss):
        x = feats.clone().requires_grad_(True)
        loss(x, pids).backward()
        return x.grad

    for loss in (HardTripletLoss, AdaptiveTripletLoss):
        assert torch.equal(grad(loss(margin=0.3)), grad(loss(margin=1.0)))  # every gap > -0.3: same steps
        assert not torch.equal(grad(loss(margin=0.3)), grad(loss(margin=-0.75)))  # anchor 2's hinge is off
