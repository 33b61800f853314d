"""Command-line arguments of every ``bert-tickets`` command that trains: the dataclasses of the
registered experiments, assembled for ``transformers.HfArgumentParser`` together with
``transformers.TrainingArguments``, the defaults layered under the user's arguments, and the
config files (``--config``: a flat JSON of options, or a run's recorded typed arguments).
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
from .results import reproducing_arguments
from .tasks import get_task
from .training.finetune import TRAINING_KEYS

__all__ = [
    "TRAINING_KEYS",
    "ArgumentError",
    "DataArguments",
    "IMPArguments",
    "ModelArguments",
    "check_training_arguments",
    "experiment_parser",
    "parse_experiment_args",
    "parse_transfer_args",
    "run_hash",
    "run_hyperparameters",
    "task_defaults",
]


class ArgumentError(ValueError):
    """Bad command-line input detected before any work (one line; a ``ValueError``, so every
    command prints it as it prints other bad input)."""


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


#: ``TrainingArguments`` counts that mean nothing below 1 (``None``: unset), and those that mean
#: nothing below 0. ``save_steps`` / ``logging_steps`` / ``eval_steps`` below 1 are a fraction of
#: the training steps (transformers), so they need only be > 0.
_AT_LEAST_ONE = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "eval_accumulation_steps")
_POSITIVE = ("save_steps", "logging_steps", "eval_steps")
_NON_NEGATIVE = ("num_train_epochs", "dataloader_num_workers", "save_total_limit")
_SEEDS = ("seed", "data_seed")


def check_training_arguments(training_args: TrainingArguments, where: str = "") -> None:
    """The ``TrainingArguments`` values that mean nothing, refused before any work (as the
    experiments' own options are): batch sizes and accumulation below 1, step intervals
    (``--save_steps``, ``--logging_steps``, ``--eval_steps``) not > 0, negative epochs, workers or
    checkpoint limits, ``--max_steps`` other than -1 (train ``--num_train_epochs``) or a positive
    count, no training at all (0 epochs without ``--max_steps``), seeds outside ``[0, 2**32)``
    (what ``transformers.set_seed`` takes).

    Args:
        where: appended to the message (e.g. ``" (target rte)"``).

    Raises:
        ArgumentError: one line naming the option and the value.
    """
    a = training_args
    for name in _AT_LEAST_ONE:
        value = getattr(a, name)
        if value is not None and value < 1:
            raise ArgumentError(f"--{name} must be >= 1, got {value}{where}")
    for name in _POSITIVE:
        value = getattr(a, name)
        if value is not None and value <= 0:
            raise ArgumentError(f"--{name} must be > 0 (a number of steps, or below 1 a fraction of them), got {value:g}{where}")
    for name in _NON_NEGATIVE:
        value = getattr(a, name)
        if value is not None and value < 0:
            raise ArgumentError(f"--{name} must be >= 0, got {value:g}{where}")
    if a.max_steps == 0 or a.max_steps < -1:
        raise ArgumentError(
            f"--max_steps must be a positive number of optimizer steps, or -1 to train --num_train_epochs; got {a.max_steps}{where}"
        )
    if a.max_steps == -1 and a.num_train_epochs == 0:
        raise ArgumentError(f"--num_train_epochs 0 without --max_steps trains nothing{where}")
    for name in _SEEDS:
        value = getattr(a, name)
        if value is not None and not 0 <= value < 2**32:
            raise ArgumentError(f"--{name} must be an integer in [0, 2**32), got {value}{where}")


#: ``--output_dir`` of ``prune-at-init`` until the arguments are parsed: left there only when no
#: flag, alias or config gave one (then ``runs/<task>-<criterion>-<sparsity>``).
_UNSET = "\x00unset"


def parse_experiment_args(command: str, argv: list[str]):
    """Parse ``argv`` into the experiment's dataclasses (then ``TrainingArguments``).

    Layers, lowest first: the dataclass defaults, the task's defaults (:func:`task_defaults`),
    a config file, the flags in ``argv``. The config file is ``--config PATH`` or a single
    ``.json`` argument: either a flat mapping of option names (the same keys as the flags) or a
    run's ``run_config.json``, whose typed ``arguments`` (:func:`~bert_tickets.results.argument_groups`)
    load back through ``HfArgumentParser.parse_dict`` exactly as recorded (without the task
    defaults: the record already holds every value that is not a dataclass default). ``prune-at-init``
    writes to ``runs/<task>-<criterion>-<sparsity>`` unless ``--output_dir`` (or
    ``--output-dir``, or a config's ``output_dir``) says otherwise.

    Raises:
        ArgumentError: unknown task, a missing or unreadable config file, a config key that is
            no option, or invalid values (one line; ``TrainingArguments``:
            :func:`check_training_arguments`).
    """
    parser = experiment_parser(command)
    try:
        config, typed, argv = _config(argv, parser)
        argv = plugin_flags(argv, set(parser._option_string_actions))
        parser.set_defaults(**config)  # so that the task comes from the config unless given
        known, _ = parser.parse_known_args(argv)
        defaults = dict(config) if typed else {**task_defaults(known.task), **config}
        if command == "prune-at-init" and "output_dir" not in config:
            defaults["output_dir"] = _UNSET
        if config and not argv:
            parsed = parser.parse_dict(defaults)
        else:
            parser.set_defaults(**defaults)
            if any(a.startswith("--save_steps") for a in argv) and not any(a.startswith("--save_strategy") for a in argv):
                parser.set_defaults(save_strategy="steps")  # --save_steps alone turns mid-level checkpoints on
            parsed = parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, json.JSONDecodeError) as err:
        raise ArgumentError(first_line(err)) from None
    training_args = parsed[-1]
    check_training_arguments(training_args)
    if training_args.output_dir == _UNSET:
        data_args, args = parsed[1], parsed[2]
        training_args.output_dir = f"runs/{get_task(data_args.task).name}-{args.criterion}-{args.sparsity:g}"
    return parsed


def _config(argv: list[str], parser: HfArgumentParser) -> tuple[dict, bool, list[str]]:
    """The config file named in ``argv`` (``--config PATH``, ``--config=PATH`` or a single
    ``.json`` argument) as a flat mapping of option names, whether it was a run's typed
    ``arguments``, and the rest of ``argv``.

    Raises:
        ArgumentError: a missing or unreadable file, typed arguments of another command, or a
            key that is no option of this command.
    """
    rest, path = list(argv), None
    if len(rest) == 1 and rest[0].endswith(".json"):
        path, rest = rest[0], []
    for i, arg in enumerate(rest):
        if arg == "--config" or arg.startswith("--config="):
            path = arg.partition("=")[2] if "=" in arg else (rest[i + 1] if i + 1 < len(rest) else "")
            del rest[i : i + (1 if "=" in arg else 2)]
            break
    if path is None:
        return {}, False, rest
    if not path or not Path(path).is_file():
        raise ArgumentError(f"config file not found: {path or '(none given after --config)'}")
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArgumentError(f"config file {path} is unreadable: {first_line(err)}") from None
    if not isinstance(raw, dict):
        raise ArgumentError(f"config file {path}: expected a JSON object of options")
    typed = isinstance(raw.get("arguments"), dict)
    if typed:
        names = {t.__name__ for t in parser.dataclass_types}
        other = sorted(set(raw["arguments"]) - names)
        if other:
            raise ArgumentError(f"config file {path} records the arguments of another command ({', '.join(other)})")
        raw = {k: v for group in reproducing_arguments(raw).values() for k, v in group.items()}
    elif "hyperparameters" in raw:
        raise ArgumentError(
            f"config file {path} is a run config recorded before typed arguments were: give its options as flags "
            "(the run's model card lists them)"
        )
    config = plugin_keys(renamed_keys(raw, parser.dataclass_types), _field_names(parser))
    unknown = sorted(set(config) - _field_names(parser))
    if unknown:
        raise ArgumentError(f"config file {path}: not an option of this command: {', '.join(unknown)}")
    return config, typed, rest


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
    matrix directory. ``--config MATRIX/arguments.json`` (written by ``transfer``) parses the
    recorded typed arguments back (``HfArgumentParser.parse_dict``), each target's
    ``TrainingArguments`` exactly as recorded.

    Raises:
        ArgumentError: unknown task, invalid values (:func:`check_training_arguments` for each
            target), or a config with other options (one line).
    """
    parser = experiment_parser("transfer")
    if "--config" in argv or any(a.startswith("--config=") for a in argv):
        return _recorded_transfer_args(argv)
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
            check_training_arguments(per_target[name], f" (target {name})" if overrides[name] else "")
        return args, per_target
    except (ValueError, json.JSONDecodeError) as err:
        raise ArgumentError(first_line(err)) from None


def _recorded_transfer_args(argv: list[str]):
    """``transfer --config MATRIX/arguments.json``: the recorded ``TransferArguments`` and
    per-target ``TrainingArguments`` (see :func:`parse_transfer_args`)."""
    i = next(i for i, a in enumerate(argv) if a == "--config" or a.startswith("--config="))
    path = argv[i].partition("=")[2] if "=" in argv[i] else (argv[i + 1] if i + 1 < len(argv) else "")
    if len(argv) != (1 if "=" in argv[i] else 2):
        raise ArgumentError("transfer --config MATRIX/arguments.json takes no other option (the record is the whole matrix)")
    try:
        recorded = json.loads(Path(path).read_text())["arguments"]
        (args,) = HfArgumentParser(EXPERIMENTS["transfer"].ARGUMENTS).parse_dict(recorded["TransferArguments"])
        per_target = {t: HfArgumentParser(TrainingArguments).parse_dict(a)[0] for t, a in recorded["TrainingArguments"].items()}
    except FileNotFoundError:
        raise ArgumentError(f"config file not found: {path or '(none given after --config)'}") from None
    except (KeyError, TypeError, OSError, json.JSONDecodeError) as err:
        raise ArgumentError(f"config file {path} is not the arguments.json of a transfer matrix ({first_line(err)})") from None
    except ValueError as err:
        raise ArgumentError(first_line(err)) from None
    for name, training_args in per_target.items():
        check_training_arguments(training_args, f" (target {name})")
    return args, per_target
