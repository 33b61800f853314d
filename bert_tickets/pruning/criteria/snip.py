"""SNIP: single-shot network pruning by connection sensitivity (Lee, Ajanthan & Torr 2019,
*SNIP: Single-shot Network Pruning based on Connection Sensitivity*, Section 4.1, Eq. 6).

The sensitivity of connection j is |∂L/∂c_j| at c = 1 for a mask c multiplying the weights,
which equals |g_j · w_j| with g = ∂L/∂w; the paper normalises by the sum over all connections,
which does not change a global ranking, so the score here is |g ⊙ w|. g is the gradient of the
task loss summed over the ``batches`` given, i.e. |(Σ_b g_b) ⊙ w| — the gradient is accumulated
before the absolute value, as the reference implementation of Tanaka et al. does
(ganguli-lab/Synaptic-Flow, ``Pruners/pruners.py``, ``SNIP.score``: ``loss(...).backward()`` over
the whole pruning loader, then ``|m.grad|``), so several batches act as one larger batch.

Defaults and why:

* **score_batches = 4**: both reference implementations score on about 100 training examples —
  namhoonlee/snip-public ``snip/prune.py`` draws one batch of ``--batch_size`` (default 100,
  ``snip/main.py``); Synaptic-Flow's pruning loader holds ``--prune-dataset-ratio`` (10) examples
  per class, 100 for CIFAR-10, in one batch of ``--prune-batch-size`` 256 (``main.py``). At the
  GLUE training batch size of 32 (``tasks/spec.py``) that is ⌈100 / 32⌉ = 4 batches. One batch
  of 32 (the earlier default, ``score_batches=1``) is a third of the reference's sample.
* **center_targets = True** (regression heads only: float labels and ``num_labels == 1``, e.g.
  STS-B): the labels are centred by their mean over all scoring batches before the loss. A fresh
  regression head predicts ≈ 0, so with raw labels (STS-B: mean 2.4 on a 0–5 scale) the MSE
  gradient is dominated by the label offset and SNIP mostly measures how each weight moves the
  mean prediction, not the label-dependent part. Centring the targets is exactly equivalent, for
  the MSE loss, to setting the head's bias to the label mean — (f + ȳ − y)² = (f − (y − ȳ))² —
  which the tests check; centring is used because it leaves the model untouched. The papers
  score classifiers only (cross-entropy has no such offset), so this is our adaptation.
  ``center_targets=false`` restores the raw labels. Classification labels are never changed.

Other decisions the paper leaves open for BERT: the loss is the task head's (a fresh head, as at
initialisation: SNIP prunes before training); the model is in evaluation mode while scoring (no
dropout, so the same batches give the same scores; Synaptic-Flow's ``prune_loop`` also scores in
evaluation mode by default, ``--prune-train-mode False``); weights already pruned score by their
current value like any other (the selection keeps them pruned); gradients are cleared after
scoring and the weights are not changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import PruningCriterion, register_criterion


def is_regression(model: torch.nn.Module, labels: Any) -> bool:
    """Whether ``labels`` are regression targets of ``model``: a floating-point tensor and a
    single-output head (``config.num_labels == 1``, ``problem_type`` unset or ``"regression"``,
    the rule by which ``transformers``' sequence-classification heads choose the MSE loss)."""
    config = getattr(model, "config", None)
    return (
        isinstance(labels, torch.Tensor)
        and labels.is_floating_point()
        and getattr(config, "num_labels", None) == 1
        and getattr(config, "problem_type", None) in (None, "regression")
    )


def label_mean(model: torch.nn.Module, batches: Sequence[Mapping[str, Any]]) -> float | None:
    """The mean of the regression targets over all ``batches`` (every example weighted equally),
    or ``None`` when the labels are not regression targets (:func:`is_regression`)."""
    labels = [b.get("labels") for b in batches]
    if not labels or not all(is_regression(model, y) for y in labels):
        return None
    flat = torch.cat([y.detach().double().reshape(-1).cpu() for y in labels])
    return float(flat.mean())


def snip_scores(
    model: torch.nn.Module,
    weights: Mapping[str, torch.Tensor],
    batches: Sequence[Mapping[str, Any]],
    *,
    center_targets: bool = True,
) -> dict[str, torch.Tensor]:
    """|(Σ_b ∂L_b/∂w) ⊙ w| for every tensor of ``weights`` (parameters of ``model``), with L_b
    the model's loss (``model(**batch).loss``) on batch b of ``batches``; with
    ``center_targets`` regression labels are centred by their mean over all batches first
    (module docstring; classification labels are left as they are). Float32 scores of each
    weight's shape.

    Raises:
        ValueError: no batches, or a batch whose forward returns no loss (no ``labels``).
    """
    if not batches:
        raise ValueError("snip needs at least one batch of training data with labels")
    offset = label_mean(model, batches) if center_targets else None
    if offset is not None:
        batches = [{**b, "labels": b["labels"] - offset} for b in batches]
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


#: Training batches SNIP scores on by default: ⌈100 / 32⌉, the references' ~100 examples at the
#: GLUE batch size (module docstring).
DEFAULT_SCORE_BATCHES = 4


@dataclass
class SnipOptions:
    """Options of ``snip`` (module docstring for the defaults and their sources).

    Attributes:
        score_batches: training batches whose loss gradients are summed before scoring.
        center_targets: centre regression labels by their mean over the scoring batches.
    """

    score_batches: int = field(
        default=DEFAULT_SCORE_BATCHES,
        metadata={
            "help": "training batches the gradient is summed over (default 4: the reference implementations' ~100 examples at batch size 32)"
        },
    )
    center_targets: bool = field(
        default=True,
        metadata={"help": "centre regression labels by their mean over the scoring batches (= head bias at the label mean)"},
    )

    def __post_init__(self):
        if self.score_batches < 1:
            raise ValueError(f"--score_batches must be >= 1, got {self.score_batches}")


@register_criterion
class SnipCriterion(PruningCriterion):
    """|(Σ_b ∂L_b/∂w) ⊙ w| on training batches, regression targets centred (module docstring);
    needs ``model`` and ``batches`` in the context; ``options`` (:class:`SnipOptions`)."""

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
        scores = snip_scores(model, weights, batches or [], center_targets=self._options(context).center_targets)

        def snip(name: str, out: torch.Tensor | None) -> torch.Tensor:
            return scores[name]

        return snip
