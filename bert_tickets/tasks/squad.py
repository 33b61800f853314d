"""SQuAD v1.1 extractive question answering (Rajpurkar et al. 2016) as an IMP task kind.

* **Data**: the Hub dataset ``rajpurkar/squad`` (splits ``train`` / ``validation``) or local
  SQuAD-format JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
  "question", "answers": [{"text", "answer_start"}]}]}]}]}``), flattened to one row per question
  with the Hub's columns ``id``, ``title``, ``context``, ``question`` and ``answers``
  (``{"text": [str], "answer_start": [int]}``). Local layouts (``--data_dir``):

  - a folder with ``train-v1.1.json`` and ``dev-v1.1.json``: the standard splits;
  - a single SQuAD JSON file, or a folder holding only ``dev-v1.1.json``: the file is split
    **by article** (whole ``data[]`` entries, never a paragraph across parts): the first
    ``floor(split_train_fraction * n_articles)`` articles (``[local] split_train_fraction`` in
    ``tasks/squad.toml``, 0.8) train, the rest evaluate. The run logs a warning and records the
    split in every ticket's metadata (``data_split``) and in the summary: such scores are not
    comparable with official dev-set numbers.

* **Features** (the standard BERT / Hugging Face ``run_qa`` preprocessing): question and context
  are tokenized as a pair truncating only the context to ``max_seq_length`` tokens (384); a
  context that does not fit yields several overlapping features (``return_overflowing_tokens``,
  consecutive windows share ``doc_stride`` = 128 tokens, the tokenizers' ``stride`` convention).
  Training labels are the token positions of the first gold answer, found through the offset
  mapping and ``sequence_ids``; a window that does not contain the whole answer is labelled with
  the ``[CLS]`` index for both start and end. Evaluation features keep ``example_id`` and the
  offset mapping of context tokens only.

* **Post-processing**: for each question, over all of its features, the ``n_best_size`` (20)
  highest start and end logits are paired; pairs outside the context, with end < start or longer
  than ``max_answer_length`` (30) tokens are dropped; the pair with the highest start + end logit
  gives the answer text, sliced from the context with the offsets.

* **Metrics**: the official v1.1 exact match and F1 (:func:`bert_tickets.tasks.metrics.squad_metrics`),
  as fractions; F1 is primary.

Needs a *fast* tokenizer (offset mappings).
"""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoModelForQuestionAnswering

from .base import PreparedData, TaskKind, TrivialBaseline, load_hub_splits, select_first
from .metrics import squad_metrics
from .spec import TaskSpec

logger = logging.getLogger(__name__)

__all__ = [
    "SquadKind",
    "load_squad_dataset",
    "postprocess_qa_predictions",
    "prepare_eval_features",
    "prepare_train_features",
    "read_squad_json",
    "resolve_squad_files",
    "scaled_doc_stride",
    "split_articles",
]

_COLUMNS = ("id", "title", "context", "question", "answers")


# --------------------------------------------------------------------------------------------
# Local JSON
# --------------------------------------------------------------------------------------------


