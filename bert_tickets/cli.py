"""The ``bert-tickets`` command line: one registry of subcommands (:data:`COMMANDS`) and one
dispatcher (:func:`main`).

Each subcommand is a :class:`Command`: the module that holds its argument dataclasses
(``ARGUMENTS``) and its one ``run`` function (an experiment of :mod:`bert_tickets.experiments` or
a module of :mod:`bert_tickets.publish`), how its command line is parsed (``HfArgumentParser``
over those dataclasses — for the experiments that train, together with
``transformers.TrainingArguments`` and the task's defaults, :mod:`bert_tickets.arguments`) and
what it prints. Bad input prints one line, ``bert-tickets CMD: error: <message>``, and exits
with status 2 (:func:`fail`); Ctrl-C exits with 130 and says how to resume. ``info`` and
``push`` do not import the training code.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import first_line, read_json
from .results import RunLockedError, RunPaths, format_summary

logger = logging.getLogger("bert_tickets")

USAGE = """usage: bert-tickets {find,info,push,transfer,plot,stability,export,prune-at-init,distill} ...

  bert-tickets find [--task rte] [--model bert-base-uncased] [--output_dir runs/rte] [options]
  bert-tickets find --config RUN/run_config.json [options]   (or: bert-tickets find config.json)
  bert-tickets info RUN_OR_TICKET_DIR [--verbose]
  bert-tickets push RUN_DIR --repo-id ID [--level N | --all-levels] [--private] [--token TOKEN]
  bert-tickets transfer --tickets SRC [SRC ...] --tasks T [T ...] [--sparsity S] [--seeds 1 2 3] [--output_dir transfer]
  bert-tickets plot RUN_DIR [--out PNG] [--transfer MATRIX_DIR ...]
  bert-tickets stability RUN_DIR --level L [--rewind_step K] [--data_seeds 1 2] [--points 11] | --successive
  bert-tickets export RUN_DIR --level L --output_dir DIR | MATRIX_DIR --cell ID --output_dir DIR
  bert-tickets prune-at-init --task stsb --criterion {snip,synflow,gem_miner} --sparsity 0.5 [--sanity layer_shuffle reinit] [--no_finetune]
  bert-tickets distill --task sst2 --model M --per_class N [--steps K] [--outer_steps S] --output_dir DIR

Run 'bert-tickets COMMAND --help' for every option (for find: IMP, data, model and all TrainingArguments)."""

#: What bad input raises before any work (printed as one line, exit status 2).
#: ``arguments.ArgumentError`` is a ``ValueError``.
INPUT_ERRORS = (ValueError, FileNotFoundError, OSError, RunLockedError)


@dataclass(frozen=True)
class Command:
    """One subcommand of ``bert-tickets``.

    Attributes:
        name: the subcommand (``find``, ``info``, ...).
        module: the module holding ``ARGUMENTS`` (its argument dataclasses) and ``run`` (imported
            when the command runs, so ``info`` never imports the training code).
        printer: ``printer(result, *arguments)`` prints what ``run`` returned (``None``: nothing).
        parse: ``parse(argv) -> tuple`` of the arguments ``run`` takes; ``None``: one
            ``HfArgumentParser`` over ``ARGUMENTS``.
        positional: the field a leading argument without ``--`` fills (``RUN_DIR``).
        logs: whether progress is logged to stderr.
    """

    name: str
    module: str
    printer: Callable[..., None] | None = None
    parse: Callable[[list[str]], tuple] | None = None
    positional: str | None = None
    logs: bool = True

    @property
    def arguments(self) -> tuple[type, ...]:
        """The command's argument dataclasses (``TrainingArguments`` is added by the experiments that train)."""
        return importlib.import_module(self.module).ARGUMENTS

    @property
    def run(self) -> Callable[..., Any]:
        """The command's one ``run`` function."""
        return importlib.import_module(self.module).run

    def parse_args(self, argv: list[str]) -> tuple:
        """The arguments of :attr:`run` from ``argv`` (argparse errors exit with status 2)."""
        if self.positional and argv and not argv[0].startswith("-"):
            argv = [f"--{self.positional}", *argv]
        if self.parse is not None:
            return self.parse(argv)
        from transformers import HfArgumentParser

        return tuple(HfArgumentParser(self.arguments, prog=f"bert-tickets {self.name}").parse_args_into_dataclasses(args=argv))

    def __call__(self, argv: list[str]) -> int:
        """Parse, run, print; the exit status."""
        if self.logs:
            _setup_logging()
        try:
            args = self.parse_args(argv)
            result = self.run(*args)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2, printed by argparse)
            return 0 if exc.code in (0, None) else 2
        except INPUT_ERRORS as err:
            return fail(self.name, err)
        if self.printer is not None:
            self.printer(result, *args)
        return 0


