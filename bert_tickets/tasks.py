"""Task specs, data loading and tokenization for the BERT-Tickets downstream tasks.

Every task is described declaratively by one TOML file in the top-level ``tasks/`` folder
(shipped as the package ``bert_tickets.task_specs``) and read with the standard-library
:mod:`tomllib` into a frozen :class:`TaskSpec`. The schema has a ``kind`` field and any number
of evaluation splits (MNLI's ``validation_matched`` / ``validation_mismatched``), so every task
of Chen et al. 2020 is one TOML file: the nine GLUE tasks (kind ``"glue"``, loaded here),
SQuAD v1.1 (kind ``"squad"``, loaded by :mod:`bert_tickets.squad`) and masked-LM on WikiText
(kind ``"mlm"``, loaded by :mod:`bert_tickets.mlm`). Non-GLUE kinds describe their files in
``[local]`` and their own settings in a table named after the kind (``[squad]``, ``[mlm]``),
read through :meth:`TaskSpec.local_option` / :meth:`TaskSpec.option`.

Data comes either from the Hugging Face Hub (``datasets.load_dataset("nyu-mll/glue", config)``)
or, offline, from a directory in the original GLUE TSV layout written by the GLUE download
script (``<data_dir>/RTE/train.tsv``, ``<data_dir>/RTE/dev.tsv``, ...). Both paths produce the
same normalised :class:`datasets.DatasetDict`: columns ``sentence1``, optional ``sentence2``
and ``label`` (a :class:`datasets.ClassLabel` class id in the Hub's label order, or a
``float32`` score for regression).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

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
    "load_task_dataset",
    "load_task_spec",
    "num_labels",
    "tokenize_task_dataset",
    "validate_task_inputs",
]

#: Task kinds the spec schema knows. ``"glue"`` is loaded by this module, ``"squad"`` by
#: :mod:`bert_tickets.squad`, ``"mlm"`` by :mod:`bert_tickets.mlm`.
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
    return Path(__file__).resolve().parents[1] / "tasks"


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


# --------------------------------------------------------------------------------------------
# Local GLUE TSV files
# --------------------------------------------------------------------------------------------


def _open_tsv(path: Path):
    # utf-8-sig drops the BOM that starts MRPC/dev.tsv of the GLUE download; newline="" lets
    # the csv module see raw line ends. Quoting is disabled: the files contain unbalanced '"'.
    return path.open("r", encoding="utf-8-sig", newline="")


def _tsv_reader(fh) -> Iterator[list[str]]:
    return csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)


def _task_folder(spec: TaskSpec, data_dir: Path) -> Path:
    folder = data_dir / spec.local_folder
    if folder.is_dir():
        return folder
    # Also accept the task folder itself (BERT-Tickets passes --data_dir glue_data/MNLI).
    if data_dir.name.lower() == spec.local_folder.lower() and data_dir.is_dir():
        return data_dir
    raise FileNotFoundError(f"{spec.display_name}: task folder not found: {folder}")


def _check_kind(spec: TaskSpec) -> None:
    if spec.kind != "glue":
        raise NotImplementedError(
            f"task {spec.name!r}: this loader reads GLUE data only; kind {spec.kind!r} data are loaded by "
            f"bert_tickets.{spec.kind} (bert_tickets.task_kinds.get_kind({spec.kind!r}).prepare)"
        )


def _column_indices(spec: TaskSpec, path: Path, first_row: list[str]) -> tuple[list[int], int, int]:
    """Map the spec's local columns to 0-based indices; return (text indices, label index,
    expected number of fields per row)."""
    if spec.local_header:
        header = [h.strip() for h in first_row]
        index = {}
        for i, h in enumerate(header):
            index.setdefault(h, i)
        cols = []
        for col in (*spec.local_text_columns, spec.local_label_column):
            if col not in index:
                raise ValueError(
                    f"{path}: column {col!r} not found in header (columns: {', '.join(map(repr, header))})"
                )
            cols.append(index[col])
    else:
        cols = [int(c) for c in (*spec.local_text_columns, spec.local_label_column)]
        needed = max(cols) + 1
        if len(first_row) < needed:
            raise ValueError(
                f"{path}: line 1 has {len(first_row)} tab-separated columns, column index {needed - 1} is needed"
            )
    return cols[:-1], cols[-1], len(first_row)


def validate_task_inputs(spec: TaskSpec, data_dir: str | Path, splits: Sequence[str] | None = None) -> dict[str, Path]:
    """Check a local GLUE TSV directory before any work: files exist and columns are present.

    Only the first line of each file is read (the header, or for header-less files such as
    CoLA the first data row, to check it has enough tab-separated columns).

    Args:
        spec: the task.
        data_dir: the GLUE root (containing ``RTE/``, ``CoLA/``, ...) or the task folder itself.
        splits: normalised split names to check (default: all of ``spec.split_names``).

    Returns:
        ``{split name: path of its TSV file}``.

    Raises:
        FileNotFoundError: ``data_dir``, the task folder or a split file is missing (one-line
            message naming the path).
        ValueError: a file is empty, a needed column is missing from the header, or a
            header-less file has too few columns (message names file and column); an unknown
            split name.
        NotImplementedError: ``spec.kind`` is not ``"glue"``.
    """
    _check_kind(spec)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    folder = _task_folder(spec, data_dir)
    wanted = list(spec.split_names if splits is None else splits)
    paths: dict[str, Path] = {}
    for split_name in wanted:
        try:
            split = spec.split(split_name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        path = folder / split.local_file
        if not path.is_file():
            raise FileNotFoundError(f"{spec.display_name}: {split.name} file not found: {path}")
        with _open_tsv(path) as fh:
            first_line = fh.readline()
        if not first_line.strip():
            raise ValueError(f"{path}: file is empty (or its first line is blank)")
        first_row = next(_tsv_reader([first_line.rstrip("\r\n")]))
        _column_indices(spec, path, first_row)
        paths[split.name] = path
    return paths


def _parse_label(spec: TaskSpec, value: str, path: Path, line: int) -> int | float:
    text = value.strip()
    fmt = spec.local_label_format
    if fmt == "name":
        try:
            return spec.label_names.index(text)
        except ValueError:
            raise ValueError(
                f"{path}:{line}: unknown label {value!r} for task {spec.name} "
                f"(expected one of: {', '.join(spec.label_names)})"
            ) from None
    if fmt == "id":
        label = int(text) if text.isascii() and text.isdigit() else -1
        if not 0 <= label < len(spec.label_names):
            raise ValueError(
                f"{path}:{line}: unknown label {value!r} for task {spec.name} "
                f"(expected a class id 0..{len(spec.label_names) - 1})"
            )
        return label
    try:
        score = float(text)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise ValueError(f"{path}:{line}: label {value!r} for task {spec.name} is not a finite number")
    if spec.label_range is not None and not spec.label_range[0] <= score <= spec.label_range[1]:
        lo, hi = spec.label_range
        raise ValueError(f"{path}:{line}: label {score} for task {spec.name} is outside [{lo}, {hi}]")
    return score


def _read_local_split(spec: TaskSpec, path: Path) -> dict[str, list]:
    columns: dict[str, list] = {c: [] for c in spec.text_columns}
    columns["label"] = []
    with _open_tsv(path) as fh:
        reader = _tsv_reader(fh)
        text_idx: list[int] = []
        label_idx = -1
        n_fields = -1
        skipped = 0
        for row in reader:
            line = reader.line_num
            if not row:  # blank line
                continue
            if n_fields < 0:
                text_idx, label_idx, n_fields = _column_indices(spec, path, row)
                if spec.local_header:
                    continue
            if len(row) != n_fields:
                if spec.skip_malformed_rows:
                    skipped += 1
                    continue
                raise ValueError(
                    f"{path}:{line}: expected {n_fields} tab-separated columns, found {len(row)}"
                )
            columns["label"].append(_parse_label(spec, row[label_idx], path, line))
            for name, i in zip(spec.text_columns, text_idx, strict=True):
                columns[name].append(row[i])
    if skipped:
        logger.warning("%s: skipped %d malformed rows", path, skipped)
    return columns


def _features(spec: TaskSpec):
    from datasets import ClassLabel, Features, Value

    feats = {name: Value("string") for name in spec.text_columns}
    feats["label"] = Value("float32") if spec.is_regression else ClassLabel(names=list(spec.label_names))
    return Features(feats)


def _load_local(spec: TaskSpec, data_dir: Path, splits: Sequence[str]):
    from datasets import Dataset, DatasetDict

    paths = validate_task_inputs(spec, data_dir, splits)
    features = _features(spec)
    return DatasetDict(
        {name: Dataset.from_dict(_read_local_split(spec, path), features=features) for name, path in paths.items()}
    )


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


def _load_hub(spec: TaskSpec, splits: Sequence[str], cache_dir: str | Path | None):
    import datasets
    import numpy as np

    features = _features(spec)
    wanted = [*spec.hub_text_columns, spec.hub_label_column]
    out = {}
    for name, ds in load_hub_splits(spec, splits, wanted, cache_dir).items():
        rename = dict(zip(spec.hub_text_columns, spec.text_columns, strict=True))
        rename[spec.hub_label_column] = "label"
        rename = {k: v for k, v in rename.items() if k != v}
        if rename:
            ds = ds.rename_columns(rename)
        ds = ds.select_columns(list(features))
        if not spec.is_regression and len(ds):
            labels = np.asarray(ds["label"])
            if labels.min() < 0 or labels.max() >= spec.num_labels:
                raise ValueError(
                    f"{spec.hub_dataset}/{spec.hub_config}[{spec.split(name).hub_split}]: labels outside 0..{spec.num_labels - 1} "
                    "(an unlabelled test split?)"
                )
        out[name] = ds.cast(features)
    return datasets.DatasetDict(out)


def load_task_dataset(
    spec: TaskSpec | str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    splits: Sequence[str] | None = None,
):
    """Load a task's splits as a normalised :class:`datasets.DatasetDict`.

    Args:
        spec: a :class:`TaskSpec` or a task name accepted by :func:`get_task`.
        data_dir: ``None`` to load from the Hugging Face Hub with
            ``datasets.load_dataset(spec.hub_dataset, spec.hub_config)``; otherwise a local
            directory in the original GLUE TSV layout (``data_dir/RTE/train.tsv``, ... — the
            task folder itself is accepted too). Local files are read as UTF-8 (a leading BOM
            is dropped) with ``csv.QUOTE_NONE``, so unbalanced quotes inside sentences never
            merge rows; CoLA's header-less files are addressed by column index.
        cache_dir: passed to :func:`datasets.load_dataset` (Hub only).
        splits: normalised split names to load (default: all, i.e. ``train`` and
            ``validation`` for most tasks; MNLI has ``validation_matched`` and
            ``validation_mismatched``).

    Returns:
        ``DatasetDict`` with one :class:`datasets.Dataset` per split and exactly the columns
        ``sentence1`` (str), ``sentence2`` (str, pair tasks only) and ``label``: a
        :class:`datasets.ClassLabel` (int64 class id in Hub order, ``spec.label_names``) for
        classification, ``float32`` for regression. Row order follows the source.

    Raises:
        FileNotFoundError: local directory, task folder or split file missing.
        ValueError: missing column; malformed row (wrong column count) or unknown / out-of-range
            label in a local file (message names file and line); unknown split name.
        NotImplementedError: ``spec.kind`` other than ``"glue"`` (SQuAD and MLM data are loaded
            by :func:`bert_tickets.squad.load_squad_dataset` and
            :func:`bert_tickets.mlm.load_mlm_text`).
    """
    if isinstance(spec, str):
        spec = get_task(spec)
    _check_kind(spec)
    wanted = list(spec.split_names if splits is None else splits)
    for name in wanted:
        if name not in spec.split_names:
            raise ValueError(f"task {spec.name!r} has no split {name!r} (splits: {', '.join(spec.split_names)})")
    if data_dir is None:
        return _load_hub(spec, wanted, cache_dir)
    return _load_local(spec, Path(data_dir), wanted)


# --------------------------------------------------------------------------------------------
# Tokenization
# --------------------------------------------------------------------------------------------


def tokenize_task_dataset(
    dataset_dict,
    spec: TaskSpec,
    tokenizer,
    max_seq_length: int | None = None,
    padding: bool | str = "max_length",
    batch_size: int = 1000,
):
    """Tokenize a normalised task dataset for sequence classification / regression.

    Args:
        dataset_dict: output of :func:`load_task_dataset` (a ``DatasetDict``; a single
            ``Dataset`` is accepted too and returned as a ``Dataset``).
        spec: the task (decides whether ``sentence2`` is used).
        tokenizer: a Hugging Face tokenizer (e.g. ``AutoTokenizer.from_pretrained(path)``).
        max_seq_length: truncation length in tokens; default
            ``spec.hyperparameters.max_seq_length`` (128 for GLUE). Pairs are truncated
            ``longest_first``.
        padding: ``"max_length"`` (default: every row has exactly ``max_seq_length`` tokens,
            as in BERT-Tickets) or ``False`` for dynamic padding by a data collator.
        batch_size: rows per ``Dataset.map`` batch.

    Returns:
        Same container type with the text columns removed and the tokenizer outputs added
        (``input_ids``, ``attention_mask`` and, for BERT, ``token_type_ids``: lists of int of
        length ``max_seq_length`` when padding to max length). ``label`` is kept unchanged
        (int64 class id or float32 score); transformers' data collators pass it to the model
        as ``labels``.
    """
    from datasets import Dataset

    max_len = int(max_seq_length or spec.hyperparameters.max_seq_length)
    text_cols = list(spec.text_columns)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        args = [batch[c] for c in text_cols]
        return tokenizer(*args, truncation=True, max_length=max_len, padding=padding)

    def one(ds):
        missing = [c for c in (*text_cols, "label") if c not in ds.column_names]
        if missing:
            raise ValueError(f"dataset has no column {missing[0]!r} (columns: {', '.join(ds.column_names)})")
        return ds.map(
            encode, batched=True, batch_size=batch_size, remove_columns=text_cols, desc=f"tokenize {spec.name}"
        )

    if isinstance(dataset_dict, Dataset):
        return one(dataset_dict)
    return type(dataset_dict)({name: one(ds) for name, ds in dataset_dict.items()})
