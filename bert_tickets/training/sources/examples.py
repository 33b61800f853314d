"""The ``examples`` source: synthetic or distilled examples given as text, one JSON object a line,
turned into features by the task's own tokenisation
(:func:`bert_tickets.tasks.tokenize_task_dataset`, the one ``GlueKind.prepare`` uses) and
batched by the kind's collator. GLUE-kind tasks (sentence(-pair) classification, regression).

A line: the task's text columns (``sentence1`` and, for pair tasks, ``sentence2``; ``sentence``
is accepted for ``sentence1``) and ``labels`` (or ``label``): a class id, a label name, a float
score (regression), or a list of ``num_labels`` probabilities (soft labels, trained with
:func:`~bert_tickets.training.sources.base.soft_label_loss`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import TrainingData, TrainingSource, register_source, soft_label_loss


@dataclass
class ExamplesOptions:
    """Options of the ``examples`` source."""

    path: str = field(default="", metadata={"help": "JSONL file of examples: text columns and labels (required)"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncation length in tokens (default: the task's, GLUE 128)"})

    def __post_init__(self):
        if not self.path:
            raise ValueError("training-data source examples needs path=FILE.jsonl")
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise ValueError(f"training-data source examples: max_seq_length must be >= 2, got {self.max_seq_length}")


def _label(task: Any, value: Any, where: str) -> Any:
    if task.is_regression:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where}: label {value!r} is not a finite number (regression task {task.name})")
        return float(value)
    if isinstance(value, list):
        if len(value) != task.num_labels or not all(isinstance(v, int | float) and v >= 0 for v in value):
            raise ValueError(f"{where}: soft labels must be {task.num_labels} non-negative numbers, got {value!r}")
        if abs(sum(value) - 1.0) > 1e-4:
            raise ValueError(f"{where}: soft labels must sum to 1, got {sum(value)}")
        return [float(v) for v in value]
    if isinstance(value, str):
        if value not in task.label_names:
            raise ValueError(f"{where}: unknown label {value!r} (labels: {', '.join(task.label_names)})")
        return task.label_names.index(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < task.num_labels:
        raise ValueError(f"{where}: label {value!r} is not a class id in [0, {task.num_labels})")
    return value


def read_examples(path: str | Path, task: Any) -> dict[str, list]:
    """The examples of a JSONL file as columns ``task.text_columns`` + ``label``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object, a missing text column or label, a bad label,
            a file mixing hard and soft labels, or no example (one line naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training-data source examples: no such file {path}")
    columns: dict[str, list] = {c: [] for c in task.text_columns}
    columns["label"] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: not a JSON object")
        if "sentence" in row and task.text_columns[0] not in row:
            row[task.text_columns[0]] = row["sentence"]
        for col in task.text_columns:
            if not isinstance(row.get(col), str):
                raise ValueError(f"{where}: no text {col!r} (task {task.name} reads {', '.join(task.text_columns)})")
            columns[col].append(row[col])
        if "labels" not in row and "label" not in row:
            raise ValueError(f"{where}: no labels")
        columns["label"].append(_label(task, row.get("labels", row.get("label")), where))
    if not columns["label"]:
        raise ValueError(f"training-data source examples: {path} holds no example")
    if len({isinstance(v, list) for v in columns["label"]}) > 1:
        raise ValueError(f"training-data source examples: {path} mixes class labels and soft labels")
    return columns


@register_source
class ExamplesSource(TrainingSource):
    """Text examples from a JSONL file, tokenised as the task's training split is."""

    name = "examples"
    summary = "synthetic / distilled text examples from a JSONL file, tokenised as the task's own data"
    Options = ExamplesOptions

    def check(self, options, *, task, data, model=None):
        if task.kind != "glue":
            raise ValueError(f"training-data source examples: defined for GLUE-kind tasks, not {task.kind!r} ({task.name})")
        read_examples(options.path, task)

    def build(self, options, *, task, data, tokenizer=None):
        from datasets import Dataset

        from ...tasks import tokenize_task_dataset

        if tokenizer is None:
            raise ValueError("training-data source examples needs the model's tokenizer")
        columns = read_examples(options.path, task)
        dataset = tokenize_task_dataset(Dataset.from_dict(columns), task, tokenizer, options.max_seq_length, padding=False)
        soft = isinstance(columns["label"][0], list)
        return TrainingData(dataset, label_loss=soft_label_loss if soft else None)
