"""The early-bird rule (You et al. 2020, Algorithm 1, as adapted in
bert_tickets.training.early_bird): exact mask distances, the stop step, the options' checks, and
the bisection that chooses which levels are judged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import BertModel, TrainerControl

from bert_tickets.experiments.early_bird import bisection_order
from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.ticket import TicketMask
from bert_tickets.training.early_bird import EarlyBirdCallback, EarlyBirdOptions, mask_distance

from conftest import tiny_config


def _step(cb, model, step):
    control = TrainerControl()
    cb.on_step_end(None, SimpleNamespace(global_step=step), control, model=model)
    return control.should_training_stop


def test_mask_distance_counts_the_changed_share_of_the_level_choice():
    a = TicketMask({"w": torch.tensor([True, True, False, False, True, True])})
    b = TicketMask({"w": torch.tensor([True, False, True, False, True, True])})
    # two weights differ; the level pruned 2 new weights -> half its choice changed
    assert mask_distance(a, b, 2) == 0.5
    assert mask_distance(a, a, 2) == 0.0
    with pytest.raises(ValueError, match="new_pruned must be > 0"):
        mask_distance(a, b, 0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="interval must be an integer >= 1"):
        EarlyBirdOptions(interval=0)
    with pytest.raises(ValueError, match="epsilon must be a fraction"):
        EarlyBirdOptions(epsilon=1.0)
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        EarlyBirdOptions(window=1)


def test_the_callback_draws_the_next_magnitude_mask_and_stops_when_the_queue_settles():
    torch.manual_seed(0)
    model = BertModel(tiny_config())
    dense = TicketMask.dense(model)
    level1 = prune_ticket(dense, model, 0.2)
    cb = EarlyBirdCallback(level1, 0.4, EarlyBirdOptions(interval=3, epsilon=0.05, window=3))
    assert cb.record.new_pruned == target_count(0.4, dense.num_prunable) - target_count(0.2, dense.num_prunable)
    # steps that are not multiples of the interval draw nothing
    assert not _step(cb, model, 1) and not _step(cb, model, 2) and cb.record.distances == []
    assert not _step(cb, model, 3)  # first draw: nothing to compare with yet
    first = prune_ticket(level1, model, 0.4)
    # move the weights so that the next draw differs: flip the magnitudes of one tensor
    name = "encoder.layer.0.intermediate.dense.weight"
    with torch.no_grad():
        w = dict(model.named_parameters())[name]
        w.copy_(w.abs().max() + 1e-3 - w.abs())
    assert not _step(cb, model, 6)
    second = prune_ticket(level1, model, 0.4)
    expected = sum(int((first.masks[n] ^ second.masks[n]).sum()) for n in first.masks) / (2 * cb.record.new_pruned)
    assert cb.record.distances == [[6, expected]] and expected > 0.05
    # the weights stop moving. Step 9: the queue is full (3 masks) but the newest is still
    # `expected` away from the first one -> no; step 12: the first has left the queue, the newest
    # equals both older ones -> the rule fires (You et al.: newest vs every older mask)
    assert not _step(cb, model, 9)
    assert _step(cb, model, 12)
    assert cb.record.distances == [[6, expected], [9, expected], [12, 0.0]]
    assert cb.record.converged_at_step == 12 and cb.mask is not None
    assert cb.mask.num_pruned == target_count(0.4, dense.num_prunable)
    assert all(torch.equal(cb.mask.masks[n], second.masks[n]) for n in second.masks)
    assert all(bool((cb.mask.masks[n] <= level1.masks[n]).all()) for n in level1.masks)  # monotone
    assert not _step(cb, model, 15) and len(cb.record.distances) == 3  # nothing after it fired


def test_the_callback_refuses_a_next_sparsity_that_prunes_nothing():
    model = BertModel(tiny_config())
    ticket = prune_ticket(TicketMask.dense(model), model, 0.3)
    with pytest.raises(ValueError, match="prunes nothing"):
        EarlyBirdCallback(ticket, 0.3, EarlyBirdOptions())


@pytest.mark.parametrize(
    ("levels", "highest_matching", "visited"),
    [(9, 4, [5, 2, 3, 4]), (9, 9, [5, 7, 8, 9]), (9, 0, [5, 2, 1]), (3, 3, [2, 3]), (1, 0, [1]), (0, 0, [])],
)
def test_bisection_visits_log2_levels_and_finds_the_monotone_boundary(levels, highest_matching, visited):
    seen = []

    def is_matching(level):
        seen.append(level)
        return level <= highest_matching

    assert bisection_order(levels, is_matching) == (highest_matching, visited)
    assert seen == visited and len(seen) <= (levels + 1).bit_length()
