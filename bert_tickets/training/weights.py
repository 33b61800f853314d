"""Weights around a fine-tune: θ0 with a fresh task head, the task head's state, and the
rewind point (the backbone after ``k`` steps of level-0 training, Frankle et al. 2020).

Every state here is ``dict[name, tensor]`` of detached, contiguous CPU copies; saving them is
the caller's (the run record's) business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from transformers import TrainerCallback, set_seed
from transformers.utils import logging as hf_logging

from ..tasks import TaskSpec, get_kind
from ..ticket import get_backbone
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
    prefix = getattr(model, "base_model_prefix", "bert") + "."
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if not n.startswith(prefix)}


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


class RewindPointCapture(TrainerCallback):
    """Hands the backbone's weights after ``step`` optimizer steps to ``save`` (late rewinding,
    Frankle et al. 2020); ``done`` tells afterwards whether the step was reached."""

    def __init__(self, step: int, save: Callable[[dict[str, torch.Tensor]], None] | None):
        self.step, self.save, self.done = step, save, False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.done and state.global_step == self.step:
            if self.save is not None:
                self.save(backbone_state(model))
            self.done = True
