"""Masked language modelling on WikiText as an IMP task kind (Chen et al. 2020's "MLM" task).

* **Data**: the Hub dataset ``Salesforce/wikitext`` (config ``wikitext-2-raw-v1`` in
  ``tasks/mlm.toml``; ``wikitext-103-raw-v1`` works the same), or local raw files in a folder
  (``--data_dir``): ``wiki.train.raw`` for training and ``wiki.test.raw`` for evaluation (the
  files BERT-Tickets' ``LT_pretrain.py`` reads through the transformers language-modelling
  example). When ``wiki.train.raw`` is absent but ``wiki.valid.raw`` is there (``[local]
  fallback_train_file``), the run trains on the validation split and evaluates on the test
  split, logs a warning and records it in every ticket's metadata (``data_split``) and in the
  summary.
* **Blocks**: the whole text is tokenized without special tokens, concatenated and cut into
  chunks of ``block_size - 2`` tokens, each wrapped as ``[CLS] chunk [SEP]`` (``block_size`` =
  ``--max_seq_length``, default 512 as in BERT-Tickets, capped at the tokenizer's
  ``model_max_length``); the incomplete last chunk is dropped (as the ``TextDataset`` of the
  transformers example does).
* **Masking** (Devlin et al. 2019): 15% of the non-special tokens are selected; of those 80% become
  ``[MASK]``, 10% a random token, 10% stay unchanged; only selected tokens are scored. Training
  batches are masked afresh every time (``DataCollatorForLanguageModeling``'s rule, driven by
  the global RNG the Trainer seeds). The evaluation set is masked **once**, with a generator
  seeded by ``[mlm] eval_mask_seed``, so every level and seed is scored on the same positions.
* **Metrics**: masked-token accuracy (primary) and perplexity = exp(mean negative
  log-likelihood of the masked tokens) (:func:`bert_tickets.tasks.metrics.masked_lm_metrics`).
* **Head**: ``AutoModelForMaskedLM`` (``BertForMaskedLM``: no pooler; the decoder is tied to the
  word embeddings). A checkpoint without an MLM head (a bare ``BertModel`` such as
  ``sentence-transformers/all-MiniLM-L6-v2``) gets the head initialised at random with a
  warning, and ``mlm_head_pretrained: false`` is recorded in every ticket's metadata.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

from ..ticket import is_backbone_parameter
from .base import PreparedData, TaskKind, TrivialBaseline, load_hub_splits
from .metrics import masked_lm_metrics
from .spec import TaskSpec

logger = logging.getLogger(__name__)

__all__ = [
    "MaskedLMCollator",
    "MaskedLMKind",
    "compute_mlm_metrics",
    "group_into_blocks",
    "load_mlm_text",
    "mask_once",
    "preprocess_logits_for_metrics",
    "resolve_mlm_files",
    "tokenize_into_blocks",
]

_WARNED_HEADS: set[str] = set()


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def resolve_mlm_files(spec: TaskSpec, data_dir: str | Path) -> dict[str, Any]:
    """Decide which local raw-text files train and evaluate (only checks existence).

    Args:
        spec: the MLM task spec; split files from its ``[[splits]]`` (``wiki.train.raw``,
            ``wiki.test.raw``), the fallback from ``[local] fallback_train_file``.
        data_dir: the folder holding the files.

    Returns:
        ``{"train": Path, <eval split>: Path, "fallback": bool}``; ``fallback`` is ``True`` when
        the training file was missing and ``fallback_train_file`` is used instead.

    Raises:
        FileNotFoundError: the folder, the evaluation file, or both training files are missing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    out: dict[str, Any] = {"fallback": False}
    for split in spec.eval_splits:
        path = data_dir / spec.split(split).local_file
        if not path.is_file():
            raise FileNotFoundError(f"{spec.display_name}: {split} file not found: {path}")
        out[split] = path
    train = data_dir / spec.split("train").local_file
    if not train.is_file():
        fallback = spec.local_option("fallback_train_file")
        if not fallback or not (data_dir / fallback).is_file():
            raise FileNotFoundError(
                f"{spec.display_name}: train file not found: {train}" + (f" (nor {data_dir / fallback})" if fallback else "")
            )
        train, out["fallback"] = data_dir / fallback, True
    out["train"] = train
    return out


