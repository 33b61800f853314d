"""The schedule interface and its registry: *how many* weights each IMP level prunes.

A schedule is an object whose :meth:`SparsitySchedule.next` sees the history of finished levels
and returns the next level's target sparsity, or ``None`` to stop (the interface of
torch.ao.pruning's schedulers, which see the sparsifier's history). The IMP loop is
``while (s := schedule.next(history)) is not None``, so an adaptive schedule — one whose next
sparsity depends on the last level's result — fits without changing the loop.

Adding a schedule is one file in this folder defining a subclass decorated with
:func:`register_schedule`, plus one import line in ``schedules/__init__.py``; the contract
tests then check it (starts at 0.0, monotone, never past the target, stops).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, ClassVar, Protocol

from ..._registry import Registry, parse_options


class LevelOutcome(Protocol):
    """What a schedule may read about a finished level (e.g. :class:`bert_tickets.results.LevelResult`)."""

    level: int
    target_sparsity: float
    sparsity: float
    mean: float
    matching: bool | None
    # optional: ``barrier`` (float | None), the error barrier to the level it was pruned from


class SparsitySchedule:
    """Target sparsity of every IMP level, chosen level by level.

    Args:
        target_sparsity: stop after the level that reaches this fraction, in [0, 1).
        max_levels: stop after this many pruned levels (level 0 is dense), or ``None``.

    Raises:
        ValueError: target outside [0, 1), negative ``max_levels``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: ``True`` when :meth:`next` reads the results in ``history`` (not only its length): such a
    #: schedule cannot be listed before the run (:meth:`preview` raises).
    adaptive: ClassVar[bool] = False
    #: ``True`` when :meth:`next` reads each level's ``barrier`` (the error barrier between its
    #: trained network and that of the level it was pruned from): the IMP loop then computes it.
    uses_barrier: ClassVar[bool] = False
    #: ``True`` when the schedule reads the dense network's own barrier (its instability) as
    #: level 0's ``barrier``: the IMP loop then measures it once, at level 0 (an instance may set
    #: it from its options, as the adaptive schedule's ``barrier_scale`` does).
    calibrated: bool = False
    #: The options dataclass (defaults, ``help`` metadata, constructor keyword arguments of the
    #: same names); ``None`` for a schedule without options. ``find`` reaches it as
    #: ``--schedule_options KEY=VALUE`` (or ``--KEY VALUE``).
    Options: ClassVar[type | None] = None

    @classmethod
    def options(cls, given: Mapping[str, Any] | None = None) -> Any:
        """The schedule's :attr:`Options` from ``given`` (name or alias -> value).

        Raises:
            ValueError: an unknown option or a wrong type (one line).
        """
        return parse_options(cls.Options, given, what=f"schedule {cls.name}")

    def __init__(self, target_sparsity: float = 0.9, max_levels: int | None = None):
        if not (0.0 <= target_sparsity < 1.0) or math.isnan(target_sparsity):
            raise ValueError(f"sparsity must be a fraction in [0, 1), got {target_sparsity}")
        if max_levels is not None and max_levels < 0:
            raise ValueError(f"max_levels must be >= 0, got {max_levels}")
        self.target_sparsity = target_sparsity
        self.max_levels = max_levels

    def next(self, history: Sequence[LevelOutcome]) -> float | None:
        """Target sparsity (a fraction) of level ``len(history)``, or ``None`` when the run is
        over. Level 0 is always dense: ``next([]) == 0.0``."""
        raise NotImplementedError

    def base_level(self, history: Sequence[LevelOutcome]) -> int | None:
        """The finished level whose ticket and trained weights the next level is pruned from;
        ``None`` (the default) means the last one. An adaptive schedule may step back to an
        earlier level (the IMP loop then keeps every level's trained weights)."""
        return None

    def explain(self, history: Sequence[LevelOutcome]) -> str | None:
        """The schedule's decision after the last level of ``history`` in words (one line: what
        it read, what it does next and why), for the run's log; ``None`` (the default) when
        there is nothing to explain (a static schedule's levels are known in advance)."""
        return None

    def beyond(self, level: int) -> float | None:
        """Sparsity that level ``level`` *would* have if the run went on past its stop (used to
        prune the next level's mask at the end of a run, so the run can later be extended);
        ``None`` when the schedule cannot say (adaptive)."""
        return None

    def preview(self) -> list[float]:
        """Every level's target sparsity, level 0 first (non-adaptive schedules only).

        Raises:
            ValueError: an adaptive schedule (its levels depend on results).
        """
        if self.adaptive:
            raise ValueError(f"the {self.name} schedule is adaptive: its levels are known only as the run goes")
        levels: list[float] = []
        while (s := self.next(_Placeholder.history(levels))) is not None:
            levels.append(s)
        return levels


