"""Training-data sources: one file each, registered on import (one line per source below)."""

from . import embeddings, examples, subset, task  # noqa: F401  (registration)
from .base import SOURCES, TrainingData, TrainingSource, get_source, register_source, soft_label_loss, source_names
from .subset import random_subset

__all__ = [
    "SOURCES",
    "TrainingData",
    "TrainingSource",
    "get_source",
    "random_subset",
    "register_source",
    "soft_label_loss",
    "source_names",
]