def load_mlm_text(spec: TaskSpec, data_dir: str | Path | None = None, cache_dir: str | Path | None = None):
    """Load the raw text of every split as ``({split: list of lines}, notes)``.

    Args:
        spec: the MLM task spec (``tasks/mlm.toml``).
        data_dir: ``None`` for the Hub (``datasets.load_dataset(spec.hub_dataset,
            spec.hub_config)``, column ``text``), else a folder of raw files
            (:func:`resolve_mlm_files`).
        cache_dir: ``datasets`` cache (Hub only).

    Returns:
        ``{"train": [str, ...], <eval split>: [...]}`` (lines in file order, line ends kept or
        not; whitespace only separates tokens) and notes (``{"data_split": "..."}`` when the
        fallback training file was used, else empty).

    Raises:
        FileNotFoundError: see :func:`resolve_mlm_files`; ValueError: a Hub split or column is
            missing.
    """
    notes: dict[str, Any] = {}
    if data_dir is None:
        splits = load_hub_splits(spec, spec.split_names, ["text"], cache_dir)
        return {name: list(ds["text"]) for name, ds in splits.items()}, notes
    files = resolve_mlm_files(spec, data_dir)
    out = {name: files[name].read_text(encoding="utf-8").splitlines() for name in spec.split_names}
    if files["fallback"]:
        evals = ", ".join(files[s].name for s in spec.eval_splits)
        notes["data_split"] = (
            f"no WikiText training file ({spec.split('train').local_file}) in {data_dir}: trained on "
            f"{files['train'].name}, evaluated on {evals}"
        )
        logger.warning("%s", notes["data_split"])
    return out, notes


def group_into_blocks(token_ids: Sequence[int], block_size: int, tokenizer) -> list[list[int]]:
    """Cut a token stream into BERT blocks ``[CLS] chunk [SEP]`` of exactly ``block_size`` ids.

    Args:
        token_ids: ids without special tokens.
        block_size: ids per block including the special tokens (> number of special tokens).
        tokenizer: supplies ``num_special_tokens_to_add`` and the ``[CLS]`` / ``[SEP]`` ids.

    Returns:
        ``len(token_ids) // (block_size - n_special)`` blocks; the incomplete rest is dropped.

    Raises:
        ValueError: ``block_size`` leaves no room for text.
    """
    chunk = block_size - tokenizer.num_special_tokens_to_add(pair=False)
    if chunk <= 0:
        raise ValueError(f"block size {block_size} leaves no room for text")
    blocks = [_with_special_tokens(list(token_ids[i : i + chunk]), tokenizer) for i in range(0, len(token_ids) - chunk + 1, chunk)]
    if blocks and len(blocks[0]) != block_size:
        raise ValueError(f"{type(tokenizer).__name__}: blocks of {len(blocks[0])} ids, expected {block_size}")
    return blocks


def _with_special_tokens(ids: list[int], tokenizer) -> list[int]:
    """``[CLS] ids [SEP]`` (transformers 5 fast tokenizers no longer have
    ``build_inputs_with_special_tokens``; slow ones still do)."""
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    if build is not None:
        return list(build(ids))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise ValueError(f"{type(tokenizer).__name__} has no [CLS]/[SEP] tokens to frame a block")
    return [cls, *ids, sep]


def tokenize_into_blocks(lines: Sequence[str], tokenizer, block_size: int, batch_size: int = 1000) -> list[list[int]]:
    """Tokenize ``lines`` (no special tokens), concatenate in order and :func:`group_into_blocks`.

    Returns:
        List of blocks, each a list of ``block_size`` int token ids.
    """
    ids: list[int] = []
    for i in range(0, len(lines), batch_size):
        batch = [line for line in lines[i : i + batch_size] if line.strip()]
        if batch:
            for row in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
                ids.extend(row)
    return group_into_blocks(ids, block_size, tokenizer)


def _special_mask(input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=input_ids.dtype)
    return torch.isin(input_ids, special)


def _masker(tokenizer, spec: TaskSpec | None, seed: int | None = None) -> DataCollatorForLanguageModeling:
    opt = (lambda k, d: spec.option(k, d)) if spec is not None else (lambda k, d: d)
    return DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=float(opt("mlm_probability", 0.15)),
        mask_replace_prob=float(opt("mask_replace_prob", 0.8)),
        random_replace_prob=float(opt("random_replace_prob", 0.1)),
        seed=seed,
    )


