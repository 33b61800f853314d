"""Adaptive schedule: the next level's sparsity chosen from how the last levels went.

Paul et al. 2022 (*Unmasking the Lottery Ticket Hypothesis*, Section 5) observe that at the
sparsities where IMP still finds matching tickets, the trained networks of successive levels
are linearly connected (zero error barrier), and that a level which is not leaves the path of
good tickets; they use this to take larger pruning steps while it holds. The rule below is
ours (the paper's heuristic is for CIFAR networks and is not specified for BERT):

* A finished pruned level is **good** when it is matching and, if its barrier to the level it
  was pruned from is known, that barrier is at most the **limit**. Dense (level 0) is good.
* The limit is **calibrated** by default: ``barrier_scale`` × the dense network's own barrier —
  its instability, the barrier between two dense copies trained from the same start (the rewind
  point) with different data orders, measured once per run at level 0 and recorded as level 0's
  barrier. With ``barrier_scale`` ``None`` it is the absolute ``max_barrier`` (the rule before
  issue 20). Barriers count only for levels at or above ``barrier_above`` (a sparsity); below
  it, matching alone decides.
* After a good level the step grows: ``step × step_growth`` (capped by what is left to the
  target), and the next level is pruned **from that level**.
* After a level that is not good the step shrinks: ``step × step_shrink``, and the next level
  is pruned **from the last good level** (a step back: the failed level's mask is not used).
* The run stops when a good level reaches ``target_sparsity``, when the step falls below
  ``min_step`` (the highest good level is then the answer), or after ``max_levels`` levels.

Constants and why: ``initial_step`` 0.2 (two linear 10% levels at once: BERT's early levels
match easily in Chen et al. 2020, Table 2, so a cheap start); ``step_growth`` 1.5 and
``step_shrink`` 0.5 (shrinking faster than growing makes the search converge, as in a
backtracking line search); ``min_step`` 0.025 (a quarter of the linear schedule's 10% step,
finer than the sparsity grid Chen et al. report); ``max_barrier`` 0.01 (one point of accuracy /
Pearson, the scale of the matching tolerance with one seed). ``barrier_scale`` 1.5: the absolute
limit 0.01 was below the dense network's own barrier on real STS-B (0.026 Pearson from θ0,
docs/results.md, session 6), so every pruned level "failed" a test the dense network fails
itself and the schedule kept stepping back (issue 20); a pruned level is linearly connected to
its parent in the sense that matters here when its barrier is of the order of the dense
network's SGD-noise barrier, and 1.5 leaves room for the noise of a single pair of data orders
that measures the latter. ``barrier_above`` 0.0: barriers count at every sparsity unless told
otherwise. All are options of ``find``.

The decisions depend only on the history, so a resumed run makes the same ones. ``find`` logs
each one after every level (:meth:`AdaptiveSchedule.explain`: the barrier measured, the limit,
whether the step grew or shrank, and the level the next one is pruned from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .base import LevelOutcome, SparsitySchedule, register_schedule


@dataclass
class AdaptiveOptions:
    """Options of the ``adaptive`` schedule (module docstring for the defaults and why)."""

    initial_step: float = field(default=0.2, metadata={"help": "sparsity added by level 1, a fraction in (0, 1)"})
    step_growth: float = field(default=1.5, metadata={"help": "step factor after a good level (> 1)"})
    step_shrink: float = field(default=0.5, metadata={"help": "step factor after a miss or a barrier, in (0, 1)"})
    min_step: float = field(default=0.025, metadata={"help": "stop when the step falls below this fraction"})
    max_barrier: float = field(
        default=0.01,
        metadata={"help": "with barrier_scale none: largest error barrier (primary metric units) of a good level to its parent level"},
    )
    barrier_scale: float | None = field(
        default=1.5,
        metadata={"help": "limit = this x the dense network's own barrier (measured once per run at level 0); none: max_barrier"},
    )
    barrier_above: float = field(default=0.0, metadata={"help": "barriers count only for levels at or above this sparsity (a fraction)"})

    def hash_dict(self) -> dict:
        """The options as they enter a run's hash: the calibration's options only when they change
        the rule (so adaptive runs recorded with the absolute limit keep their hash with
        ``barrier_scale=none``)."""
        out = asdict(self)
        if out["barrier_scale"] is None:
            del out["barrier_scale"]
        if out["barrier_above"] == 0.0:
            del out["barrier_above"]
        return out


@register_schedule
class AdaptiveSchedule(SparsitySchedule):
    """See the module docstring for the rule.

    Args:
        target_sparsity, max_levels: see :class:`~.base.SparsitySchedule`.
        initial_step: sparsity added by level 1, a fraction in (0, 1).
        step_growth: factor (> 1) on the step after a good level.
        step_shrink: factor in (0, 1) on the step after a level that is not good.
        min_step: stop when the step falls below this fraction (> 0).
        max_barrier: largest barrier (in the primary metric) of a good level (>= 0).

    Raises:
        ValueError: an option outside its range.
    """

    name = "adaptive"
    Options = AdaptiveOptions
    summary = "larger steps after a matching, linearly connected level; a step back and a smaller step otherwise (after Paul et al. 2022)"
    adaptive = True
    uses_barrier = True

    def __init__(
        self,
        target_sparsity: float = 0.9,
        max_levels: int | None = None,
        initial_step: float = 0.2,
        step_growth: float = 1.5,
        step_shrink: float = 0.5,
        min_step: float = 0.025,
        max_barrier: float = 0.01,
        barrier_scale: float | None = 1.5,
        barrier_above: float = 0.0,
    ):
        super().__init__(target_sparsity, max_levels)
        checks = (
            ("initial_step", initial_step, 0.0 < initial_step < 1.0, "in (0, 1)"),
            ("step_growth", step_growth, step_growth > 1.0, "> 1"),
            ("step_shrink", step_shrink, 0.0 < step_shrink < 1.0, "in (0, 1)"),
            ("min_step", min_step, 0.0 < min_step <= initial_step, "in (0, initial_step]"),
            ("max_barrier", max_barrier, max_barrier >= 0.0, ">= 0"),
            ("barrier_scale", barrier_scale, barrier_scale is None or barrier_scale > 0.0, "> 0 (or none)"),
            ("barrier_above", barrier_above, 0.0 <= barrier_above < 1.0, "in [0, 1)"),
        )
        for name, value, ok, allowed in checks:
            if not ok:
                raise ValueError(f"adaptive schedule: {name} must be {allowed}, got {value}")
        self.initial_step, self.step_growth, self.step_shrink = initial_step, step_growth, step_shrink
        self.min_step, self.max_barrier = min_step, max_barrier
        self.barrier_scale, self.barrier_above = barrier_scale, barrier_above

    @property
    def calibrated(self) -> bool:
        """Whether the limit is relative to the dense network's own barrier (which ``find`` then
        measures at level 0)."""
        return self.barrier_scale is not None

    def limit(self, history: Sequence[LevelOutcome]) -> float | None:
        """The barrier limit of a good level: ``barrier_scale`` × level 0's barrier (the dense
        instability), or ``max_barrier``; ``None`` while the dense barrier is unknown (then only
        matching decides)."""
        if not self.calibrated:
            return self.max_barrier
        dense = getattr(history[0], "barrier", None) if history else None
        return None if dense is None else self.barrier_scale * dense

    def good(self, outcome: LevelOutcome, limit: float | None = None) -> bool:
        """Matching and, when known and the level is at or above ``barrier_above``, a barrier of at
        most ``limit`` (default ``max_barrier``); dense always."""
        if outcome.level == 0:
            return True
        barrier = getattr(outcome, "barrier", None)
        limit = self.max_barrier if limit is None and not self.calibrated else limit
        counts = barrier is not None and limit is not None and outcome.sparsity >= self.barrier_above - 1e-12
        return bool(outcome.matching) and (not counts or barrier <= limit + 1e-12)

    def _state(self, history: Sequence[LevelOutcome]) -> tuple[LevelOutcome, float]:
        """The last good level and the current step, replayed from the history."""
        best, step = history[0], self.initial_step
        limit = self.limit(history)
        for outcome in history[1:]:
            if self.good(outcome, limit):
                best = outcome
                step = step * self.step_growth
            else:
                step = step * self.step_shrink
        return best, step

    def next(self, history):
        if not history:
            return 0.0
        if self.max_levels is not None and len(history) > self.max_levels:
            return None
        best, step = self._state(history)
        if best.target_sparsity >= self.target_sparsity - 1e-12 or step < self.min_step - 1e-12:
            return None
        return round(min(best.target_sparsity + step, self.target_sparsity), 10)

    def explain(self, history):
        """After the last level of ``history``: whether it was good (matching; its barrier to the
        level it was pruned from against ``max_barrier``), how the step changed, the level the
        next mask is pruned from (a step back names it), and the next sparsity or why the run
        stops. Sparsities and steps are fractions; the barrier is in primary-metric units."""
        if not history:
            return None
        last = history[-1]
        best, step = self._state(history)
        head = f"adaptive schedule after level {last.level} (sparsity {last.sparsity:.4f}): "
        if last.level == 0:
            dense = getattr(last, "barrier", None)
            own = f"its own barrier (instability) {dense:.4f}, so the limit is {self.limit(history):.4f}; " if dense is not None else ""
            head += f"dense; {own}step {step:.4f}"
        else:
            prev = self._state(history[:-1])[1]
            barrier = getattr(last, "barrier", None)
            value = self.limit(history)
            limit = "no limit (dense barrier unknown)" if value is None else f"limit {value:.4f}"
            if self.calibrated and value is not None:
                limit += f" = {self.barrier_scale:g} x the dense barrier {value / self.barrier_scale:.4f}"
            if barrier is not None and last.sparsity < self.barrier_above - 1e-12:
                limit += f"; not counted below sparsity {self.barrier_above:g}"
            shown = "barrier unknown" if barrier is None else f"barrier {barrier:.4f}"
            if self.good(last, value):
                why = f"matching, {shown} <= {limit}" if barrier is not None else f"matching, {shown}"
                head += f"{why}: good; step grew {prev:.4f} x {self.step_growth:g} = {step:.4f}, continues from level {best.level}"
            else:
                if not last.matching:
                    why = f"{'matching undefined' if last.matching is None else 'not matching'} ({shown}, {limit})"
                else:
                    why = f"matching, {shown} > {limit}"
                head += (
                    f"{why}: not good; step shrank {prev:.4f} x {self.step_shrink:g} = {step:.4f}, "
                    f"stepped back to level {best.level} (sparsity {best.sparsity:.4f})"
                )
        target = self.next(history)
        if target is not None:
            capped = " (capped at the target)" if best.target_sparsity + step > self.target_sparsity + 1e-12 else ""
            return f"{head}; next level at sparsity {target:.4f}{capped}"
        if self.max_levels is not None and len(history) > self.max_levels:
            return f"{head}; stop: --max_levels {self.max_levels} reached"
        if best.target_sparsity >= self.target_sparsity - 1e-12:
            return f"{head}; stop: level {best.level} reached the target sparsity {self.target_sparsity:.4f}"
        return (
            f"{head}; stop: step {step:.4f} < min_step {self.min_step:.4f}, "
            f"the highest good level is {best.level} (sparsity {best.sparsity:.4f})"
        )

    def base_level(self, history):
        """The last good level: the next mask is pruned from its ticket and trained weights."""
        return self._state(history)[0].level if history else None
