"""Pruning criteria: one file each, registered on import (one line per criterion below)."""

from . import gem_miner, importance, magnitude, random, snip, synflow  # noqa: F401  (registration)
from .base import CRITERIA, NEEDS, PruningCriterion, at_init_criteria, criterion_names, criterion_options, get_criterion, register_criterion
from .magnitude import global_magnitude_pruning, layerwise_magnitude_pruning
from .random import random_pruning

__all__ = [
    "CRITERIA",
    "NEEDS",
    "at_init_criteria",
    "criterion_options",
    "PruningCriterion",
    "criterion_names",
    "get_criterion",
    "global_magnitude_pruning",
    "layerwise_magnitude_pruning",
    "random_pruning",
    "register_criterion",
]
