"""Structured granularities of a mask: whole attention heads, whole FFN neurons, and N:M
(2:4) blocks — chosen from the criterion's per-weight scores, written back as weight-shaped
masks (so the ticket format, the callback, the Hub path and transfer are unchanged).

Groups (BERT's encoder, backbone-relative names; ``d = hidden / heads``):

* **head** (layer i, head h): rows ``h·d … (h+1)·d − 1`` of ``attention.self.{query,key,value}.
  weight`` and the same columns of ``attention.output.dense.weight`` — everything that head reads
  and writes (Michel et al. 2019, *Are Sixteen Heads Really Better than One?*; Liang et al. 2021,
  *Super Tickets*, prune heads the same way);
* **neuron** (layer i, FFN unit j): row j of ``intermediate.dense.weight`` and column j of
  ``output.dense.weight`` (Chen et al. 2021, *EarlyBERT*; Liang et al. 2021).

Group score = the **sum of the per-weight scores** over the group's weights (for magnitude: the
group's L1 norm, the usual structured-magnitude criterion; all groups of one kind have the same
size, so sum and mean rank them alike). Selection is global across layers with exact group counts:
``round(s · G)`` of the ``G`` groups of a kind are pruned at sparsity ``s`` — *s is the fraction
of heads (or neurons)*, not of all prunable weights (the ticket records both). With
``scope="layerwise"`` every layer prunes ``round(s · G_l)`` of its own ``G_l`` groups instead
(uniform per layer: no layer can be emptied, whatever the scale of its scores; the total is the
sum of the per-layer counts). Why both: global selection on summed magnitudes empties the layers
whose weights are smallest (measured on MiniLM-L6, STS-B: the last layer's FFN kept 543 of 1,536
neurons at 20% — docs/results.md); Michel et al. (2019, Section 4.2) instead normalise their
importance scores per layer before a global ranking, which the ``importance`` criterion does. ``head+neuron``
prunes the same fraction of each kind, each ranked within its kind. A group counts as pruned when
every one of its weights is; selection is monotone (pruned groups stay pruned) and
``min_per_layer`` keeps at least that many groups of each kind alive in every layer (Liang et
al. keep every layer; without it a layer can lose all its heads). Weights outside every group
(the pooler) are left as they are.

**N:M** (``2:4``; NVIDIA's semi-structured sparsity, Mishra et al. 2021): in every row of every
prunable matrix, each block of 4 consecutive weights along the input dimension keeps its 2
highest-scoring weights — exactly 50%. Defined at sparsity 0.5 on a dense (or 2:4) mask only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .select import SCOPES, Masks, Scorer, target_count

#: Mask granularities: per weight (unstructured), per head, per FFN neuron, both, N:M 2:4.
GRANULARITIES = ("weight", "head", "neuron", "head+neuron", "2:4")

_LAYER = re.compile(r"(?:.*\.)?encoder\.layer\.(\d+)\.(.+)$")
_HEAD_ROWS = ("attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight")
_HEAD_COLS = ("attention.output.dense.weight",)
_NEURON_ROWS = ("intermediate.dense.weight",)
_NEURON_COLS = ("output.dense.weight",)


@dataclass(frozen=True)
class Group:
    """One structured unit: its kind, layer, index, and the ``(tensor, axis, slice)`` pieces it covers
    (axis 0 = rows / output units, axis 1 = columns / input units)."""

    kind: str
    layer: int
    index: int
    pieces: tuple[tuple[str, int, slice], ...]

    def weights(self, shapes: Mapping[str, torch.Size]) -> int:
        """Number of weights the group covers."""
        n = 0
        for name, axis, sl in self.pieces:
            other = shapes[name][1 - axis]
            n += (sl.stop - sl.start) * other
        return n


def bert_groups(shapes: Mapping[str, torch.Size], num_heads: int, kind: str) -> list[Group]:
    """The heads (``kind="head"``) or FFN neurons (``"neuron"``) of the encoder layers whose
    tensors are all in ``shapes``, in layer order.

    Raises:
        ValueError: an unknown kind, or hidden size not divisible by ``num_heads``.
    """
    layers: dict[int, dict[str, str]] = {}
    for name in shapes:
        m = _LAYER.match(name)
        if m:
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = name
    groups = []
    for layer in sorted(layers):
        names = layers[layer]
        if kind == "head":
            if not all(k in names for k in _HEAD_ROWS + _HEAD_COLS):
                continue
            hidden = shapes[names[_HEAD_ROWS[0]]][0]
            if hidden % num_heads:
                raise ValueError(f"hidden size {hidden} is not divisible by {num_heads} heads")
            d = hidden // num_heads
            for h in range(num_heads):
                sl = slice(h * d, (h + 1) * d)
                pieces = tuple((names[k], 0, sl) for k in _HEAD_ROWS) + tuple((names[k], 1, sl) for k in _HEAD_COLS)
                groups.append(Group("head", layer, h, pieces))
        elif kind == "neuron":
            if not all(k in names for k in _NEURON_ROWS + _NEURON_COLS):
                continue
            width = shapes[names[_NEURON_ROWS[0]]][0]
            for j in range(width):
                sl = slice(j, j + 1)
                pieces = tuple((names[k], 0, sl) for k in _NEURON_ROWS) + tuple((names[k], 1, sl) for k in _NEURON_COLS)
                groups.append(Group("neuron", layer, j, pieces))
        else:
            raise ValueError(f"unknown group kind {kind!r}; choose head or neuron")
    return groups


def _piece(t: torch.Tensor, axis: int, sl: slice) -> torch.Tensor:
    return t[sl] if axis == 0 else t[:, sl]


def group_scores(groups: list[Group], score: Scorer) -> torch.Tensor:
    """float64 ``(len(groups),)``: the sum of the per-weight scores over each group's weights."""
    cache: dict[str, torch.Tensor] = {}
    out = torch.zeros(len(groups), dtype=torch.float64)
    for i, g in enumerate(groups):
        total = 0.0
        for name, axis, sl in g.pieces:
            if name not in cache:
                cache[name] = score(name, None).detach().to("cpu", torch.float64)
            total += float(_piece(cache[name], axis, sl).sum())
        out[i] = total
    return out


