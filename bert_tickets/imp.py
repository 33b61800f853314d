"""Iterative magnitude pruning (IMP) with rewinding, level by level, on a stock ``Trainer``.

Chen et al. 2020, *The Lottery Ticket Hypothesis for Pre-trained BERT Networks*, Algorithm 1
(and the VITA-Group/BERT-Tickets code): level 0 fine-tunes the dense model from θ0; every next
level prunes the trained weights globally by magnitude to the schedule's sparsity, rewinds the
surviving weights to θ0 (or to step ``k`` of level-0 fine-tuning, Frankle et al. 2020), resets
the task head to its level-0 initial values, and fine-tunes again with a fresh optimizer and LR
schedule while :class:`~bert_tickets.callback.TicketCallback` keeps pruned weights at zero.

Run directory (``--output_dir``)::

    run_config.json           hyperparameters + their hash (a re-run must match it)
    initial_head_seed{S}.safetensors   task head at level 0 (per seed), restored every level
    rewind_step{K}.safetensors         backbone after K steps of level-0 training (K > 0 only)
    level_{LL}/ticket/        the level's TicketMask (bit-packed safetensors + ticket_config.json)
    level_{LL}/seed_{S}/      Trainer output_dir of that seed (log_history.json)
    level_{LL}/trained_head.safetensors  (with --keep_trained_head)
    level_{LL}/metrics.json   dev metrics per seed, mean/std; written last = level complete
    summary.json, summary.csv the table: level, sparsity, metric, Δ vs dense, matching

A level whose ``metrics.json`` exists is skipped when the command is re-run (resume); the next
level's mask is saved before ``metrics.json``, so resuming never needs the trained weights.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, Trainer, TrainerCallback, set_seed
from transformers.utils import logging as hf_logging

from .arguments import DataArguments, IMPArguments, ModelArguments, run_hash, run_hyperparameters
from .callback import TicketCallback, fix_loss_scaling
from .mask import TicketMask, TicketMetadata, _atomic_write, atomic_write_text
from .collapse import collapse_options_hint, collapsed_tensors, low_scale_tensors
from .prunable import get_backbone, prunable_parameters
from .pruning import level_sparsity, prune_ticket, sparsity_schedule
from .task_kinds import get_kind
from .tasks import TaskSpec, get_task

logger = logging.getLogger("bert_tickets")


# ------------------------------------------------------------------------------ helpers
def _head_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters outside the backbone (the task head), detached CPU copies."""
    prefix = getattr(model, "base_model_prefix", "bert") + "."
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if not n.startswith(prefix)}


def _load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"{what}: model has no parameter {missing[0]!r}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    _atomic_write(path, lambda tmp: save_file(tensors, tmp))


def _json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


class _CaptureRewindPoint(TrainerCallback):
    """Saves the backbone's weights after ``step`` optimizer steps (late rewinding)."""

    def __init__(self, step: int, path: Path, write: bool):
        self.step, self.path, self.write, self.done = step, path, write, False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.done and state.global_step == self.step:
            if self.write:
                state_dict = {n: p.detach().cpu().clone().contiguous() for n, p in get_backbone(model).named_parameters()}
                _save_tensors(self.path, state_dict)
            self.done = True


@dataclass
class LevelResult:
    """One row of the IMP summary."""

    level: int
    target_sparsity: float
    sparsity: float
    num_pruned: int
    num_prunable: int
    metric: str
    mean: float
    std: float | None
    per_seed: dict[str, float]
    delta: float | None = None
    matching: bool | None = None
    elapsed_s: float = 0.0
    nonzero_pruned_weights: int = 0
    collapsed_tensors: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------ runner
