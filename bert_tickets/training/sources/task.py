"""The ``task`` source: the task's training split as prepared by its kind — what every fine-tune
trained on before sources existed, and the default."""

from __future__ import annotations

from .base import TrainingData, TrainingSource, register_source


@register_source
class TaskSource(TrainingSource):
    """``data.train`` as it is, with the kind's collator (no options)."""

    name = "task"
    summary = "the task's training split (default)"

    def build(self, options, *, task, data, tokenizer=None):
        return TrainingData(data.train)
