"""Tickets and PEFT (LoRA and other ``base_layer`` tuners from the ``peft`` library).

* A ticket applies to a PEFT-wrapped model as to the plain one: mask keys resolve through the
  wrapper (``PeftModel`` -> base model) and through each tuner layer's ``base_layer``
  (``...attention.self.query.weight`` is ``...query.base_layer.weight`` under LoRA), see
  :func:`bert_tickets.ticket.prunable.resolve_mask_targets`. So ``ticket.apply(peft_model)``,
  ``ticket.count_nonzero_pruned(peft_model)`` and
  ``Trainer(model=peft_model, callbacks=[TicketCallback(ticket)])`` work unchanged; the callback
  keeps every pruned base weight exactly zero (frozen ones trivially, any trainable ones through
  its gradient hooks and re-zeroing).
* The low-rank update ``B·A`` itself is dense, so ``merge_and_unload()`` would fill the pruned
  positions. :func:`merge_with_ticket` merges and re-applies the mask, which is the same as
  merging only the surviving positions (the pruned base weights are zero, so
  ``M ⊙ (W + ΔW) = W + M ⊙ ΔW``), and reports the metric before and after.

Why a ticket is not a PEFT adapter type (``PeftModel.from_pretrained(base, ticket_repo)``): see
the README section "PEFT". Compose instead: apply the ticket, then load or create the adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..ticket import TicketMask, get_backbone, unwrap_model


@dataclass
class MergeReport:
    """Result of :func:`merge_with_ticket`.

    Attributes:
        model: the merged, unwrapped model (pruned weights exactly zero).
        metric_before: ``evaluate(peft_model)`` before merging (adapter active), or ``None``.
        metric_after: ``evaluate(model)`` after merging and re-masking, or ``None``.
        removed_nonzero: pruned positions the merged low-rank update had made non-zero (then
            reset to zero).
        removed_norm: L2 norm of the update entries removed at pruned positions.
        update_norm: L2 norm of the whole merged update over the masked tensors (``removed_norm
            / update_norm`` is the share of the adapter's update lost to the mask).
        sparsity: the ticket's sparsity (unchanged by the merge).
    """

    model: nn.Module
    metric_before: Any = None
    metric_after: Any = None
    removed_nonzero: int = 0
    removed_norm: float = 0.0
    update_norm: float = 0.0
    sparsity: float = 0.0

    def summary(self) -> str:
        """One line: metric before/after and what the mask removed from the update."""
        share = self.removed_norm / self.update_norm if self.update_norm else 0.0
        return (
            f"merge keeps sparsity {self.sparsity:.4f}: metric before {_fmt(self.metric_before)}, after {_fmt(self.metric_after)}; "
            f"{self.removed_nonzero:,} pruned positions reset ({share:.1%} of the update's L2 norm)"
        )


def _fmt(metric: Any) -> str:
    if metric is None:
        return "n/a"
    if isinstance(metric, Mapping):
        return "{" + ", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in metric.items()) + "}"
    return f"{metric:.4f}" if isinstance(metric, float) else str(metric)


def merge_with_ticket(
    peft_model: nn.Module,
    ticket: TicketMask,
    evaluate: Callable[[nn.Module], Any] | None = None,
    adapter_names: list[str] | None = None,
) -> MergeReport:
    """Merge a PEFT adapter into its base model and keep the ticket's sparsity.

    ``peft_model.merge_and_unload()`` adds the dense low-rank update ``ΔW = B·A·scale`` to every
    adapted weight; the mask is then applied to the merged model, so every pruned position is
    exactly zero again and surviving positions hold ``W + ΔW``. Because the base's pruned weights
    were zero, this equals merging only the surviving positions. The function the network
    computes changes by the removed part of ``ΔW``: pass ``evaluate`` to measure it.

    Args:
        peft_model: a ``peft.PeftModel`` (e.g. ``get_peft_model(ticketed_base, LoraConfig(...))``,
            trained with :class:`~bert_tickets.training.callback.TicketCallback`). Modified in place: the
            adapters are merged and removed (``merge_and_unload``).
        ticket: the ticket of the base model.
        evaluate: ``evaluate(model) -> float | dict`` (e.g. a ``Trainer.evaluate`` wrapper),
            called on the PEFT model before and on the merged model after.
        adapter_names: adapters to merge (default: the active ones).

    Returns:
        :class:`MergeReport` with the merged model (``torch.nn.Module``, no PEFT wrapper).

    Raises:
        ValueError: ``peft_model`` has no ``merge_and_unload``, or the ticket does not fit it
            (checked before anything is merged).
    """
    if not hasattr(peft_model, "merge_and_unload"):
        raise ValueError(f"{type(peft_model).__name__} is not a PEFT model with merge_and_unload()")
    targets = ticket.validate(peft_model)  # names/shapes through the wrapper, nothing touched yet
    before = {n: p.detach().clone() for n, p in targets.items()}
    was_training = peft_model.training
    metric_before = evaluate(peft_model) if evaluate is not None else None
    merged = peft_model.merge_and_unload(adapter_names=adapter_names) if adapter_names else peft_model.merge_and_unload()
    merged = unwrap_model(merged)
    params = dict(get_backbone(merged).named_parameters())
    removed_nonzero, removed_sq, update_sq = 0, 0.0, 0.0
    with torch.no_grad():
        for name, old in before.items():
            update = params[name].detach() - old.to(params[name].device)
            pruned = ~ticket.masks[name].to(update.device)
            removed = update[pruned]
            removed_nonzero += int(torch.count_nonzero(params[name].detach()[pruned]))
            removed_sq += float(removed.double().pow(2).sum())
            update_sq += float(update.double().pow(2).sum())
    ticket.apply(merged)
    if ticket.count_nonzero_pruned(merged):
        raise RuntimeError("pruned weights are non-zero after re-masking the merged model")  # pragma: no cover
    merged.train(was_training)
    metric_after = evaluate(merged) if evaluate is not None else None
    return MergeReport(merged, metric_before, metric_after, removed_nonzero, math.sqrt(removed_sq), math.sqrt(update_sq), ticket.sparsity)
