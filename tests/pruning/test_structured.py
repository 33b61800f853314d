"""Structured granularities (bert_tickets.pruning.structured, issue 22): whole heads and FFN
neurons pruned with exact group counts, chosen by the groups' summed scores (checked against a
hand computation), kept per layer on request, monotone; 2:4 masks keep exactly 2 of every 4."""

from __future__ import annotations

import pytest
import torch
from transformers import BertModel

from bert_tickets.pruning import prune_ticket
from bert_tickets.ticket import TicketMask

from conftest import tiny_config

LAYERS, HEADS, D, HIDDEN, FFN = 2, 4, 8, 32, 64


@pytest.fixture
def model():
    torch.manual_seed(0)
    return BertModel(tiny_config())


def _w(model, layer, part):
    return dict(model.named_parameters())[f"encoder.layer.{layer}.{part}"].detach()


def _head_l1(model, layer, h):
    sl = slice(h * D, (h + 1) * D)
    rows = sum(float(_w(model, layer, f"attention.self.{k}.weight")[sl].abs().sum()) for k in ("query", "key", "value"))
    return rows + float(_w(model, layer, "attention.output.dense.weight")[:, sl].abs().sum())


def _pruned_heads(ticket):
    out = set()
    for layer in range(LAYERS):
        for h in range(HEADS):
            sl = slice(h * D, (h + 1) * D)
            q = ticket.masks[f"encoder.layer.{layer}.attention.self.query.weight"][sl]
            o = ticket.masks[f"encoder.layer.{layer}.attention.output.dense.weight"][:, sl]
            if not q.any() and not o.any():
                out.add((layer, h))
            else:  # a head is pruned entirely or not at all
                assert q.all() and o.all()
    return out


def test_head_pruning_removes_the_lowest_l1_heads_exactly(model):
    dense = TicketMask.dense(model)
    ticket = prune_ticket(dense, model, 0.25, granularity="head")
    expected = sorted(((layer, h) for layer in range(LAYERS) for h in range(HEADS)), key=lambda x: _head_l1(model, *x))[:2]
    assert _pruned_heads(ticket) == set(expected)  # round(0.25 * 8) = 2 heads
    # exactly the heads' weights: 2 heads x (3 x 8 rows x 32 + 32 x 8 columns) = 2048 weights
    assert ticket.num_pruned == 2 * (3 * D * HIDDEN + HIDDEN * D)
    assert ticket.metadata.extra["granularity"] == "head" and ticket.metadata.target_sparsity == 0.25
    # FFN and pooler untouched
    assert all(
        ticket.masks[n].all() for n in ticket.masks if "intermediate" in n or n.endswith("output.dense.weight") and "attention" not in n
    )
    # monotone: the next level keeps them pruned
    more = prune_ticket(ticket, model, 0.5, granularity="head")
    assert _pruned_heads(ticket) <= _pruned_heads(more) and len(_pruned_heads(more)) == 4


def test_neuron_pruning_and_both_kinds(model):
    dense = TicketMask.dense(model)
    ticket = prune_ticket(dense, model, 0.3, granularity="neuron")
    pruned = []
    for layer in range(LAYERS):
        rows = ticket.masks[f"encoder.layer.{layer}.intermediate.dense.weight"]
        cols = ticket.masks[f"encoder.layer.{layer}.output.dense.weight"]
        for j in range(FFN):
            if not rows[j].any():
                assert not cols[:, j].any()
                pruned.append((layer, j))
            else:
                assert rows[j].all() and cols[:, j].all()
    assert len(pruned) == round(0.3 * LAYERS * FFN)  # 38 of 128
    l1 = {
        (layer, j): float(
            _w(model, layer, "intermediate.dense.weight")[j].abs().sum() + _w(model, layer, "output.dense.weight")[:, j].abs().sum()
        )
        for layer in range(LAYERS)
        for j in range(FFN)
    }
    assert set(pruned) == set(sorted(l1, key=l1.get)[: len(pruned)])
    both = prune_ticket(dense, model, 0.25, granularity="head+neuron")
    assert len(_pruned_heads(both)) == 2
    assert sum(int((~both.masks[f"encoder.layer.{i}.intermediate.dense.weight"]).all(1).sum()) for i in range(LAYERS)) == 32


