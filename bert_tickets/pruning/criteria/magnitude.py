"""Magnitude (L1) criterion: score = |w| of the current (trained) weights — IMP's criterion
(Chen et al. 2020, Section 3 and Algorithm 1; Frankle & Carbin 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..select import Masks, Scorer, check_masks, select_global, select_layerwise
from .base import PruningCriterion, register_criterion


def magnitude_scorer(weights: Mapping[str, torch.Tensor]) -> Scorer:
    """|w| per weight; writes straight into the selection buffer for float32 CPU weights."""

    def magnitude(name: str, out: torch.Tensor | None) -> torch.Tensor:
        w = weights[name].detach()
        if out is not None and w.dtype == torch.float32 and w.device.type == "cpu":
            return torch.abs(w.reshape(-1), out=out)
        return w.abs()

    return magnitude


@register_criterion
class MagnitudeCriterion(PruningCriterion):
    """|w|: the smallest-magnitude surviving weights are pruned (deterministic; ``seed`` unused)."""

    name = "magnitude"
    ranks_by_magnitude = True
    summary = "global magnitude pruning (IMP); at θ0, the magnitude row of transfer (formerly 'oneshot')"

    def scorer(self, weights, *, seed=0, **context):
        return magnitude_scorer(weights)


def global_magnitude_pruning(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
    max_tensor_sparsity: float | None = None,
) -> Masks:
    """Global unstructured magnitude (L1) pruning to a target sparsity.

    Ranks |w| of every *surviving* weight across all tensors on one scale and prunes the
    smallest so that exactly ``round(sparsity * N)`` of the ``N`` weights are pruned in total
    (already-pruned weights count towards it); see
    :func:`~bert_tickets.pruning.select.select_global` for the optional per-tensor cap. Source:
    Chen et al. 2020, Section 3.

    Relation to ``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` (what
    BERT-Tickets' code calls): one call from dense gives the same mask when |w| has no ties and
    no cap is set. Over several levels BERT-Tickets passes ``amount = 1 / (10 − k)`` of the
    *remaining* weights, which torch rounds per call; the cumulative count then equals our
    exact ``round(s · N)`` only when every level's rounding agrees — always when ``N`` is a
    multiple of 10 (bert-base's 85,524,480), otherwise it may differ by one weight per level.

    Args:
        weights: name -> float tensor (any shape, float dtype, device), e.g. the fine-tuned
            prunable weights.
        sparsity: target fraction of weights pruned, in [0, 1) (not percent).
        masks: current masks, name -> ``torch.bool`` tensor of the weight's shape (``True`` =
            kept); ``None`` = dense.
        max_tensor_sparsity: optional cap on any one tensor's sparsity, a fraction in (0, 1].

    Returns:
        New masks (CPU ``torch.bool`` tensors, ``True`` = kept), same names and shapes.

    Raises:
        ValueError: sparsity outside [0, 1) or below the masks' current sparsity; masks and
            weights naming different tensors or of mismatched shapes/dtypes; a bad cap.
    """
    check_masks(weights, masks)
    return select_global({n: w.shape for n, w in weights.items()}, magnitude_scorer(weights), sparsity, masks, max_tensor_sparsity)


def layerwise_magnitude_pruning(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Layer-wise (per-tensor) magnitude pruning: every tensor at the same sparsity, each
    pruning its own smallest surviving |w| (see
    :func:`~bert_tickets.pruning.select.select_layerwise` for the exact counts).

    Args, returns and errors as :func:`global_magnitude_pruning` (no cap argument).
    """
    check_masks(weights, masks)
    return select_layerwise({n: w.shape for n, w in weights.items()}, magnitude_scorer(weights), sparsity, masks)
