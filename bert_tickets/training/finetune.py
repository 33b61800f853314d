"""``finetune``: fine-tune one model under one ticket on one task with one seed — the only place
a ``transformers.Trainer`` is built (open_lth's ``standard_train``). IMP levels, transfer
cells, stability copies, pruning-at-init and the data diet all call it.

The training seam: besides the ticket and the starting weights (the model as given), a fine-tune
takes *what to train on* — a registered training-data source (:mod:`.sources`: ``task``, the
default, ``subset``, ``examples``, ``embeddings``) — and *how a batch's loss is computed* — a
registered training objective (:mod:`.objectives`: ``standard``, the default, ``adversarial``).
With the defaults the stock ``Trainer`` is built exactly as before the seam; a non-standard
objective (or a source's soft-label loss) is the one place ``Trainer.compute_loss`` is overridden
(:class:`ObjectiveTrainer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from ..tasks import PreparedData, TaskSpec, get_kind
from ..ticket import TicketMask
from .callback import TicketCallback
from .objectives import OBJECTIVES, TrainingObjective
from .sources import SOURCES, TrainingData, TrainingSource

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
    ``ceil(n / global batch) * ceil(epochs)`` (:func:`global_batch_size`; equal to the
    Trainer's ``ceil(ceil(n / (per-device batch x processes)) / accumulation)`` steps an epoch,
    since ``ceil(ceil(n / a) / b) = ceil(n / (a b))`` for positive integers)."""
    if training_args.max_steps and training_args.max_steps > 0:
        return int(training_args.max_steps)
    return math.ceil(num_train_examples / global_batch_size(training_args)) * math.ceil(training_args.num_train_epochs)


def check_rewind_step(step: int, training_args: Any, num_train_examples: int, what: str) -> None:
    """Refuse a rewind step that one fine-tune never reaches (before any training).

    Args:
        step: the rewind step K (optimizer steps).
        training_args: the fine-tune's ``TrainingArguments`` (:func:`optimizer_steps`).
        num_train_examples: its training examples.
        what: the fine-tune, as the message names it (``"level-0 training"``).

    Raises:
        ValueError: ``step`` beyond the fine-tune's optimizer steps (one line).
    """
    steps = optimizer_steps(training_args, num_train_examples)
    if step > steps:
        raise ValueError(f"--rewind_step {step} exceeds the {steps} optimizer steps of {what}")


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


@dataclass
class TrainingPlan:
    """A fine-tune's training seam, resolved and checked: the source and objective instances and
    their options instances (see :func:`plan_training`)."""

    source: TrainingSource
    source_options: Any
    objective: TrainingObjective
    objective_options: Any


def plan_training(
    task: TaskSpec,
    data: PreparedData,
    *,
    source: str = "task",
    source_options: Mapping[str, Any] | Any | None = None,
    objective: str = "standard",
    objective_options: Mapping[str, Any] | Any | None = None,
    model: torch.nn.Module | None = None,
) -> TrainingPlan:
    """Resolve and check a fine-tune's source and objective before any work.

    Args:
        task, data: the task and its prepared data.
        source: a registered training-data source (:data:`~bert_tickets.training.sources.SOURCES`).
        source_options: its options: name -> value (text or typed), or an instance of its ``Options``.
        objective: a registered training objective (:data:`~bert_tickets.training.objectives.OBJECTIVES`).
        objective_options: its options, likewise.
        model: the model to train, for the checks that need it (e.g. the embedding size).

    Raises:
        ValueError: an unknown source or objective, an unknown or bad option, or options that do
            not fit the task, data or model (one line).
        FileNotFoundError: a source's file is missing.
    """
    src = SOURCES.get(source)()
    src_options = src.options(source_options)
    src.check(src_options, task=task, data=data, model=model)
    obj = OBJECTIVES.get(objective)()
    return TrainingPlan(src, src_options, obj, obj.options(objective_options))


