"""SynFlow on a tiny BERT: scores against a direct autograd computation, conservation (every
tensor's scores sum to R), the exponential schedule, layer collapse vs magnitude, cost record."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.pruning.criteria.synflow import exponential_sparsities, synflow_scores
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE, tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config())


def _reference_scores(model, names, masks=None):
    """The linearised encoder written out independently: per layer and per head, the gate
    (|Wq|1)_head · (|Wk|1)_head times |Wv| h, then |Wo|, |Wi|, |W2|, renormalised; pooler; sum."""
    p = dict(model.bert.named_parameters())
    w = {}
    for n, t in p.items():
        if n.endswith(".weight") and ("encoder" in n or "pooler" in n) and "LayerNorm" not in n:
            a = t.detach().double().abs()
            if masks is not None and n in masks:
                a = a * masks[n].double()
            w[n] = a.requires_grad_(True)
    heads, size = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    h = torch.ones(model.config.hidden_size, dtype=torch.float64)
    one = torch.ones_like(h)
    for i in range(model.config.num_hidden_layers):
        pre = f"encoder.layer.{i}."
        q, k, v = (w[pre + f"attention.self.{x}.weight"] for x in ("query", "key", "value"))
        out = []
        for j in range(heads):
            rows = slice(j * size, (j + 1) * size)
            gate = torch.dot(q[rows] @ one, k[rows] @ one)
            out.append(gate * (v[rows] @ h))
        h = torch.cat(out)
        for x in ("attention.output.dense", "intermediate.dense", "output.dense"):
            h = w[pre + x + ".weight"] @ h
        h = h / h.sum().detach()
    flow = (w["pooler.dense.weight"] @ h).sum()
    grads = torch.autograd.grad(flow, [w[n] for n in names])
    return flow.item(), {n: (w[n] * g).detach() for n, g in zip(names, grads)}


def test_synflow_scores_equal_a_direct_autograd_computation_and_conserve_flow(model):
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    scores = synflow_scores(model, weights)
    flow, reference = _reference_scores(model, list(weights))
    for n in weights:
        torch.testing.assert_close(scores[n].double(), reference[n], rtol=1e-5, atol=1e-12)
        # Theorem 2 of Tanaka et al.: R is degree 1 in every tensor, so its scores sum to R
        assert scores[n].double().sum().item() == pytest.approx(flow, rel=1e-5)
    assert all(bool((s >= 0).all()) for s in scores.values())


def test_synflow_scores_apply_the_current_mask(model):
    dense = TicketMask.dense(model)
    half = prune_ticket(dense, model, 0.5, "magnitude")
    weights = dense.validate(model)
    scores = synflow_scores(model, weights, half.masks)
    _, reference = _reference_scores(model, list(weights), half.masks)
    for n in weights:
        torch.testing.assert_close(scores[n].double(), reference[n], rtol=1e-5, atol=1e-12)
        assert bool((scores[n][~half.masks[n]] == 0).all())  # pruned weights carry no flow


def test_exponential_schedule():
    steps = exponential_sparsities(0.0, 0.75, 4)
    # kept fraction 0.25^(k/4): 0.7071, 0.5, 0.3536, 0.25
    assert steps == pytest.approx([1 - 0.25**0.25, 0.5, 1 - 0.25**0.75, 0.75])
    assert steps[-1] == 0.75
    assert exponential_sparsities(0.5, 0.75, 2) == pytest.approx([1 - 0.5 * 0.5**0.5, 0.75])
    assert exponential_sparsities(0.6, 0.6, 100) == [0.6]
    with pytest.raises(ValueError, match="score_iterations must be >= 1"):
        exponential_sparsities(0.0, 0.5, 0)


def test_synflow_keeps_every_tensor_alive_where_magnitude_empties_a_scaled_down_one(model):
    small = "encoder.layer.1.output.dense.weight"
    with torch.no_grad():
        dict(model.bert.named_parameters())[small].mul_(1e-3)
    dense = TicketMask.dense(model)
    magnitude = prune_ticket(dense, model, 0.8, "magnitude")
    assert int(magnitude.masks[small].sum()) == 0  # layer collapse
    synflow = prune_ticket(dense, model, 0.8, "synflow", score_iterations=20)
    assert synflow.num_pruned == target_count(0.8, TINY_PRUNABLE)
    kept = {n: int(m.sum()) for n, m in synflow.masks.items()}
    assert min(kept.values()) > 0, kept
    assert kept[small] >= 0.05 * synflow.masks[small].numel()


def test_synflow_iterations_and_cost_record(model):
    dense = TicketMask.dense(model)
    one = prune_ticket(dense, model, 0.9, "synflow", score_iterations=1)
    many = prune_ticket(dense, model, 0.9, "synflow", score_iterations=30)
    assert one.num_pruned == many.num_pruned == target_count(0.9, TINY_PRUNABLE)
    assert any(not torch.equal(one.masks[n], many.masks[n]) for n in one.masks)  # re-scoring changes the mask
    assert many.metadata.cost == {"train_steps": 0, "score_forward": 30, "score_backward": 30}
    assert many.metadata.pruning_method == "synflow" and many.metadata.level == 1
    magnitude = prune_ticket(dense, model, 0.5, "magnitude")
    assert "cost" not in magnitude.metadata.extra  # a free criterion on a ticket without a record writes none


def test_synflow_refuses_a_model_that_is_not_a_bert_encoder(model):
    dense = TicketMask.dense(model)
    weights = dict(dense.validate(model))
    weights["embeddings.word_embeddings.weight"] = dict(model.bert.named_parameters())["embeddings.word_embeddings.weight"]
    with pytest.raises(ValueError, match="synflow scores the encoder's matrices and the pooler only"):
        synflow_scores(model, weights)