def fail(command: str, err: BaseException) -> int:
    """Print ``bert-tickets COMMAND: error: <first line of err>`` to stderr; returns 2."""
    print(f"bert-tickets {command}: error: {first_line(err)}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------ parsers
def parse_find_args(argv: list[str]) -> tuple:
    """``find`` arguments as (model, data, imp, training) dataclasses
    (:func:`bert_tickets.arguments.parse_experiment_args`).

    Raises:
        ArgumentError: unknown task, a bad config file or invalid values (one line).
    """
    from .arguments import parse_experiment_args

    return parse_experiment_args("find", argv)


def _parse_prune_at_init(argv: list[str]) -> tuple:
    from .arguments import parse_experiment_args

    return parse_experiment_args("prune-at-init", argv)


def _parse_transfer(argv: list[str]) -> tuple:
    from .arguments import parse_transfer_args

    return parse_transfer_args(argv)


# ------------------------------------------------------------------------------ printers
def _print_distill(card: dict, *args) -> None:
    history = card.get("loss_history") or []
    shown = {k: v for k, v in card.items() if k not in ("loss_history", "initial_training_indices", "versions")}
    print(json.dumps(shown, indent=1))
    if history:
        print(f"outer loss: first {history[0]:.4f}, last {history[-1]:.4f} ({len(history)} outer steps)")


def _print_transfer(result: dict, args, training_args: dict) -> None:
    first = next(iter(training_args.values()))
    if first.process_index == 0:
        print((Path(first.output_dir) / "matrix.md").read_text() if result["rows"] else "no complete cell")


def _print_prune_at_init(result: dict, model_args, data_args, args, training_args) -> None:
    if result["matrix"] is not None:
        from .experiments.prune_at_init import REPORT_FILE

        print((Path(training_args.output_dir) / REPORT_FILE).read_text())
        return
    t = result["ticket"]
    print(
        f"{args.criterion} ticket at sparsity {t.sparsity:.4f} ({t.num_pruned}/{t.num_prunable} pruned): {training_args.output_dir}/ticket"
    )


def _path_table(result: dict) -> list[str]:
    """The evaluated points of a linear path (``stability``'s result): one row per point with α,
    the task's primary metric and the eval loss there."""
    metric = result["metric"]
    width = max(len(metric), 8)
    lines = [f"{'α':>6}  {metric:>{width}}  {'eval loss':>9}"]
    for p in result["points"]:
        lines.append(f"{p['alpha']:>6.3f}  {p['metrics'][metric]:>{width}.4f}  {p['metrics']['loss']:>9.4f}")
    return lines


def _print_stability(result: dict, args) -> None:
    if args.successive:
        for lv, r in sorted(result["pairs"].items()):
            print(f"trained level {lv - 1} (α = 0) -> trained level {lv} (α = 1):")
            print("\n".join(_path_table(r)))
            print(f"levels {lv - 1} -> {lv}: barrier {r['metric']} {r['barrier'][r['metric']]:.4f}, loss {r['barrier']['loss']:.4f}")
        if result["missing"]:
            print(f"no trained weights kept for the pairs ending at level {', '.join(map(str, result['missing']))}")
        paths = RunPaths(args.run_dir)
        if paths.summary_json.is_file():
            print(format_summary(read_json(paths.summary_json)))
        return
    seeds = result["data_seeds"]
    print(f"copy with data seed {seeds[0]} (α = 0) -> copy with data seed {seeds[1]} (α = 1):")
    print("\n".join(_path_table(result)))
    print(
        f"level {result['level']} (sparsity {result['sparsity']:.4f}) from rewind step {result['rewind_step']}: "
        f"barrier {result['metric']} {result['barrier'][result['metric']]:.4f}, loss {result['barrier']['loss']:.4f}"
    )


def _print_export(out, args) -> None:
    print(f"{f'cell {args.cell}' if args.cell else f'level {args.level}'} of {args.run_dir} exported to {out}")
    if getattr(args, "compact", False):
        config = json.loads((Path(out) / "config.json").read_text())
        info = config.get("bert_tickets_compact", {})
        size = sum(p.stat().st_size for p in Path(out).glob("*.safetensors"))
        print(
            f"compact: heads per layer {info.get('heads_per_layer')}, FFN width per layer {info.get('intermediate_per_layer')}; "
            f"{info.get('parameters', 0):,} parameters (masked model {info.get('parameters_masked_model', 0):,}); "
            f"weights {size / 2**20:.1f} MiB; max |Δ logits| vs the masked model {info.get('max_abs_logit_difference', float('nan')):.2e} "
            f"on {info.get('checked_examples')} evaluation examples"
        )


def _print_push(pushed, args) -> None:
    from .publish import describe_pushed

    print(describe_pushed(pushed, args.repo_id if args.save_dir is None else f"{args.save_dir} ({args.repo_id})"))


#: Every subcommand, by name.
COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("find", "bert_tickets.experiments.imp", parse=parse_find_args),
        Command("info", "bert_tickets.publish.info", lambda text, args: print(text), positional="path", logs=False),
        Command("push", "bert_tickets.publish.push", _print_push, positional="run_dir"),
        Command("transfer", "bert_tickets.experiments.transfer", _print_transfer, parse=_parse_transfer),
        Command("plot", "bert_tickets.publish.plot", lambda out, args: print(out), positional="run_dir", logs=False),
        Command("stability", "bert_tickets.experiments.stability", _print_stability, positional="run_dir"),
        Command("export", "bert_tickets.publish.export", _print_export, positional="run_dir", logs=False),
        Command("prune-at-init", "bert_tickets.experiments.prune_at_init", _print_prune_at_init, parse=_parse_prune_at_init),
        Command("distill", "bert_tickets.experiments.distill", _print_distill),
    )
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging() -> None:
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s bert-tickets: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    # Under a launcher (accelerate, torchrun) every rank runs this: only rank 0 logs progress.
    logger.setLevel(logging.INFO if int(os.environ.get("RANK", "0") or 0) == 0 else logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bert-tickets`` console script: dispatch ``argv[0]`` to its
    :class:`Command`; the exit status (0 done, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"bert-tickets: error: unknown command {name!r} (choose {', '.join(COMMANDS)})\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return command(rest)
    except KeyboardInterrupt:
        # Every file of a run is written whole (temporary file + rename), so whatever was
        # finished is kept and a re-run continues from it.
        print(f"bert-tickets {name}: interrupted — re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
