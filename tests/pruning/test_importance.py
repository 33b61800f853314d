"""Michel et al.'s head / FFN-neuron importance (bert_tickets.pruning.criteria.importance, issue 22):
equal to |∂L/∂ξ| of explicit gates on the heads' context vectors and the FFN activations, summed
per batch; L2-normalised per layer; chooses the least important units; weight granularity refused;
layer-wise structured scope prunes the same count in every layer."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bert_tickets.pruning import prune_ticket
from bert_tickets.pruning.criteria.importance import unit_importance
from bert_tickets.ticket import TicketMask

from conftest import tiny_config

LAYERS, HEADS, D, FFN = 2, 4, 8, 64


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(num_labels=2))


def _batches(n=3):
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(5, 99, (4, 10), generator=g), "labels": torch.randint(0, 2, (4,), generator=g)} for _ in range(n)]


def _weights(model):
    return {
        n[len("bert.") :]: p
        for n, p in model.named_parameters()
        if n.startswith("bert.encoder") and n.endswith("weight") and "LayerNorm" not in n
    }


def _gated_importance(model, batches):
    """Σ_b |∂L_b/∂ξ| with explicit gates: the reference computation (Michel et al., Eq. 2)."""
    model.eval()
    head_gate = torch.ones(LAYERS, HEADS, requires_grad=True)
    ffn_gate = torch.ones(LAYERS, FFN, requires_grad=True)
    hooks = []
    for i, layer in enumerate(model.bert.encoder.layer):

        def gate_heads(mod, inp, out, i=i):
            ctx = out[0]
            scaled = (ctx.view(*ctx.shape[:-1], HEADS, D) * head_gate[i].view(HEADS, 1)).view(ctx.shape)
            return (scaled, *out[1:])

        hooks.append(layer.attention.self.register_forward_hook(gate_heads))
        hooks.append(layer.intermediate.register_forward_hook(lambda mod, inp, out, i=i: out * ffn_gate[i]))
    heads = torch.zeros(LAYERS, HEADS, dtype=torch.float64)
    ffn = torch.zeros(LAYERS, FFN, dtype=torch.float64)
    try:
        for b in batches:
            head_gate.grad = ffn_gate.grad = None
            model(**b).loss.backward()
            heads += head_gate.grad.abs().double()
            ffn += ffn_gate.grad.abs().double()
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    return heads, ffn


def test_importance_equals_the_explicit_gate_gradient(model):
    batches = _batches()
    heads, ffn = _gated_importance(model, batches)
    got = unit_importance(model, _weights(model), batches, HEADS, normalize_by_layer=False)
    assert len(got) == LAYERS * (HEADS + FFN)
    for layer in range(LAYERS):
        for h in range(HEADS):
            assert got[("head", layer, h)] == pytest.approx(float(heads[layer, h]), rel=1e-4, abs=1e-9)
        for j in range(FFN):
            assert got[("neuron", layer, j)] == pytest.approx(float(ffn[layer, j]), rel=1e-4, abs=1e-9)
    assert all(p.grad is None for p in model.parameters())  # gradients left as they were
    # per-layer L2 normalisation: each layer's scores of a kind have unit norm, ratios kept
    norm = unit_importance(model, _weights(model), batches, HEADS)
    for layer in range(LAYERS):
        h = torch.tensor([norm[("head", layer, i)] for i in range(HEADS)])
        assert float(h.norm()) == pytest.approx(1.0)
        assert torch.allclose(h, heads[layer].float() / heads[layer].norm().float(), rtol=1e-4)
        assert float(torch.tensor([norm[("neuron", layer, j)] for j in range(FFN)]).norm()) == pytest.approx(1.0)


def test_importance_prunes_the_least_important_units(model):
    batches = _batches()
    norm = unit_importance(model, _weights(model), batches, HEADS)
    dense = TicketMask.dense(model)
    t = prune_ticket(dense, model, 0.25, "importance", granularity="head+neuron", batches=batches)
    pruned_heads = {
        (layer, h)
        for layer in range(LAYERS)
        for h in range(HEADS)
        if not t.masks[f"encoder.layer.{layer}.attention.self.query.weight"][h * D : (h + 1) * D].any()
    }
    expected = sorted(((i, h) for i in range(LAYERS) for h in range(HEADS)), key=lambda k: (norm[("head", *k)], k))[:2]
    assert pruned_heads == set(expected)
    pruned_neurons = {
        (layer, j)
        for layer in range(LAYERS)
        for j in range(FFN)
        if not t.masks[f"encoder.layer.{layer}.intermediate.dense.weight"][j].any()
    }
    expected_n = sorted(((i, j) for i in range(LAYERS) for j in range(FFN)), key=lambda k: (norm[("neuron", *k)], k))[:32]
    assert pruned_neurons == set(expected_n)
    assert t.metadata.criterion == "importance" and t.metadata.cost["score_backward"] == len(batches)
    with pytest.raises(ValueError, match="structured --granularity"):
        prune_ticket(dense, model, 0.25, "importance", batches=batches)
    with pytest.raises(ValueError, match="not granularity 2:4"):
        prune_ticket(dense, model, 0.5, "importance", granularity="2:4", batches=batches)


def test_layerwise_structured_scope_prunes_the_same_count_in_every_layer(model):
    dense = TicketMask.dense(model)
    t = prune_ticket(dense, model, 0.5, granularity="head+neuron", scope="layerwise")
    per_weight = {n: p.detach().abs() for n, p in _weights(model).items()}
    for layer in range(LAYERS):
        q = t.masks[f"encoder.layer.{layer}.attention.self.query.weight"]
        gone = [h for h in range(HEADS) if not q[h * D : (h + 1) * D].any()]
        assert len(gone) == 2  # round(0.5 * 4) in this layer
        l1 = [
            sum(
                float(per_weight[f"encoder.layer.{layer}.attention.self.{k}.weight"][h * D : (h + 1) * D].sum())
                for k in ("query", "key", "value")
            )
            + float(per_weight[f"encoder.layer.{layer}.attention.output.dense.weight"][:, h * D : (h + 1) * D].sum())
            for h in range(HEADS)
        ]
        assert gone == sorted(sorted(range(HEADS), key=lambda h: l1[h])[:2])
        assert int((~t.masks[f"encoder.layer.{layer}.intermediate.dense.weight"]).all(1).sum()) == 32
    assert t.metadata.pruning_scope == "layerwise"
    more = prune_ticket(t, model, 0.75, granularity="head", scope="layerwise")
    assert all(bool((more.masks[n] <= t.masks[n]).all()) for n in t.masks)


def test_find_with_importance_scores_each_level_on_training_batches(tmp_path, capsys):
    import json

    from bert_tickets.cli import main

    from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

    ckpt, glue = write_imp_inputs(tmp_path)
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--prune_step", "0.25"]
    out = tmp_path / "imp"
    extra = ["--criterion", "importance", "--criterion_options", "score_batches=2", "--granularity", "head+neuron"]
    assert main([*argv, "--output_dir", str(out), "--max_levels", "2", *extra]) == 0
    rows = json.loads((out / "summary.json").read_text())["levels"]
    per_head, per_neuron = 3 * D * 32 + 32 * D, 2 * 32
    assert [r["num_pruned"] for r in rows] == [0, 2 * per_head + 32 * per_neuron, 4 * per_head + 64 * per_neuron]
    t2 = TicketMask.from_pretrained(out / "level_02" / "ticket")
    assert t2.metadata.criterion == "importance" and t2.metadata.cost["score_backward"] == 2 * 2  # two levels x two batches
    # refused before any training: the weight granularity, layer-wise targets that empty every layer or break the
    # floor, 2:4 per layer, and a data-scoring criterion with --mask_data
    bad = tmp_path / "bad"
    assert main([*argv, "--output_dir", str(bad), "--criterion", "importance"]) == 2
    assert "use --granularity head or neuron or head+neuron" in capsys.readouterr().err
    assert main([*argv, "--output_dir", str(bad), "--granularity", "head", "--pruning_scope", "layerwise", "--max_levels", "4"]) == 2
    assert "prunes 4 of 4 heads per layer, but at most 3 may go" in capsys.readouterr().err
    assert main([*argv[:-2], "--prune_step", "0.5", "--output_dir", str(bad), "--granularity", "2:4", "--pruning_scope", "layerwise"]) == 2
    assert "leave --pruning_scope global" in capsys.readouterr().err
    assert main([*argv, "--output_dir", str(bad), *extra, "--mask_data", "task"]) == 2
    assert "decides each mask from the mask data alone" in capsys.readouterr().err
    assert (
        main(
            [
                *argv,
                "--output_dir",
                str(bad),
                "--granularity",
                "head",
                "--pruning_scope",
                "layerwise",
                "--min_groups_per_layer",
                "2",
                "--max_levels",
                "3",
            ]
        )
        == 2
    )
    assert "prunes 3 of 4 heads per layer, but at most 2 may go" in capsys.readouterr().err
    assert not any(bad.glob("level_*"))


def test_a_unit_criterion_is_not_a_transfer_row_nor_a_prune_at_init_criterion():
    from bert_tickets.experiments.prune_at_init import PruneAtInitArguments
    from bert_tickets.results.rows import get_row

    with pytest.raises(ValueError, match="not a row; use find --granularity"):
        get_row("importance")
    with pytest.raises(ValueError, match="use find --granularity"):
        PruneAtInitArguments(criterion="importance")
    assert get_row("snip").criterion == "snip"
