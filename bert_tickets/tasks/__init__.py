"""Tasks: the TOML spec schema and task registry (:mod:`.spec`), the task-kind interface and
registry (:mod:`.base`), one module per kind (GLUE, SQuAD v1.1, masked-LM) and every task's
metrics (:mod:`.metrics`).

A new kind is one module defining a :class:`~.base.TaskKind` subclass plus one registration
line below; the contract tests (``tests/tasks/test_kind_contract.py``) run over every
registered kind.

Layer: imports :mod:`bert_tickets._io` at most (not the ticket or pruning layers).
"""

from .base import PreparedData, TaskKind, TrivialBaseline, get_kind, kind_names, register_kind
from .glue import GlueKind, load_task_dataset, tokenize_task_dataset, validate_task_inputs
from .mlm import MaskedLMKind
from .spec import TaskSpec, get_task, list_tasks, load_task_spec
from .squad import SquadKind

register_kind(GlueKind())
register_kind(SquadKind())
register_kind(MaskedLMKind())

__all__ = [
    "GlueKind",
    "MaskedLMKind",
    "PreparedData",
    "TrivialBaseline",
    "SquadKind",
    "TaskKind",
    "TaskSpec",
    "get_kind",
    "get_task",
    "kind_names",
    "list_tasks",
    "load_task_dataset",
    "load_task_spec",
    "register_kind",
    "tokenize_task_dataset",
    "validate_task_inputs",
]
