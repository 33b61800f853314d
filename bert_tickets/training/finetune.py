"""``finetune``: fine-tune one model under one ticket on one task with one seed — the only place
a ``transformers.Trainer`` is built (open_lth's ``standard_train``). IMP levels, transfer
cells, stability copies and pruning-at-init all call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from ..tasks import PreparedData, TaskSpec, get_kind
from ..ticket import TicketMask
from .callback import TicketCallback

#: ``TrainingArguments`` fields that change what a fine-tune computes (part of a run's hash).
TRAINING_KEYS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "warmup_steps",
    "max_grad_norm",
    "lr_scheduler_type",
    "optim",
    "seed",
    "fp16",
    "bf16",
)


def training_hyperparameters(training_args: Any) -> dict[str, Any]:
    """The :data:`TRAINING_KEYS` of ``training_args`` as JSON-ready values (enums by value)."""
    out = {k: getattr(training_args, k, None) for k in TRAINING_KEYS}
    return {k: (v.value if hasattr(v, "value") else v) for k, v in out.items()}


def global_batch_size(training_args: Any) -> int:
    """Examples per optimizer step: per-device batch x data-parallel processes x gradient
    accumulation. A run's hash holds this number, not how it is split over processes."""
    return training_args.per_device_train_batch_size * max(1, training_args.world_size) * training_args.gradient_accumulation_steps


def optimizer_steps(training_args: Any, num_train_examples: int) -> int:
    """Optimizer steps one fine-tune takes: ``max_steps`` when set (> 0), else
    ``ceil(ceil(n / global batch) / accumulation) * ceil(epochs)``."""
    if training_args.max_steps and training_args.max_steps > 0:
        return int(training_args.max_steps)
    batches = math.ceil(num_train_examples / (training_args.per_device_train_batch_size * max(1, training_args.world_size)))
    return math.ceil(batches / training_args.gradient_accumulation_steps) * math.ceil(training_args.num_train_epochs)


@dataclass
class FinetuneResult:
    """What one fine-tune produced.

    Attributes:
        metrics: the task kind's evaluation (primary split unprefixed, others ``{split}_{name}``;
            fractions except perplexity), plus ``train_loss`` and ``nonzero_pruned_weights``
            (always 0: a non-zero count raises).
        model: the trained model (on the Trainer's device).
        log_history: ``Trainer.state.log_history``.
        global_step: optimizer steps taken.
    """

    metrics: dict[str, float]
    model: torch.nn.Module
    log_history: list[dict[str, Any]] = field(default_factory=list)
    global_step: int = 0


def finetune(
    model: torch.nn.Module,
    ticket: TicketMask,
    task: TaskSpec,
    data: PreparedData,
    training_args: Any,
    *,
    seed: int,
    output_dir: str,
    tokenizer: Any = None,
    callbacks: Sequence[TrainerCallback] = (),
    resume_from_checkpoint: str | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``task`` while :class:`~bert_tickets.training.callback.TicketCallback`
    keeps ``ticket``'s pruned weights at exactly zero, then evaluate with the task kind.

    The caller decides where the weights start (θ0, a rewind point, a re-initialisation) and
    which head they carry; this function does not load or save weights. Every
    ``TrainingArguments`` option passes through; ``output_dir`` and ``seed`` replace theirs.

    Args:
        model: the task model (a ``BertFor…`` of ``task``'s kind), weights already in place.
        ticket: the mask kept during training (``TicketMask.dense`` for no pruning).
        task: the task spec.
        data: the kind's prepared features (``train`` and ``eval`` splits).
        training_args: ``transformers.TrainingArguments``.
        seed: training seed (data order, dropout).
        output_dir: the Trainer's output directory.
        tokenizer: passed to the Trainer as ``processing_class``.
        callbacks: extra ``TrainerCallback`` objects (e.g. a rewind-point capture).
        resume_from_checkpoint: a Trainer checkpoint directory of this very fine-tune
            (``output_dir/checkpoint-N``) to continue from, through the Trainer's own
            ``train(resume_from_checkpoint=...)`` (weights, optimizer, scheduler, RNG, data order).

    Returns:
        :class:`FinetuneResult`.

    Raises:
        RuntimeError: a pruned weight is non-zero after training (the callback failed).
    """
    kind = get_kind(task.kind)
    args = replace(training_args, output_dir=str(output_dir), seed=seed)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=next(iter(data.eval.values())),
        processing_class=tokenizer,
        callbacks=[TicketCallback(ticket), *callbacks],
        **kind.trainer_kwargs(task, tokenizer, data),
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    metrics = kind.evaluate(trainer, task, data)
    metrics["train_loss"] = next((h["train_loss"] for h in reversed(trainer.state.log_history) if "train_loss" in h), None)
    nonzero = ticket.count_nonzero_pruned(model)
    if nonzero:
        raise RuntimeError(f"{nonzero} pruned weights are non-zero after training ({output_dir})")
    metrics["nonzero_pruned_weights"] = nonzero
    return FinetuneResult(metrics, model, list(trainer.state.log_history), int(trainer.state.global_step))


def training_batches(
    model: torch.nn.Module,
    task: TaskSpec,
    data: PreparedData,
    training_args: Any,
    *,
    seed: int,
    num_batches: int | None,
    tokenizer: Any = None,
) -> list[dict[str, torch.Tensor]]:
    """The first ``num_batches`` training batches (``None``: one epoch) exactly as
    :func:`finetune` would draw them with ``seed`` — the Trainer's own data loader, collator and
    per-device batch size — as model-input dicts with labels on CPU. What a criterion that scores
    on data (SNIP, Gem-Miner) is given.

    Raises:
        ValueError: ``num_batches`` < 1.
    """
    if num_batches is not None and num_batches < 1:
        raise ValueError(f"need at least one training batch, got {num_batches}")
    kind = get_kind(task.kind)
    args = replace(training_args, seed=seed)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.train,
        processing_class=tokenizer,
        **kind.trainer_kwargs(task, tokenizer, data),
    )
    out: list[dict[str, torch.Tensor]] = []
    for batch in trainer.get_train_dataloader():
        out.append({k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        if num_batches is not None and len(out) >= num_batches:
            break
    return out


def predict_logits(
    model: torch.nn.Module, dataset: Any, task: TaskSpec, data: PreparedData, training_args: Any, *, output_dir: str, tokenizer: Any = None
):
    """The model's outputs on every example of ``dataset`` (evaluation mode, dataset order) and
    their labels, through the Trainer's prediction loop: ``(logits, labels)`` as float32 /
    label-dtype tensors of shapes ``(n, num_labels)`` and ``(n,)``."""
    kind = get_kind(task.kind)
    args = replace(training_args, output_dir=str(output_dir))
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, **kind.trainer_kwargs(task, tokenizer, data))
    trainer.compute_metrics = None  # raw predictions only
    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(out.label_ids)


def evaluate_model(
    model: torch.nn.Module, task: TaskSpec, data: PreparedData, training_args: Any, *, output_dir: str, tokenizer: Any = None
) -> dict[str, float]:
    """Evaluate ``model`` as it is (no training) with the task kind's evaluation: the same
    metrics, names and Trainer evaluation loop as :func:`finetune` reports (dropout off)."""
    kind = get_kind(task.kind)
    args = replace(training_args, output_dir=str(output_dir))
    trainer = Trainer(
        model=model,
        args=args,
        eval_dataset=next(iter(data.eval.values())),
        processing_class=tokenizer,
        **kind.trainer_kwargs(task, tokenizer, data),
    )
    return kind.evaluate(trainer, task, data)
