"""Random criterion: seeded i.i.d. uniform scores — the random-pruning baseline of Chen et al.
2020, Table 2."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..._io import derived_seed
from ..select import Masks, Scorer, check_masks, select_global, target_count
from .base import PruningCriterion, register_criterion


def random_scorer(shapes: Mapping[str, torch.Size], seed: int) -> Scorer:
    """Uniform [0, 1) scores from a ``torch.Generator`` seeded with ``seed * 100003 + i`` for the
    i-th tensor, so each tensor's scores depend only on the seed and its position."""
    index = {n: i for i, n in enumerate(shapes)}

    def score(name: str, out: torch.Tensor | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(derived_seed(seed, index[name]))
        return torch.rand(shapes[name], generator=gen)

    return score


@register_criterion
class RandomCriterion(PruningCriterion):
    """Seeded random scores: reproducible by ``seed``; every tensor ends up close to the target
    sparsity under global selection."""

    name = "random"
    needs = frozenset({"seed"})
    summary = "seeded random pruning (baseline)"

    def scorer(self, weights, *, seed=0, **context):
        return random_scorer({n: w.shape for n, w in weights.items()}, seed)


def random_pruning(
    shapes: Mapping[str, torch.Size | tuple[int, ...]],
    sparsity: float,
    seed: int,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Seeded random unstructured pruning to a target sparsity (Chen et al. 2020, Table 2).

    Surviving weights are ranked globally by the scores of :func:`random_scorer`, so the result
    is reproducible and exactly ``round(sparsity * N)`` weights are pruned.

    Args:
        shapes: name -> tensor shape.
        sparsity: target fraction pruned, in [0, 1).
        seed: random seed.
        masks: current masks (``torch.bool``, ``True`` = kept) or ``None``.

    Returns:
        New masks (CPU ``torch.bool``), monotone with respect to ``masks``.

    Raises:
        ValueError: as :func:`~bert_tickets.pruning.criteria.magnitude.global_magnitude_pruning`.
    """
    shapes = {n: torch.Size(s) for n, s in shapes.items()}
    if masks is not None:
        check_masks({n: torch.zeros(()).expand(s) for n, s in shapes.items()}, masks)
    target_count(sparsity, sum(math.prod(s) for s in shapes.values()))
    return select_global(shapes, random_scorer(shapes, seed), sparsity, masks)
