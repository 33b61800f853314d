"""Plug-in contract of a pruning criterion, end to end: a criterion with an option and a data
need, defined and registered in this file alone (no edit in the package), drives ``find``,
``prune-at-init`` and a ``transfer --baselines`` row; its options (``--criterion_options
KEY=VALUE`` or plain flags) reach it and its hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from bert_tickets.cli import main
from bert_tickets.experiments import transfer as transfer_module
from bert_tickets.pruning import CRITERIA_REGISTRY, PruningCriterion, select
from bert_tickets.results import read_run
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import FinetuneResult

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@dataclass
class ToyOptions:
    toy_batches: int = field(default=1, metadata={"help": "training batches the toy scores are computed on"})
    toy_flip: bool = field(default=False, metadata={"aliases": ["toy_reverse"], "help": "prune the highest columns first"})

    def __post_init__(self):
        if self.toy_batches < 1:
            raise ValueError(f"toy_batches must be >= 1, got {self.toy_batches}")


class ToyCriterion(PruningCriterion):
    """Scores = column index (or its negative with toy_flip); needs ``toy_batches`` batches with labels."""

    name = "toy_columns"
    needs = frozenset({"batches", "seed"})
    Options = ToyOptions
    seen: ClassVar[list] = []

    def batches_needed(self, options):
        return options.toy_batches

    def scorer(self, weights, *, seed=0, batches=None, **context):
        options = self._options(context)
        ToyCriterion.seen.append((len(batches or []), all("labels" in b for b in batches or []), options))
        return lambda name, out: _columns(weights[name].shape, options.toy_flip)


def _columns(shape, flip: bool) -> torch.Tensor:
    """Non-negative scores: the column index, or its mirror image with ``flip``."""
    index = torch.arange(shape[-1], dtype=torch.float32)
    return (shape[-1] - 1 - index if flip else index).expand(shape).clone()


def toy_mask(ticket: TicketMask, sparsity: float, flip: bool) -> dict[str, torch.Tensor]:
    """The reference: the exact-count selection of the toy scores."""
    shapes = {n: m.shape for n, m in ticket.masks.items()}
    return select(shapes, lambda n, out: _columns(shapes[n], flip), sparsity)


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
    ToyCriterion.seen.clear()
    yield from _registered(CRITERIA_REGISTRY, ToyCriterion)


def _fake_finetune(seen):
    def fake_finetune(model, ticket, task, data, training_args, *, seed, output_dir, tokenizer=None, **kw):
        seen[output_dir] = (ticket, {n: p.detach().clone() for n, p in model.bert.named_parameters()})
        return FinetuneResult({"accuracy": 0.5, "nonzero_pruned_weights": 0}, model)

    return fake_finetune


def test_the_criterion_drives_find_with_its_options(inputs, tmp_path, toy):
    out = tmp_path / "run"
    extra = ["--criterion", "toy_columns", "--criterion_options", "toy_batches=2", "--toy_reverse", "true", "--prune_step", "0.3"]
    assert main(["find", *_common(inputs, out), *extra, "--max_levels", "2"]) == 0
    levels = [json.loads((out / f"level_{i:02d}" / "metrics.json").read_text())["result"] for i in range(3)]
    assert [round(lv["target_sparsity"], 10) for lv in levels] == [0.0, 0.3, 0.6]
    # the criterion got its options and exactly the batches it asked for (labelled), at every pruning
    assert [(n, labelled, o.toy_batches, o.toy_flip) for n, labelled, o in ToyCriterion.seen] == [(2, True, 2, True)] * 3
    for level in (1, 2):
        ticket = TicketMask.from_pretrained(out / f"level_{level:02d}" / "ticket")
        reference = toy_mask(ticket, ticket.metadata.target_sparsity, flip=True)
        assert all(torch.equal(ticket.masks[n], reference[n]) for n in reference)
        assert ticket.metadata.criterion == "toy_columns" and ticket.metadata.criterion_options == {"toy_batches": 2, "toy_flip": True}
    assert read_run(out).config["hyperparameters"]["imp"]["criterion_options"] == {"toy_batches": 2, "toy_flip": True}
    # the same run spelled with plain flags is the same run (same hash): it resumes, nothing is retrained
    stamp = (out / "level_02" / "metrics.json").stat().st_mtime_ns
    again = ["--criterion", "toy_columns", "--toy_batches", "2", "--toy_flip", "true", "--prune_step", "0.3"]
    assert main(["find", *_common(inputs, out), *again, "--max_levels", "2"]) == 0
    assert (out / "level_02" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--criterion", "toy_columns", "--toy_batches", "0"], "toy_batches must be >= 1, got 0"),
        (["--criterion", "toy_columns", "--criterion_options", "nope=1"], "criterion toy_columns has no option 'nope'"),
        (["--criterion", "toy_columns", "--toy_flip", "maybe"], "criterion toy_columns option toy_flip: 'maybe' is not a bool"),
        (["--criterion", "magnitude", "--toy_batches", "2"], "criterion magnitude has no option 'toy_batches' (its options: none)"),
    ],
)
def test_criterion_options_are_checked_before_any_work(inputs, tmp_path, toy, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["find", *_common(inputs, out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_the_criterion_in_prune_at_init_and_as_a_transfer_row(inputs, tmp_path, toy, monkeypatch):
    root, ckpt, glue = inputs
    out = tmp_path / "pai"
    assert main(["prune-at-init", *_common(inputs, out), "--criterion", "toy_columns", "--sparsity", "0.4", "--no_finetune"]) == 0
    ticket = TicketMask.from_pretrained(out / "ticket")
    reference = toy_mask(ticket, 0.4, flip=False)
    assert all(torch.equal(ticket.masks[n], reference[n]) for n in reference)
    assert ticket.metadata.extra["prune_at_init"]["options"] == {"toy_batches": 1, "toy_flip": False}
    seen = {}
    monkeypatch.setattr(transfer_module, "finetune", _fake_finetune(seen))
    matrix = tmp_path / "m"
    argv = ["--tickets", str(out / "ticket"), "--tasks", "rte", "--seeds", "3", "--baselines", "dense", "toy_columns"]
    argv += ["--criterion_options", "toy_flip=true", "--sanity", "layer_shuffle"]
    argv += ["--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(matrix), *IMP_TRAIN_ARGS]
    assert main(["transfer", *argv]) == 0
    cells = {json.loads((p / "cell.json").read_text())["spec"]["label"]: p for p in (matrix / "cells").iterdir()}
    assert set(cells) == {"rte", "dense", "toy_columns", "rte (layer_shuffle)", "toy_columns (layer_shuffle)"}
    context = json.loads((cells["toy_columns"] / "cell.json").read_text())["context"]
    assert context["criterion"] == {"toy_batches": 1, "toy_flip": True} and context["prunable"] is not None
    got, _ = seen[str(cells["toy_columns"] / "trainer")]  # the row trains the toy mask, its option applied
    flipped = toy_mask(got, 0.4, flip=True)
    assert all(torch.equal(got.masks[n], flipped[n]) for n in flipped)
