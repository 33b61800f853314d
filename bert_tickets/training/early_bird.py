"""Early-bird detection inside a training run: the next level's magnitude mask is drawn every
``interval`` optimizer steps and training stops once successive masks stop changing.

Source: You et al. 2020, *Drawing Early-Bird Tickets* (ICLR), Section 4.2 and Algorithm 1 —
the mask is drawn at the target pruning ratio after every epoch, the normalised Hamming
distance between consecutive masks goes into a FIFO queue of length 5, and the search stops
when the largest distance in the queue is below ε = 0.1 (their reference code,
RICE-EIC/Early-Bird-Tickets); Chen et al. 2021, *EarlyBERT* (ACL), Section 3.2, apply the same
rule to BERT with masks drawn every few optimizer steps instead of every epoch (BERT is
fine-tuned for a few epochs only).

Decisions where the papers leave a choice open for unstructured IMP levels of BERT:

* **The mask drawn** is the next IMP level's mask: global magnitude pruning (the run's scope and
  per-tensor cap) of the *current* weights to the next level's sparsity, monotone over the
  level's own mask — exactly what :func:`~bert_tickets.pruning.prune_ticket` would prune at the
  end of the level (IMP's criterion, Chen et al. 2020). You et al. draw channel masks from
  batch-norm scales and EarlyBERT from learned slimming coefficients; neither exists for an
  unstructured weight mask.
* **The distance is normalised by the weights the level prunes**, not by all prunable weights:
  ``d = |M_t xor M_{t-1}| / (2 · n_new)``, where ``n_new`` is the number of weights this level
  prunes (beyond the ones already pruned) — the share of the level's new choice that changed,
  in [0, 1]. You et al. normalise by the mask size because their masks prune 30–70% of the
  channels at once; an IMP level prunes 10% of the survivors, so a mask-size-normalised distance
  is at most 0.2 from the first draw on and ε = 0.1 would stop almost at once.
* **Steps, not epochs**: a level here is one epoch or less, so the mask is drawn every
  ``interval`` optimizer steps (EarlyBERT's choice for BERT).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch
from transformers import TrainerCallback

from ..pruning import prune_ticket
from ..ticket import TicketMask, unwrap_model

logger = logging.getLogger(__name__)


@dataclass
class EarlyBirdOptions:
    """When the early-bird search draws a mask and when it stops (You et al. 2020, Algorithm 1).

    Attributes:
        interval: optimizer steps between two mask draws (>= 1).
        epsilon: stop when every distance in the window is below this (a fraction in (0, 1);
            You et al.: 0.1).
        window: how many successive distances must stay below ``epsilon`` (>= 1; You et al.: a
            FIFO queue of 5).
    """

    interval: int = field(default=10, metadata={"help": "optimizer steps between two mask draws"})
    epsilon: float = field(default=0.1, metadata={"help": "stop when the last `window` distances are all below this (You et al.: 0.1)"})
    window: int = field(default=5, metadata={"help": "distances that must stay below epsilon (You et al.: a FIFO queue of 5)"})

    def __post_init__(self):
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"early-bird interval must be an integer >= 1 (optimizer steps), got {self.interval!r}")
        if not (0.0 < float(self.epsilon) < 1.0):
            raise ValueError(f"early-bird epsilon must be a fraction in (0, 1), got {self.epsilon!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"early-bird window must be an integer >= 1, got {self.window!r}")


def mask_distance(a: TicketMask, b: TicketMask, new_pruned: int) -> float:
    """Distance between two next-level masks: ``|a xor b| / (2 · new_pruned)`` (see the module
    docstring for why the level's pruned count normalises it).

    Args:
        a, b: tickets over the same tensors (``torch.bool``, ``True`` = kept) with the same
            number of pruned weights.
        new_pruned: the weights the level prunes beyond its own mask (> 0).

    Returns:
        A fraction in [0, 1]: 0 for equal masks, 1 when the two choices share no weight.

    Raises:
        ValueError: different tensors, or ``new_pruned`` <= 0.
    """
    if set(a.masks) != set(b.masks):
        raise ValueError("the two masks cover different tensors")
    if new_pruned <= 0:
        raise ValueError(f"new_pruned must be > 0, got {new_pruned}")
    differ = sum(int(torch.count_nonzero(a.masks[n] ^ b.masks[n])) for n in a.masks)
    return differ / (2 * new_pruned)


@dataclass
class EarlyBirdRecord:
    """What one early-bird search saw: ``distances`` as ``[step, distance]`` pairs, the step the
    rule fired at (``None`` if it never did), and the step of the mask kept."""

    next_sparsity: float
    options: dict
    new_pruned: int
    distances: list[list[float]] = field(default_factory=list)
    converged_at_step: int | None = None
    mask_step: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class EarlyBirdCallback(TrainerCallback):
    """Draw the next level's magnitude mask every ``options.interval`` steps and stop training
    (``stop=True``) once the last ``options.window`` distances are all below ``options.epsilon``.

    Args:
        ticket: the level's ticket (its pruned weights stay pruned in every draw).
        next_sparsity: the next level's global sparsity (a fraction in (ticket.sparsity, 1)).
        options: :class:`EarlyBirdOptions`.
        scope, max_tensor_sparsity: as :func:`~bert_tickets.pruning.prune_ticket`.
        stop: stop the Trainer when the rule fires (``False``: only record).

    After training, :attr:`mask` is the early-bird ticket (the draw at which the rule fired) or,
    when it never fired, ``None`` (the caller prunes the final weights as IMP does);
    :attr:`record` holds the distances. A mask draw costs one global magnitude selection over the
    prunable weights (no forward or backward pass).

    Raises:
        ValueError: ``next_sparsity`` not above the ticket's sparsity.
    """

    def __init__(
        self,
        ticket: TicketMask,
        next_sparsity: float,
        options: EarlyBirdOptions,
        *,
        scope: str = "global",
        max_tensor_sparsity: float | None = None,
        stop: bool = True,
    ):
        new_pruned = round(next_sparsity * ticket.num_prunable) - ticket.num_pruned
        if new_pruned <= 0:
            raise ValueError(f"early-bird: the next sparsity {next_sparsity} prunes nothing beyond the level's {ticket.sparsity:.4f}")
        self.ticket, self.next_sparsity, self.options = ticket, next_sparsity, options
        self.scope, self.max_tensor_sparsity, self.stop = scope, max_tensor_sparsity, stop
        self.record = EarlyBirdRecord(next_sparsity, asdict(options), new_pruned)
        self.mask: TicketMask | None = None
        self._last: TicketMask | None = None

    def draw(self, model: torch.nn.Module) -> TicketMask:
        """The next level's magnitude mask from ``model``'s current weights."""
        return prune_ticket(self.ticket, unwrap_model(model), self.next_sparsity, "magnitude", 0, self.scope, self.max_tensor_sparsity)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.mask is not None or state.global_step % self.options.interval != 0 or model is None:
            return control
        current = self.draw(model)
        if self._last is not None:
            d = mask_distance(current, self._last, self.record.new_pruned)
            self.record.distances.append([int(state.global_step), d])
            recent = [x for _, x in self.record.distances[-self.options.window :]]
            if len(recent) == self.options.window and max(recent) < self.options.epsilon:
                self.mask = current
                self.record.converged_at_step = self.record.mask_step = int(state.global_step)
                logger.info(
                    "early bird at step %d: the last %d mask distances are below %.3g (%s)",
                    state.global_step,
                    self.options.window,
                    self.options.epsilon,
                    ", ".join(f"{x:.4f}" for x in recent),
                )
                if self.stop:
                    control.should_training_stop = True
        self._last = current
        return control
