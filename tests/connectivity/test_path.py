"""The linear path and its error barrier (Frankle et al. 2020, Section 2) on known numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from bert_tickets.connectivity import chord_barrier, error_barrier, evaluate_linear_path, interpolate_state
from bert_tickets.pruning import prune_ticket
from bert_tickets.ticket import TicketMask


def test_error_barrier_on_known_numbers():
    assert error_barrier([0.8, 0.8, 0.8], higher_is_better=True) == 0.0
    assert math.isclose(error_barrier([0.9, 0.7, 0.5, 0.8], higher_is_better=True), (0.9 + 0.8) / 2 - 0.5)
    assert math.isclose(error_barrier([0.3, 0.9, 0.5], higher_is_better=False), 0.9 - 0.4)
    assert error_barrier([0.2, 0.1, 0.2], higher_is_better=False) == 0.0  # equal ends, nothing worse between
    assert math.isclose(error_barrier([0.2, 0.1, 0.4], higher_is_better=False), 0.1)  # the worse end: half the gap
    for bad in ([0.5], [0.5, float("nan")]):
        with pytest.raises(ValueError):
            error_barrier(bad, higher_is_better=True)


def test_identical_end_points_have_zero_barrier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def evaluate(m):
        with torch.no_grad():
            return {"loss": float(nn.functional.mse_loss(m(x), y))}

    path = evaluate_linear_path(model, state, state, evaluate, points=11)
    assert [p.alpha for p in path] == [i / 10 for i in range(11)]
    losses = [p.metrics["loss"] for p in path]
    assert len(set(losses)) == 1 and error_barrier(losses, higher_is_better=False) == 0.0


def test_a_known_bump_is_the_barrier():
    """One weight going from 0 (α = 0) to 1 (α = 1); a mocked evaluator whose metric dips by 0.4
    at the middle of the path: the barrier is 0.4."""
    model = nn.Linear(1, 1, bias=False)
    a, b = {"weight": torch.zeros(1, 1)}, {"weight": torch.ones(1, 1)}

    def evaluate(m):
        alpha = float(m.weight)
        return {"accuracy": 0.9 - 0.4 * math.sin(math.pi * alpha), "loss": 0.2 + 0.3 * math.sin(math.pi * alpha)}

    path = evaluate_linear_path(model, a, b, evaluate, points=11)
    assert math.isclose(error_barrier([p.metrics["accuracy"] for p in path], higher_is_better=True), 0.4)
    assert math.isclose(error_barrier([p.metrics["loss"] for p in path], higher_is_better=False), 0.3)
    assert torch.equal(model.weight, b["weight"])  # left at the last point


def test_pruned_weights_stay_exactly_zero_on_the_whole_path():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(model), model, 0.5, "random", seed=3)
    ends = []
    for seed in (1, 2):  # two "trained" networks under the same mask
        g = torch.Generator().manual_seed(seed)
        trained = BertForSequenceClassification(config)
        with torch.no_grad():
            for p in trained.parameters():
                p.add_(torch.randn(p.shape, generator=g))
        ticket.apply(trained)
        ends.append({k: v.clone() for k, v in trained.state_dict().items()})
    seen = []

    def evaluate(m):
        seen.append(ticket.count_nonzero_pruned(m))
        return {"n": 0.0}

    evaluate_linear_path(model, ends[0], ends[1], evaluate, points=11)
    assert seen == [0] * 11 and not model.training  # evaluation mode: dropout off
    # the ends are reproduced bit for bit
    assert all(torch.equal(interpolate_state(*ends, 0.0)[k], ends[0][k]) for k in ends[0])
    assert all(torch.equal(interpolate_state(*ends, 1.0)[k], ends[1][k]) for k in ends[1])


def test_interpolation_refuses_what_is_not_a_line():
    a = {"w": torch.zeros(2), "ids": torch.arange(3)}
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state(a, a, 1.5)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_state(a, {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match="shapes"):
        interpolate_state(a, {"w": torch.zeros(3), "ids": torch.arange(3)}, 0.5)
    with pytest.raises(ValueError, match="non-float"):
        interpolate_state(a, {"w": torch.zeros(2), "ids": torch.arange(3) + 1}, 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_linear_path(nn.Linear(1, 1), {}, {}, lambda m: {}, points=1)


def test_chord_barrier_counts_only_the_bump():
    # a straight path between unequal ends: the paper's barrier is half the gap, the chord's is 0
    straight = [0.81 - 0.0015 * i for i in range(11)]
    assert math.isclose(error_barrier(straight, higher_is_better=True), (0.81 - straight[-1]) / 2)
    assert chord_barrier(straight, higher_is_better=True) == pytest.approx(0.0, abs=1e-12)
    # a bump of 0.1 below the chord at the middle
    bumped = [0.8, 0.65, 0.7]  # the chord is 0.75 at the middle
    assert math.isclose(chord_barrier(bumped, higher_is_better=True), 0.1)
    assert math.isclose(chord_barrier([1.0, 1.6, 1.2], higher_is_better=False), 0.5)
