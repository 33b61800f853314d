"""Export a level's fine-tuned sparse model as a standard Hugging Face checkpoint (issue 13,
item 4): ``bert-tickets export RUN --level L --output_dir DIR``.

The result is what a practitioner deploys: ``model.safetensors`` with the ticket's exact zeros,
``config.json``, the tokenizer and a model card naming the base model, the ticket, its sparsity
and metric. It loads with ``AutoModelFor….from_pretrained(DIR)`` and pushes with
``push_to_hub``. The run must have kept the level's trained weights (``find --save_trained``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_write_dir
from ..results import RunRecord, check_output_dir, kinds
from ..results.record import read_run
from ..tasks import get_kind, get_task
from ..ticket import TicketMask, check_model_source, hub_revision
from ..ticket.hub import is_hub_repo_id


def export_level(run_dir: str | os.PathLike, level: int, output_dir: str | os.PathLike, compact: bool = False) -> Path:
    """Write level ``level``'s fine-tuned model of the run as a Hugging Face checkpoint.

    The task model is built from the run's base model (architecture and config), the saved
    trained weights are loaded into it (every tensor), the ticket's mask is checked (every pruned
    weight exactly 0) and the directory is written as one unit (a temporary directory, then a
    rename).

    Returns:
        ``output_dir``.

    Raises:
        FileNotFoundError: not a run directory, the level is not complete, or the run did not
            keep its trained weights (``--save_trained``).
        FileExistsError: ``output_dir`` exists.
        ValueError: the trained weights do not fit the model, or a pruned weight is non-zero.
    """
    output_dir = _new_dir(output_dir)
    run = read_run(run_dir)
    record = RunRecord(run_dir)
    if level not in run.levels:
        raise FileNotFoundError(f"{run_dir}: level {level} is not complete (complete: {', '.join(map(str, sorted(run.levels)))})")
    if not record.has_trained_model(level):
        raise FileNotFoundError(
            f"{record.paths.trained_model(level)} does not exist: re-run the same find command with --save_trained "
            "to keep each level's trained weights (finished levels are re-trained only if you delete them)"
        )
    hp = run.config["hyperparameters"]
    task = get_task(hp["data"]["task"])
    base = hp["model"]["model_name_or_path"]
    check_model_source(base, "the run's base model", "; the run needs its θ0 where it was found")
    revision = hub_revision(hp["model"].get("revision"))
    model = get_kind(task.kind).load_model(task, base, revision=revision)
    _load_strict(model, record.load_trained_model(level), f"level {level}")
    ticket = record.load_ticket(level)
    _check_zeros(ticket, model, f"level {level}")
    row = run.levels[level]
    what = f"The fine-tuned weights of IMP level {level} of a `bert-tickets find` run on {task.display_name}"
    card = _card(task, base, ticket, row["metric"], row["mean"], row.get("std"), what)
    provenance = {"run": str(Path(run_dir).resolve()), "level": level, "sparsity": ticket.sparsity}
    if compact:
        model, card = _compacted(model, ticket, task, base, revision, hp["data"], card)
        provenance["compact"] = True
    _mark(model, provenance)
    return _write_checkpoint(model, base, revision, card, output_dir)


#: Largest |Δ logit| between the masked and the compact model that ``--compact`` accepts.
COMPACT_TOLERANCE = 1e-4


def _compacted(model, ticket, task, base: str, revision: str | None, data_hp: dict, card: str):
    """The compact model (:func:`~bert_tickets.publish.compact.compact_model`), checked against
    the masked one on the run's evaluation split (max |Δ logits| <= :data:`COMPACT_TOLERANCE`),
    and the card with what was removed, the parameter counts and the check.

    Raises:
        ValueError: the logits differ by more than the tolerance.
    """
    import tempfile

    from transformers import AutoTokenizer, TrainingArguments

    from ..training.finetune import predict_outputs
    from .compact import compact_model, compact_plan, parameter_count

    model.eval()
    small = compact_model(model, ticket)
    plan = compact_plan(ticket, model.config)
    tokenizer = AutoTokenizer.from_pretrained(base, revision=revision)
    kind = get_kind(task.kind)
    data = kind.prepare(task, tokenizer, data_hp.get("data_dir"), None, data_hp.get("max_seq_length"), 1, data_hp.get("max_eval_samples"))
    split = next(iter(data.eval.values()))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_eval_batch_size=64, report_to=[], disable_tqdm=True, use_cpu=True)
        full, _ = predict_outputs(model, split, task, data, args, output_dir=tmp, tokenizer=tokenizer)
        mine, _ = predict_outputs(small, split, task, data, args, output_dir=tmp, tokenizer=tokenizer)
    # every output (SQuAD: start and end logits), not only the first
    delta = max(float((a - b).abs().max()) for a, b in zip(full, mine, strict=True))
    if delta > COMPACT_TOLERANCE:
        raise ValueError(f"--compact: the compact model's logits differ from the masked model's by {delta:.2e} (> {COMPACT_TOLERANCE})")
    before, after = parameter_count(model), parameter_count(small)
    heads = ", ".join(str(len(h)) for h in plan.heads)
    widths = ", ".join(str(len(n)) for n in plan.neurons)
    small.config.bert_tickets_compact = {
        "heads_per_layer": [len(h) for h in plan.heads],
        "intermediate_per_layer": [len(n) for n in plan.neurons],
        "parameters": after,
        "parameters_masked_model": before,
        "max_abs_logit_difference": delta,
        "checked_examples": len(split),
    }
    load = (
        "AutoModelFor….from_pretrained(DIR)"
        if plan.plain
        else "AutoModelFor….from_pretrained(DIR, trust_remote_code=True) (modeling_compact_bert.py in this directory)"
    )
    card += (
        f"\n## Compact export\n\nPruned attention heads and FFN neurons are removed: heads per layer {heads} "
        f"(of {model.config.num_attention_heads}), FFN width per layer {widths} (of {model.config.intermediate_size}); "
        f"{after:,} parameters instead of {before:,}. Loads with {load}. Its logits equal the masked model's on the "
        f"{len(split)} evaluation examples (max |Δ| {delta:.2e}).\n"
    )
    return small, card


def export_cell(matrix_dir: str | os.PathLike, cell_id: str, output_dir: str | os.PathLike) -> Path:
    """Write a transfer cell's fine-tuned model (kept with ``transfer --save_trained``) as a
    Hugging Face checkpoint, like :func:`export_level`.

    Raises:
        FileNotFoundError: no such complete cell, or it kept no weights.
        FileExistsError: ``output_dir`` exists.
        ValueError: the weights do not fit, or a pruned weight is non-zero.
    """
    from ..results.cells import MatrixRecord

    output_dir = _new_dir(output_dir)
    record = MatrixRecord(matrix_dir)
    result = record.completed(cell_id)
    if result is None:
        raise FileNotFoundError(f"{matrix_dir}: no complete cell {cell_id!r}")
    if not record.has_trained(cell_id):
        raise FileNotFoundError(f"cell {cell_id} kept no trained weights: run the transfer with --save_trained (a new --output_dir)")
    task = get_task(result.spec.target)
    base = record.cell_spec(cell_id)["context"]["base_model"]
    check_model_source(base, "the matrix's base model", "; the matrix needs its θ0 where it was run")
    model = get_kind(task.kind).load_model(task, base)
    _load_strict(model, record.load_trained(cell_id), f"cell {cell_id}")
    ticket = TicketMask.from_pretrained(record.ticket_dir(cell_id))
    _check_zeros(ticket, model, f"cell {cell_id}")
    spec = result.spec
    _mark(model, {"matrix": str(Path(matrix_dir).resolve()), "cell": cell_id, "sparsity": ticket.sparsity})
    what = f"The fine-tuned weights of transfer cell {cell_id} (the {spec.label} mask on {task.display_name}, seed {spec.seed})"
    return _write_checkpoint(model, base, None, _card(task, base, ticket, result.metric, result.value, None, what), output_dir)


def _mark(model, provenance: dict) -> None:
    """Record in the checkpoint's ``config.json`` that it is an export and where it came from
    (``"bert_tickets": {"kind": "export", ...}``: the run-kind marker of
    :mod:`bert_tickets.results.kinds`; ``from_pretrained`` keeps it as a config attribute)."""
    model.config.bert_tickets = {"kind": kinds.EXPORT, **provenance}


def _new_dir(output_dir: str | os.PathLike) -> Path:
    """``--output_dir`` as a ``Path``, refused (one line) when it exists or cannot be created."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise FileExistsError(f"{output_dir} exists; choose a new --output_dir")
    check_output_dir(output_dir)
    return output_dir


