"""Issue 20: rewinding to step k restores *every* weight of step k (backbone and head) and
continues the learning-rate schedule and the data order from step k (Frankle et al. 2020;
open_lth's ``train(start_step=k)``), in ``finetune`` and in ``find``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from bert_tickets.cli import main, parse_find_args
from bert_tickets.results import RunPaths
from bert_tickets.tasks import get_kind, get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import finetune
from bert_tickets.training.weights import RewindPointCapture, head_state, load_theta0

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rewind")
    ckpt, glue = write_imp_inputs(root)
    return root, ckpt, glue


def _no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def test_continuing_from_the_start_point_equals_the_uninterrupted_run(inputs, tmp_path):
    """Plain SGD (no optimizer state) and no dropout: training from the start point saved at step
    2 of a 4-step fine-tune gives the uninterrupted run's final weights exactly — every weight
    (the head included) was restored, steps 3-4 used the schedule's learning rates of steps 3-4
    and the batches 3-4 of the same data order."""
    root, ckpt, glue = inputs
    argv = ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(tmp_path / "x"), *IMP_TRAIN_ARGS]
    model_args, data_args, _, training_args = parse_find_args([*argv, "--optim", "sgd", "--num_train_epochs", "2"])
    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    data = get_kind(task.kind).prepare(task, tokenizer, str(glue), None, 16, None, None)
    model = _no_dropout(load_theta0(task, str(ckpt), seed=42))
    dense = TicketMask.dense(model)
    start = tmp_path / "start"
    capture = RewindPointCapture(3, None, save_start=lambda write: write(start))
    whole = finetune(
        model, dense, task, data, training_args, seed=42, output_dir=str(tmp_path / "a"), tokenizer=tokenizer, callbacks=[capture]
    )
    assert capture.done and whole.global_step == 8
    at_k = load_file(start / "model.safetensors")
    initial = head_state(load_theta0(task, str(ckpt), seed=42))
    assert not torch.equal(at_k["classifier.weight"], initial["classifier.weight"])  # the head of step 3, not of step 0
    assert json.loads((start / "trainer_state.json").read_text())["global_step"] == 3
    template = _no_dropout(load_theta0(task, str(ckpt), seed=7))  # other weights: all of them must come from the start point
    cont = finetune(
        template,
        dense,
        task,
        data,
        training_args,
        seed=42,
        output_dir=str(tmp_path / "b"),
        tokenizer=tokenizer,
        resume_from_checkpoint=str(start),
    )
    assert cont.global_step == 8
    steps = sorted(h["step"] for h in cont.log_history if "loss" in h)
    assert steps and min(steps) > 3  # only steps 4-8 ran
    a, b = whole.model.state_dict(), cont.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_find_continues_every_level_from_the_seeds_state_at_the_rewind_step(inputs, tmp_path):
    root, ckpt, glue = inputs
    base = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--max_levels", "2"]
    base += ["--logging_strategy", "steps", "--logging_steps", "1"]
    run = tmp_path / "run"
    assert main([*base, "--output_dir", str(run), "--rewind_step", "2", "--seeds", "1", "2"]) == 0
    paths = RunPaths(run)
    for seed in (1, 2):
        assert (paths.rewind_start(2, seed) / "model.safetensors").is_file()
        for level in (1, 2):
            history = json.loads(paths.log_history(level, seed).read_text())
            assert [h["step"] for h in history if "loss" in h] == [3, 4]  # only steps 3-4 ran: the schedule went on from 2
            assert json.loads(paths.metrics(level).read_text())["per_seed"][str(seed)]["rewound_to_step"] == 2
    config = json.loads(paths.run_config.read_text())
    assert config["hyperparameters"]["imp"]["rewind_mode"] == "state"
    # the behaviour before issue 20, as an explicit option: hashed as runs recorded before the modes
    old = tmp_path / "old"
    assert main([*base, "--output_dir", str(old), "--rewind_step", "2", "--rewind_mode", "backbone_restart"]) == 0
    assert "rewind_mode" not in json.loads(RunPaths(old).run_config.read_text())["hyperparameters"]["imp"]
    history = json.loads(RunPaths(old).log_history(1, 42).read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4] and not RunPaths(old).rewind_start(2, 42).exists()


def test_stability_copies_continue_from_the_state_at_the_rewind_step(inputs, tmp_path):
    """stability from step K > 0: by default both copies continue from the run seed's whole state
    at step K (made now when the run rewound to θ0), in their own directory; the earlier
    behaviour is --rewind_mode backbone_restart."""
    root, ckpt, glue = inputs
    run = tmp_path / "run"
    find = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--max_levels", "1"]
    assert main([*find, "--output_dir", str(run)]) == 0
    paths = RunPaths(run)
    assert main(["stability", str(run), "--level", "1", "--rewind_step", "2", "--points", "3"]) == 0
    assert (paths.rewind_start(2, 42) / "model.safetensors").is_file()  # the run seed's state at step 2, made now
    done = json.loads((paths.stability(1, 2, continued=True) / "stability.json").read_text())
    assert done["rewind_mode"] == "state" and "state continued" in done["title"]
    assert not paths.stability(1, 2).exists()
    assert main(["stability", str(run), "--level", "1", "--rewind_step", "2", "--points", "3", "--rewind_mode", "backbone_restart"]) == 0
    old = json.loads((paths.stability(1, 2) / "stability.json").read_text())
    assert old["rewind_mode"] == "backbone_restart" and paths.rewind_point(2).is_file()
    assert old["end_metrics"] != done["end_metrics"]
