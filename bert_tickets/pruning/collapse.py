"""Layer collapse: detect it before pruning, report it after.

Global magnitude pruning ranks every prunable weight on one scale, so a tensor whose weights
are all small can be pruned away entirely — *layer collapse* (Tanaka et al. 2020, *Pruning
neural networks without any data by iteratively conserving synaptic flow*, Section 3). On a
checkpoint whose pooler was never trained (e.g. sentence-transformers' all-MiniLM-L6-v2, pooler
weight std 0.009 against 0.04–0.10 for the encoder), 50% global sparsity removes the whole
pooler and every sequence-classification head then sees a constant input.

Ways around it (options of ``find`` and of :func:`~bert_tickets.pruning.prune_ticket`): leave
the tensor out of the prunable set (``--exclude 'pooler\\..*'``), cap per-tensor sparsity
within global pruning (``--max_tensor_sparsity``), or prune layer-wise
(``--pruning_scope layerwise``).
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Mapping

import torch

logger = logging.getLogger("bert_tickets")

#: A tensor pruned beyond this fraction is reported as collapsed.
DEFAULT_COLLAPSE_THRESHOLD = 0.99
#: A tensor whose weight RMS is below this fraction of the median tensor's RMS is flagged.
DEFAULT_SCALE_RATIO = 0.25


def collapsed_tensors(per_tensor_sparsity: Mapping[str, float], threshold: float = DEFAULT_COLLAPSE_THRESHOLD) -> dict[str, float]:
    """Tensors pruned beyond ``threshold`` (fraction in (0, 1]): name -> sparsity (fraction).

    Raises:
        ValueError: threshold outside (0, 1].
    """
    if not (0.0 < threshold <= 1.0):
        raise ValueError(f"collapse threshold must be a fraction in (0, 1], got {threshold}")
    return {n: s for n, s in per_tensor_sparsity.items() if s > threshold or s == 1.0}


def low_scale_tensors(weights: Mapping[str, torch.Tensor], ratio: float = DEFAULT_SCALE_RATIO) -> dict[str, float]:
    """Tensors whose weight scale is far below the others' — candidates for layer collapse
    under global magnitude pruning (e.g. a pooler or head that was never trained).

    Scale = root mean square of the tensor's weights; a tensor is flagged when its RMS is below
    ``ratio`` times the median RMS over all tensors.

    Args:
        weights: name -> float tensor (any shape and device).
        ratio: fraction of the median RMS below which a tensor is flagged.

    Returns:
        Flagged name -> its RMS divided by the median RMS (a fraction < ``ratio``).
    """
    rms = {n: float(w.detach().float().pow(2).mean().sqrt()) for n, w in weights.items()}
    if len(rms) < 2:
        return {}
    median = statistics.median(rms.values())
    if median == 0.0:
        return {}
    return {n: r / median for n, r in rms.items() if r < ratio * median}


def collapse_options_hint(names) -> str:
    """The suggestion printed with a collapse warning."""
    example = next(iter(names))
    return (
        f"to avoid layer collapse use --exclude '{re.escape(example)}' (leave it unpruned), "
        "--max_tensor_sparsity 0.9 (cap every tensor within global pruning), or --pruning_scope layerwise"
    )