def _is_pruned(g: Group, masks: Mapping[str, torch.Tensor]) -> bool:
    return all(not bool(_piece(masks[name], axis, sl).any()) for name, axis, sl in g.pieces)


def select_groups(
    shapes: Mapping[str, torch.Size],
    score: Scorer,
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None,
    *,
    kind: str,
    num_heads: int,
    min_per_layer: int = 0,
    scope: str = "global",
) -> Masks:
    """Prune whole heads or FFN neurons (see the module docstring) so that exactly
    ``round(sparsity · G)`` of the ``G`` groups of ``kind`` are pruned, globally across layers
    (``scope="global"``), or ``round(sparsity · G_l)`` in every layer l (``"layerwise"``), lowest
    group score first (ties: earlier layer, lower index first).

    Args:
        shapes: name -> weight shape of the prunable tensors.
        score: the criterion's per-weight :data:`~.select.Scorer`.
        sparsity: fraction of the groups pruned, in [0, 1).
        masks: current masks (``True`` = kept) or ``None``.
        kind: ``"head"`` or ``"neuron"``.
        num_heads: attention heads per layer (the model's ``num_attention_heads``).
        min_per_layer: groups of this kind kept alive in every layer.
        scope: ``"global"`` or ``"layerwise"``.

    Returns:
        New weight-shaped masks (CPU ``torch.bool``): the chosen groups' weights ``False``, every
        other entry as in ``masks``.

    Raises:
        ValueError: no group of ``kind`` in ``shapes``; more groups already pruned than the
            target (in a layer, for ``"layerwise"``); a target that ``min_per_layer`` makes
            unreachable; an unknown scope.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
    groups = bert_groups(shapes, num_heads, kind)
    if not groups:
        raise ValueError(f"no {kind} groups among the prunable weights (granularity {kind} needs every tensor of a layer's {kind}s)")
    new = {n: (masks[n].clone() if masks is not None else torch.ones(shapes[n], dtype=torch.bool)) for n in shapes}
    pruned = [_is_pruned(g, new) for g in groups]
    scores = group_scores(groups, score)
    if scope == "global":
        pools = [list(range(len(groups)))]
    else:
        layers = sorted({g.layer for g in groups})
        pools = [[i for i, g in enumerate(groups) if g.layer == layer] for layer in layers]
    chosen: list[Group] = []
    for pool in pools:
        chosen += _lowest(groups, pool, pruned, scores, sparsity, kind, min_per_layer, scope)
    for g in chosen:
        for name, axis, sl in g.pieces:
            if axis == 0:
                new[name][sl] = False
            else:
                new[name][:, sl] = False
    return new


def pruned_groups(masks: Mapping[str, torch.Tensor], num_heads: int, kind: str) -> tuple[int, int]:
    """``(pruned, total)``: how many of the ``kind`` groups (:func:`bert_groups`) of the masks'
    tensors are entirely pruned."""
    groups = bert_groups({n: m.shape for n, m in masks.items()}, num_heads, kind)
    return sum(_is_pruned(g, masks) for g in groups), len(groups)


def _lowest(
    groups: list[Group], pool: list[int], pruned: list[bool], scores: torch.Tensor, sparsity: float, kind: str, floor: int, scope: str
) -> list[Group]:
    """The not-yet-pruned groups of ``pool`` (indices into ``groups``) to prune so that
    ``round(sparsity · len(pool))`` of the pool are pruned, lowest score first, keeping ``floor``
    alive per layer (:func:`select_groups`)."""
    k = target_count(sparsity, len(pool))
    where = "" if scope == "global" else f" in layer {groups[pool[0]].layer}"
    done = sum(pruned[i] for i in pool)
    need = k - done
    if need < 0:
        raise ValueError(f"{done} {kind}s{where} are already pruned, more than the {k} of sparsity {sparsity}")
    alive: dict[int, int] = {}
    for i in pool:
        alive[groups[i].layer] = alive.get(groups[i].layer, 0) + (not pruned[i])
    order = sorted((i for i in pool if not pruned[i]), key=lambda i: (float(scores[i]), i))
    chosen = []
    for i in order:
        if len(chosen) == need:
            break
        g = groups[i]
        if alive[g.layer] - 1 < floor:
            continue
        alive[g.layer] -= 1
        chosen.append(g)
    if len(chosen) < need:
        raise ValueError(f"{kind} sparsity {sparsity} ({k} of {len(pool)}{where}) cannot be reached while keeping {floor} per layer")
    return chosen


def select_n_of_m(
    shapes: Mapping[str, torch.Size], score: Scorer, masks: Mapping[str, torch.Tensor] | None, n: int = 2, m: int = 4
) -> Masks:
    """N:M masks: in every row of every 2-D tensor, each block of ``m`` consecutive weights along
    the input dimension keeps its ``n`` highest-scoring weights (ties: the earlier position kept).

    Raises:
        ValueError: a tensor that is not 2-D or whose input dimension is not a multiple of ``m``;
            a block in which the current mask already prunes more than ``m − n`` weights.
    """
    new = {}
    for name, shape in shapes.items():
        if len(shape) != 2 or shape[1] % m:
            raise ValueError(f"{n}:{m} needs 2-D tensors whose input dimension is a multiple of {m}; {name} is {tuple(shape)}")
        s = score(name, None).detach().to("cpu", torch.float64).reshape(shape[0], shape[1] // m, m)
        current = None if masks is None else masks[name].reshape(shape[0], shape[1] // m, m)
        if current is not None:
            if bool(((~current).sum(-1) > m - n).any()):
                raise ValueError(f"{name}: a block of {m} already has more than {m - n} pruned weights; {n}:{m} cannot hold")
            s = s.masked_fill(~current, -math.inf)  # pruned weights stay pruned
        # stable ranking: the earlier position wins a tie
        rank = torch.argsort(torch.argsort(-s, dim=-1, stable=True), dim=-1)
        new[name] = (rank < n).reshape(shape)
    return new
