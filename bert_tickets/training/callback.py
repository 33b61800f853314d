"""`TicketCallback`: keep a ticket's pruned weights exactly zero while a stock
``transformers.Trainer`` fine-tunes the model (fine-tuning a subnetwork in isolation, Chen et
al. 2020, Section 3).

Mechanism (no re-parametrisation, no weight copies):

* a post-accumulate-grad hook (:meth:`torch.Tensor.register_post_accumulate_grad_hook`) on every
  masked parameter multiplies ``.grad`` by the mask in place, right after autograd has written it
  (while it is still in cache) and *before* DDP's reducer sees it (the reducer's hooks are node
  post-hooks, which run after post-accumulate-grad hooks). So pruned gradients are exactly zero
  for gradient clipping, for the all-reduce and for the optimizer. On CPU the multiply is the
  fused kernel of :mod:`bert_tickets.training.kernels` (eager ``mul_`` by a uint8 mask would first copy the
  mask to a float32 temporary); on CUDA it is eager ``mul_``, which casts in registers;
* pruned weights are re-zeroed, and the optimizer state of the same shape as a weight (Adam's
  moments, SGD's momentum buffer) is zeroed at pruned positions, at the first optimizer step —
  which undoes state loaded from a checkpoint made with another mask. From then on, for the
  optimizers in :data:`ZERO_PRESERVING_OPTIMIZERS` a pruned weight provably stays exactly 0 (its
  gradient, its state and itself are 0, so every update term — weight decay included — is 0),
  and re-zeroing after every step would be a full pass over the prunable weights for nothing:
  ``rezero="auto"`` (default) skips it for those optimizers. Any other optimizer (or
  ``rezero="every_step"``) gets the weights re-zeroed after every optimizer step, which also undoes
  whatever such an optimizer does without a gradient. Weights are re-zeroed once more at the end
  of training in both modes.

Tensors with nothing pruned (all of the dense level-0 ticket) get no hook and no re-zeroing.

Memory: the ``torch.bool`` mask on the parameters' device — 1 byte per prunable weight (the CPU
kernel needs no temporary).

Known pitfall (transformers 5.x): ``Trainer`` treats a model whose ``forward`` takes
``**kwargs`` as normalising its own loss by ``num_items_in_batch``. BERT heads accept
``**kwargs`` but ignore it, so with gradient accumulation the loss is not divided by the
accumulation steps (and under DDP it is multiplied by the world size). Call
:func:`fix_loss_scaling` on the model *before* building the ``Trainer``; the callback warns when
it sees the problem.
"""

from __future__ import annotations

import logging
import numbers

import torch
from torch import nn
from transformers import TrainerCallback
from transformers.optimization import Adafactor

from ..ticket import TicketMask, unwrap_model
from .kernels import kernel_applies, load_cpu_kernel, mask_mul_

logger = logging.getLogger(__name__)

REZERO_MODES = ("auto", "every_step")


#: Optimizer classes (exact classes, not subclasses — a subclass may change ``step``) whose update
#: of a weight is exactly 0 whenever the weight, its gradient and its per-element state are all
#: exactly 0 and every ``eps`` is > 0 (so no 0/0): SGD (momentum, Nesterov, weight decay), Adam,
#: AdamW (decoupled weight decay multiplies 0), Adagrad, RMSprop (centered or not) and
#: transformers' Adafactor, in their for-loop, foreach and fused implementations. Checked step by
#: step in ``tests/test_callback.py``.
ZERO_PRESERVING_OPTIMIZERS: tuple[type, ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adagrad,
    torch.optim.RMSprop,
    Adafactor,
)


def unwrap_optimizer(optimizer):
    """The ``torch.optim.Optimizer`` inside wrappers such as accelerate's ``AcceleratedOptimizer``."""
    for _ in range(8):  # AcceleratedOptimizer subclasses torch.optim.Optimizer and holds the real one in .optimizer
        inner = getattr(optimizer, "optimizer", None)
        if inner is None:
            break
        optimizer = inner
    return optimizer


def preserves_zeros(optimizer) -> bool:
    """Whether ``optimizer`` keeps a weight exactly 0 when its gradient and state are exactly 0.

    True for an exact instance of a class in :data:`ZERO_PRESERVING_OPTIMIZERS` (after
    :func:`unwrap_optimizer`) whose param groups all have a positive ``eps`` (Adafactor: positive
    ``eps[0]``); False otherwise, including ``None``.
    """
    optimizer = unwrap_optimizer(optimizer)
    if optimizer is None or type(optimizer) not in ZERO_PRESERVING_OPTIMIZERS:
        return False
    for group in optimizer.param_groups:
        eps = group.get("eps", 1.0)
        if isinstance(eps, (tuple, list)):
            eps = eps[0]
        if not isinstance(eps, numbers.Real) or not eps > 0:
            return False
    return True


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


class _GradMask:
    """Post-accumulate-grad hook: ``param.grad *= mask`` in place (returns ``None``, as required)."""

    __slots__ = ("mask", "use_kernel")

    def __init__(self, mask: torch.Tensor, use_kernel: bool = True):
        self.mask = mask
        self.use_kernel = use_kernel

    def __call__(self, param: torch.Tensor) -> None:
        mask_mul_(param.grad, self.mask, self.use_kernel)


