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

Below the tensor level, :func:`pruned_rows_columns` counts the rows and columns of each weight
matrix that a mask prunes entirely: a fully pruned row of a ``(out_features, in_features)``
weight is an output unit that receives nothing (e.g. an FFN neuron), a fully pruned column an
input dimension the layer ignores. It is reported next to magnitude's count for a criterion
that may remove whole units (SynFlow, ``pruning/criteria/synflow.py``).
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


def pruned_rows_columns(masks: Mapping[str, torch.Tensor]) -> dict[str, dict[str, int]]:
    """Rows and columns of every 2-D mask with no kept entry (pure; nothing is changed).

    Args:
        masks: name -> ``torch.bool`` mask (``True`` = kept); 2-D masks are the weights of
            linear layers, shape ``(out_features, in_features)``; masks of other ranks are
            skipped (they have no rows and columns in this sense).

    Returns:
        ``{"rows": r, "columns": c, "tensors": {name: {"rows": r_n, "columns": c_n}}}`` —
        r_n the number of fully pruned rows (output units) of tensor ``name``, c_n its fully
        pruned columns (input dimensions), r and c their sums over all tensors. ``tensors``
        lists only tensors with at least one fully pruned row or column.

    Raises:
        ValueError: a mask that is not a ``torch.bool`` tensor.
    """
    rows = columns = 0
    tensors: dict[str, dict[str, int]] = {}
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"mask {name!r} must be a torch.bool tensor, got {getattr(mask, 'dtype', type(mask))}")
        if mask.dim() != 2:
            continue
        r = int((~mask.any(dim=1)).sum())
        c = int((~mask.any(dim=0)).sum())
        rows, columns = rows + r, columns + c
        if r or c:
            tensors[name] = {"rows": r, "columns": c}
    return {"rows": rows, "columns": columns, "tensors": tensors}


def collapse_options_hint(names) -> str:
    """The suggestion printed with a collapse warning."""
    example = next(iter(names))
    return (
        f"to avoid layer collapse use --exclude '{re.escape(example)}' (leave it unpruned), "
        "--max_tensor_sparsity 0.9 (cap every tensor within global pruning), or --pruning_scope layerwise"
    )
