"""Plug-in contract of a sparsity schedule, end to end: a schedule with an option, defined and
registered in this file alone, drives ``find``; its option (``--schedule_options KEY=VALUE`` or a
plain flag) reaches it and the run's hash."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from bert_tickets.cli import main
from bert_tickets.pruning import SCHEDULES_REGISTRY, StaticSchedule
from bert_tickets.results import read_run

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


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
    yield from _registered(SCHEDULES_REGISTRY, ThirdsSchedule)


def test_the_schedule_drives_find_with_its_option(inputs, tmp_path, toy):
    out = tmp_path / "run"
    assert main(["find", *_common(inputs, out), "--schedule", "toy_steps", "--schedule_options", "toy_step=0.3", "--max_levels", "2"]) == 0
    levels = [json.loads((out / f"level_{i:02d}" / "metrics.json").read_text())["result"] for i in range(3)]
    assert [round(lv["target_sparsity"], 10) for lv in levels] == [0.0, 0.3, 0.6]
    assert read_run(out).config["hyperparameters"]["imp"]["toy_step"] == 0.3
    # the same option as a plain flag is the same run (same hash): it resumes, nothing is retrained
    stamp = (out / "level_02" / "metrics.json").stat().st_mtime_ns
    assert main(["find", *_common(inputs, out), "--schedule", "toy_steps", "--toy_step", "0.3", "--max_levels", "2"]) == 0
    assert (out / "level_02" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--schedule", "toy_steps", "--schedule_options", "toy_step"], "--schedule_options toy_step: expected KEY=VALUE"),
        (["--schedule", "toy_steps", "--schedule_options", "toy_step=big"], "schedule toy_steps option toy_step: 'big' is not a float"),
        (
            ["--schedule", "linear", "--toy_step", "0.3"],
            "schedule linear has no option 'toy_step' (its options: prune_step, start_sparsity)",
        ),
    ],
)
def test_schedule_options_are_checked_before_any_work(inputs, tmp_path, toy, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["find", *_common(inputs, out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()
