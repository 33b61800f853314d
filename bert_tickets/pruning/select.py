"""Which weights to prune given their scores: exact top-k selection, globally (optionally capped
per tensor) or layer-wise. *How* weights are scored is a criterion (:mod:`.criteria`); *how many*
are pruned at each level is a schedule (:mod:`.schedules`) — the split of torch.ao.pruning.

Masks are ``dict[name, torch.bool tensor]`` with ``True`` = kept (the convention of
``torch.nn.utils.prune``), and selection is *monotone*: a weight pruned before stays pruned.
Counts are exact: for target sparsity ``s`` over ``N`` prunable weights exactly
``round(s * N)`` weights (half rounded up) are pruned, ties in the score broken by position
(tensor order, then flattened index: the earlier one is pruned first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

Masks = dict[str, torch.Tensor]
#: ``score(name, out)``: a non-negative float tensor shaped like tensor ``name`` (higher = more
#: important), or the flattened float32 scores written into ``out`` (when not ``None``) and
#: ``out`` returned. Called twice per tensor; must return the same values both times.
Scorer = Callable[[str, "torch.Tensor | None"], torch.Tensor]

#: Pruning scopes: ``global`` ranks every tensor on one scale (Chen et al. 2020); ``layerwise``
#: prunes every tensor to the same sparsity.
SCOPES = ("global", "layerwise")


def target_count(sparsity: float, total: int) -> int:
    """Number of weights to prune for ``sparsity`` (a fraction in [0, 1)) of ``total``.

    ``round(sparsity * total)`` with halves rounded up.

    Raises:
        ValueError: ``sparsity`` outside [0, 1).
    """
    if not (0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise ValueError(f"sparsity must be a fraction in [0, 1), got {sparsity}")
    return int(math.floor(sparsity * total + 0.5))


def check_masks(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None) -> None:
    """Check that ``masks`` (``torch.bool``, ``True`` = kept) name exactly the tensors of
    ``weights`` with the same shapes.

    Raises:
        ValueError: no weights, different names, or a mask of another dtype or shape.
    """
    if not weights:
        raise ValueError("no prunable weights given")
    if masks is None:
        return
    if set(masks) != set(weights):
        missing = sorted(set(weights) ^ set(masks))
        raise ValueError(f"masks and weights name different tensors (first difference: {missing[0]!r})")
    for name, w in weights.items():
        m = masks[name]
        if m.dtype != torch.bool or tuple(m.shape) != tuple(w.shape):
            raise ValueError(f"mask for {name!r} must be torch.bool of shape {tuple(w.shape)}, got {m.dtype} {tuple(m.shape)}")


def select_by_score(
    shapes: Mapping[str, torch.Size],
    masks: Mapping[str, torch.Tensor] | None,
    k: int,
    score: Callable[[str, torch.Tensor | None], torch.Tensor],
) -> Masks:
    """Prune the lowest-scoring surviving weights globally so that exactly ``k`` weights are
    pruned in total over ``shapes`` (already-pruned ones included).

    ``score(name, out)`` returns a non-negative float tensor shaped like the i-th tensor
    (scores are ranked as float32), or writes the flattened float32 scores into ``out`` (when not
    ``None``) and returns ``out``; it is called twice per tensor and must return the same values
    both times. Memory: one float32 buffer of N
    elements (one copy of the weights) plus per-tensor temporaries.
    """
    names = list(shapes)
    sizes = [math.prod(shapes[n]) for n in names]
    total = sum(sizes)
    already = 0 if masks is None else sum(int(masks[n].numel() - masks[n].count_nonzero()) for n in names)
    if k < already:
        raise ValueError(
            f"target sparsity {k / total:.6g} ({k} weights) is below the current sparsity "
            f"({already} of {total} weights already pruned); pruning never revives weights"
        )
    if k > total:
        raise ValueError(f"cannot prune {k} of {total} weights")
    if k == already:
        return {n: (torch.ones(shapes[n], dtype=torch.bool) if masks is None else masks[n].detach().to("cpu", copy=True)) for n in names}

    def cpu_score(i: int, name: str, out: torch.Tensor | None = None) -> torch.Tensor:
        s = score(name, out)
        if s is out:
            return out
        s = s.detach().to(device="cpu", dtype=torch.float32).reshape(-1)
        return s if out is None else out.copy_(s)

    cpu_masks = None if masks is None else {n: masks[n].detach().to("cpu").reshape(-1) for n in names}

    # Pass 1: one global int32 buffer holding the IEEE-754 bit patterns of the (non-negative)
    # scores, which order exactly like the floats; pruned weights get -1 (below every score).
    # Integer arithmetic keeps this exact and branch-free: bits -> (bits + 1) * keep - 1.
    buf = torch.empty(total, dtype=torch.float32)
    bits = buf.view(torch.int32)
    offset = 0
    for i, (name, size) in enumerate(zip(names, sizes)):
        cpu_score(i, name, buf[offset : offset + size])
        if cpu_masks is not None:
            bits[offset : offset + size].add_(1).mul_(cpu_masks[name]).sub_(1)
        offset += size
    arr = bits.numpy()
    kth = k - 1
    arr.partition(kth)  # introselect, in place: arr[:kth] <= arr[kth] <= arr[kth+1:]
    threshold_bits = int(arr[kth])
    below = int(np.count_nonzero(arr[:kth] < threshold_bits))
    equal = (kth - below) + 1 + int(np.count_nonzero(arr[kth + 1 :] == threshold_bits))
    threshold = float(buf[kth])  # a surviving weight's score (k > already), so >= 0
    ties_to_prune = k - below  # of the `equal` surviving weights scoring == threshold, prune the first ones
    del buf, bits, arr

    # Pass 2: prune score < threshold and the first `ties_to_prune` surviving ties by position.
    # Usually every tie is pruned (`keep = s > threshold`, no tie search). Otherwise ties are
    # kept (`s >= threshold`) and the first ones cleared, scanning tensors only until done.
    all_ties_pruned = equal == ties_to_prune
    result: Masks = {}
    for i, name in enumerate(names):
        s = cpu_score(i, name)
        keep = s > threshold if all_ties_pruned else s >= threshold
        if cpu_masks is not None:
            keep.logical_and_(cpu_masks[name])
        if not all_ties_pruned and ties_to_prune > 0:
            tie_idx = torch.nonzero(keep & (s == threshold)).flatten()[:ties_to_prune]
            keep[tie_idx] = False
            ties_to_prune -= int(tie_idx.numel())
        result[name] = keep.reshape(shapes[name])
    return result


def _pruned_count(mask: torch.Tensor | None) -> int:
    return 0 if mask is None else int(mask.numel() - mask.count_nonzero())


def _subset(masks: Mapping[str, torch.Tensor] | None, names) -> dict | None:
    return None if masks is None else {n: masks[n] for n in names}


def select_global(
    shapes: Mapping[str, torch.Size],
    score: Scorer,
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
    max_tensor_sparsity: float | None = None,
) -> Masks:
    """Global selection: prune the lowest-scoring surviving weights ranked across all tensors on
    one scale so that exactly ``round(sparsity * N)`` of the ``N`` weights are pruned (already
    pruned weights count towards it). Source: Chen et al. 2020, Section 3 (global pruning over
    the BERT-Tickets set).

    With ``max_tensor_sparsity`` = ``c``, no tensor is pruned beyond ``floor(c * numel)``
    weights (or its current count, if already higher): the global ranking is kept for the
    other tensors and a capped tensor's excess is re-assigned to them (water-filling), so the
    global count stays exact. This guards against *layer collapse* (Tanaka et al. 2020,
    SynFlow, Section 3): a tensor whose weights all score low being pruned away entirely.

    Args:
        shapes: name -> tensor shape.
        score: the criterion's :data:`Scorer`.
        sparsity: target fraction pruned, in [0, 1) (not percent).
        masks: current masks (``torch.bool``, ``True`` = kept) or ``None`` (dense).
        max_tensor_sparsity: optional cap on any one tensor's sparsity, a fraction in (0, 1].

    Returns:
        New masks (CPU ``torch.bool`` tensors), same names and shapes.

    Raises:
        ValueError: sparsity outside [0, 1) or below the masks' current sparsity; a cap outside
            (0, 1] or too low to reach the target.
    """
    total = sum(math.prod(sh) for sh in shapes.values())
    k = target_count(sparsity, total)
    if max_tensor_sparsity is None:
        return select_by_score(shapes, masks, k, score)
    if not (0.0 < max_tensor_sparsity <= 1.0):
        raise ValueError(f"max_tensor_sparsity must be a fraction in (0, 1], got {max_tensor_sparsity}")
    cap = {
        n: max(_pruned_count(None if masks is None else masks[n]), math.floor(max_tensor_sparsity * math.prod(sh)))
        for n, sh in shapes.items()
    }
    if k > sum(cap.values()):
        raise ValueError(
            f"sparsity {sparsity} cannot be reached with max_tensor_sparsity {max_tensor_sparsity} "
            f"(at most {sum(cap.values())} of {total} weights may be pruned)"
        )
    result: Masks = {}
    pool = list(shapes)
    while True:
        k_pool = k - sum(cap[n] for n in result)
        chosen = select_by_score({n: shapes[n] for n in pool}, _subset(masks, pool), k_pool, score)
        over = [n for n in pool if _pruned_count(chosen[n]) > cap[n]]
        if not over:
            result.update(chosen)
            return {n: result[n] for n in shapes}
        for n in over:  # fix these at their cap (their own smallest weights) and re-rank the rest
            result[n] = select_by_score({n: shapes[n]}, _subset(masks, [n]), cap[n], score)[n]
        pool = [n for n in pool if n not in over]


def select_layerwise(
    shapes: Mapping[str, torch.Size],
    score: Scorer,
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Layer-wise selection: every tensor at the same sparsity.

    Each tensor ``t`` of ``n_t`` weights prunes its own lowest-scoring surviving weights down to
    ``floor(sparsity * n_t)`` or that plus one: the ``round(sparsity * N)`` pruned weights are
    shared out by the largest-remainder method, so every tensor is within one weight of
    ``sparsity`` and the global count is exact. Uniform per-layer sparsity is the classic
    baseline against global pruning and cannot collapse a layer (Tanaka et al. 2020, SynFlow;
    Frankle & Carbin 2019 prune layer-wise for small networks).

    Args, returns and errors as :func:`select_global` (no cap); also raises ``ValueError`` when
    a tensor is already pruned beyond what the uniform share allows.
    """
    sizes = {n: math.prod(sh) for n, sh in shapes.items()}
    k = target_count(sparsity, sum(sizes.values()))
    exact = {n: sparsity * sizes[n] for n in shapes}
    counts = {n: math.floor(exact[n]) for n in shapes}
    remainder = k - sum(counts.values())
    for n in sorted(shapes, key=lambda n: counts[n] - exact[n])[: max(0, remainder)]:  # largest fractional parts
        counts[n] += 1
    for n in shapes:
        already = _pruned_count(None if masks is None else masks[n])
        if already > counts[n]:
            raise ValueError(
                f"{n!r} is already {already / sizes[n]:.4f} sparse, above the layer-wise target {sparsity}; "
                "layer-wise pruning cannot continue a run pruned otherwise"
            )
    return {n: select_by_score({n: shapes[n]}, _subset(masks, [n]), counts[n], score)[n] for n in shapes}


def select(
    shapes: Mapping[str, torch.Size],
    score: Scorer,
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
) -> Masks:
    """Dispatch on ``scope``: :func:`select_global` (with the optional cap) or
    :func:`select_layerwise`.

    Raises:
        ValueError: unknown scope; a cap with ``scope="layerwise"``; see the two functions.
    """
    if scope == "global":
        return select_global(shapes, score, sparsity, masks, max_tensor_sparsity)
    if scope == "layerwise":
        if max_tensor_sparsity is not None:
            raise ValueError("max_tensor_sparsity applies to global pruning only (layer-wise pruning cannot collapse a layer)")
        return select_layerwise(shapes, score, sparsity, masks)
    raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
