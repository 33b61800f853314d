"""Weights around a fine-tune: θ0 with a fresh task head, the task head's state, and the
rewind point (the backbone after ``k`` steps of level-0 training, Frankle et al. 2020).

Every state here is ``dict[name, tensor]`` of detached, contiguous CPU copies; saving them is
the caller's (the run record's) business.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, set_seed
from transformers.utils import logging as hf_logging

from .._io import derived_seed
from ..tasks import TaskSpec, get_kind
from ..ticket import get_backbone, is_backbone_parameter
from .callback import fix_loss_scaling


def load_theta0(
    task: TaskSpec, model_name_or_path: str, seed: int, *, revision: str | None = None, cache_dir: str | None = None
) -> torch.nn.Module:
    """The task model built on the pre-trained weights θ0, its new task head initialised under
    ``seed`` (``transformers.set_seed(seed)`` first, so the same seed gives the same head), with
    :func:`~bert_tickets.training.callback.fix_loss_scaling` applied. transformers' "newly
    initialised weights" report is silenced (it would repeat for every level and seed).

    Raises:
        OSError / ValueError: from ``from_pretrained`` (missing or invalid checkpoint).
    """
    set_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = get_kind(task.kind).load_model(task, model_name_or_path, revision=revision, cache_dir=cache_dir)
    finally:
        hf_logging.set_verbosity(verbosity)
    return fix_loss_scaling(model)


def head_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters outside the backbone (the task head), as detached contiguous CPU copies."""
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if not is_backbone_parameter(model, n)}


def backbone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's parameters (backbone-relative names), detached contiguous CPU copies."""
    return {n: p.detach().cpu().clone().contiguous() for n, p in get_backbone(model).named_parameters()}


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into ``module``'s parameters of the same names (in place, no grad).

    Raises:
        ValueError: a name in ``state`` is not a parameter of ``module`` (``what`` names the
            state in the message); nothing is copied then.
    """
    params = dict(module.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"{what}: model has no parameter {missing[0]!r}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def write_start_point(directory: str | Path, model: torch.nn.Module, optimizer: Any, lr_scheduler: Any, state: Any) -> None:
    """Write a Trainer checkpoint directory from which ``Trainer.train(resume_from_checkpoint=
    directory)`` continues a fine-tune at step ``state.global_step``: *every* weight of the model
    (backbone and task head, ``save_pretrained``: tied weights once), the learning-rate
    schedule's position (``scheduler.pt``), the step count (``trainer_state.json``, without the
    log history) from which the Trainer skips the batches already seen (the data order goes on),
    and an optimizer state with the parameter groups but **no moments** (``optimizer.pt``).

    This is rewinding as Frankle et al. 2020 (*Linear Mode Connectivity and the Lottery Ticket
    Hypothesis*, Section 3: "rewind to iteration k", all weights W_k) and its reference code
    facebookresearch/open_lth (``training/train.py``: ``train(start_step=k)`` steps the
    learning-rate schedule k times, advances the data loader to epoch/iteration k and starts a
    fresh optimizer) do it. Decision: fresh Adam moments, as open_lth's fresh optimizer (its SGD
    momentum buffer is not part of the rewind point); the pruned weights' moments would be
    zeroed by :class:`~bert_tickets.training.callback.TicketCallback` anyway.
    """
    from .callback import unwrap_optimizer

    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    inner = unwrap_optimizer(optimizer)
    torch.save({"state": {}, "param_groups": inner.state_dict()["param_groups"]}, directory / "optimizer.pt")
    torch.save(lr_scheduler.state_dict(), directory / "scheduler.pt")
    start = copy.deepcopy(state)
    start.log_history = []
    start.save_to_json(str(directory / "trainer_state.json"))


class RewindPointCapture(TrainerCallback):
    """At ``step`` optimizer steps, hands the backbone's weights to ``save`` (the rewind point of
    late rewinding, Frankle et al. 2020) and/or a writer of the whole start point to
    ``save_start`` (``save_start(write)``, ``write(directory)`` = :func:`write_start_point`:
    every weight, schedule position and data order, to continue from); ``done`` tells afterwards
    whether the step was reached. With ``stop`` the rest of the training is skipped."""

    def __init__(
        self,
        step: int,
        save: Callable[[dict[str, torch.Tensor]], None] | None,
        stop: bool = False,
        save_start: Callable[[Callable[[Path], None]], None] | None = None,
    ):
        self.step, self.save, self.stop, self.save_start, self.done = step, save, stop, save_start, False

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if not self.done and state.global_step == self.step:
            if self.save is not None:
                self.save(backbone_state(model))
            if self.save_start is not None:
                self.save_start(lambda directory: write_start_point(directory, model, optimizer, lr_scheduler, state))
            self.done = True
            if self.stop:  # only the rewind point is wanted: the rest of training is skipped
                control.should_training_stop = True


def reinitialize_backbone(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Replace every backbone weight by a fresh draw of the model's own initializer (θ0′ of Chen et
    al. 2020, Table 2: "IMP mask, random weights").

    Uses ``model._init_weights`` (transformers' initializer for the architecture: for BERT,
    ``Linear`` and ``Embedding`` weights ~ N(0, ``config.initializer_range``), biases 0,
    LayerNorm 1 / 0) on every backbone module, under ``torch.manual_seed(seed)``. Decision: the
    whole backbone (embeddings and LayerNorm included) is re-initialised, not only the prunable
    weights — θ0′ asks whether the *pre-trained values* matter, so none are kept; the task head
    is left as it is (it is newly initialised in every cell anyway).

    Returns:
        ``model``, modified in place.
    """
    backbone = get_backbone(model)
    # transformers 5 marks every module and parameter loaded by from_pretrained with
    # `_is_hf_initialized`, and its init functions skip marked tensors: lift the marks for the
    # re-initialisation (else nothing would change), then put them back.
    marked = [t for t in (*backbone.modules(), *backbone.parameters()) if getattr(t, "_is_hf_initialized", False)]
    for t in marked:
        t._is_hf_initialized = False
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            backbone.apply(model._init_weights)
    finally:
        torch.random.set_rng_state(generator_state)
        for t in marked:
            t._is_hf_initialized = True
    return model


def shuffle_weights(model: torch.nn.Module, names: list[str] | tuple[str, ...], seed: int) -> torch.nn.Module:
    """Permute the values of each named backbone weight tensor within itself (θ0″ of Chen et al.
    2020, Table 2: "IMP mask, shuffled weights").

    Each tensor ``i`` (in the order given) is flattened and permuted by ``torch.randperm`` from a
    ``torch.Generator`` seeded with ``seed * 100003 + i``: reproducible per seed, independent per
    tensor, and every tensor keeps its multiset of values (its layer's weight distribution);
    only which weight sits where is lost. Decision: the prunable weights are shuffled (the ones a
    ticket selects); the other backbone parameters stay at θ0.

    Args:
        names: backbone-relative parameter names (e.g. a ticket's mask keys); a name the model
            lacks (a pooler on a QA model) is skipped, as by :meth:`TicketMask.apply`.
        seed: the shuffle's seed.

    Returns:
        ``model``, modified in place.
    """
    from ..ticket.prunable import backbone_parameters

    params = backbone_parameters(model)
    with torch.no_grad():
        for i, name in enumerate(names):
            p = params.get(name)
            if p is None:
                continue
            gen = torch.Generator().manual_seed(derived_seed(seed, i))
            flat = p.detach().reshape(-1)
            p.copy_(flat[torch.randperm(flat.numel(), generator=gen).to(flat.device)].reshape(p.shape))
    return model
