"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka, Kunin, Yamins & Ganguli 2020,
*Pruning neural networks without any data by iteratively conserving synaptic flow*, Section 6,
Algorithm 1).

The score of weight w is |w · ∂R/∂w| with R the summed output of the network whose weights are
replaced by their absolute values, run on an all-ones input (R = 1ᵀ (∏ |W_l|) 1 for a chain
without skips); the mask is reached in ``score_iterations`` rounds (default 100, as in the
paper) on an exponential schedule, every round re-scoring the surviving weights
(:meth:`SynflowCriterion.sparsity_steps`).

The reference implementation (ganguli-lab/Synaptic-Flow, ``Pruners/pruners.py``, ``SynFlow.score``)
runs the *real* model with every parameter replaced by its absolute value on an all-ones input
(in evaluation mode, ``prune.py``: ``prune_loop``; commit 9dfa57a) and sums the output; its
ResNets keep their skip connections in that pass. BERT cannot be run that way, for three exact
reasons:

* **Softmax attention**: every token of an all-ones input is identical, so every row of
  attention logits is constant whatever W_Q and W_K are; the attention output does not change
  when they change, ∂R/∂W_Q = ∂R/∂W_K = 0 exactly, and every query and key weight would be pruned
  first (layer collapse).
* **LayerNorm** (after every residual sum, and after the embeddings): it maps an all-ones input
  to its bias exactly (x − mean(x) = 0), and in general its output does not depend on its
  input's scale (degree 0), so no flow reaches the tensors before it; its centring also makes
  activations negative, breaking the positivity the conservation laws of Tanaka et al.
  (Theorems 1–2) rest on.
* **Embeddings** take token ids, not a vector; they are not prunable.

So R is computed on a *linearised encoder* that keeps the model's topology — both residual
(skip) connections of every layer, ``h ← h + Attn(h)`` then ``h ← h + FFN(h)``, as
``BertLayer`` has them — and replaces the three operations above; each choice and why:

* **Input**: the all-ones vector of the hidden size at the first encoder layer (the paper's
  all-ones input; embeddings are left out). One token: every token of an all-ones input is
  identical anyway.
* **Attention**: each head's value output is scaled by a *gate*
  ``g_j = (|W_Q| 1)_j · (|W_K| 1)_j`` (the head-j slices of the query and key of the all-ones
  vector): the bilinear form QKᵀ without softmax, evaluated on the constant input so that R stays
  of degree ≤ 1 in every weight tensor, and Q and K receive flow. Evaluating it on the layer's
  input would make R cubic in earlier layers, and by Euler's theorem an early tensor would then
  carry 3^(depth) times the flow of a late one. With the skip kept, the gates are divided by
  their (detached) mean over the layer's heads: softmax weights sum to 1, so on identical tokens
  the real attention block outputs exactly ``W_O W_V h``; the gate only shares the flow among
  heads and keeps the branch at the real block's scale next to the skip.
* **GELU** is the identity (GELU(x) ≈ x for the positive activations of |θ|), and **LayerNorm**
  and **biases** are dropped (biases add paths that bypass the weights before them).
* **Residual connections are kept** (``residual=True``, the default). Consequence: R is affine,
  not linear, in each tensor of a branch, so by Euler's theorem a tensor's scores sum to the flow
  through its branch, ``R − R(tensor = 0)``, rather than to R (the tests check both). A branch of
  small scale can therefore be emptied — but unlike layer collapse in a chain this does not
  disconnect the network: the skip carries the flow around it, as in the real model. The
  pooler, on no skip, still carries all of R. On |θ| a branch's gain is about
  ``(fan_in · mean |w|)`` per matrix (≫ 1 on a trained checkpoint), so the skip carries a small
  share of the flow there; README, *Pruning at initialisation*, gives the counts of fully
  pruned rows and columns measured with and without it.
* ``residual=False`` is the earlier chain without skips (``h ← FFN(Attn(h))``, gates not
  normalised), exactly as computed before: every tensor's scores then sum to R (the paper's
  Theorem 2), so no tensor can be emptied by scale alone, but the flow has to pass through every
  branch.
