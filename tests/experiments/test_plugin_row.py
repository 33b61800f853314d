"""Plug-in contract of a matrix row, end to end: a row kind defined and registered in this file
alone is a ``transfer --baselines`` row: it trains the mask it says on the weights it says, its
sanity check applies, and the matrix says which row the check belongs to."""

from __future__ import annotations

import json

import pytest
import torch

from bert_tickets.cli import main
from bert_tickets.experiments import transfer as transfer_module
from bert_tickets.results.rows import ROWS, MatrixRow
from bert_tickets.tasks import get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import FinetuneResult
from bert_tickets.training.weights import load_theta0

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


class HalfWeightsRow(MatrixRow):
    """Magnitude mask of θ0 on weights scaled by 1/2."""

    name = "toy_half_weights"
    summary = "magnitude mask on θ0 / 2"
    checkable = True

    def mask(self, inputs):
        return inputs.find("magnitude")

    def prepare_weights(self, model, ticket, seed):
        with torch.no_grad():
            for n in ticket.masks:
                model.bert.get_parameter(n).mul_(0.5)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    ckpt, glue = write_imp_inputs(root)
    return root, ckpt, glue


def _common(inputs, out):
    _, ckpt, glue = inputs
    return ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]


def _registered(registry, cls):
    registry.register(cls)
    yield
    registry.unregister(cls.name)


@pytest.fixture
def toy():
    yield from _registered(ROWS, HalfWeightsRow)


def _fake_finetune(seen):
    def fake_finetune(model, ticket, task, data, training_args, *, seed, output_dir, tokenizer=None, **kw):
        seen[output_dir] = (ticket, {n: p.detach().clone() for n, p in model.bert.named_parameters()})
        return FinetuneResult({"accuracy": 0.5, "nonzero_pruned_weights": 0}, model)

    return fake_finetune


def test_the_row_trains_its_mask_on_its_weights(inputs, tmp_path, toy, monkeypatch):
    root, ckpt, glue = inputs
    out = tmp_path / "pai"
    assert main(["prune-at-init", *_common(inputs, out), "--criterion", "magnitude", "--sparsity", "0.4", "--no_finetune"]) == 0
    own = TicketMask.from_pretrained(out / "ticket")
    seen = {}
    monkeypatch.setattr(transfer_module, "finetune", _fake_finetune(seen))
    matrix = tmp_path / "m"
    argv = ["--tickets", str(out / "ticket"), "--tasks", "rte", "--seeds", "3", "--baselines", "dense", "toy_half_weights"]
    argv += ["--sanity", "layer_shuffle", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(matrix), *IMP_TRAIN_ARGS]
    assert main(["transfer", *argv]) == 0
    cells = {json.loads((p / "cell.json").read_text())["spec"]["label"]: p for p in (matrix / "cells").iterdir()}
    assert set(cells) == {"rte", "dense", "toy_half_weights", "rte (layer_shuffle)", "toy_half_weights (layer_shuffle)"}
    assert json.loads((cells["toy_half_weights"] / "cell.json").read_text())["context"]["prunable"] is not None
    # magnitude of θ0 (the same mask as the magnitude ticket) on θ0 / 2; its check: the mask permuted, same weights
    theta0 = {n: p.detach() for n, p in load_theta0(get_task("rte"), str(ckpt), seed=3).bert.named_parameters()}
    got, weights = seen[str(cells["toy_half_weights"] / "trainer")]
    assert all(torch.equal(got.masks[n], own.masks[n]) for n in own.masks)
    assert all(torch.equal(weights[n], theta0[n] * 0.5) for n in got.masks)
    shuffled, weights = seen[str(cells["toy_half_weights (layer_shuffle)"] / "trainer")]
    assert all(torch.equal(shuffled.masks[n], got.layer_shuffled(3).masks[n]) for n in got.masks)
    assert all(torch.equal(weights[n], theta0[n] * 0.5) for n in got.masks)
    m = json.loads((matrix / "matrix.json").read_text())
    assert m["checks"]["toy_half_weights (layer_shuffle)"] == {"of": "toy_half_weights", "check": "layer_shuffle"}
    assert m["kinds"]["toy_half_weights"] == "toy_half_weights"
