"""Plug-in contract, end to end: a criterion, a schedule and a matrix row defined and registered
in this file alone (no edit in the package) are usable from the commands — ``find``,
``prune-at-init`` and ``transfer --baselines`` — with their own options, given as
``--*_options KEY=VALUE`` or as plain flags, and those options reach the plug-in and its hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from bert_tickets.cli import main
from bert_tickets.experiments import transfer as transfer_module
from bert_tickets.pruning import CRITERIA_REGISTRY, SCHEDULES_REGISTRY, PruningCriterion, StaticSchedule, select
from bert_tickets.results import read_run
from bert_tickets.results.rows import ROWS, MatrixRow
from bert_tickets.tasks import get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import FinetuneResult
from bert_tickets.training.weights import load_theta0

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


@dataclass
class ThirdsOptions:
    toy_step: float = field(default=0.25, metadata={"help": "sparsity added per level"})


class ThirdsSchedule(StaticSchedule):
    name = "toy_steps"
    Options = ThirdsOptions

    def __init__(self, target_sparsity=0.9, max_levels=None, toy_step=0.25):
        super().__init__(target_sparsity, max_levels)
        self.toy_step = toy_step

    def unclipped(self, level):
        return round(level * self.toy_step, 10)


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


@pytest.fixture
def toys():
    for registry, cls in ((CRITERIA_REGISTRY, ToyCriterion), (SCHEDULES_REGISTRY, ThirdsSchedule), (ROWS, HalfWeightsRow)):
        registry.register(cls)
    ToyCriterion.seen.clear()
    yield
    for registry, cls in ((CRITERIA_REGISTRY, ToyCriterion), (SCHEDULES_REGISTRY, ThirdsSchedule), (ROWS, HalfWeightsRow)):
        registry.unregister(cls.name)


def _common(inputs, out):
    _, ckpt, glue = inputs
    return ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]


def test_a_criterion_and_a_schedule_from_this_file_drive_find(inputs, tmp_path, toys):
    out = tmp_path / "run"
    extra = ["--criterion", "toy_columns", "--criterion_options", "toy_batches=2", "--toy_reverse", "true"]
    extra += ["--schedule", "toy_steps", "--schedule_options", "toy_step=0.3", "--max_levels", "2"]
    assert main(["find", *_common(inputs, out), *extra]) == 0
    levels = [json.loads((out / f"level_{i:02d}" / "metrics.json").read_text())["result"] for i in range(3)]
    assert [round(lv["target_sparsity"], 10) for lv in levels] == [0.0, 0.3, 0.6]
    # the criterion got its options and exactly the batches it asked for (labelled), at every pruning
    assert [(n, labelled, o.toy_batches, o.toy_flip) for n, labelled, o in ToyCriterion.seen] == [(2, True, 2, True)] * 3
    for level in (1, 2):
        ticket = TicketMask.from_pretrained(out / f"level_{level:02d}" / "ticket")
        reference = toy_mask(ticket, ticket.metadata.target_sparsity, flip=True)
        assert all(torch.equal(ticket.masks[n], reference[n]) for n in reference)
        assert ticket.metadata.pruning_method == "toy_columns"
    hparams = read_run(out).config["hyperparameters"]["imp"]
    assert hparams["toy_step"] == 0.3 and hparams["criterion_options"] == {"toy_batches": 2, "toy_flip": True}
    # the same run spelled with plain flags is the same run (same hash): it resumes, nothing is retrained
    stamp = (out / "level_02" / "metrics.json").stat().st_mtime_ns
    again = ["--criterion", "toy_columns", "--toy_batches", "2", "--toy_flip", "true", "--schedule", "toy_steps", "--toy_step", "0.3"]
    assert main(["find", *_common(inputs, out), *again, "--max_levels", "2"]) == 0
    assert (out / "level_02" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--criterion", "toy_columns", "--toy_batches", "0"], "toy_batches must be >= 1, got 0"),
        (["--criterion", "toy_columns", "--criterion_options", "nope=1"], "criterion toy_columns has no option 'nope'"),
        (["--schedule", "toy_steps", "--schedule_options", "toy_step"], "--schedule_options toy_step: expected KEY=VALUE"),
        (["--schedule", "linear", "--toy_step", "0.3"], "schedule linear has no option 'toy_step' (its options: prune_step)"),
        (["--criterion", "toy_columns", "--toy_flip", "maybe"], "criterion toy_columns option toy_flip: 'maybe' is not a bool"),
    ],
)
def test_plugin_options_are_checked_before_any_work(inputs, tmp_path, toys, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["find", *_common(inputs, out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_the_criterion_from_this_file_in_prune_at_init_and_as_a_transfer_row(inputs, tmp_path, toys, monkeypatch):
    root, ckpt, glue = inputs
    out = tmp_path / "pai"
    assert main(["prune-at-init", *_common(inputs, out), "--criterion", "toy_columns", "--sparsity", "0.4", "--no_finetune"]) == 0
    ticket = TicketMask.from_pretrained(out / "ticket")
    reference = toy_mask(ticket, 0.4, flip=False)
    assert all(torch.equal(ticket.masks[n], reference[n]) for n in reference)
    assert ticket.metadata.extra["prune_at_init"]["options"] == {"toy_batches": 1, "toy_flip": False}
    seen = {}

    def fake_finetune(model, ticket, task, data, training_args, *, seed, output_dir, tokenizer=None, **kw):
        seen[output_dir] = (ticket, {n: p.detach().clone() for n, p in model.bert.named_parameters()})
        return FinetuneResult({"accuracy": 0.5, "nonzero_pruned_weights": 0}, model)

    monkeypatch.setattr(transfer_module, "finetune", fake_finetune)
    matrix = tmp_path / "m"
    argv = ["--tickets", str(out / "ticket"), "--tasks", "rte", "--seeds", "3", "--baselines", "dense", "toy_columns", "toy_half_weights"]
    argv += ["--criterion_options", "toy_flip=true", "--sanity", "layer_shuffle"]
    argv += ["--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(matrix), *IMP_TRAIN_ARGS]
    assert main(["transfer", *argv]) == 0
    cells = {json.loads((p / "cell.json").read_text())["spec"]["label"]: p for p in (matrix / "cells").iterdir()}
    assert set(cells) == {
        "rte",
        "dense",
        "toy_columns",
        "toy_half_weights",
        "rte (layer_shuffle)",
        "toy_columns (layer_shuffle)",
        "toy_half_weights (layer_shuffle)",
    }
    context = json.loads((cells["toy_columns"] / "cell.json").read_text())["context"]
    assert context["criterion"] == {"toy_batches": 1, "toy_flip": True} and context["prunable"] is not None
    # the criterion row trains the toy mask (its option applied); the row from this file trains
    # magnitude of θ0 on θ0 / 2, and its layer_shuffle check the permuted mask on the same weights
    got, _ = seen[str(cells["toy_columns"] / "trainer")]
    flipped = toy_mask(got, 0.4, flip=True)
    assert all(torch.equal(got.masks[n], flipped[n]) for n in flipped)
    theta0 = {n: p.detach() for n, p in load_theta0(get_task("rte"), str(ckpt), seed=3).bert.named_parameters()}
    got, weights = seen[str(cells["toy_half_weights"] / "trainer")]
    assert got.num_pruned == ticket.num_pruned
    assert all(torch.equal(weights[n], theta0[n] * 0.5) for n in got.masks)
    shuffled, weights = seen[str(cells["toy_half_weights (layer_shuffle)"] / "trainer")]
    assert all(torch.equal(shuffled.masks[n], got.layer_shuffled(3).masks[n]) for n in got.masks)
    assert all(torch.equal(weights[n], theta0[n] * 0.5) for n in got.masks)
    m = json.loads((matrix / "matrix.json").read_text())
    assert m["checks"]["toy_half_weights (layer_shuffle)"] == {"of": "toy_half_weights", "check": "layer_shuffle"}
