"""The ``embeddings`` source: examples given as input embeddings — ``inputs_embeds`` instead of
token ids, e.g. distilled data learnt in embedding space (dataset distillation for text, Sucholutsky
& Schonlau 2021, *Soft-Label Dataset Distillation and Text Dataset Distillation*, Section 3.2) —
read from one safetensors file and fed to the model as ``inputs_embeds``. The model adds its
position and token-type embeddings to them (BERT's ``BertEmbeddings``), so ``inputs_embeds`` are
word embeddings: ``model.get_input_embeddings()(input_ids)`` reproduces the ``input_ids`` forward
exactly.

The file's tensors:

* ``inputs_embeds``: float32 ``(n, L, hidden)`` (``hidden`` = the model's embedding size,
  ``L`` <= its ``max_position_embeddings``);
* ``attention_mask``: integer or bool ``(n, L)``, 1 = a token, 0 = padding;
* ``labels``: int64 ``(n,)`` class ids, float32 ``(n,)`` regression targets, or float32
  ``(n, num_labels)`` soft labels (rows summing to 1; trained with
  :func:`~bert_tickets.training.sources.base.soft_label_loss`);
* ``token_type_ids`` (optional): int64 ``(n, L)``; absent means all 0 (BERT's default: the first
  segment), which differs from a sentence-pair example's own token types;
* ``learning_rates`` ``(steps,)`` and ``attention_labels`` ``(n, layers, heads, L, L)``
  (optional): what ``bert-tickets distill`` learnt with the set (its inner step sizes and
  attention targets), kept with it and described by its card (``distilled.json``); plain
  fine-tuning on the set does not read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .base import TrainingData, TrainingSource, register_source, soft_label_loss

#: The tensors an embeddings file may hold (``token_type_ids`` optional; ``learning_rates`` and
#: ``attention_labels`` are what ``bert-tickets distill`` learnt with the set — kept in the file,
#: not fed to the model).
KEYS = ("inputs_embeds", "attention_mask", "labels", "token_type_ids", "learning_rates", "attention_labels", "attention_loss_weight")
#: Per-example tensors (what the dataset holds).
EXAMPLE_KEYS = KEYS[:4]


@dataclass
class EmbeddingsOptions:
    """Options of the ``embeddings`` source."""

    path: str = field(
        default="", metadata={"help": "safetensors file: inputs_embeds, attention_mask, labels [, token_type_ids] (required)"}
    )
    attention_labels: bool = field(
        default=False,
        metadata={"help": "also give each example's attention_labels to the batch (for the attention_labels training objective)"},
    )

    def __post_init__(self):
        if not self.path:
            raise ValueError("training-data source embeddings needs path=FILE.safetensors")


def collate_embeddings(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack examples of an embeddings dataset into a batch: ``inputs_embeds`` float32
    ``(b, L, hidden)``, ``attention_mask`` / ``token_type_ids`` int64 ``(b, L)``, ``labels`` as
    stored (``(b,)`` or ``(b, C)``). Every example of a file has the same ``L`` (no padding)."""
    out = {k: torch.stack([torch.as_tensor(f[k]) for f in features]) for k in features[0]}
    for k in ("attention_mask", "token_type_ids"):
        if k in out:
            out[k] = out[k].long()
    out["inputs_embeds"] = out["inputs_embeds"].float()
    return out


def read_embeddings(path: str | Path, task: Any, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The checked tensors of an embeddings file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing or unknown tensor, shapes that do not agree (with each other, the
            model's embedding size and positions, or the task's labels), non-finite embeddings,
            or soft labels that are not distributions (one line).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training-data source embeddings: no such file {path}")
    t = load_file(path)
    where = f"training-data source embeddings ({path})"
    missing = [k for k in KEYS[:3] if k not in t]
    unknown = sorted(set(t) - set(KEYS))
    if missing or unknown:
        raise ValueError(
            f"{where}: " + (f"no tensor {missing[0]!r}" if missing else f"unknown tensor {unknown[0]!r}") + f" (tensors: {', '.join(KEYS)})"
        )
    emb, mask, labels = t["inputs_embeds"], t["attention_mask"], t["labels"]
    if emb.dim() != 3 or emb.dtype != torch.float32 or len(emb) == 0:
        raise ValueError(f"{where}: inputs_embeds must be float32 (n >= 1, L, hidden), got {emb.dtype} {tuple(emb.shape)}")
    n, length, hidden = emb.shape
    if not bool(torch.isfinite(emb).all()):
        raise ValueError(f"{where}: inputs_embeds holds non-finite values")
    for key in ("attention_mask", "token_type_ids"):
        if key in t and tuple(t[key].shape) != (n, length):
            raise ValueError(f"{where}: {key} must be ({n}, {length}), got {tuple(t[key].shape)}")
    if bool((mask.sum(1) == 0).any()):
        raise ValueError(f"{where}: an example whose attention_mask is all 0")
    if task.is_regression:
        ok = labels.shape == (n,) and torch.is_floating_point(labels)
        want = f"float ({n},) regression targets"
    elif torch.is_floating_point(labels):
        ok = (
            labels.shape == (n, task.num_labels)
            and bool((labels >= 0).all())
            and bool(torch.allclose(labels.sum(1), torch.ones(n), atol=1e-4))
        )
        want = f"float ({n}, {task.num_labels}) soft labels (rows of non-negative numbers summing to 1)"
    else:
        ok = labels.shape == (n,) and (n == 0 or (int(labels.min()) >= 0 and int(labels.max()) < task.num_labels))
        want = f"int ({n},) class ids in [0, {task.num_labels})"
    if not ok:
        raise ValueError(f"{where}: labels must be {want}, got {labels.dtype} {tuple(labels.shape)}")
    if "attention_labels" in t and (t["attention_labels"].dim() != 5 or t["attention_labels"].shape[0] != n):
        raise ValueError(
            f"{where}: attention_labels must be ({n}, layers, heads, rows, {length}), got {tuple(t['attention_labels'].shape)}"
        )
    if model is not None:
        size = model.get_input_embeddings().embedding_dim
        positions = getattr(model.config, "max_position_embeddings", length)
        if hidden != size or length > positions:
            raise ValueError(
                f"{where}: inputs_embeds (n, {length}, {hidden}) do not fit the model (hidden {size}, at most {positions} positions)"
            )
    return t


@register_source
class EmbeddingsSource(TrainingSource):
    """Examples as ``inputs_embeds`` from a safetensors file, batched by :func:`collate_embeddings`."""

    name = "embeddings"
    summary = "examples given as inputs_embeds (n, L, hidden) float32 + attention_mask + (soft) labels, from a safetensors file"
    Options = EmbeddingsOptions

    def check(self, options, *, task, data, model=None):
        if task.kind != "glue":
            raise ValueError(f"training-data source embeddings: defined for GLUE-kind tasks, not {task.kind!r} ({task.name})")
        read_embeddings(options.path, task, model)

    def build(self, options, *, task, data, tokenizer=None):
        from datasets import Dataset

        t = read_embeddings(options.path, task)
        keys = EXAMPLE_KEYS + (("attention_labels",) if options.attention_labels else ())
        if options.attention_labels and "attention_labels" not in t:
            raise ValueError(f"training-data source embeddings ({options.path}): attention_labels=true but the file holds none")
        dataset = Dataset.from_dict({k: v.numpy() for k, v in t.items() if k in keys}).with_format("torch")
        soft = torch.is_floating_point(t["labels"]) and t["labels"].dim() == 2
        return TrainingData(dataset, data_collator=collate_embeddings, label_loss=soft_label_loss if soft else None)