class IMPRunner:
    """Finds a lottery ticket by IMP on one task. See the module docstring for the layout.

    Args:
        model_args, data_args, imp_args: the ``find`` dataclasses.
        training_args: ``transformers.TrainingArguments``; its ``output_dir`` is the run
            directory, its ``seed`` the default seed; every option passes through to each
            level's ``Trainer``.

    Construction validates everything cheap (task, schedule, data files and columns, prunable
    weights of the model, consistency with an existing run directory) and raises ``ValueError``
    / ``FileNotFoundError`` / ``OSError`` with a one-line message before any training.
    """

    def __init__(self, model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args):
        self.model_args, self.data_args, self.imp_args, self.training_args = model_args, data_args, imp_args, training_args
        self.task: TaskSpec = get_task(data_args.task)
        self.run_dir = Path(training_args.output_dir)
        self.seeds = list(imp_args.seeds) if imp_args.seeds else [training_args.seed]
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct, got {self.seeds}")
        self.schedule = sparsity_schedule(
            imp_args.schedule, imp_args.target_sparsity, imp_args.prune_step, imp_args.prune_fraction, imp_args.max_levels
        )
        if imp_args.rewind_step < 0:
            raise ValueError(f"--rewind_step must be >= 0, got {imp_args.rewind_step}")
        if imp_args.tolerance < 0:
            raise ValueError(f"--tolerance must be >= 0, got {imp_args.tolerance}")
        self.kind = get_kind(self.task.kind)
        if data_args.data_dir is not None:
            self.kind.validate_inputs(self.task, data_args.data_dir)
        self.is_main = training_args.process_index == 0
        self.hparams = run_hyperparameters(model_args, data_args, imp_args, training_args)
        self.hash = run_hash(self.hparams)
        self._check_run_dir()
        name = model_args.model_name_or_path
        if (os.path.isabs(name) or name.startswith((".", "~"))) and not os.path.isdir(os.path.expanduser(name)):
            raise FileNotFoundError(f"model directory not found: {name}")
        # Loading the model once up front checks the checkpoint and the prunable set.
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_args.model_name_or_path, revision=model_args.revision, cache_dir=model_args.cache_dir
        )
        probe = self._load_model(self.seeds[0])
        # What the kind knows about the loaded model (e.g. an MLM head that was not pre-trained).
        self.model_notes = self.kind.describe_model(probe)
        self.dense_ticket = TicketMask.dense(
            probe,
            imp_args.prunable_patterns,
            imp_args.exclude,
            TicketMetadata(
                base_model=model_args.model_name_or_path,
                base_model_revision=getattr(probe.config, "_commit_hash", None) or model_args.revision,
                task=self.task.name,
                schedule=imp_args.schedule,
                rewind_step=imp_args.rewind_step,
                extra=dict(self.model_notes),
            ),
        )
        self.low_scale = low_scale_tensors(prunable_parameters(probe, imp_args.prunable_patterns, imp_args.exclude))
        if self.low_scale and imp_args.pruning_method == "magnitude" and imp_args.pruning_scope == "global" and imp_args.max_tensor_sparsity is None:
            logger.warning(
                "weight scale far below the other prunable tensors (RMS / median RMS): %s; global magnitude pruning will "
                "prune them first and may remove them entirely (layer collapse); %s",
                ", ".join(f"{n} {r:.2f}" for n, r in self.low_scale.items()), collapse_options_hint(self.low_scale),
            )
        del probe
        self.data = None

    # -- setup
    def _check_run_dir(self) -> None:
        cfg = self.run_dir / "run_config.json"
        if cfg.exists():
            old = json.loads(cfg.read_text())
            if old.get("hash") != self.hash:
                changed = sorted(
                    f"{g}.{k}"
                    for g in self.hparams
                    for k in set(self.hparams[g]) | set(old.get("hyperparameters", {}).get(g, {}))
                    if json.dumps(self.hparams[g].get(k), default=str) != json.dumps(old.get("hyperparameters", {}).get(g, {}).get(k), default=str)
                )
                raise ValueError(
                    f"{self.run_dir} holds a run with other hyperparameters (hash {old.get('hash')} vs {self.hash}; "
                    f"changed: {', '.join(changed) or '?'}); use another --output_dir"
                )
        for metrics in sorted(self.run_dir.glob("level_*/metrics.json")):
            done = json.loads(metrics.read_text())["result"]
            level = done["level"]
            if level < len(self.schedule) and abs(done["target_sparsity"] - self.schedule[level]) > 1e-9:
                raise ValueError(
                    f"{metrics.parent} was run at sparsity {done['target_sparsity']} but this schedule puts level {level} "
                    f"at {self.schedule[level]}; use another --output_dir"
                )

    def _load_model(self, seed: int) -> torch.nn.Module:
        set_seed(seed)  # the task head's initialisation depends on it
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "classifier newly initialised" report, every level and seed
        try:
            model = self.kind.load_model(
                self.task,
                self.model_args.model_name_or_path,
                revision=self.model_args.revision,
                cache_dir=self.model_args.cache_dir,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        return fix_loss_scaling(model)

    def prepare(self) -> None:
        """Load and tokenize the data, and check what depends on it (before any training).

        Raises:
            ValueError: ``--rewind_step`` beyond the number of level-0 optimizer steps, or data
                problems found while reading.
        """
        if self.data is not None:
            return
        d = self.data_args
        self.data = self.kind.prepare(
            self.task, self.tokenizer, d.data_dir, self.model_args.cache_dir, d.max_seq_length, d.max_train_samples, d.max_eval_samples
        )
        args = self.training_args
        if args.max_steps and args.max_steps > 0:
            steps = args.max_steps
        else:
            batches = math.ceil(len(self.data.train) / (args.per_device_train_batch_size * max(1, args.world_size)))
            steps = math.ceil(batches / args.gradient_accumulation_steps) * math.ceil(args.num_train_epochs)
        if self.imp_args.rewind_step > steps:
            raise ValueError(f"--rewind_step {self.imp_args.rewind_step} exceeds the {steps} optimizer steps of level-0 training")

    # -- one level
    def _level_dir(self, level: int) -> Path:
        return self.run_dir / f"level_{level:02d}"

    def _train_level(self, level: int, ticket: TicketMask, data) -> tuple[dict[str, dict[str, float]], torch.nn.Module]:
        per_seed: dict[str, dict[str, float]] = {}
        first_model = None
        rewind_path = self.run_dir / f"rewind_step{self.imp_args.rewind_step}.safetensors"
        for seed in self.seeds:
            model = self._load_model(seed)
            head_path = self.run_dir / f"initial_head_seed{seed}.safetensors"
            if level == 0:
                if self.is_main:
                    _save_tensors(head_path, _head_state(model))
            else:
                if self.imp_args.rewind_step > 0:
                    _load_into(get_backbone(model), load_file(rewind_path), "rewind weights")
                if self.imp_args.keep_trained_head:
                    _load_into(model, load_file(self._level_dir(level - 1) / "trained_head.safetensors"), "trained head")
                else:
                    _load_into(model, load_file(head_path), "initial head")
            callbacks: list[TrainerCallback] = [TicketCallback(ticket)]
            capture = None
            if level == 0 and seed == self.seeds[0] and self.imp_args.rewind_step > 0:
                capture = _CaptureRewindPoint(self.imp_args.rewind_step, rewind_path, self.is_main)
                callbacks.append(capture)
            args = replace(self.training_args, output_dir=str(self._level_dir(level) / f"seed_{seed}"), seed=seed)
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=data.train,
                eval_dataset=next(iter(data.eval.values())),
                processing_class=self.tokenizer,
                callbacks=callbacks,
                **self.kind.trainer_kwargs(self.task, self.tokenizer, data),
            )
            trainer.train()
            if capture is not None and not capture.done:
                raise ValueError(
                    f"--rewind_step {self.imp_args.rewind_step} exceeds the {trainer.state.global_step} steps of level-0 training"
                )
            metrics = self.kind.evaluate(trainer, self.task, data)
            metrics["train_loss"] = next((h["train_loss"] for h in reversed(trainer.state.log_history) if "train_loss" in h), None)
            nonzero = ticket.count_nonzero_pruned(model)
            if nonzero:
                raise RuntimeError(f"level {level}, seed {seed}: {nonzero} pruned weights are non-zero after training")
            metrics["nonzero_pruned_weights"] = nonzero
            per_seed[str(seed)] = metrics
            if self.is_main:
                _json(Path(args.output_dir) / "log_history.json", trainer.state.log_history)
            if first_model is None:
                first_model = model
            del trainer
        return per_seed, first_model

    # -- the whole run
    def run(self) -> list[LevelResult]:
        """Run (or resume) every level; returns the summary rows and writes summary.json/csv."""
        started = time.perf_counter()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _json(self.run_dir / "run_config.json", {"hash": self.hash, "hyperparameters": self.hparams, "schedule": self.schedule})
        primary = self.task.primary_metric
        logger.info(
            "IMP on %s from %s: run %s, levels at sparsity %s, %s pruning, rewind to %s, seeds %s, output %s",
            self.task.name, self.model_args.model_name_or_path, self.hash,
            ", ".join(f"{s:.4g}" for s in self.schedule), self.imp_args.pruning_method,
            "θ0" if self.imp_args.rewind_step == 0 else f"step {self.imp_args.rewind_step}", self.seeds, self.run_dir,
        )
        results: list[LevelResult] = []
        next_ticket: TicketMask | None = self.dense_ticket
        for level, target in enumerate(self.schedule):
            level_dir = self._level_dir(level)
            metrics_path = level_dir / "metrics.json"
            if metrics_path.exists():
                record = json.loads(metrics_path.read_text())
                results.append(LevelResult(**record["result"]))
                logger.info("level %d (sparsity %.4f) already complete: skipped", level, record["result"]["sparsity"])
                next_ticket = None
                continue
            ticket = next_ticket if next_ticket is not None else TicketMask.from_pretrained(level_dir / "ticket")
            if abs(ticket.metadata.target_sparsity - target) > 1e-9:
                raise ValueError(f"{level_dir / 'ticket'} was pruned to {ticket.metadata.target_sparsity}, the schedule says {target}")
            if self.is_main:
                ticket.save_pretrained(level_dir / "ticket")
            self.prepare()
            data = self.data
            per_tensor = ticket.per_tensor_sparsity()
            collapsed = collapsed_tensors(per_tensor, self.imp_args.collapse_threshold)
            if level > 0:
                lo, hi = min(per_tensor, key=per_tensor.get), max(per_tensor, key=per_tensor.get)
                logger.info("level %d per-tensor sparsity: min %.4f (%s), max %.4f (%s)", level, per_tensor[lo], lo, per_tensor[hi], hi)
            if collapsed:
                logger.warning(
                    "layer collapse at level %d: %s pruned beyond %.2f; %s", level,
                    ", ".join(f"{n} {s:.4f}" for n, s in collapsed.items()), self.imp_args.collapse_threshold,
                    collapse_options_hint(collapsed),
                )
            t0 = time.perf_counter()
            per_seed, trained = self._train_level(level, ticket, data)
            values = [m[primary] for m in per_seed.values()]
            result = LevelResult(
                level=level,
                target_sparsity=target,
                sparsity=ticket.sparsity,
                num_pruned=ticket.num_pruned,
                num_prunable=ticket.num_prunable,
                metric=primary,
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None,
                per_seed={s: m[primary] for s, m in per_seed.items()},
                elapsed_s=time.perf_counter() - t0,
                nonzero_pruned_weights=sum(m["nonzero_pruned_weights"] for m in per_seed.values()),
                collapsed_tensors=collapsed,
            )
            # Next level's mask first: once metrics.json exists, resuming needs no trained weights.
            # Past the schedule's end it is saved too (at the unclipped schedule's next sparsity), so
            # the run can later be extended to more levels.
            next_ticket = None
            if level + 1 < len(self.schedule):
                next_sparsity = self.schedule[level + 1]
            else:
                next_sparsity = level_sparsity(self.imp_args.schedule, level + 1, self.imp_args.prune_step, self.imp_args.prune_fraction)
            if next_sparsity < 1.0:
                next_ticket = prune_ticket(
                    ticket, trained, next_sparsity, self.imp_args.pruning_method, self.seeds[0],
                    self.imp_args.pruning_scope, self.imp_args.max_tensor_sparsity,
                )
                if self.is_main:
                    next_ticket.save_pretrained(self._level_dir(level + 1) / "ticket")
            if self.is_main:
                if self.imp_args.keep_trained_head:
                    _save_tensors(level_dir / "trained_head.safetensors", _head_state(trained))
                ticket.metadata.extra.update({**self.model_notes, **data.notes})
                ticket.metadata.extra["metrics"] = per_seed[str(self.seeds[0])]
                ticket.metadata.extra[primary] = result.mean
                ticket.save_pretrained(level_dir / "ticket")
                _json(metrics_path, {"result": result.__dict__, "per_seed": per_seed})
            del trained
            results.append(result)
            logger.info(
                "level %d | sparsity %.4f (%d/%d pruned) | %s %.4f%s | %.1fs",
                level, result.sparsity, result.num_pruned, result.num_prunable, primary, result.mean,
                f" ± {result.std:.4f}" if result.std is not None else "", result.elapsed_s,
            )
        summary = summarize(results, self.imp_args.tolerance, self.task.name, time.perf_counter() - started)
        notes = {**self.model_notes, **(self.data.notes if self.data is not None else {})}
        if notes:
            summary["notes"] = notes
        if self.is_main:
            write_summary(self.run_dir, summary)
        print(format_summary(summary))
        return results


