"""Instability analysis of an IMP level (Frankle et al. 2020, *Linear Mode Connectivity and the
Lottery Ticket Hypothesis*, Sections 2-4): ``bert-tickets stability RUN --level L``.

Two copies of the level's subnetwork start from the same weights -- the level's rewind point
(θ0 for rewind step 0, else the backbone after K steps of dense level-0 training) with the
run's initial task head, under the level's mask -- and are fine-tuned with the run's
hyperparameters, differing only in the data order (``TrainingArguments.data_seed``; the
``seed`` that drives dropout stays the run's). The straight line between the two results is
evaluated at ``--points`` evenly spaced points on the task's primary metric and the eval loss
(:mod:`bert_tickets.connectivity`), and the error barrier of each is saved in the run directory
(``stability/level_LL_rewindK/stability.json`` and ``path.png``). A finished analysis is
skipped on re-run.

Decisions where the paper is silent for BERT: the task head is interpolated with the backbone
(both copies start from the same head); BERT has no batch-norm statistics to reset (LayerNorm
has none); the path is evaluated in evaluation mode (dropout off); both ends share the mask, so
pruned weights are exactly zero at every point.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, TrainingArguments

from .._io import read_json
from ..connectivity import chord_barrier, error_barrier, evaluate_linear_path, hutchinson_trace, top_eigenvalue
from ..results import RunLock, RunRecord
from ..results.figures import linear_path_plot
from ..results.record import read_run
from ..tasks import get_kind, get_task
from ..ticket import TicketMask, check_model_source, get_backbone, hub_revision
from ..training.finetune import check_rewind_step, evaluate_model, finetune, training_batches
from ..training.weights import RewindPointCapture, load_into, load_theta0

logger = logging.getLogger("bert_tickets")

#: TrainingArguments keys recorded in a run's hyperparameters that are passed through as they are.
_PASSED = ("learning_rate", "num_train_epochs", "max_steps", "weight_decay", "warmup_steps", "max_grad_norm", "lr_scheduler_type", "optim")


@dataclass
class StabilityArguments:
    """Arguments of ``bert-tickets stability``."""

    run_dir: str = field(metadata={"help": "Run directory of 'bert-tickets find'."})
    level: int | None = field(default=None, metadata={"help": "IMP level to analyse (0 = dense)."})
    successive: bool = field(
        default=False,
        metadata={
            "help": "Instead: the path between the trained networks of every two successive levels (Paul et al. 2022); "
            "needs a run found with --save_trained."
        },
    )
    rewind_step: int | None = field(
        default=None,
        metadata={"help": "Start both copies from the backbone after K steps of dense level-0 training (default: the run's rewind step)."},
    )
    data_seeds: list[int] = field(
        default_factory=lambda: [1, 2],
        metadata={"aliases": ["--seeds"], "help": "The two data-order seeds of the copies (SGD noise; --seeds is the former name)."},
    )
    points: int = field(default=11, metadata={"help": "Evaluated points on the path, ends included (>= 3)."})
    sharpness: bool = field(
        default=False,
        metadata={
            "help": "Also measure each trained copy's sharpness on real training batches (McDermott et al. 2023): the top "
            "Hessian eigenvalue (power iteration) and the Hutchinson trace over the subnetwork's weights (pruned ones held out)."
        },
    )
    sharpness_batches: int = field(default=1, metadata={"help": "Training batches of the sharpness loss (the run's seed draws them)."})
    sharpness_iterations: int = field(default=20, metadata={"help": "Power iterations for the top eigenvalue (at most)."})
    sharpness_samples: int = field(default=10, metadata={"help": "Rademacher vectors of the Hutchinson trace."})
    rewind_mode: str | None = field(
        default=None,
        metadata={
            "help": "With a rewind step K > 0: state = both copies continue from the whole state at step K (every weight, "
            "schedule position, data order; Frankle et al. 2020); backbone_restart = the step-K backbone with the step-0 head, "
            "schedule restarted (before issue 20). Default: the run's (state for a run rewound to θ0)."
        },
    )


def _training_args(hparams: dict, output_dir: Path, data_seed: int | None = None) -> TrainingArguments:
    """The run's recorded fine-tuning hyperparameters as ``TrainingArguments`` (one process: the
    per-device batch is the run's global batch)."""
    t = hparams["training"]
    batch = t.get("global_train_batch_size") or t["per_device_train_batch_size"] * (t.get("gradient_accumulation_steps") or 1)
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=64,
        seed=t["seed"],
        data_seed=data_seed,
        save_strategy="no",
        report_to="none",
        logging_strategy="epoch",
        disable_tqdm=True,
        bf16=bool(t.get("bf16")),
        fp16=bool(t.get("fp16")),
        **{k: t[k] for k in _PASSED if t.get(k) is not None},
    )


