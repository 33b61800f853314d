"""The transfer matrix (Chen et al. 2020, Figure 2 and Table 2): every source ticket × target task
× seed fine-tuned from θ0 under the source mask with a fresh target head, next to the reference
rows that say whether a mask carries information at all — ``dense`` (no mask), ``own`` (the
target's own IMP ticket, when a source is on the target task), ``random`` (seeded global random
pruning), ``reinit`` θ0′ (own mask on re-initialised weights), ``weight_shuffle`` θ0″ (own mask
on θ0 with each prunable tensor's values permuted), ``magnitude`` (global magnitude pruning of θ0
itself, no training) and the masks of criteria for pruning at initialisation. Every row kind is
a registered class of :mod:`bert_tickets.results.rows`; this module names none of them.

Every cell goes through :func:`bert_tickets.training.finetune.finetune` with the target task's
budget (its ``tasks/<task>.toml`` defaults under the user's ``TrainingArguments``); cells are
named by the hash of their spec, skipped when complete, and the matrix files are rebuilt from
the complete cells after each one (:class:`bert_tickets.results.cells.MatrixRecord`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from .._io import first_line, json_hash, read_json, write_json
from ..pruning import add_cost, get_criterion, prune_ticket
from ..results import RunLock, RunPaths, RunRecord, argument_groups, check_output_dir, claim_directory, kinds
from ..results.cells import BASELINES, CELLS_DIR, CellResult, CellSpec, MatrixRecord
from ..results.figures import transfer_heatmap
from ..results.kinds import MATRIX_CONFIG_FILE
from ..results.rows import DENSE_ROW, SANITY_CHECKS, TICKET_ROW, CriterionRow, RowInputs, baseline_names, check_rows, get_check, get_row
from ..tasks import get_kind, get_task
from ..ticket import CONFIG_FILE, TicketMask, TicketMetadata, check_model_source, is_hub_repo_id, read_ticket_config, same_path
from ..training.finetune import finetune, global_batch_size, training_batches, training_hyperparameters
from ..training.weights import load_theta0
from .common import CriterionArguments

logger = logging.getLogger("bert_tickets")

EXECUTORS = ("local", "ray")
#: Folder of a matrix directory holding the masks the criterion rows found (one per search).
MASKS_DIR = "masks"


@dataclass
class TransferArguments(CriterionArguments):
    """Arguments of ``bert-tickets transfer`` (with ``TrainingArguments``; ``--output_dir`` is
    the matrix directory). The criterion options (:class:`~.common.CriterionArguments`) apply to
    the criterion rows (``--baselines snip synflow gem_miner``)."""

    tickets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Sources: IMP run directories (the level at --sparsity / --level), ticket directories, or Hub "
            "ticket ids (id or id@revision)."
        },
    )
    tasks: list[str] = field(default_factory=list, metadata={"help": "Target tasks (names as for find)."})
    sparsity: float | None = field(default=None, metadata={"help": "Sparsity of the matrix (fraction); default: the tickets' own."})
    level: int | None = field(default=None, metadata={"help": "Take this IMP level of every run-directory source instead of --sparsity."})
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"help": "Fine-tuning seeds of every cell."})
    baselines: list[str] = field(
        default_factory=lambda: list(BASELINES),
        metadata={
            "help": f"Reference rows (Table 2 of Chen et al. 2020; registered in bert_tickets.results.rows): any of "
            f"{', '.join(baseline_names())} ('own' is implicit; the old names oneshot and shuffle still work); the criterion "
            "rows are the masks those criteria find at θ0 of the target."
        },
    )
    sanity: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"Sanity checks (Frankle et al. 2021) of every ticket and criterion row: any of {', '.join(SANITY_CHECKS)} "
            "(layer_shuffle: the mask permuted within each tensor; reinit: the mask on re-initialised weights)."
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"aliases": ["--model"], "help": "θ0 (default: the base model the tickets name; they must agree)."}
    )
    data_dir: list[str] | None = field(
        default=None, metadata={"help": "Local data: one directory for every target, and/or TASK=DIR for one target (as for find)."}
    )
    max_seq_length: int | None = field(default=None, metadata={"help": "Tokens per example (default: each target's)."})
    max_train_samples: list[str] | None = field(
        default=None,
        metadata={"help": "Use only the first N training examples: N for every target, and/or TASK=N for one (e.g. sst2=4000)."},
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation examples of every target."})
    task_args: list[str] | None = field(
        default=None,
        metadata={
            "help": "TrainingArguments of one target, over its defaults and the options above: TASK:KEY=VALUE, "
            "e.g. mrpc:num_train_epochs=2 (targets differ in size, so their budgets may too)."
        },
    )
    tolerance: float = field(default=0.01, metadata={"help": "With one seed, matching = metric >= dense - tolerance."})
    executor: str = field(
        default="local",
        metadata={
            "help": "local: the cells one after another in this process. ray: every cell a Ray task (pip install 'bert-tickets[ray]')."
        },
    )
    ray_address: str | None = field(
        default=None, metadata={"help": "Ray cluster to join ('auto' = the running one); default: start a local Ray."}
    )
    gpus_per_cell: float = field(
        default=0.0,
        metadata={
            "help": "GPUs per Ray task: fractions pack several cells on one GPU; 2 or more (whole) train the cell data-parallel over them."
        },
    )
    cpus_per_cell: float = field(default=1.0, metadata={"help": "CPUs per Ray task."})
    max_retries: int = field(default=2, metadata={"help": "Ray retries of a cell whose worker died (preemption)."})
    save_trained: bool = field(
        default=False,
        metadata={
            "help": "Keep each cell's mask and fine-tuned model (for 'bert-tickets export MATRIX --cell ID'); not part of a cell's id."
        },
    )

    def criteria_used(self) -> list[str]:
        """The criteria of the ``--baselines`` criterion rows."""
        return [r.criterion for r in map(get_row, self.baselines) if isinstance(r, CriterionRow)]


@dataclass
class Source:
    """A source ticket of the matrix."""

    label: str
    origin: str
    ticket: TicketMask
    mask_hash: str = ""

    @property
    def task(self) -> str | None:
        return self.ticket.metadata.task


def criterion_ticket(
    dense: TicketMask,
    model,
    criterion: str,
    sparsity: float,
    options: Any,
    task,
    data,
    training_args,
    *,
    seed: int,
    tokenizer=None,
    scope: str = "global",
    max_tensor_sparsity: float | None = None,
) -> TicketMask:
    """The mask the registered ``criterion`` finds at θ0 of ``model`` (with its fresh head) at
    ``sparsity``, with ``options`` (its ``Options`` instance, ``None`` for defaults or none),
    selected over ``scope`` (``global``, optionally capped per tensor at ``max_tensor_sparsity``,
    or ``layerwise``; :func:`~bert_tickets.pruning.prune_ticket`). A
    criterion that needs ``batches`` scores on the training batches the cell's fine-tune would
    draw first with ``seed`` (as many as :meth:`~bert_tickets.pruning.PruningCriterion.batches_needed`
    says: snip ``score_batches``, gem_miner ``steps`` or ``epochs`` passes over one epoch of batches). Its cost and wall time are in
    the ticket's metadata (``cost``, ``criterion_options``; the wall time in ``extra["mask_wall_s"]``).

    Raises:
        ValueError: bad options (one line).
    """
    started = time.perf_counter()
    found = get_criterion(criterion)
    context: dict[str, Any] = {}
    if found.needs_data:
        context["batches"] = training_batches(
            model, task, data, training_args, seed=seed, num_batches=found.batches_needed(options), tokenizer=tokenizer
        )
    if options is not None:
        context["options"] = options
    ticket = prune_ticket(dense, model, sparsity, criterion, seed=seed, scope=scope, max_tensor_sparsity=max_tensor_sparsity, **context)
    ticket.metadata.criterion_options = found.options_dict(options)
    if found.Options is not None:
        ticket.metadata.extra["mask_wall_s"] = time.perf_counter() - started
    return ticket


def _mask_hash(ticket: TicketMask) -> str:
    h = hashlib.sha256()
    for name in sorted(ticket.masks):
        h.update(name.encode())
        h.update(np.packbits(ticket.masks[name].numpy().reshape(-1)).tobytes())
    return h.hexdigest()[:16]


def _run_level_ticket(run_dir: Path, sparsity: float | None, level: int | None) -> Path:
    paths = RunPaths(run_dir)
    read_json(paths.run_config)  # what says it is a run: a corrupt one is one line naming it
    found = {}
    for level_dir in paths.level_dirs():
        level_no = int(level_dir.name.rsplit("_", 1)[-1])
        cfg = paths.ticket(level_no) / CONFIG_FILE
        if cfg.is_file():
            found[level_no] = float(read_ticket_config(cfg, str(level_dir))["target_sparsity"])
    if level is not None:
        if level not in found:
            raise ValueError(f"{run_dir} has no level {level} (levels with a ticket: {', '.join(map(str, sorted(found))) or 'none'})")
        return paths.ticket(level)
    if sparsity is None:
        raise ValueError(f"{run_dir} is a run directory: give --sparsity or --level to choose its ticket")
    for lv, s in sorted(found.items()):
        if abs(s - sparsity) < 1e-9:
            return paths.ticket(lv)
    raise ValueError(f"{run_dir} has no level at sparsity {sparsity} (it has {', '.join(f'{s:g}' for _, s in sorted(found.items()))})")


def resolve_sources(args: TransferArguments) -> list[Source]:
    """Load every source ticket (run directory level, ticket directory or Hub id).

    Raises:
        ValueError / FileNotFoundError: a missing source, a run without a level at the sparsity
            (the message lists the ones it has), tickets at different sparsities, or tickets on
            different base models (or another one than ``--model``).
    """
    if not args.tickets:
        raise ValueError("give at least one source with --tickets")
    sources: list[Source] = []
    for origin in args.tickets:
        path = Path(origin)
        if RunPaths(path).run_config.is_file():
            level_dir = _run_level_ticket(path, args.sparsity, args.level)
            ticket = TicketMask.from_pretrained(level_dir)
            if not ticket.metadata.cost and ticket.metadata.level > 0:  # a run from before cost records
                add_cost(ticket.metadata, {"train_steps": RunRecord(path).lineage_train_steps(ticket.metadata.level)})
        elif path.is_dir() or not is_hub_repo_id(origin.split("@", 1)[0]):
            ticket = TicketMask.from_pretrained(path)
        else:
            repo, _, rev = origin.partition("@")
            ticket = TicketMask.from_pretrained(repo, revision=rev or None)
        label = ticket.metadata.task or path.name
        if any(s.label == label for s in sources):
            label = f"{label} ({path.name})"
        sources.append(Source(label, origin, ticket, _mask_hash(ticket)))
    sparsities = {round(s.ticket.metadata.target_sparsity, 9) for s in sources}
    target = args.sparsity if args.sparsity is not None else (sparsities.pop() if len(sparsities) == 1 else None)
    for s in sources:
        if target is None or abs(s.ticket.metadata.target_sparsity - target) > 1e-9:
            have = ", ".join(f"{x.label}: {x.ticket.metadata.target_sparsity:g}" for x in sources)
            raise ValueError(f"the source tickets must share one sparsity (--sparsity {args.sparsity}; tickets: {have})")
    bases = {s.ticket.metadata.base_model for s in sources}
    if len(bases) > 1:
        raise ValueError(f"the source tickets name different base models: {', '.join(sorted(map(str, bases)))}")
    base = bases.pop()
    if args.model_name_or_path is not None and not _same_model(args.model_name_or_path, base):
        raise ValueError(f"--model {args.model_name_or_path} is not the tickets' base model {base}")
    args.sparsity = target
    return sources


def _same_model(a: str, b: str | None) -> bool:
    return b is None or same_path(a, b)


def _data_dirs(entries: list[str] | None, targets: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {t: None for t in targets}
    for entry in entries or []:
        task, sep, path = entry.partition("=")
        if sep and task in out:
            out[task] = path
        elif sep and not os.path.isdir(entry):
            raise ValueError(f"--data_dir {entry}: {task!r} is not one of the target tasks ({', '.join(targets)})")
        else:
            for t in targets:
                out[t] = out[t] or entry
    return out


def _train_samples(entries: list[str] | None, targets: list[str]) -> dict[str, int | None]:
    """``--max_train_samples`` entries (``N`` for every target, ``TASK=N`` for one; a ``TASK=N``
    entry wins over a bare ``N``) -> target -> N or ``None`` (all).

    Raises:
        ValueError: an entry that is not a positive integer, or names a task that is not a target.
    """
    every: int | None = None
    per_task: dict[str, int] = {}
    for entry in entries or []:
        task, sep, value = entry.rpartition("=")
        if sep and task not in targets:
            raise ValueError(f"--max_train_samples {entry}: {task!r} is not one of the target tasks ({', '.join(targets)})")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"--max_train_samples {entry}: need a positive number of examples")
        if sep:
            per_task[task] = n
        else:
            every = n
    return {t: per_task.get(t, every) for t in targets}


@dataclass
class RecordedPaths:
    """How an existing matrix directory spells its local paths: the base model and the data
    directories of its spec, and the sources of its cells. A re-run that spells one of them
    otherwise (relative vs absolute, through a symlink) adopts the recorded spelling, so the
    matrix keeps its spec hash and every cell its id (:func:`_spelling`)."""

    base_model: str | None = None
    data_dirs: dict[str, str | None] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, root: str | os.PathLike) -> RecordedPaths:
        """The spellings recorded in ``root`` (nothing for a new directory; an unreadable file
        is left to the checks that read it)."""
        root, out = Path(root), cls()
        try:
            spec = read_json(root / MATRIX_CONFIG_FILE).get("spec", {}) if (root / MATRIX_CONFIG_FILE).is_file() else {}
            out.base_model = spec.get("base_model")
            dirs = spec.get("data", {}).get("data_dirs")
            out.data_dirs = dict(dirs) if isinstance(dirs, dict) else {}
        except (ValueError, OSError, AttributeError):
            pass
        sources = set()
        for path in (root / CELLS_DIR).glob("*/*.json"):  # cell.json and result.json: the cell's spec
            try:
                source = read_json(path).get("spec", {}).get("source")
            except (ValueError, OSError, AttributeError):
                continue
            if isinstance(source, str) and source:
                sources.add(source)
        out.sources = sorted(sources)
        return out


def _spelling(path: str | None, recorded: list[str | None]) -> str | None:
    """How a matrix names a local path (the base model, a data directory, a source): as an
    existing matrix recorded the same file or directory (so its ids stay), else resolved
    (absolute, symlinks followed: the same matrix from any working directory). A Hub id or a
    path that does not exist is unchanged."""
    if path is None or not os.path.exists(os.path.expanduser(path)):
        return path
    for old in recorded:
        if old is not None and same_path(old, path):
            return old
    return os.path.realpath(os.path.expanduser(path))


def check_matrix_arguments(args: TransferArguments) -> None:
    """Everything about ``transfer``'s own arguments that needs no file: targets, rows, seeds,
    executor and its resources, retries, tolerance, sequence length and evaluation examples.

    Raises:
        ValueError: one line naming the bad value.
    """
    if not args.tasks:
        raise ValueError("give at least one target task with --tasks")
    check_rows(args.baselines, args.sanity)
    if not args.seeds or any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds must be distinct integers >= 0, got {' '.join(map(str, args.seeds)) or 'none'}")
    if args.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {args.executor!r}; choose one of {', '.join(EXECUTORS)}")
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'bert-tickets[ray]' (or pip install 'ray>=2.9')") from None
        if args.ray_address:
            _ray_endpoint(args.ray_address)  # its form; whether a cluster answers: connect_ray
    if args.cpus_per_cell <= 0:
        raise ValueError(f"--cpus_per_cell must be > 0, got {args.cpus_per_cell}")
    if args.max_retries < 0:
        raise ValueError(f"--max_retries must be >= 0, got {args.max_retries}")
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0, got {args.tolerance}")
    for name in ("max_seq_length", "max_eval_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number, got {value}")
    if args.gpus_per_cell < 0 or (args.gpus_per_cell > 1 and args.gpus_per_cell != int(args.gpus_per_cell)):
        raise ValueError(f"--gpus_per_cell {args.gpus_per_cell}: a fraction up to 1, or a whole number of GPUs for a data-parallel cell")


@dataclass
class MatrixPlan:
    """What a transfer matrix computes, validated: its sources, targets, base model, data, the
    options of its criterion rows, its spec (what its hash covers) and every cell by id. Pure:
    made without training and without reading the training data (:meth:`build`).

    Attributes:
        args: the :class:`TransferArguments`.
        training_args: target -> ``TrainingArguments``.
        targets: target name -> its :class:`~bert_tickets.tasks.TaskSpec`.
        sources: the source tickets.
        base_model: θ0 (the tickets' base model, or ``--model``).
        data_dirs, train_samples: target -> local data directory / training subsample (or ``None``).
        prunable: (prunable patterns, exclude patterns) of the first source: the set the rows that
            make their own mask prune.
        criterion_configs: criterion -> its options instance (criterion rows).
        criterion_options: criterion -> its options as JSON (part of those rows' cell ids).
        spec: the matrix spec (base model, sparsity, budgets, data), hashed to name the matrix.
        cells: cell id -> :class:`~bert_tickets.results.cells.CellSpec`.
    """

    args: TransferArguments
    training_args: dict[str, Any]
    targets: dict[str, Any]
    sources: list[Source]
    base_model: str
    data_dirs: dict[str, str | None]
    train_samples: dict[str, int | None]
    prunable: tuple
    criterion_configs: dict[str, Any]
    criterion_options: dict[str, dict[str, Any]]
    spec: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, CellSpec] = field(default_factory=dict)

    @classmethod
    def build(cls, args: TransferArguments, training_args: dict[str, Any], recorded: RecordedPaths | None = None) -> MatrixPlan:
        """Validate and plan (see :func:`check_matrix_arguments`, :func:`resolve_sources`).
        Local paths (base model, data directories, sources) are resolved, or spelled as the
        matrix directory ``recorded`` them (:func:`_spelling`).

        Raises:
            ValueError / FileNotFoundError: a bad argument, source or data file, or a source mask
                that does not fit a target model (one line).
        """
        check_matrix_arguments(args)
        recorded = recorded or RecordedPaths()
        configs = args.criterion_configs()
        targets = {get_task(t).name: get_task(t) for t in args.tasks}
        sources = resolve_sources(args)
        for s in sources:
            s.origin = _spelling(s.origin, recorded.sources)
        first = sources[0].ticket.metadata
        data_dirs = _data_dirs(args.data_dir, list(targets))
        plan = cls(
            args,
            training_args,
            targets,
            sources,
            _spelling(args.model_name_or_path or first.base_model, [recorded.base_model]),
            {t: _spelling(d, [recorded.data_dirs.get(t)]) for t, d in data_dirs.items()},
            _train_samples(args.max_train_samples, list(targets)),
            (first.prunable_patterns, first.exclude_patterns),
            configs,
            {n: get_criterion(n).options_dict(o) for n, o in configs.items()},
        )
        plan.check_inputs()
        plan.spec = plan.matrix_spec()
        plan.cells = plan.plan()
        return plan

    def check_inputs(self) -> None:
        """θ0 (a directory or a Hub id), every target's data files, and every source mask on
        every target model."""
        check_model_source(self.base_model, "--model" if self.args.model_name_or_path else "the tickets' base model")
        for name, task in self.targets.items():
            if self.data_dirs[name] is not None:
                get_kind(task.kind).validate_inputs(task, self.data_dirs[name])
        for name, task in self.targets.items():
            probe = load_theta0(task, self.base_model, seed=0)
            for s in self.sources:
                try:
                    s.ticket.validate(probe)
                except ValueError as err:
                    raise ValueError(f"source {s.label} does not fit the {name} model: {err}") from None
            del probe

    def matrix_spec(self) -> dict[str, Any]:
        """The spec the matrix directory is named by (base model, sparsity, per-target budgets, data)."""
        samples = self.train_samples
        return {
            "base_model": self.base_model,
            "sparsity": self.args.sparsity,
            "training": {t: training_hyperparameters(a) for t, a in self.training_args.items()},
            "data": {
                "max_seq_length": self.args.max_seq_length,
                # one value when every target has the same (as before per-target budgets existed,
                # so such a matrix directory keeps its spec hash); else target -> value
                "max_train_samples": next(iter(samples.values())) if len(set(samples.values())) == 1 else samples,
                "max_eval_samples": self.args.max_eval_samples,
                "data_dirs": self.data_dirs,
            },
        }

    def context(self, spec: CellSpec) -> dict[str, Any]:
        """What besides the spec enters the cell's id: base model, source mask sha, the prunable
        set (rows that make their mask here), the row's own context (a criterion's options), the
        target's training hyperparameters and data options."""
        row = get_row(spec.row)
        mask = next((s.mask_hash for s in self.sources if s.origin == spec.source), None)
        return {
            **row.context(self.criterion_options),
            "base_model": self.base_model,
            "mask": mask,
            "prunable": self.prunable if row.builds_mask else None,
            "training": self.spec["training"][spec.target],
            "data": {
                **self.spec["data"],
                "max_train_samples": self.train_samples[spec.target],
                "data_dirs": self.data_dirs[spec.target],
            },
        }

    def own_source(self, target: str) -> Source | None:
        """The source ticket found on ``target`` itself (the ``own`` row), if any."""
        return next((s for s in self.sources if s.task == target), None)

    def row_specs(self, target: str, seed: int) -> list[CellSpec]:
        """The cells of one target and seed: every source ticket, each ``--baselines`` row (rows
        that need the own ticket only where the target has one) and each ``--sanity`` check of
        every row that finds a mask (labelled ``LABEL (check)``)."""
        s, own = self.args.sparsity, self.own_source(target)
        specs = [CellSpec(TICKET_ROW, src.label, src.origin, src.task, target, s, seed) for src in self.sources]
        for name in self.args.baselines:
            row = get_row(name)
            key = row.spec_key
            if not row.needs_own:
                specs.append(CellSpec(key, key, "", None, target, s if row.masked else 0.0, seed))
            elif own is not None:
                specs.append(CellSpec(key, key, own.origin, own.task, target, s, seed))
        for spec in list(specs):
            if get_row(spec.row).checkable:
                specs += [replace(spec, label=f"{spec.label} ({c})", sanity=c) for c in self.args.sanity]
        return specs

    def plan(self) -> dict[str, CellSpec]:
        """Every cell of the matrix, by cell id (no duplicates): :meth:`row_specs` for every
        target and seed; rows left out for want of an own ticket are logged."""
        cells: dict[str, CellSpec] = {}
        for target in self.targets:
            for seed in self.args.seeds:
                for spec in self.row_specs(target, seed):
                    cells[spec.cell_id(self.context(spec))] = spec
            left_out = [get_row(b).name for b in self.args.baselines if get_row(b).needs_own]
            if self.own_source(target) is None and left_out:
                logger.info("no source ticket on %s: its %s rows (which use the own mask) are left out", target, ", ".join(left_out))
        return cells


class CellRunner:
    """Runs one cell of a planned matrix: the target's data (prepared once per process), the
    cell's mask (its row's, with its sanity check) and starting weights, the fine-tune
    (:func:`~bert_tickets.training.finetune.finetune`), and its record.

    Args:
        plan: the :class:`MatrixPlan`.
        record: the matrix directory's :class:`~bert_tickets.results.cells.MatrixRecord`.
    """

    def __init__(self, plan: MatrixPlan, record: MatrixRecord):
        self.plan, self.record = plan, record
        self._data: dict[str, Any] = {}
        self._trivial: dict[str, Any] = {}
        self._tokenizer = None

    def __getstate__(self):
        # Shipped to Ray workers: without the prepared data and tokenizer (each worker makes its own).
        return {**self.__dict__, "_data": {}, "_tokenizer": None}

    def prepared(self, target: str):
        """The target's tokenized data (:meth:`~bert_tickets.tasks.TaskKind.prepare`), cached."""
        if target not in self._data:
            task, a = self.plan.targets[target], self.plan.args
            if self._tokenizer is None:
                self._tokenizer = AutoTokenizer.from_pretrained(self.plan.base_model)
            self._data[target] = get_kind(task.kind).prepare(
                task,
                self._tokenizer,
                self.plan.data_dirs[target],
                None,
                a.max_seq_length,
                self.plan.train_samples[target],
                a.max_eval_samples,
            )
        return self._data[target]

    def trivial_baseline(self, target: str):
        """The target task's :class:`~bert_tickets.tasks.TrivialBaseline` on its evaluation data
        (what every cell of that target must beat)."""
        if target not in self._trivial:
            task = self.plan.targets[target]
            self._trivial[target] = get_kind(task.kind).trivial_baseline(task, self.prepared(target))
        return self._trivial[target]

    def cell_ticket(self, spec: CellSpec, model) -> TicketMask:
        """The mask a cell trains under (``model`` holds θ0 of the target task, with the cell's
        fresh head): its row's mask (:meth:`bert_tickets.results.rows.MatrixRow.mask`), with the
        cell's ``--sanity`` check's change of the mask applied."""
        own = next((s.ticket for s in self.plan.sources if s.origin == spec.source), None)
        patterns, exclude = self.plan.prunable
        dense = TicketMask.dense(model, patterns, exclude, TicketMetadata(base_model=self.plan.base_model, task=spec.target))
        inputs = RowInputs(
            dense, model, spec.sparsity, spec.seed, own, lambda criterion: self.criterion_mask(spec, dense, model, criterion)
        )
        ticket = get_row(spec.row).mask(inputs)
        return get_check(spec.sanity).transform_mask(ticket, spec.seed) if spec.sanity else ticket

    def criterion_mask(self, spec: CellSpec, dense: TicketMask, model, criterion: str) -> TicketMask:
        """The mask ``criterion`` finds at θ0 for ``spec``'s cell. A search that costs something
        (training batches, score training or several rounds) runs once per (criterion, target,
        seed): the cell's sanity variants and a re-run reuse it from ``MATRIX/masks/<hash>/``
        (a criterion whose result does not depend on the seed, such as synflow, searches once for
        every seed)."""
        found = get_criterion(criterion)
        if not found.needs & {"batches", "trains_scores", "iterates"}:
            return prune_ticket(dense, model, spec.sparsity, criterion, seed=spec.seed)
        key_spec = {"row": spec.row, "target": spec.target, "sparsity": spec.sparsity, "seed": spec.seed if "seed" in found.needs else None}
        context = {k: v for k, v in self.plan.context(spec).items() if k != "mask"}
        cached = self.record.root / MASKS_DIR / json_hash({**key_spec, "context": context})
        if (cached / CONFIG_FILE).is_file():
            try:
                return TicketMask.from_pretrained(cached)
            except (ValueError, OSError) as err:  # searched again and rewritten below
                logger.warning("%s: %s: searching the mask again", cached, first_line(err))
        ticket = criterion_ticket(
            dense,
            model,
            criterion,
            spec.sparsity,
            self.plan.criterion_configs[criterion],
            self.plan.targets[spec.target],
            self.prepared(spec.target),
            self.plan.training_args[spec.target],
            seed=spec.seed,
            tokenizer=self._tokenizer,
        )
        if self.record.is_main:
            ticket.save_pretrained(cached)
        return ticket

    def run_cell(self, cell_id: str, spec: CellSpec, placement: dict[str, Any] | None = None) -> CellResult:
        """Fine-tune one cell and write its result (atomically, last; by the main process only).
        ``placement`` (where it ran) defaults to this process's."""
        task, training_args = self.plan.targets[spec.target], self.plan.training_args[spec.target]
        data = self.prepared(spec.target)
        started = time.perf_counter()
        model = load_theta0(task, self.plan.base_model, spec.seed)
        ticket = self.cell_ticket(spec, model)
        get_row(spec.row).prepare_weights(model, ticket, spec.seed)
        if spec.sanity:
            get_check(spec.sanity).prepare_weights(model, spec.seed)
        self.record.write_cell_spec(cell_id, spec, self.plan.context(spec))
        out = finetune(
            model,
            ticket,
            task,
            data,
            training_args,
            seed=spec.seed,
            output_dir=str(self.record.trainer_dir(cell_id)),
            tokenizer=self._tokenizer,
        )
        if self.plan.args.save_trained:
            self.record.save_trained(cell_id, ticket, out.model.state_dict())
        result = CellResult(
            spec,
            cell_id,
            task.primary_metric,
            float(out.metrics[task.primary_metric]),
            out.metrics,
            time.perf_counter() - started,
            placement={**(placement or _placement(self.plan.args.executor)), **_batch(training_args)},
            mask_cost=dict(ticket.metadata.cost),
        )
        self.record.write_result(result)
        return result


class TransferMatrix:
    """A transfer matrix (see the module docstring): its :class:`MatrixPlan` (``plan``; its
    attributes read through, e.g. ``matrix.cells``), the directory's record (``record``, checked
    against the plan's spec: ``spec_hash``), the :class:`CellRunner` (``runner``), the executors
    (:meth:`run`: local or Ray) and the tables (:meth:`write_outputs`).

    Args:
        args: the :class:`TransferArguments`.
        training_args: target task -> ``TrainingArguments`` (the target's defaults under the
            user's options); all share ``output_dir``, the matrix directory.

    Construction resolves and checks everything cheap — sources, targets, base model, data
    files, that every source mask fits every target model, the matrix directory's spec — and
    raises ``ValueError`` / ``FileNotFoundError`` with one line before any training.
    """

    #: What each Ray task runs (``None``: :func:`ray_cell`); a test may set a wrapper.
    ray_task = None

    def __init__(self, args: TransferArguments, training_args: dict[str, Any]):
        root = next(iter(training_args.values())).output_dir
        self.plan = MatrixPlan.build(args, training_args, RecordedPaths.of(root) if os.path.isdir(root) else None)
        first_args = training_args[next(iter(self.plan.targets))]
        check_output_dir(first_args.output_dir)
        claim_directory(first_args.output_dir, kinds.MATRIX)
        self.record = MatrixRecord(first_args.output_dir, is_main=first_args.process_index == 0)
        self.spec_hash = self.record.check_config(self.plan.spec)
        self.runner = CellRunner(self.plan, self.record)

    def __getattr__(self, name: str):
        if name in ("plan", "runner", "record") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.plan, name)

    def run_cell(self, cell_id: str, spec: CellSpec, placement: dict[str, Any] | None = None) -> CellResult:
        """One cell (:meth:`CellRunner.run_cell`)."""
        return self.runner.run_cell(cell_id, spec, placement)

    def cell_ticket(self, spec: CellSpec, model) -> TicketMask:
        """The mask a cell trains under (:meth:`CellRunner.cell_ticket`)."""
        return self.runner.cell_ticket(spec, model)

    def trivial_baseline(self, target: str):
        """The target's trivial baseline (:meth:`CellRunner.trivial_baseline`)."""
        return self.runner.trivial_baseline(target)

    def run(self) -> dict[str, Any]:
        """Run every missing cell and rebuild the matrix files after each; returns the matrix
        (see :func:`~bert_tickets.results.cells.build_matrix`). ``local``: one after another in
        this process; ``ray``: :func:`run_on_ray`."""
        self.record.write_config(self.plan.spec, self.spec_hash)
        todo = self.cells_to_run()
        logger.info(
            "transfer matrix %s: %d sources x %d targets x %d seeds + baselines = %d cells, %d to run, executor %s, output %s",
            self.spec_hash,
            len(self.plan.sources),
            len(self.plan.targets),
            len(self.plan.args.seeds),
            len(self.plan.cells),
            len(todo),
            self.plan.args.executor,
            self.record.root,
        )
        if self.plan.args.executor == "ray":
            run_on_ray(self, todo, self.ray_task)
            return self.write_outputs()
        for i, (cid, spec) in enumerate(todo.items(), 1):
            _log_cell(i, len(todo), self.run_cell(cid, spec))
            self.write_outputs()
        return self.write_outputs()

    def cells_to_run(self) -> dict[str, CellSpec]:
        """The cells that are not complete, and the complete ones whose files are corrupt
        (:meth:`~bert_tickets.results.cells.MatrixRecord.cell_problem`: a warning names the file;
        the cell is re-run and its files rewritten)."""
        todo = {}
        for cid, spec in self.plan.cells.items():
            problem = self.record.cell_problem(cid, trained=self.plan.args.save_trained)
            if problem is not None and problem != "not complete":
                logger.warning("cell %s: %s: re-running the cell", cid, problem)
            if problem is not None:
                todo[cid] = spec
        return todo

    def _readable(self, cell_id: str) -> CellResult | None:
        """The cell's result, or ``None`` when it is missing or (until it is re-run) corrupt."""
        try:
            return self.record.completed(cell_id)
        except ValueError:
            return None

    def write_outputs(self) -> dict[str, Any]:
        """Rebuild the results and matrix files (and the heatmap once dense cells exist) from the
        complete cells of this matrix."""
        done = [r for cid in self.plan.cells if (r := self._readable(cid)) is not None]
        trivial = {t: self.trivial_baseline(t) for t in {r.spec.target for r in done}}
        matrix = self.record.write_tables(done, self.plan.args.tolerance, trivial)
        if self.record.is_main and any(
            e.get("delta_dense") is not None for label, row in matrix["entries"].items() if label != DENSE_ROW for e in row.values()
        ):
            transfer_heatmap(matrix, self.record.root / "heatmap.png")
        return matrix