def test_min_per_layer_keeps_a_head_in_every_layer(model):
    dense = TicketMask.dense(model)
    kept = prune_ticket(dense, model, 0.75, granularity="head", min_per_layer=1)
    for layer in range(LAYERS):
        assert sum((layer, h) not in _pruned_heads(kept) for h in range(HEADS)) == 1
    with pytest.raises(ValueError, match="cannot be reached while keeping 1 per layer"):
        prune_ticket(dense, model, 0.875, granularity="head", min_per_layer=1)


def test_two_of_four_keeps_the_two_largest_of_every_block(model):
    dense = TicketMask.dense(model)
    ticket = prune_ticket(dense, model, 0.5, granularity="2:4")
    for name, mask in ticket.masks.items():
        blocks = mask.reshape(mask.shape[0], -1, 4)
        assert bool((blocks.sum(-1) == 2).all()), name
        w = dict(model.named_parameters())[name].detach().abs().reshape(blocks.shape)
        top2 = torch.topk(w, 2, dim=-1).indices
        expected = torch.zeros_like(blocks).scatter_(-1, top2, True)
        assert torch.equal(blocks, expected), name
    assert ticket.sparsity == 0.5
    with pytest.raises(ValueError, match="sparsity must be 0.5"):
        prune_ticket(dense, model, 0.4, granularity="2:4")


def test_structured_masks_go_through_the_ticket_path(model, tmp_path):
    ticket = prune_ticket(TicketMask.dense(model), model, 0.5, granularity="head")
    ticket.save_pretrained(tmp_path / "t")
    loaded = TicketMask.from_pretrained(tmp_path / "t")
    assert all(torch.equal(loaded.masks[n], ticket.masks[n]) for n in ticket.masks)
    loaded.apply(model)
    assert loaded.count_nonzero_pruned(model) == 0
    with pytest.raises(ValueError, match="unknown granularity"):
        prune_ticket(TicketMask.dense(model), model, 0.5, granularity="block")


def test_find_prunes_whole_heads_level_by_level(tmp_path):
    import json

    from bert_tickets.cli import main

    from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

    ckpt, glue = write_imp_inputs(tmp_path)
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--prune_step", "0.25"]
    out = tmp_path / "heads"
    assert main([*argv, "--output_dir", str(out), "--max_levels", "2", "--granularity", "head", "--min_groups_per_layer", "1"]) == 0
    rows = json.loads((out / "summary.json").read_text())["levels"]
    per_head = 3 * D * HIDDEN + HIDDEN * D
    assert [r["num_pruned"] for r in rows] == [0, 2 * per_head, 4 * per_head]
    previous = set()
    for lv in (1, 2):
        ticket = TicketMask.from_pretrained(out / f"level_{lv:02d}" / "ticket")
        heads = _pruned_heads(ticket)
        assert len(heads) == 2 * lv and previous <= heads and ticket.metadata.target_sparsity == 0.25 * lv
        assert all(sum((layer, h) not in heads for h in range(HEADS)) >= 1 for layer in range(LAYERS))
        previous = heads
    two = tmp_path / "two_four"
    assert main([*argv.copy()[:-2], "--prune_step", "0.5", "--output_dir", str(two), "--max_levels", "1", "--granularity", "2:4"]) == 0
    ticket = TicketMask.from_pretrained(two / "level_01" / "ticket")
    assert all(bool((m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all()) for m in ticket.masks.values())
    assert main([*argv, "--output_dir", str(tmp_path / "bad"), "--granularity", "2:4", "--min_groups_per_layer", "1"]) == 2
    # unreachable structured targets are refused before any training
    bad = tmp_path / "bad2"
    assert main([*argv[:-2], "--output_dir", str(bad), "--granularity", "2:4"]) == 2  # the default 10% steps
    assert main([*argv, "--output_dir", str(bad), "--granularity", "head", "--min_groups_per_layer", "2", "--max_levels", "3"]) == 2
    assert not any(bad.glob("level_*"))
