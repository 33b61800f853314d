"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka, Kunin, Yamins & Ganguli 2020,
*Pruning neural networks without any data by iteratively conserving synaptic flow*, Section 6,
Algorithm 1).

The score of weight w is |w · ∂R/∂w| with R = 1ᵀ (∏ |W_l|) 1, the summed output of the network
whose weights are replaced by their absolute values, run on an all-ones input; the mask is
reached in ``score_iterations`` rounds (default 100, as in the paper) on an exponential
schedule, every round re-scoring the surviving weights (:meth:`SynflowCriterion.sparsity_steps`).

BERT is not the homogeneous feed-forward network of the paper's theory, so R is computed on a
*linearised encoder*; each choice and why:

* **Input**: the all-ones vector of the hidden size at the first encoder layer (the paper's
  all-ones input; embeddings are not prunable and are left out). One token: every token of an
  all-ones input is identical anyway.
* **Attention**: with identical tokens softmax attention is uniform, so Q and K would receive no
  flow at all and be pruned first (layer collapse). Instead each head's value output is scaled
  by a *gate* ``g_j = (|W_Q| 1)_j · (|W_K| 1)_j`` (the head-j slices of the query and key of the
  all-ones vector): the bilinear form QKᵀ without softmax, evaluated on the constant input so
  that R stays *multilinear* — of degree 1 in every weight tensor. Evaluating it on the layer's
  input would make R cubic in earlier layers, and by Euler's theorem an early tensor would then
  carry 3^(depth) times the flow of a late one, pruning the late layers away.
* **GELU** is replaced by the identity and **LayerNorm**, **biases** and **residual
  connections** are dropped: LayerNorm divides out scale (it would cut the flow), biases add
  paths that bypass the weights before them, and a residual lets the flow skip a tensor — a
  scaled-down tensor would then lose its flow and collapse, the failure SynFlow exists to avoid.
* Consequence (the paper's Theorem 2, which the tests check): R is degree 1 in each weight
  tensor, so every tensor's scores sum to the same R — no tensor can be emptied by scale alone.
* **Numerics**: float64, and after each layer the activation is divided by its (detached) sum;
  a detached constant multiplies every score by one common factor, so the ranking is unchanged
  and a 24-layer encoder does not overflow.
* The pooler (when the model has one) closes the chain whether or not it is prunable; tensors
  outside the prunable set (e.g. an excluded pooler) carry flow with their |θ| but are not scored.
* Weights already pruned are zero in the linearised network (the current mask is applied).
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


def synflow_flow(tensors: Mapping[str, torch.Tensor], layers: list[list[str]], pooler: str | None, num_heads: int) -> torch.Tensor:
    """R of the linearised encoder (see the module docstring) for ``tensors``: name -> the
    non-negative float64 matrix used for each weight (|θ| with the mask applied), shape
    ``(out_features, in_features)``. Returns a float64 scalar (with autograd)."""
    first = tensors[layers[0][0]]
    ones = torch.ones(first.shape[1], dtype=torch.float64, device=first.device)
    h = ones
    for wq, wk, wv, wo, wi, w2 in ([tensors[n] for n in layer] for layer in layers):
        head = wq.shape[0] // num_heads
        gate = ((wq @ ones) * (wk @ ones)).reshape(num_heads, head).sum(dim=1)  # (heads,)
        v = (wv @ h).reshape(num_heads, head) * gate[:, None]
        h = w2 @ (wi @ (wo @ v.reshape(-1)))
        h = h / h.sum().detach()
    if pooler is not None:
        h = tensors[pooler] @ h
    return h.sum()


def synflow_scores(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """|w · ∂R/∂w| for every tensor of ``weights`` (backbone-relative names of ``model``'s
    prunable weights), R the summed output of the linearised encoder on |θ| ⊙ mask (module
    docstring). Float32 scores of each weight's shape (computed in float64); the model is not
    changed.

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
        flow = synflow_flow(tensors, layers, pooler, heads)
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
    """Options of ``synflow``."""

    score_iterations: int = field(
        default=DEFAULT_SCORE_ITERATIONS,
        metadata={"help": "pruning rounds on the exponential schedule (Tanaka et al. 2020, Section 6: 100)"},
    )

    def __post_init__(self):
        if self.score_iterations < 1:
            raise ValueError(f"--score_iterations must be >= 1, got {self.score_iterations}")


@register_criterion
class SynflowCriterion(PruningCriterion):
    """|w · ∂R/∂w| of a linearised encoder on |θ|, iterated (module docstring); data-free.
    Context: ``model`` (required), ``masks`` (the current mask), ``options``
    (:class:`SynflowOptions`; ``score_iterations=N`` is accepted too)."""

    name = "synflow"
    needs = frozenset({"iterates"})
    at_init = True
    Options = SynflowOptions
    summary = "iterative synaptic flow |w * dR/dw| on |theta|, data-free (Tanaka et al. 2020), for pruning at initialisation"

    def sparsity_steps(self, start: float, sparsity: float, **context: Any) -> list[float]:
        iterations = context.get("score_iterations") or self._options(context).score_iterations
        return exponential_sparsities(start, sparsity, int(iterations))

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        return {"score_forward": steps, "score_backward": steps}

    def scorer(self, weights, *, seed=0, model=None, masks=None, **context):
        if model is None:
            raise ValueError("synflow needs the model (context model=)")
        scores = synflow_scores(model, weights, masks)
        return lambda name, out: scores[name]
