"""Gem-Miner on a tiny BERT: exact target, θ0 (backbone and head) untouched, scores in [0, 1],
periodic pruning, cost record, bad options; the rounds' steps and targets, the active density
per step against the schedule, the final-mask rule (score > 0.5, topped up or cut to the exact
count), the defaults of the reference's Adam config."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.pruning.criteria import get_criterion
from bert_tickets.pruning.criteria.gem_miner import (
    REFERENCE_ADAM_PENALTY,
    GemMinerOptions,
    gem_miner_scores,
    gem_miner_search,
    round_sparsities,
    round_steps,
)
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
        ({"rounds": -1}, "--gem_rounds must be >= 0"),
        ({"epochs": 0.0}, "--gem_epochs must be > 0"),
        ({"lr_schedule": "linear"}, "--gem_lr_schedule must be one of cosine, constant"),
    ],
)
def test_gem_miner_refuses_bad_options(model, options, message):
    dense = TicketMask.dense(model)
    with pytest.raises(ValueError, match=message):  # refused when the options are made, before any scoring
        gem_miner_scores(model, dense.validate(model), _batches(), 0.5, options=GemMinerOptions(**options))
    with pytest.raises(ValueError, match="gem_miner needs training batches"):
        gem_miner_scores(model, dense.validate(model), [], 0.5)


def test_rounds_follow_the_reference_rule():
    # the reference: a round after epoch e when e % T == 0, e != 0, e < E -> floor((E - 1) / T) rounds
    assert round_steps(200, 0, prune_period=20) == list(range(20, 200, 20)) and len(round_steps(200, 0, prune_period=20)) == (200 - 1) // 20
    assert round_steps(12, 9, prune_period=3) == [3, 6, 9]
    # K evenly spaced rounds, the last one period before the end
    assert round_steps(200, 9) == [20, 40, 60, 80, 100, 120, 140, 160, 180]
    assert round_steps(540, 9) == [54 * k for k in range(1, 10)]
    assert round_steps(3, 9) == [1, 2] and round_steps(1, 9) == [] and round_steps(10, 0) == []
    # kept fraction (1 - s)^(k/K), the last exactly the target; from a start above 0
    assert round_sparsities(0.0, 0.75, 2) == pytest.approx([0.5, 0.75]) and round_sparsities(0.0, 0.75, 2)[-1] == 0.75
    assert round_sparsities(0.5, 0.875, 2) == pytest.approx([0.75, 0.875])
    with pytest.raises(ValueError, match="gem_miner rounds need"):
        round_steps(0, 9)


def test_the_active_density_follows_the_target_schedule(model, tmp_path):
    """With the scores held near their start (a learning rate of 1e-9, no penalty) every survivor
    stays active, so the recorded active count after each step is the schedule's kept count:
    N until the first round, then N - round(s_k * N) after round k, s_k = 1 - (1 - s)^(k/K)."""
    dense = TicketMask.dense(model)
    n = TINY_PRUNABLE
    options = GemMinerOptions(steps=10, rounds=4, learning_rate=1e-9, penalty=0.0, head_learning_rate=0.0)
    ticket = prune_ticket(dense, model, 0.6, "gem_miner", batches=_batches(), options=options)
    record = ticket.metadata.extra["criterion_record"]
    rounds = [2, 4, 6, 8]  # floor(k * 10 / 5)
    sparsities = [1 - (1 - 0.6) ** (k / 4) for k in range(1, 5)]
    kept = [n - target_count(s, n) for s in sparsities]
    expected_active = [n if t < rounds[0] else kept[max(i for i, r in enumerate(rounds) if r <= t)] for t in range(1, 11)]
    assert record["prunable"] == n and record["steps"] == 10 and record["round_steps"] == rounds
    assert record["round_sparsities"] == pytest.approx(sparsities)
    assert record["kept"] == kept
    assert record["active"] == expected_active
    assert record["final"] == {"kept": n - target_count(0.6, n), "above_half": n - target_count(0.6, n), "topped_up": 0, "cut": 0}
    assert ticket.num_pruned == target_count(0.6, n)
    ticket.save_pretrained(tmp_path / "t")  # the record travels with the ticket
    assert TicketMask.from_pretrained(tmp_path / "t").metadata.extra["criterion_record"] == record
    # the record describes this mask only: pruning the ticket further by magnitude drops it
    assert "criterion_record" not in prune_ticket(ticket, model, 0.7, "magnitude").metadata.extra


def test_a_strong_penalty_empties_the_active_set_and_the_final_mask_is_topped_up(model):
    """A penalty far above the data gradient drives the scores below 0.5: the active density
    falls below the kept fraction, and the final mask is the survivors topped up to the count."""
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    n = TINY_PRUNABLE
    options = GemMinerOptions(steps=12, rounds=3, learning_rate=0.05, penalty=1.0, lr_schedule="constant")
    found = gem_miner_search(model, weights, _batches(), 0.5, options=options)
    record = found.record
    count = n - target_count(0.5, n)
    flat = torch.cat([s.reshape(-1) for s in found.scores.values()])
    kept = torch.cat([m.reshape(-1) for m in found.mask.values()])
    # the last recorded active count is the scores' own count above 0.5 (pruned scores are 0)
    assert record["active"][-1] == int((flat > 0.5).sum())
    assert record["active"][-1] < record["kept"][-1] == count
    assert int(kept.sum()) == count == record["final"]["kept"]
    assert record["final"]["above_half"] == int((kept & (flat > 0.5)).sum()) == record["active"][-1]
    assert record["final"]["topped_up"] == count - record["final"]["above_half"] > 0 and record["final"]["cut"] == 0
    assert bool((kept | ~(flat > 0.5)).all())  # every score > 0.5 is kept


def test_the_final_mask_is_cut_to_the_count_by_dropping_the_lowest_scores(model):
    """No rounds (rounds=0): every weight stays active, the final mask keeps the highest scores."""
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    n = TINY_PRUNABLE
    options = GemMinerOptions(steps=3, rounds=0, learning_rate=1e-3, penalty=0.0)
    found = gem_miner_search(model, weights, _batches(), 0.4, options=options)
    count = n - target_count(0.4, n)
    assert found.record["kept"] == [] and found.record["active"] == [n, n, n]
    assert found.record["final"] == {"kept": count, "above_half": count, "topped_up": 0, "cut": n - count}
    flat = torch.cat([s.reshape(-1) for s in found.scores.values()])
    kept = torch.cat([m.reshape(-1) for m in found.mask.values()])
    assert int(kept.sum()) == count and float(flat[kept].min()) >= float(flat[~kept].max())


def test_defaults_follow_the_reference_adam_config_and_old_names_still_work(model):
    options = GemMinerOptions()
    # by the kept fraction: configs/hypercube/resnet18/cifar10/sparsity_5_85lam6_iter_20_adam.yml (5% kept):
    # lmbda 0.0000085, lr 0.01; tinyImageNet/resnet18/resnet18_sparsity_50_adam_{5,25}.yml (50% kept): lmbda 0,
    # lr 0.1; cosine_lr, epochs 200 / iter_period 20 -> 9 rounds; 3 epochs = the GLUE fine-tuning budget
    assert options.penalty is None and options.learning_rate is None
    assert options.resolved(0.9) == (1e-2, REFERENCE_ADAM_PENALTY) and REFERENCE_ADAM_PENALTY == 8.5e-6
    assert options.resolved(0.5) == (0.1, 0.0) == options.resolved(0.2)
    assert GemMinerOptions(penalty=1e-6, learning_rate=0.05).resolved(0.5) == (0.05, 1e-6)  # given values win
    assert GemMinerOptions(penalty=0.0).resolved(0.9) == (1e-2, 0.0)
    assert (options.lr_schedule, options.rounds, options.epochs) == ("cosine", 9, 3.0)
    assert options.steps is None and options.prune_period is None
    parsed = get_criterion("gem_miner").options({"gem_steps": "5", "gem_penalty": "1e-6", "gem_prune_period": "2", "gem_rounds": "4"})
    assert (parsed.steps, parsed.penalty, parsed.prune_period, parsed.rounds) == (5, 1e-6, 2, 4)
    # the default budget is epochs passes over the batches given; steps is the explicit reduced one
    assert options.total_steps(180) == 540 and GemMinerOptions(steps=63).total_steps(180) == 63
    assert GemMinerOptions(epochs=0.5).total_steps(7) == 4
    dense = TicketMask.dense(model)
    batches = _batches(4)
    small = GemMinerOptions(epochs=2, rounds=2)
    ticket = prune_ticket(dense, model, 0.5, "gem_miner", batches=batches, options=small)
    assert ticket.metadata.cost["train_steps"] == 8 == ticket.metadata.extra["criterion_record"]["steps"]
    # at 50% the half-kept config was used: the same mask as asking for it explicitly
    assert (ticket.metadata.extra["criterion_record"]["learning_rate"], ticket.metadata.extra["criterion_record"]["penalty"]) == (0.1, 0.0)
    explicit = prune_ticket(
        dense, model, 0.5, "gem_miner", batches=batches, options=GemMinerOptions(epochs=2, rounds=2, learning_rate=0.1, penalty=0.0)
    )
    assert all(torch.equal(ticket.masks[n], explicit.masks[n]) for n in ticket.masks)
    assert ticket.metadata.extra["criterion_record"]["round_steps"] == [2, 5]
    # the learning-rate schedule reaches the scores
    weights = dense.validate(model)
    cosine = gem_miner_scores(model, weights, batches, 0.5, options=GemMinerOptions(steps=6, rounds=0))
    constant = gem_miner_scores(model, weights, batches, 0.5, options=GemMinerOptions(steps=6, rounds=0, lr_schedule="constant"))
    assert any(not torch.equal(cosine[n], constant[n]) for n in cosine)