class _Placeholder:
    """History entries standing in for finished levels when previewing a static schedule."""

    def __init__(self, level: int, target: float):
        self.level, self.target_sparsity, self.sparsity, self.mean, self.matching = level, target, target, math.nan, None

    @classmethod
    def history(cls, levels: Sequence[float]) -> list[_Placeholder]:
        return [cls(i, s) for i, s in enumerate(levels)]


class StaticSchedule(SparsitySchedule):
    """A schedule whose level ``L`` sparsity depends on ``L`` only (:meth:`unclipped`), clipped
    to the target; it stops after the level that reaches the target or after ``max_levels``."""

    def unclipped(self, level: int) -> float:
        """Sparsity of ``level`` before clipping, a fraction rounded to 10 decimals (may be >= 1
        past the end of a linear schedule)."""
        raise NotImplementedError

    def at(self, level: int) -> float:
        """Sparsity of ``level`` clipped to the target."""
        return 0.0 if level == 0 else min(self.unclipped(level), round(self.target_sparsity, 10))

    def next(self, history):
        level = len(history)
        if level == 0:
            return 0.0
        if self.at(level - 1) >= self.target_sparsity - 1e-12:
            return None
        if self.max_levels is not None and level > self.max_levels:
            return None
        return self.at(level)

    def beyond(self, level):
        return self.unclipped(level)


#: name -> schedule class.
SCHEDULES: Registry[type[SparsitySchedule]] = Registry("schedule")


def register_schedule(cls: type[SparsitySchedule]) -> type[SparsitySchedule]:
    """Class decorator: register ``cls`` under ``cls.name`` (see :class:`~bert_tickets._registry.Registry`).

    Raises:
        ValueError: empty name or a name already registered by another class.
    """
    return SCHEDULES.register(cls)


def schedule_names() -> list[str]:
    """Names of the registered schedules, in registration order."""
    return SCHEDULES.names()


def make_schedule(name: str, target_sparsity: float = 0.9, max_levels: int | None = None, **options: Any) -> SparsitySchedule:
    """Build the schedule registered as ``name`` with its ``options`` (fields of its
    :attr:`~SparsitySchedule.Options`, typed or as text; the others keep their defaults).

    Raises:
        ValueError: unknown schedule, an option it does not have, or its own validation.
    """
    cls = SCHEDULES.get(name)
    parsed = cls.options(options)
    return cls(target_sparsity=target_sparsity, max_levels=max_levels, **(asdict(parsed) if parsed is not None else {}))


def schedule_hash_entries(name: str, options: Any) -> dict[str, Any]:
    """The schedule options as they enter a run's hash: the chosen schedule's options (field ->
    value), plus, for every other registered schedule whose ``Options.hash_always`` is set, its
    options at their defaults — the layout of runs recorded before schedule options were declared
    by the schedule (``prune_step`` and ``prune_fraction`` were then in every run's hash), so
    those runs keep their hashes.

    Raises:
        ValueError: unknown schedule.
    """
    out: dict[str, Any] = {}
    for other in SCHEDULES.names():
        options_cls = SCHEDULES.get(other).Options
        if other != name and options_cls is not None and getattr(options_cls, "hash_always", False):
            default = options_cls()
            out.update(default.hash_dict() if hasattr(default, "hash_dict") else asdict(default))
    SCHEDULES.get(name)
    if options is not None:
        out.update(options.hash_dict() if hasattr(options, "hash_dict") else asdict(options))
    return out
