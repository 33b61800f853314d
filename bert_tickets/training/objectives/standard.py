"""The ``standard`` objective: the model's own loss (the Trainer's ``compute_loss``), the default.
``finetune`` builds a stock ``Trainer`` for it: the same numbers as before objectives existed."""

from __future__ import annotations

from .base import TrainingObjective, register_objective


@register_objective
class StandardObjective(TrainingObjective):
    """``base_loss(model, inputs)`` unchanged (no options)."""

    name = "standard"
    summary = "the model's own loss (default)"
    standard = True

    def loss(self, model, inputs, options, base_loss):
        return base_loss(model, inputs)