def _barriers(path, metric: str) -> dict[str, dict[str, float]]:
    """The path's ``barrier`` (Frankle et al.) and ``chord_barrier`` on the metric and the loss."""
    values = {metric: [p.metrics[metric] for p in path], "loss": [p.metrics["loss"] for p in path]}
    higher = {metric: True, "loss": False}
    return {
        "barrier": {k: error_barrier(v, higher_is_better=higher[k]) for k, v in values.items()},
        "chord_barrier": {k: chord_barrier(v, higher_is_better=higher[k]) for k, v in values.items()},
    }


def _run_inputs(hp: dict):
    """The run's task, θ0 (name and loadable revision: a local checkpoint's ``sha256:`` is not
    one), tokenizer and prepared data, from its recorded hyperparameters."""
    task = get_task(hp["data"]["task"])
    model_name = hp["model"]["model_name_or_path"]
    check_model_source(model_name, "the run's base model", "; the run needs its θ0 where it was found")
    revision = hub_revision(hp["model"].get("revision"))
    tokenizer = AutoTokenizer.from_pretrained(model_name, revision=revision)
    d = hp["data"]
    data = get_kind(task.kind).prepare(
        task, tokenizer, d.get("data_dir"), None, d.get("max_seq_length"), d.get("max_train_samples"), d.get("max_eval_samples")
    )
    return task, model_name, revision, tokenizer, data


def run(args: StabilityArguments) -> dict[str, Any]:
    """Run (or read back) the instability analysis; returns the saved result.

    Raises:
        FileNotFoundError / ValueError: not a run directory, the level has no ticket, seeds not
            two distinct numbers in ``[0, 2**32)``, fewer than 3 points, a rewind step beyond the
            optimizer steps of one fine-tune with the run's hyperparameters and data, θ0 not
            found (one line, before any training or write).
    """
    if args.successive:
        if args.level is not None:
            raise ValueError("give either --level L or --successive, not both")
        return successive_barriers(args)
    if args.level is None:
        raise ValueError("give --level L (or --successive)")
    if len(args.data_seeds) != 2 or args.data_seeds[0] == args.data_seeds[1]:
        raise ValueError(f"--data_seeds takes two different data seeds, got {args.data_seeds}")
    if any(not 0 <= s < 2**32 for s in args.data_seeds):
        raise ValueError(f"--data_seeds must be integers in [0, 2**32), got {' '.join(map(str, args.data_seeds))}")
    if args.points < 3:
        raise ValueError(f"--points must be >= 3 (the ends and a point between), got {args.points}")
    if min(args.sharpness_batches, args.sharpness_iterations, args.sharpness_samples) < 1:
        raise ValueError("--sharpness_batches, --sharpness_iterations and --sharpness_samples must be >= 1")
    info = read_run(args.run_dir)
    record = RunRecord(args.run_dir)
    hp = info.config["hyperparameters"]
    k = hp["imp"].get("rewind_step", 0) if args.rewind_step is None else args.rewind_step
    if k < 0:
        raise ValueError(f"--rewind_step must be >= 0, got {k}")
    if not record.has_ticket(args.level):
        raise FileNotFoundError(f"{record.paths.ticket(args.level)} does not exist: the run has no level {args.level} ticket")
    continued = k > 0 and _rewind_mode(args, hp) == "state"
    seeds = tuple(args.data_seeds)
    done = record.completed_stability(args.level, k, continued, seeds)
    if done is not None:
        where = record.paths.stability(args.level, k, continued, seeds)
        if len(done.get("points", [])) != args.points:
            raise ValueError(
                f"{where} holds this analysis with {len(done.get('points', []))} points, not --points {args.points}; "
                "delete it to redo it with other points"
            )
        if args.sharpness and "sharpness" not in done:
            raise ValueError(f"{where} holds this analysis without --sharpness (the copies' weights are not kept); delete it to redo it")
        if args.sharpness:
            held = done["sharpness"]
            asked = {"batches": args.sharpness_batches, "max_iterations": args.sharpness_iterations, "samples": args.sharpness_samples}
            if any(k not in held for k in asked):  # recorded before the counts were: unknown
                raise ValueError(f"{where} holds this analysis's sharpness without its counts recorded; delete it to redo it")
            differ = [
                f"--sharpness_{'iterations' if k == 'max_iterations' else k} {v} (held: {held[k]})"
                for k, v in asked.items()
                if k in held and held[k] != v
            ]
            if differ:
                raise ValueError(f"{where} holds this analysis's sharpness with other counts: {', '.join(differ)}; delete it to redo it")
        logger.info("stability of level %d from rewind step %d already complete: %s", args.level, k, where)
        return done
    ticket = record.load_ticket(args.level)
    run_inputs = _RunInputs.of(record, hp)  # reads the data: nothing is written before the checks
    if k > 0:
        out = record.paths.stability(args.level, k)
        check_rewind_step(k, _training_args(hp, out), len(run_inputs.data.train), "one fine-tune of the run")
    with RunLock(record.root):
        return _analyse(args, run_inputs, k, ticket, continued)


