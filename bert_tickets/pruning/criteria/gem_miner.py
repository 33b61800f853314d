"""Gem-Miner: a mask learned at θ0 by training a score per weight with the weights frozen
(Sreenivasan et al. 2022, *Rare Gems: Finding Lottery Tickets at Initialization*, Section 3,
Algorithm 1; released code ksreenivasan/pruning_is_enough).

Per prunable weight a score s ∈ [0, 1]; the forward pass uses w = θ0 ⊙ 1[s > 0.5] with a
straight-through gradient (∂L/∂s := ∂L/∂m, the mask's gradient, i.e. θ0 ⊙ ∂L/∂w); after each
step the scores are clamped to [0, 1] (no sigmoid). The loss is the task loss plus
``penalty · Σ s²`` (an L2 penalty on the scores). Every ``prune_period`` steps the lowest active
scores are pruned globally (set to 0 and kept there) so that the kept fraction follows an
exponential schedule ``(1 − s_target)^(k/K)`` to the target at the last period; the final mask is
the exact-count selection of the trained scores (pruned scores are 0, so it agrees with the last
period). The task head is trained with the scores (from its state in ``model``, on a copy: the
model is not changed); θ0 — backbone and head — is left untouched, and ``finetune`` then trains
the weights under the mask.

Choices the paper leaves open for BERT, and why:

* **Scores start at 0.75** for every surviving weight (pruned ones at 0): the middle of the
  active range, so a score can move either way and the first mask is θ0 itself; no random
  initialisation, so the mask depends on the data, not on a score seed.
* **Adam on the scores** (lr 1e-2): the straight-through gradient θ0 ⊙ ∂L/∂w is ~1e-6 for BERT's
  weights, so plain SGD at the paper's CIFAR learning rate would not move a score across 0.5
  within one epoch; at 1e-2 a score crosses the active range in ~25 steps. The head trains with
  AdamW at ``head_learning_rate`` (1e-4, the fine-tuning rate of the tasks here).
* **penalty** 1e-4 (the released configs' λ).
* **steps**: one pass over the batches given (``prune-at-init`` gives one epoch of the task's
  training data) — the paper trains scores for as many epochs as the weights; one epoch keeps the
  mask search cheaper than one IMP level. **prune_period**: ``steps // 5`` (five pruning rounds).
* Dropout is on while training the scores (training mode), as in the paper's training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...ticket import is_backbone_parameter
from ..select import select
from .base import PruningCriterion, register_criterion


@dataclass
class GemMinerOptions:
    """Options of ``gem_miner`` (module docstring for the defaults and their reasons).

    Attributes:
        steps: optimizer steps on the scores (``None``: one pass over the batches given).
        learning_rate: Adam learning rate of the scores.
        head_learning_rate: AdamW learning rate of the task head.
        penalty: λ of the L2 penalty ``λ Σ s²`` on the scores.
        prune_period: steps between global pruning rounds (``None``: ``steps // 5``, at least 1).
        score_init: initial score of every surviving weight, in (0.5, 1].
    """

    steps: int | None = field(default=None, metadata={"aliases": ["gem_steps"], "help": "score-training steps (default: one epoch)"})
    learning_rate: float = field(default=1e-2, metadata={"aliases": ["gem_learning_rate"], "help": "Adam learning rate of the scores"})
    head_learning_rate: float = field(
        default=1e-4, metadata={"aliases": ["gem_head_learning_rate"], "help": "AdamW learning rate of the task head"}
    )
    penalty: float = field(
        default=1e-4, metadata={"aliases": ["gem_penalty"], "help": "L2 penalty on the scores (the released configs' 1e-4)"}
    )
    prune_period: int | None = field(
        default=None, metadata={"aliases": ["gem_prune_period"], "help": "steps between global pruning rounds (default: steps // 5)"}
    )
    score_init: float = field(default=0.75, metadata={"aliases": ["gem_score_init"], "help": "initial score, in (0.5, 1]"})

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raises ``ValueError`` (one line) for an option outside its range."""
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--gem_steps must be >= 1, got {self.steps}")
        if self.prune_period is not None and self.prune_period < 1:
            raise ValueError(f"--gem_prune_period must be >= 1, got {self.prune_period}")
        if not (self.learning_rate > 0 and self.head_learning_rate >= 0 and self.penalty >= 0):
            raise ValueError("--gem_learning_rate must be > 0, --gem_head_learning_rate and --gem_penalty >= 0")
        if not (0.5 < self.score_init <= 1.0):
            raise ValueError(f"--gem_score_init must be in (0.5, 1], got {self.score_init}")


def gem_miner_scores(
    model: torch.nn.Module,
    weights: dict[str, torch.nn.Parameter],
    batches: list[dict[str, Any]],
    sparsity: float,
    masks: dict[str, torch.Tensor] | None = None,
    options: GemMinerOptions | None = None,
    *,
    seed: int = 0,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
) -> dict[str, torch.Tensor]:
    """Train Gem-Miner scores (module docstring) toward ``sparsity`` and return them: name ->
    float32 tensor of the weight's shape in [0, 1], exactly 0 for the weights pruned by the
    periodic rounds (the last round leaves ``round(sparsity · N)`` pruned).

    Args:
        model: a BERT model with a task head; its parameters are not changed.
        weights: backbone-relative name -> the model's prunable parameter.
        batches: model-input dicts with labels, cycled through for ``options.steps`` steps.
        sparsity: target sparsity, a fraction in [0, 1).
        masks: the current mask (``True`` = kept); pruned weights stay pruned.
        options: :class:`GemMinerOptions`.
        seed: seeds dropout and the batch order.
        scope, max_tensor_sparsity: as for :func:`~bert_tickets.pruning.select.select`, used by
            the periodic rounds.

    Raises:
        ValueError: no batches, a batch without labels, or an option out of range.
    """
    options = options or GemMinerOptions()
    options.check()
    if not batches:
        raise ValueError("gem_miner needs training batches with labels")
    steps = options.steps or len(batches)
    period = options.prune_period or max(1, steps // 5)
    rounds = max(1, steps // period)
    full_name = {id(p): n for n, p in model.named_parameters()}
    names = list(weights)
    shapes = {n: weights[n].shape for n in names}
    theta0 = {n: weights[n].detach().clone() for n in names}
    alive = {n: (masks[n].clone() if masks is not None else torch.ones(shapes[n], dtype=torch.bool)).to(theta0[n].device) for n in names}
    start = 1.0 - sum(int(a.sum()) for a in alive.values()) / sum(a.numel() for a in alive.values())
    scores = {n: (alive[n].float() * options.score_init).requires_grad_(True) for n in names}
    head = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if not is_backbone_parameter(model, n)}
    optimizers = [torch.optim.Adam(list(scores.values()), lr=options.learning_rate)]
    if head and options.head_learning_rate > 0:
        optimizers.append(torch.optim.AdamW(list(head.values()), lr=options.head_learning_rate))
    was_training = model.training
    grad_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)  # θ0 is frozen: no gradient reaches the model's own parameters
    model.train()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    order: list[int] = []
    fork = torch.random.fork_rng(devices=[])
    try:
        with fork, torch.enable_grad():
            torch.manual_seed(seed)
            for step in range(1, steps + 1):
                if not order:
                    order = torch.randperm(len(batches), generator=generator).tolist()
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batches[order.pop()].items()}
                params = dict(head)
                for n in names:
                    s = scores[n]
                    ste = (s > 0.5).to(s.dtype) + s - s.detach()
                    params[full_name[id(weights[n])]] = theta0[n] * ste.to(theta0[n].dtype)
                out = torch.func.functional_call(model, params, args=(), kwargs=batch, strict=False)
                if getattr(out, "loss", None) is None:
                    raise ValueError("gem_miner: the model returned no loss for a batch (does it carry labels?)")
                loss = out.loss + options.penalty * sum((s * s).sum() for s in scores.values())
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    opt.step()
                with torch.no_grad():
                    for n in names:
                        scores[n].clamp_(0.0, 1.0).mul_(alive[n])
                    if step % period == 0 or step == steps:
                        k = min(rounds, math.ceil(step / period))
                        kept = (1.0 - start) * math.pow((1.0 - sparsity) / (1.0 - start), k / rounds) if sparsity > start else 1.0 - start
                        target = sparsity if step == steps else min(sparsity, 1.0 - kept)
                        current = {n: s.detach() for n, s in scores.items()}
                        alive = select(shapes, lambda name, out, _c=current: _c[name].float(), target, alive, scope, max_tensor_sparsity)
                        for n in names:
                            scores[n].mul_(alive[n])
    finally:
        model.train(was_training)
        for n, p in model.named_parameters():
            p.requires_grad_(grad_flags[n])
    return {n: s.detach().float().cpu() for n, s in scores.items()}


