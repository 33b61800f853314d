"""SynFlow on a tiny BERT: scores against a direct autograd computation of the linearised encoder
with and without its skip connections, conservation (every tensor's scores sum to R without
skips, to the flow through its branch with them), the residual path carrying flow past a pruned
branch, the exponential schedule, layer collapse vs magnitude, cost record."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.pruning.criteria.synflow import SynflowOptions, exponential_sparsities, synflow_scores
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE, tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config())


def _abs_weights(model, masks=None, zero=()):
    """|θ| ⊙ mask in float64 for every encoder / pooler matrix (``zero``: tensors set to 0)."""
    w = {}
    for n, t in model.bert.named_parameters():
        if n.endswith(".weight") and ("encoder" in n or "pooler" in n) and "LayerNorm" not in n:
            a = t.detach().double().abs()
            if masks is not None and n in masks:
                a = a * masks[n].double()
            if n in zero:
                a = torch.zeros_like(a)
            w[n] = a.requires_grad_(True)
    return w


def _reference_flow(model, w, residual, scales=None):
    """The linearised encoder written out independently, head by head: gate
    (|Wq|1)_head · (|Wk|1)_head times |Wv| h, then |Wo|; with ``residual`` the gates divided by
    their mean and both skips added (h + attention, then h + FFN); renormalised; pooler; sum.
    ``scales`` fixes the detached constants (gate means, layer sums) to given values; returns
    (R, the constants used)."""
    heads, size = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    h = torch.ones(model.config.hidden_size, dtype=torch.float64)
    one = torch.ones_like(h)
    used = []
    for i in range(model.config.num_hidden_layers):
        pre = f"encoder.layer.{i}."
        q, k, v = (w[pre + f"attention.self.{x}.weight"] for x in ("query", "key", "value"))
        gates = [torch.dot(q[j * size : (j + 1) * size] @ one, k[j * size : (j + 1) * size] @ one) for j in range(heads)]
        if residual:
            mean = scales[len(used)] if scales else sum(gates).detach() / heads
            used.append(mean)
            gates = [g / mean for g in gates]
        attention = w[pre + "attention.output.dense.weight"] @ torch.cat(
            [gates[j] * (v[j * size : (j + 1) * size] @ h) for j in range(heads)]
        )
        a = h + attention if residual else attention
        ffn = w[pre + "output.dense.weight"] @ (w[pre + "intermediate.dense.weight"] @ a)
        f = a + ffn if residual else ffn
        total = scales[len(used)] if scales else f.sum().detach()
        used.append(total)
        h = f / total
    return (w["pooler.dense.weight"] @ h).sum(), used


def _reference_scores(model, names, masks=None, residual=False):
    w = _abs_weights(model, masks)
    flow, _ = _reference_flow(model, w, residual)
    grads = torch.autograd.grad(flow, [w[n] for n in names])
    return flow.item(), {n: (w[n] * g).detach() for n, g in zip(names, grads)}


def test_synflow_scores_equal_a_direct_autograd_computation_and_conserve_flow(model):
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    scores = synflow_scores(model, weights, residual=False)
    flow, reference = _reference_scores(model, list(weights))
    for n in weights:
        torch.testing.assert_close(scores[n].double(), reference[n], rtol=1e-5, atol=1e-12)
        # Theorem 2 of Tanaka et al.: without skips R is degree 1 in every tensor, so its scores sum to R
        assert scores[n].double().sum().item() == pytest.approx(flow, rel=1e-5)
    assert all(bool((s >= 0).all()) for s in scores.values())


def test_synflow_keeps_the_residual_path_and_each_tensor_scores_the_flow_through_its_branch(model):
    """The default flow goes through both skips of every layer: its scores equal autograd of the
    written-out residual encoder, and (R affine in each tensor) a tensor's scores sum to
    R − R(tensor = 0), the flow through its branch — strictly less than R for branch tensors, R
    for the pooler (on no skip)."""
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    assert SynflowOptions().residual is True
    scores = synflow_scores(model, weights)
    flow, reference = _reference_scores(model, list(weights), residual=True)
    _, scales = _reference_flow(model, _abs_weights(model), True)
    for n in weights:
        torch.testing.assert_close(scores[n].double(), reference[n], rtol=1e-5, atol=1e-12)
        without, _ = _reference_flow(model, _abs_weights(model, zero=(n,)), True, scales=scales)
        assert scores[n].double().sum().item() == pytest.approx(flow - without.item(), rel=1e-6)
        if n == "pooler.dense.weight":
            assert without.item() == 0.0
        else:
            assert 0.0 < without.item() < flow  # the skip carries part of the flow around the branch
    chain = synflow_scores(model, weights, residual=False)
    order = lambda sc: torch.cat([sc[n].reshape(-1) for n in weights]).argsort()  # noqa: E731
    assert not torch.equal(order(scores), order(chain))  # the skips change the ranking


def test_the_residual_flow_passes_a_pruned_branch_where_the_chain_stops(model):
    """Layer 0's attention output fully pruned: the chain without skips carries no flow at all
    (every score 0, the ranking is arbitrary); the residual flow still reaches every tensor off
    that branch (its Q, K, V and output score 0) and equals the reference computation."""
    dense = TicketMask.dense(model)
    weights = dense.validate(model)
    masks = {n: m.clone() for n, m in dense.masks.items()}
    cut = "encoder.layer.0.attention.output.dense.weight"
    masks[cut][:] = False
    chain = synflow_scores(model, weights, masks, residual=False)
    assert all(float(s.abs().sum()) == 0.0 for s in chain.values())
    kept = synflow_scores(model, weights, masks)
    _, reference = _reference_scores(model, list(weights), masks, residual=True)
    for n in weights:
        torch.testing.assert_close(kept[n].double(), reference[n], rtol=1e-5, atol=1e-12)
        assert (float(kept[n].sum()) > 0) == (not n.startswith("encoder.layer.0.attention.")), n


@pytest.mark.parametrize("residual", [True, False])
def test_synflow_scores_apply_the_current_mask(model, residual):
    dense = TicketMask.dense(model)
    half = prune_ticket(dense, model, 0.5, "magnitude")
    weights = dense.validate(model)
    scores = synflow_scores(model, weights, half.masks, residual=residual)
    _, reference = _reference_scores(model, list(weights), half.masks, residual=residual)
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


def test_synflow_without_skips_keeps_every_tensor_alive_where_magnitude_empties_a_scaled_down_one(model):
    small = "encoder.layer.1.output.dense.weight"
    with torch.no_grad():
        dict(model.bert.named_parameters())[small].mul_(1e-3)
    dense = TicketMask.dense(model)
    magnitude = prune_ticket(dense, model, 0.8, "magnitude")
    assert int(magnitude.masks[small].sum()) == 0  # layer collapse
    options = SynflowOptions(score_iterations=20, residual=False)
    synflow = prune_ticket(dense, model, 0.8, "synflow", options=options)
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