def _rewind_mode(args: StabilityArguments, hp: dict) -> str:
    """``--rewind_mode``, else the run's: recorded when it mattered (a rewind step > 0 of a run
    recorded since issue 20), ``backbone_restart`` for runs rewound to step K > 0 before the modes
    existed, ``state`` for runs rewound to θ0 (their mode never mattered).

    Raises:
        ValueError: an unknown mode.
    """
    from .imp import REWIND_MODES

    imp = hp.get("imp", {})
    mode = args.rewind_mode or imp.get("rewind_mode") or ("backbone_restart" if imp.get("rewind_step", 0) > 0 else "state")
    if mode not in REWIND_MODES:
        raise ValueError(f"--rewind_mode {mode!r}: choose one of {', '.join(REWIND_MODES)}")
    return mode


@dataclass
class _RunInputs:
    """What the analyses of a run need from it: its record, hyperparameters, task, θ0 and data."""

    record: RunRecord
    hp: dict
    task: Any
    model_name: str
    revision: str | None
    tokenizer: Any
    data: Any

    @classmethod
    def of(cls, record: RunRecord, hp: dict) -> _RunInputs:
        return cls(record, hp, *_run_inputs(hp))

    @property
    def seed(self) -> int:
        return self.hp["training"]["seed"]

    def theta0_with_head(self) -> torch.nn.Module:
        """θ0 with the run's initial head (what level 0 started from)."""
        model = load_theta0(self.task, self.model_name, self.seed, revision=self.revision)
        load_into(model, self.record.load_initial_head(self.seed), "initial head")
        return model

    def evaluate(self, model: torch.nn.Module, out: Path) -> dict[str, float]:
        return evaluate_model(model, self.task, self.data, _training_args(self.hp, out), output_dir=str(out), tokenizer=self.tokenizer)


