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


class RewindPointCapture(TrainerCallback):
    """Hands the backbone's weights after ``step`` optimizer steps to ``save`` (late rewinding,
    Frankle et al. 2020); ``done`` tells afterwards whether the step was reached."""

    def __init__(self, step: int, save: Callable[[dict[str, torch.Tensor]], None] | None, stop: bool = False):
        self.step, self.save, self.stop, self.done = step, save, stop, False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.done and state.global_step == self.step:
            if self.save is not None:
                self.save(backbone_state(model))
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
