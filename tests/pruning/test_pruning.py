import math

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from bert_tickets.pruning import (
    global_magnitude_pruning,
    prune_ticket,
    random_pruning,
    sparsity_schedule,
    target_count,
)


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(16, 8, generator=g),
        "b": torch.randn(8, 8, generator=g) * 0.1,  # smaller scale: pruned more under a global ranking
        "c": torch.randn(4, 32, generator=g) * 3,
    }


def _pruned(masks):
    return sum(int((~m).sum()) for m in masks.values())


def _torch_reference(weights, amounts):
    """Masks from torch.nn.utils.prune.global_unstructured(L1Unstructured), applied iteratively."""
    modules = {n: nn.Linear(w.shape[1], w.shape[0], bias=False) for n, w in weights.items()}
    for n, m in modules.items():
        with torch.no_grad():
            m.weight.copy_(weights[n])
    for amount in amounts:
        torch_prune.global_unstructured([(m, "weight") for m in modules.values()], pruning_method=torch_prune.L1Unstructured, amount=amount)
    return {n: m.weight_mask.bool() for n, m in modules.items()}


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.37, 0.5, 0.9])
def test_exact_count_and_equals_torch_reference(sparsity):
    w = _weights()
    total = sum(t.numel() for t in w.values())
    masks = global_magnitude_pruning(w, sparsity)
    k = target_count(sparsity, total)
    assert _pruned(masks) == k
    ref = _torch_reference(w, [k])
    for n in w:
        assert torch.equal(masks[n], ref[n]), n


def test_iterative_levels_equal_torch_reference_and_are_monotone():
    w = _weights(1)
    total = sum(t.numel() for t in w.values())
    m1 = global_magnitude_pruning(w, 0.2)
    # between levels the weights change (fine-tuning); pruned ones are zero
    w2 = {n: (t + 0.05 * torch.randn_like(t)) * m1[n] for n, t in w.items()}
    m2 = global_magnitude_pruning(w2, 0.5, m1)
    assert _pruned(m2) == target_count(0.5, total)
    assert all(bool((m2[n] <= m1[n]).all()) for n in w)  # never revives a weight
    k1, k2 = target_count(0.2, total), target_count(0.5, total)
    ref1 = _torch_reference(w, [k1])
    assert all(torch.equal(m1[n], ref1[n]) for n in w)
    # torch's reference for level 2: importance of w2 over the survivors, pruning k2 - k1 more
    modules_ref = _torch_reference(w2, [k1, k2 - k1])
    assert all(torch.equal(m2[n], modules_ref[n]) for n in w)


def test_pruned_weights_that_are_not_zero_stay_pruned():
    w = {"a": torch.tensor([[5.0, 0.1, 4.0, 3.0]])}
    m = {"a": torch.tensor([[False, True, True, True]])}  # the largest weight is already pruned
    new = global_magnitude_pruning(w, 0.5, m)
    assert new["a"].tolist() == [[False, False, True, True]]


def test_ties_broken_by_position_with_exact_count():
    w = {"a": torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]]), "b": torch.tensor([[1.0, 0.0, 3.0]])}
    m = global_magnitude_pruning(w, 4 / 9)  # zeros (2) + first two of the four 1.0s
    assert m["a"].tolist() == [[False, False, True], [True, True, False]]
    assert m["b"].tolist() == [[True, False, True]]
    m3 = global_magnitude_pruning(w, 3 / 9)
    assert _pruned(m3) == 3 and m3["a"][0].tolist() == [False, True, True]


def test_all_zero_weights_still_exact():
    w = {"a": torch.zeros(10, 10), "b": torch.zeros(3, 7)}
    m = global_magnitude_pruning(w, 0.3)
    assert _pruned(m) == target_count(0.3, 121)
    flat = torch.cat([m["a"].flatten(), m["b"].flatten()])
    assert not flat[:36].any() and flat[36:].all()  # first positions pruned first


