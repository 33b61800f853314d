"""``bert-tickets prune-at-init``: a ticket found at θ0 by a criterion (SNIP, SynFlow, Gem-Miner,
or one-shot magnitude / random) in one command, then fine-tuned like a transfer cell next to its
sanity checks (Frankle et al. 2021, *Pruning Neural Networks at Initialization: Why are We
Missing the Mark?*, Section 5).

Layout of ``--output_dir``::

    ticket/          the mask (a ticket directory; metadata names the criterion, its options,
                     its cost in steps and scoring passes, and the wall time of the search)
    finetune/        a transfer matrix on the task: the ticket (its own row), --baselines and
                     the --sanity rows (see :mod:`.transfer`); cells resume as there
    report.md        the matrix and, per sanity check, whether the mask beats it

A re-run with the same arguments reuses the ticket and every finished cell; other mask
arguments in the same directory are refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from .._io import atomic_write_text
from ..pruning import CRITERIA_REGISTRY, at_init_criteria, collapse_options_hint, collapsed_tensors, get_criterion
from ..pruning.select import SCOPES
from ..results import check_output_dir, claim_directory, kinds
from ..results.paths import TICKET_DIR
from ..results.rows import SANITY_CHECKS, CriterionRow, check_rows, get_row
from ..tasks import get_kind, get_task
from ..ticket import (
    CONFIG_FILE,
    DEFAULT_PRUNABLE_PATTERNS,
    TicketMask,
    TicketMetadata,
    check_model_source,
    local_checkpoint_revision,
    resolve_model_path,
    same_path,
)
from ..training.weights import load_theta0
from .common import CriterionArguments, DataArguments, ModelArguments
from .transfer import TransferArguments, TransferMatrix, criterion_ticket

logger = logging.getLogger("bert_tickets")

FINETUNE_DIR = kinds.FINETUNE_DIR
REPORT_FILE = kinds.REPORT_FILE


@dataclass
class PruneAtInitArguments(CriterionArguments):
    """Arguments of ``bert-tickets prune-at-init`` (with the model, data and ``TrainingArguments``;
    ``--output_dir`` holds the ticket and its fine-tunes)."""

    criterion: str = field(
        default="synflow",
        metadata={
            "help": f"How the mask is found at θ0: any registered criterion ({', '.join(CRITERIA_REGISTRY.names())}; "
            f"designed for it: {', '.join(at_init_criteria())})."
        },
    )
    sparsity: float = field(default=0.5, metadata={"help": "Fraction of the prunable weights removed, in (0, 1)."})
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"help": "Fine-tuning seeds (each also seeds its own search)."})
    sanity: list[str] = field(
        default_factory=lambda: ["layer_shuffle"],
        metadata={"help": f"Sanity checks fine-tuned next to the mask: any of {', '.join(SANITY_CHECKS)}, or none."},
    )
    baselines: list[str] = field(
        default_factory=lambda: ["dense"], metadata={"help": "Rows fine-tuned next to it (any transfer baseline or criterion)."}
    )
    no_finetune: bool = field(default=False, metadata={"help": "Stop after writing the ticket."})
    exclude: list[str] = field(default_factory=list, metadata={"help": "Regexes of prunable weights to leave out (e.g. the pooler)."})
    pruning_scope: str = field(default="global", metadata={"help": f"Selection scope: {', '.join(SCOPES)}."})
    max_tensor_sparsity: float | None = field(default=None, metadata={"help": "Per-tensor cap of global selection (fraction)."})
    tolerance: float = field(default=0.01, metadata={"help": "With one seed: the margin of matching and of 'beats its sanity check'."})

    def __post_init__(self):
        if self.criterion not in CRITERIA_REGISTRY:
            raise ValueError(f"--criterion {self.criterion!r}: choose one of {', '.join(CRITERIA_REGISTRY.names())}")
        self.criterion = CRITERIA_REGISTRY.canonical(self.criterion)
        if CRITERIA_REGISTRY.get(self.criterion).granularities is not None:
            raise ValueError(f"--criterion {self.criterion} scores whole heads / neurons of a trained model: use find --granularity")
        if not (0.0 < self.sparsity < 1.0):
            raise ValueError(f"--sparsity must be a fraction in (0, 1), got {self.sparsity}")
        if list(self.sanity) == ["none"]:
            self.sanity = []
        check_rows(self.baselines, self.sanity)
        self.criterion_configs()  # the options of every criterion used, checked before any work
        if self.pruning_scope not in SCOPES:
            raise ValueError(f"--pruning_scope {self.pruning_scope!r}: choose one of {', '.join(SCOPES)}")
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct integers >= 0, got {' '.join(map(str, self.seeds)) or 'none'}")
        if self.max_tensor_sparsity is not None and not 0.0 < self.max_tensor_sparsity <= 1.0:
            raise ValueError(f"--max_tensor_sparsity must be a fraction in (0, 1], got {self.max_tensor_sparsity}")
        if self.tolerance < 0:
            raise ValueError(f"--tolerance must be >= 0, got {self.tolerance}")

    def criteria_used(self) -> list[str]:
        """The criterion of the ticket and those of the ``--baselines`` criterion rows."""
        rows = [get_row(b) for b in self.baselines]
        return sorted({self.criterion, *(r.criterion for r in rows if isinstance(r, CriterionRow))})

    def row_options(self) -> dict[str, Any]:
        """The ``--criterion_options`` of the ``--baselines`` criterion rows, qualified by
        criterion (``NAME.KEY``), for the transfer matrix that fine-tunes them."""
        configs = self.criterion_configs()
        rows = [r.criterion for r in map(get_row, self.baselines) if isinstance(r, CriterionRow)]
        return {f"{n}.{k}": v for n in rows if configs[n] is not None for k, v in asdict(configs[n]).items()}


def _spec(model_args: ModelArguments, data_args: DataArguments, args: PruneAtInitArguments, seed: int) -> dict[str, Any]:
    """What determines the mask (stored with the ticket; a re-run must match it). A local θ0 by
    its resolved path (tickets written before name it as typed; :func:`_changed` compares the
    directories)."""
    return {
        "criterion": args.criterion,
        "sparsity": args.sparsity,
        "options": args.options_for(args.criterion),
        "base_model": resolve_model_path(model_args.model_name_or_path),
        "task": get_task(data_args.task).name,
        "seed": seed,
        "exclude": list(args.exclude),
        "pruning_scope": args.pruning_scope,
        "max_tensor_sparsity": args.max_tensor_sparsity,
        "max_train_samples": data_args.max_train_samples,
        "max_seq_length": data_args.max_seq_length,
    }


def _changed(recorded: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The keys in which a ticket's recorded spec differs from ``spec``; the base model compares
    as a directory (relative or absolute, resolved: the same θ0)."""
    return sorted(
        k
        for k in set(recorded) | set(spec)
        if recorded.get(k) != spec.get(k) and not (k == "base_model" and same_path(recorded.get(k), spec.get(k)))
    )


