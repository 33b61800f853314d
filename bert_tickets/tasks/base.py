"""The task-kind interface and its registry: which model head, how data become features, how a
trained model is evaluated.

A task spec (``tasks/<name>.toml``) names its ``kind``; fine-tuning, the callback and the mask
format are the same for every kind. The built-in kinds — :class:`~bert_tickets.tasks.glue.GlueKind`
(``"glue"``), :class:`~bert_tickets.tasks.squad.SquadKind` (``"squad"``) and
:class:`~bert_tickets.tasks.mlm.MaskedLMKind` (``"mlm"``) — each live in their own module and
are registered by ``bert_tickets/tasks/__init__.py`` (one line each); this module imports none
of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import TaskSpec


@dataclass
class PreparedData:
    """Features ready for ``Trainer``. A kind that needs more (SQuAD's untokenized examples for
    post-processing) returns a dataclass subclass with typed fields.

    Attributes:
        train: tokenized training ``datasets.Dataset``.
        eval: evaluation split name -> tokenized ``Dataset``; the first entry is the primary
            split (its metrics are reported without a prefix).
        notes: provenance worth recording with every result (JSON-serialisable), e.g. that a
            SQuAD training part was split off the development set; the IMP runner merges it
            into every ticket's ``metadata.extra`` and prints it with the summary.
    """

    train: Any
    eval: dict[str, Any]
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrivialBaseline:
    """What a model that ignores its input reaches on a task's primary evaluation split: the
    floor every reported level and transfer cell must beat before "matching" means anything
    (a run whose every level predicts the majority class is not a ticket).

    Attributes:
        metric: the task's primary metric.
        value: the best value of ``metric`` over constant predictions, or ``None`` where a
            constant prediction leaves it undefined (Pearson correlation).
        prediction: the constant prediction in words, e.g. ``"always 'equivalent' (class 1:
            279/408)"``.
        rule: what "beats it" means, in words.
    """

    metric: str
    value: float | None
    prediction: str
    rule: str = ""

    def beaten_by(self, value: float | None) -> bool:
        """Whether ``value`` beats the baseline: strictly above ``value`` (by more than 1e-12),
        or, where the baseline is undefined, strictly above 0 (a positive correlation). A
        missing or NaN ``value`` (e.g. Pearson of constant predictions) never does."""
        if value is None or value != value:
            return False
        return value > (0.0 if self.value is None else self.value) + 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "prediction": self.prediction, "rule": self.rule}


class TaskKind:
    """Interface of a task kind (override every method)."""

    name = ""
    #: The Hugging Face Hub pipeline task of the kind's models (a model card's ``task_type``).
    hub_task_type = "text-classification"

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

    def trivial_baseline(self, spec: TaskSpec, data: PreparedData) -> TrivialBaseline:
        """The :class:`TrivialBaseline` of the primary evaluation split of ``data``."""
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


_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Register a :class:`TaskKind` under ``kind.name``; returns it."""
    _KINDS[kind.name] = kind
    return kind


def kind_names() -> list[str]:
    """Names of the registered task kinds, in registration order."""
    return list(_KINDS)


def get_kind(name: str) -> TaskKind:
    """The registered :class:`TaskKind` called ``name``.

    Raises:
        NotImplementedError: no kind of that name is registered.
    """
    if name not in _KINDS:
        raise NotImplementedError(f"task kind {name!r} is not supported (supported: {', '.join(sorted(_KINDS))})")
    return _KINDS[name]


def select_first(ds, n: int | None):
    """The first ``n`` rows of a ``datasets.Dataset`` (all of them when ``n`` is ``None``)."""
    return ds if n is None else ds.select(range(min(n, len(ds))))


def load_hub_splits(spec: TaskSpec, splits: Sequence[str], columns: Sequence[str], cache_dir: str | Path | None = None) -> dict:
    """``datasets.load_dataset(spec.hub_dataset, spec.hub_config)`` restricted to ``splits``
    (normalised names, mapped to the Hub's split names) and ``columns``.

    Returns:
        Normalised split name -> ``datasets.Dataset`` with exactly ``columns``.

    Raises:
        ValueError: the task has no Hub dataset, or a split or column is missing (one line).
    """
    import datasets

    if not spec.hub_dataset:
        raise ValueError(f"task {spec.name!r} has no Hub dataset; pass data_dir")
    raw = datasets.load_dataset(spec.hub_dataset, spec.hub_config, cache_dir=None if cache_dir is None else str(cache_dir))
    out = {}
    for name in splits:
        hub_split = spec.split(name).hub_split
        if hub_split not in raw:
            raise ValueError(f"{spec.hub_dataset}/{spec.hub_config}: split {hub_split!r} not found (has: {', '.join(raw)})")
        ds = raw[hub_split]
        missing = [c for c in columns if c not in ds.column_names]
        if missing:
            raise ValueError(
                f"{spec.hub_dataset}/{spec.hub_config}[{hub_split}]: column {missing[0]!r} not found "
                f"(columns: {', '.join(ds.column_names)})"
            )
        out[name] = ds.select_columns(list(columns))
    return out