def read_squad_json(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a SQuAD-format JSON file.

    Args:
        path: a file with ``{"data": [{"title": str, "paragraphs": [{"context": str, "qas":
            [{"id": str, "question": str, "answers": [{"text": str, "answer_start": int}]}]}]}]}``
            (SQuAD v1.1, Rajpurkar et al. 2016; ``version`` and other keys are ignored).

    Returns:
        The ``data`` list (one dict per article), unchanged.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not JSON, a required key is missing / has the wrong type, or a question id
            repeats (the message names the file and the article / question).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a SQuAD JSON object with a non-empty 'data' list")
    seen: set[str] = set()
    for a, article in enumerate(data):
        where = f"{path}: data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise ValueError(f"{where}: missing 'paragraphs' list")
        for p, para in enumerate(article["paragraphs"]):
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise ValueError(f"{where}.paragraphs[{p}]: needs a 'context' string and a 'qas' list")
            for q, qa in enumerate(para["qas"]):
                qwhere = f"{where}.paragraphs[{p}].qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), str) or not isinstance(qa.get("question"), str):
                    raise ValueError(f"{qwhere}: needs 'id' and 'question' strings")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not all(
                    isinstance(x, dict) and isinstance(x.get("text"), str) and isinstance(x.get("answer_start"), int) for x in answers
                ):
                    raise ValueError(f"{qwhere} (id {qa['id']}): 'answers' must be a list of {{text, answer_start}}")
                if qa["id"] in seen:
                    raise ValueError(f"{qwhere}: duplicate question id {qa['id']!r}")
                seen.add(qa["id"])
    return data


def _flatten(articles: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """One row per question, Hub column layout."""
    rows: dict[str, list] = {c: [] for c in _COLUMNS}
    for article in articles:
        title = str(article.get("title", ""))
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                rows["id"].append(qa["id"])
                rows["title"].append(title)
                rows["context"].append(context)
                rows["question"].append(qa["question"])
                rows["answers"].append(
                    {"text": [x["text"] for x in qa["answers"]], "answer_start": [int(x["answer_start"]) for x in qa["answers"]]}
                )
    return rows


def split_articles(articles: Sequence[Any], train_fraction: float) -> tuple[list[Any], list[Any]]:
    """Deterministic split by article: the first ``floor(train_fraction * n)`` articles train,
    the rest evaluate (no paragraph or question is shared between the parts).

    Args:
        articles: the ``data`` list of a SQuAD JSON file (``n >= 2`` articles).
        train_fraction: fraction in ``(0, 1)``.

    Returns:
        ``(train_articles, eval_articles)``, both non-empty (the count is clamped to ``1..n-1``).

    Raises:
        ValueError: fewer than 2 articles, or ``train_fraction`` outside ``(0, 1)``.
    """
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"split_train_fraction must be in (0, 1), got {train_fraction}")
    n = len(articles)
    if n < 2:
        raise ValueError(f"splitting by article needs at least 2 articles, got {n}")
    k = min(max(math.floor(train_fraction * n), 1), n - 1)
    return list(articles[:k]), list(articles[k:])


def resolve_squad_files(spec: TaskSpec, data_dir: str | Path) -> dict[str, Any]:
    """Decide the local layout of ``data_dir`` (only checks that files exist).

    Returns:
        ``{"train": Path, "eval": Path, "split_fraction": None}`` for the standard layout (a
        folder with both files named by the spec's splits), or ``{"train": None, "eval": Path,
        "split_fraction": f}`` when one file is to be split by article (``data_dir`` is a file,
        or a folder without the training file but with the evaluation file).

    Raises:
        FileNotFoundError: ``data_dir`` missing, or a folder without the evaluation file.
    """
    data_dir = Path(data_dir)
    fraction = float(spec.local_option("split_train_fraction", 0.8))
    if data_dir.is_file():
        return {"train": None, "eval": data_dir, "split_fraction": fraction}
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    train = data_dir / spec.split("train").local_file
    evaluation = data_dir / spec.split(spec.eval_splits[0]).local_file
    if not evaluation.is_file():
        raise FileNotFoundError(f"{spec.display_name}: {spec.eval_splits[0]} file not found: {evaluation}")
    if train.is_file():
        return {"train": train, "eval": evaluation, "split_fraction": None}
    return {"train": None, "eval": evaluation, "split_fraction": fraction}


def _features():
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
        }
    )


