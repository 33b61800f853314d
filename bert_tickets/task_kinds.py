"""How each *kind* of task plugs into IMP: which model head, how data become features, how a
trained model is evaluated.

A task spec (``tasks/<name>.toml``) names its ``kind``; the IMP runner, the callback and the mask
format are the same for every kind. :class:`GlueKind` covers GLUE sequence classification and
regression; :class:`bert_tickets.squad.SquadKind` (``"squad"``, question answering) and
:class:`bert_tickets.mlm.MaskedLMKind` (``"mlm"``) register themselves with :func:`register_kind`
when this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification

from .metrics import make_compute_metrics
from .tasks import TaskSpec, load_task_dataset, tokenize_task_dataset, validate_task_inputs


@dataclass
class PreparedData:
    """Features ready for ``Trainer``.

    Attributes:
        train: tokenized training ``datasets.Dataset``.
        eval: evaluation split name -> tokenized ``Dataset``; the first entry is the primary
            split (its metrics are reported without a prefix).
        extra: kind-specific data (e.g. the untokenized examples needed by post-processing).
        notes: provenance worth recording with every result (JSON-serialisable), e.g. that a
            SQuAD training part was split off the development set; the IMP runner merges it
            into every ticket's ``metadata.extra`` and prints it with the summary.
    """

    train: Any
    eval: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class TaskKind:
    """Interface of a task kind (override every method)."""

    name = ""

    def validate_inputs(self, spec: TaskSpec, data_dir: str | Path) -> None:
        """Check local input files and columns without loading them (``FileNotFoundError`` /
        ``ValueError`` with a one-line message)."""
        raise NotImplementedError

    def model_class(self, spec: TaskSpec):
        """The ``AutoModelFor…`` class whose ``from_pretrained`` builds the model."""
        raise NotImplementedError

    def model_kwargs(self, spec: TaskSpec) -> dict[str, Any]:
        """Extra ``from_pretrained`` keyword arguments (e.g. ``num_labels``)."""
        return {}

    def load_model(self, spec: TaskSpec, model_name_or_path: str, **kwargs: Any):
        """Build the task model from a pre-trained checkpoint (θ0).

        Default: ``model_class(spec).from_pretrained(model_name_or_path, **model_kwargs(spec),
        **kwargs)``; ``kwargs`` are ``from_pretrained`` options such as ``revision`` and
        ``cache_dir``. A kind may override it to inspect what was loaded (see
        :meth:`describe_model`).
        """
        return self.model_class(spec).from_pretrained(model_name_or_path, **self.model_kwargs(spec), **kwargs)

    def describe_model(self, model) -> dict[str, Any]:
        """Facts about a freshly loaded model worth recording in every ticket's
        ``metadata.extra`` (JSON-serialisable), e.g. that its head was not pre-trained.
        Default: nothing (``{}``)."""
        return {}

    def prepare(self, spec: TaskSpec, tokenizer, data_dir, cache_dir, max_seq_length, max_train_samples, max_eval_samples) -> PreparedData:
        """Load and tokenize the task's data."""
        raise NotImplementedError

    def trainer_kwargs(self, spec: TaskSpec, tokenizer, data: PreparedData) -> dict[str, Any]:
        """Extra ``Trainer`` keyword arguments (``data_collator``, ``compute_metrics``)."""
        return {}

    def evaluate(self, trainer, spec: TaskSpec, data: PreparedData) -> dict[str, float]:
        """Metrics of the trained model: primary split unprefixed, others as ``{split}_{name}``.

        Default: ``trainer.evaluate`` on every evaluation split (``compute_metrics`` from
        :meth:`trainer_kwargs`)."""
        metrics: dict[str, float] = {}
        first = next(iter(data.eval))
        for split, ds in data.eval.items():
            out = trainer.evaluate(eval_dataset=ds, metric_key_prefix="eval")
            for key, value in out.items():
                name = key[len("eval_") :] if key.startswith("eval_") else key
                metrics[name if split == first else f"{split}_{name}"] = value
        return metrics


def _select(ds, n: int | None):
    return ds if n is None else ds.select(range(min(n, len(ds))))


class GlueKind(TaskKind):
    """GLUE sentence(-pair) classification and regression with ``AutoModelForSequenceClassification``."""

    name = "glue"

    def validate_inputs(self, spec, data_dir):
        validate_task_inputs(spec, data_dir)

    def model_class(self, spec):
        return AutoModelForSequenceClassification

    def model_kwargs(self, spec):
        return {"num_labels": spec.num_labels, "id2label": spec.id2label, "label2id": spec.label2id}

    def prepare(self, spec, tokenizer, data_dir, cache_dir, max_seq_length, max_train_samples, max_eval_samples):
        raw = load_task_dataset(spec, data_dir, cache_dir)
        raw["train"] = _select(raw["train"], max_train_samples)
        for split in spec.eval_splits:
            raw[split] = _select(raw[split], max_eval_samples)
        # Dynamic padding (Trainer pads each batch with DataCollatorWithPadding): results equivalent
        # to padding to max_seq_length, in a fraction of the compute for short GLUE sentences.
        tokenized = tokenize_task_dataset(raw, spec, tokenizer, max_seq_length, padding=False)
        return PreparedData(train=tokenized["train"], eval={s: tokenized[s] for s in spec.eval_splits})

    def trainer_kwargs(self, spec, tokenizer, data):
        return {"compute_metrics": make_compute_metrics(spec)}



_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Register a :class:`TaskKind` under ``kind.name``; returns it."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> TaskKind:
    """The registered :class:`TaskKind` called ``name``.

    Raises:
        NotImplementedError: no kind of that name is registered.
    """
    if name not in _KINDS:
        raise NotImplementedError(f"task kind {name!r} is not supported (supported: {', '.join(sorted(_KINDS))})")
    return _KINDS[name]


register_kind(GlueKind())

# The other built-in kinds register themselves on import (they import this module's names).
from . import mlm as _mlm  # noqa: E402,F401
from . import squad as _squad  # noqa: E402,F401
