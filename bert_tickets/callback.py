"""`TicketCallback`: keep a ticket's pruned weights exactly zero while a stock
``transformers.Trainer`` fine-tunes the model (fine-tuning a subnetwork in isolation, Chen et
al. 2020, Section 3).

Mechanism (no re-parametrisation, no weight copies):

* a tensor hook on every masked parameter multiplies its gradient by the mask during backward,
  *before* the gradient is accumulated into ``.grad`` — so pruned gradients are zero for
  gradient clipping, for DDP's all-reduce and for the optimizer, and Adam's moments stay zero
  at pruned positions;
* after every optimizer step the pruned weights are re-zeroed (``on_optimizer_step``), which
  also undoes anything an optimizer does without a gradient (e.g. decoupled weight decay of a
  non-zero value).

Memory: the ``torch.bool`` mask on the parameters' device — 1 byte per prunable weight.

Known pitfall (transformers 5.x): ``Trainer`` treats a model whose ``forward`` takes
``**kwargs`` as normalising its own loss by ``num_items_in_batch``. BERT heads accept
``**kwargs`` but ignore it, so with gradient accumulation the loss is not divided by the
accumulation steps (and under DDP it is multiplied by the world size). Call
:func:`fix_loss_scaling` on the model *before* building the ``Trainer``; the callback warns when
it sees the problem.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import TrainerCallback

from .mask import TicketMask
from .prunable import unwrap_model

logger = logging.getLogger(__name__)


def fix_loss_scaling(model: nn.Module) -> nn.Module:
    """Make ``Trainer`` scale the loss for gradient accumulation / DDP itself.

    BERT models accept ``**kwargs`` in ``forward`` but compute a plain mean loss that ignores
    ``num_items_in_batch``; setting ``model.accepts_loss_kwargs = False`` (an attribute
    ``Trainer`` reads in its constructor) makes ``Trainer`` divide by the accumulation steps as
    it should. Must be called before ``Trainer(...)``. For a PEFT-wrapped model the attribute is
    set on the wrapped base model too (``Trainer`` reads it there). Returns ``model``.
    """
    model.accepts_loss_kwargs = False
    inner = unwrap_model(model)
    if inner is not model:
        inner.accepts_loss_kwargs = False
    return model


class TicketCallback(TrainerCallback):
    """Keeps the weights pruned by ``mask`` exactly zero during ``Trainer.train()``.

    Usage: ``Trainer(model=fix_loss_scaling(model), ..., callbacks=[TicketCallback(mask)])``.
    Works with gradient accumulation, fp16/bf16 mixed precision (masks act on the fp32
    parameters and their gradients), DDP (gradients are masked before the all-reduce) and
    PEFT-wrapped models (the mask acts on each wrapped layer's ``base_layer`` weight; frozen
    base weights get no hook and stay zero; the adapters themselves are not masked — see
    :func:`bert_tickets.peft.merge_with_ticket`).

    Args:
        mask: the :class:`~bert_tickets.mask.TicketMask` to enforce (``True`` = kept).

    Raises:
        ValueError (at ``on_train_begin``): the mask does not fit the model (names/shapes);
            nothing is modified in that case.
    """

    def __init__(self, mask: TicketMask):
        self.mask = mask
        self._targets: dict[str, tuple[nn.Parameter, torch.Tensor]] = {}
        self._handles: list = []

    # -- hooks
    def attach(self, model: nn.Module) -> None:
        """Validate, zero the pruned weights and register the gradient hooks on ``model``."""
        self.detach()
        targets = self.mask.validate(model)
        self._targets = {n: (p, self.mask.masks[n].to(p.device)) for n, p in targets.items()}
        with torch.no_grad():
            for p, m in self._targets.values():
                p.mul_(m)
        for p, m in self._targets.values():
            if p.requires_grad:
                self._handles.append(p.register_hook(lambda grad, m=m: grad * m))

    def detach(self) -> None:
        """Remove the gradient hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def zero_pruned(self) -> None:
        """Set every pruned weight to exactly 0 (in place)."""
        with torch.no_grad():
            for p, m in self._targets.values():
                p.mul_(m)

    # -- TrainerCallback events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("TicketCallback needs the model (Trainer passes it to callbacks)")
        self.attach(model)
        inner = unwrap_model(model)
        scaled = getattr(inner, "accepts_loss_kwargs", None) is False
        if not scaled and (args.gradient_accumulation_steps > 1 or args.world_size > 1) and type(inner).__name__.startswith("Bert"):
            logger.warning(
                "%s ignores num_items_in_batch, so Trainer will not divide its loss by gradient_accumulation_steps "
                "(and will multiply it by the world size under DDP); call bert_tickets.fix_loss_scaling(model) "
                "before building the Trainer",
                type(inner).__name__,
            )

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.zero_pruned()

    def on_train_end(self, args, state, control, **kwargs):
        self.zero_pruned()
        self.detach()
