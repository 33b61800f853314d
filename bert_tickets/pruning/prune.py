"""``prune_ticket``: the next IMP level's ticket from a model's weights — a registered criterion
scores the weights, :func:`~.select.select` picks exactly ``round(s · N)`` of them."""

from __future__ import annotations

import copy
from typing import Any

from ..ticket import TicketMask
from .criteria import get_criterion
from .schedules import make_schedule
from .select import SCOPES, select


def prune_ticket(
    ticket: TicketMask,
    model,
    sparsity: float,
    method: str = "magnitude",
    seed: int = 0,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
    **context: Any,
) -> TicketMask:
    """Next IMP level's :class:`~bert_tickets.ticket.TicketMask` from ``model``'s current weights.

    Scores the prunable weights named by ``ticket`` with the criterion registered as ``method``
    (``magnitude``: |w|; ``random``: seeded uniform scores; see
    :func:`~bert_tickets.pruning.criteria.criterion_names`) and prunes the lowest-scoring
    surviving ones to ``sparsity``, globally (``scope="global"``, optionally capped per tensor)
    or layer-wise (``scope="layerwise"``). The metadata is copied with ``level`` + 1,
    ``target_sparsity``, ``pruning_method``, ``pruning_scope`` and ``max_tensor_sparsity``
    updated. Pruned weights stay pruned (monotone).

    Args:
        ticket: current ticket (``masks``: name -> ``torch.bool`` of the weight's shape).
        model: model holding the weights (any BERT head; keys are backbone-relative).
        sparsity: target global sparsity, a fraction in [0, 1).
        method: a registered criterion name.
        seed: seed of a random criterion.
        scope: ``"global"`` or ``"layerwise"``.
        max_tensor_sparsity: per-tensor cap (global scope only), a fraction in (0, 1], or ``None``.
        **context: what a data-dependent criterion needs (``snip``: ``batches``, a list of
            model-input dicts with labels); ``model`` is always passed to the criterion.

    Returns:
        A new :class:`~bert_tickets.ticket.TicketMask` with exactly ``round(sparsity · N)``
        pruned weights.

    Raises:
        ValueError: unknown method/scope, bad sparsity or cap, or a ticket that does not fit
            the model.
    """
    criterion = get_criterion(method)
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
    targets = ticket.validate(model)
    missing = [n for n in ticket.masks if n not in targets]
    if missing:
        raise ValueError(f"cannot prune: the model has no parameter for mask key {missing[0]!r}")
    weights = {n: targets[n] for n in ticket.masks}
    shapes = {n: w.shape for n, w in weights.items()}
    new = select(shapes, criterion.scorer(weights, seed=seed, model=model, **context), sparsity, ticket.masks, scope, max_tensor_sparsity)
    meta = copy.deepcopy(ticket.metadata)
    meta.level += 1
    meta.target_sparsity = sparsity
    meta.pruning_method = method
    meta.pruning_scope = scope
    meta.max_tensor_sparsity = max_tensor_sparsity
    return TicketMask(new, meta)


def sparsity_schedule(
    schedule: str = "linear",
    target_sparsity: float = 0.9,
    prune_step: float = 0.1,
    prune_fraction: float = 0.1,
    max_levels: int | None = None,
) -> list[float]:
    """Target sparsity of every IMP level, level 0 (dense, 0.0) first: the
    :meth:`~.schedules.SparsitySchedule.preview` of the registered schedule ``schedule``.

    Levels stop at ``target_sparsity`` (the last level is clipped to it) or after
    ``max_levels`` pruned levels, whichever comes first. Values are fractions, rounded to 10
    decimals.

    Raises:
        ValueError: unknown or adaptive schedule; target outside [0, 1); step/fraction outside
            (0, 1); negative ``max_levels``.
    """
    return make_schedule(schedule, target_sparsity, max_levels, prune_step=prune_step, prune_fraction=prune_fraction).preview()
