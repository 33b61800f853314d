"""Command-line arguments of every ``bert-tickets`` command that trains: the dataclasses of the
registered experiments, assembled for ``transformers.HfArgumentParser`` together with
``transformers.TrainingArguments``, and the defaults layered under the user's arguments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments

from ._io import first_line
from .experiments import EXPERIMENTS, DataArguments, ModelArguments
from .experiments.common import plugin_flags, plugin_keys
from .experiments.imp import IMPArguments, run_hyperparameters
from .results import hyperparameter_hash as run_hash
from .tasks import get_task
from .training.finetune import TRAINING_KEYS

__all__ = [
    "TRAINING_KEYS",
    "ArgumentError",
    "DataArguments",
    "IMPArguments",
    "ModelArguments",
    "experiment_parser",
    "parse_experiment_args",
    "parse_transfer_args",
    "run_hash",
    "run_hyperparameters",
    "task_defaults",
]


class ArgumentError(Exception):
    """Bad command-line input detected before any work (one line)."""


def experiment_parser(command: str) -> HfArgumentParser:
    """``HfArgumentParser`` over the experiment's dataclasses plus ``TrainingArguments``."""
    return HfArgumentParser((*EXPERIMENTS[command].ARGUMENTS, TrainingArguments), prog=f"bert-tickets {command}")


def task_defaults(task_name: str) -> dict:
    """Defaults layered under the user's arguments: the task's hyperparameters, the run directory
    ``runs/<task>``, and no intermediate Trainer checkpoints (each level saves its ticket).

    Raises:
        ValueError: unknown task.
    """
    task = get_task(task_name)
    return {
        **task.hyperparameters.training_arguments(),
        "output_dir": f"runs/{task.name}",
        "save_strategy": "no",
        "report_to": "none",
        "logging_strategy": "epoch",
        "per_device_eval_batch_size": 64,  # evaluation only: larger batches, same metrics
    }


def parse_experiment_args(command: str, argv: list[str]):
    """Parse ``argv`` into the experiment's dataclasses (then ``TrainingArguments``); a single
    ``.json`` argument is read as a config file with the same keys.

    Raises:
        ArgumentError: unknown task, a missing config file or invalid values (one line).
    """
    parser = experiment_parser(command)
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            path = Path(argv[0])
            if not path.is_file():
                raise ArgumentError(f"config file not found: {path}")
            config = plugin_keys(renamed_keys(json.loads(path.read_text()), parser.dataclass_types), _field_names(parser))
            return parser.parse_dict({**task_defaults(config.get("task", "rte")), **config})
        argv = plugin_flags(argv, set(parser._option_string_actions))
        known, _ = parser.parse_known_args(argv)
        parser.set_defaults(**task_defaults(known.task))
        if any(a.startswith("--save_steps") for a in argv) and not any(a.startswith("--save_strategy") for a in argv):
            parser.set_defaults(save_strategy="steps")  # --save_steps alone turns mid-level checkpoints on
        return parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, json.JSONDecodeError) as err:
        raise ArgumentError(first_line(err)) from None


def _field_names(parser: HfArgumentParser) -> set[str]:
    return {f.name for t in parser.dataclass_types for f in dataclasses.fields(t)}


def renamed_keys(config: dict, types) -> dict:
    """A JSON config with old spellings of renamed fields (a field's ``metadata["aliases"]``,
    e.g. ``pruning_method`` for ``criterion``) under the field's name."""
    out = dict(config)
    for t in types:
        for f in dataclasses.fields(t):
            for alias in f.metadata.get("aliases", ()):
                key = alias.lstrip("-")
                if key in out and f.name not in out:
                    out[f.name] = out.pop(key)
    return out


def _task_overrides(entries: list[str] | None, targets: list[str]) -> dict[str, list[str]]:
    """``--task_args TASK:KEY=VALUE ...`` -> target -> extra argv (``--KEY VALUE``), appended
    after the user's options so that it wins for that target only.

    Raises:
        ArgumentError: a malformed entry, a task that is not a target, or a KEY that is not a
            ``TrainingArguments`` field.
    """
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    out: dict[str, list[str]] = {t: [] for t in targets}
    for entry in entries or []:
        task, colon, assignment = entry.partition(":")
        key, eq, value = assignment.partition("=")
        if not (colon and eq and key):
            raise ArgumentError(f"--task_args {entry}: expected TASK:KEY=VALUE, e.g. mrpc:num_train_epochs=2")
        name = get_task(task).name
        if name not in out:
            raise ArgumentError(f"--task_args {entry}: {task!r} is not one of the target tasks ({', '.join(targets)})")
        if key not in known or key == "output_dir":
            raise ArgumentError(f"--task_args {entry}: {key!r} is not a TrainingArguments option of one target")
        out[name] += [f"--{key}", value]
    return out


def parse_transfer_args(argv: list[str]):
    """Parse ``transfer`` arguments: the :class:`~bert_tickets.experiments.transfer.TransferArguments`
    and, per target task, ``TrainingArguments`` with that task's defaults under the user's
    options (so each target keeps its own budget); ``--output_dir`` (default ``transfer``) is the
    matrix directory.

    Raises:
        ArgumentError: unknown task or invalid values (one line).
    """
    parser = experiment_parser("transfer")
    try:
        argv = plugin_flags(argv, set(parser._option_string_actions))
        parser.set_defaults(
            output_dir="transfer", save_strategy="no", report_to="none", logging_strategy="epoch", per_device_eval_batch_size=64
        )
        args, _ = parser.parse_args_into_dataclasses(args=argv)
        if not args.tasks:
            raise ArgumentError("give at least one target task with --tasks")
        overrides = _task_overrides(args.task_args, [get_task(t).name for t in args.tasks])
        per_target = {}
        for task in args.tasks:
            name = get_task(task).name
            parser = experiment_parser("transfer")
            parser.set_defaults(**{**task_defaults(task), "output_dir": "transfer"})
            per_target[name] = parser.parse_args_into_dataclasses(args=[*argv, *overrides[name]])[1]
        return args, per_target
    except (ValueError, json.JSONDecodeError) as err:
        raise ArgumentError(first_line(err)) from None