def mask_once(blocks: Sequence[Sequence[int]], tokenizer, spec: TaskSpec | None = None, seed: int = 0) -> dict[str, list]:
    """Mask an evaluation set once, deterministically (fixed masking).

    The 15% / 80-10-10 rule of Devlin et al. 2019 (probabilities from ``spec``'s ``[mlm]`` table,
    defaults 0.15 / 0.8 / 0.1) is drawn from a ``torch.Generator`` seeded with ``seed``, so the
    same blocks always get the same masked positions and replacement tokens, independent of the
    global RNG. Special tokens are never selected.

    Args:
        blocks: equal-length token-id lists (``n`` blocks of ``block_size``).
        tokenizer: supplies the mask token, the vocabulary size and the special ids.
        spec: the task (for the masking probabilities), or ``None`` for the defaults.
        seed: generator seed.

    Returns:
        ``{"input_ids": [[int]], "labels": [[int]]}``: corrupted inputs and the original ids at
        selected positions, ``-100`` elsewhere; each of shape ``(n, block_size)``.
    """
    masker = _masker(tokenizer, spec, seed)
    masker.create_rng()
    input_ids = torch.tensor([list(b) for b in blocks], dtype=torch.long)
    inputs, labels = masker.torch_mask_tokens(input_ids.clone(), special_tokens_mask=_special_mask(input_ids, tokenizer))
    return {"input_ids": inputs.tolist(), "labels": labels.tolist()}


