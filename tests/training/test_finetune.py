"""``finetune``, the one training entry: it reproduces an IMP level exactly from the run's
saved pieces, keeps pruned weights at zero, and refuses a result with non-zero pruned weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, TrainerCallback

from bert_tickets.cli import main, parse_find_args
from bert_tickets.results import RunPaths
from bert_tickets.tasks import get_kind, get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import finetune
from bert_tickets.training.weights import head_state, load_into, load_theta0

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

ARGS = [
    "--task",
    "rte",
    *IMP_TRAIN_ARGS,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    ckpt, glue = write_imp_inputs(root)
    argv = [*ARGS, "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(root / "run")]
    assert main(["find", *argv, "--max_levels", "1"]) == 0
    return root, argv


def _inputs(argv, tmp):
    model_args, data_args, _, training_args = parse_find_args([*argv[:-1], str(tmp)])
    task = get_task(data_args.task)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    data = get_kind(task.kind).prepare(task, tokenizer, data_args.data_dir, None, data_args.max_seq_length, None, None)
    return model_args, task, tokenizer, data, training_args


def test_finetune_reproduces_an_imp_level(run, tmp_path):
    root, argv = run
    paths = RunPaths(root / "run")
    model_args, task, tokenizer, data, training_args = _inputs(argv, tmp_path)
    model = load_theta0(task, model_args.model_name_or_path, seed=42)
    load_into(model, load_file(paths.initial_head(42)), "initial head")
    ticket = TicketMask.from_pretrained(paths.ticket(1))
    result = finetune(model, ticket, task, data, training_args, seed=42, output_dir=str(tmp_path / "o"), tokenizer=tokenizer)
    recorded = json.loads(paths.metrics(1).read_text())["per_seed"]["42"]
    timing = ("runtime", "per_second")
    assert {k: v for k, v in result.metrics.items() if not any(t in k for t in timing)} == {
        k: v for k, v in recorded.items() if not any(t in k for t in timing)
    }
    assert ticket.num_pruned > 0 and ticket.count_nonzero_pruned(result.model) == 0
    assert result.global_step == 4 and any(h.get("train_loss") == recorded["train_loss"] for h in result.log_history)


def test_finetune_refuses_non_zero_pruned_weights(run, tmp_path):
    root, argv = run
    model_args, task, tokenizer, data, training_args = _inputs(argv, tmp_path)
    model = load_theta0(task, model_args.model_name_or_path, seed=0)
    ticket = TicketMask.from_pretrained(RunPaths(root / "run").ticket(1))

    class Revive(TrainerCallback):  # runs after TicketCallback's last re-zeroing
        def on_train_end(self, args, state, control, model=None, **kwargs):
            with torch.no_grad():
                model.bert.encoder.layer[0].attention.self.query.weight.fill_(1.0)

    with pytest.raises(RuntimeError, match="pruned weights are non-zero after training"):
        finetune(
            model, ticket, task, data, training_args, seed=0, output_dir=str(tmp_path / "o"), tokenizer=tokenizer, callbacks=[Revive()]
        )


def test_head_state_is_everything_outside_the_backbone(run):
    root, argv = run
    model = load_theta0(get_task("rte"), str(root / "ckpt"), seed=3)
    assert set(head_state(model)) == {"classifier.weight", "classifier.bias"}
    again = load_theta0(get_task("rte"), str(root / "ckpt"), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(head_state(model).values(), head_state(again).values()))
