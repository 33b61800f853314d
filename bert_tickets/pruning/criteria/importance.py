"""Head and FFN-neuron importance: the gate-gradient importance of Michel et al. 2019, *Are
Sixteen Heads Really Better than One?* (Section 4.1, Eq. 2; Section 4.2 for the per-layer
normalisation), extended to FFN neurons. A structured-only criterion: ``--granularity head``,
``neuron`` or ``head+neuron``.

A gate ξ multiplies a unit's output: for head h the context vectors the head writes, for FFN
neuron j the activation of ``intermediate.dense`` row j. Its importance is

    I = Σ_b | ∂L_b / ∂ξ |  at ξ = 1,

summed over the scoring batches b — the absolute value taken per batch, as the reference
implementation of Michel et al.'s procedure in transformers does
(``examples/research_projects/bertology/run_bertology.py``, ``compute_heads_importance``:
``head_importance += head_mask.grad.abs()`` after each batch; the paper writes the expectation
over examples). No gate is inserted here: scaling a unit's output by ξ is the same as scaling the
matching *input columns* S of the next projection (``attention.output.dense`` for a head,
``output.dense`` for a neuron), so

    ∂L_b / ∂ξ = Σ_{i, j ∈ S} W_ij · (∂L_b / ∂W_ij),

one backward per batch, read from the weights' gradients (exact; the test checks it against
explicit gates). Gradients are cleared between batches (run_bertology.py and Liang et al.'s code
never clear them, so their later batches add the earlier batches' gradients again — read as an
oversight, not followed). Pruned units have zero weights and score 0.

How Liang et al. 2021 (*Super Tickets*; ``cliang1453/super-structured-lottery-tickets``,
``module/modeling_bert_masked.py``, ``mt_dnn/inference.py``) differ, and why this is not theirs:
their custom backward takes the absolute value per example and token position (Σ |g·o| over
tokens) rather than per batch; their FFN gate is one scalar per *layer* (whole FFN layers are
skipped), not per neuron; and they score once (one-shot masks at many sparsities from one
fine-tuned model), not per IMP level. Issue 22 asks for FFN-neuron granularity and IMP levels,
so the neuron gate and per-level scoring are ours; the per-batch absolute value is Michel et
al.'s.

**Normalisation** (``normalize_by_layer``, default on): each layer's scores of one kind are
divided by their L2 norm over that layer (Michel et al.'s ``normalize_scores_by_layer``, exponent
2, used for their global head ranking, Section 4.2; also on in every mask script of Liang et
al.). Without it a global ranking compares raw gradient magnitudes across layers and can empty a
layer (what summed magnitudes did on MiniLM: docs/results.md).

**Data**: training batches — the first ``score_batches`` the first seed's fine-tune draws
(``find`` passes them). run_bertology.py scores on the dev split and Liang et al. on the whole
training split; here the dev split decides matching, so scoring on it would leak, and a whole
epoch of backward passes per level would cost a third of a level's fine-tune.
``score_batches = 32`` (1,024 examples at batch 32) is our choice (a cost bound, not a
reference value); the option changes it.

**Per-weight form**: the pruning selection sums per-weight scores over a group's weights
(:mod:`..structured`); this criterion spreads each unit's (normalised) importance uniformly over
its gate columns and gives every other weight 0, so the group sum is exactly the unit's
importance. It has no meaning per weight: the weight granularity is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..structured import bert_groups
from .base import PruningCriterion, register_criterion

#: Training batches scored by default (module docstring).
DEFAULT_SCORE_BATCHES = 32


def _gate_columns(shapes: Mapping[str, torch.Size], num_heads: int) -> dict[str, list[tuple[str, str, int, int, slice]]]:
    """kind -> its units as (kind, gate tensor name, layer, index, column slice): the columns of the
    next projection a gate on the unit would scale."""
    out = {}
    for kind in ("head", "neuron"):
        units = []
        for g in bert_groups(shapes, num_heads, kind):
            name, _, sl = next(p for p in g.pieces if p[1] == 1)
            units.append((kind, name, g.layer, g.index, sl))
        out[kind] = units
    return out


def unit_importance(
    model: torch.nn.Module,
    weights: Mapping[str, torch.Tensor],
    batches: Sequence[Mapping[str, Any]],
    num_heads: int,
    *,
    normalize_by_layer: bool = True,
) -> dict[tuple[str, int, int], float]:
    """Michel et al.'s importance Σ_b |∂L_b/∂ξ| of every head and FFN neuron whose tensors are all
    in ``weights`` (backbone-relative names of ``model``'s parameters), optionally L2-normalised
    per layer and kind (module docstring).

    Args:
        model: the model (any BERT head) whose ``model(**batch).loss`` is differentiated.
        weights: name -> parameter of ``model``, the prunable tensors.
        batches: model-input dicts with labels (CPU or the model's device).
        num_heads: attention heads per layer.
        normalize_by_layer: divide each layer's scores of a kind by their L2 norm.

    Returns:
        ``(kind, layer, index)`` -> importance (float, ≥ 0), kind ``"head"`` or ``"neuron"``.

    Raises:
        ValueError: no batches, a batch without a loss, no head / neuron among ``weights``, or a
            gate tensor without a gradient (frozen).
    """
    if not batches:
        raise ValueError("importance needs at least one batch of training data with labels")
    units = _gate_columns({n: w.shape for n, w in weights.items()}, num_heads)
    if not units["head"] and not units["neuron"]:
        raise ValueError("importance: no attention head or FFN neuron among the prunable weights")
    # each gate tensor's units split its columns into equal consecutive slices (bert_groups order)
    per_gate: dict[str, list[tuple[str, int, int]]] = {}
    for kind_units in units.values():
        for kind, name, layer, index, _ in kind_units:
            per_gate.setdefault(name, []).append((kind, layer, index))
    sums = {name: torch.zeros(len(keys), dtype=torch.float64) for name, keys in per_gate.items()}
    was_training = model.training
    model.eval()  # no dropout: the same batches give the same scores
    saved = {id(p): p.grad for p in model.parameters()}
    device = next(model.parameters()).device
    try:
        with torch.enable_grad():
            for batch in batches:
                model.zero_grad(set_to_none=True)
                out = model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
                if getattr(out, "loss", None) is None:
                    raise ValueError("importance: the model returned no loss for a batch (does it carry labels?)")
                out.loss.backward()
                for name, acc in sums.items():
                    w = weights[name]
                    if w.grad is None:
                        raise ValueError(
                            f"importance: {name} got no gradient (frozen, or not on the loss's path); its units cannot be scored"
                        )
                    column = (w.detach().double() * w.grad.detach().double()).sum(0).cpu()  # ∂L_b/∂(column scale)
                    acc += column.view(len(acc), -1).sum(1).abs()  # |∂L_b/∂ξ| per unit
    finally:
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.grad = saved[id(p)]
        model.train(was_training)
    total = {key: float(v) for name, keys in per_gate.items() for key, v in zip(keys, sums[name], strict=True)}
    if normalize_by_layer:
        norms: dict[tuple[str, int], float] = {}
        for (kind, layer, _), v in total.items():
            norms[(kind, layer)] = norms.get((kind, layer), 0.0) + v * v
        total = {key: (v / norms[key[:2]] ** 0.5 if norms[key[:2]] > 0 else 0.0) for key, v in total.items()}
    return total


@dataclass
class ImportanceOptions:
    """Options of ``importance`` (module docstring for the defaults and their sources).

    Attributes:
        score_batches: training batches the importance is accumulated over.
        normalize_by_layer: L2-normalise each layer's scores per kind (Michel et al. 2019, §4.2).
    """

    score_batches: int = field(
        default=DEFAULT_SCORE_BATCHES,
        metadata={"help": "training batches the gate gradients are accumulated over (default 32: 1,024 examples at batch 32)"},
    )
    normalize_by_layer: bool = field(
        default=True,
        metadata={"help": "divide each layer's head (neuron) scores by their L2 norm before the global ranking (Michel et al. 2019)"},
    )

    def __post_init__(self):
        if self.score_batches < 1:
            raise ValueError(f"--score_batches must be >= 1, got {self.score_batches}")


@register_criterion
class ImportanceCriterion(PruningCriterion):
    """Michel et al.'s head / FFN-neuron importance Σ_b |∂L_b/∂ξ| on training batches, normalised
    per layer (module docstring); structured granularities only; needs ``model`` (with
    ``config.num_attention_heads``) and ``batches``; ``options`` (:class:`ImportanceOptions`)."""

    name = "importance"
    needs = frozenset({"batches", "seed"})
    granularities = ("head", "neuron", "head+neuron")
    Options = ImportanceOptions
    summary = "head / FFN-neuron importance |dL/d gate| on training batches (Michel et al. 2019), structured granularities"

    def batches_needed(self, options):
        return (options or ImportanceOptions()).score_batches

    def passes(self, steps: int, **context) -> dict[str, int]:
        n = steps * len(context.get("batches") or [])
        return {"score_forward": n, "score_backward": n}

    def scorer(self, weights, *, seed=0, model=None, batches=None, **context):
        heads = getattr(getattr(model, "config", None), "num_attention_heads", None)
        if model is None or heads is None:
            raise ValueError("importance needs the model and its config.num_attention_heads (context model=)")
        options = self._options(context)
        scores = unit_importance(model, weights, batches or [], heads, normalize_by_layer=options.normalize_by_layer)
        # float64: the group sums give back the units' scores to ~1e-16 (float32 could swap near ties)
        spread = {n: torch.zeros(w.shape, dtype=torch.float64) for n, w in weights.items()}
        for kind_units in _gate_columns({n: w.shape for n, w in weights.items()}, heads).values():
            for kind, name, layer, index, sl in kind_units:
                cols = spread[name][:, sl]
                cols.fill_(scores[(kind, layer, index)] / cols.numel())

        def importance(name: str, out: torch.Tensor | None) -> torch.Tensor:
            return spread[name]

        return importance