def _tied(model, name: str) -> bool:
    """A parameter left out of the saved state because it is tied to another (MLM decoder)."""
    return name.endswith("decoder.weight") and getattr(model.config, "tie_word_embeddings", False)


def _load_strict(model, state, what: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not _tied(model, m)]:
        raise ValueError(
            f"the trained weights of {what} do not fit {type(model).__name__} (missing {missing[:2]}, unexpected {unexpected[:2]})"
        )


def _check_zeros(ticket, model, what: str) -> None:
    nonzero = ticket.count_nonzero_pruned(model)
    if nonzero:
        raise ValueError(f"{nonzero} pruned weights of {what} are non-zero in the saved trained weights")


def _write_checkpoint(model, base: str, revision: str | None, card: str, output_dir: Path) -> Path:
    """``save_pretrained`` of the model and the base model's tokenizer plus the card, as one unit
    (:func:`~bert_tickets._io.atomic_write_dir`: the directory and its files follow the umask)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, revision=revision)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card)

    atomic_write_dir(output_dir, write)
    return output_dir


def _card(task, base: str, ticket, metric: str, value: float, std: float | None, what: str) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        base_model=base if is_hub_repo_id(base) else None,
        library_name="transformers",
        tags=["lottery-ticket", "pruning", "sparsity", "bert", "bert-tickets", task.name],
    )
    return (
        f"---\n{data.to_yaml()}\n---\n\n"
        f"# {task.display_name} fine-tuned lottery ticket of {base} ({100 * ticket.sparsity:.1f}% sparse)\n\n"
        f"{what}: {ticket.num_pruned:,} of {ticket.num_prunable:,} prunable weights (sparsity {ticket.sparsity:.4f}) are exactly 0. "
        f"Base model (θ0): `{base}`. {metric} on the evaluation split: {value:.4f}"
        + (f" ± {std:.4f}" if std is not None else "")
        + " (as recorded).\n\n"
        "```python\nfrom transformers import AutoModel  # or the AutoModelFor… class of the task\n"
        'model = AutoModel.from_pretrained("<this repository or directory>")\n```\n\n'
        "Found with bert-tickets (iterative magnitude pruning with rewinding; Chen et al. 2020, "
        "*The Lottery Ticket Hypothesis for Pre-trained BERT Networks*).\n"
    )


@dataclass
class ExportArguments:
    """Arguments of ``bert-tickets export RUN_DIR --level L --output_dir DIR`` or
    ``bert-tickets export MATRIX_DIR --cell ID --output_dir DIR``."""

    run_dir: str = field(metadata={"help": "Run directory of 'bert-tickets find' or a transfer matrix directory."})
    output_dir: str = field(metadata={"help": "New directory of the checkpoint (must not exist)."})
    level: int | None = field(default=None, metadata={"help": "A level of a find run (found with --save_trained)."})
    cell: str | None = field(default=None, metadata={"help": "A cell id of a transfer matrix (run with --save_trained)."})
    compact: bool = field(
        default=False,
        metadata={
            "help": "Slice the pruned heads and FFN neurons out (a structured ticket; find --granularity head/neuron): a "
            "physically smaller checkpoint whose logits equal the masked model's (checked on the evaluation split)."
        },
    )

    def __post_init__(self):
        if (self.level is None) == (self.cell is None):
            raise ValueError("give one of --level L (a find run) or --cell ID (a transfer matrix)")


def run(args: ExportArguments) -> Path:
    """``bert-tickets export``: :func:`export_cell` with ``--cell``, else :func:`export_level`;
    returns the checkpoint directory.

    Raises:
        ValueError / FileNotFoundError / FileExistsError: see those functions (one line).
    """
    if args.cell is not None:
        if args.compact:
            raise ValueError("--compact exports a level of a find run (--level L)")
        return export_cell(args.run_dir, args.cell, args.output_dir)
    return export_level(args.run_dir, args.level, args.output_dir, compact=args.compact)


#: The argument dataclasses of ``export``.
ARGUMENTS = (ExportArguments,)

__all__ = ["ARGUMENTS", "ExportArguments", "export_cell", "export_level", "run"]