# ------------------------------------------------------------------------------ summary
def matching_margin(dense_std: float | None, n_seeds: int, tolerance: float) -> tuple[float, str]:
    """The margin below the dense metric that still counts as matching, and the rule in words.

    Chen et al. 2020, Section 3: matching = within one standard deviation of the full model, read
    one-sidedly (a subnetwork at or above dense is matching). ``dense_std`` is the sample std
    across seeds (``None`` for a single seed, then ``tolerance`` is the margin).
    """
    if dense_std is not None:
        return dense_std, f"metric >= dense - one standard deviation of dense ({dense_std:.4f}, {n_seeds} seeds)"
    return tolerance, f"metric >= dense - {tolerance} (--tolerance; single seed)"


def summarize(results: list[LevelResult], tolerance: float, task: str, wall_s: float) -> dict:
    """Add Δ vs dense and the matching decision to ``results``.

    Matching (Chen et al. 2020, Section 3): a level is matching when its mean metric is at
    least the dense (level-0) mean minus one standard deviation of the dense runs across seeds
    (sample std, ``ddof=1``) when more than one seed was run, else minus ``tolerance``.
    """
    dense = results[0]
    margin, rule = matching_margin(dense.std, len(dense.per_seed), tolerance)
    for r in results:
        r.delta = r.mean - dense.mean
        r.matching = bool(r.mean >= dense.mean - margin - 1e-12)
    matching = [r for r in results if r.matching and r.level > 0]
    best = max(matching, key=lambda r: r.sparsity) if matching else None
    return {
        "task": task,
        "metric": dense.metric,
        "collapsed_levels": {r.level: r.collapsed_tensors for r in results if r.collapsed_tensors},
        "matching_rule": rule,
        "highest_matching_sparsity": best.sparsity if best else None,
        "wall_time_s": wall_s,
        "levels": [r.__dict__ for r in results],
    }


