"""Pruning: exact-count selection (:mod:`.select`), criteria that score weights (:mod:`.criteria`,
a registry), schedules that choose each level's sparsity from the history (:mod:`.schedules`, a
registry), ``prune_ticket`` and layer-collapse checks (:mod:`.collapse`).

Layer: imports :mod:`bert_tickets.ticket` and :mod:`bert_tickets._io` only.
"""

from .collapse import collapse_options_hint, collapsed_tensors, low_scale_tensors, pruned_rows_columns
from .criteria import CRITERIA as CRITERIA_REGISTRY
from .criteria import (
    NEEDS,
    PruningCriterion,
    at_init_criteria,
    criterion_names,
    criterion_options,
    get_criterion,
    global_magnitude_pruning,
    layerwise_magnitude_pruning,
    random_pruning,
    register_criterion,
)
from .prune import COST_KEYS, add_cost, prune_ticket, sparsity_schedule
from .schedules import SCHEDULES as SCHEDULES_REGISTRY
from .schedules import SparsitySchedule, StaticSchedule, make_schedule, register_schedule, schedule_hash_entries, schedule_names
from .select import SCOPES, select, target_count

__all__ = [
    "COST_KEYS",
    "NEEDS",
    "at_init_criteria",
    "criterion_options",
    "schedule_hash_entries",
    "CRITERIA_REGISTRY",
    "SCHEDULES_REGISTRY",
    "SCOPES",
    "PruningCriterion",
    "SparsitySchedule",
    "add_cost",
    "StaticSchedule",
    "collapse_options_hint",
    "collapsed_tensors",
    "criterion_names",
    "get_criterion",
    "global_magnitude_pruning",
    "layerwise_magnitude_pruning",
    "low_scale_tensors",
    "make_schedule",
    "prune_ticket",
    "pruned_rows_columns",
    "random_pruning",
    "register_criterion",
    "register_schedule",
    "schedule_names",
    "select",
    "sparsity_schedule",
    "target_count",
]
