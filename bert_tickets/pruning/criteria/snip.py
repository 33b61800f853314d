"""SNIP: single-shot network pruning by connection sensitivity (Lee, Ajanthan & Torr 2019,
*SNIP: Single-shot Network Pruning based on Connection Sensitivity*, Section 4.1, Eq. 6).

The sensitivity of connection j is |∂L/∂c_j| at c = 1 for a mask c multiplying the weights,
which equals |g_j · w_j| with g = ∂L/∂w; the paper normalises by the sum over all connections,
which does not change a global ranking, so the score here is |g ⊙ w|. g is the gradient of the
task loss summed over the ``batches`` given (the paper uses one mini-batch of training data).

Decisions the paper leaves open for BERT: the loss is the task head's (a fresh head, as at
initialisation: SNIP prunes before training); the model is in evaluation mode while scoring (no
dropout, so the same batches give the same scores); weights already pruned score by their
current value like any other (the selection keeps them pruned); gradients are cleared after
scoring and the weights are not changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import PruningCriterion, register_criterion


def snip_scores(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], batches: Sequence[Mapping[str, Any]]
) -> dict[str, torch.Tensor]:
    """|∂L/∂w ⊙ w| for every tensor of ``weights`` (parameters of ``model``), with L the model's
    loss (``model(**batch).loss``) summed over ``batches``. Float32 scores of each weight's shape.

    Raises:
        ValueError: no batches, or a batch whose forward returns no loss (no ``labels``).
    """
    if not batches:
        raise ValueError("snip needs at least one batch of training data with labels")
    was_training = model.training
    model.eval()
    saved = {id(p): p.grad for p in weights.values()}
    for p in weights.values():
        p.grad = None
    try:
        with torch.enable_grad():
            device = next(model.parameters()).device
            for batch in batches:
                out = model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
                if getattr(out, "loss", None) is None:
                    raise ValueError("snip: the model returned no loss for a batch (does it carry labels?)")
                out.loss.backward()
        return {
            n: (w.grad.detach() * w.detach()).abs().float() if w.grad is not None else torch.zeros_like(w, dtype=torch.float32)
            for n, w in weights.items()
        }
    finally:
        model.zero_grad(set_to_none=True)
        for p in weights.values():
            p.grad = saved[id(p)]
        model.train(was_training)


@dataclass
class SnipOptions:
    """Options of ``snip``."""

    score_batches: int = field(
        default=1, metadata={"help": "training batches the scores are summed over (Lee et al. 2019, Section 4.1: one mini-batch)"}
    )

    def __post_init__(self):
        if self.score_batches < 1:
            raise ValueError(f"--score_batches must be >= 1, got {self.score_batches}")


@register_criterion
class SnipCriterion(PruningCriterion):
    """|∂L/∂w ⊙ w| on training batches (needs ``model`` and ``batches`` in the context)."""

    name = "snip"
    needs = frozenset({"batches", "seed"})
    at_init = True
    Options = SnipOptions
    summary = "connection sensitivity |dL/dw * w| on training batches (Lee et al. 2019), for pruning at initialisation"

    def batches_needed(self, options):
        return (options or SnipOptions()).score_batches

    def passes(self, steps: int, **context) -> dict[str, int]:
        n = steps * len(context.get("batches") or [])
        return {"score_forward": n, "score_backward": n}

    def scorer(self, weights, *, seed=0, model=None, batches=None, **context):
        if model is None:
            raise ValueError("snip needs the model (context model=)")
        scores = snip_scores(model, weights, batches or [])

        def snip(name: str, out: torch.Tensor | None) -> torch.Tensor:
            return scores[name]

        return snip