def _continued_start(run: _RunInputs, k: int, ticket: TicketMask, out: Path) -> str:
    """The run seed's whole state at step ``k`` of dense level-0 training (a Trainer checkpoint
    directory, :func:`~bert_tickets.training.weights.write_start_point`), made now by training
    the dense network ``k`` steps when the run has none: where both copies continue from. For a
    data-diet run at its own rewind step, the seed's state after the diet's pre-training.

    Raises:
        ValueError: ``k`` beyond the optimizer steps of one fine-tune; a data-diet run without
            that seed's state at its rewind step.
    """
    imp = run.hp["imp"]
    diet = imp.get("rewind_data", "full") != "full" and k == imp.get("rewind_step")
    if diet and imp.get("rewind_mode") != "state":
        raise ValueError(
            f"{run.record.root}: this data-diet run rewinds as backbone_restart (recorded before session 14); "
            "use --rewind_mode backbone_restart"
        )
    found = run.record.rewind_start(run.seed, k)
    if found is not None:
        return str(found)
    if diet:  # its state at step k comes from the subset: dense training on the full data would be another start
        raise ValueError(
            f"{run.record.rewind_start_problem(run.seed, k)}: the data diet's state of seed {run.seed} at step {k}; "
            "re-run the same find command to re-create it"
        )
    logger.info("no state at step %d in the run: training the dense network %d steps to make it", k, k)
    _train_dense_to(
        run, k, ticket, out, RewindPointCapture(k, None, stop=True, save_start=lambda w: run.record.save_rewind_start(run.seed, k, w))
    )
    return str(run.record.paths.rewind_start(k, run.seed))


def _train_dense_to(run: _RunInputs, k: int, ticket: TicketMask, out: Path, capture: RewindPointCapture) -> None:
    """Train the dense network (θ0 with the initial head, the run's hyperparameters) until
    ``capture`` has saved what it saves at step ``k`` (it stops the training there).

    Raises:
        ValueError: ``k`` beyond the optimizer steps of one fine-tune.
    """
    start = run.theta0_with_head()
    dense = TicketMask.dense(start, ticket.metadata.prunable_patterns, ticket.metadata.exclude_patterns)
    rewind_args = _training_args(run.hp, out / "rewind")
    finetune(
        start,
        dense,
        run.task,
        run.data,
        rewind_args,
        seed=run.seed,
        output_dir=str(out / "rewind"),
        tokenizer=run.tokenizer,
        callbacks=[capture],
    )
    if not capture.done:
        raise ValueError(f"--rewind_step {k} exceeds the optimizer steps of one fine-tune")


def _start_point(run: _RunInputs, k: int, ticket: TicketMask, out: Path) -> torch.nn.Module:
    """The copies' starting weights when the schedule restarts: θ0 with the initial head, its
    backbone at rewind step ``k`` (the run's rewind point, made now by training the dense network
    when the run has none), the ticket applied.

    Raises:
        ValueError: ``k`` beyond the optimizer steps of one fine-tune.
    """
    start = run.theta0_with_head()
    if k > 0:
        if not run.record.has_rewind_point(k):
            logger.info("no rewind point at step %d in the run: training the dense network %d steps to make it", k, k)
            _train_dense_to(run, k, ticket, out, RewindPointCapture(k, lambda state: run.record.save_rewind_point(k, state), stop=True))
        load_into(get_backbone(start), run.record.load_rewind_point(k), f"rewind point {k}")
    ticket.apply(start)
    return start


def _train_copies(
    run: _RunInputs, start: torch.nn.Module, ticket: TicketMask, data_seeds: list[int], out: Path, level: int, resume: str | None = None
):
    """Two copies of ``start`` fine-tuned under ``ticket`` with the run's seed and the given
    data-order seeds (from ``resume``, a start point at step k, when given: every weight, the
    schedule and the step count come from it, and the data orders part after step k): their
    final weights and metrics."""
    ends, end_metrics = [], []
    for s in data_seeds:
        copy_model = copy.deepcopy(start)
        result = finetune(
            copy_model,
            ticket,
            run.task,
            run.data,
            _training_args(run.hp, out / f"copy_{s}", data_seed=s),
            seed=run.seed,
            output_dir=str(out / f"copy_{s}"),
            tokenizer=run.tokenizer,
            resume_from_checkpoint=resume,
        )
        ends.append({n: t.detach().cpu().clone() for n, t in copy_model.state_dict().items()})
        end_metrics.append(result.metrics)
        metric = run.task.primary_metric
        logger.info("stability level %d, copy with data seed %d: %s %.4f", level, s, metric, result.metrics[metric])
    return ends, end_metrics


