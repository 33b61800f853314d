"""Contract tests run over the registries: every registered pruning criterion and every
registered sparsity schedule must pass them. A new plug-in is tested by registering it (the
toy plug-ins below are registered for the duration of a test and must pass the same checks)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import (
    CRITERIA_REGISTRY,
    SCHEDULES_REGISTRY,
    PruningCriterion,
    StaticSchedule,
    make_schedule,
    prune_ticket,
    register_criterion,
    register_schedule,
    target_count,
)
from bert_tickets.pruning import prune_ticket as _prune_ticket
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE, tiny_config


class LastDimCriterion(PruningCriterion):
    """A toy criterion: score = column index (a plug-in defined outside the package)."""

    name = "toy_column"

    def scorer(self, weights, *, seed=0, **context):
        return lambda name, out: torch.arange(weights[name].shape[-1], dtype=torch.float32).expand(weights[name].shape).clone()


class HalvingSchedule(StaticSchedule):
    """A toy schedule: sparsity 1 − 2^−L (a plug-in defined outside the package)."""

    name = "toy_halving"

    def unclipped(self, level):
        return round(1.0 - 0.5**level, 10)


@pytest.fixture(params=[*CRITERIA_REGISTRY.names(), LastDimCriterion.name])
def criterion(request):
    """Every registered criterion, plus the toy one registered for the test."""
    if request.param == LastDimCriterion.name:
        register_criterion(LastDimCriterion)
        yield request.param
        CRITERIA_REGISTRY.unregister(request.param)
    else:
        yield request.param


@pytest.fixture(params=[*SCHEDULES_REGISTRY.names(), HalvingSchedule.name])
def schedule_name(request):
    """Every registered schedule, plus the toy one registered for the test."""
    if request.param == HalvingSchedule.name:
        register_schedule(HalvingSchedule)
        yield request.param
        SCHEDULES_REGISTRY.unregister(request.param)
    else:
        yield request.param


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config())


def _batches(seed=0):
    """Two tiny labelled batches: what a data-dependent criterion (snip) gets as context."""
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(5, 99, (4, 12), generator=g), "labels": torch.randint(0, 2, (4,), generator=g)} for _ in range(2)]


# ------------------------------------------------------------------------------ criteria
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_every_criterion_exact_monotone_deterministic(criterion, scope, model):
    name = criterion
    batches = _batches()

    def prune_ticket(*args, **kw):  # every criterion gets the same context; data-free ones ignore it
        return _prune_ticket(*args, batches=batches, **kw)

    dense = TicketMask.dense(model)
    if CRITERIA_REGISTRY.get(name).granularities is not None:  # a unit criterion: weight granularity refused
        with pytest.raises(ValueError, match="structured --granularity"):
            prune_ticket(dense, model, 0.3, name, seed=1, scope=scope)
        return
    t1 = prune_ticket(dense, model, 0.3, name, seed=1, scope=scope)
    assert isinstance(t1, TicketMask) and t1.metadata.pruning_method == name and t1.metadata.level == 1
    assert t1.num_pruned == target_count(0.3, TINY_PRUNABLE) and t1.num_prunable == TINY_PRUNABLE
    assert all(m.dtype == torch.bool and m.shape == dense.masks[n].shape for n, m in t1.masks.items())
    if scope == "layerwise":  # every tensor within one weight of the target
        assert all(abs((~m).sum().item() - 0.3 * m.numel()) <= 1 for m in t1.masks.values())
    # deterministic: the same weights and seed give the same mask
    again = prune_ticket(dense, model, 0.3, name, seed=1, scope=scope)
    assert all(torch.equal(t1.masks[n], again.masks[n]) for n in t1.masks)
    # never revives a pruned weight, even when the weights change between levels
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    t2 = prune_ticket(t1, model, 0.55, name, seed=1, scope=scope)
    assert t2.num_pruned == target_count(0.55, TINY_PRUNABLE)
    assert all(bool((t2.masks[n] <= t1.masks[n]).all()) for n in t1.masks)
    # the same target again prunes nothing more; a lower one is refused
    assert all(torch.equal(prune_ticket(t2, model, 0.55, name, seed=1, scope=scope).masks[n], t2.masks[n]) for n in t2.masks)
    with pytest.raises(ValueError, match="pruning never revives|layer-wise target"):
        prune_ticket(t2, model, 0.2, name, seed=1, scope=scope)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_every_one_shot_criterion_prunes_exact_whole_units(criterion, scope, model):
    """Structured granularity (head+neuron): exact unit counts, monotone, deterministic, for every
    criterion that selects once (an iterative one is refused)."""
    from bert_tickets.pruning.structured import bert_groups

    batches = _batches()
    dense = TicketMask.dense(model)
    shapes = dense.shapes
    heads, neurons = bert_groups(shapes, 4, "head"), bert_groups(shapes, 4, "neuron")

    def pruned_units(t):
        return {
            (g.kind, g.layer, g.index)
            for g in heads + neurons
            if not any(t.masks[n][sl].any() if a == 0 else t.masks[n][:, sl].any() for n, a, sl in g.pieces)
        }

    def prune(ticket, s):
        return _prune_ticket(ticket, model, s, criterion, seed=1, scope=scope, granularity="head+neuron", batches=batches)

    if CRITERIA_REGISTRY.get(criterion)().sparsity_steps(0.0, 0.5) != [0.5]:
        with pytest.raises(ValueError, match="one-shot"):
            prune(dense, 0.5)
        return
    t1 = prune(dense, 0.25)
    units = pruned_units(t1)
    expected_heads = 2 if scope == "global" else 2 * round(0.25 * 4)  # 2 layers x 4 heads
    assert sum(k == "head" for k, *_ in units) == expected_heads and sum(k == "neuron" for k, *_ in units) == 32
    # exactly the units' weights are pruned: every pruned weight belongs to a pruned unit
    per_unit = {g.kind: g.weights(shapes) for g in heads + neurons}
    assert t1.num_pruned == expected_heads * per_unit["head"] + 32 * per_unit["neuron"]
    if scope == "layerwise":  # 1 head and 16 neurons in each of the 2 layers
        for layer in (0, 1):
            assert sum(k == "head" and li == layer for k, li, _ in units) == 1
            assert sum(k == "neuron" and li == layer for k, li, _ in units) == 16
    assert t1.metadata.extra["groups_pruned"] == {"head": [expected_heads, 8], "neuron": [32, 128]}
    assert pruned_units(prune(dense, 0.25)) == units  # deterministic
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    t2 = prune(t1, 0.5)
    assert units <= pruned_units(t2) and len(pruned_units(t2)) == 4 + 64


def test_random_criterion_depends_on_its_seed(model):
    dense = TicketMask.dense(model)
    a, b = (prune_ticket(dense, model, 0.5, "random", seed=s) for s in (1, 2))
    assert any(not torch.equal(a.masks[n], b.masks[n]) for n in a.masks)


def test_registry_refuses_a_second_class_under_a_taken_name():
    class Impostor(PruningCriterion):
        name = "magnitude"

    with pytest.raises(ValueError, match="already registered"):
        register_criterion(Impostor)
    with pytest.raises(
        ValueError, match="unknown pruning method 'nope'; choose one of gem_miner, importance, magnitude, random, snip, synflow"
    ):
        prune_ticket(None, None, 0.1, "nope")


# ------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("target", [0.0, 0.25, 0.9])
@pytest.mark.parametrize("max_levels", [None, 2])
def test_every_schedule_starts_dense_is_monotone_and_stops_at_the_target(schedule_name, target, max_levels):
    schedule = make_schedule(schedule_name, target, max_levels)
    if schedule.adaptive:
        return _adaptive_contract(schedule, target, max_levels)
    levels = schedule.preview()
    assert levels[0] == 0.0
    assert all(b > a for a, b in zip(levels, levels[1:]))  # strictly increasing
    assert all(0.0 <= s <= target + 1e-12 for s in levels)  # never past the target
    if max_levels is not None:
        assert len(levels) <= max_levels + 1
    if max_levels is None or len(levels) < max_levels + 1:
        assert levels[-1] == pytest.approx(target, abs=1e-10)  # stops at the target
    # next() sees the history: one more call after the last level stops
    assert schedule.next([object()] * len(levels)) is None


class _Outcome:
    def __init__(self, level, target, matching, barrier=None):
        self.level, self.target_sparsity, self.sparsity, self.mean = level, target, target, 0.0
        self.matching, self.barrier = matching, barrier


def _adaptive_contract(schedule, target, max_levels):
    """An adaptive schedule driven by oracles (tickets match up to a sparsity, or never): it
    starts dense, never passes the target, prunes each level from a finished level of lower
    sparsity, and stops within a bounded number of levels."""
    for limit in (1.0, 0.6, 0.3, -1.0):
        history = []
        while (s := schedule.next(history)) is not None:
            level = len(history)
            assert level < 200, "the schedule does not stop"
            if level == 0:
                assert s == 0.0
            else:
                base = schedule.base_level(history)
                base = level - 1 if base is None else base
                assert 0 <= base < level and history[base].target_sparsity < s  # prunes more than its base
            assert 0.0 <= s <= target + 1e-12
            history.append(_Outcome(level, s, matching=level == 0 or s <= limit))
        if max_levels is not None:
            assert len(history) <= max_levels + 1
        elif limit >= target:
            assert history[-1].target_sparsity == pytest.approx(target)  # every level matches: it reaches the target


def test_linear_and_geometric_values():
    assert make_schedule("linear", 0.9).preview() == pytest.approx([i / 10 for i in range(10)])
    assert make_schedule("geometric", 0.5, prune_fraction=0.2).preview() == pytest.approx([0.0, 0.2, 0.36, 0.488, 0.5])
    assert make_schedule("linear", 0.9, 3).beyond(4) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="prune_step"):
        make_schedule("linear", 0.5, prune_step=0.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("cosine")
    # a start (issue 20, item 5): level 1 at start_sparsity, then + prune_step; unset changes no run's hash
    started = make_schedule("linear", 0.9, start_sparsity=0.45)
    assert started.preview() == pytest.approx([0.0, 0.45, 0.55, 0.65, 0.75, 0.85, 0.9])
    assert make_schedule("linear", 0.9, 2, start_sparsity=0.5).beyond(3) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="start_sparsity"):
        make_schedule("linear", 0.9, start_sparsity=1.0)
    with pytest.raises(ValueError, match="start_sparsity 0.95 is above the target sparsity 0.5"):
        make_schedule("linear", 0.5, start_sparsity=0.95)
    assert make_schedule("linear", 0.5, start_sparsity=0.5).preview() == [0.0, 0.5]  # at the target: one level
    from bert_tickets.pruning.schedules import schedule_hash_entries

    linear = SCHEDULES_REGISTRY.get("linear")
    assert "start_sparsity" not in schedule_hash_entries("linear", linear.options({})) | schedule_hash_entries("geometric", None)
    assert schedule_hash_entries("linear", linear.options({"start_sparsity": 0.5}))["start_sparsity"] == 0.5


def test_snip_scores_are_gradient_times_weight(model):
    """snip = |dL/dw * w| with L summed over the batches (Lee et al. 2019, Eq. 6), against a
    reference autograd computation; other batches give another mask; the weights, the grads and
    the training mode are left as they were."""
    from bert_tickets.pruning.criteria.snip import snip_scores
    from bert_tickets.ticket import prunable_parameters

    batches = _batches()
    weights = prunable_parameters(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    scores = snip_scores(model, weights, batches)
    reference = BertForSequenceClassification(tiny_config())
    reference.load_state_dict(model.state_dict())
    reference.eval()
    loss = sum(reference(**b).loss for b in batches)
    ref_weights = prunable_parameters(reference)
    grads = torch.autograd.grad(loss, [ref_weights[n] for n in weights])
    for (n, w), g in zip(weights.items(), grads):
        assert torch.allclose(scores[n], (g * w).abs(), rtol=1e-5, atol=1e-9), n
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters()) and model.training
    assert all(p.grad is None for p in model.parameters())
    dense = TicketMask.dense(model)
    a = _prune_ticket(dense, model, 0.5, "snip", batches=batches)
    b = _prune_ticket(dense, model, 0.5, "snip", batches=_batches(seed=1))
    assert a.num_pruned == b.num_pruned == target_count(0.5, TINY_PRUNABLE)
    assert any(not torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    with pytest.raises(ValueError, match="at least one batch"):
        _prune_ticket(dense, model, 0.5, "snip")