def load_squad_dataset(spec: TaskSpec, data_dir: str | Path | None = None, cache_dir: str | Path | None = None):
    """Load SQuAD as ``({"train": Dataset, <eval split>: Dataset}, notes)``.

    Args:
        spec: the SQuAD task spec (``tasks/squad.toml``).
        data_dir: ``None`` for the Hub (``datasets.load_dataset(spec.hub_dataset,
            spec.hub_config)``), else a local layout (see the module docstring and
            :func:`resolve_squad_files`).
        cache_dir: ``datasets`` cache (Hub only).

    Returns:
        A ``datasets.DatasetDict`` with columns ``id``, ``title``, ``context``, ``question``
        (str) and ``answers`` (``{"text": list[str], "answer_start": list[int32]}``), one row per
        question in file order; and a dict of notes (``{"data_split": "..."}`` when a file was
        split by article, else empty).

    Raises:
        FileNotFoundError / ValueError: see :func:`resolve_squad_files`, :func:`read_squad_json`;
            a training question without an answer.
    """
    import datasets

    eval_split = spec.eval_splits[0]
    notes: dict[str, Any] = {}
    if data_dir is None:
        splits = load_hub_splits(spec, spec.split_names, _COLUMNS, cache_dir)
        return datasets.DatasetDict({name: ds.cast(_features()) for name, ds in splits.items()}), notes
    layout = resolve_squad_files(spec, data_dir)
    eval_articles = read_squad_json(layout["eval"])
    if layout["split_fraction"] is None:
        train_rows = _flatten(read_squad_json(layout["train"]))
        eval_rows = _flatten(eval_articles)
    else:
        train_part, eval_part = split_articles(eval_articles, layout["split_fraction"])
        train_rows = _flatten(train_part)
        eval_rows = _flatten(eval_part)
        notes["data_split"] = (
            f"no SQuAD training file: {layout['eval']} split by article, first {len(train_part)} of "
            f"{len(eval_articles)} articles ({len(train_rows['id'])} questions) for training, last {len(eval_part)} "
            f"({len(eval_rows['id'])} questions) for evaluation; not comparable with official dev-set scores"
        )
        logger.warning("%s", notes["data_split"])
    for i, ans in enumerate(train_rows["answers"]):
        if not ans["text"]:
            raise ValueError(f"SQuAD training question {train_rows['id'][i]!r} has no answer")
    features = _features()
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(train_rows, features=features),
            eval_split: datasets.Dataset.from_dict(eval_rows, features=features),
        }
    )
    return ds, notes


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def scaled_doc_stride(doc_stride: int, default_length: int, max_seq_length: int) -> int:
    """The document stride for a ``max_seq_length`` other than the spec's default: scaled in
    proportion (``round(doc_stride * max_seq_length / default_length)``, at least 1), so that
    ``--max_seq_length 128`` keeps windows overlapping by a third as 128/384 does. Returns
    ``doc_stride`` unchanged when ``max_seq_length == default_length``."""
    if max_seq_length == default_length:
        return int(doc_stride)
    return max(1, round(doc_stride * max_seq_length / default_length))


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "SQuAD preprocessing needs a fast tokenizer (offset mappings); "
            f"{type(tokenizer).__name__} is not one (install `tokenizers` / save a tokenizer.json)"
        )


def _tokenize(examples: Mapping[str, list], tokenizer, max_seq_length: int, doc_stride: int):
    _check_fast(tokenizer)
    pad_on_right = tokenizer.padding_side == "right"
    questions = [q.lstrip() for q in examples["question"]]  # some SQuAD questions start with spaces
    first, second = (questions, examples["context"]) if pad_on_right else (examples["context"], questions)
    return tokenizer(
        first,
        second,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    ), (1 if pad_on_right else 0)