class TicketCallback(TrainerCallback):
    """Keeps the weights pruned by ``ticket`` exactly zero during ``Trainer.train()``.

    Usage: ``Trainer(model=fix_loss_scaling(model), ..., callbacks=[TicketCallback(ticket)])``.
    Works with gradient accumulation (the accumulated ``.grad`` is re-masked after every
    micro-batch), fp16/bf16 mixed precision (masks act on the fp32 parameters and their
    gradients), DDP (gradients are masked before the all-reduce) and PEFT-wrapped models (the
    mask acts on each wrapped layer's ``base_layer`` weight; frozen base weights get no hook and
    stay zero; the adapters themselves are not masked — see
    :func:`bert_tickets.training.merge.merge_with_ticket`). See the module docstring for the mechanism.

    Args:
        ticket: the :class:`~bert_tickets.ticket.mask.TicketMask` to enforce (its masks: ``True`` =
            kept). ``mask=`` is accepted too (the argument's former name).
        rezero: when to re-zero the pruned weights. ``"auto"`` (default): after the first
            optimizer step and at the end of training when the optimizer is in
            :data:`ZERO_PRESERVING_OPTIMIZERS` (:func:`preserves_zeros`), after every optimizer
            step otherwise (also when no optimizer is passed to the events). ``"every_step"``:
            after every optimizer step whatever the optimizer.
        cpu_kernel: multiply float32 CPU gradients and weights by the mask with the fused kernel
            of :mod:`bert_tickets.training.kernels` (default ``True``; built at ``on_train_begin`` the first
            time on a machine, falling back to eager ``mul_`` if it cannot be built). ``False``:
            always eager ``mul_``. The results are identical; only the speed differs.

    Attributes:
        ticket: the ticket (also readable as ``mask``, its former name).
        rezero_every_step: the decision, ``None`` until the first optimizer step.

    Raises:
        ValueError: ``rezero`` is not one of ``"auto"``, ``"every_step"`` (at construction);
            the mask does not fit the model (names/shapes; at ``on_train_begin``, and nothing is
            modified in that case).
    """

    def __init__(self, ticket: TicketMask | None = None, rezero: str = "auto", cpu_kernel: bool = True, *, mask: TicketMask | None = None):
        if (ticket is None) == (mask is None):
            raise TypeError("TicketCallback takes one ticket (ticket=, or its former name mask=)")
        if rezero not in REZERO_MODES:
            raise ValueError(f"rezero must be one of {REZERO_MODES}, got {rezero!r}")
        self.ticket = ticket if ticket is not None else mask
        self.rezero = rezero
        self.cpu_kernel = cpu_kernel
        self.rezero_every_step: bool | None = None
        self._targets: dict[str, tuple[nn.Parameter, torch.Tensor]] = {}
        self._handles: list = []

    @property
    def mask(self) -> TicketMask:
        """The ticket, under the argument's former name."""
        return self.ticket

    # -- hooks
    def attach(self, model: nn.Module) -> None:
        """Validate, zero the pruned weights and register the gradient hooks on ``model``.

        Raises:
            ValueError: the mask does not fit ``model`` (nothing is modified then).
        """
        self.detach()
        targets = self.ticket.validate(model)
        # Only tensors with something pruned: a fully kept tensor (every tensor of the dense level-0
        # ticket) would cost a multiply by 1 per step. Each mask is kept as its uint8 view (same
        # storage, no copy): the operand of the fused CPU kernel, and for eager ``mul_`` it gives the
        # bool mask's result ~1.7x faster on CPU, where the bool -> float promotion is not vectorised.
        self._targets = {
            n: (p, self.ticket.masks[n].to(p.device).view(torch.uint8)) for n, p in targets.items() if not bool(self.ticket.masks[n].all())
        }
        self.rezero_every_step = None
        if self.cpu_kernel and any(kernel_applies(p, m) for p, m in self._targets.values()):
            load_cpu_kernel()  # build/load now rather than inside the first backward pass
        self.zero_pruned()
        for p, m in self._targets.values():
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(_GradMask(m, self.cpu_kernel)))

    def detach(self) -> None:
        """Remove the gradient hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def zero_pruned(self) -> None:
        """Set every pruned weight to exactly 0 (in place)."""
        with torch.no_grad():
            for p, m in self._targets.values():
                mask_mul_(p, m, self.cpu_kernel)

    def zero_pruned_optimizer_state(self, optimizer) -> None:
        """Zero, at pruned positions, every optimizer-state tensor shaped like its weight.

        Covers Adam's ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq``, SGD's ``momentum_buffer``,
        Adagrad's ``sum``, RMSprop's ``square_avg``/``grad_avg``... (factored Adafactor statistics
        have other shapes and are left alone: its update is proportional to the gradient).
        """
        optimizer = unwrap_optimizer(optimizer)
        if optimizer is None:
            return
        with torch.no_grad():
            for p, m in self._targets.values():
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape:
                        mask_mul_(value, m.to(value.device), self.cpu_kernel)

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

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if self.rezero_every_step is None:  # first optimizer step since attach
            inner = unwrap_optimizer(optimizer)
            self.zero_pruned()
            self.zero_pruned_optimizer_state(inner)
            self.rezero_every_step = self.rezero == "every_step" or not preserves_zeros(inner)
            logger.info(
                "TicketCallback: %s; pruned weights re-zeroed %s",
                type(inner).__name__ if inner is not None else "no optimizer passed",
                "after every optimizer step"
                if self.rezero_every_step
                else "at the first step and at the end (this optimizer keeps zero weights with zero gradients and state at zero)",
            )
        elif self.rezero_every_step:
            self.zero_pruned()

    def on_train_end(self, args, state, control, **kwargs):
        self.zero_pruned()
        self.detach()
