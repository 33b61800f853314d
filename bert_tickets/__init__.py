"""bert-tickets: find, share and transfer lottery tickets in pre-trained BERT.

Implements iterative magnitude pruning (IMP) with rewinding from Chen et al. 2020, *The Lottery
Ticket Hypothesis for Pre-trained BERT Networks* (NeurIPS), on top of Hugging Face
``transformers.Trainer``.
"""

from .hub import load_ticket
from .mask import TicketMask, TicketMetadata
from .prunable import DEFAULT_PRUNABLE_PATTERNS, get_backbone, prunable_parameters
from .pruning import global_magnitude_pruning, prune_ticket, random_pruning, sparsity_schedule

__version__ = "0.1.0"

# `TicketCallback` / `fix_loss_scaling` need `transformers.TrainerCallback`, whose import pulls in
# the Trainer utilities (and peft when installed: seconds); they are imported on first use so that
# loading or pushing a ticket does not pay for it.
_LAZY = {"TicketCallback": ".callback", "fix_loss_scaling": ".callback"}


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
    "fix_loss_scaling",
    "get_backbone",
    "load_ticket",
    "global_magnitude_pruning",
    "prunable_parameters",
    "prune_ticket",
    "random_pruning",
    "sparsity_schedule",
]