def prepare_train_features(examples: Mapping[str, list], tokenizer, max_seq_length: int = 384, doc_stride: int = 128) -> dict[str, list]:
    """Training features with answer token positions (batched ``Dataset.map`` function).

    Args:
        examples: a batch of questions: ``question``, ``context`` (str lists) and ``answers``
            (``{"text": [...], "answer_start": [...]}`` each; the first answer is the label).
        tokenizer: a fast BERT-style tokenizer.
        max_seq_length: tokens per feature (question + context + special tokens).
        doc_stride: tokens shared by consecutive windows of a long context.

    Returns:
        Dict of equal-length lists, one entry per feature (a question yields one feature per
        window): ``input_ids``, ``token_type_ids``, ``attention_mask`` (lists of int, no
        padding), ``start_positions`` and ``end_positions`` (int token indices of the first gold
        answer inside the window; both the ``[CLS]`` index when the window does not contain the
        whole answer) and ``example_index`` (row of the question in ``examples``).

    Raises:
        ValueError: a slow tokenizer; the tokenizer's own error when the question leaves no room
            for ``doc_stride`` context tokens.
    """
    enc, context_id = _tokenize(examples, tokenizer, max_seq_length, doc_stride)
    sample_map = enc.pop("overflow_to_sample_mapping")
    offsets_all = enc.pop("offset_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(offsets_all):
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        seq_ids = enc.sequence_ids(i)
        answers = examples["answers"][sample_map[i]]
        if not answers["answer_start"]:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        ctx = [k for k, s in enumerate(seq_ids) if s == context_id]
        tok_start, tok_end = ctx[0], ctx[-1]
        if not (offsets[tok_start][0] <= start_char and offsets[tok_end][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        while tok_start <= ctx[-1] and offsets[tok_start][0] <= start_char:
            tok_start += 1
        while tok_end >= ctx[0] and offsets[tok_end][1] >= end_char:
            tok_end -= 1
        starts.append(tok_start - 1)
        ends.append(tok_end + 1)
    out = {k: list(v) for k, v in enc.items()}
    out["start_positions"] = starts
    out["end_positions"] = ends
    out["example_index"] = list(sample_map)
    return out


def prepare_eval_features(examples: Mapping[str, list], tokenizer, max_seq_length: int = 384, doc_stride: int = 128) -> dict[str, list]:
    """Evaluation features (batched ``Dataset.map`` function).

    Args:
        examples: a batch of questions with ``id``, ``question`` and ``context``.
        tokenizer, max_seq_length, doc_stride: as in :func:`prepare_train_features`.

    Returns:
        Dict of equal-length lists, one entry per feature: ``input_ids``, ``token_type_ids``,
        ``attention_mask``, ``example_id`` (the question's ``id``) and ``offset_mapping``:
        ``[start_char, end_char]`` into the context for context tokens, ``None`` for question
        and special tokens (so post-processing can only pick context spans).
    """
    enc, context_id = _tokenize(examples, tokenizer, max_seq_length, doc_stride)
    sample_map = enc.pop("overflow_to_sample_mapping")
    offsets_all = enc.pop("offset_mapping")
    out = {k: list(v) for k, v in enc.items()}
    out["example_id"] = [examples["id"][s] for s in sample_map]
    out["offset_mapping"] = [
        [list(o) if s == context_id else None for o, s in zip(offsets, enc.sequence_ids(i))] for i, offsets in enumerate(offsets_all)
    ]
    return out


# --------------------------------------------------------------------------------------------
# Post-processing
# --------------------------------------------------------------------------------------------


def postprocess_qa_predictions(
    examples,
    features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Turn per-feature start/end logits into one answer text per question.

    Args:
        examples: the questions (a ``Dataset`` or a mapping of lists) with ``id`` and ``context``.
        features: their evaluation features (:func:`prepare_eval_features`) with ``example_id``
            and ``offset_mapping``, in the order of the logits.
        start_logits, end_logits: float arrays of shape ``(n_features, seq_len)``; positions
            past a feature's length (padding added when batches are concatenated, value -100)
            are ignored.
        n_best_size: how many top start and top end positions are paired per feature (20).
        max_answer_length: longest answer in tokens (30).

    Returns:
        ``{question id: answer text}``: the context slice of the valid span (inside the context,
        ``start <= end``, at most ``max_answer_length`` tokens) with the highest
        ``start_logit + end_logit`` over all features of the question; ``""`` when no span is
        valid.

    Raises:
        ValueError: the number of logit rows differs from the number of features.
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    example_ids = list(features["example_id"])
    offsets_all = list(features["offset_mapping"])  # materialise once (a datasets Column decodes per access)
    if len(example_ids) != start_logits.shape[0] or start_logits.shape != end_logits.shape:
        raise ValueError(f"{len(example_ids)} features but logits of shapes {start_logits.shape} and {end_logits.shape}")
    by_example: dict[str, list[int]] = collections.defaultdict(list)
    for i, eid in enumerate(example_ids):
        by_example[eid].append(i)
    predictions: dict[str, str] = {}
    for eid, context in zip(list(examples["id"]), list(examples["context"])):
        best_score, best_text = -math.inf, ""
        for fi in by_example.get(eid, []):
            offsets = offsets_all[fi]
            n_tok = len(offsets)
            s_log, e_log = start_logits[fi][:n_tok], end_logits[fi][:n_tok]
            for s in np.argsort(s_log)[::-1][:n_best_size]:
                if offsets[s] is None:
                    continue
                for e in np.argsort(e_log)[::-1][:n_best_size]:
                    if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(s_log[s] + e_log[e])
                    if score > best_score:
                        best_score, best_text = score, context[offsets[s][0] : offsets[e][1]]
        predictions[eid] = best_text
    return predictions


# --------------------------------------------------------------------------------------------
# The kind
# --------------------------------------------------------------------------------------------


@dataclass
class SquadData(PreparedData):
    """SQuAD features plus what post-processing needs.

    Attributes:
        examples: evaluation split -> the untokenized questions (``id``, ``context``, ``answers``, …).
        features: evaluation split -> the windows with ``example_id`` and ``offset_mapping``.
        max_seq_length, doc_stride: the window length and overlap used (tokens).
    """

    examples: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    max_seq_length: int = 384
    doc_stride: int = 128


class SquadKind(TaskKind):
    """SQuAD v1.1 with ``AutoModelForQuestionAnswering`` (``BertForQuestionAnswering``: no pooler,
    a ``qa_outputs`` span head). Spec options (``[squad]``): ``doc_stride`` (128),
    ``n_best_size`` (20), ``max_answer_length`` (30)."""

    name = "squad"
    hub_task_type = "question-answering"

    def validate_inputs(self, spec, data_dir):
        layout = resolve_squad_files(spec, data_dir)
        for key in ("train", "eval"):
            if layout[key] is not None:
                read_squad_json(layout[key])
        if layout["split_fraction"] is not None:
            split_articles(read_squad_json(layout["eval"]), layout["split_fraction"])

    def model_class(self, spec):
        return AutoModelForQuestionAnswering

    def prepare(self, spec, tokenizer, data_dir, cache_dir, max_seq_length, max_train_samples, max_eval_samples):
        _check_fast(tokenizer)
        raw, notes = load_squad_dataset(spec, data_dir, cache_dir)
        default_len = spec.hyperparameters.max_seq_length
        max_len = int(max_seq_length or default_len)
        stride = scaled_doc_stride(int(spec.option("doc_stride", 128)), default_len, max_len)
        if stride != spec.option("doc_stride", 128):
            logger.info("SQuAD doc_stride scaled to %d tokens for max_seq_length %d", stride, max_len)
        train_examples = select_first(raw["train"], max_train_samples)
        train = train_examples.map(
            prepare_train_features,
            batched=True,
            remove_columns=train_examples.column_names,
            fn_kwargs={"tokenizer": tokenizer, "max_seq_length": max_len, "doc_stride": stride},
            desc="SQuAD train features",
        ).remove_columns(["example_index"])
        evals, examples, features = {}, {}, {}
        for split in spec.eval_splits:
            ex = select_first(raw[split], max_eval_samples)
            feats = ex.map(
                prepare_eval_features,
                batched=True,
                remove_columns=ex.column_names,
                fn_kwargs={"tokenizer": tokenizer, "max_seq_length": max_len, "doc_stride": stride},
                desc=f"SQuAD {split} features",
            )
            examples[split], features[split] = ex, feats
            evals[split] = feats.remove_columns(["example_id", "offset_mapping"])
        logger.info(
            "SQuAD: %d training questions -> %d features; %s",
            len(train_examples),
            len(train),
            ", ".join(f"{s}: {len(examples[s])} questions -> {len(features[s])} features" for s in evals),
        )
        return SquadData(
            train=train, eval=evals, notes=notes, examples=examples, features=features, max_seq_length=max_len, doc_stride=stride
        )

    def trivial_baseline(self, spec, data):
        """An answer that ignores the question: the empty answer, EM and F1 0 on SQuAD v1.1 (every
        question has an answer). Decision: not a "first sentence" heuristic, which would need
        its own definition; any trained span head beats 0 at once, so this flags only runs that
        predict nothing."""
        split = next(iter(data.eval))
        return TrivialBaseline(spec.primary_metric, 0.0, f"the empty answer ({len(data.examples[split])} questions of {split})", "above 0")

    def evaluate(self, trainer, spec, data):
        metrics: dict[str, float] = {}
        first = next(iter(data.eval))
        for split, ds in data.eval.items():
            out = trainer.predict(ds, metric_key_prefix="eval")
            start_logits, end_logits = out.predictions[:2]
            preds = postprocess_qa_predictions(
                data.examples[split],
                data.features[split],
                start_logits,
                end_logits,
                n_best_size=int(spec.option("n_best_size", 20)),
                max_answer_length=int(spec.option("max_answer_length", 30)),
            )
            refs = dict(zip(data.examples[split]["id"], data.examples[split]["answers"]))
            values = dict(squad_metrics(preds, refs))
            values.update({k[len("eval_") :]: v for k, v in out.metrics.items() if k.startswith("eval_")})
            for name, value in values.items():
                metrics[name if split == first else f"{split}_{name}"] = value
        return metrics
