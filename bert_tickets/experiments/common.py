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


@dataclass
class CriterionArguments:
    """Options of the criteria that find a mask at θ0 (``prune-at-init`` and the criterion rows of
    ``transfer``); see each criterion's module for the defaults and their sources."""

    score_batches: int = field(
        default=1, metadata={"help": "snip: training batches the scores are summed over (Lee et al. 2019: one mini-batch)."}
    )
    score_iterations: int = field(
        default=100, metadata={"help": "synflow: pruning rounds on the exponential schedule (Tanaka et al. 2020: 100)."}
    )
    gem_steps: int | None = field(default=None, metadata={"help": "gem_miner: score-training steps (default: one epoch)."})
    gem_learning_rate: float = field(default=1e-2, metadata={"help": "gem_miner: Adam learning rate of the scores."})
    gem_head_learning_rate: float = field(default=1e-4, metadata={"help": "gem_miner: AdamW learning rate of the task head."})
    gem_penalty: float = field(default=1e-4, metadata={"help": "gem_miner: L2 penalty on the scores (the released configs' 1e-4)."})
    gem_prune_period: int | None = field(
        default=None, metadata={"help": "gem_miner: steps between global pruning rounds (default: steps // 5)."}
    )
    gem_score_init: float = field(default=0.75, metadata={"help": "gem_miner: initial score, in (0.5, 1]."})

    def __post_init__(self):
        if self.score_batches < 1:
            raise ValueError(f"--score_batches must be >= 1, got {self.score_batches}")
        if self.score_iterations < 1:
            raise ValueError(f"--score_iterations must be >= 1, got {self.score_iterations}")
        self.gem_miner_options().check()

    def gem_miner_options(self):
        """The :class:`~bert_tickets.pruning.criteria.gem_miner.GemMinerOptions` these arguments give."""
        from ..pruning.criteria.gem_miner import GemMinerOptions

        return GemMinerOptions(
            steps=self.gem_steps,
            learning_rate=self.gem_learning_rate,
            head_learning_rate=self.gem_head_learning_rate,
            penalty=self.gem_penalty,
            prune_period=self.gem_prune_period,
            score_init=self.gem_score_init,
        )

    def options_for(self, criterion: str) -> dict:
        """The options that change ``criterion``'s mask (part of a cell's id), JSON-ready."""
        if criterion == "snip":
            return {"score_batches": self.score_batches}
        if criterion == "synflow":
            return {"score_iterations": self.score_iterations}
        if criterion == "gem_miner":
            from dataclasses import asdict

            return asdict(self.gem_miner_options())
        return {}


#: Criteria whose masks are found at θ0 before any fine-tuning (rows of ``transfer``, ``prune-at-init``).
AT_INIT_CRITERIA = ("snip", "synflow", "gem_miner")