def _log_cell(i: int, n: int, result: CellResult) -> None:
    spec = result.spec
    logger.info(
        "cell %d/%d %s: %s on %s, seed %d: %s %.4f (%.0f s)",
        i,
        n,
        result.cell_id,
        spec.label,
        spec.target,
        spec.seed,
        result.metric,
        result.value,
        result.wall_s,
    )


#: Seconds to wait for a Ray cluster at ``--ray_address`` to accept a connection.
RAY_CONNECT_TIMEOUT_S = 5.0


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``ray://host[:port]`` address (client port 10001
    by default); ``None`` for ``auto`` / ``local`` (Ray finds those itself)."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, "10001" if address.startswith("ray://") else ""
    if not host or not port.isdigit():
        raise ValueError(f"--ray_address {address}: expected HOST:PORT (the head node's GCS address), ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)


def connect_ray(address: str | None, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """``ray.init`` quietly (Ray's own logs at error level, none forwarded from workers): join the
    cluster at ``address`` (``None``: ``RAY_ADDRESS`` if set, else start a local Ray). A
    ``host:port`` address must accept a TCP connection within ``timeout_s`` seconds first (Ray
    itself retries for minutes).

    Raises:
        ConnectionError: nothing answers at the address, or Ray cannot join it (one line naming
            the address).
        ValueError: an address that is not ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``.
    """
    import logging as _logging
    import socket

    import ray

    target = address or os.environ.get("RAY_ADDRESS")
    endpoint = _ray_endpoint(target) if target else None
    if endpoint is not None:
        try:
            socket.create_connection(endpoint, timeout=timeout_s).close()
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise ConnectionError(
                f"--ray_address {target}: no Ray cluster answers there within {timeout_s:g} s ({reason}); "
                "start one ('ray start --head') or leave --ray_address out to start a local Ray"
            ) from None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=_logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConnectionError(f"--ray_address {target or 'local'}: Ray cannot start or join the cluster ({first_line(err)})") from None


def check_ray_resources(cpus_per_cell: float, gpus_per_cell: float) -> None:
    """Refuse resources per cell that no node of the connected Ray cluster has (a task asking for
    them would wait forever): some alive node must have ``cpus_per_cell`` CPUs and
    ``gpus_per_cell`` GPUs (``ray.nodes()``, each node's total resources).

    Raises:
        ValueError: one line naming what was asked and what the cluster's nodes have.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0.0) >= cpus_per_cell and r.get("GPU", 0.0) >= gpus_per_cell for r in nodes):
        return
    have = "; ".join(f"{r.get('CPU', 0.0):g} CPUs, {r.get('GPU', 0.0):g} GPUs" for r in nodes) or "no alive node"
    raise ValueError(
        f"--cpus_per_cell {cpus_per_cell:g} --gpus_per_cell {gpus_per_cell:g}: no node of the Ray cluster has that many "
        f"(its {len(nodes)} node{'s' if len(nodes) != 1 else ''}: {have}); ask for at most what one node has"
    )


@contextlib.contextmanager
def ray_session(args: TransferArguments):
    """Ray for a matrix: joined or started (:func:`connect_ray`) unless this process is already
    connected, its resources checked against ``--cpus_per_cell`` / ``--gpus_per_cell``
    (:func:`check_ray_resources`); shut down on exit if started here.

    Raises:
        ConnectionError / ValueError: see those functions (one line, before any cell runs).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        connect_ray(args.ray_address)
    try:
        check_ray_resources(args.cpus_per_cell, args.gpus_per_cell)
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(matrix: TransferMatrix, todo: dict[str, CellSpec], task=None) -> None:
    """Every cell a Ray task (``num_cpus=--cpus_per_cell``, ``num_gpus=--gpus_per_cell`` —
    fractions pack several cells on one GPU, and Ray sets ``CUDA_VISIBLE_DEVICES`` per task —
    ``max_retries=--max_retries`` for workers that die, e.g. on preempted nodes). Joins
    ``--ray_address`` or starts a local Ray (:func:`ray_session`: a connection timeout, and the
    resources per cell checked against the cluster); the matrix itself is put in the object store
    once. The driver writes the matrix files as results arrive; each cell's ``result.json``
    is written by its worker (the directory must be on a filesystem every node sees).

    Args:
        task: the function each Ray task runs, ``task(matrix, cell_id, spec) -> CellResult``
            (default :func:`ray_cell`; a test may wrap it, e.g. to kill workers).

    Raises:
        ConnectionError / ValueError: no cluster at ``--ray_address``, or resources per cell no
            node has (one line, before any cell runs).
    """
    import ray

    args = matrix.plan.args
    with ray_session(args):
        remote = ray.remote(num_cpus=args.cpus_per_cell, num_gpus=args.gpus_per_cell, max_retries=args.max_retries)(task or ray_cell)
        shared = ray.put(matrix)
        pending = {remote.remote(shared, cid, spec): cid for cid, spec in todo.items()}
        for i in range(1, len(todo) + 1):
            ready, _ = ray.wait(list(pending), num_returns=1)
            del pending[ready[0]]
            _log_cell(i, len(todo), ray.get(ready[0]))
            matrix.write_outputs()


def _placement(executor: str) -> dict[str, Any]:
    """Where a cell ran: executor, host, pid, ``CUDA_VISIBLE_DEVICES`` and (on Ray) the GPU ids."""
    import socket

    out: dict[str, Any] = {
        "executor": executor,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if executor == "ray":
        import ray

        out["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    return out


def _batch(training_args) -> dict[str, int]:
    """The data-parallel processes of a cell and its global batch (examples per optimizer step)."""
    return {"world_size": max(1, training_args.world_size), "global_train_batch_size": global_batch_size(training_args)}


_WORKER_DATA: dict[tuple[str, str], Any] = {}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _data_parallel_process(rank: int, world: int, port: int, matrix: TransferMatrix, cell_id: str, spec: CellSpec, placement: dict) -> None:
    """One of the ``world`` processes of a data-parallel cell (``torch.multiprocessing.spawn``
    target): the environment ``torch.distributed`` / the Trainer read, fresh
    ``TrainingArguments`` (so the device and process group are set up here, not in the parent),
    and only rank 0 writes."""
    import dataclasses

    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    backend = None if torch.cuda.is_available() else "gloo"  # CPU (or logical Ray GPUs): gloo
    plan = matrix.plan
    plan.training_args = {t: dataclasses.replace(a, ddp_backend=a.ddp_backend or backend) for t, a in plan.training_args.items()}
    matrix.record.is_main = rank == 0
    try:
        matrix.run_cell(cell_id, spec, placement=placement)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def ray_cell(matrix: TransferMatrix, cell_id: str, spec: CellSpec) -> CellResult:
    """A Ray task: one cell (prepared data cached per worker process and matrix spec).

    With ``--gpus_per_cell`` of 2 or more (a whole number) the cell trains data-parallel: the task
    spawns that many processes (``torch.multiprocessing.spawn``; ``torch.distributed`` over NCCL
    on GPUs, gloo without), one per GPU Ray gave it, each a rank of the Trainer's DDP; the
    per-device batch is ``per_device_train_batch_size`` as everywhere, so the global batch is
    that times the GPUs (``world_size`` and ``global_train_batch_size`` in the result's placement).
    """
    world = int(matrix.args.gpus_per_cell) if matrix.args.gpus_per_cell >= 2 else 1
    if world > 1:
        import torch.multiprocessing as mp

        placement = _placement("ray")
        mp.spawn(_data_parallel_process, args=(world, _free_port(), matrix, cell_id, spec, placement), nprocs=world, join=True)
        result = matrix.record.completed(cell_id)
        if result is None:
            raise RuntimeError(f"data-parallel cell {cell_id}: the processes finished without writing {matrix.record.cell_dir(cell_id)}")
        return result
    key, runner = (matrix.spec_hash, spec.target), matrix.runner
    if key in _WORKER_DATA:
        runner._data[spec.target], runner._tokenizer = _WORKER_DATA[key]
    result = runner.run_cell(cell_id, spec)
    _WORKER_DATA[key] = (runner._data[spec.target], runner._tokenizer)
    return result


#: The argument dataclasses of ``transfer`` (before ``TrainingArguments``).
ARGUMENTS = (TransferArguments,)


#: File of a matrix directory recording the command's typed arguments (not part of any hash).
ARGUMENTS_FILE = "arguments.json"


def recorded_arguments(args: TransferArguments, training_args: dict[str, Any]) -> dict[str, Any]:
    """The ``transfer`` arguments as recorded in ``MATRIX/arguments.json``: ``{"arguments":
    {"TransferArguments": {every field}, "TrainingArguments": {target: {what differs from the
    defaults, and output_dir}}}}`` (:func:`~bert_tickets.results.argument_groups`); ``bert-tickets
    transfer --config MATRIX/arguments.json`` parses them back to the same matrix."""
    return {
        "arguments": {
            **argument_groups(args),
            "TrainingArguments": {t: argument_groups(a, keep=("output_dir",))["TrainingArguments"] for t, a in training_args.items()},
        }
    }


def run(args: TransferArguments, training_args: dict[str, Any]) -> dict[str, Any]:
    """The ``transfer`` experiment: validate, lock the matrix directory, record the arguments
    (:func:`recorded_arguments`), run the missing cells.

    Returns:
        The matrix (:func:`~bert_tickets.results.cells.build_matrix`).

    Raises:
        ValueError / FileNotFoundError: bad arguments, sources, data or matrix directory (one
            line, before any training).
        ConnectionError / ValueError: ``--executor ray``: no cluster at ``--ray_address``, or
            resources per cell that no node has (one line, before anything is written).
        RunLockedError: another process holds the matrix directory.
    """
    matrix = TransferMatrix(args, training_args)
    # Ray is joined (and its resources checked) before anything is written
    with ray_session(args) if args.executor == "ray" else contextlib.nullcontext():
        with RunLock(matrix.record.root, enabled=matrix.record.is_main):
            if matrix.record.is_main:
                write_json(matrix.record.root / ARGUMENTS_FILE, recorded_arguments(args, training_args))
            return matrix.run()


__all__ = [
    "ARGUMENTS",
    "ARGUMENTS_FILE",
    "CellRunner",
    "MatrixPlan",
    "Source",
    "TransferArguments",
    "TransferMatrix",
    "check_matrix_arguments",
    "check_ray_resources",
    "connect_ray",
    "ray_cell",
    "recorded_arguments",
    "resolve_sources",
    "run",
    "ray_session",
    "run_on_ray",
]
