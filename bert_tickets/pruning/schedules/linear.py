"""Linear schedule: level ``L`` prunes ``L × prune_step`` of the *original* prunable weights
(10%, 20%, …, 90%) — BERT-Tickets' code (``LT_glue.py`` calls torch's pruning with amount
``1 / (10 − k)`` of the remaining weights) and the sparsities of Chen et al. 2020, Table 2.

``start_sparsity`` S (issue 20, item 5: "a start from the highest matching magnitude-of-θ0
sparsity") puts level 1 at S and level L at ``S + (L − 1) × prune_step``: the run skips the
levels below S. Level 1's mask is pruned one-shot from the trained dense level (the same
magnitude criterion), so the levels below S are never trained. Where S comes from is the
caller's: the route of issue 20 takes the highest sparsity at which the magnitude of θ0 matches
(``bert-tickets prune-at-init --criterion magnitude``), whose fine-tunes are that route's cost
too. Unset, the schedule and every run's hash are as before."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from .base import StaticSchedule, register_schedule


@dataclass
class LinearOptions:
    """Options of the ``linear`` schedule."""

    #: In every run's hash (at its default under another schedule), as runs recorded it before
    #: schedule options were declared by the schedule.
    hash_always: ClassVar[bool] = True

    prune_step: float = field(default=0.1, metadata={"help": "sparsity added per level, a fraction in (0, 1) (BERT-Tickets: 0.1)"})
    start_sparsity: float | None = field(
        default=None,
        metadata={"help": "level 1's sparsity (a fraction in (0, 1)); later levels add prune_step (default: prune_step)"},
    )

    def hash_dict(self) -> dict:
        """The options as they enter a run's hash: ``start_sparsity`` only when set (earlier runs keep their hash)."""
        out = asdict(self)
        if out["start_sparsity"] is None:
            del out["start_sparsity"]
        return out


@register_schedule
class LinearSchedule(StaticSchedule):
    """Sparsity ``L × prune_step`` at level ``L`` (``start_sparsity + (L − 1) × prune_step`` with
    a start), clipped to the target.

    Args:
        prune_step: sparsity added per level, a fraction in (0, 1).
        start_sparsity: level 1's sparsity, a fraction in (0, 1), or ``None``.
        target_sparsity, max_levels: see :class:`~.base.SparsitySchedule`.

    Raises:
        ValueError: ``prune_step`` or ``start_sparsity`` outside (0, 1), or ``start_sparsity``
            above the target (level 1 would be clipped to the target, not started at S); see the
            base class.
    """

    name = "linear"
    Options = LinearOptions
    summary = "level L has sparsity L x --prune_step (BERT-Tickets' code)"

    def __init__(
        self, target_sparsity: float = 0.9, max_levels: int | None = None, prune_step: float = 0.1, start_sparsity: float | None = None
    ):
        super().__init__(target_sparsity, max_levels)
        if not (0.0 < prune_step < 1.0):
            raise ValueError(f"prune_step must be a fraction in (0, 1), got {prune_step}")
        if start_sparsity is not None and not (0.0 < start_sparsity < 1.0):
            raise ValueError(f"start_sparsity must be a fraction in (0, 1), got {start_sparsity}")
        if start_sparsity is not None and start_sparsity > self.target_sparsity + 1e-12:
            raise ValueError(
                f"start_sparsity {start_sparsity} is above the target sparsity {self.target_sparsity}: raise --target_sparsity"
            )
        self.prune_step = prune_step
        self.start_sparsity = start_sparsity

    def unclipped(self, level: int) -> float:
        if self.start_sparsity is None or level == 0:
            return round(level * self.prune_step, 10)
        return round(self.start_sparsity + (level - 1) * self.prune_step, 10)
