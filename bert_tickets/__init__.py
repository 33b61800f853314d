"""bert-tickets: find, share and transfer lottery tickets in pre-trained BERT.

Implements iterative magnitude pruning (IMP) with rewinding from Chen et al. 2020, *The Lottery
Ticket Hypothesis for Pre-trained BERT Networks* (NeurIPS), on top of Hugging Face
``transformers.Trainer``.

Packages, each importing only from the ones below it (checked by import-linter, see
``pyproject.toml``): ``cli`` > ``arguments`` > ``experiments`` | ``publish`` > ``results`` >
``training`` > ``tasks`` > ``pruning`` > ``ticket`` > ``_io``.
"""

from . import publish as _publish  # noqa: F401  (registers TicketMask.push_to_hub's implementation)
from .pruning import global_magnitude_pruning, prune_ticket, random_pruning, sparsity_schedule
from .ticket import DEFAULT_PRUNABLE_PATTERNS, TicketMask, TicketMetadata, get_backbone, load_ticket, prunable_parameters

__version__ = "0.1.0"

# `TicketCallback` / `fix_loss_scaling` / `merge_with_ticket` need `transformers.TrainerCallback`,
# whose import pulls in the Trainer utilities (and peft when installed: seconds); they are
# imported on first use so that loading or pushing a ticket does not pay for it.
_LAZY = {
    "TicketCallback": ".training.callback",
    "fix_loss_scaling": ".training.callback",
    "merge_with_ticket": ".training.merge",
    "finetune": ".training.finetune",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_PRUNABLE_PATTERNS",
    "TicketCallback",
    "TicketMask",
    "TicketMetadata",
    "finetune",
    "fix_loss_scaling",
    "get_backbone",
    "global_magnitude_pruning",
    "load_ticket",
    "merge_with_ticket",
    "prunable_parameters",
    "prune_ticket",
    "random_pruning",
    "sparsity_schedule",
]
