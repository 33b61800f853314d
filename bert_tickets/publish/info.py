"""``bert-tickets info PATH``: what a ticket directory, a level directory or a run directory holds
(metadata, per-tensor sparsity with layer collapse flagged, the run's summary). Reads files only:
no training code is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._io import read_json
from ..pruning import collapsed_tensors
from ..results import RunPaths, format_summary
from ..results.paths import TICKET_DIR
from ..ticket import CONFIG_FILE, TicketMask


@dataclass
class InfoArguments:
    """Arguments of ``bert-tickets info RUN_OR_TICKET_DIR``."""

    path: str = field(metadata={"help": "A ticket directory, a level directory (level_NN) or a run directory of 'find'."})


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
        per_seed = read_json(level_metrics).get("per_seed", {})
        metrics = next(iter(per_seed.values()), metrics)
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
    """The description of ``args.path``: a ticket, a level's ticket, or a run (its hash and
    schedule, the summary when the run finished, then every level's ticket).

    Raises:
        FileNotFoundError: the path is none of these.
        ValueError / OSError: an unreadable file (the message names it).
    """
    path = Path(args.path)
    if (path / CONFIG_FILE).is_file():
        return describe_ticket(path)
    if (path / TICKET_DIR / CONFIG_FILE).is_file():
        return describe_ticket(path / TICKET_DIR)
    paths = RunPaths(path)
    if not paths.run_config.is_file():
        raise FileNotFoundError(f"{path} is neither a ticket directory nor a bert-tickets run directory")
    config = read_json(paths.run_config)
    parts = [f"run {path} (hash {config['hash']}); schedule {config['schedule']}"]
    if paths.summary_json.is_file():
        parts.append(format_summary(read_json(paths.summary_json)))
    for level_dir in paths.level_dirs():
        if (level_dir / TICKET_DIR / CONFIG_FILE).is_file():
            parts += ["", describe_ticket(level_dir / TICKET_DIR)]
    return "\n".join(parts)


#: The argument dataclasses of ``info``.
ARGUMENTS = (InfoArguments,)

__all__ = ["ARGUMENTS", "InfoArguments", "describe_ticket", "run"]
