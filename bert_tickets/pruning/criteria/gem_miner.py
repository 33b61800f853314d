"""Gem-Miner: a mask learned at θ0 by training a score per weight with the weights frozen
(Sreenivasan et al. 2022, *Rare Gems: Finding Lottery Tickets at Initialization*, Section 3,
Algorithm 1; released code ksreenivasan/pruning_is_enough, commit 8c4c9e8, cited below as
*the reference*).

Per prunable weight a score s ∈ [0, 1]; the forward pass uses w = θ0 ⊙ 1[s > 0.5] with a
straight-through gradient (∂L/∂s := ∂L/∂m, the mask's gradient, i.e. θ0 ⊙ ∂L/∂w; the
reference's ``hc_quantized: True``, ``quantize_threshold: 0.5``, ``utils/conv_type.py``
``GetSubnet``); after each step the scores are clamped to [0, 1] (``trainers/default.py``: before
every step's forward, ``project_freq`` 1, and at the end of each epoch; no sigmoid). The loss is the task loss plus ``penalty · Σ s²``
(``regularization: L2``, ``utils/net_utils.py`` ``get_regularization_loss``). At ``rounds``
evenly spaced steps the lowest-scoring surviving weights are pruned globally (set to 0 and kept
there; the reference's ``prune_type: BottomK``, ``utils/net_utils.py`` ``prune``) so that the
kept fraction follows the exponential schedule ``(1 − s_target)^(k/K)`` of round k of K
(``get_prune_rate``: a constant fraction of the survivors per round) and reaches the target at
the last round; the scores then keep training among the survivors until the last step, as the
reference's last round at epoch ⌊(E − 1)/T⌋·T of E (``main.py``) leaves a tail of training.

**Final mask** (the exact count ``round(s_target · N)`` pruned): the surviving weights with
score > 0.5, *topped up* with the highest-scoring surviving weights of score ≤ 0.5 when they are
fewer than the count, or *cut* to the count by dropping the lowest scores when more. The
reference fine-tunes either every survivor of the rounds (``unflag_before_finetune: True``, 12
of its 14 iterative Adam configs; ``main_utils.py`` ``finetune``: rounding ``all_ones``) or only
the survivors with score > 0.5 (naive rounding, ``round: naive``; the other two), which may be
fewer than the target. After the last round exactly the count survives, so the exact-count rule
here keeps every survivor, as the first does; cutting happens only with ``rounds=0`` (all
pruning at the end). How many kept weights score ≤ 0.5 is recorded (below):
a mask made mostly of topped-up weights says the score training did not find it.

**Record** (the ticket's ``metadata.extra["criterion_record"]``, :func:`gem_miner_search`):
the *active* count after every step (survivors with score > 0.5: the mask the forward pass
used), the *kept* count after every round (survivors), the targets of the rounds, the number of
prunable weights N (densities are counts / N), and the final mask's split into weights above
0.5, topped up and cut.

Defaults, their sources and reasons. They come from the reference's Adam configs, **chosen by
the kept fraction** 1 − s_target, as the reference chooses its config by ``target_sparsity``
(which there is the percentage of weights *kept*, ``args_helper.py``):

* **At least half kept (s_target ≤ 0.5): Adam at learning_rate 0.1, penalty λ = 0** — the
  reference's only Adam configs that keep 50% of the weights,
  ``configs/hypercube/tinyImageNet/resnet18/resnet18_sparsity_50_adam_{5,25}.yml`` (``lr: 0.1``,
  ``lmbda: 0``).
* **Fewer kept (s_target > 0.5): Adam at learning_rate 0.01, λ = 8.5e-6** — its configs that keep
  0.5–5%; the default one is ``configs/hypercube/resnet18/cifar10/sparsity_5_85lam6_iter_20_adam.yml``
  (ResNet-18, CIFAR-10, 5% kept, ``unflag_before_finetune: True``), whose λ two of them share
  (the third, at 5% too, uses 3e-6). The reference has no Adam config between 5% and 50% kept:
  this side of 50% takes the sparse configs' values. Explicit ``learning_rate=`` / ``penalty=``
  override the rule.

Why the rule matters (session 11, measured on MiniLM / STS-B): the straight-through data
gradient θ0 ⊙ ∂L/∂w has a median |·| of 4–5e-6 per weight and no consistent sign, while the
penalty gradient 2λs is 1.3e-5 at λ = 8.5e-6 and s = 0.75 — larger for ~75% of the scores, so
Adam (which normalises the sum) lowers them all by ≈ lr per step and the active set (score >
0.5) collapsed to 1.6% by the end whatever the rounds kept. A 5%-kept λ at a 50% target is
not the reference's setting. (The earlier λ = 1e-4 here was an SGD value,
``configs/hypercube/resnet20/resnet20_sparsity_0_59_unflagT.yml``, ``optimizer: sgd``.)

* **Adam on the scores, cosine decay** — ``optimizer: adam``, ``lr_policy: cosine_lr``, ``wd:
  0.0``; the reference steps ``CosineAnnealingLR(T_max=epochs)`` once per epoch
  (``utils/schedulers.py``), here once per step over all steps (the same curve, not a
  staircase). ``lr_schedule=constant`` for none.
* **penalty λ** — ``regularization: L2`` on the scores only. λ in the other iterative Adam configs (all under
  ``configs/hypercube/``): 3e-6 (``resnet18/cifar10/sparsity_5_3lam6_iter_20_adam.yml``), 5e-6
  (``resnet18/resnet18_sparsity_1_4_adam_5lam6.yml``), 8e-6 (``resnet18/resnet18_sparsity_5_adam_8lam6.yml``),
  9e-6 (``tinyImageNet/resnet18/resnet18_sparsity_1_4_adam_9lam6.yml``), 1e-6
  (``resnet20/resnet20_quantized_iter_hc_target_sparsity_0_5_adam.yml``,
  ``resnet50/ffcv_imagenet/resnet50_sparsity_5_adam_1.yml``), 1e-5 (``…_adam_2.yml``); a
  TinyImageNet sweep ``resnet18_sparsity_5_adam_lam{4,5,6}.yml`` (1e-4, 1e-5, 1e-6); and 0 in
  the two configs that keep 50% of the weights (above).
* **rounds = 9** — ``epochs: 200``, ``iter_period: 20`` → ⌊(200 − 1)/20⌋ = 9 rounds
  (``main.py``: a round after epoch e when e % T == 0 and e ≠ 0; ``utils/net_utils.py``
  ``get_prune_rate``). The other iterative Adam configs give 7 to 39 rounds (``iter_period``
  5–25 over 88–200 epochs). Round k of K is taken after step ⌊k · S / (K + 1)⌋ of S, so the
  last round falls one period before the end, as in the reference (round 9 after epoch index
  180 of 0–199). ``prune_period=P`` instead prunes
  after every P steps, ⌊(S − 1)/P⌋ rounds — the reference's rule in steps.
* **epochs = 3** — the reference trains the scores for as many epochs as it then fine-tunes the
  weights (``main.py``: ``range(start_epoch, epochs)``; ``main_utils.py`` ``finetune``:
  ``range(epochs, epochs * 2)``); the weights here fine-tune for the task's epochs, 3 for GLUE
  (``tasks/spec.py``; Chen et al. 2020). Steps = ⌈epochs · batches⌉, cycling through the batches
  given (``prune-at-init`` and ``transfer`` give one epoch) in a new seeded order every pass.
* **Reduced budget**: ``steps=N`` (``gem_steps``) takes N steps whatever ``epochs`` says, or
  ``epochs=1``; either is recorded in the ticket's options and cost.

Choices the paper leaves open for BERT (not in the reference), and why:

* **Scores start at 0.75** for every surviving weight (pruned ones at 0) — the reference draws
  them from U[0, 1] (``score_init: unif``), which for a CIFAR network at random initialisation
  costs nothing but here would drop a random half of the *pre-trained* θ0 before the first step.
  0.75 is the middle of the active range: the first mask is θ0 itself and the mask depends on the
  data, not on a score seed.
* **The task head trains with the scores** (AdamW at ``head_learning_rate`` 1e-4, the
  fine-tuning rate of the tasks here), from its state in ``model``, on a copy: a fresh BERT head
  is random, whereas the reference's last layer is a pruned layer of the network. θ0 — backbone
  and head — is left untouched, and ``finetune`` then trains the weights under the mask.
* Dropout is on while training the scores (training mode), as in the reference's ``train``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...ticket import is_backbone_parameter
from ..select import select
from .base import PruningCriterion, register_criterion

logger = logging.getLogger("bert_tickets")

#: λ of the reference's sparse Adam config (fewer than half the weights kept; ``configs/hypercube/
#: resnet18/cifar10/sparsity_5_85lam6_iter_20_adam.yml``: ``lmbda: 0.0000085``).
REFERENCE_ADAM_PENALTY = 8.5e-6
#: Its learning rate (``lr: 0.01``).
REFERENCE_ADAM_LEARNING_RATE = 1e-2
#: λ and learning rate of the reference's Adam configs that keep half the weights
#: (``configs/hypercube/tinyImageNet/resnet18/resnet18_sparsity_50_adam_{5,25}.yml``: ``lmbda: 0``,
#: ``lr: 0.1``), the defaults when at least half is kept.
REFERENCE_HALF_KEPT_PENALTY = 0.0
REFERENCE_HALF_KEPT_LEARNING_RATE = 0.1
#: Its pruning rounds: ``epochs: 200``, ``iter_period: 20`` → ⌊199 / 20⌋.
REFERENCE_ROUNDS = (200 - 1) // 20
#: Score-training epochs: as many as the weights fine-tune (GLUE: 3), as the reference trains the
#: scores for as many epochs as it then trains the weights.
DEFAULT_EPOCHS = 3.0
#: Learning-rate schedules of the scores.
LR_SCHEDULES = ("cosine", "constant")


@dataclass
class GemMinerOptions:
    """Options of ``gem_miner`` (module docstring for the defaults, their sources and reasons).

    Attributes:
        epochs: passes over the batches given (the score-training budget); ignored when
            ``steps`` is set.
        steps: optimizer steps on the scores — an explicit (reduced) budget; ``None``:
            ⌈epochs · batches⌉.
        learning_rate: Adam learning rate of the scores (peak, with ``lr_schedule``); ``None``:
            by the kept fraction (:meth:`resolved`).
        lr_schedule: ``"cosine"`` (decay to 0 over the steps) or ``"constant"``.
        head_learning_rate: AdamW learning rate of the task head.
        penalty: λ of the L2 penalty ``λ Σ s²`` on the scores; ``None``: by the kept fraction.
        rounds: global pruning rounds, evenly spaced, the last one period before the end.
        prune_period: steps between pruning rounds instead (``None``: from ``rounds``).
        score_init: initial score of every surviving weight, in (0.5, 1].
    """

    epochs: float = field(
        default=DEFAULT_EPOCHS,
        metadata={
            "aliases": ["gem_epochs"],
            "help": "score-training epochs over the batches given (the weights' fine-tuning epochs, GLUE 3)",
        },
    )
    steps: int | None = field(
        default=None, metadata={"aliases": ["gem_steps"], "help": "score-training steps, a reduced budget (default: epochs x batches)"}
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "aliases": ["gem_learning_rate"],
            "help": "Adam learning rate of the scores (default by the kept fraction, as the reference's Adam configs: "
            "0.1 when at least half is kept, else 0.01)",
        },
    )
    lr_schedule: str = field(
        default="cosine", metadata={"aliases": ["gem_lr_schedule"], "help": "cosine or constant (reference: cosine_lr)"}
    )
    head_learning_rate: float = field(
        default=1e-4, metadata={"aliases": ["gem_head_learning_rate"], "help": "AdamW learning rate of the task head"}
    )
    penalty: float | None = field(
        default=None,
        metadata={
            "aliases": ["gem_penalty"],
            "help": "L2 penalty on the scores (default by the kept fraction, as the reference's Adam configs: "
            "0 when at least half is kept, else 8.5e-6)",
        },
    )
    rounds: int = field(
        default=REFERENCE_ROUNDS,
        metadata={"aliases": ["gem_rounds"], "help": "global pruning rounds (reference: 200 epochs / period 20 -> 9)"},
    )
    prune_period: int | None = field(
        default=None, metadata={"aliases": ["gem_prune_period"], "help": "steps between pruning rounds (default: from rounds)"}
    )
    score_init: float = field(default=0.75, metadata={"aliases": ["gem_score_init"], "help": "initial score, in (0.5, 1]"})

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raises ``ValueError`` (one line) for an option outside its range."""
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--gem_steps must be >= 1, got {self.steps}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"--gem_epochs must be > 0, got {self.epochs}")
        if self.prune_period is not None and self.prune_period < 1:
            raise ValueError(f"--gem_prune_period must be >= 1, got {self.prune_period}")
        if self.rounds < 0:
            raise ValueError(f"--gem_rounds must be >= 0, got {self.rounds}")
        if not ((self.learning_rate is None or self.learning_rate > 0) and self.head_learning_rate >= 0 and (self.penalty or 0) >= 0):
            raise ValueError("--gem_learning_rate must be > 0, --gem_head_learning_rate and --gem_penalty >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--gem_lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not (0.5 < self.score_init <= 1.0):
            raise ValueError(f"--gem_score_init must be in (0.5, 1], got {self.score_init}")

    def resolved(self, sparsity: float) -> tuple[float, float]:
        """``(learning_rate, penalty)`` for a target ``sparsity`` (fraction): the options given,
        else the reference's Adam config for the kept fraction (module docstring): (0.1, 0) when
        at least half is kept, (0.01, 8.5e-6) otherwise."""
        half = sparsity <= 0.5 + 1e-12
        lr = (
            self.learning_rate
            if self.learning_rate is not None
            else (REFERENCE_HALF_KEPT_LEARNING_RATE if half else REFERENCE_ADAM_LEARNING_RATE)
        )
        penalty = self.penalty if self.penalty is not None else (REFERENCE_HALF_KEPT_PENALTY if half else REFERENCE_ADAM_PENALTY)
        return lr, penalty

    def total_steps(self, num_batches: int) -> int:
        """Score-training steps over ``num_batches`` batches: ``steps``, else ⌈epochs · batches⌉."""
        return self.steps if self.steps is not None else max(1, math.ceil(self.epochs * num_batches))


def round_steps(steps: int, rounds: int, prune_period: int | None = None) -> list[int]:
    """The steps (1-based, after the optimizer step) at which Gem-Miner prunes: with
    ``prune_period`` P, every P steps before the last, ⌊(steps − 1)/P⌋ rounds (the reference's
    rule in epochs, ``main.py``); otherwise ``rounds`` rounds at ⌊k · steps / (rounds + 1)⌋,
    k = 1 … rounds, without repeats and never at step 0 (fewer rounds when ``steps`` is small).

    Raises:
        ValueError: ``steps`` < 1, ``rounds`` < 0 or ``prune_period`` < 1.
    """
    if steps < 1 or rounds < 0 or (prune_period is not None and prune_period < 1):
        raise ValueError(f"gem_miner rounds need steps >= 1, rounds >= 0, prune_period >= 1; got {steps}, {rounds}, {prune_period}")
    if prune_period is not None:
        return [k * prune_period for k in range(1, (steps - 1) // prune_period + 1)]
    return sorted({k * steps // (rounds + 1) for k in range(1, rounds + 1)} - {0})


def round_sparsities(start: float, sparsity: float, rounds: int) -> list[float]:
    """Target sparsity after each of ``rounds`` rounds: round k keeps
    ``(1 − start) · ((1 − sparsity)/(1 − start))^(k/rounds)`` (the reference's constant fraction of
    the survivors per round, ``get_prune_rate``); the last is exactly ``sparsity``; all
    ``start`` when nothing is to be pruned."""
    if sparsity <= start:
        return [start] * rounds
    ratio = (1.0 - sparsity) / (1.0 - start)
    return [sparsity if k == rounds else 1.0 - (1.0 - start) * math.pow(ratio, k / rounds) for k in range(1, rounds + 1)]


@dataclass
class GemMinerResult:
    """What :func:`gem_miner_search` found.

    Attributes:
        scores: name -> float32 CPU tensor of the weight's shape in [0, 1]; exactly 0 for the
            weights pruned by the rounds (and for those pruned before).
        mask: name -> ``torch.bool`` CPU tensor, the final exact-count mask (module docstring).
        record: the trajectory, JSON-ready (``metadata.extra["criterion_record"]``):
            ``prunable`` (N), ``steps``, ``learning_rate`` and ``penalty`` (as resolved), ``round_steps``, ``round_sparsities`` (targets),
            ``active`` (per step: survivors with score > 0.5), ``kept`` (per round: survivors
            after it), ``final`` (``kept``, ``above_half``, ``topped_up``, ``cut``: counts of the
            final mask, its weights with score > 0.5, with score ≤ 0.5, and survivors with score
            > 0.5 left out). Densities are counts / ``prunable``.
    """

    scores: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    record: dict[str, Any]


def gem_miner_search(
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
) -> GemMinerResult:
    """Train Gem-Miner scores (module docstring) toward ``sparsity``; return the scores, the
    final mask and the recorded trajectory (:class:`GemMinerResult`).

    Args:
        model: a BERT model with a task head; its parameters are not changed.
        weights: backbone-relative name -> the model's prunable parameter.
        batches: model-input dicts with labels, cycled through (a new seeded order every pass).
        sparsity: target sparsity, a fraction in [0, 1).
        masks: the current mask (``True`` = kept); pruned weights stay pruned.
        options: :class:`GemMinerOptions`.
        seed: seeds dropout and the batch order.
        scope, max_tensor_sparsity: as for :func:`~bert_tickets.pruning.select.select`, used by
            the rounds and the final selection.

    Raises:
        ValueError: no batches, a batch without labels, or an option out of range.
    """
    options = options or GemMinerOptions()
    options.check()
    if not batches:
        raise ValueError("gem_miner needs training batches with labels")
    steps = options.total_steps(len(batches))
    schedule = round_steps(steps, options.rounds, options.prune_period)
    full_name = {id(p): n for n, p in model.named_parameters()}
    names = list(weights)
    shapes = {n: weights[n].shape for n in names}
    theta0 = {n: weights[n].detach().clone() for n in names}
    alive = {n: (masks[n].clone() if masks is not None else torch.ones(shapes[n], dtype=torch.bool)).to(theta0[n].device) for n in names}
    prunable = sum(a.numel() for a in alive.values())
    start = 1.0 - sum(int(a.sum()) for a in alive.values()) / prunable
    targets = dict(zip(schedule, round_sparsities(start, sparsity, len(schedule))))
    scores = {n: (alive[n].float() * options.score_init).requires_grad_(True) for n in names}
    head = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if not is_backbone_parameter(model, n)}
    learning_rate, penalty = options.resolved(sparsity)
    score_optimizer = torch.optim.Adam(list(scores.values()), lr=learning_rate)
    optimizers = [score_optimizer]
    if head and options.head_learning_rate > 0:
        optimizers.append(torch.optim.AdamW(list(head.values()), lr=options.head_learning_rate))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(score_optimizer, T_max=steps) if options.lr_schedule == "cosine" else None
    record: dict[str, Any] = {
        "prunable": prunable,
        "steps": steps,
        "learning_rate": learning_rate,
        "penalty": penalty,
        "round_steps": schedule,
        "round_sparsities": [targets[s] for s in schedule],
        "active": [],
        "kept": [],
    }
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
                loss = out.loss + penalty * sum((s * s).sum() for s in scores.values()) if penalty else out.loss
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    opt.step()
                if cosine is not None:
                    cosine.step()
                with torch.no_grad():
                    for n in names:
                        scores[n].clamp_(0.0, 1.0).mul_(alive[n])
                    if step in targets:
                        current = {n: s.detach() for n, s in scores.items()}
                        alive = select(
                            shapes, lambda name, out, _c=current: _c[name].float(), targets[step], alive, scope, max_tensor_sparsity
                        )
                        for n in names:
                            scores[n].mul_(alive[n])
                        record["kept"].append(sum(int(a.sum()) for a in alive.values()))
                    active = sum(int(((scores[n] > 0.5) & alive[n]).sum()) for n in names)
                    record["active"].append(active)
                    if step in targets:
                        logger.debug(
                            "gem_miner step %d/%d: round to sparsity %.4f, kept %.4f, active %.4f",
                            step,
                            steps,
                            targets[step],
                            record["kept"][-1] / prunable,
                            active / prunable,
                        )
    finally:
        model.train(was_training)
        for n, p in model.named_parameters():
            p.requires_grad_(grad_flags[n])
    final_scores = {n: s.detach().float().cpu() for n, s in scores.items()}
    survivors = {n: a.cpu() for n, a in alive.items()}
    # survivors rank above the pruned (-1), so ties at score 0 never revive a pruned weight
    ranking = {n: torch.where(survivors[n], final_scores[n], torch.full_like(final_scores[n], -1.0)) for n in names}
    mask = select(shapes, lambda name, out: ranking[name], sparsity, masks, scope, max_tensor_sparsity)
    above = {n: survivors[n] & (final_scores[n] > 0.5) for n in names}
    record["final"] = {
        "kept": sum(int(m.sum()) for m in mask.values()),
        "above_half": sum(int((mask[n] & above[n]).sum()) for n in names),
        "topped_up": sum(int((mask[n] & ~above[n]).sum()) for n in names),
        "cut": sum(int((above[n] & ~mask[n]).sum()) for n in names),
    }
    return GemMinerResult(final_scores, mask, record)


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
    """The trained scores of :func:`gem_miner_search` (same arguments and errors): name ->
    float32 tensor of the weight's shape in [0, 1], exactly 0 for the weights pruned by the
    rounds (the last round leaves ``round(sparsity · N)`` pruned)."""
    return gem_miner_search(
        model, weights, batches, sparsity, masks, options, seed=seed, scope=scope, max_tensor_sparsity=max_tensor_sparsity
    ).scores


@register_criterion
class GemMinerCriterion(PruningCriterion):
    """Learned scores at θ0 with a straight-through mask (module docstring). Context: ``model``,
    ``batches`` (training data), ``gem_miner`` (:class:`GemMinerOptions`), ``masks``,
    ``sparsity`` (set by :func:`~bert_tickets.pruning.prune_ticket`). The scorer ranks the final
    mask (module docstring) first and carries the trajectory as its ``record``."""

    name = "gem_miner"
    needs = frozenset({"batches", "trains_scores", "seed"})
    at_init = True
    Options = GemMinerOptions
    summary = "scores trained at theta0 with a straight-through mask and periodic pruning (Sreenivasan et al. 2022)"

    def batches_needed(self, options):
        return (options or GemMinerOptions()).steps

    def passes(self, steps: int, **context: Any) -> dict[str, int]:
        options = context.get("gem_miner") or self._options(context)
        batches = context.get("batches") or []
        if options.steps is None and not batches:
            return {"train_steps": 0}
        return {"train_steps": steps * options.total_steps(len(batches))}

    def scorer(self, weights, *, seed=0, model=None, batches=None, masks=None, sparsity=None, gem_miner=None, **context):
        gem_miner = gem_miner or self._options(context)
        if model is None or sparsity is None:
            raise ValueError("gem_miner needs the model and the target sparsity (context model=, sparsity=)")
        found = gem_miner_search(
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
        # the final mask ranks first (2 + s >= 2 > every other score), so the selection of
        # prune_ticket (same count, scope and cap) returns exactly found.mask
        ranking = {n: found.mask[n].float() * 2.0 + s for n, s in found.scores.items()}

        def gem_miner_scorer(name: str, out: torch.Tensor | None) -> torch.Tensor:
            return ranking[name]

        gem_miner_scorer.record = found.record  # type: ignore[attr-defined]
        return gem_miner_scorer


__all__ = [
    "GemMinerCriterion",
    "GemMinerOptions",
    "GemMinerResult",
    "REFERENCE_ADAM_PENALTY",
    "REFERENCE_HALF_KEPT_LEARNING_RATE",
    "REFERENCE_HALF_KEPT_PENALTY",
    "gem_miner_scores",
    "gem_miner_search",
    "round_sparsities",
    "round_steps",
]
