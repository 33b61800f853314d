"""Layer collapse: a tensor with small weights is pruned away by global pruning; the cap and
layer-wise pruning prevent it with exact global counts."""

import math

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import (
    collapsed_tensors,
    global_magnitude_pruning,
    layerwise_magnitude_pruning,
    low_scale_tensors,
    prune_ticket,
    target_count,
)
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE


def _model_with_small_pooler(config, scale=0.05):
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.bert.pooler.dense.weight.mul_(scale)
    return model


def _sparsity(masks):
    return {n: 1 - m.count_nonzero().item() / m.numel() for n, m in masks.items()}


def test_small_tensor_collapses_under_global_pruning_and_is_detected(config):
    model = _model_with_small_pooler(config)
    dense = TicketMask.dense(model)
    weights = {n: p for n, p in model.bert.named_parameters() if n in dense.masks}
    flagged = low_scale_tensors(weights)
    assert list(flagged) == ["pooler.dense.weight"] and flagged["pooler.dense.weight"] < 0.25
    ticket = prune_ticket(dense, model, 0.5)
    per = ticket.per_tensor_sparsity()
    assert per["pooler.dense.weight"] == 1.0
    assert collapsed_tensors(per) == {"pooler.dense.weight": 1.0}
    # an unscaled model has no low-scale tensor and no collapse at 50%
    plain = BertForSequenceClassification(config)
    assert low_scale_tensors({n: p for n, p in plain.bert.named_parameters() if n in dense.masks}) == {}
    assert collapsed_tensors(prune_ticket(TicketMask.dense(plain), plain, 0.5).per_tensor_sparsity()) == {}


@pytest.mark.parametrize("cap", [0.6, 0.75, 0.9])
def test_cap_bounds_every_tensor_and_keeps_global_count(config, cap):
    model = _model_with_small_pooler(config)
    weights = {n: p for n, p in model.bert.named_parameters() if n in TicketMask.dense(model).masks}
    masks = global_magnitude_pruning(weights, 0.5, max_tensor_sparsity=cap)
    pruned = sum(m.numel() - m.count_nonzero().item() for m in masks.values())
    assert pruned == target_count(0.5, TINY_PRUNABLE)
    for n, m in masks.items():
        assert m.numel() - m.count_nonzero().item() <= math.floor(cap * m.numel()), n
    assert _sparsity(masks)["pooler.dense.weight"] == pytest.approx(math.floor(cap * 1024) / 1024)
    # within the capped tensor the smallest weights go first
    w = weights["pooler.dense.weight"].detach().abs()
    m = masks["pooler.dense.weight"]
    assert w[~m].max() <= w[m].min()
    # uncapped tensors still follow one global threshold
    uncapped = [n for n in masks if n != "pooler.dense.weight"]
    kept_min = min(weights[n].detach().abs()[masks[n]].min().item() for n in uncapped)
    pruned_max = max(weights[n].detach().abs()[~masks[n]].max().item() for n in uncapped if (~masks[n]).any())
    assert pruned_max <= kept_min


def test_cap_without_effect_equals_plain_global(config):
    model = BertForSequenceClassification(config)
    weights = {n: p for n, p in model.bert.named_parameters() if n in TicketMask.dense(model).masks}
    plain = global_magnitude_pruning(weights, 0.4)
    capped = global_magnitude_pruning(weights, 0.4, max_tensor_sparsity=0.99)
    assert all(torch.equal(plain[n], capped[n]) for n in plain)


def test_cap_too_low_is_an_error(config):
    model = BertForSequenceClassification(config)
    weights = {n: p for n, p in model.bert.named_parameters() if n in TicketMask.dense(model).masks}
    with pytest.raises(ValueError, match="cannot be reached"):
        global_magnitude_pruning(weights, 0.5, max_tensor_sparsity=0.4)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        global_magnitude_pruning(weights, 0.5, max_tensor_sparsity=0.0)


def test_layerwise_equal_sparsity_within_one_weight_and_exact_total(config):
    model = _model_with_small_pooler(config)
    dense = TicketMask.dense(model)
    t1 = prune_ticket(dense, model, 0.37, scope="layerwise")
    assert t1.num_pruned == target_count(0.37, TINY_PRUNABLE)
    for n, m in t1.masks.items():
        pruned = m.numel() - m.count_nonzero().item()
        assert abs(pruned - 0.37 * m.numel()) < 1.0, n
    assert t1.metadata.pruning_scope == "layerwise"
    t2 = prune_ticket(t1, model, 0.6, scope="layerwise")
    assert t2.num_pruned == target_count(0.6, TINY_PRUNABLE)
    assert all(bool((t2.masks[n] <= t1.masks[n]).all()) for n in t1.masks)
    # each tensor prunes its own smallest weights
    weights = dict(model.bert.named_parameters())
    for n, m in t2.masks.items():
        w = weights[n].detach().abs()
        assert w[~m].max() <= w[m].min(), n


def test_layerwise_refuses_a_tensor_already_beyond_its_share(config):
    model = _model_with_small_pooler(config)
    collapsed = prune_ticket(TicketMask.dense(model), model, 0.5)  # pooler at 100%
    weights = {n: p for n, p in model.bert.named_parameters() if n in collapsed.masks}
    with pytest.raises(ValueError, match="already"):
        layerwise_magnitude_pruning(weights, 0.6, collapsed.masks)


def test_exclude_keeps_the_tensor_out(config):
    model = _model_with_small_pooler(config)
    ticket = prune_ticket(TicketMask.dense(model, exclude=[r"pooler\..*"]), model, 0.5)
    assert "pooler.dense.weight" not in ticket.masks
    assert ticket.metadata.exclude_patterns == [r"pooler\..*"]
    assert collapsed_tensors(ticket.per_tensor_sparsity()) == {}


def test_pruned_rows_columns_counts_fully_pruned_rows_and_columns_of_each_matrix():
    from bert_tickets.pruning import pruned_rows_columns

    a = torch.ones(4, 5, dtype=torch.bool)
    a[1, :] = False  # row 1 fully pruned
    a[3, :] = False  # row 3 too
    a[:, 2] = False  # column 2 fully pruned
    a[0, 4] = False  # a single weight: no full row or column
    b = torch.ones(3, 3, dtype=torch.bool)
    b[:, 0] = False
    b[:, 1] = False  # columns 0 and 1
    c = torch.ones(3, 3, dtype=torch.bool)
    c[0, 0] = False  # nothing fully pruned
    empty = torch.zeros(2, 3, dtype=torch.bool)  # all 2 rows and 3 columns
    vector = torch.zeros(6, dtype=torch.bool)  # not a matrix: skipped
    counts = pruned_rows_columns({"a": a, "b": b, "c": c, "empty": empty, "v": vector})
    assert counts == {
        "rows": 2 + 0 + 0 + 2,
        "columns": 1 + 2 + 0 + 3,
        "tensors": {"a": {"rows": 2, "columns": 1}, "b": {"rows": 0, "columns": 2}, "empty": {"rows": 2, "columns": 3}},
    }
    # against a brute-force count over every row and column
    for name, m in {"a": a, "b": b, "empty": empty}.items():
        rows = sum(not any(m[i, j] for j in range(m.shape[1])) for i in range(m.shape[0]))
        cols = sum(not any(m[i, j] for i in range(m.shape[0])) for j in range(m.shape[1]))
        assert counts["tensors"][name] == {"rows": rows, "columns": cols}
    with pytest.raises(ValueError, match="must be a torch.bool tensor"):
        pruned_rows_columns({"x": torch.ones(2, 2)})