def _analyse(args: StabilityArguments, run: _RunInputs, k: int, ticket: TicketMask, continued: bool = False) -> dict[str, Any]:
    """The instability analysis of one level (see :func:`run`): start point, two copies, the
    linear path between them, its barriers; saved with its plot. ``continued``: the copies
    continue from the whole state at step ``k`` (``--rewind_mode state``)."""
    started = time.perf_counter()
    record = run.record
    out = record.paths.stability(args.level, k, continued, tuple(args.data_seeds))
    resume = _continued_start(run, k, ticket, out) if continued else None
    start = run.theta0_with_head() if continued else _start_point(run, k, ticket, out)
    if continued:
        ticket.apply(start)
    ends, end_metrics = _train_copies(run, start, ticket, args.data_seeds, out, args.level, resume)
    path = evaluate_linear_path(start, ends[0], ends[1], lambda m: run.evaluate(m, out / "path"), args.points)
    metric = run.task.primary_metric
    seeds = args.data_seeds
    result = {
        "level": args.level,
        "rewind_step": k,
        "rewind_mode": "state" if continued else ("backbone_restart" if k > 0 else None),
        "sparsity": ticket.sparsity,
        "metric": metric,
        "data_seeds": list(seeds),
        "seed": run.seed,
        "points": [{"alpha": p.alpha, "metrics": p.metrics} for p in path],
        "end_metrics": end_metrics,
        **_barriers(path, metric),
        "barrier_rule": f"{metric}: mean of the two ends minus the lowest value on the path (the barrier of 1 - {metric}); "
        "loss: the highest loss on the path minus the mean of the two ends",
        "wall_s": time.perf_counter() - started,
        "title": f"{run.task.name} level {args.level} (sparsity {ticket.sparsity:.3f}), rewind step {k}"
        + (" (state continued)" if continued else "")
        + f", data seeds {seeds[0]} / {seeds[1]}",
    }
    if args.sharpness:
        result["sharpness"] = _sharpness(args, run, start, ends, ticket, out / "sharpness")
    linear_path_plot(result, out / "path.png")
    record.write_stability(args.level, k, result, continued, tuple(args.data_seeds))
    barrier = result["barrier"]
    logger.info(
        "stability level %d from rewind step %d: barrier %s %.4f, loss %.4f (%s)",
        args.level,
        k,
        metric,
        barrier[metric],
        barrier["loss"],
        out,
    )
    return result


def _sharpness(
    args: StabilityArguments, run: _RunInputs, start: torch.nn.Module, ends: list[dict], ticket: TicketMask, out: Path
) -> dict[str, Any]:
    """Each copy's top Hessian eigenvalue and Hutchinson trace (:mod:`bert_tickets.connectivity.
    sharpness`) of the mean training loss over the first ``--sharpness_batches`` training batches
    the run's seed draws, in evaluation mode (dropout off: a deterministic loss), with eager
    attention (double backward), over every trainable weight except the pruned ones."""
    batches = training_batches(
        start, run.task, run.data, _training_args(run.hp, out), seed=run.seed, num_batches=args.sharpness_batches, tokenizer=run.tokenizer
    )
    measured = {}
    for data_seed, end in zip(args.data_seeds, ends, strict=True):
        model = copy.deepcopy(start)
        model.load_state_dict(end)
        model.set_attn_implementation("eager")
        model.eval()

        device = next(model.parameters()).device

        def loss_fn(model=model, device=device):
            return sum(model(**{k: v.to(device) for k, v in b.items()}).loss for b in batches) / len(batches)

        top = top_eigenvalue(model, loss_fn, ticket.masks, iterations=args.sharpness_iterations, seed=run.seed)
        trace = hutchinson_trace(model, loss_fn, ticket.masks, samples=args.sharpness_samples, seed=run.seed)
        measured[str(data_seed)] = {"top_eigenvalue": top, "trace": trace}
        logger.info(
            "sharpness of the copy with data seed %d: top Hessian eigenvalue %.4g (%d iterations%s), trace %.4g ± %.2g",
            data_seed,
            top["eigenvalue"],
            top["iterations"],
            "" if top["converged"] else ", not converged",
            trace["trace"],
            trace["stderr"],
        )
        del model
    return {
        "batches": args.sharpness_batches,
        "batch_size": len(next(iter(batches[0].values()))),
        "max_iterations": args.sharpness_iterations,
        "samples": args.sharpness_samples,
        "copies": measured,
    }


