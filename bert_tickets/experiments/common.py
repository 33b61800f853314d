"""Argument dataclasses shared by every experiment: which checkpoint supplies θ0, which task and
data, and the options of the criteria a command uses (declared by each criterion). ``HfArgumentParser`` turns them (with each experiment's own dataclass and
``transformers.TrainingArguments``) into the command line and also reads them from JSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .._registry import option_names, options_help, split_assignments
from ..pruning import CRITERIA_REGISTRY as CRITERIA
from ..pruning import SCHEDULES_REGISTRY as SCHEDULES
from ..pruning import criterion_options


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
    """The options of the criteria used by a command (``prune-at-init``'s criterion, the criterion
    rows of ``transfer``), as the criteria declare them (:attr:`PruningCriterion.Options
    <bert_tickets.pruning.PruningCriterion.Options>`, in each criterion's file)."""

    criterion_options: list[str] | None = field(
        default=None,
        metadata={
            "help": "Criterion options as KEY=VALUE (to every criterion used that has KEY) or NAME.KEY=VALUE, e.g. "
            "score_iterations=100 gem_miner.penalty=1e-6; in a JSON config also a mapping. Each criterion lists its own "
            "(bert_tickets.pruning.criteria): "
            + " | ".join(f"{n}: {options_help(CRITERIA.get(n).Options)}" for n in CRITERIA.names() if CRITERIA.get(n).Options)
            + ". The former flags (--score_iterations, --gem_steps, ...) still work."
        },
    )

    def criteria_used(self) -> list[str]:
        """The criteria the command uses (the ones ``--criterion_options`` entries may address);
        each command's arguments say."""
        return []

    def criterion_configs(self, names: list[str] = ()) -> dict[str, Any]:
        """The options instance (``None`` for a criterion without options) of each criterion in
        ``names`` and :meth:`criteria_used`.

        Raises:
            ValueError: an entry none of these criteria takes, or a value out of range.
        """
        used = sorted({*names, *self.criteria_used()})
        return criterion_options(used, split_assignments(self.criterion_options, flag="--criterion_options"))

    def options_for(self, criterion: str) -> dict[str, Any]:
        """The options that change ``criterion``'s mask (part of a cell's id and of a ticket's
        record), JSON-ready; ``{}`` for a criterion without options."""
        cls = CRITERIA.get(criterion)
        return cls.options_dict(self.criterion_configs([cls.name])[cls.name])


def plugin_flags(argv: list[str], known: set[str]) -> list[str]:
    """``argv`` with every ``--KEY VALUE`` (or ``--KEY=VALUE``) whose KEY is not an option of
    the parser (``known``: its option strings) but an option (or alias) of a registered
    schedule or criterion moved into ``--schedule_options`` / ``--criterion_options`` (merged
    with entries given there). So every plug-in's options work as plain flags, as the built-in
    ones did before plug-ins declared them (``--prune_step 0.5``, ``--score_iterations 20``).

    Raises:
        ValueError: a KEY that a schedule and a criterion both declare (give it in one of the
            ``*_options`` lists), or a flag without a value.
    """
    schedule_keys = {k for n in SCHEDULES.names() for k in option_names(SCHEDULES.get(n).Options)}
    criterion_keys = {k for n in CRITERIA.names() for k in option_names(CRITERIA.get(n).Options)}
    lifted: dict[str, list[str]] = {"--schedule_options": [], "--criterion_options": []}
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or arg.split("=", 1)[0] in known or (key not in schedule_keys and key not in criterion_keys):
            out.append(arg)
            i += 1
            continue
        if key in schedule_keys and key in criterion_keys:
            raise ValueError(f"--{key} is an option of a schedule and of a criterion: give it as --schedule_options or --criterion_options")
        if not eq:
            if i + 1 >= len(argv):
                raise ValueError(f"--{key} needs a value")
            value = argv[i + 1]
            i += 1
        lifted["--schedule_options" if key in schedule_keys else "--criterion_options"].append(f"{key}={value}")
        i += 1
    for flag, entries in lifted.items():
        if not entries:
            continue
        if flag in out:
            at = out.index(flag) + 1
            out[at:at] = entries
        else:
            out += [flag, *entries]
    return out


def plugin_keys(config: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """A JSON config with the keys that are not parser fields (``known``) but plug-in options
    moved into ``schedule_options`` / ``criterion_options`` (:func:`plugin_flags` for configs)."""
    schedule_keys = {k for n in SCHEDULES.names() for k in option_names(SCHEDULES.get(n).Options)}
    criterion_keys = {k for n in CRITERIA.names() for k in option_names(CRITERIA.get(n).Options)}
    out = dict(config)
    for key in [k for k in config if k not in known and (k in schedule_keys or k in criterion_keys)]:
        target = "schedule_options" if key in schedule_keys else "criterion_options"
        merged = split_assignments(out.get(target), flag=f"--{target}")
        merged.setdefault(key, out.pop(key))
        out[target] = merged
    return out
