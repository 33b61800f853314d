"""The rows of a transfer matrix as one vocabulary: each kind of row is a registered class that
says which mask its cells train, which weights they start from, its label and what enters its
cells' ids; plans (:mod:`bert_tickets.experiments.transfer`), tables and heatmap
(:mod:`.cells`, :mod:`.figures`) and the sanity verdicts of ``prune-at-init`` read it, and no
code takes labels apart.

Rows (Chen et al. 2020, Table 2; Frankle et al. 2021, Section 5):

* ``ticket`` — a source ticket's mask on θ0 (the *own* ticket when the source's task is the target).
* ``dense`` — no mask.
* criterion rows — the mask a registered criterion finds at θ0 of the target (with the cell's
  fresh head): ``magnitude`` (formerly ``oneshot``: magnitude pruning of θ0 itself; one-shot
  pruning in the lottery-ticket literature means one round *after* training), ``random`` (seeded
  random pruning), and every criterion designed for pruning at initialisation (``snip``,
  ``synflow``, ``gem_miner``, and any registered later).
* ``reinit`` (θ0′) — the own mask on re-initialised weights.
* ``weight_shuffle`` (θ0″, formerly ``shuffle``) — the own mask on θ0 with each prunable tensor's
  values permuted (not to be confused with the ``layer_shuffle`` sanity check, which permutes the
  *mask*).

Sanity checks (:data:`SANITY_CHECKS`): ``layer_shuffle`` (the row's mask permuted within each
tensor) and ``reinit`` (the row's mask on re-initialised weights), applied to the rows that find
a mask (``ticket`` and criterion rows).

Renamed rows keep their old spelling as the ``key`` written into cell specs, so every saved cell
keeps its id; the old names are accepted on the command line too (registry aliases).

Adding a row kind is one class decorated with :func:`register_row`; its import (one line) makes
it available to ``--baselines``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .._registry import Registry
from ..pruning import CRITERIA_REGISTRY, at_init_criteria
from ..ticket import TicketMask

#: Row key of a cell that fine-tunes a source ticket.
TICKET_ROW = "ticket"
#: The reference row: Δ and matching are measured against it.
DENSE_ROW = "dense"


@dataclass
class RowInputs:
    """What a row's :meth:`MatrixRow.mask` may use.

    Attributes:
        dense: the dense ticket of the matrix's prunable set on the target model (no weight pruned).
        model: θ0 of the target task with the cell's fresh head (``torch.nn.Module``; not to be changed).
        sparsity: the matrix's sparsity (fraction).
        seed: the cell's seed.
        source: the cell's source ticket (``ticket`` rows) or the target's own ticket (rows that
            need it), else ``None``.
        find: ``find(criterion_name)`` -> the mask that criterion finds at θ0 for this cell (the
            matrix's search: batches, options, caching of costly searches).
    """

    dense: TicketMask
    model: Any
    sparsity: float
    seed: int
    source: TicketMask | None
    find: Callable[[str], TicketMask]


class MatrixRow:
    """One kind of matrix row. Subclasses set the class attributes and override :meth:`mask`
    (and :meth:`prepare_weights` when the cells start from other weights than θ0)."""

    #: The name on the command line (``--baselines``) and in tables.
    name: ClassVar[str] = ""
    #: Old spellings, accepted on the command line and read from saved cell specs.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The spelling written into cell specs (and so into cell ids); ``None``: :attr:`name`.
    key: ClassVar[str | None] = None
    summary: ClassVar[str] = ""
    #: Cells use the target's own ticket (a source whose task is the target); left out otherwise.
    needs_own: ClassVar[bool] = False
    #: ``False`` for a row without a mask (``dense``: sparsity 0).
    masked: ClassVar[bool] = True
    #: Sanity checks apply to the mask this row finds.
    checkable: ClassVar[bool] = False
    #: The mask is made here from the matrix's prunable set (which then enters the cells' ids).
    builds_mask: ClassVar[bool] = True
    #: Position in tables (smaller first; ties by label).
    order: ClassVar[int] = 10

    @property
    def spec_key(self) -> str:
        """The row's spelling in cell specs (:attr:`key`, else :attr:`name`)."""
        return type(self).key or self.name

    def context(self, criterion_options: dict[str, Any]) -> dict[str, Any]:
        """What besides the common context enters the ids of this row's cells (``criterion_options``:
        criterion name -> JSON-ready options of the matrix)."""
        return {}

    def mask(self, inputs: RowInputs) -> TicketMask:
        """The mask this row's cells train under (before any sanity check)."""
        raise NotImplementedError

    def prepare_weights(self, model: Any, ticket: TicketMask, seed: int) -> None:
        """Change θ0 in ``model`` into the weights this row's cells start from (default: θ0 as is)."""


#: name -> row class.
ROWS: Registry[type[MatrixRow]] = Registry("matrix row")


def register_row(cls: type[MatrixRow]) -> type[MatrixRow]:
    """Class decorator: register a row kind under ``cls.name`` (and ``cls.aliases``).

    Raises:
        ValueError: empty name or a name already registered by another class.
    """
    return ROWS.register(cls)


@register_row
class TicketRow(MatrixRow):
    """A source ticket's mask on θ0."""

    name = TICKET_ROW
    summary = "a source ticket's mask on θ0 (the own ticket when the source's task is the target)"
    checkable = True
    builds_mask = False
    order = 0

    def mask(self, inputs):
        return inputs.source


@register_row
class DenseRow(MatrixRow):
    """No mask: the dense model fine-tuned from θ0 (the reference of Δ and of matching)."""

    name = DENSE_ROW
    summary = "the dense model (no mask)"
    masked = False
    order = 1

    def mask(self, inputs):
        return inputs.dense


class CriterionRow(MatrixRow):
    """The mask a registered criterion finds at θ0 of the target (with the cell's fresh head).

    Args:
        criterion: the criterion's registered name (default: the class's :attr:`name`).
    """

    checkable = True

    def __init__(self, criterion: str | None = None):
        self.criterion = CRITERIA_REGISTRY.canonical(criterion or type(self).name)
        self.name = type(self).name or self.criterion
        self.summary = type(self).summary or CRITERIA_REGISTRY.get(self.criterion).summary

    def context(self, criterion_options):
        # criteria without options add nothing (so the magnitude and random rows keep the ids
        # they had before criterion rows existed)
        options = criterion_options.get(self.criterion) or {}
        return {"criterion": options} if CRITERIA_REGISTRY.get(self.criterion).Options is not None else {}

    def mask(self, inputs):
        return inputs.find(self.criterion)


@register_row
class MagnitudeRow(CriterionRow):
    """Magnitude pruning of θ0 itself, no training (formerly ``oneshot``)."""

    name = "magnitude"
    aliases = ("oneshot",)
    key = "oneshot"
    summary = "magnitude pruning of θ0 (no training; formerly 'oneshot')"
    order = 2


@register_row
class RandomRow(CriterionRow):
    """Seeded random pruning of θ0 (Chen et al. 2020, Table 2: "random pruning")."""

    name = "random"
    summary = "seeded random pruning"
    checkable = False
    order = 3


@register_row
class ReinitRow(MatrixRow):
    """The own ticket's mask on re-initialised weights (θ0′)."""

    name = "reinit"
    summary = "the own mask on re-initialised weights (θ0′)"
    needs_own = True
    builds_mask = False

    def mask(self, inputs):
        return inputs.source

    def prepare_weights(self, model, ticket, seed):
        from ..training.weights import reinitialize_backbone

        reinitialize_backbone(model, seed)


@register_row
class WeightShuffleRow(MatrixRow):
    """The own ticket's mask on θ0 with each prunable tensor's values permuted (θ0″)."""

    name = "weight_shuffle"
    aliases = ("shuffle",)
    key = "shuffle"
    summary = "the own mask on θ0 with each prunable tensor's values permuted (θ0″; formerly 'shuffle')"
    needs_own = True
    builds_mask = False

    def mask(self, inputs):
        return inputs.source

    def prepare_weights(self, model, ticket, seed):
        from ..training.weights import shuffle_weights

        shuffle_weights(model, list(ticket.masks), seed)


# ------------------------------------------------------------------ sanity checks
class SanityCheck:
    """A sanity check of a mask (Frankle et al. 2021, Section 5): a change of the mask or of the
    starting weights that a mask carrying information should lose to."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def transform_mask(self, ticket: TicketMask, seed: int) -> TicketMask:
        return ticket

    def prepare_weights(self, model: Any, seed: int) -> None:
        """Change the starting weights (default: as the row gives them)."""


#: name -> sanity check class.
CHECKS: Registry[type[SanityCheck]] = Registry("sanity check")


@CHECKS.register
class LayerShuffle(SanityCheck):
    """The mask permuted within each tensor (per-tensor sparsity kept), on θ0."""

    name = "layer_shuffle"
    summary = "the mask permuted within each tensor"

    def transform_mask(self, ticket, seed):
        return ticket.layer_shuffled(seed)


@CHECKS.register
class ReinitCheck(SanityCheck):
    """The mask on re-initialised weights."""

    name = "reinit"
    summary = "the mask on re-initialised weights"

    def prepare_weights(self, model, seed):
        from ..training.weights import reinitialize_backbone

        reinitialize_backbone(model, seed)


#: The registered sanity checks (names), in registration order.
SANITY_CHECKS = tuple(CHECKS.names())


def get_check(name: str) -> SanityCheck:
    """The sanity check ``name``.

    Raises:
        ValueError: unknown check (the message lists them).
    """
    return CHECKS.get(name)()


# ------------------------------------------------------------------ lookup
def baseline_names() -> list[str]:
    """Every row name ``--baselines`` accepts, canonical spellings: the registered row kinds
    other than ``ticket`` (implicit), then the criteria designed for pruning at initialisation."""
    names = [n for n in ROWS.names() if n != TICKET_ROW]
    return names + [c for c in at_init_criteria() if c not in names]


def get_row(name: str) -> MatrixRow:
    """The row named ``name`` on the command line or in a cell spec (canonical name, alias or
    spec key): a registered row kind, or the criterion row of any registered criterion (those
    designed for pruning at initialisation are the ones :func:`baseline_names` lists).

    Raises:
        ValueError: neither, or a criterion of whole units (``importance``: it scores a trained
            model's heads and neurons, not weights at θ0) — the message lists the rows
            ``--baselines`` accepts.
    """
    if name in ROWS:
        return ROWS.get(name)()
    if name in CRITERIA_REGISTRY:
        if CRITERIA_REGISTRY.get(name).granularities is not None:
            raise ValueError(f"criterion {name} scores whole heads / neurons of a trained model: not a row; use find --granularity")
        return CriterionRow(name)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(baseline_names())} ('own' is implicit)")


def check_rows(baselines: list[str], sanity: list[str]) -> None:
    """Check ``--baselines`` (:func:`baseline_names` or their old spellings) and ``--sanity``
    (:data:`SANITY_CHECKS`) before any work.

    Raises:
        ValueError: an unknown name (one line listing the choices).
    """
    for name in baselines:
        get_row(name)
    for name in sanity:
        if name not in CHECKS:
            raise ValueError(f"unknown sanity check {name!r}; choose from {', '.join(CHECKS.names())}")


def row_label(row_key: str, label: str, sanity: str | None) -> str:
    """The label a cell shows in tables: a source ticket's own label, or the row's current name
    (a renamed row's old spelling in saved specs shows as its new name), with ``(check)`` for a
    sanity variant."""
    if row_key == TICKET_ROW:
        return label
    name = get_row(row_key).name
    return name if sanity is None else f"{name} ({sanity})"
