"""The training-objective interface and its registry: *how* a training batch's loss is computed
in :func:`~bert_tickets.training.finetune.finetune`.

An objective receives the model, the batch and ``base_loss`` — the loss the Trainer itself
computes for a batch (the model's own loss, or the source's soft-label loss) — and returns the
loss to back-propagate, e.g. ``base_loss`` of a perturbed batch. ``standard`` (the model's own
loss) builds a stock ``transformers.Trainer``, bit for bit today's; any other objective makes
``finetune`` override ``Trainer.compute_loss`` in one place (``transformers``' own
``compute_loss_func`` sees only the outputs of one forward pass, not the inputs, so it cannot
perturb them). Objectives apply to training batches only: evaluation uses ``base_loss``.

Adding an objective is one file in this folder defining a :class:`TrainingObjective` subclass
decorated with :func:`register_objective`, plus one import line in ``objectives/__init__.py``;
the contract tests (``tests/training/test_objective_contract.py``) then run over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any, ClassVar

import torch

from ..._registry import Registry, parse_options

#: ``base_loss(model, inputs)`` -> ``(loss, outputs)``: the Trainer's own loss of a batch.
BaseLoss = Callable[[torch.nn.Module, dict[str, Any]], tuple[torch.Tensor, Any]]


class TrainingObjective:
    """Computes the loss of one training batch.

    Subclasses set :attr:`name` (and :attr:`Options`) and implement :meth:`loss`.
    """

    #: Registry key: the value of ``finetune(..., objective=NAME)``.
    name: ClassVar[str] = ""
    #: One line for ``--help`` and the README.
    summary: ClassVar[str] = ""
    #: The objective's options (a dataclass whose ``__post_init__`` checks ranges), or ``None``.
    Options: ClassVar[type | None] = None
    #: ``True`` only for the model's own loss: ``finetune`` then builds a stock ``Trainer``.
    standard: ClassVar[bool] = False

    @classmethod
    def options(cls, given: Mapping[str, Any] | Any | None = None) -> Any:
        """The objective's :attr:`Options` from ``given`` (name -> value, or already an
        instance); ``None`` for an objective without options.

        Raises:
            ValueError: an unknown option, a wrong type or a value out of range (one line).
        """
        if given is not None and cls.Options is not None and isinstance(given, cls.Options):
            return given
        if given is not None and is_dataclass(given) and not isinstance(given, type):
            raise ValueError(f"training objective {cls.name}: options of type {type(given).__name__}, expected {cls.Options}")
        return parse_options(cls.Options, given, what=f"training objective {cls.name}")

    @classmethod
    def options_dict(cls, options: Any) -> dict[str, Any]:
        """``options`` as JSON-ready values (``{}`` for an objective without options)."""
        return asdict(options) if options is not None else {}

    def loss(self, model: torch.nn.Module, inputs: dict[str, Any], options: Any, base_loss: BaseLoss) -> tuple[torch.Tensor, Any]:
        """The loss to back-propagate for the training batch ``inputs`` (and the outputs the
        Trainer may log): a scalar tensor with the autograd graph to the model's parameters.

        Args:
            model: the model in training mode (possibly wrapped by the Trainer).
            inputs: the collated batch on the model's device (``input_ids`` or
                ``inputs_embeds``, ``attention_mask``, ``labels``, ...); do not modify it.
            options: an instance of :attr:`Options` (or ``None``).
            base_loss: the Trainer's own loss of a batch.
        """
        raise NotImplementedError


#: name -> objective class.
OBJECTIVES: Registry[type[TrainingObjective]] = Registry("training objective")


def register_objective(cls: type[TrainingObjective]) -> type[TrainingObjective]:
    """Class decorator: register ``cls`` under ``cls.name`` (see :class:`~bert_tickets._registry.Registry`).

    Raises:
        ValueError: empty name or a name already registered by another class.
    """
    return OBJECTIVES.register(cls)


def get_objective(name: str) -> TrainingObjective:
    """A new instance of the objective registered as ``name``.

    Raises:
        ValueError: no such objective (the message lists the registered ones).
    """
    return OBJECTIVES.get(name)()


def objective_names() -> list[str]:
    """Names of the registered objectives, in registration order."""
    return OBJECTIVES.names()


def word_embeddings(model: torch.nn.Module, inputs: Mapping[str, Any]) -> torch.Tensor:
    """The batch's word embeddings, float ``(batch, L, hidden)``: ``inputs["inputs_embeds"]``
    when the batch carries them, else ``model.get_input_embeddings()(inputs["input_ids"])`` (the
    lookup BERT's embedding layer does before adding position and token-type embeddings).

    Raises:
        ValueError: the batch has neither.
    """
    if inputs.get("inputs_embeds") is not None:
        return inputs["inputs_embeds"]
    if inputs.get("input_ids") is None:
        raise ValueError("a batch with neither input_ids nor inputs_embeds")
    inner = getattr(model, "module", model)  # DDP
    return inner.get_input_embeddings()(inputs["input_ids"])


def with_embeddings(inputs: Mapping[str, Any], embeds: torch.Tensor) -> dict[str, Any]:
    """A copy of the batch ``inputs`` that feeds ``embeds`` as ``inputs_embeds`` (no ``input_ids``)."""
    out = {k: v for k, v in inputs.items() if k != "input_ids"}
    out["inputs_embeds"] = embeds
    return out
