"""``prune_ticket``: the next IMP level's ticket from a model's weights — a registered criterion
scores the weights, :func:`~.select.select` picks exactly ``round(s · N)`` of them."""

from __future__ import annotations

import copy
from typing import Any

from .._registry import option_names
from ..ticket import TicketMask
from .criteria import get_criterion
from .schedules import SCHEDULES, make_schedule
from .select import SCOPES, select
from .structured import GRANULARITIES, pruned_groups, select_groups, select_n_of_m


def prune_ticket(
    ticket: TicketMask,
    model,
    sparsity: float,
    method: str = "magnitude",
    seed: int = 0,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
    granularity: str = "weight",
    min_per_layer: int = 0,
    **context: Any,
) -> TicketMask:
    """Next IMP level's :class:`~bert_tickets.ticket.TicketMask` from ``model``'s current weights.

    Scores the prunable weights named by ``ticket`` with the criterion registered as ``method``
    (``magnitude``: |w|; ``random``: seeded uniform scores; see
    :func:`~bert_tickets.pruning.criteria.criterion_names`) and prunes the lowest-scoring
    surviving ones to ``sparsity``, globally (``scope="global"``, optionally capped per tensor)
    or layer-wise (``scope="layerwise"``). The metadata is copied with ``level`` + 1,
    ``target_sparsity``, ``criterion``, ``pruning_scope`` and ``max_tensor_sparsity``
    updated. Pruned weights stay pruned (monotone).

    Args:
        ticket: current ticket (``masks``: name -> ``torch.bool`` of the weight's shape).
        model: model holding the weights (any BERT head; keys are backbone-relative).
        sparsity: target global sparsity, a fraction in [0, 1).
        method: a registered criterion name.
        seed: seed of a random criterion.
        scope: ``"global"`` or ``"layerwise"``.
        max_tensor_sparsity: per-tensor cap (global scope only), a fraction in (0, 1], or ``None``.
        granularity: ``weight`` (unstructured, default) or a structured one of
            :data:`~.structured.GRANULARITIES` (:mod:`.structured`): ``head``, ``neuron`` and
            ``head+neuron`` prune whole groups, ``sparsity`` being then the fraction of heads / of
            neurons pruned; ``2:4`` keeps 2 of every 4 consecutive input weights (sparsity 0.5
            only). The criterion's per-weight scores are summed per group; ``scope="layerwise"``
            prunes the same fraction of the groups in every layer. The cap does not apply to
            structured granularities.
        min_per_layer: structured only: groups of each kind kept alive in every layer.
        **context: what a criterion needs (``snip``: ``batches``, a list of model-input dicts
            with labels; ``synflow``: ``score_iterations``); ``model`` and the current mask
            (``masks``) are always passed to the criterion. An iterative criterion (SynFlow)
            re-scores and selects once per :meth:`~.criteria.PruningCriterion.sparsity_steps`
            entry; the scoring passes are added to the ticket's cost record (:func:`add_cost`),
            and what the criterion recorded (:meth:`~.criteria.PruningCriterion.record`, e.g.
            Gem-Miner's density trajectory) to ``metadata.extra["criterion_record"]`` (one
            record, or a list of one per selection that recorded).

    Returns:
        A new :class:`~bert_tickets.ticket.TicketMask` with exactly ``round(sparsity · N)``
        pruned weights.

    Raises:
        ValueError: unknown method/scope, bad sparsity or cap, or a ticket that does not fit
            the model.
    """
    criterion = get_criterion(method)
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    if granularity != "weight":
        return _prune_structured(
            ticket, model, sparsity, criterion, method, seed, granularity, min_per_layer, max_tensor_sparsity, scope, **context
        )
    if criterion.granularities is not None:
        raise ValueError(f"criterion {method} scores {'/'.join(criterion.granularities)} groups: use a structured --granularity")
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
    targets = ticket.validate(model)
    missing = [n for n in ticket.masks if n not in targets]
    if missing:
        raise ValueError(f"cannot prune: the model has no parameter for mask key {missing[0]!r}")
    weights = {n: targets[n] for n in ticket.masks}
    shapes = {n: w.shape for n, w in weights.items()}
    new = ticket.masks
    records = []
    steps = criterion.sparsity_steps(ticket.sparsity, sparsity, **context)
    for step_sparsity in steps:  # one selection, or a criterion's rounds (SynFlow) re-scoring the survivors
        scorer = criterion.scorer(
            weights,
            seed=seed,
            model=model,
            masks=new,
            sparsity=step_sparsity,
            scope=scope,
            max_tensor_sparsity=max_tensor_sparsity,
            **context,
        )
        new = select(shapes, scorer, step_sparsity, new, scope, max_tensor_sparsity)
        if record := criterion.record(scorer):
            records.append(record)
    meta = copy.deepcopy(ticket.metadata)
    add_cost(meta, criterion.passes(len(steps), **context))
    meta.extra.pop("criterion_record", None)  # a parent's record describes the parent's mask
    if records:
        meta.extra["criterion_record"] = records[0] if len(records) == 1 else records
    meta.level += 1
    meta.target_sparsity = sparsity
    meta.criterion = method
    meta.pruning_scope = scope
    meta.max_tensor_sparsity = max_tensor_sparsity
    return TicketMask(new, meta)


