"""Early-bird detection inside a training run: the next level's magnitude mask is drawn every
``interval`` optimizer steps and training stops once successive masks stop changing.

Source: You et al. 2020, *Drawing Early-Bird Tickets* (ICLR), Section 4.2 and Algorithm 1, as
their reference code implements it (RICE-EIC/Early-Bird-Tickets, ``main.py``, ``class
EarlyBird``): a mask is drawn at the target pruning ratio once per epoch and put in a FIFO queue
of 5; once the queue is full, the normalised Hamming distance between the newest mask and *each*
older one in the queue is computed, and the ticket is found when none of them exceeds
ε = 0.1. (Chen et al. 2021, *EarlyBERT*, describe the same rule for BERT, but their released
code has no detector: it draws the ticket at a fixed step, 20% of the first epoch,
``--slimming_coef_step 0.2``.)

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
  ``interval`` optimizer steps. The default 10 with the queue of 5 lets the rule fire from step
  50 on — at 1 epoch = 180 steps on STS-B, near EarlyBERT's fixed draw at 20% of the first epoch
  (step 36), and coarse enough that a draw (one magnitude selection) costs < 2% of the steps.
"""

from __future__ import annotations

import logging
from collections import deque
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
        epsilon: the ticket is found when the newest mask is within this distance of every
            older mask in the queue (a fraction in (0, 1); You et al.: 0.1).
        window: masks in the FIFO queue (>= 2; You et al.: 5); the rule is checked once it is full.
    """

    interval: int = field(default=10, metadata={"help": "optimizer steps between two mask draws"})
    epsilon: float = field(
        default=0.1,
        metadata={"help": "stop when the newest mask is within this distance of every older one in the queue (You et al.: 0.1)"},
    )
    window: int = field(default=5, metadata={"help": "masks in the FIFO queue (You et al.: 5)"})

    def __post_init__(self):
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"early-bird interval must be an integer >= 1 (optimizer steps), got {self.interval!r}")
        if not (0.0 < float(self.epsilon) < 1.0):
            raise ValueError(f"early-bird epsilon must be a fraction in (0, 1), got {self.epsilon!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2:
            raise ValueError(f"early-bird window must be an integer >= 2 (masks in the queue), got {self.window!r}")


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
    """What one early-bird search saw: ``distances`` as ``[step, distance]`` pairs — at every draw
    after the first, the largest distance between the newest mask and the older ones in the
    queue — the step the rule fired at (``None`` if it never did), and the step of the mask kept."""

    next_sparsity: float
    options: dict
    new_pruned: int
    distances: list[list[float]] = field(default_factory=list)
    converged_at_step: int | None = None
    mask_step: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class EarlyBirdCallback(TrainerCallback):
    """Draw the next level's magnitude mask every ``options.interval`` steps into a FIFO queue of
    ``options.window`` masks and stop training (``stop=True``) once the queue is full and the
    newest mask is within ``options.epsilon`` of every older one (You et al. 2020's rule).

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
        self._queue: deque[TicketMask] = deque(maxlen=options.window)

    def draw(self, model: torch.nn.Module) -> TicketMask:
        """The next level's magnitude mask from ``model``'s current weights."""
        return prune_ticket(self.ticket, unwrap_model(model), self.next_sparsity, "magnitude", 0, self.scope, self.max_tensor_sparsity)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.mask is not None or state.global_step % self.options.interval != 0 or model is None:
            return control
        current = self.draw(model)
        self._queue.append(current)  # the oldest leaves a full queue
        if len(self._queue) > 1:
            distances = [mask_distance(current, older, self.record.new_pruned) for older in list(self._queue)[:-1]]
            self.record.distances.append([int(state.global_step), max(distances)])
            if len(self._queue) == self.options.window and max(distances) <= self.options.epsilon:
                self.mask = current
                self.record.converged_at_step = self.record.mask_step = int(state.global_step)
                logger.info(
                    "early bird at step %d: the newest mask is within %.3g of the %d before it (largest distance %.4f)",
                    state.global_step,
                    self.options.epsilon,
                    len(distances),
                    max(distances),
                )
                if self.stop:
                    control.should_training_stop = True
        return control
