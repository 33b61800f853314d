"""Training objectives: one file each, registered on import (one line per objective below)."""

from . import adversarial, attention_labels, standard  # noqa: F401  (registration)
from .base import OBJECTIVES, TrainingObjective, get_objective, objective_names, register_objective, with_embeddings, word_embeddings

__all__ = [
    "OBJECTIVES",
    "TrainingObjective",
    "get_objective",
    "objective_names",
    "register_objective",
    "with_embeddings",
    "word_embeddings",
]
