"""The ``attention_labels`` objective: the label loss plus λ · KL(attention labels ‖ the model's
attention), the inner loss of Maekawa et al. 2023 (*Dataset Distillation with Attention Labels
for Fine-tuning BERT*, Section 3; their ``src/trainer.py``: ``F.kl_div(log(attn + 1e-12),
attention_labels).sum(-1).mean()`` over the examples, layers, heads and the query rows the labels
cover). Used to train on a set made by ``bert-tickets distill`` with the loss it was distilled
with (``find --mask_data``). A batch without ``attention_labels`` gets the base loss only.

The model must compute attention probabilities (``attn_implementation="eager"``); a batch whose
forward returns none raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import TrainingObjective, register_objective


def attention_kl(attentions: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    """KL(labels ‖ attention) summed over keys and averaged over examples, layers, heads and the
    query rows ``labels`` covers.

    Args:
        attentions: per layer ``(n, heads, L, L)`` attention probabilities.
        labels: ``(n, layers, heads, R, L)`` attention-label probabilities for the first ``R``
            query rows (R = 1: the [CLS] row; R = L: every row).
    """
    att = torch.stack(attentions, dim=1)[..., : labels.shape[-2], :]
    return (labels * (labels.clamp_min(1e-12).log() - (att + 1e-12).log())).sum(-1).mean()


@dataclass
class AttentionLabelOptions:
    """Options of the ``attention_labels`` objective."""

    weight: float = field(default=1.0, metadata={"help": "λ: weight of the attention-label KL (Maekawa et al.: 1.0)"})

    def __post_init__(self):
        if self.weight < 0:
            raise ValueError(f"training objective attention_labels: weight must be >= 0, got {self.weight}")


@register_objective
class AttentionLabelObjective(TrainingObjective):
    """Base loss + ``weight`` · :func:`attention_kl` against the batch's ``attention_labels``."""

    name = "attention_labels"
    summary = "label loss + λ · KL to the batch's attention labels (a distilled set's inner loss, Maekawa et al. 2023)"
    Options = AttentionLabelOptions

    def loss(self, model, inputs, options, base_loss):
        inputs = dict(inputs)
        labels = inputs.pop("attention_labels", None)
        if labels is None or options.weight == 0:
            return base_loss(model, inputs)
        loss, outputs = base_loss(model, {**inputs, "output_attentions": True})
        attentions = getattr(outputs, "attentions", None)
        if not attentions:
            raise ValueError("training objective attention_labels: the model returned no attention probabilities (use eager attention)")
        return loss + options.weight * attention_kl(attentions, labels.to(attentions[0].dtype)), outputs
