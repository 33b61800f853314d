"""Sharpness of a trained (sparse) network on real batches: the top Hessian eigenvalue by
Hessian-vector-product power iteration and the Hessian trace by Hutchinson's estimator, over the
*unpruned* weights only (McDermott et al. 2023, *Linear Mode Connectivity in Sparse Neural
Networks*, Section 5, measure sharpness to explain why IMP on distilled data gives stabler
subnetworks).

Decision: their code (luke-mcdermott-mi/SyntheticDataForIMP, ``calc_hessian.py``) computes the
exact Hessian *diagonal*, one backward pass per weight — infeasible for the 10M+ prunable
weights of BERT. Two standard estimators replace it, both from Hessian-vector products
(Pearlmutter 1994; double backward through ``torch.autograd.grad``):

* **top eigenvalue** λ_max by power iteration (as PyHessian, Yao et al. 2020): v ← Hv/‖Hv‖,
  λ = vᵀHv, stopped when λ changes by less than ``tol`` (relative) or after ``iterations``;
  deterministic given the start vector's seed. Power iteration converges to the eigenvalue of
  largest *magnitude*; at a trained minimum that is the largest positive one.
* **trace** tr(H) by Hutchinson (1990): E[vᵀHv] with Rademacher v; unbiased, with variance
  2 Σ_{i≠j} H_ij² per sample — the result carries the standard error of the mean over
  ``samples`` draws.

Pruned weights are held out: the vectors are masked (zero at pruned positions), so the estimates
are those of the Hessian restricted to the subnetwork. Eager attention is needed for the double
backward through attention on CPU (PyTorch's CPU SDPA backward has no double backward): the
caller loads the model with ``attn_implementation="eager"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch


def _params(model: torch.nn.Module, masks: Mapping[str, torch.Tensor] | None) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    keep = []
    for n, p in named:
        m = None
        if masks is not None:
            m = next((masks[k] for k in masks if n == k or n.endswith("." + k)), None)
        keep.append(None if m is None else m.to(device=p.device, dtype=p.dtype))
    return params, keep


def _masked(vs: Sequence[torch.Tensor], keep: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    return [v if m is None else v * m for v, m in zip(vs, keep, strict=True)]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b, strict=True)))


def hessian_vector_product(
    loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], vector: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """H·v of the scalar ``loss_fn()`` w.r.t. ``params`` (Pearlmutter's trick: the gradient of
    g·v, one forward and two backward passes). ``vector`` has the shapes of ``params``."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector, strict=True))
    return [h.detach() for h in torch.autograd.grad(dot, params)]


def top_eigenvalue(
    model: torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    iterations: int = 20,
    tol: float = 1e-3,
    seed: int = 0,
) -> dict[str, float | int]:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` over the trainable
    parameters of ``model`` restricted to the unpruned weights of ``masks`` (backbone-relative
    or full names -> ``torch.bool``, ``True`` = kept; ``None``: all weights).

    Returns:
        ``{"eigenvalue", "iterations", "converged"}`` (``converged``: 1 when the relative change
        fell below ``tol``).

    Raises:
        ValueError: ``iterations`` < 1.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    params, keep = _params(model, masks)
    gen = torch.Generator().manual_seed(seed)
    v = _masked([torch.randn(p.shape, generator=gen).to(p) for p in params], keep)
    norm = math.sqrt(_dot(v, v))
    v = [x / norm for x in v]
    eigen, done = 0.0, 0
    for i in range(1, iterations + 1):
        hv = _masked(hessian_vector_product(loss_fn, params, v), keep)
        new = _dot(v, hv)
        norm = math.sqrt(_dot(hv, hv))
        if norm == 0.0:
            return {"eigenvalue": 0.0, "iterations": i, "converged": 1}
        v = [x / norm for x in hv]
        if i > 1 and abs(new - eigen) <= tol * max(abs(eigen), 1e-12):
            return {"eigenvalue": new, "iterations": i, "converged": 1}
        eigen, done = new, i
    return {"eigenvalue": eigen, "iterations": done, "converged": 0}


def hutchinson_trace(
    model: torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    samples: int = 10,
    seed: int = 0,
) -> dict[str, float | int]:
    """Hutchinson's estimate of tr(H) over the unpruned weights: the mean of vᵀHv over
    ``samples`` Rademacher vectors v (±1, zero at pruned weights), with its standard error.

    Returns:
        ``{"trace", "stderr", "samples"}`` (``stderr`` is ``nan`` for one sample).

    Raises:
        ValueError: ``samples`` < 1.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    params, keep = _params(model, masks)
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        v = _masked([(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params], keep)
        values.append(_dot(v, hessian_vector_product(loss_fn, params, v)))
    mean = sum(values) / len(values)
    stderr = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1) / len(values)) if len(values) > 1 else float("nan")
    return {"trace": mean, "stderr": stderr, "samples": len(values)}