class ObjectiveTrainer(Trainer):
    """The stock ``Trainer`` with ``compute_loss`` routed through a training objective — the one
    subclass of ``Trainer`` in the package, built by :func:`finetune` only for a non-standard
    objective or a source's soft-label loss (``Trainer(compute_loss_func=...)`` sees one
    forward pass's outputs, not the inputs, so it cannot perturb them).

    Training batches get ``objective.loss(model, inputs, objective_options, base_loss)``;
    evaluation and prediction batches get ``base_loss``: the source's ``label_loss`` where it
    applies (soft labels), else ``Trainer.compute_loss``.

    Args:
        objective: the :class:`~bert_tickets.training.objectives.TrainingObjective`.
        objective_options: its options instance.
        label_loss: the source's :attr:`~bert_tickets.training.sources.TrainingData.label_loss`, or ``None``.
        **kwargs: ``Trainer``'s arguments.
    """

    def __init__(
        self, *args: Any, objective: TrainingObjective, objective_options: Any = None, label_loss: Callable | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.objective, self.objective_options, self.label_loss = objective, objective_options, label_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        def base_loss(m, batch):
            out = self.label_loss(m, batch) if self.label_loss is not None else None
            if out is None:
                out = super(ObjectiveTrainer, self).compute_loss(m, batch, return_outputs=True, num_items_in_batch=num_items_in_batch)
            return out

        if model.training and torch.is_grad_enabled():
            loss, outputs = self.objective.loss(model, dict(inputs), self.objective_options, base_loss)
        else:
            loss, outputs = base_loss(model, inputs)
        return (loss, outputs) if return_outputs else loss


class _TrainingCollator:
    """A source's collator for batches of its training examples (features whose keys are the
    training dataset's columns, after the Trainer removed those the model does not take), the
    kind's (or the Trainer's default) for every other batch (evaluation)."""

    def __init__(self, train: Callable, other: Callable, columns: Sequence[str]):
        self.train, self.other, self.columns = train, other, frozenset(columns)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return (self.train if set(features[0]) <= self.columns else self.other)(features)


def _trainer(model, args, training: TrainingData, plan: TrainingPlan, kind, task, data, tokenizer, callbacks) -> Trainer:
    """The Trainer of one fine-tune: a stock ``Trainer`` for the standard objective without a
    label loss, else an :class:`ObjectiveTrainer`."""
    kwargs = kind.trainer_kwargs(task, tokenizer, data)
    if training.data_collator is not None:
        from transformers import DataCollatorWithPadding, default_data_collator

        other = kwargs.get("data_collator") or (DataCollatorWithPadding(tokenizer) if tokenizer is not None else default_data_collator)
        kwargs["data_collator"] = _TrainingCollator(training.data_collator, other, training.dataset.column_names)
    common = dict(
        model=model,
        args=args,
        train_dataset=training.dataset,
        eval_dataset=next(iter(data.eval.values())),
        processing_class=tokenizer,
        callbacks=callbacks,
        **kwargs,
    )
    if plan.objective.standard and training.label_loss is None:
        return Trainer(**common)
    return ObjectiveTrainer(objective=plan.objective, objective_options=plan.objective_options, label_loss=training.label_loss, **common)


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
    source: str = "task",
    source_options: Mapping[str, Any] | Any | None = None,
    objective: str = "standard",
    objective_options: Mapping[str, Any] | Any | None = None,
    draws_with_replacement: int | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on what ``source`` gives, with ``objective``'s loss, while
    :class:`~bert_tickets.training.callback.TicketCallback` keeps ``ticket``'s pruned weights at
    exactly zero, then evaluate with the task kind (on ``data.eval``, whatever the source).

    The caller decides where the weights start (θ0, a rewind point, a re-initialisation) and
    which head they carry; this function does not load or save weights. Every
    ``TrainingArguments`` option passes through; ``output_dir`` and ``seed`` replace theirs, and
    a source's step budget (``subset``'s ``steps``) replaces ``max_steps``. With the default
    source and objective the Trainer is built exactly as before the training seam (same numbers).

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
        source: the registered training-data source (:mod:`bert_tickets.training.sources`):
            ``task`` (``data.train``, default), ``subset``, ``examples``, ``embeddings``, ...
        source_options: its options (name -> value, or its ``Options`` instance).
        objective: the registered training objective (:mod:`bert_tickets.training.objectives`):
            ``standard`` (the model's own loss, default), ``adversarial``, ...
        objective_options: its options (name -> value, or its ``Options`` instance).
        draws_with_replacement: train on this many examples drawn *with replacement* from the
            source's examples (uniform, seeded by ``seed``) instead of the examples themselves —
            how DiLM evaluates a synthetic set (Maekawa et al. 2024, ``src/evaluator.py``: batches
            of 128 sampled with replacement from a 10-example set); give steps × batch.

    Returns:
        :class:`FinetuneResult`.

    Raises:
        ValueError: an unknown source or objective or a bad option (see :func:`plan_training`;
            before any training); ``draws_with_replacement`` < 1.
        FileNotFoundError: a source's file is missing (before any training).
        RuntimeError: a pruned weight is non-zero after training (the callback failed).
    """
    plan = plan_training(
        task, data, source=source, source_options=source_options, objective=objective, objective_options=objective_options, model=model
    )
    kind = get_kind(task.kind)
    training = plan.source.build(plan.source_options, task=task, data=data, tokenizer=tokenizer)
    if draws_with_replacement is not None:
        if draws_with_replacement < 1:
            raise ValueError(f"draws_with_replacement must be >= 1, got {draws_with_replacement}")
        drawn = torch.randint(len(training.dataset), (draws_with_replacement,), generator=torch.Generator().manual_seed(seed))
        training = replace(training, dataset=training.dataset.select(drawn.tolist()))
    budget = {"max_steps": training.max_steps} if training.max_steps is not None else {}
    args = replace(training_args, output_dir=str(output_dir), seed=seed, **budget)
    trainer = _trainer(model, args, training, plan, kind, task, data, tokenizer, [TicketCallback(ticket), *callbacks])
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
    label-dtype tensors of shapes ``(n, num_labels)`` and ``(n,)``. For a model with several
    outputs (SQuAD: start and end logits) the first; :func:`predict_outputs` gives them all."""
    outputs, labels = predict_outputs(model, dataset, task, data, training_args, output_dir=output_dir, tokenizer=tokenizer)
    return outputs[0], labels


def predict_outputs(
    model: torch.nn.Module, dataset: Any, task: TaskSpec, data: PreparedData, training_args: Any, *, output_dir: str, tokenizer: Any = None
):
    """Every output array of the model's prediction on ``dataset`` (evaluation mode, dataset
    order) and the labels: ``([float32 tensor, …], labels)`` — one tensor for a classifier
    (``(n, num_labels)``), two for extractive QA (start and end logits, ``(n, seq_len)`` each);
    labels as the Trainer returns them (``None`` for a dataset without labels)."""
    kind = get_kind(task.kind)
    args = replace(training_args, output_dir=str(output_dir))
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, **kind.trainer_kwargs(task, tokenizer, data))
    trainer.compute_metrics = None  # raw predictions only
    out = trainer.predict(dataset)
    arrays = out.predictions if isinstance(out.predictions, tuple) else (out.predictions,)
    labels = out.label_ids
    if isinstance(labels, tuple | list):
        labels = labels[0] if labels else None
    return [torch.as_tensor(a, dtype=torch.float32) for a in arrays], (None if labels is None else torch.as_tensor(labels))


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
