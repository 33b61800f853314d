"""The criterion interface and its registry: *which* weights to prune, as a score per weight.

A criterion turns the prunable weights (and a seed) into a :data:`~bert_tickets.pruning.select.Scorer`;
:func:`~bert_tickets.pruning.select.select` turns scores into an exact-count mask (torch.ao.pruning's
split: the criterion says *which* weights, the schedule *how many*). Adding a criterion is one file
in this folder defining a :class:`PruningCriterion` subclass decorated with
:func:`register_criterion`, plus one import line in ``criteria/__init__.py``; the contract tests
(``tests/pruning/test_contracts.py``, ``tests/pruning/test_criterion_plugin.py``) then run over it.

A criterion declares, next to its code, its options (:attr:`PruningCriterion.Options`, a
dataclass with defaults, help and range checks; the commands reach it as
``--criterion_options KEY=VALUE``) and what it needs (:attr:`PruningCriterion.needs`, words of
:data:`NEEDS`); the experiments read those declarations and never a criterion's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

import torch

from ..._registry import Registry, parse_options
from ..select import Scorer

#: What a criterion may need, beyond the weights it scores:
#: ``batches`` — training batches of the task (model inputs with labels) in the context;
#: ``trains_scores`` — it trains its scores (optimizer steps: a cost in ``train_steps``);
#: ``iterates`` — several scoring rounds (:meth:`PruningCriterion.sparsity_steps`);
#: ``seed`` — its result depends on the seed (directly, or through the batches it draws).
NEEDS = ("batches", "trains_scores", "iterates", "seed")


class PruningCriterion:
    """Scores prunable weights; lower scores are pruned first.

    Subclasses set :attr:`name` and implement :meth:`scorer`. A criterion is stateless between
    calls: the same weights and seed give the same scores (the contract tests check it).
    """

    #: Registry key: the value of ``--criterion`` and of ``TicketMetadata.criterion``.
    name: ClassVar[str] = ""
    #: One line for ``--help`` and the README.
    summary: ClassVar[str] = ""
    #: What it needs beyond the weights (words of :data:`NEEDS`).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: ``True`` for a criterion designed to prune at initialisation (θ0 with a fresh task head:
    #: SNIP, SynFlow, Gem-Miner). Such criteria are the criterion rows of ``transfer`` and
    #: ``prune-at-init``; IMP (pruning trained weights) refuses the ones that need ``batches``.
    at_init: ClassVar[bool] = False
    #: ``True`` when the scores rank weights by magnitude, so a tensor of much smaller scale than
    #: the others is pruned first and may collapse (``find`` warns before the run).
    ranks_by_magnitude: ClassVar[bool] = False
    #: The structured granularities the criterion scores (``None``: every granularity, weight
    #: included). A criterion that scores whole units (Michel et al.'s head and neuron
    #: importance) names them; ``prune_ticket`` and ``find`` refuse it at any other granularity.
    granularities: ClassVar[tuple[str, ...] | None] = None
    #: The options dataclass (defaults, ``help`` metadata with units and source, checks in
    #: ``__post_init__``); ``None`` for a criterion without options. Its fields enter the hash
    #: of whatever the mask decides (a transfer cell, a prune-at-init ticket, an IMP run).
    Options: ClassVar[type | None] = None

    @property
    def needs_data(self) -> bool:
        """Whether the scores need training batches (``"batches"`` in :attr:`needs`)."""
        return "batches" in self.needs

    @classmethod
    def options(cls, given: Mapping[str, Any] | None = None) -> Any:
        """The criterion's :attr:`Options` from ``given`` (name or alias -> value); ``None`` for a
        criterion without options.

        Raises:
            ValueError: an unknown option, a wrong type or a value out of range (one line).
        """
        return parse_options(cls.Options, given, what=f"criterion {cls.name}")

    @classmethod
    def options_dict(cls, options: Any) -> dict[str, Any]:
        """``options`` as JSON-ready values (``{}`` for a criterion without options): what enters
        a hash and a ticket's record."""
        return asdict(options) if options is not None else {}

    def batches_needed(self, options: Any) -> int | None:
        """How many training batches the scoring draws (the first ones the fine-tune would draw
        with the same seed); ``None`` = one epoch. Only read when :attr:`needs` has
        ``batches``."""
        return None

    def _options(self, context: Mapping[str, Any]) -> Any:
        """The options passed in ``context["options"]``, or the defaults."""
        given = context.get("options")
        return given if given is not None else self.options()

    def sparsity_steps(self, start: float, sparsity: float, **context: Any) -> list[float]:
        """The sparsities of the successive selections that take a mask at ``start`` to
        ``sparsity`` (fractions; the last is ``sparsity``), each re-scoring the surviving
        weights. One selection (``[sparsity]``) unless the criterion is iterative (SynFlow)."""
        return [sparsity]

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        """What scoring cost, for the ticket's cost record (``TicketMetadata.cost``):
        counts of forward / backward passes (``score_forward``, ``score_backward``) and
        optimizer steps (``train_steps``) spent over ``steps`` selections. Magnitude and random
        scores cost none (``{}``)."""
        return {}

    def record(self, scorer: Scorer) -> dict[str, Any]:
        """What the scoring recorded besides the scores, JSON-ready, for the ticket's metadata
        (``extra["criterion_record"]``, written by :func:`~bert_tickets.pruning.prune_ticket`);
        ``{}`` when nothing. A criterion records by giving the scorer it returns an attribute
        ``record`` (a dict; Gem-Miner: its density trajectory), so criteria stay stateless."""
        return dict(getattr(scorer, "record", None) or {})

    def scorer(self, weights: Mapping[str, torch.Tensor], *, seed: int = 0, **context: Any) -> Scorer:
        """The score function over ``weights``.

        Args:
            weights: name -> the model's current weight tensor (any float dtype and device;
                backbone-relative names, the ticket's keys).
            seed: seed of a random criterion (ignored by deterministic ones).
            **context: what a criterion needs beyond the weights: ``model`` (always passed by
                :func:`~bert_tickets.pruning.prune_ticket`), ``masks`` (the current mask),
                ``batches`` (training data: SNIP, Gem-Miner), ``options`` (an instance of the
                criterion's :attr:`Options`; defaults when absent); magnitude and random ignore it.
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


def at_init_criteria() -> list[str]:
    """Names of the registered criteria designed for pruning at initialisation
    (:attr:`PruningCriterion.at_init`), in registration order: the criterion rows."""
    return [n for n in CRITERIA.names() if CRITERIA.get(n).at_init]


def criterion_options(names: list[str], entries: Mapping[str, Any] | None) -> dict[str, Any]:
    """Each criterion's options from one set of ``--criterion_options`` entries.

    An entry ``KEY=VALUE`` applies to every criterion in ``names`` that declares ``KEY`` (its
    field name or an alias); ``NAME.KEY=VALUE`` to criterion ``NAME`` only.

    Returns:
        criterion name -> its options instance (``None`` for a criterion without options).

    Raises:
        ValueError: an entry no criterion in ``names`` declares, a qualified entry for a
            criterion not in ``names``, or an option's own check (one line).
    """
    from ..._registry import option_names

    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in (entries or {}).items():
        owner, dot, option = key.rpartition(".")
        if dot:
            if owner not in per:
                raise ValueError(
                    f"--criterion_options {key}: {owner!r} is not one of the criteria used here ({', '.join(names) or 'none'})"
                )
            per[owner][option] = value
            continue
        takers = [n for n in names if key in option_names(CRITERIA.get(n).Options)]
        if not takers:
            raise ValueError(f"--criterion_options {key}: no criterion used here ({', '.join(names) or 'none'}) has this option")
        for n in takers:
            per[n][key] = value
    return {n: CRITERIA.get(n).options(given) for n, given in per.items()}
