"""Gem-Miner on a tiny BERT: exact target, θ0 (backbone and head) untouched, scores in [0, 1],
periodic pruning, cost record, bad options."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.pruning.criteria.gem_miner import GemMinerOptions, gem_miner_scores
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE, tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config())


def _batches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(5, 99, (8, 12), generator=g), "labels": torch.randint(0, 2, (8,), generator=g)} for _ in range(n)]


def test_gem_miner_reaches_the_target_and_leaves_theta0_untouched(model):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    dense = TicketMask.dense(model)
    options = GemMinerOptions(steps=12, prune_period=3)
    ticket = prune_ticket(dense, model, 0.6, "gem_miner", batches=_batches(), gem_miner=options)
    assert ticket.num_pruned == target_count(0.6, TINY_PRUNABLE)
    assert ticket.metadata.pruning_method == "gem_miner"
    assert ticket.metadata.cost == {"train_steps": 12, "score_forward": 0, "score_backward": 0}
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n].detach()) for n in before)  # backbone and head
    assert all(p.grad is None for p in after.values())
    assert {n: p.requires_grad for n, p in after.items()} == flags


def test_gem_miner_scores_are_trained_clamped_and_pruned_periodically(model):
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    options = GemMinerOptions(steps=10, prune_period=2, learning_rate=0.05)
    scores = gem_miner_scores(model, weights, _batches(), 0.5, options=options)
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    assert bool(((flat >= 0) & (flat <= 1)).all())
    assert int((flat == 0).sum()) >= target_count(0.5, TINY_PRUNABLE)  # the last round pruned (zeroed) the target
    alive = flat[flat > 0]
    assert alive.numel() <= TINY_PRUNABLE - target_count(0.5, TINY_PRUNABLE)
    assert not torch.allclose(alive, torch.full_like(alive, 0.75))  # the scores moved from their start
    # deterministic; a different data order (seed) gives other scores
    again = gem_miner_scores(model, weights, _batches(), 0.5, options=options)
    assert all(torch.equal(scores[n], again[n]) for n in scores)
    other = gem_miner_scores(model, weights, _batches(), 0.5, options=options, seed=1)
    assert any(not torch.equal(scores[n], other[n]) for n in scores)


def test_gem_miner_keeps_an_existing_mask_pruned(model):
    dense = TicketMask.dense(model)
    half = prune_ticket(dense, model, 0.3, "magnitude")
    scores = gem_miner_scores(model, half.validate(model), _batches(), 0.6, half.masks, GemMinerOptions(steps=4, prune_period=2))
    assert all(bool((scores[n][~half.masks[n]] == 0).all()) for n in scores)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "--gem_steps must be >= 1"),
        ({"prune_period": 0}, "--gem_prune_period must be >= 1"),
        ({"score_init": 0.5}, r"--gem_score_init must be in \(0.5, 1\]"),
        ({"learning_rate": 0.0}, "--gem_learning_rate must be > 0"),
    ],
)
def test_gem_miner_refuses_bad_options(model, options, message):
    dense = TicketMask.dense(model)
    with pytest.raises(ValueError, match=message):  # refused when the options are made, before any scoring
        gem_miner_scores(model, dense.validate(model), _batches(), 0.5, options=GemMinerOptions(**options))
    with pytest.raises(ValueError, match="gem_miner needs training batches"):
        gem_miner_scores(model, dense.validate(model), [], 0.5)
