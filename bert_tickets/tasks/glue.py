"""GLUE data: local TSV files in the original GLUE layout or the Hub's ``nyu-mll/glue``, both
normalised to one :class:`datasets.DatasetDict`; tokenization; and :class:`GlueKind`, the task
kind of the nine GLUE tasks (sequence classification and regression).

Data come either from the Hugging Face Hub (``datasets.load_dataset("nyu-mll/glue", config)``)
or, offline, from a directory in the original GLUE TSV layout written by the GLUE download
script (``<data_dir>/RTE/train.tsv``, ``<data_dir>/RTE/dev.tsv``, ...). Both paths produce the
same normalised :class:`datasets.DatasetDict`: columns ``sentence1``, optional ``sentence2``
and ``label`` (a :class:`datasets.ClassLabel` class id in the Hub's label order, or a
``float32`` score for regression).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification

from .base import PreparedData, TaskKind, TrivialBaseline, load_hub_splits, select_first
from .metrics import compute_task_metrics, make_compute_metrics
from .spec import TaskSpec, get_task

logger = logging.getLogger(__name__)


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
            f"bert_tickets.tasks.{spec.kind} (bert_tickets.tasks.get_kind({spec.kind!r}).prepare)"
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
                raise ValueError(f"{path}: column {col!r} not found in header (columns: {', '.join(map(repr, header))})")
            cols.append(index[col])
    else:
        cols = [int(c) for c in (*spec.local_text_columns, spec.local_label_column)]
        needed = max(cols) + 1
        if len(first_row) < needed:
            raise ValueError(f"{path}: line 1 has {len(first_row)} tab-separated columns, column index {needed - 1} is needed")
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
            second_line = fh.readline()
        if not first_line.strip():
            raise ValueError(f"{path}: file is empty (or its first line is blank)")
        if spec.local_header and not second_line.strip():
            raise ValueError(f"{path}: no examples (only the header line)")
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
                f"{path}:{line}: unknown label {value!r} for task {spec.name} (expected one of: {', '.join(spec.label_names)})"
            ) from None
    if fmt == "id":
        label = int(text) if text.isascii() and text.isdigit() else -1
        if not 0 <= label < len(spec.label_names):
            raise ValueError(
                f"{path}:{line}: unknown label {value!r} for task {spec.name} (expected a class id 0..{len(spec.label_names) - 1})"
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
                raise ValueError(f"{path}:{line}: expected {n_fields} tab-separated columns, found {len(row)}")
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
    return DatasetDict({name: Dataset.from_dict(_read_local_split(spec, path), features=features) for name, path in paths.items()})


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
            by :func:`bert_tickets.tasks.squad.load_squad_dataset` and
            :func:`bert_tickets.tasks.mlm.load_mlm_text`).
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
        return ds.map(encode, batched=True, batch_size=batch_size, remove_columns=text_cols, desc=f"tokenize {spec.name}")

    if isinstance(dataset_dict, Dataset):
        return one(dataset_dict)
    return type(dataset_dict)({name: one(ds) for name, ds in dataset_dict.items()})


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
        raw["train"] = select_first(raw["train"], max_train_samples)
        for split in spec.eval_splits:
            raw[split] = select_first(raw[split], max_eval_samples)
        # Dynamic padding (Trainer pads each batch with DataCollatorWithPadding): results equivalent
        # to padding to max_seq_length, in a fraction of the compute for short GLUE sentences.
        tokenized = tokenize_task_dataset(raw, spec, tokenizer, max_seq_length, padding=False)
        return PreparedData(train=tokenized["train"], eval={s: tokenized[s] for s in spec.eval_splits})

    def trivial_baseline(self, spec, data):
        """Classification: the best constant class under the primary metric (the majority class
        for accuracy; for F1 the positive class), computed with the task's own metrics on the
        primary evaluation split. Regression (STS-B): a constant prediction has no Pearson
        correlation, so the value is undefined (``None``) and a model must correlate positively."""
        split = next(iter(data.eval))
        labels = np.asarray(data.eval[split]["label"])
        n = len(labels)
        if spec.is_regression:
            return TrivialBaseline(
                spec.primary_metric,
                None,
                "a constant score (its Pearson correlation is undefined)",
                f"{spec.primary_metric} > 0 (a positive correlation)",
            )
        best_class, best = 0, -float("inf")
        for c in range(spec.num_labels):
            value = compute_task_metrics(spec, np.full(n, c, dtype=np.int64), labels)[spec.primary_metric]
            if value > best:
                best_class, best = c, value
        count = int((labels == best_class).sum())
        return TrivialBaseline(
            spec.primary_metric,
            float(best),
            f"always {spec.label_names[best_class]!r} (class {best_class}: {count}/{n} of {split})",
            f"{spec.primary_metric} above that of the best constant class",
        )

    def trainer_kwargs(self, spec, tokenizer, data):
        return {"compute_metrics": make_compute_metrics(spec)}