* **Numerics**: float64, and after each layer the activation is divided by its (detached) sum;
  R is of degree 1 in the input, so a detached constant multiplies every score by one common
  factor, the ranking is unchanged, and a 24-layer encoder does not overflow.
* The pooler (when the model has one) closes the chain whether or not it is prunable; tensors
  outside the prunable set (e.g. an excluded pooler) carry flow with their |θ| but are not scored.
* Weights already pruned are zero in the linearised network (the current mask is applied).

Fully pruned rows and columns: the score of w_ij is ``a_i · |w_ij| · b_j`` (``b`` the flow into
the matrix, ``a`` the flow back from R), so the scores of a unit's incoming and outgoing weights
fall together (the paper's Theorem 1, neuron-wise conservation) and iterative re-scoring can
remove whole units. :func:`~bert_tickets.pruning.collapse.pruned_rows_columns` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ...ticket.prunable import backbone_parameters, get_backbone
from .base import PruningCriterion, register_criterion

#: The paper's number of pruning rounds (Tanaka et al. 2020, Section 6).
DEFAULT_SCORE_ITERATIONS = 100

_LAYER_TENSORS = (
    "attention.self.query.weight",
    "attention.self.key.weight",
    "attention.self.value.weight",
    "attention.output.dense.weight",
    "intermediate.dense.weight",
    "output.dense.weight",
)


def _chain(model: torch.nn.Module, params: Mapping[str, torch.Tensor]) -> tuple[list[list[str]], str | None, int]:
    """The linearised encoder's tensors among ``params`` (the model's backbone parameters): per
    layer the six matrices of ``_LAYER_TENSORS`` (backbone-relative names), the pooler's weight
    name (or ``None``) and the head count."""
    config = get_backbone(model).config
    layers = [[f"encoder.layer.{i}.{t}" for t in _LAYER_TENSORS] for i in range(config.num_hidden_layers)]
    missing = [n for layer in layers for n in layer if n not in params]
    if missing:
        raise ValueError(f"synflow needs a BERT encoder; the model has no {missing[0]!r}")
    pooler = "pooler.dense.weight" if "pooler.dense.weight" in params else None
    return layers, pooler, int(config.num_attention_heads)


def synflow_flow(
    tensors: Mapping[str, torch.Tensor], layers: list[list[str]], pooler: str | None, num_heads: int, *, residual: bool = True
) -> torch.Tensor:
    """R of the linearised encoder (see the module docstring) for ``tensors``: name -> the
    non-negative float64 matrix used for each weight (|θ| with the mask applied), shape
    ``(out_features, in_features)``; ``residual`` keeps the two skip connections of every layer
    (``False``: the chain without them). Returns a float64 scalar (with autograd)."""
    first = tensors[layers[0][0]]
    ones = torch.ones(first.shape[1], dtype=torch.float64, device=first.device)
    h = ones
    for wq, wk, wv, wo, wi, w2 in ([tensors[n] for n in layer] for layer in layers):
        head = wq.shape[0] // num_heads
        gate = ((wq @ ones) * (wk @ ones)).reshape(num_heads, head).sum(dim=1)  # (heads,)
        if residual:
            mean = gate.mean().detach()
            gate = gate / mean if mean > 0 else gate  # softmax's unit row sum: the real block's scale
        v = (wv @ h).reshape(num_heads, head) * gate[:, None]
        attention = wo @ v.reshape(-1)
        h = h + attention if residual else attention
        ffn = w2 @ (wi @ h)
        h = h + ffn if residual else ffn
        total = h.sum().detach()
        h = h / total if total > 0 else h
    if pooler is not None:
        h = tensors[pooler] @ h
    return h.sum()


def synflow_scores(
    model: torch.nn.Module,
    weights: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    residual: bool = True,
) -> dict[str, torch.Tensor]:
    """|w · ∂R/∂w| for every tensor of ``weights`` (backbone-relative names of ``model``'s
    prunable weights), R the summed output of the linearised encoder on |θ| ⊙ mask (module
    docstring), with its skip connections unless ``residual`` is ``False``. Float32 scores of
    each weight's shape (computed in float64); the model is not changed.

    Raises:
        ValueError: the model is not a BERT encoder, or a weight in ``weights`` is not one of
            the chain's matrices (embeddings, heads).
    """
    params = backbone_parameters(model)
    layers, pooler, heads = _chain(model, params)
    chain = [n for layer in layers for n in layer] + ([pooler] if pooler else [])
    outside = [n for n in weights if n not in chain]
    if outside:
        raise ValueError(f"synflow scores the encoder's matrices and the pooler only, not {outside[0]!r}")
    tensors = {}
    for n in chain:
        t = params[n].detach().to(torch.float64).abs()
        if masks is not None and n in masks:
            t = t * masks[n].to(t.device)
        tensors[n] = t.requires_grad_(n in weights)
    with torch.enable_grad():
        flow = synflow_flow(tensors, layers, pooler, heads, residual=residual)
        grads = torch.autograd.grad(flow, [tensors[n] for n in weights])
    return {n: (tensors[n].detach() * g).float().cpu() for n, g in zip(weights, grads)}


def exponential_sparsities(start: float, sparsity: float, iterations: int) -> list[float]:
    """Sparsities of ``iterations`` rounds from ``start`` to ``sparsity`` with the kept fraction
    shrinking geometrically: round k keeps ``(1 − start) · ((1 − sparsity)/(1 − start))^(k/n)``
    (Tanaka et al. 2020, Section 6: "exponential pruning schedule"). The last entry is exactly
    ``sparsity``; ``[sparsity]`` when nothing is left to prune.

    Raises:
        ValueError: ``iterations`` < 1.
    """
    if iterations < 1:
        raise ValueError(f"--score_iterations must be >= 1, got {iterations}")
    if sparsity <= start:
        return [sparsity]
    ratio = (1.0 - sparsity) / (1.0 - start)
    steps = [1.0 - (1.0 - start) * math.pow(ratio, k / iterations) for k in range(1, iterations)]
    return [*steps, sparsity]


@dataclass
class SynflowOptions:
    """Options of ``synflow`` (module docstring for the reasons).

    Attributes:
        score_iterations: pruning rounds on the exponential schedule (Tanaka et al. 2020,
            Section 6: 100).
        residual: keep the encoder's skip connections in the flow (the reference runs the real
            model, skips included); ``False``: the earlier chain without them.
    """

    score_iterations: int = field(
        default=DEFAULT_SCORE_ITERATIONS,
        metadata={"help": "pruning rounds on the exponential schedule (Tanaka et al. 2020, Section 6: 100)"},
    )
    residual: bool = field(
        default=True,
        metadata={"help": "keep the skip connections in the flow, as the reference's real-model pass does (false: the earlier chain)"},
    )

    def __post_init__(self):
        if self.score_iterations < 1:
            raise ValueError(f"--score_iterations must be >= 1, got {self.score_iterations}")


@register_criterion
class SynflowCriterion(PruningCriterion):
    """|w · ∂R/∂w| of a linearised encoder on |θ| with its skip connections, iterated (module
    docstring); data-free. Context: ``model`` (required), ``masks`` (the current mask),
    ``options`` (:class:`SynflowOptions`; ``score_iterations=N`` is accepted too)."""

    name = "synflow"
    needs = frozenset({"iterates"})
    at_init = True
    Options = SynflowOptions
    summary = "iterative synaptic flow |w * dR/dw| on |theta| with the skip connections, data-free (Tanaka et al. 2020), for pruning at initialisation"

    def sparsity_steps(self, start: float, sparsity: float, **context: Any) -> list[float]:
        iterations = context.get("score_iterations") or self._options(context).score_iterations
        return exponential_sparsities(start, sparsity, int(iterations))

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        return {"score_forward": steps, "score_backward": steps}

    def scorer(self, weights, *, seed=0, model=None, masks=None, **context):
        if model is None:
            raise ValueError("synflow needs the model (context model=)")
        scores = synflow_scores(model, weights, masks, residual=self._options(context).residual)
        return lambda name, out: scores[name]
