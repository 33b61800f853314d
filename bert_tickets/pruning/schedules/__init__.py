"""Sparsity schedules: one file each, registered on import (one line per schedule below)."""

from . import adaptive, geometric, linear  # noqa: F401  (registration)
from .base import (
    SCHEDULES,
    LevelOutcome,
    SparsitySchedule,
    StaticSchedule,
    make_schedule,
    register_schedule,
    schedule_hash_entries,
    schedule_names,
)

__all__ = [
    "SCHEDULES",
    "LevelOutcome",
    "SparsitySchedule",
    "StaticSchedule",
    "make_schedule",
    "register_schedule",
    "schedule_hash_entries",
    "schedule_names",
]