def _scoring_data(model_args: ModelArguments, data_args: DataArguments, task):
    """The tokenizer and prepared data a criterion that scores on training batches draws from."""
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.revision)
    d = data_args
    data = get_kind(task.kind).prepare(
        task, tokenizer, d.data_dir, model_args.cache_dir, d.max_seq_length, d.max_train_samples, d.max_eval_samples
    )
    return tokenizer, data


def find_ticket(model_args: ModelArguments, data_args: DataArguments, args: PruneAtInitArguments, training_args) -> TicketMask:
    """The criterion's ticket at θ0 (``OUTPUT_DIR/ticket``), found now or reused when the
    directory already holds the one these arguments give. The search is seeded with
    ``--seed`` (snip's batch, gem_miner's data order; synflow and magnitude are deterministic).

    Raises:
        ValueError: the directory holds a ticket found with other arguments.
    """
    out = Path(training_args.output_dir) / TICKET_DIR
    spec = _spec(model_args, data_args, args, training_args.seed)
    if (out / CONFIG_FILE).is_file():
        old = TicketMask.from_pretrained(out)
        changed = _changed(old.metadata.extra.get("prune_at_init") or {}, spec)
        if changed:
            raise ValueError(f"{out} holds a ticket found with other arguments (changed: {', '.join(changed)}); use another --output_dir")
        logger.info("ticket already found: %s (%s at sparsity %.4f)", out, args.criterion, old.sparsity)
        _warn_collapse(old)
        return old
    task = get_task(data_args.task)
    started = time.perf_counter()
    model = load_theta0(task, model_args.model_name_or_path, training_args.seed, revision=model_args.revision)
    # a local θ0 by its resolved path and the sha256 of its weights (as find records it), so the
    # ticket loads from any working directory and a changed checkpoint is detected
    meta = TicketMetadata(
        base_model=resolve_model_path(model_args.model_name_or_path),
        base_model_revision=local_checkpoint_revision(model_args.model_name_or_path) or model_args.revision,
        task=task.name,
        exclude_patterns=list(args.exclude),
        prunable_patterns=list(DEFAULT_PRUNABLE_PATTERNS),
    )
    dense = TicketMask.dense(model, meta.prunable_patterns, meta.exclude_patterns, meta)
    tokenizer, data = _scoring_data(model_args, data_args, task) if get_criterion(args.criterion).needs_data else (None, None)
    options = args.criterion_configs()[args.criterion]
    ticket = criterion_ticket(
        dense,
        model,
        args.criterion,
        args.sparsity,
        options,
        task,
        data,
        training_args,
        seed=training_args.seed,
        tokenizer=tokenizer,
        scope=args.pruning_scope,
        max_tensor_sparsity=args.max_tensor_sparsity,
    )
    ticket.metadata.extra["prune_at_init"] = spec
    ticket.metadata.extra["mask_wall_s"] = time.perf_counter() - started
    ticket.save_pretrained(out)
    cost = ticket.metadata.cost
    logger.info(
        "%s at θ0: sparsity %.4f (%d/%d pruned), %s, %.1fs -> %s",
        args.criterion,
        ticket.sparsity,
        ticket.num_pruned,
        ticket.num_prunable,
        ", ".join(f"{k} {v}" for k, v in cost.items()) or "no training or scoring passes",
        ticket.metadata.extra["mask_wall_s"],
        out,
    )
    _warn_collapse(ticket)
    return ticket


