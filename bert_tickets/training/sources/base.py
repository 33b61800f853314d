"""The training-data source interface and its registry: *what* :func:`~bert_tickets.training.finetune.finetune`
trains on.

A source turns the task's prepared data (and its own options) into :class:`TrainingData`: a
``datasets.Dataset`` the stock ``Trainer`` draws its batches from, and, where the examples need
them, a collator, a step budget and a loss for soft labels. Adding a source is one file in this
folder defining a :class:`TrainingSource` subclass decorated with :func:`register_source`, plus
one import line in ``sources/__init__.py``; the contract tests
(``tests/training/test_source_contract.py``) then run over it. A source declares its options
next to it (:attr:`TrainingSource.Options`, a dataclass with defaults, help and range checks),
as the pruning criteria do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, ClassVar

import torch

from ..._registry import Registry, parse_options

#: ``label_loss(model, inputs)`` -> ``(loss, outputs)`` for a batch whose labels the model's own
#: loss does not take (soft labels), or ``None`` to leave the batch to the model's own loss.
LabelLoss = Callable[[torch.nn.Module, dict[str, Any]], "tuple[torch.Tensor, Any] | None"]


@dataclass
class TrainingData:
    """What a source gives the Trainer.

    Attributes:
        dataset: the ``train_dataset`` (a ``datasets.Dataset``; one row per example).
        data_collator: the Trainer's collator for it, or ``None`` for the task kind's own (the
            kind's ``trainer_kwargs``, else the Trainer's default ``DataCollatorWithPadding``).
        max_steps: an optimizer-step budget replacing ``TrainingArguments.max_steps`` (the
            Trainer cycles the dataset over epochs until it is spent), or ``None``.
        label_loss: a loss for batches the model's own loss does not take (soft labels; see
            :func:`soft_label_loss`), or ``None``.
    """

    dataset: Any
    data_collator: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    max_steps: int | None = None
    label_loss: LabelLoss | None = None


class TrainingSource:
    """Makes the training data of one fine-tune.

    Subclasses set :attr:`name` (and :attr:`Options` when they take options) and implement
    :meth:`build`. A source is stateless: the same options and data give the same examples in
    the same order (the contract tests check it).
    """

    #: Registry key: the value of ``finetune(..., source=NAME)``.
    name: ClassVar[str] = ""
    #: One line for ``--help`` and the README.
    summary: ClassVar[str] = ""
    #: The source's options (a dataclass whose ``__post_init__`` checks ranges), or ``None``.
    Options: ClassVar[type | None] = None

    @classmethod
    def options(cls, given: Mapping[str, Any] | Any | None = None) -> Any:
        """The source's :attr:`Options` from ``given`` (name -> value, or already an instance);
        ``None`` for a source without options.

        Raises:
            ValueError: an unknown option, a wrong type or a value out of range (one line).
        """
        if given is not None and cls.Options is not None and isinstance(given, cls.Options):
            return given
        if given is not None and is_dataclass(given) and not isinstance(given, type):
            raise ValueError(f"training-data source {cls.name}: options of type {type(given).__name__}, expected {cls.Options}")
        return parse_options(cls.Options, given, what=f"training-data source {cls.name}")

    @classmethod
    def options_dict(cls, options: Any) -> dict[str, Any]:
        """``options`` as JSON-ready values (``{}`` for a source without options)."""
        return asdict(options) if options is not None else {}

    def check(self, options: Any, *, task: Any, data: Any, model: torch.nn.Module | None = None) -> None:
        """Refuse options that cannot apply to ``task`` / ``data`` / ``model`` (one-line
        ``ValueError``, or ``FileNotFoundError`` for a missing file) before any work; :meth:`build`
        is called only after this passed. Default: nothing."""

    def build(self, options: Any, *, task: Any, data: Any, tokenizer: Any = None) -> TrainingData:
        """The training data.

        Args:
            options: an instance of :attr:`Options` (or ``None``).
            task: the :class:`~bert_tickets.tasks.TaskSpec`.
            data: the kind's :class:`~bert_tickets.tasks.PreparedData` (``train`` and ``eval``).
            tokenizer: the model's tokenizer (sources that tokenise text need it).
        """
        raise NotImplementedError


#: name -> source class.
SOURCES: Registry[type[TrainingSource]] = Registry("training-data source")


def register_source(cls: type[TrainingSource]) -> type[TrainingSource]:
    """Class decorator: register ``cls`` under ``cls.name`` (see :class:`~bert_tickets._registry.Registry`).

    Raises:
        ValueError: empty name or a name already registered by another class.
    """
    return SOURCES.register(cls)


def get_source(name: str) -> TrainingSource:
    """A new instance of the source registered as ``name``.

    Raises:
        ValueError: no such source (the message lists the registered ones).
    """
    return SOURCES.get(name)()


def source_names() -> list[str]:
    """Names of the registered sources, in registration order."""
    return SOURCES.names()


def soft_label_loss(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[torch.Tensor, Any] | None:
    """Cross-entropy against soft labels: for ``inputs["labels"]`` float ``(batch, C)`` (each row
    a distribution over the C classes), the model's logits ``(batch, C)`` give
    ``mean_b( -sum_c labels[b, c] * log_softmax(logits[b])[c] )`` (the distillation loss of
    Hinton et al. 2015, Section 2, at temperature 1). Returns ``(loss, outputs)``, or ``None``
    for any other batch (hard class ids, regression targets, evaluation), which the model's own
    loss takes. The model is run without ``labels`` so its own loss (and its guess of
    ``config.problem_type`` from float labels: multi-label BCE) never sees them.
    """
    labels = inputs.get("labels")
    if labels is None or not torch.is_floating_point(labels) or labels.dim() != 2:
        return None
    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
    logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
    if logits.shape != labels.shape:
        raise ValueError(f"soft labels of shape {tuple(labels.shape)} for logits of shape {tuple(logits.shape)}")
    loss = -(labels.to(logits.dtype) * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    return loss, outputs
