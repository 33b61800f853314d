"""Task specs: the TOML schema of the BERT-Tickets downstream tasks and the task registry.

Every task is described declaratively by one TOML file in the top-level ``tasks/`` folder
(shipped as the package ``bert_tickets.task_specs``) and read with the standard-library
:mod:`tomllib` into a frozen :class:`TaskSpec`. The schema has a ``kind`` field and any number
of evaluation splits (MNLI's ``validation_matched`` / ``validation_mismatched``), so every task
of Chen et al. 2020 is one TOML file: the nine GLUE tasks (kind ``"glue"``, loaded by :mod:`bert_tickets.tasks.glue`),
SQuAD v1.1 (kind ``"squad"``, loaded by :mod:`bert_tickets.tasks.squad`) and masked-LM on WikiText
(kind ``"mlm"``, loaded by :mod:`bert_tickets.tasks.mlm`). Non-GLUE kinds describe their files in
``[local]`` and their own settings in a table named after the kind (``[squad]``, ``[mlm]``),
read through :meth:`TaskSpec.local_option` / :meth:`TaskSpec.option`.

Data loading is each kind's own module (:mod:`bert_tickets.tasks.glue` for GLUE).
"""

from __future__ import annotations

import functools
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "TASK_NAMES",
    "Hyperparameters",
    "SplitSpec",
    "TaskSpec",
    "get_task",
    "is_regression",
    "list_tasks",
    "load_task_spec",
    "num_labels",
]

#: Task kinds the spec schema knows (what a ``kind`` key may say). This module only reads and
#: checks a spec; each kind's model head, data code and metrics are a :class:`TaskKind` registered
#: in :mod:`bert_tickets.tasks.base` by :mod:`~bert_tickets.tasks.glue`,
#: :mod:`~bert_tickets.tasks.squad` and :mod:`~bert_tickets.tasks.mlm`.
KINDS: tuple[str, ...] = ("glue", "squad", "mlm")

_PROBLEM_TYPES = ("single_label_classification", "regression")
#: The ``problem_type`` of the non-GLUE kinds (fixed by the kind; the key may be omitted).
_KIND_PROBLEM_TYPES = {"squad": "question_answering", "mlm": "masked_lm"}
_LOCAL_LABEL_FORMATS = ("name", "id", "float")
_NORMALISED_TEXT_COLUMNS = ("sentence1", "sentence2")


# --------------------------------------------------------------------------------------------
# Spec dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSpec:
    """One split of a task.

    Attributes:
        name: split name in the normalised :class:`datasets.DatasetDict` (``"train"``,
            ``"validation"``, MNLI's ``"validation_matched"``).
        hub_split: name of the same split in the Hub dataset.
        local_file: file name of the split inside the task's local folder (``"dev.tsv"``).
    """

    name: str
    hub_split: str
    local_file: str


@dataclass(frozen=True)
class Hyperparameters:
    """Default fine-tuning hyperparameters for a task (BERT-Tickets' released commands).

    Attributes:
        learning_rate: peak learning rate (GLUE: 2e-5).
        per_device_train_batch_size: training batch size (GLUE: 32).
        num_train_epochs: epochs per fine-tuning run / per IMP level (GLUE: 3).
        max_seq_length: tokenizer truncation / padding length in tokens (GLUE: 128).
        weight_decay: AdamW weight decay (0.0).
        warmup_ratio: fraction of steps for linear warm-up (0.0).
        max_grad_norm: gradient-clipping norm (1.0).
    """

    learning_rate: float
    per_device_train_batch_size: int
    num_train_epochs: float
    max_seq_length: int
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0

    def training_arguments(self) -> dict[str, Any]:
        """Keyword arguments for :class:`transformers.TrainingArguments` (all fields except
        ``max_seq_length``, which belongs to the tokenizer)."""
        return {
            "learning_rate": self.learning_rate,
            "per_device_train_batch_size": self.per_device_train_batch_size,
            "num_train_epochs": self.num_train_epochs,
            "weight_decay": self.weight_decay,
            # transformers 5 folds the warm-up ratio into `warmup_steps` (a float in [0, 1) is a ratio).
            "warmup_steps": self.warmup_ratio,
            "max_grad_norm": self.max_grad_norm,
        }


