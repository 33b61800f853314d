"""SNIP on a tiny BERT: regression targets centred by their mean over the scoring batches (equal
to the head bias at the label mean), the gradient summed over several batches (equal to the sum
of single-batch gradients), the defaults, classification labels untouched."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.pruning.criteria import get_criterion
from bert_tickets.pruning.criteria.snip import SnipOptions, label_mean, snip_scores
from bert_tickets.ticket import TicketMask, prunable_parameters

from conftest import TINY_PRUNABLE, tiny_config


@pytest.fixture
def regression():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(num_labels=1))


def _batches(n=3, seed=0, size=4):
    """STS-B-like batches: float labels on a 0-5 scale (mean far from the fresh head's ≈ 0)."""
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(5, 99, (size, 12), generator=g), "labels": 5 * torch.rand(size, generator=g)} for _ in range(n)]


def _copy(model):
    other = BertForSequenceClassification(model.config)
    other.load_state_dict(model.state_dict())
    return other.eval()


def test_regression_targets_are_centred_by_their_mean_over_all_scoring_batches(regression):
    batches = _batches(3)
    flat = torch.cat([b["labels"].double() for b in batches])
    assert label_mean(regression, batches) == pytest.approx(float(flat.sum() / flat.numel()), rel=1e-12)
    weights = prunable_parameters(regression)
    centred = snip_scores(regression, weights, batches)
    mean = label_mean(regression, batches)
    by_hand = snip_scores(regression, weights, [{**b, "labels": b["labels"] - mean} for b in batches], center_targets=False)
    raw = snip_scores(regression, weights, batches, center_targets=False)
    # the same as scoring on centred labels by hand, and not the same as the raw labels
    assert all(torch.equal(centred[n], by_hand[n]) for n in weights)
    assert any(not torch.allclose(centred[n], raw[n]) for n in weights)
    # equivalent (MSE) to the raw labels with the head's bias set to the label mean
    shifted = _copy(regression)
    with torch.no_grad():
        shifted.classifier.bias.add_(mean)
    biased = snip_scores(shifted, prunable_parameters(shifted), batches, center_targets=False)
    for n in weights:
        torch.testing.assert_close(centred[n], biased[n], rtol=1e-4, atol=1e-10)


def test_the_gradient_is_summed_over_batches_before_the_absolute_value(regression):
    """Several batches score |(g_1 + … + g_B) ⊙ w|: the single-batch gradients (labels centred by
    the pooled mean), computed one at a time by autograd on a copy, summed."""
    batches = _batches(4)
    weights = prunable_parameters(regression)
    scores = snip_scores(regression, weights, batches)
    mean = label_mean(regression, batches)
    reference = _copy(regression)
    ref_weights = prunable_parameters(reference)
    names = list(weights)
    total = {n: torch.zeros_like(weights[n]) for n in names}
    single_abs = {n: torch.zeros_like(weights[n]) for n in names}
    for b in batches:
        loss = reference(input_ids=b["input_ids"], labels=b["labels"] - mean).loss
        grads = torch.autograd.grad(loss, [ref_weights[n] for n in names])
        for n, g in zip(names, grads):
            total[n] += g
            single_abs[n] += (g * ref_weights[n]).abs().detach()
    for n in names:
        torch.testing.assert_close(scores[n], (total[n] * weights[n]).abs().detach(), rtol=1e-4, atol=1e-9)
    # not the sum of single-batch scores: the gradient is accumulated first (Synaptic-Flow's SNIP.score)
    assert any(not torch.allclose(scores[n], single_abs[n], rtol=1e-3) for n in names)
    # a batch more changes the scores (the count is not ignored)
    fewer = snip_scores(regression, weights, batches[:1])
    assert any(not torch.allclose(scores[n], fewer[n]) for n in names)


def test_snip_defaults_and_options_reach_the_scores(regression):
    options = SnipOptions()
    assert options.score_batches == 4 and options.score_batches > 1 and options.center_targets is True
    snip = get_criterion("snip")
    assert snip.batches_needed(options) == 4 and snip.batches_needed(SnipOptions(score_batches=2)) == 2
    assert snip.options({"score_batches": "3", "center_targets": "false"}) == SnipOptions(score_batches=3, center_targets=False)
    with pytest.raises(ValueError, match="score_batches must be >= 1"):
        SnipOptions(score_batches=0)
    dense = TicketMask.dense(regression)
    batches = _batches(2)
    centred = prune_ticket(dense, regression, 0.5, "snip", batches=batches)
    raw = prune_ticket(dense, regression, 0.5, "snip", batches=batches, options=SnipOptions(center_targets=False))
    assert centred.num_pruned == raw.num_pruned == target_count(0.5, TINY_PRUNABLE)
    assert any(not torch.equal(centred.masks[n], raw.masks[n]) for n in centred.masks)
    assert centred.metadata.cost == {"train_steps": 0, "score_forward": 2, "score_backward": 2}


def test_classification_labels_are_not_centred():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())  # two classes
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(5, 99, (4, 12), generator=g), "labels": torch.randint(0, 2, (4,), generator=g)}]
    assert label_mean(model, batches) is None
    weights = prunable_parameters(model)
    a = snip_scores(model, weights, batches)
    b = snip_scores(model, weights, batches, center_targets=False)
    assert all(torch.equal(a[n], b[n]) for n in weights)
