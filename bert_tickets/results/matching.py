"""The matching rule and the level record (Chen et al. 2020, Section 3): the one place a level
is judged *matching*."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..tasks import TrivialBaseline

#: Slack for float comparisons of metrics (a level equal to dense − margin is matching).
EPS = 1e-12


@dataclass
class LevelResult:
    """One row of the IMP summary: a level's sparsity and its primary metric across seeds.

    Attributes:
        level: IMP level (0 = dense).
        target_sparsity, sparsity: the schedule's target and the ticket's achieved sparsity
            (fractions).
        num_pruned, num_prunable: weight counts.
        metric: name of the task's primary metric.
        mean, std: mean and sample std (``None`` for one seed) of the metric over seeds.
        per_seed: seed (as a string) -> metric.
        delta, matching: Δ vs the dense level and the matching decision (set by :func:`summarize`).
        elapsed_s: wall time of the level's fine-tunes in seconds.
        nonzero_pruned_weights: pruned weights found non-zero after training (always 0).
        collapsed_tensors: tensor -> sparsity of tensors pruned beyond the collapse threshold.
        beats_trivial: whether ``mean`` beats the task's trivial baseline (set by
            :func:`summarize` when the baseline is known, else ``None``).
        near_constant: how many of the level's seeds predict (almost) a constant on the
            evaluation split (:func:`bert_tickets.tasks.metrics.prediction_spread`; ``None`` when
            not measured, e.g. SQuAD/MLM or runs recorded before it).
        train_loss: mean over seeds of the final training loss (``None`` when not recorded).
        super_ticket: a pruned level whose mean is *above* dense by more than the matching margin
            (one dense standard deviation, or ``tolerance`` with one seed) — Liang et al. 2021's
            super ticket (a subnetwork that outperforms the full model), counted only beyond the
            dense seed spread, since a gain inside it ranks nothing (set by :func:`verdicts`;
            ``None`` when dense did not learn).
        barrier, parent_level: with a schedule that reads barriers (``adaptive``), the error
            barrier (primary metric) between this level's trained network and that of the level
            its mask was pruned from, and that level. (The barrier from level L − 1 is another
            column of the summary, ``barrier_successive``, written by ``stability --successive``.)
    """

    level: int
    target_sparsity: float
    sparsity: float
    num_pruned: int
    num_prunable: int
    metric: str
    mean: float
    std: float | None
    per_seed: dict[str, float]
    delta: float | None = None
    matching: bool | None = None
    elapsed_s: float = 0.0
    nonzero_pruned_weights: int = 0
    collapsed_tensors: dict[str, float] = field(default_factory=dict)
    beats_trivial: bool | None = None
    barrier: float | None = None
    parent_level: int | None = None
    near_constant: int | None = None
    train_loss: float | None = None
    super_ticket: bool | None = None


def near_constant_count(per_seed_metrics) -> int | None:
    """How many of the metric dicts ``per_seed_metrics`` (one per seed or cell) say their model
    predicts (almost) a constant (``near_constant`` = 1.0); ``None`` when none measured it."""
    flags = [m["near_constant"] for m in per_seed_metrics if m.get("near_constant") is not None]
    return int(sum(f >= 0.5 for f in flags)) if flags else None


def matching_margin(dense_std: float | None, n_seeds: int, tolerance: float) -> tuple[float, str]:
    """The margin below the dense metric that still counts as matching, and the rule in words.

    Chen et al. 2020, Section 3: matching = within one standard deviation of the full model, read
    one-sidedly (a subnetwork at or above dense is matching). ``dense_std`` is the sample std
    across seeds (``None`` for a single seed, then ``tolerance`` is the margin).
    """
    if dense_std is not None:
        return dense_std, f"metric >= dense - one standard deviation of dense ({dense_std:.4f}, {n_seeds} seeds)"
    return tolerance, f"metric >= dense - {tolerance} (--tolerance; single seed)"


def is_matching(value: float, dense_mean: float, margin: float) -> bool:
    """``value >= dense_mean - margin`` (with :data:`EPS` slack)."""
    return bool(value >= dense_mean - margin - EPS)


def is_super_ticket(value: float, dense_mean: float, margin: float) -> bool:
    """``value > dense_mean + margin`` (with :data:`EPS` slack): above dense beyond its seed
    spread (Liang et al. 2021, *Super Tickets*; :class:`LevelResult`)."""
    return bool(value > dense_mean + margin + EPS)


def dense_not_learned(metric: str, dense_mean: float, trivial: TrivialBaseline | None) -> str | None:
    """The one rule for "dense did not learn": ``None`` when the dense mean beats the task's
    trivial baseline (or no baseline is known), else the matching rule's text saying that matching
    is undefined (no level or cell can be called a ticket)."""
    if trivial is None or trivial.beaten_by(dense_mean):
        return None
    return f"undefined: dense did not learn ({metric} {dense_mean:.4f} does not beat {_words(trivial)})"


def verdicts(results: Sequence[LevelResult], tolerance: float, trivial: TrivialBaseline | None = None) -> list[LevelResult]:
    """The levels judged: new rows (``results`` are not changed) with Δ vs dense, the matching
    decision, the super-ticket flag (pruned levels above dense by more than the margin) and, with
    the task's trivial baseline, ``beats_trivial``; ``[]`` for no levels.

    Matching (Chen et al. 2020, Section 3): a level is matching when its mean metric is at
    least the dense (level-0) mean minus one standard deviation of the dense runs across seeds
    (sample std, ``ddof=1``) when more than one seed was run, else minus ``tolerance``. When the
    dense level does not beat the trivial baseline (:func:`dense_not_learned`) the dense model did
    not learn and every ``matching`` is ``None``.
    """
    if not results:
        return []
    dense = results[0]
    margin, _ = matching_margin(dense.std, len(dense.per_seed), tolerance)
    learned = dense_not_learned(dense.metric, dense.mean, trivial) is None
    return [
        replace(
            r,
            per_seed=dict(r.per_seed),
            collapsed_tensors=dict(r.collapsed_tensors),
            delta=r.mean - dense.mean,
            matching=is_matching(r.mean, dense.mean, margin) if learned else None,
            super_ticket=(r.level > 0 and is_super_ticket(r.mean, dense.mean, margin)) if learned else None,
            beats_trivial=trivial.beaten_by(r.mean) if trivial is not None else r.beats_trivial,
        )
        for r in results
    ]


def summarize(results: Sequence[LevelResult], tolerance: float, task: str, wall_s: float, trivial: TrivialBaseline | None = None) -> dict:
    """The summary dict of the levels ``results`` (level 0 first), judged by :func:`verdicts`
    (``results`` are not changed): ``task``, ``metric``, ``collapsed_levels``, ``matching_rule``,
    ``highest_matching_sparsity``, ``super_ticket_levels`` (levels flagged super tickets),
    ``wall_time_s``, ``levels`` (the judged rows as dicts); with
    ``trivial`` also ``trivial_baseline`` and ``dense_learned``. A level that does not beat the
    trivial baseline is never the highest matching sparsity; when dense did not learn, there is
    none.
    """
    results = verdicts(results, tolerance, trivial)
    dense = results[0]
    _, rule = matching_margin(dense.std, len(dense.per_seed), tolerance)
    undefined = dense_not_learned(dense.metric, dense.mean, trivial)
    learned = undefined is None
    matching = [r for r in results if r.matching and r.level > 0 and r.beats_trivial is not False]
    best = max(matching, key=lambda r: r.sparsity) if matching else None
    summary = {
        "task": task,
        "metric": dense.metric,
        "collapsed_levels": {r.level: r.collapsed_tensors for r in results if r.collapsed_tensors},
        "matching_rule": undefined or rule,
        "highest_matching_sparsity": best.sparsity if best else None,
        "super_ticket_levels": [r.level for r in results if r.super_ticket and r.beats_trivial is not False],
        "wall_time_s": wall_s,
        "levels": [r.__dict__ for r in results],
    }
    if trivial is not None:
        summary["trivial_baseline"] = trivial.to_dict()
        summary["dense_learned"] = learned
    return summary


def level_barrier(row: dict, key: str) -> float | None:
    """A summary row's barrier of the column ``key``: ``"barrier"`` (to ``parent_level``, measured
    by ``find`` for a schedule that reads barriers) or ``"barrier_successive"`` (from level L − 1,
    ``stability --successive``). In a summary written before the two columns were split,
    ``stability --successive`` wrote its barrier into ``barrier`` together with ``barrier_loss``:
    such a value belongs to the L − 1 column."""
    old_successive = "barrier_loss" in row
    if key == "barrier":
        return None if old_successive else row.get("barrier")
    return row.get("barrier_successive", row.get("barrier") if old_successive else None)


def _words(trivial: TrivialBaseline | None) -> str:
    if trivial is None:
        return ""
    value = "undefined" if trivial.value is None else f"{trivial.value:.4f}"
    return f"the trivial baseline: {trivial.prediction}, {value}; needs {trivial.rule}"
