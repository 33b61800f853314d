"""bert-tickets: find, share and transfer lottery tickets in pre-trained BERT.

Implements iterative magnitude pruning (IMP) with rewinding from Chen et al. 2020, *The Lottery
Ticket Hypothesis for Pre-trained BERT Networks* (NeurIPS), on top of Hugging Face
``transformers.Trainer``.
"""

from .callback import TicketCallback, fix_loss_scaling
from .mask import TicketMask, TicketMetadata
from .prunable import DEFAULT_PRUNABLE_PATTERNS, get_backbone, prunable_parameters
from .pruning import global_magnitude_pruning, prune_ticket, random_pruning, sparsity_schedule

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRUNABLE_PATTERNS",
    "TicketCallback",
    "TicketMask",
    "TicketMetadata",
    "fix_loss_scaling",
    "get_backbone",
    "global_magnitude_pruning",
    "prunable_parameters",
    "prune_ticket",
    "random_pruning",
    "sparsity_schedule",
]
