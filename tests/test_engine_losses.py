"""Each training loss against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid_stra.engine.losses import CenterLoss, CrossEntropyLabelSmooth, LossWeights, ReidLoss, TripletLoss
from reid_stra.errors import ReidError


def test_label_smoothing_hand_value() -> None:
    # probabilities (0.75, 0.25); target 0, eps 0.2 -> soft target (0.9, 0.1)
    logits = torch.tensor([[math.log(3.0), 0.0]])
    loss = CrossEntropyLabelSmooth(num_classes=2, epsilon=0.2)(logits, torch.tensor([0]))
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_label_smoothing_matches_torch_and_reduces_to_plain_ce() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    ls = CrossEntropyLabelSmooth(num_classes=5, epsilon=0.1)(logits, targets)
    assert ls.item() == pytest.approx(F.cross_entropy(logits, targets, label_smoothing=0.1).item(), abs=1e-6)
    plain = CrossEntropyLabelSmooth(num_classes=5, epsilon=0.0)(logits, targets)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, targets).item(), abs=1e-6)


def test_label_smoothing_rejects_bad_epsilon() -> None:
    with pytest.raises(ReidError, match="label_smoothing"):
        CrossEntropyLabelSmooth(num_classes=3, epsilon=1.5)


# Points on a line: identity 0 at 0, 1, 4; identity 1 at 2, 7, 10.
LINE = torch.tensor([[0.0], [1.0], [4.0], [2.0], [7.0], [10.0]])
LINE_IDS = torch.tensor([0, 0, 0, 1, 1, 1])


def test_triplet_mining_picks_hardest_pairs() -> None:
    d_ap, d_an, valid = TripletLoss(margin=0.3).mine(LINE, LINE_IDS)
    # hardest positive = farthest same id; hardest negative = nearest other id
    assert d_ap.tolist() == pytest.approx([4.0, 3.0, 4.0, 8.0, 5.0, 8.0], abs=1e-5)
    assert d_an.tolist() == pytest.approx([2.0, 1.0, 2.0, 1.0, 3.0, 6.0], abs=1e-5)
    assert valid.all()


def test_triplet_hinge_and_soft_margin_values() -> None:
    d_ap = torch.tensor([4.0, 3.0, 4.0, 8.0, 5.0, 8.0])
    d_an = torch.tensor([2.0, 1.0, 2.0, 1.0, 3.0, 6.0])
    hinge = TripletLoss(margin=0.3)(LINE, LINE_IDS)
    assert hinge.item() == pytest.approx(((d_ap - d_an) + 0.3).clamp(min=0).mean().item(), abs=1e-5)
    assert hinge.item() == pytest.approx((2.3 + 2.3 + 2.3 + 7.3 + 2.3 + 2.3) / 6, abs=1e-5)
    soft = TripletLoss(soft=True)(LINE, LINE_IDS)
    assert soft.item() == pytest.approx(
        sum(math.log1p(math.exp(v)) for v in (2, 2, 2, 7, 2, 2)) / 6, abs=1e-5
    )


def test_triplet_is_zero_when_margin_is_met_and_skips_anchors_without_positive() -> None:
    feats = torch.tensor([[0.0], [0.1], [5.0], [5.1], [20.0]])
    ids = torch.tensor([0, 0, 1, 1, 2])  # identity 2 has no positive: no triplet for it
    _, _, valid = TripletLoss().mine(feats, ids)
    assert valid.tolist() == [True, True, True, True, False]
    assert TripletLoss(margin=0.3)(feats, ids).item() == pytest.approx(0.0, abs=1e-6)


def test_triplet_gradient_is_finite_for_identical_features() -> None:
    feats = torch.zeros(4, 3, requires_grad=True)
    TripletLoss(margin=0.3)(feats, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(feats.grad).all()


def test_center_loss_hand_value() -> None:
    loss = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    feats = torch.tensor([[1.0, 0.0], [1.0, 3.0]])
    assert loss(feats, torch.tensor([0, 1])).item() == pytest.approx((1.0 + 4.0) / 2)


def test_reid_loss_combines_parts_with_weights() -> None:
    torch.manual_seed(0)
    weights = LossWeights(
        ce_weight=1.0, label_smoothing=0.1, triplet_weight=0.5, center_weight=0.01, diversity_weight=0.2
    )
    criterion = ReidLoss(weights, num_classes=3, feat_dim=4)
    out = {
        "logits": torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [5.0, 0.0, 0.0]]),
        "features": torch.randn(4, 4),
        "mode_pooling": [torch.ones(4, 3, 1, 1)],  # 3 modes on 1 position: G - 1 = 2
    }
    targets = torch.tensor([0, 1, 1, 0])
    total, parts = criterion(out, targets)
    ce = CrossEntropyLabelSmooth(3, 0.1)(out["logits"], targets)
    tri = TripletLoss(0.3)(out["features"], targets)
    cen = criterion.center(out["features"], targets)
    assert parts["ce"].item() == pytest.approx(ce.item())
    assert parts["triplet"].item() == pytest.approx(tri.item())
    assert parts["diversity"].item() == 2.0
    assert parts["acc"].item() == pytest.approx(0.75)
    expected = ce + 0.5 * tri + 0.01 * cen + 0.2 * 2.0
    assert total.item() == pytest.approx(expected.item(), abs=1e-6)


def test_reid_loss_diversity_weight_zero_logs_but_does_not_add() -> None:
    criterion = ReidLoss(LossWeights(diversity_weight=0.0), num_classes=2, feat_dim=2)
    out = {
        "logits": torch.zeros(2, 2),
        "features": torch.zeros(2, 2),
        "mode_pooling": [torch.ones(2, 4, 1, 1)],
    }
    total, parts = criterion(out, torch.tensor([0, 1]))
    assert total.item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert parts["diversity"].item() == 3.0


def test_reid_loss_errors_are_user_errors() -> None:
    with pytest.raises(ReidError, match="enable at least one"):
        ReidLoss(LossWeights(ce_weight=0.0), num_classes=2, feat_dim=2)
    criterion = ReidLoss(LossWeights(), num_classes=2, feat_dim=2)
    with pytest.raises(ReidError, match="no classifier"):
        criterion({"logits": None, "features": torch.zeros(2, 2)}, torch.tensor([0, 1]))
