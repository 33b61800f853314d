"""Pruning criteria and sparsity schedules.

* :func:`global_magnitude_pruning` — unstructured L1 (magnitude) pruning ranked *globally*
  across all prunable tensors, as in Chen et al. 2020, Section 3 (IMP, Algorithm 1) and
  Frankle & Carbin 2019.
* :func:`random_pruning` — the seeded random-pruning baseline of Chen et al. 2020, Table 2.
* :func:`sparsity_schedule` — the per-level target sparsities of IMP (``linear`` as in the
  BERT-Tickets code, ``geometric`` as in the paper's Algorithm 1 and open_lth).

All functions take and return masks as ``dict[name, torch.bool tensor]`` with ``True`` = kept
(the convention of ``torch.nn.utils.prune``), and are *monotone*: a weight pruned before stays
pruned. Counts are exact: for target sparsity ``s`` over ``N`` prunable weights exactly
``round(s * N)`` weights (half rounded up) are pruned, ties in the score broken by position
(tensor order, then flattened index: the earlier one is pruned first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

Masks = dict[str, torch.Tensor]

SCHEDULES = ("linear", "geometric")


def target_count(sparsity: float, total: int) -> int:
    """Number of weights to prune for ``sparsity`` (a fraction in [0, 1)) of ``total``.

    ``round(sparsity * total)`` with halves rounded up.

    Raises:
        ValueError: ``sparsity`` outside [0, 1).
    """
    if not (0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise ValueError(f"sparsity must be a fraction in [0, 1), got {sparsity}")
    return int(math.floor(sparsity * total + 0.5))


def _check_inputs(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None) -> None:
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


def _select_by_score(
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


def _magnitude_score(weights: Mapping[str, torch.Tensor]):
    def magnitude(name: str, out: torch.Tensor | None) -> torch.Tensor:
        w = weights[name].detach()
        if out is not None and w.dtype == torch.float32 and w.device.type == "cpu":
            return torch.abs(w.reshape(-1), out=out)
        return w.abs()

    return magnitude


def _subset(masks: Mapping[str, torch.Tensor] | None, names) -> dict | None:
    return None if masks is None else {n: masks[n] for n in names}


def global_magnitude_pruning(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
    max_tensor_sparsity: float | None = None,
) -> Masks:
    """Global unstructured magnitude (L1) pruning to a target sparsity.

    Ranks |w| of every *surviving* weight across all tensors on one scale and prunes the
    smallest so that exactly ``round(sparsity * N)`` of the ``N`` weights are pruned in total
    (already-pruned weights count towards it). Source: Chen et al. 2020, Section 3 (global
    pruning over the BERT-Tickets set); equals ``torch.nn.utils.prune.global_unstructured(...,
    pruning_method=L1Unstructured)`` when there are no ties in |w| and no cap.

    With ``max_tensor_sparsity`` = ``c``, no tensor is pruned beyond ``floor(c * numel)``
    weights (or its current count, if already higher): the global ranking is kept for the
    other tensors and a capped tensor's excess is re-assigned to them (water-filling), so the
    global count stays exact. This guards against *layer collapse* (Tanaka et al. 2020,
    SynFlow, Section 3): a tensor whose weights are all small being pruned away entirely.

    Args:
        weights: name -> float tensor (any shape, any float dtype, any device) — e.g. the
            fine-tuned prunable weights.
        sparsity: target fraction of weights pruned, in [0, 1) (not percent).
        masks: current masks, name -> ``torch.bool`` tensor of the weight's shape (``True`` =
            kept); ``None`` = dense.
        max_tensor_sparsity: optional cap on any one tensor's sparsity, a fraction in (0, 1].

    Returns:
        New masks (CPU ``torch.bool`` tensors, ``True`` = kept), same names and shapes.

    Raises:
        ValueError: sparsity outside [0, 1); sparsity below the masks' current sparsity;
            masks/weights name different tensors or have mismatched shapes/dtypes; a cap
            outside (0, 1] or too low to reach the target.
    """
    _check_inputs(weights, masks)
    shapes = {n: w.shape for n, w in weights.items()}
    total = sum(math.prod(sh) for sh in shapes.values())
    k = target_count(sparsity, total)
    score = _magnitude_score(weights)
    if max_tensor_sparsity is None:
        return _select_by_score(shapes, masks, k, score)
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
        chosen = _select_by_score({n: shapes[n] for n in pool}, _subset(masks, pool), k_pool, score)
        over = [n for n in pool if _pruned_count(chosen[n]) > cap[n]]
        if not over:
            result.update(chosen)
            return {n: result[n] for n in shapes}
        for n in over:  # fix these at their cap (their own smallest weights) and re-rank the rest
            result[n] = _select_by_score({n: shapes[n]}, _subset(masks, [n]), cap[n], score)[n]
        pool = [n for n in pool if n not in over]


def layerwise_magnitude_pruning(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Layer-wise (per-tensor) magnitude pruning: every tensor at the same sparsity.

    Each tensor ``t`` of ``n_t`` weights prunes its own smallest surviving |w| down to
    ``floor(sparsity * n_t)`` or that plus one: the ``round(sparsity * N)`` pruned weights are
    shared out by the largest-remainder method, so every tensor is within one weight of
    ``sparsity`` and the global count is exact. Uniform per-layer sparsity is the classic
    baseline against global pruning and cannot collapse a layer (Tanaka et al. 2020, SynFlow;
    Frankle & Carbin 2019 prune layer-wise for small networks).

    Args, returns and errors as :func:`global_magnitude_pruning` (no cap argument); also raises
    ``ValueError`` when a tensor is already pruned beyond what the uniform share allows.
    """
    _check_inputs(weights, masks)
    shapes = {n: w.shape for n, w in weights.items()}
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
    score = _magnitude_score(weights)
    return {n: _select_by_score({n: shapes[n]}, _subset(masks, [n]), counts[n], score)[n] for n in shapes}