@dataclass(frozen=True)
class TaskSpec:
    """Declarative description of one downstream task, built from ``tasks/<name>.toml``.

    TOML schema (top level / tables)::

        name, display_name, kind ("glue" | "squad" | "mlm"), aliases, description,
        problem_type ("single_label_classification" | "regression"; GLUE only: squad tasks
                   are always "question_answering", mlm tasks "masked_lm")
        [labels]   (GLUE only) names (Hub order: index = class id; [] for regression),
                   local_format ("name": label stored as the class name, "id": as the
                   integer class id, "float": regression score), range (optional [lo, hi])
        [hub]      dataset, config, text_columns, label_column
        [local]    folder, header (bool), text_columns, label_column (header names when
                   header = true, 0-based column indices when header = false),
                   skip_malformed_rows (optional bool, default false)
                   Non-GLUE kinds: any keys their loader documents (``local_options``).
        [[splits]] name, hub, file      (first split must be "train"; the rest are eval splits)
        [metrics]  names, primary
        [hyperparameters] learning_rate, per_device_train_batch_size, num_train_epochs,
                   max_seq_length, weight_decay, warmup_ratio, max_grad_norm
        [<kind>]   (optional, non-GLUE kinds) kind-specific settings, e.g. [squad] doc_stride,
                   n_best_size, max_answer_length; [mlm] mlm_probability (``options``)

    Attributes mirror the schema: ``name`` (canonical lower-case id, e.g. ``"stsb"``),
    ``display_name`` (``"STS-B"``), ``kind``, ``aliases``, ``description``, ``problem_type``,
    ``label_names`` (tuple of str, Hub order), ``local_label_format``, ``label_range``
    (``(lo, hi)`` or ``None``), ``hub_dataset``, ``hub_config``, ``hub_text_columns``,
    ``hub_label_column``, ``local_folder``, ``local_header``, ``local_text_columns``
    (str names or int indices), ``local_label_column``, ``skip_malformed_rows``, ``splits``
    (tuple of :class:`SplitSpec`), ``metrics`` (metric names as in the GLUE ``evaluate``
    module), ``primary_metric``, ``hyperparameters`` (:class:`Hyperparameters`),
    ``source`` (path of the TOML file it was read from), ``local_options`` (every key of
    ``[local]``) and ``options`` (the ``[<kind>]`` table), both as sorted ``(key, value)`` tuples
    (lists become tuples) so the spec stays hashable; read them with :meth:`local_option` and
    :meth:`option`.

    Instances are immutable and hashable. Build them with :func:`get_task` or
    :func:`load_task_spec`; both validate the file and raise ``ValueError`` naming it.
    """

    name: str
    display_name: str
    kind: str
    aliases: tuple[str, ...]
    description: str
    problem_type: str
    label_names: tuple[str, ...]
    local_label_format: str
    label_range: tuple[float, float] | None
    hub_dataset: str | None
    hub_config: str | None
    hub_text_columns: tuple[str, ...]
    hub_label_column: str | None
    local_folder: str
    local_header: bool
    local_text_columns: tuple[str | int, ...]
    local_label_column: str | int
    skip_malformed_rows: bool
    splits: tuple[SplitSpec, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    hyperparameters: Hyperparameters
    source: str = ""
    local_options: tuple[tuple[str, Any], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    # ---- derived properties -------------------------------------------------------------

    @property
    def is_regression(self) -> bool:
        """``True`` for regression tasks (STS-B): one float output, ``float32`` labels."""
        return self.problem_type == "regression"

    @property
    def num_labels(self) -> int:
        """Number of model outputs: ``len(label_names)`` for classification, 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def text_columns(self) -> tuple[str, ...]:
        """Normalised text column names: ``("sentence1",)`` or ``("sentence1", "sentence2")``."""
        return _NORMALISED_TEXT_COLUMNS[: len(self.local_text_columns)]

    @property
    def is_pair_task(self) -> bool:
        """``True`` when inputs are sentence pairs (a ``sentence2`` column exists)."""
        return len(self.text_columns) == 2

    @property
    def split_names(self) -> tuple[str, ...]:
        """All normalised split names, training split first."""
        return tuple(s.name for s in self.splits)

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Normalised names of the evaluation splits (every split except ``"train"``)."""
        return tuple(s.name for s in self.splits if s.name != "train")

    @property
    def id2label(self) -> dict[int, str]:
        """``{class id: name}`` for ``PretrainedConfig(id2label=...)`` (``{0: "LABEL_0"}`` for
        regression)."""
        if self.is_regression:
            return {0: "LABEL_0"}
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        """Inverse of :attr:`id2label`."""
        return {v: k for k, v in self.id2label.items()}

    def local_option(self, key: str, default: Any = None) -> Any:
        """Value of ``key`` in the spec's ``[local]`` table (``default`` when absent); lists are
        returned as tuples."""
        return dict(self.local_options).get(key, default)

    def option(self, key: str, default: Any = None) -> Any:
        """Value of ``key`` in the spec's kind-specific table (``[squad]``, ``[mlm]``;
        ``default`` when absent); lists are returned as tuples."""
        return dict(self.options).get(key, default)

    def split(self, name: str) -> SplitSpec:
        """Return the :class:`SplitSpec` called ``name``; ``KeyError`` if the task has none."""
        for s in self.splits:
            if s.name == name:
                return s
        raise KeyError(f"task {self.name!r} has no split {name!r} (splits: {', '.join(self.split_names)})")


def num_labels(spec: TaskSpec) -> int:
    """Number of model outputs for ``spec`` (``num_labels`` of the classification head):
    the number of classes, or 1 for regression."""
    return spec.num_labels


def is_regression(spec: TaskSpec) -> bool:
    """``True`` when ``spec`` is a regression task (STS-B)."""
    return spec.is_regression


# --------------------------------------------------------------------------------------------
# Reading specs
# --------------------------------------------------------------------------------------------


def _spec_dir() -> Path:
    """Folder holding the task TOML files: the installed ``bert_tickets.task_specs`` package,
    or the repository's ``tasks/`` folder when running from a source checkout."""
    try:
        from importlib import resources

        path = Path(str(resources.files("bert_tickets.task_specs")))
        if path.is_dir() and any(path.glob("*.toml")):
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "tasks"


def _require(table: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ValueError(f"{where}: missing required key {key!r}")
    value = table[key]
    if not isinstance(value, typ) or (typ in (int, float) and isinstance(value, bool)):
        raise ValueError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def _number(table: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    if key not in table and default is not None:
        return default
    value = _require(table, key, (int, float), where)
    return float(value)


def load_task_spec(path: str | Path) -> TaskSpec:
    """Read and validate one task TOML file.

    Args:
        path: path of a ``.toml`` file following the schema in :class:`TaskSpec`.

    Returns:
        The frozen :class:`TaskSpec`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not valid TOML or violates the schema (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task spec not found: {path}")
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    where = str(path)

    name = _require(raw, "name", str, where).strip().lower()
    kind = _require(raw, "kind", str, where)
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "glue":
        problem_type = raw.get("problem_type", "single_label_classification")
        if problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"{where}: problem_type must be one of {', '.join(_PROBLEM_TYPES)}, got {problem_type!r}")
    else:
        problem_type = _KIND_PROBLEM_TYPES[kind]  # fixed by the kind; a [labels] table is ignored

    labels = raw.get("labels", {})
    label_names = tuple(str(x) for x in labels.get("names", []))
    local_label_format = labels.get("local_format", "float" if problem_type == "regression" else "id")
    if local_label_format not in _LOCAL_LABEL_FORMATS:
        raise ValueError(f"{where}: labels.local_format must be one of {', '.join(_LOCAL_LABEL_FORMATS)}")
    if kind != "glue":
        pass  # no class labels: QA spans / masked tokens
    elif problem_type == "regression":
        if label_names or local_label_format != "float":
            raise ValueError(f"{where}: a regression task has labels.names = [] and labels.local_format = 'float'")
    elif len(label_names) < 2 or local_label_format == "float":
        raise ValueError(f"{where}: a classification task needs >= 2 labels.names and local_format 'name' or 'id'")
    label_range = labels.get("range")
    if label_range is not None:
        if (
            not isinstance(label_range, list)
            or len(label_range) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in label_range)
            or label_range[0] > label_range[1]
        ):
            raise ValueError(f"{where}: labels.range must be [low, high]")
        label_range = (float(label_range[0]), float(label_range[1]))

    hub = raw.get("hub", {})
    local = _require(raw, "local", dict, where) if kind == "glue" else raw.get("local", {})
    if not isinstance(local, dict):
        raise ValueError(f"{where}: [local] must be a table")
    kind_table = raw.get(kind, {}) if kind != "glue" else {}
    if not isinstance(kind_table, dict):
        raise ValueError(f"{where}: [{kind}] must be a table")
    header = bool(local.get("header", True))
    col_type: type = str if header else int
    local_text = tuple(local.get("text_columns", []))
    local_label = local.get("label_column", "")
    hub_text = tuple(hub.get("text_columns", []))
    if kind == "glue":
        _require(local, "folder", str, where + " [local]")
        if not 1 <= len(local_text) <= 2:
            raise ValueError(f"{where}: local.text_columns must list 1 or 2 columns")
        for col in (*local_text, local_label):
            if not isinstance(col, col_type) or isinstance(col, bool) or (col_type is int and col < 0):
                what = "header names (strings)" if header else "0-based column indices (integers >= 0)"
                raise ValueError(f"{where}: local columns must be {what} when header = {str(header).lower()}")
        if hub and len(hub_text) != len(local_text):
            raise ValueError(f"{where}: hub.text_columns and local.text_columns differ in length")

    raw_splits = _require(raw, "splits", list, where)
    splits = []
    for i, s in enumerate(raw_splits):
        sw = f"{where} [[splits]] #{i + 1}"
        if not isinstance(s, dict):
            raise ValueError(f"{sw}: must be a table")
        sname = _require(s, "name", str, sw)
        splits.append(SplitSpec(name=sname, hub_split=str(s.get("hub", sname)), local_file=str(s.get("file", ""))))
    names = [s.name for s in splits]
    if not splits or names[0] != "train" or len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"{where}: splits must start with 'train', have >= 1 eval split and unique names")

    metrics_t = _require(raw, "metrics", dict, where)
    metric_names = tuple(_require(metrics_t, "names", list, where + " [metrics]"))
    primary = _require(metrics_t, "primary", str, where + " [metrics]")
    if not metric_names or primary not in metric_names:
        raise ValueError(f"{where}: metrics.primary {primary!r} must be one of metrics.names")

    hp = _require(raw, "hyperparameters", dict, where)
    hw = where + " [hyperparameters]"
    hyper = Hyperparameters(
        learning_rate=_number(hp, "learning_rate", hw),
        per_device_train_batch_size=int(_require(hp, "per_device_train_batch_size", int, hw)),
        num_train_epochs=_number(hp, "num_train_epochs", hw),
        max_seq_length=int(_require(hp, "max_seq_length", int, hw)),
        weight_decay=_number(hp, "weight_decay", hw, 0.0),
        warmup_ratio=_number(hp, "warmup_ratio", hw, 0.0),
        max_grad_norm=_number(hp, "max_grad_norm", hw, 1.0),
    )

    return TaskSpec(
        name=name,
        display_name=str(raw.get("display_name", name.upper())),
        kind=kind,
        aliases=tuple(str(a).lower() for a in raw.get("aliases", [])),
        description=str(raw.get("description", "")),
        problem_type=problem_type,
        label_names=label_names,
        local_label_format=local_label_format,
        label_range=label_range,
        hub_dataset=hub.get("dataset"),
        hub_config=hub.get("config"),
        hub_text_columns=hub_text,
        hub_label_column=hub.get("label_column"),
        local_folder=str(local.get("folder", "")),
        local_header=header,
        local_text_columns=local_text,
        local_label_column=local_label,
        skip_malformed_rows=bool(local.get("skip_malformed_rows", False)),
        splits=tuple(splits),
        metrics=metric_names,
        primary_metric=primary,
        hyperparameters=hyper,
        source=str(path),
        local_options=_freeze(local),
        options=_freeze(kind_table),
    )


def _freeze(table: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A TOML table as sorted, hashable ``(key, value)`` pairs (lists -> tuples, tables -> pairs)."""

    def frozen(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(frozen(v) for v in value)
        if isinstance(value, dict):
            return _freeze(value)
        return value

    return tuple(sorted((str(k), frozen(v)) for k, v in table.items()))


def _normalise_key(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in "-_ ")


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, TaskSpec]:
    specs = {}
    for path in sorted(_spec_dir().glob("*.toml")):
        spec = load_task_spec(path)
        if spec.name in specs:
            raise ValueError(f"{path}: duplicate task name {spec.name!r}")
        specs[spec.name] = spec
    return specs


@functools.lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in _registry().values():
        for key in (spec.name, spec.display_name, *spec.aliases):
            table.setdefault(_normalise_key(key), spec.name)
    return table


def list_tasks() -> list[str]:
    """Canonical names of all task specs shipped with the package, sorted: the nine GLUE tasks,
    ``"mlm"`` and ``"squad"``."""
    return sorted(_registry())


#: Canonical task names (sorted): ``("cola", "mlm", "mnli", "mrpc", "qnli", "qqp", "rte", "squad",
#: "sst2", "stsb", "wnli")``.
TASK_NAMES: tuple[str, ...] = tuple(list_tasks())


def get_task(name: str) -> TaskSpec:
    """Look up a task spec by name.

    Matching is case-insensitive and ignores ``-``, ``_`` and spaces, and also accepts the
    display name and listed aliases: ``"RTE"``, ``"sts-b"``, ``"SST-2"``, ``"CoLA"`` all work.
    A path to a ``.toml`` file is also accepted and read with :func:`load_task_spec`.

    Raises:
        ValueError: unknown task (one-line message listing the known tasks).
    """
    if not isinstance(name, str):
        raise ValueError(f"task name must be a string, got {type(name).__name__}")
    if name.endswith(".toml") and Path(name).is_file():
        return load_task_spec(name)
    key = _lookup().get(_normalise_key(name))
    if key is None:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _registry()[key]
