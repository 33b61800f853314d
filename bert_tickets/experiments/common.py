"""Argument dataclasses shared by every experiment: which checkpoint supplies θ0 and which task
and data. ``HfArgumentParser`` turns them (with each experiment's own dataclass and
``transformers.TrainingArguments``) into the command line and also reads them from JSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class ModelArguments:
    """Which pre-trained checkpoint supplies θ0."""

    model_name_or_path: str = field(
        default="bert-base-uncased",
        metadata={"aliases": ["--model"], "help": "Hub id or local directory of a pre-trained BERT checkpoint (θ0)."},
    )
    revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit) of the model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Hugging Face cache directory."})

    def __post_init__(self):
        path = os.path.expanduser(self.model_name_or_path)
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"--model {self.model_name_or_path}: a directory without config.json is not a transformers checkpoint")


@dataclass
class DataArguments:
    """Which task and data."""

    task: str = field(
        default="rte",
        metadata={
            "help": "Task name: GLUE (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli), squad (SQuAD v1.1) or mlm "
            "(masked-LM on WikiText); or a path to a task .toml."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Local data; default: the Hub. GLUE: the TSV directory (DIR/RTE/train.tsv, DIR/RTE/dev.tsv, ...). "
            "squad: a folder with train-v1.1.json + dev-v1.1.json, or one SQuAD JSON (split by article). "
            "mlm: a folder with wiki.train.raw + wiki.test.raw (without wiki.train.raw: train on wiki.valid.raw)."
        },
    )
    max_seq_length: int | None = field(
        default=None,
        metadata={"help": "Tokens per example (default: the task's: 128 for GLUE, 384 for squad, 512-token blocks for mlm)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (squad: questions; mlm: blocks)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N evaluation examples (squad: questions; mlm: blocks)."}
    )

    def __post_init__(self):
        for name in ("max_train_samples", "max_eval_samples", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number, got {value}")
