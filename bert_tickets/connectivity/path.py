"""The straight line between two networks and its error barrier.

Frankle, Dziugaite, Roy & Carbin 2020, *Linear Mode Connectivity and the Lottery Ticket
Hypothesis*, Section 2: for trained weights W1 and W2, evaluate W(α) = (1 − α)·W1 + α·W2 for
evenly spaced α in [0, 1]; the **error barrier height** is the largest error on the path minus
the mean of the two end points' errors. Two networks are *linearly connected* (the subnetwork
is *stable* to SGD noise) when the barrier is ≈ 0. Paul et al. 2022 (*Unmasking the Lottery
Ticket Hypothesis*, Section 4) use the same barrier between the trained networks of successive
IMP levels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class PathPoint:
    """One evaluated point of a linear path: ``alpha`` in [0, 1] (0 = the first end point) and
    the metrics there (the task kind's, e.g. ``accuracy`` and ``loss``)."""

    alpha: float
    metrics: dict[str, float] = field(default_factory=dict)


def interpolate_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 − alpha)·a + alpha·b`` for every floating-point tensor (computed in float64, cast back
    to the tensor's dtype); other tensors (integer position ids, bool buffers) must be equal in
    both and are taken from ``a``.

    Weights pruned in both end points (exact zeros) stay exactly zero: (1 − α)·0 + α·0 = 0. BERT
    has no batch-norm running statistics to recompute (LayerNorm has none), so interpolating the
    parameters and buffers is the whole network.

    Args:
        a, b: state dicts with the same names and shapes.
        alpha: position on the line, a float in [0, 1].

    Raises:
        ValueError: ``alpha`` outside [0, 1], different names or shapes, or unequal non-float
            tensors.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if set(a) != set(b):
        raise ValueError(f"the end points have different tensors: {sorted(set(a) ^ set(b))[:3]}")
    out = {}
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            raise ValueError(f"{name}: shapes {tuple(x.shape)} and {tuple(y.shape)} differ")
        if x.is_floating_point():
            out[name] = ((1.0 - alpha) * x.double() + alpha * y.double()).to(x.dtype)
        else:
            if not torch.equal(x, y):
                raise ValueError(f"{name}: non-float tensors differ between the end points")
            out[name] = x.clone()
    return out


def evaluate_linear_path(
    model: nn.Module,
    end_a: Mapping[str, torch.Tensor],
    end_b: Mapping[str, torch.Tensor],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    points: int = 11,
) -> list[PathPoint]:
    """Evaluate ``points`` evenly spaced points of the line from ``end_a`` to ``end_b``.

    Each point's weights are loaded into ``model`` (``load_state_dict(strict=True)``), the model
    is put in evaluation mode (dropout off) and ``evaluate(model)`` returns its metrics. The
    model is left holding the last point's weights (``end_b``).

    Args:
        model: a module whose ``state_dict`` has the end points' names and shapes.
        end_a, end_b: the two state dicts (α = 0 and α = 1).
        evaluate: model -> metrics (e.g. the task kind's evaluation on the dev set).
        points: number of points including both ends (≥ 2; 11 gives α = 0, 0.1, …, 1).

    Returns:
        One :class:`PathPoint` per α, in order.

    Raises:
        ValueError: fewer than 2 points; see :func:`interpolate_state`.
    """
    if points < 2:
        raise ValueError(f"a path needs at least 2 points (its ends), got {points}")
    out = []
    for i in range(points):
        alpha = i / (points - 1)
        model.load_state_dict(interpolate_state(end_a, end_b, alpha), strict=True)
        model.eval()
        out.append(PathPoint(alpha, {k: float(v) for k, v in evaluate(model).items() if isinstance(v, (int, float))}))
    return out


def error_barrier(values: Sequence[float], higher_is_better: bool) -> float:
    """The error barrier of a path from its values at evenly spaced points (ends first and last).

    For an error (lower is better, e.g. the eval loss): ``max(values) − mean(values[0],
    values[-1])``. For a metric where higher is better (accuracy, F1, Pearson) the error is taken
    as ``1 − metric`` (or ``−metric``: the constant cancels), so the barrier is ``mean(values[0],
    values[-1]) − min(values)``. As in the paper, the ends are points of the path, so the barrier is
    at least half the gap between the ends' values: it is 0 only for ends that score the same
    and a path that never does worse than them (Frankle et al. train both ends alike, so their
    values are close).

    Raises:
        ValueError: fewer than 2 values, or a NaN among them.
    """
    _check_path_values(values)
    ends = statistics.fmean([values[0], values[-1]])
    return ends - min(values) if higher_is_better else max(values) - ends


def chord_barrier(values: Sequence[float], higher_is_better: bool) -> float:
    """The largest excess of the path's error over the straight chord between its ends' errors:
    ``max_i (e_i − ((1 − α_i)·e_0 + α_i·e_n))`` with α evenly spaced, e = the value (lower is
    better) or −value (higher is better). Unlike :func:`error_barrier` it is 0 for a path that
    runs straight from one end's value to the other's, so two ends that differ (two copies
    trained to different quality) do not count as a barrier; it measures only the bump. Reported
    next to the paper's barrier (Frankle et al. 2020 define the latter).

    Raises:
        ValueError: fewer than 2 values, or a NaN among them.
    """
    _check_path_values(values)
    errors = [-v for v in values] if higher_is_better else list(values)
    n = len(errors) - 1
    return max(0.0, max(e - ((1 - i / n) * errors[0] + (i / n) * errors[-1]) for i, e in enumerate(errors)))


def _check_path_values(values: Sequence[float]) -> None:
    if len(values) < 2:
        raise ValueError(f"a path needs at least 2 values, got {len(values)}")
    if any(math.isnan(v) for v in values):
        raise ValueError("a path value is NaN (e.g. Pearson of constant predictions): the barrier is undefined")
