"""Linear schedule: level ``L`` prunes ``L × prune_step`` of the *original* prunable weights
(10%, 20%, …, 90%) — BERT-Tickets' code (``LT_glue.py`` calls torch's pruning with amount
``1 / (10 − k)`` of the remaining weights) and the sparsities of Chen et al. 2020, Table 2."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .base import StaticSchedule, register_schedule


@dataclass
class LinearOptions:
    """Options of the ``linear`` schedule."""

    #: In every run's hash (at its default under another schedule), as runs recorded it before
    #: schedule options were declared by the schedule.
    hash_always: ClassVar[bool] = True

    prune_step: float = field(default=0.1, metadata={"help": "sparsity added per level, a fraction in (0, 1) (BERT-Tickets: 0.1)"})


@register_schedule
class LinearSchedule(StaticSchedule):
    """Sparsity ``L × prune_step`` at level ``L``, clipped to the target.

    Args:
        prune_step: sparsity added per level, a fraction in (0, 1).
        target_sparsity, max_levels: see :class:`~.base.SparsitySchedule`.

    Raises:
        ValueError: ``prune_step`` outside (0, 1); see the base class.
    """

    name = "linear"
    Options = LinearOptions
    summary = "level L has sparsity L x --prune_step (BERT-Tickets' code)"

    def __init__(self, target_sparsity: float = 0.9, max_levels: int | None = None, prune_step: float = 0.1):
        super().__init__(target_sparsity, max_levels)
        if not (0.0 < prune_step < 1.0):
            raise ValueError(f"prune_step must be a fraction in (0, 1), got {prune_step}")
        self.prune_step = prune_step

    def unclipped(self, level: int) -> float:
        return round(level * self.prune_step, 10)
