"""Tiny inputs of the training-seam contract tests (``test_source_contract.py``,
``test_objective_contract.py``): the tiny RTE data and checkpoint of ``tiny_assets``, prepared
as ``find`` prepares them, and a Trainer built the way ``finetune`` built it before the seam."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Trainer

from bert_tickets.cli import parse_find_args
from bert_tickets.tasks import PreparedData, get_kind, get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.callback import TicketCallback
from bert_tickets.training.weights import load_theta0

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

BATCH = 8  # IMP_TRAIN_ARGS' per-device batch


@dataclass
class Tiny:
    root: Path
    ckpt: Path
    task: Any
    tokenizer: Any
    data: PreparedData
    training_args: Any

    def model(self, seed: int = 0) -> torch.nn.Module:
        return load_theta0(self.task, str(self.ckpt), seed=seed)

    def args(self, **changes) -> Any:
        """The run's training arguments, logging every step, with ``changes``."""
        return replace(self.training_args, logging_strategy="steps", logging_steps=1, **changes)


def tiny(root: Path) -> Tiny:
    ckpt, glue = write_imp_inputs(root)
    argv = ["--task", "rte", *IMP_TRAIN_ARGS, "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(root / "run")]
    model_args, data_args, _, training_args = parse_find_args(argv)
    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    data = get_kind(task.kind).prepare(task, tokenizer, data_args.data_dir, None, data_args.max_seq_length, None, None)
    return Tiny(root, ckpt, task, tokenizer, data, training_args)


def dense(model: torch.nn.Module) -> TicketMask:
    return TicketMask.dense(model)


def steps(n: int, epochs: float) -> int:
    """Optimizer steps of ``n`` examples at batch :data:`BATCH` for ``epochs`` (no accumulation)."""
    return math.ceil(n / BATCH) * math.ceil(epochs)


def old_way_train(t: Tiny, model: torch.nn.Module, args: Any, *, seed: int, output_dir: str) -> Trainer:
    """Train ``model`` with the Trainer ``finetune`` built before the training seam (commit
    4d3af09): stock ``Trainer`` on ``data.train``, the kind's kwargs, a dense ``TicketCallback``."""
    kind = get_kind(t.task.kind)
    trainer = Trainer(
        model=model,
        args=replace(args, output_dir=output_dir, seed=seed),
        train_dataset=t.data.train,
        eval_dataset=next(iter(t.data.eval.values())),
        processing_class=t.tokenizer,
        callbacks=[TicketCallback(dense(model))],
        **kind.trainer_kwargs(t.task, t.tokenizer, t.data),
    )
    trainer.train()
    return trainer


def same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> list[str]:
    """Names of the parameters that differ (tensor-equal comparison), outside ``skip``."""
    sb = dict(b.named_parameters())
    return [n for n, p in a.named_parameters() if n not in skip and not torch.equal(p.detach(), sb[n].detach())]


def losses(log_history: list[dict]) -> list[float]:
    """The per-step training losses the Trainer logged."""
    return [h["loss"] for h in log_history if "loss" in h and "eval_loss" not in h]