@register_criterion
class GemMinerCriterion(PruningCriterion):
    """Learned scores at θ0 with a straight-through mask (module docstring). Context: ``model``,
    ``batches`` (training data), ``gem_miner`` (:class:`GemMinerOptions`), ``masks``,
    ``sparsity`` (set by :func:`~bert_tickets.pruning.prune_ticket`)."""

    name = "gem_miner"
    needs = frozenset({"batches", "trains_scores", "seed"})
    at_init = True
    Options = GemMinerOptions
    summary = "scores trained at theta0 with a straight-through mask and periodic pruning (Sreenivasan et al. 2022)"

    def batches_needed(self, options):
        return (options or GemMinerOptions()).steps

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        options = context.get("gem_miner") or self._options(context)
        n = steps * (options.steps or len(context.get("batches") or []))
        return {"train_steps": n}

    def scorer(self, weights, *, seed=0, model=None, batches=None, masks=None, sparsity=None, gem_miner=None, **context):
        gem_miner = gem_miner or self._options(context)
        if model is None or sparsity is None:
            raise ValueError("gem_miner needs the model and the target sparsity (context model=, sparsity=)")
        scores = gem_miner_scores(
            model,
            dict(weights),
            list(batches or []),
            sparsity,
            masks,
            gem_miner,
            seed=seed,
            scope=context.get("scope", "global"),
            max_tensor_sparsity=context.get("max_tensor_sparsity"),
        )
        return lambda name, out: scores[name]


__all__ = ["GemMinerCriterion", "GemMinerOptions", "gem_miner_scores"]
