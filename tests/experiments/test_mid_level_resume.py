"""Mid-level resume (issue 12, item 5): with --save_steps a level killed after a Trainer
checkpoint continues from it on re-run (the log says from which step), and the level's metrics
and the next mask equal an uninterrupted run's; the checkpoints are deleted once the level is
complete, and a checkpoint that does not fit the level's mask is not used."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from bert_tickets.cli import main
from bert_tickets.experiments import imp
from bert_tickets.ticket import TicketMask

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

BUDGET = ("--num_train_epochs", "4", "--save_steps", "2", "--save_total_limit", "2", "--max_levels", "2")


class _Killed(Exception):
    pass


class _KillAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Killed(f"killed at step {self.step}")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("midlevel"))


def _find(inputs, out, *extra):
    ckpt, glue = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    return main([*argv, *BUDGET, *extra])


def _untimed(metrics):
    return {k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k}


def _level(out, level):
    raw = json.loads((out / f"level_{level:02d}" / "metrics.json").read_text())
    return raw["result"]["mean"], {s: _untimed(m) for s, m in raw["per_seed"].items()}


def test_a_level_killed_after_a_checkpoint_resumes_from_it_and_matches(inputs, tmp_path, monkeypatch, capsys):
    reference = tmp_path / "reference"
    assert _find(inputs, reference) == 0
    out = tmp_path / "killed"
    real = imp.finetune

    def killing(model, ticket, task, data, args, **kw):
        if "level_01" in str(kw["output_dir"]):
            kw["callbacks"] = [*kw.get("callbacks", ()), _KillAt(7)]
        return real(model, ticket, task, data, args, **kw)

    monkeypatch.setattr(imp, "finetune", killing)
    with pytest.raises(_Killed):
        _find(inputs, out)
    monkeypatch.setattr(imp, "finetune", real)
    seed_dir = out / "level_01" / "seed_42"
    assert sorted(p.name for p in seed_dir.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]  # rotating, limit 2
    capsys.readouterr()
    assert _find(inputs, out) == 0
    err = capsys.readouterr().err
    assert "level 1, seed 42: resuming from" in err and "checkpoint-6 (step 6)" in err
    for level in (0, 1, 2):
        mean, per_seed = _level(out, level)
        ref_mean, ref_per_seed = _level(reference, level)
        assert mean == ref_mean, level
        if level == 1:  # the resumed level: every evaluation metric exact; train_loss covers steps 7-16 only
            assert per_seed["42"].pop("resumed_from_step") == 6
            per_seed["42"].pop("train_loss"), ref_per_seed["42"].pop("train_loss")
        assert per_seed == ref_per_seed, level
        assert not list((out / f"level_{level:02d}").glob("seed_*/checkpoint-*")), level  # spent checkpoints deleted
    for level in (1, 2, 3):
        a = TicketMask.from_pretrained(out / f"level_{level:02d}" / "ticket").masks
        b = TicketMask.from_pretrained(reference / f"level_{level:02d}" / "ticket").masks
        assert all(torch.equal(a[n], b[n]) for n in a), level


def test_a_checkpoint_that_does_not_fit_the_mask_is_not_used(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    assert _find(inputs, out) == 0
    # a level-1 checkpoint whose weights are not pruned (e.g. from another run's dense level)
    (out / "level_01" / "metrics.json").unlink()
    stale = out / "level_01" / "seed_42" / "checkpoint-6"
    from safetensors.torch import load_file, save_file

    level0 = out / "level_00" / "seed_42"
    assert not list(level0.glob("checkpoint-*"))
    weights = {n: torch.ones_like(t) for n, t in load_file(out / "initial_head_seed42.safetensors").items()}
    stale.mkdir(parents=True)
    ckpt, _ = inputs
    dense = load_file(ckpt / "model.safetensors")
    save_file({**{f"bert.{n}": t for n, t in dense.items()}, **weights}, stale / "model.safetensors")
    (stale / "trainer_state.json").write_text("{}")
    capsys.readouterr()
    assert _find(inputs, out) == 0
    err = capsys.readouterr().err
    assert "checkpoint-6 does not fit this level's mask: starting over" in err and "resuming from" not in err