class MaskedLMCollator:
    """Data collator for the MLM kind.

    Training features (``input_ids`` only) are masked afresh with the 15% / 80-10-10 rule
    (``DataCollatorForLanguageModeling.torch_mask_tokens``; random draws from the global torch
    RNG, which ``Trainer`` seeds). Features that already carry ``labels`` (the pre-masked
    evaluation set, :func:`mask_once`) are only stacked, never re-masked.

    Args:
        tokenizer: the model's tokenizer.
        spec: the task (masking probabilities in ``[mlm]``), or ``None`` for the defaults.

    Call: list of ``{"input_ids": list[int] (, "labels": list[int])}`` of equal length ->
    ``{"input_ids", "attention_mask", "labels"}``, ``torch.long`` tensors of shape
    ``(batch, block_size)``.
    """

    def __init__(self, tokenizer, spec: TaskSpec | None = None):
        self.tokenizer = tokenizer
        self.masker = _masker(tokenizer, spec)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = torch.tensor([list(f["input_ids"]) for f in features], dtype=torch.long)
        if "labels" in features[0]:
            labels = torch.tensor([list(f["labels"]) for f in features], dtype=torch.long)
        else:
            input_ids, labels = self.masker.torch_mask_tokens(input_ids, special_tokens_mask=_special_mask(input_ids, self.tokenizer))
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def preprocess_logits_for_metrics(logits, labels: torch.Tensor):
    """Reduce MLM logits before the Trainer gathers them (full logits would need
    ``n_blocks x block_size x vocab`` floats).

    Args:
        logits: float tensor ``(batch, seq, vocab)`` (or a tuple whose first element is).
        labels: long tensor ``(batch, seq)``, ``-100`` at unscored positions.

    Returns:
        ``(predicted ids: long (batch, seq), nll: float32 (batch, seq))``; ``nll`` is the
        negative log-probability of the gold token at scored positions, 0 elsewhere.
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    preds = logits.argmax(dim=-1)
    nll = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    scored = labels != -100
    if scored.any():
        logp = torch.log_softmax(logits[scored].float(), dim=-1)
        nll[scored] = -logp.gather(-1, labels[scored].unsqueeze(-1)).squeeze(-1)
    return preds, nll


def compute_mlm_metrics(eval_pred) -> dict[str, float]:
    """``compute_metrics`` for ``Trainer``: :func:`bert_tickets.tasks.metrics.masked_lm_metrics` on the
    output of :func:`preprocess_logits_for_metrics` (accuracy, perplexity, masked_tokens)."""
    preds, nll = eval_pred.predictions
    return masked_lm_metrics(preds, eval_pred.label_ids, nll)


# --------------------------------------------------------------------------------------------
# The kind
# --------------------------------------------------------------------------------------------


@dataclass
class MaskedLMData(PreparedData):
    """Masked-LM blocks; ``block_size`` = ids per block, ``[CLS]`` and ``[SEP]`` included."""

    block_size: int = 512


class MaskedLMKind(TaskKind):
    """Masked-LM with ``AutoModelForMaskedLM``. Spec options (``[mlm]``): ``mlm_probability``
    (0.15), ``mask_replace_prob`` (0.8), ``random_replace_prob`` (0.1), ``eval_mask_seed``."""

    name = "mlm"
    hub_task_type = "fill-mask"

    def __init__(self):
        # model -> head weights missing from its checkpoint, recorded by load_model for
        # describe_model (held weakly: nothing is attached to the model object itself).
        self._new_head_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def validate_inputs(self, spec, data_dir):
        resolve_mlm_files(spec, data_dir)

    def model_class(self, spec):
        return AutoModelForMaskedLM

    def load_model(self, spec, model_name_or_path, **kwargs):
        """``AutoModelForMaskedLM.from_pretrained``, noting which head weights were missing from
        the checkpoint (initialised at random): warned about once per checkpoint and reported by
        :meth:`describe_model`."""
        model, info = AutoModelForMaskedLM.from_pretrained(
            model_name_or_path, output_loading_info=True, **self.model_kwargs(spec), **kwargs
        )
        new = sorted(k for k in info.get("missing_keys", ()) if not is_backbone_parameter(model, k))
        self._new_head_weights[model] = new
        if new and str(model_name_or_path) not in _WARNED_HEADS:
            _WARNED_HEADS.add(str(model_name_or_path))
            logger.warning(
                "%s has no pre-trained masked-LM head: %s initialised at random (decoder tied to the word embeddings: %s); "
                "the head is trained along with the ticket, and every ticket records mlm_head_pretrained = false",
                model_name_or_path,
                ", ".join(new),
                _decoder_tied(model),
            )
        return model

    def describe_model(self, model):
        new = self._new_head_weights.get(model)
        if new is None:
            return {}
        out: dict[str, Any] = {"mlm_head_pretrained": not new, "mlm_decoder_tied_to_word_embeddings": _decoder_tied(model)}
        if new:
            out["mlm_head_initialized"] = list(new)
        return out

    def prepare(self, spec, tokenizer, data_dir, cache_dir, max_seq_length, max_train_samples, max_eval_samples):
        from datasets import Dataset

        if tokenizer.mask_token is None:
            raise ValueError(f"{type(tokenizer).__name__} has no mask token; masked-LM needs one")
        text, notes = load_mlm_text(spec, data_dir, cache_dir)
        block = int(max_seq_length or spec.hyperparameters.max_seq_length)
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < block:
            logger.warning("block size %d exceeds the tokenizer's model_max_length %d: using %d", block, limit, limit)
            block = limit
        blocks = {name: tokenize_into_blocks(lines, tokenizer, block) for name, lines in text.items()}
        for name, b in blocks.items():
            if not b:
                raise ValueError(f"{spec.display_name} {name}: too little text for one block of {block} tokens")
        train_blocks = blocks["train"][:max_train_samples] if max_train_samples is not None else blocks["train"]
        evals = {}
        seed = int(spec.option("eval_mask_seed", 0))
        for split in spec.eval_splits:
            b = blocks[split][:max_eval_samples] if max_eval_samples is not None else blocks[split]
            evals[split] = Dataset.from_dict(mask_once(b, tokenizer, spec, seed))
        logger.info(
            "MLM: blocks of %d tokens: %d for training, %s (evaluation masked once, seed %d)",
            block,
            len(train_blocks),
            ", ".join(f"{len(d)} for {s}" for s, d in evals.items()),
            seed,
        )
        return MaskedLMData(train=Dataset.from_dict({"input_ids": train_blocks}), eval=evals, notes=notes, block_size=block)

    def trivial_baseline(self, spec, data):
        """The unigram baseline: always the most frequent masked token of the primary evaluation
        split (its share of the masked positions is the accuracy; the masking is fixed, seed
        ``eval_mask_seed``)."""
        split = next(iter(data.eval))
        labels = torch.tensor(data.eval[split]["labels"]).reshape(-1)
        labels = labels[labels != -100]
        if labels.numel() == 0:
            return TrivialBaseline(spec.primary_metric, None, "no masked tokens", "undefined")
        counts = torch.bincount(labels)
        top = int(counts.argmax())
        return TrivialBaseline(
            spec.primary_metric,
            float(counts[top]) / labels.numel(),
            f"always token id {top} ({int(counts[top])}/{labels.numel()} masked tokens of {split})",
            "accuracy above the unigram frequency of the most common masked token",
        )

    def trainer_kwargs(self, spec, tokenizer, data):
        return {
            "data_collator": MaskedLMCollator(tokenizer, spec),
            "compute_metrics": compute_mlm_metrics,
            "preprocess_logits_for_metrics": preprocess_logits_for_metrics,
        }


def _decoder_tied(model) -> bool:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inp = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return bool(out is not None and inp is not None and out.weight.data_ptr() == inp.weight.data_ptr())