def successive_barriers(args: StabilityArguments) -> dict[str, Any]:
    """The linear path between the trained networks of levels L − 1 and L, for every pair whose
    trained weights the run kept (``find --save_trained``), and its barriers (Paul et al. 2022,
    *Unmasking the Lottery Ticket Hypothesis*, Section 4). The two ends have different masks:
    the path runs between the weights as they are, so a weight pruned at L but not at L − 1
    goes linearly from its trained value at L − 1 to 0, and a weight pruned at both stays 0. The
    barriers are added to the run's summary in their own columns (``barrier_successive``,
    ``barrier_successive_loss`` of level L).

    Returns:
        ``{"pairs": {L: result}, "missing": [L, ...]}`` (levels without trained weights).

    Raises:
        ValueError / FileNotFoundError: not a run, fewer than --points 3, or no pair with kept
            trained weights (one line, before any work).
    """
    if args.points < 3:
        raise ValueError(f"--points must be >= 3 (the ends and a point between), got {args.points}")
    info = read_run(args.run_dir)
    record = RunRecord(args.run_dir)
    pairs = [lv for lv in sorted(info.levels) if lv > 0 and lv - 1 in info.levels]
    ready = [lv for lv in pairs if record.has_trained_model(lv - 1) and record.has_trained_model(lv)]
    if not ready:
        raise FileNotFoundError(
            f"{args.run_dir}: no two successive complete levels kept their trained weights; run find with --save_trained"
        )
    hp = info.config["hyperparameters"]
    results: dict[int, dict] = {}
    with RunLock(record.root):
        run = model = None
        for lv in ready:
            results[lv] = record.completed_successive(lv)
            if results[lv] is None:
                if run is None:
                    run = _RunInputs.of(record, hp)
                    model = load_theta0(run.task, run.model_name, run.seed, revision=run.revision)
                results[lv] = _successive_pair(run, model, info, lv, args.points)
        if record.paths.summary_json.is_file():
            record.write_summary(read_json(record.paths.summary_json))
    return {"pairs": results, "missing": [lv for lv in pairs if lv not in ready]}


def _successive_pair(run: _RunInputs, model: torch.nn.Module, info, lv: int, points: int) -> dict[str, Any]:
    """The path from trained level ``lv`` − 1 to trained level ``lv``: evaluated, saved, plotted."""
    out = run.record.paths.successive(lv)
    started = time.perf_counter()
    ends = run.record.load_trained_model(lv - 1), run.record.load_trained_model(lv)
    path = evaluate_linear_path(model, *ends, lambda m: run.evaluate(m, out), points)
    metric = run.task.primary_metric
    result = {
        "from_level": lv - 1,
        "level": lv,
        "sparsity": [info.levels[lv - 1]["sparsity"], info.levels[lv]["sparsity"]],
        "metric": metric,
        "points": [{"alpha": p.alpha, "metrics": p.metrics} for p in path],
        **_barriers(path, metric),
        "barrier_rule": "as for the instability analysis; the ends are the trained levels L-1 and L (different masks)",
        "wall_s": time.perf_counter() - started,
        "title": f"{run.task.name}: trained level {lv - 1} -> trained level {lv}",
    }
    linear_path_plot(result, out / "path.png")
    run.record.write_successive(lv, result)
    logger.info("levels %d -> %d: barrier %s %.4f, loss %.4f", lv - 1, lv, metric, result["barrier"][metric], result["barrier"]["loss"])
    return result


#: The argument dataclasses of ``stability``.
ARGUMENTS = (StabilityArguments,)

__all__ = ["ARGUMENTS", "StabilityArguments", "run", "successive_barriers"]
