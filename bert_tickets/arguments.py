"""Argument dataclasses of ``bert-tickets find``; ``HfArgumentParser`` turns them (plus
``transformers.TrainingArguments``) into the command line, and also reads them from a JSON file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from .prunable import DEFAULT_PRUNABLE_PATTERNS


@dataclass
class ModelArguments:
    """Which pre-trained checkpoint supplies θ0."""

    model_name_or_path: str = field(
        default="bert-base-uncased",
        metadata={"aliases": ["--model"], "help": "Hub id or local directory of a pre-trained BERT checkpoint (θ0)."},
    )
    revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit) of the model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Hugging Face cache directory."})


@dataclass
class DataArguments:
    """Which task and data."""

    task: str = field(
        default="rte",
        metadata={"help": "Task name: GLUE (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli), squad (SQuAD v1.1) or mlm "
                  "(masked-LM on WikiText); or a path to a task .toml."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local data; default: the Hub. GLUE: the TSV directory (DIR/RTE/train.tsv, DIR/RTE/dev.tsv, ...). "
                  "squad: a folder with train-v1.1.json + dev-v1.1.json, or one SQuAD JSON (split by article). "
                  "mlm: a folder with wiki.train.raw + wiki.test.raw (without wiki.train.raw: train on wiki.valid.raw)."},
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


@dataclass
class IMPArguments:
    """Iterative magnitude pruning (Chen et al. 2020, Algorithm 1; BERT-Tickets' code)."""

    schedule: str = field(
        default="linear",
        metadata={
            "help": "linear: every level prunes a further --prune_step of the ORIGINAL weights (10%%, 20%%, ...; "
            "BERT-Tickets' code). geometric: every level prunes --prune_fraction of the REMAINING weights "
            "(the paper's Algorithm 1, open_lth).",
            "choices": ["linear", "geometric"],
        },
    )
    prune_step: float = field(default=0.1, metadata={"help": "linear schedule: sparsity added per level (fraction)."})
    prune_fraction: float = field(default=0.1, metadata={"help": "geometric schedule: fraction of the remaining weights pruned per level."})
    target_sparsity: float = field(default=0.9, metadata={"help": "Stop after the level that reaches this sparsity (fraction in [0, 1))."})
    max_levels: int | None = field(default=None, metadata={"help": "Stop after this many pruned levels (level 0 is dense)."})
    pruning_method: str = field(
        default="magnitude",
        metadata={"help": "magnitude: global magnitude pruning (IMP). random: seeded random pruning (baseline).", "choices": ["magnitude", "random"]},
    )
    pruning_scope: str = field(
        default="global",
        metadata={"help": "global: one magnitude ranking over all prunable tensors (BERT-Tickets). layerwise: every tensor "
                  "pruned to the same sparsity.", "choices": ["global", "layerwise"]},
    )
    max_tensor_sparsity: float | None = field(
        default=None,
        metadata={"help": "Cap on any one tensor's sparsity within global pruning (fraction); the excess goes to the other "
                  "tensors so the global count stays exact. Guards against layer collapse."},
    )
    collapse_threshold: float = field(
        default=0.99, metadata={"help": "Warn about any tensor pruned beyond this fraction (layer collapse)."}
    )
    rewind_step: int = field(
        default=0,
        metadata={"help": "Rewind surviving weights to θ0 (0) or to the weights after this many steps of level-0 (dense) fine-tuning."},
    )
    keep_trained_head: bool = field(
        default=False,
        metadata={"help": "Start each level from the previous level's trained task head (as BERT-Tickets' code does) "
                  "instead of the level-0 initial head."},
    )
    prunable_patterns: list[str] | None = field(
        default=None,
        metadata={"help": "Regexes (fullmatch, backbone-relative names) of the prunable weights; default: the BERT-Tickets set."},
    )
    exclude: list[str] | None = field(default=None, metadata={"help": "Regexes of weights to leave out of the prunable set, e.g. 'pooler\\..*'."})
    seeds: list[int] | None = field(
        default=None,
        metadata={"help": "Fine-tuning seeds per level (default: --seed). With several, matching = within one std of dense; "
                  "the first seed's trained weights are pruned."},
    )
    tolerance: float = field(
        default=0.01,
        metadata={"help": "With one seed, a level is matching when its metric >= dense metric - tolerance (metric units, e.g. 0.01 = 1 point)."},
    )

    @property
    def patterns(self) -> list[str]:
        return list(self.prunable_patterns) if self.prunable_patterns else list(DEFAULT_PRUNABLE_PATTERNS)


#: TrainingArguments fields that change what a run computes (part of the run hash).
TRAINING_KEYS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "warmup_steps",
    "max_grad_norm",
    "lr_scheduler_type",
    "optim",
    "seed",
    "fp16",
    "bf16",
)


def run_hyperparameters(model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args) -> dict:
    """The hyperparameters that define a run (everything that changes a level's result)."""
    train = {k: getattr(training_args, k, None) for k in TRAINING_KEYS}
    train = {k: (v.value if hasattr(v, "value") else v) for k, v in train.items()}
    imp = asdict(imp_args)
    imp["prunable_patterns"] = imp_args.patterns
    # Where the run stops does not change any level's result: a finished run can be extended
    # (the levels already computed are checked against the new schedule instead).
    for key in ("max_levels", "target_sparsity", "collapse_threshold"):
        imp.pop(key)
    return {"model": asdict(model_args) | {"cache_dir": None}, "data": asdict(data_args), "imp": imp, "training": train}


def run_hash(hparams: dict) -> str:
    """Short stable hash of :func:`run_hyperparameters` (open_lth-style run naming)."""
    blob = json.dumps(hparams, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