def _prune_structured(ticket, model, sparsity, criterion, method, seed, granularity, min_per_layer, cap, scope, **context) -> TicketMask:
    """:func:`prune_ticket` for a structured granularity (see :mod:`.structured`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if criterion.granularities is not None and granularity not in criterion.granularities:
        raise ValueError(f"criterion {method} scores {'/'.join(criterion.granularities)} groups, not granularity {granularity}")
    if cap is not None:
        raise ValueError("--max_tensor_sparsity applies to unstructured (weight) pruning only")
    if criterion.sparsity_steps(ticket.sparsity, sparsity, **context) != [sparsity]:
        raise ValueError(f"criterion {method} re-scores iteratively; structured granularities take one-shot criteria")
    targets = ticket.validate(model)
    weights = {n: targets[n] for n in ticket.masks}
    shapes = {n: w.shape for n, w in weights.items()}
    scorer = criterion.scorer(weights, seed=seed, model=model, masks=ticket.masks, sparsity=sparsity, scope="global", **context)
    if granularity == "2:4":
        if abs(sparsity - 0.5) > 1e-12:
            raise ValueError(f"granularity 2:4 prunes exactly half of every block of 4: sparsity must be 0.5, got {sparsity}")
        new = select_n_of_m(shapes, scorer, ticket.masks, 2, 4)
    else:
        heads = getattr(getattr(model, "config", None), "num_attention_heads", None)
        if heads is None:
            raise ValueError("structured pruning needs the model's config.num_attention_heads")
        new = dict(ticket.masks)
        for kind in granularity.split("+"):
            new = select_groups(shapes, scorer, sparsity, new, kind=kind, num_heads=heads, min_per_layer=min_per_layer, scope=scope)
    meta = copy.deepcopy(ticket.metadata)
    add_cost(meta, criterion.passes(1, **context))
    meta.extra.pop("criterion_record", None)
    meta.extra["granularity"] = granularity
    if granularity != "2:4":
        meta.extra["group_sparsity"] = sparsity
        meta.extra["min_groups_per_layer"] = min_per_layer
        # achieved counts (layer-wise rounding can differ from round(s x all groups))
        meta.extra["groups_pruned"] = {kind: list(pruned_groups(new, heads, kind)) for kind in granularity.split("+")}
    meta.level += 1
    meta.target_sparsity = sparsity
    meta.criterion = method
    meta.pruning_scope = "global" if granularity == "2:4" else scope
    meta.max_tensor_sparsity = None
    return TicketMask(new, meta)


#: Keys of a ticket's cost record (``TicketMetadata.cost``): what producing its mask
#: spent, summed over its history — optimizer steps of training (IMP levels, Gem-Miner's score
#: training, rewinding) and forward / backward passes spent on scoring (SNIP, SynFlow).
COST_KEYS = ("train_steps", "score_forward", "score_backward")


def add_cost(metadata, cost: dict[str, int]) -> dict[str, int]:
    """Add ``cost`` (keys of :data:`COST_KEYS`, non-negative ints) to ``metadata.cost``
    (created with zeros when absent; nothing is written for an empty ``cost`` on a ticket
    without a record) and return the record.

    Raises:
        ValueError: an unknown key or a negative count.
    """
    if not cost and not metadata.cost:
        return {}
    if not metadata.cost:
        metadata.cost = dict.fromkeys(COST_KEYS, 0)
    record = metadata.cost
    for key, value in cost.items():
        if key not in COST_KEYS or int(value) < 0:
            raise ValueError(f"cost: {key}={value} is not one of {', '.join(COST_KEYS)} with a count >= 0")
        record[key] = int(record.get(key, 0)) + int(value)
    return record


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
    given = {"prune_step": prune_step, "prune_fraction": prune_fraction}
    accepted = option_names(SCHEDULES.get(schedule).Options)
    return make_schedule(schedule, target_sparsity, max_levels, **{k: v for k, v in given.items() if k in accepted}).preview()
