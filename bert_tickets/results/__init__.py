"""Results: the run directory's one owner (:class:`RunRecord`, :class:`RunPaths`), typed level
records, the matching rule, and the summary tables.

Layer: imports :mod:`bert_tickets.ticket` and :mod:`bert_tickets._io` (no training code, so
``info`` and ``push`` read runs without importing the Trainer).
"""

from .kinds import claim_directory, directory_kind
from .lock import RunLock, RunLockedError
from .matching import LevelResult, dense_not_learned, is_matching, matching_margin, near_constant_count, summarize, verdicts
from .paths import RunPaths, check_output_dir
from .record import RunInfo, RunRecord, argument_groups, hyperparameter_hash, read_run, reproducing_arguments, summary_csv
from .tables import format_summary

__all__ = [
    "LevelResult",
    "RunInfo",
    "RunLock",
    "RunLockedError",
    "RunPaths",
    "check_output_dir",
    "claim_directory",
    "directory_kind",
    "RunRecord",
    "argument_groups",
    "format_summary",
    "hyperparameter_hash",
    "reproducing_arguments",
    "is_matching",
    "matching_margin",
    "near_constant_count",
    "read_run",
    "summarize",
    "summary_csv",
    "verdicts",
    "dense_not_learned",
]
