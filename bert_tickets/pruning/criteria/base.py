"""The criterion interface and its registry: *which* weights to prune, as a score per weight.

A criterion turns the prunable weights (and a seed) into a :data:`~bert_tickets.pruning.select.Scorer`;
:func:`~bert_tickets.pruning.select.select` turns scores into an exact-count mask. Adding a
criterion is one file in this folder defining a :class:`PruningCriterion` subclass decorated
with :func:`register_criterion`, plus one import line in ``criteria/__init__.py``; the contract
tests (``tests/pruning/test_contracts.py``) then run over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from ..._registry import Registry
from ..select import Scorer


class PruningCriterion:
    """Scores prunable weights; lower scores are pruned first.

    Subclasses set :attr:`name` and implement :meth:`scorer`. A criterion is stateless between
    calls: the same weights and seed give the same scores (the contract tests check it).
    """

    #: Registry key: the value of ``--pruning_method`` and of ``TicketMetadata.pruning_method``.
    name: ClassVar[str] = ""
    #: One line for ``--help`` and the README.
    summary: ClassVar[str] = ""
    #: ``True`` when the scores need training data (``batches`` in the context), as SNIP's do.
    needs_data: ClassVar[bool] = False

    def sparsity_steps(self, start: float, sparsity: float, **context: Any) -> list[float]:
        """The sparsities of the successive selections that take a mask at ``start`` to
        ``sparsity`` (fractions; the last is ``sparsity``), each re-scoring the surviving
        weights. One selection (``[sparsity]``) unless the criterion is iterative (SynFlow)."""
        return [sparsity]

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        """What scoring cost, for the ticket's cost record (``TicketMetadata.extra["cost"]``):
        counts of forward / backward passes (``score_forward``, ``score_backward``) and
        optimizer steps (``train_steps``) spent over ``steps`` selections. Magnitude and random
        scores cost none (``{}``)."""
        return {}

    def scorer(self, weights: Mapping[str, torch.Tensor], *, seed: int = 0, **context: Any) -> Scorer:
        """The score function over ``weights``.

        Args:
            weights: name -> the model's current weight tensor (any float dtype and device;
                backbone-relative names, the ticket's keys).
            seed: seed of a random criterion (ignored by deterministic ones).
            **context: what a criterion needs beyond the weights: ``model`` (always passed by
                :func:`~bert_tickets.pruning.prune_ticket`), ``masks`` (the current mask),
                ``batches`` (training data: SNIP, Gem-Miner), criterion options
                (``score_iterations``, ``gem_miner``); magnitude and random ignore it.
        """
        raise NotImplementedError


#: name -> criterion class.
CRITERIA: Registry[type[PruningCriterion]] = Registry("pruning method")


def register_criterion(cls: type[PruningCriterion]) -> type[PruningCriterion]:
    """Class decorator: register ``cls`` under ``cls.name`` (see :class:`~bert_tickets._registry.Registry`).

    Raises:
        ValueError: empty name or a name already registered by another class.
    """
    return CRITERIA.register(cls)


def get_criterion(name: str) -> PruningCriterion:
    """A new instance of the criterion registered as ``name``.

    Raises:
        ValueError: no such criterion (the message lists the registered ones).
    """
    return CRITERIA.get(name)()


def criterion_names() -> list[str]:
    """Names of the registered criteria, in registration order."""
    return CRITERIA.names()
