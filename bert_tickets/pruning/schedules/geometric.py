"""Geometric schedule: each level prunes ``prune_fraction`` of the *remaining* weights, so level
``L`` has sparsity ``1 − (1 − prune_fraction)^L`` (10%, 19%, 27.1%, …) — the rule written in
Chen et al. 2020's algorithm box ("prune 10% of remaining weights") and open_lth's default
strategy. The paper's reported sparsities (Table 2, multiples of 10%) come from its code's
linear schedule instead (see :mod:`.linear`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .base import StaticSchedule, register_schedule


@dataclass
class GeometricOptions:
    """Options of the ``geometric`` schedule."""

    #: In every run's hash (at its default under another schedule), as runs recorded it before
    #: schedule options were declared by the schedule.
    hash_always: ClassVar[bool] = True

    prune_fraction: float = field(
        default=0.1,
        metadata={"help": "fraction of the remaining weights pruned per level, in (0, 1) (open_lth: 0.2; the paper's box: 0.1)"},
    )


@register_schedule
class GeometricSchedule(StaticSchedule):
    """Sparsity ``1 − (1 − prune_fraction)^L`` at level ``L``, clipped to the target.

    Args:
        prune_fraction: fraction of the remaining weights pruned per level, in (0, 1).
        target_sparsity, max_levels: see :class:`~.base.SparsitySchedule`.

    Raises:
        ValueError: ``prune_fraction`` outside (0, 1); see the base class.
    """

    name = "geometric"
    Options = GeometricOptions
    summary = "each level prunes --prune_fraction of the remaining weights (the paper's algorithm box, open_lth)"

    def __init__(self, target_sparsity: float = 0.9, max_levels: int | None = None, prune_fraction: float = 0.1):
        super().__init__(target_sparsity, max_levels)
        if not (0.0 < prune_fraction < 1.0):
            raise ValueError(f"prune_fraction must be a fraction in (0, 1), got {prune_fraction}")
        self.prune_fraction = prune_fraction

    def unclipped(self, level: int) -> float:
        return round(1.0 - (1.0 - self.prune_fraction) ** level, 10)