def test_scaled_down_tensor_is_pruned_first():
    w = _weights()
    m = global_magnitude_pruning(w, 0.3)
    sp = {n: 1 - m[n].float().mean().item() for n in w}
    assert sp["b"] > sp["a"] > sp["c"]


def test_bad_inputs():
    w = _weights()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        global_magnitude_pruning(w, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        global_magnitude_pruning(w, -0.1)
    m = global_magnitude_pruning(w, 0.5)
    with pytest.raises(ValueError, match="below the current sparsity"):
        global_magnitude_pruning(w, 0.3, m)
    with pytest.raises(ValueError, match="different tensors"):
        global_magnitude_pruning(w, 0.6, {"a": m["a"]})
    with pytest.raises(ValueError, match="torch.bool"):
        global_magnitude_pruning(w, 0.6, {n: t.float() for n, t in m.items()})


def test_random_pruning_exact_seeded_and_monotone():
    shapes = {n: t.shape for n, t in _weights().items()}
    total = sum(math.prod(s) for s in shapes.values())
    a = random_pruning(shapes, 0.4, seed=3)
    b = random_pruning(shapes, 0.4, seed=3)
    c = random_pruning(shapes, 0.4, seed=4)
    assert _pruned(a) == target_count(0.4, total)
    assert all(torch.equal(a[n], b[n]) for n in shapes)
    assert not all(torch.equal(a[n], c[n]) for n in shapes)
    d = random_pruning(shapes, 0.7, seed=5, masks=a)
    assert _pruned(d) == target_count(0.7, total) and all(bool((d[n] <= a[n]).all()) for n in shapes)


def test_schedules():
    assert sparsity_schedule("linear") == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    geo = sparsity_schedule("geometric", target_sparsity=0.5, prune_fraction=0.2)
    assert geo == [0.0, 0.2, 0.36, 0.488, 0.5]
    assert sparsity_schedule("linear", max_levels=3) == [0.0, 0.1, 0.2, 0.3]
    assert sparsity_schedule("linear", target_sparsity=0.25) == [0.0, 0.1, 0.2, 0.25]
    assert sparsity_schedule("linear", target_sparsity=0.0) == [0.0]
    with pytest.raises(ValueError, match="unknown schedule"):
        sparsity_schedule("cubic")
    with pytest.raises(ValueError, match="prune_step"):
        sparsity_schedule("linear", prune_step=0.0)


def test_prune_ticket_on_model(config):
    from transformers import BertForSequenceClassification

    from bert_tickets.ticket import TicketMask

    from conftest import TINY_PRUNABLE

    model = BertForSequenceClassification(config)
    t0 = TicketMask.dense(model)
    t1 = prune_ticket(t0, model, 0.3)
    assert t1.num_pruned == target_count(0.3, TINY_PRUNABLE) and t1.metadata.level == 1
    assert t1.metadata.pruning_method == "magnitude" and t0.metadata.level == 0
    with pytest.raises(ValueError, match="unknown pruning method"):
        prune_ticket(t0, model, 0.3, method="grasp")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_stable_sort_reference_with_many_ties(seed):
    """Against a direct reference: a stable sort of (|w|, position) over the survivors."""
    g = torch.Generator().manual_seed(seed)
    w = {"a": torch.randint(-3, 4, (7, 5), generator=g).float(), "b": torch.randint(-3, 4, (3, 11), generator=g).float()}
    flat = torch.cat([t.flatten() for t in w.values()])
    total = flat.numel()
    masks = None
    for s in (0.2, 0.45, 0.7):
        new = global_magnitude_pruning(w, s, masks)
        alive = torch.ones(total, dtype=torch.bool) if masks is None else torch.cat([m.flatten() for m in masks.values()])
        k_more = target_count(s, total) - int((~alive).sum())
        order = [i for i in torch.argsort(flat.abs(), stable=True).tolist() if alive[i]]
        expected = alive.clone()
        expected[order[:k_more]] = False
        got = torch.cat([m.flatten() for m in new.values()])
        assert torch.equal(got, expected), s
        masks = new