def _warn_collapse(ticket: TicketMask) -> None:
    """Warn (one line) when the mask prunes every weight of a prunable tensor: layer collapse
    (Tanaka et al. 2020, Section 3; :mod:`bert_tickets.pruning.collapse`), e.g. one-shot
    magnitude at a high sparsity emptying the pooler."""
    emptied = collapsed_tensors(ticket.per_tensor_sparsity(), threshold=1.0)
    if emptied:
        logger.warning(
            "layer collapse: the mask prunes every weight of %d prunable tensor(s): %s; %s",
            len(emptied),
            ", ".join(emptied),
            collapse_options_hint(emptied),
        )


def sanity_verdicts(matrix: dict[str, Any], task: str, tolerance: float) -> list[dict[str, Any]]:
    """Per sanity row of ``matrix`` (a :func:`~bert_tickets.results.cells.build_matrix` result):
    whether the row it checks *beats* it — its mean exceeds the check's mean by more than the
    check's sample std over seeds (``tolerance`` with one seed), the matching rule's margin. The
    pairs come from the matrix's ``checks`` (which row each sanity row checks, from the cells'
    specs)."""
    out = []
    for label, info in matrix.get("checks", {}).items():
        base_label, check = info["of"], info["check"]
        if base_label is None:
            continue
        base, sane = matrix["entries"].get(base_label, {}).get(task), matrix["entries"][label].get(task)
        if base is None or sane is None:
            continue
        margin = sane["std"] if sane["std"] is not None else tolerance
        out.append(
            {
                "row": base_label,
                "check": check,
                "mean": base["mean"],
                "check_mean": sane["mean"],
                "margin": margin,
                "beats": bool(base["mean"] - sane["mean"] > margin),
            }
        )
    return out


def run(model_args: ModelArguments, data_args: DataArguments, args: PruneAtInitArguments, training_args) -> dict[str, Any]:
    """Find the ticket, then (unless ``--no_finetune``) fine-tune it with ``--seeds`` next to
    ``--baselines`` and ``--sanity`` rows as a transfer matrix on the task, and write the report.

    Returns:
        ``{"ticket": TicketMask, "matrix": matrix or None, "verdicts": [...]}``.

    Raises:
        ValueError / FileNotFoundError: bad arguments, data or output directory (one line, before
            any work).
    """
    task = get_task(data_args.task)
    check_model_source(model_args.model_name_or_path)
    check_output_dir(training_args.output_dir)
    claim_directory(training_args.output_dir, kinds.PRUNE_AT_INIT)
    if data_args.data_dir is not None:
        get_kind(task.kind).validate_inputs(task, data_args.data_dir)
    root = Path(training_args.output_dir)
    targs = TransferArguments(
        criterion_options=args.row_options(),
        tickets=[str(root / TICKET_DIR)],
        tasks=[task.name],
        sparsity=args.sparsity,
        seeds=list(args.seeds),
        baselines=list(args.baselines),
        sanity=list(args.sanity),
        model_name_or_path=model_args.model_name_or_path,
        data_dir=[data_args.data_dir] if data_args.data_dir else None,
        max_seq_length=data_args.max_seq_length,
        max_train_samples=[str(data_args.max_train_samples)] if data_args.max_train_samples else None,
        max_eval_samples=data_args.max_eval_samples,
        tolerance=args.tolerance,
    )
    ticket = find_ticket(model_args, data_args, args, training_args)
    if args.no_finetune:
        return {"ticket": ticket, "matrix": None, "verdicts": []}
    matrix_runner = TransferMatrix(targs, {task.name: replace(training_args, output_dir=str(root / FINETUNE_DIR))})
    matrix = matrix_runner.run()
    verdicts = sanity_verdicts(matrix, task.name, args.tolerance)
    report = [
        f"# {args.criterion} at θ0: {task.name}, sparsity {args.sparsity:g}",
        "",
        f"Ticket: `{root / TICKET_DIR}`; cost: {ticket.metadata.cost or 'none (no training or scoring passes)'}; "
        f"search wall time {ticket.metadata.extra.get('mask_wall_s', 0.0):.1f} s.",
        "",
        (root / FINETUNE_DIR / "matrix.md").read_text(),
    ]
    for v in verdicts:
        report.append(
            f"- the {args.criterion} mask (row {v['row']}) {'beats' if v['beats'] else 'does NOT beat'} its {v['check']} check: "
            f"{v['mean']:.4f} vs {v['check_mean']:.4f} (margin {v['margin']:.4f})"
        )
    atomic_write_text(root / REPORT_FILE, "\n".join(report) + "\n")
    return {"ticket": ticket, "matrix": matrix, "verdicts": verdicts}


#: The argument dataclasses of ``prune-at-init`` (before ``TrainingArguments``).
ARGUMENTS = (ModelArguments, DataArguments, PruneAtInitArguments)

__all__ = ["ARGUMENTS", "PruneAtInitArguments", "find_ticket", "run", "sanity_verdicts"]