def format_summary(summary: dict) -> str:
    """The summary table as printed at the end of ``find``."""
    lines = [f"{'level':>5}  {'sparsity':>8}  {summary['metric']:>22}  {'Δ vs dense':>10}  matching  collapsed tensors"]
    for r in summary["levels"]:
        value = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] is not None else "")
        collapsed = ", ".join(f"{n} ({s:.2f})" for n, s in r.get("collapsed_tensors", {}).items()) or "-"
        lines.append(
            f"{r['level']:>5}  {r['sparsity']:>8.4f}  {value:>22}  {r['delta']:>+10.4f}  {'yes' if r['matching'] else 'no':<8}  {collapsed}"
        )
    best = summary["highest_matching_sparsity"]
    for key, value in summary.get("notes", {}).items():
        lines.append(f"note: {key}: {value}")
    lines.append(f"matching = {summary['matching_rule']}")
    lines.append(
        f"highest matching sparsity on {summary['task']}: {best:.4f}" if best is not None else f"no pruned level is matching on {summary['task']}"
    )
    return "\n".join(lines)


def write_summary(run_dir: Path, summary: dict) -> None:
    """Write ``summary.json`` and ``summary.csv`` (atomically)."""
    _json(run_dir / "summary.json", summary)
    buf = io.StringIO()
    cols = ["level", "target_sparsity", "sparsity", "num_pruned", "num_prunable", "metric", "mean", "std", "delta", "matching",
            "elapsed_s", "collapsed_tensors"]
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for r in summary["levels"]:
        row = {k: ("" if r.get(k) is None else r.get(k)) for k in cols}
        row["collapsed_tensors"] = ";".join(r.get("collapsed_tensors", {}))
        writer.writerow(row)
    atomic_write_text(run_dir / "summary.csv", buf.getvalue())

