"""``bert-tickets info PATH``: what a ticket directory, a level directory or a run directory holds.

A run is summed up in a few lines (its hash, task and θ0, the levels table, the best matching
level); ``--verbose`` adds every level's ticket with its per-tensor sparsity (layer collapse
flagged), which a ticket or level directory always shows. A file that cannot be read (a corrupt
``metrics.json``) is marked ``unreadable: <file>: <reason>`` where it belongs, and the rest is
still shown. Reads files only: no training code is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._io import first_line, read_json
from ..pruning import collapsed_tensors
from ..results import RunPaths, RunRecord, format_summary
from ..results.paths import TICKET_DIR
from ..ticket import CONFIG_FILE, TicketMask


@dataclass
class InfoArguments:
    """Arguments of ``bert-tickets info RUN_OR_TICKET_DIR``."""

    path: str = field(metadata={"help": "A ticket directory, a level directory (level_NN) or a run directory of 'find'."})
    verbose: bool = field(
        default=False, metadata={"help": "For a run: also every level's ticket with its per-tensor sparsity (a ticket shows it always)."}
    )


def unreadable(path: str | Path, err: BaseException) -> str:
    """``unreadable: <file>: <reason>`` for a file that could not be read (``err``'s first line,
    without the file name it starts with)."""
    reason = first_line(err)
    for prefix in (f"{path} ", "is "):
        reason = reason.removeprefix(prefix)
    return f"unreadable: {path}: {reason}"


def describe_ticket(directory: str | Path) -> str:
    """Metadata and per-tensor sparsity (fractions) of the ticket saved in ``directory``.

    Raises:
        FileNotFoundError / ValueError: see :meth:`TicketMask.from_pretrained`.
    """
    directory = Path(directory)
    ticket = TicketMask.from_pretrained(directory)
    m = ticket.metadata
    lines = [
        f"ticket: {directory}",
        f"  base model: {m.base_model} (revision {m.base_model_revision})",
        f"  task: {m.task}   level: {m.level}   schedule: {m.schedule}   pruning: {m.pruning_method} ({m.pruning_scope}"
        + (f", max tensor sparsity {m.max_tensor_sparsity}" if m.max_tensor_sparsity is not None else "")
        + f")   rewind step: {m.rewind_step}",
        f"  excluded from pruning: {', '.join(m.exclude_patterns) or 'nothing'}",
        f"  sparsity: {ticket.sparsity:.6f} achieved ({ticket.num_pruned:,} of {ticket.num_prunable:,} prunable weights pruned), "
        f"{m.target_sparsity:.6f} target",
    ]
    typed = {
        "criterion options": m.criterion_options,
        "cost": m.cost,
        "pruned from level": m.parent_level,
        "lineage": m.lineage,
        "data split": m.data_split,
        "sanity transform": m.sanity,
    }
    lines += [f"  {key}: {value}" for key, value in typed.items() if value not in (None, {}, [])]
    for key, value in m.extra.items():
        if key != "metrics":
            lines.append(f"  {key}: {value}")
    # a level's metrics live in its metrics.json (first seed); tickets written before format 2
    # carried them in extra["metrics"]
    level_metrics = directory.parent / "metrics.json"
    metrics = m.extra.get("metrics")
    if level_metrics.is_file():
        try:
            per_seed = read_json(level_metrics, "re-run the same find command to re-train that level").get("per_seed", {})
            metrics = next(iter(per_seed.values()), metrics)
        except (ValueError, AttributeError) as err:
            lines.append(f"  dev metrics: {unreadable(level_metrics, err)}")
            metrics = None
    if metrics:
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        lines.append(f"  dev metrics: {shown}")
    width = max(len(n) for n in ticket.masks)
    lines.append(f"  {'tensor':<{width}}  {'shape':>12}  sparsity")
    collapsed = collapsed_tensors(ticket.per_tensor_sparsity())
    for name, sp in ticket.per_tensor_sparsity().items():
        shape = "x".join(map(str, ticket.masks[name].shape))
        flag = "  <- collapsed (layer collapse)" if name in collapsed else ""
        lines.append(f"  {name:<{width}}  {shape:>12}  {sp:.4f}{flag}")
    return "\n".join(lines)


def run(args: InfoArguments) -> str:
    """The description of ``args.path``: a ticket, a level's ticket, or a run (:func:`describe_run`).

    Raises:
        FileNotFoundError: the path is none of these.
        ValueError / OSError: an unreadable ticket or ``run_config.json`` (the message names it).
    """
    path = Path(args.path)
    if (path / CONFIG_FILE).is_file():
        return describe_ticket(path)
    if (path / TICKET_DIR / CONFIG_FILE).is_file():
        return describe_ticket(path / TICKET_DIR)
    return describe_run(path, verbose=args.verbose)


def describe_run(path: str | Path, verbose: bool = False) -> str:
    """A run in a few lines: its hash and schedule; task and θ0; the levels table (the summary's
    when the run finished, else the complete levels' rows); each level whose ``metrics.json``
    cannot be read, marked ``unreadable``; the best matching level. With ``verbose`` every
    level's ticket follows (:func:`describe_ticket`).

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: ``run_config.json`` unreadable (one line naming it).
    """
    path = Path(path)
    paths = RunPaths(path)
    if not paths.run_config.is_file():
        raise FileNotFoundError(f"{path} is neither a ticket directory nor a bert-tickets run directory")
    config = read_json(paths.run_config)
    hp = config.get("hyperparameters", {})
    model = hp.get("model", {})
    planned = config.get("schedule")
    schedule = hp.get("imp", {}).get("schedule", "linear")
    schedule += f", levels at sparsity {', '.join(f'{x:.4g}' for x in planned)}" if planned else " (levels chosen as the run goes)"
    lines = [
        f"run {path} (hash {config['hash']}); schedule {schedule}",
        f"task {hp.get('data', {}).get('task')}; θ0 {model.get('model_name_or_path')} (revision {model.get('revision')})",
    ]
    record = RunRecord(path)
    levels, problems = {}, []
    for level_dir in paths.level_dirs():
        if not level_dir.name.removeprefix("level_").isdigit():
            continue
        level = int(level_dir.name.removeprefix("level_"))
        try:
            done = record.completed_level(level)
        except ValueError as err:
            problems.append(f"level {level}: {unreadable(paths.metrics(level), err)}")
            continue
        if done is not None:
            levels[level] = done
    summary, table = None, None
    if paths.summary_json.is_file():
        try:
            summary = read_json(paths.summary_json, "re-run the same find command to rewrite it")
            table = format_summary(summary)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            reason = err if isinstance(err, ValueError) else ValueError(f"is corrupt (no summary table: {err!r})")
            problems.append(f"summary: {unreadable(paths.summary_json, reason)}")
            summary = None
    if table is not None:
        lines.append(table)
    else:
        lines.append(
            "the run has not finished (no summary.json): Δ vs dense and matching come with it"
            if not paths.summary_json.is_file()
            else "complete levels (from their metrics.json):"
        )
        metric = next(iter(levels.values())).metric if levels else "metric"
        lines.append(f"{'level':>5}  {'sparsity':>8}  {metric:>22}")
        for r in levels.values():
            value = f"{r.mean:.4f}" + (f" ± {r.std:.4f}" if r.std is not None else "")
            lines.append(f"{r.level:>5}  {r.sparsity:>8.4f}  {value:>22}")
    lines += problems
    if summary is not None:
        matching = [r for r in summary.get("levels", []) if r["level"] > 0 and r.get("matching") and r.get("beats_trivial") is not False]
        best = max(matching, key=lambda r: r["sparsity"], default=None)
        lines.append(
            f"best matching level: {best['level']} (sparsity {best['sparsity']:.4f}): {paths.ticket(best['level'])}"
            if best is not None and summary.get("dense_learned") is not False
            else "best matching level: none"
        )
    tickets = [d for d in paths.level_dirs() if (d / TICKET_DIR / CONFIG_FILE).is_file()]
    if not verbose:
        if tickets:
            lines.append(f"tickets: {len(tickets)} (level_NN/ticket); per-tensor sparsity: bert-tickets info {path} --verbose")
        return "\n".join(lines)
    for level_dir in tickets:
        try:
            lines += ["", describe_ticket(level_dir / TICKET_DIR)]
        except (ValueError, OSError) as err:
            lines += ["", f"ticket: {unreadable(level_dir / TICKET_DIR, err)}"]
    return "\n".join(lines)


#: The argument dataclasses of ``info``.
ARGUMENTS = (InfoArguments,)

__all__ = ["ARGUMENTS", "InfoArguments", "describe_run", "describe_ticket", "run", "unreadable"]