def random_pruning(
    shapes: Mapping[str, torch.Size | tuple[int, ...]],
    sparsity: float,
    seed: int,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Seeded random unstructured pruning to a target sparsity (the random-pruning baseline of
    Chen et al. 2020, Table 2).

    Surviving weights are ranked by i.i.d. uniform scores drawn from a ``torch.Generator``
    seeded from ``seed`` and the tensor's position, globally, so the result is reproducible and
    exactly ``round(sparsity * N)`` weights are pruned; each tensor ends up close to
    ``sparsity``.

    Args:
        shapes: name -> tensor shape.
        sparsity: target fraction pruned, in [0, 1).
        seed: random seed.
        masks: current masks (``torch.bool``, ``True`` = kept) or ``None``.

    Returns:
        New masks (CPU ``torch.bool``), monotone with respect to ``masks``.

    Raises:
        ValueError: as :func:`global_magnitude_pruning`.
    """
    shapes = {n: torch.Size(s) for n, s in shapes.items()}
    if masks is not None:
        _check_inputs({n: torch.zeros(()).expand(s) for n, s in shapes.items()}, masks)
    index = {n: i for i, n in enumerate(shapes)}

    def score(name: str, out: torch.Tensor | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + index[name])
        return torch.rand(shapes[name], generator=gen)

    return _select_by_score(shapes, masks, target_count(sparsity, sum(math.prod(s) for s in shapes.values())), score)


def sparsity_schedule(
    schedule: str = "linear",
    target_sparsity: float = 0.9,
    prune_step: float = 0.1,
    prune_fraction: float = 0.1,
    max_levels: int | None = None,
) -> list[float]:
    """Target sparsity of every IMP level, level 0 (dense, 0.0) first.

    * ``linear`` (BERT-Tickets' code): level ``L`` has sparsity ``L * prune_step`` of the
      original prunable weights (0.1, 0.2, …, 0.9 with the defaults).
    * ``geometric`` (Chen et al. 2020, Algorithm 1; open_lth): each level prunes
      ``prune_fraction`` of the remaining weights: ``1 - (1 - prune_fraction) ** L``.

    Levels stop at ``target_sparsity`` (the last level is clipped to it so the target is
    reached) or after ``max_levels`` pruned levels, whichever comes first. Values are
    fractions, rounded to 10 decimals.

    Raises:
        ValueError: unknown schedule; target outside [0, 1); step/fraction outside (0, 1);
            negative ``max_levels``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    target_count(target_sparsity, 1)  # validates the range
    step = prune_step if schedule == "linear" else prune_fraction
    if not (0.0 < step < 1.0):
        name = "prune_step" if schedule == "linear" else "prune_fraction"
        raise ValueError(f"{name} must be a fraction in (0, 1), got {step}")
    if max_levels is not None and max_levels < 0:
        raise ValueError(f"max_levels must be >= 0, got {max_levels}")
    levels = [0.0]
    level = 0
    while levels[-1] < target_sparsity - 1e-12 and (max_levels is None or level < max_levels):
        level += 1
        levels.append(min(level_sparsity(schedule, level, prune_step, prune_fraction), round(target_sparsity, 10)))
    return levels


def level_sparsity(schedule: str, level: int, prune_step: float = 0.1, prune_fraction: float = 0.1) -> float:
    """Unclipped sparsity of IMP ``level`` under ``schedule`` (see :func:`sparsity_schedule`),
    a fraction rounded to 10 decimals; may be >= 1 for the linear schedule past its end."""
    s = level * prune_step if schedule == "linear" else 1.0 - (1.0 - prune_fraction) ** level
    return round(s, 10)


PRUNING_METHODS = ("magnitude", "random")
PRUNING_SCOPES = ("global", "layerwise")


def prune_ticket(
    ticket,
    model,
    sparsity: float,
    method: str = "magnitude",
    seed: int = 0,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
):
    """Next IMP level's :class:`~bert_tickets.mask.TicketMask` from ``model``'s current weights.

    Prunes the prunable weights named by ``ticket`` to ``sparsity`` with
    :func:`global_magnitude_pruning` (``scope="global"``, optionally capped per tensor),
    :func:`layerwise_magnitude_pruning` (``scope="layerwise"``) or :func:`random_pruning`
    (``method="random"``). The metadata is copied with ``level`` + 1, ``target_sparsity``,
    ``pruning_method``, ``pruning_scope`` and ``max_tensor_sparsity`` updated.

    Args:
        ticket: current :class:`~bert_tickets.mask.TicketMask`.
        model: model holding the trained weights (any BERT head; keys are backbone-relative).
        sparsity: target global sparsity, a fraction in [0, 1).
        method: ``"magnitude"`` or ``"random"``.
        seed: seed of ``"random"``.
        scope: ``"global"`` or ``"layerwise"`` (magnitude only).
        max_tensor_sparsity: per-tensor cap for global magnitude pruning, or ``None``.

    Raises:
        ValueError: unknown method/scope, bad sparsity or cap, or a ticket that does not fit
            the model.
    """
    import copy

    from .mask import TicketMask

    if method not in PRUNING_METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNING_METHODS)}")
    if scope not in PRUNING_SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(PRUNING_SCOPES)}")
    targets = ticket.validate(model)
    missing = [n for n in ticket.masks if n not in targets]
    if missing:
        raise ValueError(f"cannot prune: the model has no parameter for mask key {missing[0]!r}")
    masks = ticket.masks
    weights = {n: targets[n] for n in masks}
    if method == "random":
        new = random_pruning(ticket.shapes, sparsity, seed, masks)
    elif scope == "layerwise":
        new = layerwise_magnitude_pruning(weights, sparsity, masks)
    else:
        new = global_magnitude_pruning(weights, sparsity, masks, max_tensor_sparsity)
    meta = copy.deepcopy(ticket.metadata)
    meta.level += 1
    meta.target_sparsity = sparsity
    meta.pruning_method = method
    meta.pruning_scope = scope
    meta.max_tensor_sparsity = max_tensor_sparsity
    return TicketMask(new, meta)
