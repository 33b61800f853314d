"""Iterative magnitude pruning (IMP) with rewinding — the ``find`` experiment: its arguments
(:class:`IMPArguments`) and the level loop (:class:`IMPRunner`).

Chen et al. 2020, *The Lottery Ticket Hypothesis for Pre-trained BERT Networks*, Algorithm 1
(and the VITA-Group/BERT-Tickets code): level 0 fine-tunes the dense model from θ0; every next
level prunes the trained weights globally by magnitude to the schedule's sparsity, rewinds the
surviving weights to θ0 (or to step ``k`` of level-0 fine-tuning, Frankle et al. 2020), resets
the task head to its level-0 initial values, and fine-tunes again with a fresh optimizer and LR
schedule. The loop is ``while (s := schedule.next(history)) is not None``; each level's
fine-tunes go through :func:`bert_tickets.training.finetune.finetune` and every file goes
through :class:`bert_tickets.results.RunRecord` (layout in :mod:`bert_tickets.results.paths`).

A level whose ``metrics.json`` exists is skipped when the command is re-run (resume); the next
level's mask is saved before ``metrics.json``, so resuming never needs the trained weights.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from transformers import AutoTokenizer

from .._io import first_line, read_json
from .._registry import options_help, parse_options, split_assignments
from ..connectivity import error_barrier, evaluate_linear_path
from ..pruning import CRITERIA_REGISTRY as CRITERIA
from ..pruning import SCHEDULES_REGISTRY as SCHEDULES
from ..pruning import (
    add_cost,
    collapse_options_hint,
    collapsed_tensors,
    get_criterion,
    low_scale_tensors,
    make_schedule,
    prune_ticket,
    schedule_hash_entries,
    target_count,
)
from ..pruning.select import SCOPES
from ..pruning.structured import GRANULARITIES, bert_groups
from ..results import (
    LevelResult,
    RunRecord,
    argument_groups,
    check_output_dir,
    claim_directory,
    format_summary,
    hyperparameter_hash,
    kinds,
    near_constant_count,
    summarize,
    verdicts,
)
from ..tasks import PreparedData, TaskSpec, get_kind, get_task
from ..ticket import (
    DEFAULT_PRUNABLE_PATTERNS,
    TicketMask,
    TicketMetadata,
    check_model_source,
    get_backbone,
    local_checkpoint_revision,
    prunable_parameters,
    resolve_model_path,
)
from ..training.data_diet import REWIND_DATA, easy_subset, label_distribution, mean_el2n, random_subset
from ..training.distributed import check_same_on_all_ranks, close_process_group
from ..training.early_bird import EarlyBirdOptions
from ..training.finetune import (
    check_rewind_step,
    evaluate_model,
    finetune,
    global_batch_size,
    optimizer_steps,
    training_batches,
    training_hyperparameters,
)
from ..training.weights import RewindPointCapture, backbone_state, head_state, load_into, load_theta0
from .common import DataArguments, ModelArguments
from .early_bird import EarlyBirdLevels
from .mask_data import MaskDataSearch, resolve_mask_data, search_schedule

logger = logging.getLogger("bert_tickets")


@dataclass
class IMPArguments:
    """Iterative magnitude pruning (Chen et al. 2020, Algorithm 1; BERT-Tickets' code)."""

    schedule: str = field(
        default="linear",
        metadata={
            "help": "How many weights each level prunes; a registry (bert_tickets.pruning.schedules): "
            + "; ".join(f"{n}: {SCHEDULES.get(n).summary}" for n in SCHEDULES.names()).replace("%", "%%"),
        },
    )
    schedule_options: list[str] | None = field(
        default=None,
        metadata={
            "help": "Options of the schedule as KEY=VALUE (also --KEY VALUE; in a JSON config also a mapping): "
            + " | ".join(f"{n}: {options_help(SCHEDULES.get(n).Options)}" for n in SCHEDULES.names()).replace("%", "%%"),
        },
    )
    barrier_points: int = field(
        default=11, metadata={"help": "Points on the linear path when the schedule needs barriers between levels (>= 3)."}
    )
    target_sparsity: float = field(default=0.9, metadata={"help": "Stop after the level that reaches this sparsity (fraction in [0, 1))."})
    max_levels: int | None = field(default=None, metadata={"help": "Stop after this many pruned levels (level 0 is dense)."})
    criterion: str = field(
        default="magnitude",
        metadata={
            "aliases": ["--pruning_method"],
            "help": "Which weights each level prunes (a registry, bert_tickets.pruning.criteria): magnitude (IMP), random "
            "(baseline) or importance (Michel et al.'s head / FFN-neuron importance, structured --granularity only); criteria for "
            "pruning at initialisation belong to prune-at-init.",
        },
    )
    criterion_options: list[str] | None = field(
        default=None, metadata={"help": "Options of the criterion as KEY=VALUE (also --KEY VALUE), when it has any."}
    )
    pruning_scope: str = field(
        default="global",
        metadata={
            "help": "global: one magnitude ranking over all prunable tensors (BERT-Tickets). layerwise: every tensor "
            "pruned to the same sparsity; with a structured --granularity, the same fraction of every layer's heads / neurons "
            "(round(s x per-layer count) each)."
        },
    )
    granularity: str = field(
        default="weight",
        metadata={
            "help": "What one pruning decision removes: weight (unstructured), head (an attention head: its Q/K/V rows and "
            "attention-output columns), neuron (an FFN unit: its intermediate row and output column), head+neuron, or 2:4 "
            "(2 of every 4 consecutive input weights, sparsity 0.5 only). Structured: the schedule's sparsity is the fraction "
            "of heads / neurons pruned; masks stay weight-shaped (bert_tickets.pruning.structured)."
        },
    )
    min_groups_per_layer: int = field(
        default=0, metadata={"help": "Structured granularities: heads / neurons kept alive in every layer (e.g. 1)."}
    )
    max_tensor_sparsity: float | None = field(
        default=None,
        metadata={
            "help": "Cap on any one tensor's sparsity within global pruning (fraction); the excess goes to the other "
            "tensors so the global count stays exact. Guards against layer collapse."
        },
    )
    collapse_threshold: float = field(
        default=0.99, metadata={"help": "Warn about any tensor pruned beyond this fraction (layer collapse)."}
    )
    rewind_step: int = field(
        default=0,
        metadata={"help": "Rewind surviving weights to θ0 (0) or to the weights after this many steps of level-0 (dense) fine-tuning."},
    )
    rewind_mode: str = field(
        default="state",
        metadata={
            "help": "With --rewind_step K > 0: state = every weight of step K (backbone and head) and the learning-rate schedule "
            "and data order go on from step K (Frankle et al. 2020; open_lth; with --rewind_data random / easy each seed's "
            "pre-training on the subset, and level 0 too goes on from it, as lth_diet); backbone_restart = the step-K backbone "
            "with the step-0 head and the schedule restarted (the behaviour before issue 20)."
        },
    )
    rewind_data: str = field(
        default="full",
        metadata={
            "help": "Data of the first --rewind_step steps (the rewind point; Paul et al. 2022, 'Lottery Tickets on a Data Diet'): "
            "full (level-0 training itself), random or easy (a separate pre-training on --rewind_subset_size examples, chosen "
            "at random or as the lowest-EL2N ones); the IMP levels train on the full data."
        },
    )
    rewind_subset_size: int | None = field(default=None, metadata={"help": "Training examples of a random / easy rewind subset."})
    el2n_models: int = field(default=10, metadata={"help": "easy: short runs whose EL2N scores are averaged (lth_diet: 10)."})
    el2n_steps: int | None = field(
        default=None,
        metadata={
            "help": "easy: optimizer steps of each short run (default: one epoch of the training set; issue 20: after --rewind_step "
            "steps, e.g. 10, EL2N on STS-B selects by label value)."
        },
    )
    keep_trained_head: bool = field(
        default=False,
        metadata={
            "help": "Start each level from the previous level's trained task head (as BERT-Tickets' code does) "
            "instead of the level-0 initial head."
        },
    )
    save_trained: bool = field(
        default=False,
        metadata={
            "help": "Keep each level's fine-tuned weights (first seed; level_LL/trained_model.safetensors) for "
            "'bert-tickets export' and barriers between levels."
        },
    )
    prunable_patterns: list[str] | None = field(
        default=None,
        metadata={"help": "Regexes (fullmatch, backbone-relative names) of the prunable weights; default: the BERT-Tickets set."},
    )
    exclude: list[str] | None = field(
        default=None, metadata={"help": "Regexes of weights to leave out of the prunable set, e.g. 'pooler\\..*'."}
    )
    early_bird: bool = field(
        default=False,
        metadata={
            "help": "Early-bird levels (You et al. 2020; EarlyBERT): each level's mask search (first seed) stops once the next "
            "magnitude mask settles (--early_bird_options), and only the levels a bisection needs are judged (full fine-tune, "
            "every seed). Needs a fixed schedule (linear, geometric) and magnitude pruning."
        },
    )
    early_bird_options: list[str] | None = field(
        default=None,
        metadata={"help": "Early-bird options as KEY=VALUE: " + options_help(EarlyBirdOptions).replace("%", "%%")},
    )
    mask_data: str | None = field(
        default=None,
        metadata={
            "help": "Search each level's mask on other data (McDermott et al. 2023: IMP on distilled data): a synthetic set file "
            "(.json/.jsonl text, e.g. DiLM's; .safetensors embeddings), random_like=FILE (the control: as many random real "
            "training examples), or a training-data source name. The first seed trains on it (--mask_data_* schedule) and the "
            "next mask is pruned from those weights; every level is still judged on the real training set."
        },
    )
    mask_data_options: list[str] | None = field(
        default=None, metadata={"help": "Options of the --mask_data source as KEY=VALUE (e.g. max_seq_length=64)."}
    )
    mask_data_steps: int | None = field(
        default=None,
        metadata={
            "help": "Optimizer steps of each mask search (default: the set's schedule — DiLM's 200 for text and real "
            "examples, the distilled inner steps for an embeddings set that carries its learning_rates)."
        },
    )
    mask_data_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Examples per search step (default: DiLM's 128 drawn with replacement; an embeddings set with its "
            "learning_rates: the whole set every step, as it was distilled)."
        },
    )
    mask_data_learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate of the search (default DiLM's 1e-4; a distilled set's own step sizes)."}
    )
    mask_data_warmup: float | None = field(
        default=None, metadata={"help": "Warm-up of the search's linear schedule: a ratio in [0, 1) or steps (default DiLM's 0.5)."}
    )
    mask_data_weight_decay: float | None = field(default=None, metadata={"help": "Weight decay of the search (default DiLM's 0.01)."})
    seeds: list[int] | None = field(
        default=None,
        metadata={
            "help": "Fine-tuning seeds per level (default: --seed). With several, matching = within one std of dense; "
            "the first seed's trained weights are pruned."
        },
    )
    tolerance: float = field(
        default=0.01,
        metadata={
            "help": "With one seed, a level is matching when its metric >= dense metric - tolerance (metric units, e.g. 0.01 = 1 point)."
        },
    )

    def __post_init__(self):
        self.criterion = CRITERIA.canonical(self.criterion)  # unknown names refused here, before any work
        self.schedule_config()
        self.criterion_config()
        self.early_bird_config()

    @property
    def patterns(self) -> list[str]:
        return list(self.prunable_patterns) if self.prunable_patterns else list(DEFAULT_PRUNABLE_PATTERNS)

    def schedule_config(self) -> Any:
        """The schedule's options (its ``Options`` instance, ``None`` if it has none) from
        ``--schedule_options``.

        Raises:
            ValueError: unknown schedule, an option it does not have, or a value out of range.
        """
        return SCHEDULES.get(self.schedule).options(split_assignments(self.schedule_options, flag="--schedule_options"))

    def early_bird_config(self) -> EarlyBirdOptions | None:
        """The early-bird options (``None`` without ``--early_bird``) from ``--early_bird_options``.

        Raises:
            ValueError: options without ``--early_bird``, an unknown option or a value out of range.
        """
        given = split_assignments(self.early_bird_options, flag="--early_bird_options")
        if not self.early_bird:
            if given:
                raise ValueError("--early_bird_options needs --early_bird")
            return None
        return parse_options(EarlyBirdOptions, given, what="--early_bird")

    def criterion_config(self) -> Any:
        """The criterion's options (``None`` if it has none) from ``--criterion_options``.

        Raises:
            ValueError: unknown criterion, an option it does not have, or a value out of range.
        """
        return CRITERIA.get(self.criterion).options(split_assignments(self.criterion_options, flag="--criterion_options"))


#: How a level rewinds to step K > 0 (``--rewind_mode``; see :class:`IMPArguments`).
REWIND_MODES = ("state", "backbone_restart")


def continues_from_step(imp_args: IMPArguments) -> bool:
    """Whether levels continue from each seed's whole state at the rewind step k
    (``--rewind_mode state``, k > 0) rather than from rewound weights with the schedule restarted
    (``backbone_restart``). With full-data rewinding the state is level 0's own at step k and the
    pruned levels continue from it; with a data diet it is the seed's pre-training on the subset
    and every level, level 0 included, continues from it (:func:`level0_continues`)."""
    return imp_args.rewind_step > 0 and imp_args.rewind_mode == "state"


def level0_continues(imp_args: IMPArguments) -> bool:
    """Whether level 0 too starts from each seed's state at the rewind step: data-diet rewinding
    in ``state`` mode, as lth_diet (mansheej/lth_diet, ``exps/lottery.py``: the pre-training's
    final model is ``model_init`` of every level, level 0 included)."""
    return continues_from_step(imp_args) and imp_args.rewind_data != "full"


#: ``find`` options of data-diet rewinding (part of a run's hash only with ``--rewind_data`` random / easy).
DIET_OPTIONS = ("rewind_data", "rewind_subset_size", "el2n_models", "el2n_steps")


def run_hyperparameters(model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args) -> dict:
    """The hyperparameters that define a run (everything that changes a level's result); their
    :func:`~bert_tickets.results.hyperparameter_hash` names the run."""
    imp = asdict(imp_args)
    imp["prunable_patterns"] = imp_args.patterns
    # Where the run stops does not change any level's result: a finished run can be extended
    # (the levels already computed are checked against the new schedule instead).
    for key in ("max_levels", "target_sparsity", "collapse_threshold", "save_trained"):
        imp.pop(key)
    # Plug-in options in the layout runs were recorded with before plug-ins declared them (so
    # every earlier run keeps its hash): the criterion under "pruning_method", its options (if it
    # has any) under "criterion_options", the schedule's options as flat keys.
    imp["pruning_method"] = imp.pop("criterion")
    del imp["criterion_options"], imp["schedule_options"]
    imp.update(schedule_hash_entries(imp_args.schedule, imp_args.schedule_config()))
    if (options := imp_args.criterion_config()) is not None:
        imp["criterion_options"] = asdict(options)
    if not SCHEDULES.get(imp_args.schedule).uses_barrier:  # barriers are computed only for such schedules
        imp.pop("barrier_points")
    if imp_args.granularity == "weight" and imp_args.min_groups_per_layer == 0:  # (earlier runs keep their hash)
        imp.pop("granularity")
        imp.pop("min_groups_per_layer")
    del imp["early_bird_options"]
    mask_keys = ("mask_data", "mask_data_options", "mask_data_steps", "mask_data_batch_size", "mask_data_learning_rate")
    mask_keys += ("mask_data_warmup", "mask_data_weight_decay")
    for key in mask_keys:
        imp.pop(key)
    if imp_args.mask_data is not None:  # (runs without it keep their hash)
        seed = imp_args.seeds[0] if imp_args.seeds else training_args.seed
        source, options, provenance = resolve_mask_data(
            imp_args.mask_data, split_assignments(imp_args.mask_data_options, flag="--mask_data_options"), get_task(data_args.task), seed
        )
        schedule = search_schedule(imp_args, source, options)
        imp["mask_data"] = {"mask_data": source, "mask_data_options": options, "provenance": provenance, "schedule": schedule}
    if imp_args.early_bird:  # (runs without it keep their hash)
        imp["early_bird"] = asdict(imp_args.early_bird_config())
    else:
        imp.pop("early_bird")
    if imp_args.rewind_step == 0 or imp_args.rewind_mode == "backbone_restart":
        # No effect there, and runs recorded before the modes keep their hash: full-data runs
        # before issue 20 and data-diet runs before session 14, which all rewound as backbone_restart.
        imp.pop("rewind_mode")
    if imp_args.rewind_data == "full":  # (and runs recorded before data diets keep their hash)
        for key in DIET_OPTIONS:
            imp.pop(key)
    elif imp_args.rewind_data == "random":
        for key in ("el2n_models", "el2n_steps"):
            imp.pop(key)
    elif imp_args.el2n_steps is None:
        imp["el2n_steps"] = "epoch"  # the default's meaning changed (was --rewind_step): another run
    # Local paths are resolved (the same run from any working directory), and a local
    # checkpoint's revision is the sha256 of its weights: a changed θ0 is another run.
    local = local_checkpoint_revision(model_args.model_name_or_path)
    model = asdict(model_args) | {"cache_dir": None, "model_name_or_path": resolve_model_path(model_args.model_name_or_path)}
    if local is not None:
        model["revision"] = local
    data = asdict(data_args)
    if data["data_dir"] is not None and os.path.exists(os.path.expanduser(data["data_dir"])):
        data["data_dir"] = os.path.realpath(os.path.expanduser(data["data_dir"]))
    # The global batch (per-device batch x processes x accumulation) defines the run, not how it
    # is split over processes: the same global batch on another number of processes continues a
    # run, another global batch is another run.
    training = training_hyperparameters(training_args)
    training["global_train_batch_size"] = global_batch_size(training_args)
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        training.pop(key)
    return {
        "model": model,
        "data": data,
        "imp": imp,
        "training": training,
    }


def check_imp_arguments(imp_args: IMPArguments, task: TaskSpec, seeds: list[int]) -> None:
    """The checks of ``find``'s own arguments that need no file (one-line ``ValueError`` each):
    distinct seeds in ``[0, 2**32)``, scope and cap (a fraction in (0, 1]), rewind step, data-diet
    options, tolerance."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct, got {seeds}")
    if any(not 0 <= s < 2**32 for s in seeds):
        raise ValueError(f"--seeds must be integers in [0, 2**32), got {' '.join(map(str, seeds))}")
    if imp_args.pruning_scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {imp_args.pruning_scope!r}; choose one of {', '.join(SCOPES)}")
    if imp_args.pruning_scope == "layerwise" and imp_args.max_tensor_sparsity is not None:
        raise ValueError("--max_tensor_sparsity applies to --pruning_scope global only (layer-wise pruning cannot collapse a layer)")
    if imp_args.max_tensor_sparsity is not None and not 0.0 < imp_args.max_tensor_sparsity <= 1.0:
        raise ValueError(f"--max_tensor_sparsity must be a fraction in (0, 1], got {imp_args.max_tensor_sparsity}")
    if imp_args.rewind_step < 0:
        raise ValueError(f"--rewind_step must be >= 0, got {imp_args.rewind_step}")
    if imp_args.rewind_mode not in REWIND_MODES:
        raise ValueError(f"--rewind_mode {imp_args.rewind_mode!r}: choose one of {', '.join(REWIND_MODES)}")
    if imp_args.keep_trained_head and continues_from_step(imp_args):
        raise ValueError("--keep_trained_head replaces the head a rewind restores: use it with --rewind_mode backbone_restart")
    if imp_args.rewind_data not in REWIND_DATA:
        raise ValueError(f"--rewind_data {imp_args.rewind_data!r}: choose one of {', '.join(REWIND_DATA)}")
    if imp_args.rewind_data != "full":
        if imp_args.rewind_step < 1:
            raise ValueError(f"--rewind_data {imp_args.rewind_data} needs a rewind point: --rewind_step >= 1")
        if imp_args.rewind_subset_size is None or imp_args.rewind_subset_size < 1:
            raise ValueError(f"--rewind_data {imp_args.rewind_data} needs --rewind_subset_size >= 1")
        if imp_args.el2n_models < 1 or (imp_args.el2n_steps is not None and imp_args.el2n_steps < 1):
            raise ValueError("--el2n_models and --el2n_steps must be >= 1")
        if task.kind != "glue":
            raise ValueError(f"--rewind_data {imp_args.rewind_data}: EL2N and subsets are defined for GLUE tasks here")
    if imp_args.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0, got {imp_args.tolerance}")
    if imp_args.mask_data is not None:
        if imp_args.early_bird or imp_args.rewind_step > 0:
            raise ValueError(
                "--mask_data rewinds to θ0 (McDermott et al. 2023: to initialisation): not with --early_bird or --rewind_step > 0"
            )
        if any(v is not None and v < 1 for v in (imp_args.mask_data_steps, imp_args.mask_data_batch_size)):
            raise ValueError("--mask_data_steps and --mask_data_batch_size must be >= 1")
        lr, wd, warm = imp_args.mask_data_learning_rate, imp_args.mask_data_weight_decay, imp_args.mask_data_warmup
        if (lr is not None and not lr > 0) or (wd is not None and wd < 0) or (warm is not None and warm < 0):
            raise ValueError("--mask_data_learning_rate must be > 0, --mask_data_warmup and --mask_data_weight_decay >= 0")
    elif imp_args.mask_data_options:
        raise ValueError("--mask_data_options needs --mask_data")
    if imp_args.granularity not in GRANULARITIES:
        raise ValueError(f"--granularity {imp_args.granularity!r}: choose one of {', '.join(GRANULARITIES)}")
    if imp_args.min_groups_per_layer < 0 or (imp_args.min_groups_per_layer and imp_args.granularity in ("weight", "2:4")):
        raise ValueError("--min_groups_per_layer must be >= 0 and applies to --granularity head, neuron or head+neuron")
    if imp_args.granularity == "2:4" and imp_args.pruning_scope != "global":
        raise ValueError("--granularity 2:4 is the same in every row of every matrix: leave --pruning_scope global")
    if imp_args.mask_data is not None and get_criterion(imp_args.criterion).needs_data:
        raise ValueError(
            f"--mask_data decides each mask from the mask data alone: --criterion {imp_args.criterion} scores on the real training set"
        )
    allowed = get_criterion(imp_args.criterion).granularities
    if allowed is not None and imp_args.granularity not in allowed:
        raise ValueError(f"--criterion {imp_args.criterion} scores whole units: use --granularity {' or '.join(allowed)}")
    if imp_args.granularity != "weight" and (imp_args.max_tensor_sparsity is not None or imp_args.early_bird):
        raise ValueError("--granularity other than weight prunes whole groups: not with --max_tensor_sparsity or --early_bird")
    if imp_args.early_bird and (imp_args.keep_trained_head or imp_args.rewind_data != "full"):
        raise ValueError(
            "--early_bird searches levels that are never fully trained: it cannot keep their trained heads (--keep_trained_head) "
            "and rewinds with --rewind_data full only"
        )


class IMPRunner:
    """Finds a lottery ticket by IMP on one task.

    Args:
        model_args, data_args, imp_args: the ``find`` dataclasses.
        training_args: ``transformers.TrainingArguments``; its ``output_dir`` is the run
            directory, its ``seed`` the default seed; every option passes through to each
            fine-tune.

    Construction validates everything cheap (task, schedule, criterion, scope, data files and
    columns, prunable weights of the model, consistency with an existing run directory) and
    raises ``ValueError`` / ``FileNotFoundError`` / ``OSError`` with a one-line message before
    any training.
    """

    def __init__(self, model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args):
        self.model_args, self.data_args, self.imp_args, self.training_args = model_args, data_args, imp_args, training_args
        self.task: TaskSpec = get_task(data_args.task)
        self.kind = get_kind(self.task.kind)
        self.seeds = list(imp_args.seeds) if imp_args.seeds else [training_args.seed]
        check_imp_arguments(imp_args, self.task, self.seeds)
        options = imp_args.schedule_config()
        self.schedule = make_schedule(
            imp_args.schedule, imp_args.target_sparsity, imp_args.max_levels, **(asdict(options) if options is not None else {})
        )
        if self.schedule.uses_barrier and imp_args.barrier_points < 3:
            raise ValueError(f"--barrier_points must be >= 3, got {imp_args.barrier_points}")
        if self.schedule.calibrated and imp_args.rewind_step > 0 and not continues_from_step(imp_args):
            raise ValueError(
                f"the {imp_args.schedule} schedule's calibrated limit measures the dense network's instability from the rewind point, "
                "which needs --rewind_mode state (or --schedule_options barrier_scale=none)"
            )
        # A schedule that steps back or reads barriers needs the trained weights of earlier levels.
        self.keep_trained = imp_args.save_trained or self.schedule.adaptive or self.schedule.uses_barrier
        self.planned = None if self.schedule.adaptive else self.schedule.preview()
        self.criterion = get_criterion(imp_args.criterion)
        if imp_args.early_bird and (self.schedule.adaptive or self.schedule.uses_barrier or imp_args.criterion != "magnitude"):
            raise ValueError(
                "--early_bird draws magnitude masks on a fixed schedule: use --schedule linear or geometric with --criterion magnitude"
            )
        if self.criterion.needs_data and self.criterion.at_init:
            raise ValueError(
                f"--criterion {imp_args.criterion} scores weights on training data, for pruning at initialisation; "
                "IMP prunes trained weights (magnitude, random, importance); use bert-tickets prune-at-init"
            )
        if data_args.data_dir is not None:
            self.kind.validate_inputs(self.task, data_args.data_dir)
        check_output_dir(training_args.output_dir)
        claim_directory(training_args.output_dir, kinds.RUN)
        self.record = RunRecord(training_args.output_dir, is_main=training_args.process_index == 0)
        self.hparams = run_hyperparameters(model_args, data_args, imp_args, training_args)
        self.hash = hyperparameter_hash(self.hparams)
        self.record.check_config(self.hparams, self.hash, self.planned)
        self.mask_search: MaskDataSearch | None = None
        if imp_args.mask_data is not None:
            if self.schedule.adaptive:
                raise ValueError("--mask_data searches each mask from the level just judged: use a fixed schedule (linear, geometric)")
            mask = self.hparams["imp"]["mask_data"]
            self.mask_search = MaskDataSearch(self, mask["mask_data"], mask["mask_data_options"])
        self._load_theta0_once()
        self._check_structured_targets()
        self.data: PreparedData | None = None
        self._trivial = None

    def _load_theta0_once(self) -> None:
        """Load the tokenizer and θ0 once up front (checks the checkpoint and the prunable set):
        the dense ticket, what the model kind says about the model, and a warning when a
        prunable tensor's scale is far below the others' under a magnitude criterion.

        Raises:
            FileNotFoundError: a local model directory that does not exist (or a name that is
                neither a directory nor a Hub repo id).
            ValueError: a tokenizer that cannot be loaded; no prunable weight matched.
        """
        name, imp_args = self.model_args.model_name_or_path, self.imp_args
        check_model_source(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name, revision=self.model_args.revision, cache_dir=self.model_args.cache_dir)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"--model {name}: its tokenizer cannot be loaded ({first_line(err).rstrip(': ')})") from None
        probe = self._load_model(self.seeds[0])
        self.model_notes = self.kind.describe_model(probe)  # e.g. an MLM head that was not pre-trained
        revision = local_checkpoint_revision(name) or getattr(probe.config, "_commit_hash", None) or self.model_args.revision
        metadata = TicketMetadata(
            base_model=self.hparams["model"]["model_name_or_path"],
            base_model_revision=revision,
            task=self.task.name,
            schedule=imp_args.schedule,
            rewind_step=imp_args.rewind_step,
            extra=dict(self.model_notes),
        )
        self.dense_ticket = TicketMask.dense(probe, imp_args.prunable_patterns, imp_args.exclude, metadata)
        self.num_heads = getattr(probe.config, "num_attention_heads", None)
        self.low_scale = low_scale_tensors(prunable_parameters(probe, imp_args.prunable_patterns, imp_args.exclude))
        uncapped = imp_args.pruning_scope == "global" and imp_args.max_tensor_sparsity is None
        if self.low_scale and self.criterion.ranks_by_magnitude and uncapped:
            logger.warning(
                "weight scale far below the other prunable tensors (RMS / median RMS): %s; global magnitude pruning will "
                "prune them first and may remove them entirely (layer collapse); %s",
                ", ".join(f"{n} {r:.2f}" for n, r in self.low_scale.items()),
                collapse_options_hint(self.low_scale),
            )

    def _check_structured_targets(self) -> None:
        """Every planned level of a structured granularity is reachable (one-line ``ValueError``
        before any training): ``2:4`` only at sparsity 0.5; ``head`` / ``neuron`` targets within
        what ``--min_groups_per_layer`` leaves prunable."""
        g, planned = self.imp_args.granularity, self.planned or []
        if g == "weight":
            return
        pruned = [s for s in planned if s > 0]
        if g == "2:4":
            if any(abs(s - 0.5) > 1e-12 for s in pruned):
                raise ValueError(
                    f"--granularity 2:4 prunes exactly half of every block of 4: one level at 0.5 "
                    f"(e.g. --prune_step 0.5 --max_levels 1), not the levels {', '.join(f'{s:.4g}' for s in pruned)}"
                )
            return
        shapes = self.dense_ticket.shapes
        floor = self.imp_args.min_groups_per_layer
        for kind in g.split("+"):
            groups = bert_groups(shapes, self.num_heads or 1, kind)
            if not groups:
                raise ValueError(
                    f"--granularity {g}: no {kind} among the prunable weights (a {kind} needs every tensor of its layer; check --exclude)"
                )
            layers = len({grp.layer for grp in groups})
            most = len(groups) - floor * layers
            for s in pruned:
                if self.imp_args.pruning_scope == "layerwise":
                    # per layer: at least the floor, and never every unit of every layer, stays
                    per_layer, keep = len(groups) // max(layers, 1), max(floor, 1)
                    if target_count(s, per_layer) > per_layer - keep:
                        raise ValueError(
                            f"--granularity {g} --pruning_scope layerwise: sparsity {s:.4g} prunes {target_count(s, per_layer)} of "
                            f"{per_layer} {kind}s per layer, but at most {per_layer - keep} may go (--min_groups_per_layer {floor}; "
                            "a layer-wise target never empties every layer)"
                        )
                    continue
                if target_count(s, len(groups)) > most:
                    raise ValueError(
                        f"--granularity {g}: sparsity {s:.4g} prunes {target_count(s, len(groups))} of {len(groups)} {kind}s, but "
                        f"--min_groups_per_layer {self.imp_args.min_groups_per_layer} leaves at most {most} prunable"
                    )

    @property
    def run_dir(self):
        return self.record.root

    # -- setup
    def _load_model(self, seed: int) -> torch.nn.Module:
        return load_theta0(
            self.task, self.model_args.model_name_or_path, seed, revision=self.model_args.revision, cache_dir=self.model_args.cache_dir
        )

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
        if len(self.data.train) == 0:
            raise ValueError(f"{self.task.display_name}: no training examples (data: {d.data_dir or 'the Hub'})")
        for split, ds in self.data.eval.items():
            if len(ds) == 0:
                raise ValueError(f"{self.task.display_name}: no evaluation examples in {split} (data: {d.data_dir or 'the Hub'})")
        check_rewind_step(self.imp_args.rewind_step, self.training_args, len(self.data.train), "level-0 training")
        if self.mask_search is not None:
            self.mask_search.check()
        size = self.imp_args.rewind_subset_size
        if self.imp_args.rewind_data != "full" and size > len(self.data.train):
            raise ValueError(f"--rewind_subset_size {size} exceeds the {len(self.data.train)} training examples")

    def diet_rewind_point(self) -> int:
        """Data-diet rewinding (:mod:`bert_tickets.training.data_diet`; Paul et al. 2022,
        *Lottery Tickets on a Data Diet*; EL2N from Paul et al. 2021): pre-train the dense network on the chosen subset for
        ``--rewind_step`` k steps of the run's learning-rate schedule (the subset is cycled) and
        save the rewind point with the subset (and the EL2N scores for ``easy``; scores already
        saved are reused). Returns the optimizer steps spent (short EL2N runs + pre-training),
        read back from ``data_diet/subset.json`` when the run already has its diet rewind point.

        ``--rewind_mode state`` (the default), as the reference code mansheej/lth_diet
        (``exps/lottery.py``, ``_pretrain`` / ``_train_level``): each seed (lth_diet: replicate)
        pre-trains from θ0 with its own initial head, and its whole state at step k — every
        weight, the head included, and the schedule's position — is written as the seed's start
        point (:func:`~bert_tickets.training.weights.write_start_point`); every level, level 0
        included, continues from it on the full data to the end of the schedule with a fresh
        optimizer. Cost: ``seeds × k`` steps (+ EL2N). Decisions: the pre-training runs the first
        k steps of the full run's schedule (lth_diet's pretrain schedulers default to the main
        ones, counted over the pre-training's own duration); the level skips the first k batches
        of the full data's order, as a resumed Trainer does (mosaicml 0.5.0's ``fit``, which
        lth_diet pins, skips the batches its fast-forwarded timer counts in the epoch); Adam's moments
        and step count start afresh (lth_diet's SGD has no state to carry either); as in every
        ``find`` run, all seeds share the masks pruned from the first seed's trained weights
        (lth_diet: one IMP lineage per replicate), and the subset is drawn (``random``) or the
        EL2N runs seeded from the first seed (lth_diet: a config seed / a score file).
        ``backbone_restart`` (the behaviour before session 14): one pre-training under the first
        seed's head; level 0 trains from θ0 and later levels pair the step-k backbone with each
        seed's initial head, the schedule restarted. Cost: k steps (+ EL2N).

        Raises:
            ValueError: the pre-training stopped before step k.
        """
        k, a = self.imp_args.rewind_step, self.imp_args
        state = level0_continues(a)
        done = self.record.paths.data_diet() / "subset.json"
        recorded = read_json(done) if done.is_file() else None
        missing = [s for s in self.seeds if self.record.rewind_start_problem(s, k) is not None] if state else []
        if recorded is not None and self.record.has_rewind_point(k) and not missing:
            return int(recorded.get("spent_steps", 0))
        self.prepare()
        seed, spent = self.seeds[0], 0
        out = self.record.paths.data_diet()
        dense = self.dense_ticket  # the run's prunable set; the diet trains every weight
        repaired = None
        if recorded is not None:
            # a start point to re-create (missing or corrupt): the same subset, the same computation;
            # the route's cost stays the one recorded (the repair is no part of it)
            subset, repaired = torch.tensor(recorded["indices"]), int(recorded.get("spent_steps", 0))
        elif a.rewind_data == "easy":
            scores, info = self.record.load_el2n(), self.record.el2n_info() or {}
            steps = a.el2n_steps or math.ceil(len(self.data.train) / global_batch_size(self.training_args))
            seeds = [seed + 1 + i for i in range(a.el2n_models)]
            same = (info.get("models"), info.get("steps"), info.get("seeds")) == (a.el2n_models, steps, seeds)
            if scores is not None and len(scores) == len(self.data.train) and same:
                spent += a.el2n_models * steps  # scores saved by an interrupted run (or copied in) count too
            else:
                scores = mean_el2n(
                    self._load_model,
                    dense,
                    self.task,
                    self.data,
                    self.training_args,
                    models=a.el2n_models,
                    steps=steps,
                    seed=seed + 1,
                    output_dir=str(out / "el2n"),
                    tokenizer=self.tokenizer,
                )
                spent += a.el2n_models * steps
                self.record.save_el2n(scores, {"models": a.el2n_models, "steps": steps, "seeds": seeds})
            subset = easy_subset(scores, a.rewind_subset_size)
        else:
            subset = random_subset(len(self.data.train), a.rewind_subset_size, seed)
        total = optimizer_steps(self.training_args, len(self.data.train))
        for s in self.seeds if state else [seed]:
            intact = state and s not in missing
            if intact and (s != seed or self.record.has_rewind_point(k)):
                continue
            if intact:  # only the backbone file is lost: it is the intact start point's backbone (never re-trained)
                model = self._load_model(s)
                model.load_state_dict(self.record.load_checkpoint_weights(self.record.paths.rewind_start(k, s)), strict=False)
                self.record.save_rewind_point(k, backbone_state(model))
                continue
            if recorded is not None:
                logger.warning(
                    "data diet: re-creating seed %d's state at step %d (%s); levels already trained from it are kept "
                    "(the same computation on CPU; on a GPU it may differ in the last bits)",
                    s,
                    k,
                    (self.record.rewind_start_problem(s, k) if state else self.record.rewind_point_problem(k)) or "missing",
                )
            model = self._load_model(s)  # θ0 with the seed's initial head (the one its level 0 would start from)
            capture = RewindPointCapture(
                k,
                (lambda weights: self.record.save_rewind_point(k, weights)) if s == seed else None,
                stop=True,
                save_start=(lambda write, s=s: self.record.save_rewind_start(s, k, write)) if state else None,
            )
            finetune(
                model,
                dense,
                self.task,
                self.data,
                self.training_args,
                seed=s,
                output_dir=str(out / ("rewind" if s == seed else f"rewind_seed{s}")),
                tokenizer=self.tokenizer,
                callbacks=[capture],
                source="subset",  # the full run's schedule, cycling the subset, stopped at k
                source_options={"indices": subset.tolist(), "steps": total},
            )
            if not capture.done:
                raise ValueError(f"--rewind_step {k}: the data diet's pre-training stopped before step {k}")
        spent = repaired if repaired is not None else spent + k * (len(self.seeds) if state else 1)
        labels = label_distribution(self.data.train["label"], subset.tolist(), regression=self.task.is_regression)
        info = {
            "rewind_data": a.rewind_data,
            "size": len(subset),
            "spent_steps": spent,
            "labels": labels,
            "indices": subset.tolist(),
        }
        self.record.save_rewind_subset(info)  # last: its presence marks the diet complete
        logger.info(
            "data diet: rewind point at step %d trained on %d %s examples (%s%s); labels of the subset: %s; of all %d: %s",
            k,
            len(subset),
            a.rewind_data,
            out,
            f"; every level continues from each seed's state at step {k}" if state else "",
            labels["subset"],
            len(self.data.train),
            labels["all"],
        )
        return spent

    def trivial_baseline(self):
        """The task's :class:`~bert_tickets.tasks.TrivialBaseline` on this run's evaluation data
        (``None`` before :meth:`prepare`)."""
        if self.data is None:
            return None
        if self._trivial is None:
            self._trivial = self.kind.trivial_baseline(self.task, self.data)
        return self._trivial

    # -- the whole run
    def run(self) -> list[LevelResult]:
        """Run (or resume) every level; returns the judged summary rows and writes
        summary.json/csv. The loop is the schedule's: ``while (s := schedule.next(verdicts))``."""
        if self.imp_args.early_bird:
            return EarlyBirdLevels(self, self.imp_args.early_bird_config()).run()
        started = time.perf_counter()
        self._start()
        self._repair_initial_heads()
        history: list[LevelResult] = []
        next_ticket: TicketMask | None = self.dense_ticket
        diet_steps = self.diet_rewind_point() if self.imp_args.rewind_data != "full" else 0
        while (target := self.schedule.next(self._judged(history))) is not None:
            level = len(history)
            done = self._already_complete(level, target)
            if done is not None:
                history.append(done)
                next_ticket = None
                continue
            if next_ticket is None and level > 0 and self.mask_search is not None and not self.record.has_ticket(level):
                # an extended mask-data run: the search past the old schedule's end was not run (see _prune_next)
                next_ticket = self._prune_next(level - 1, self.record.load_ticket(level - 1), None, history, diet_steps)
            ticket = next_ticket if next_ticket is not None else self.record.load_ticket(level)
            result, per_seed, trained = self._train_level_of(level, target, ticket)
            history.append(result)
            # Next level's mask first: once metrics.json exists, resuming needs no trained weights.
            next_ticket = self._prune_next(level, ticket, trained, history, diet_steps)
            if self.imp_args.keep_trained_head:
                self.record.save_trained_head(level, head_state(trained))
            self.record.write_level(result, per_seed)
            self.record.remove_checkpoints(level)  # the level is complete: its Trainer checkpoints are spent
            del trained
            self._log_level(result)
        extra = self.mask_search.summary([r.level for r in history]) if self.mask_search is not None else None
        return self._finish(history, time.perf_counter() - started, extra)

    def _start(self) -> None:
        """Record the run's config (hash, hyperparameters, planned levels, launch) and say what runs."""
        ta = self.training_args
        launch = {
            "world_size": max(1, ta.world_size),
            "per_device_train_batch_size": ta.per_device_train_batch_size,
            "gradient_accumulation_steps": ta.gradient_accumulation_steps,
            "global_train_batch_size": global_batch_size(ta),
        }
        self.record.write_config(
            self.hash,
            self.hparams,
            self.planned,
            launch=launch,
            arguments=recorded_arguments(self.model_args, self.data_args, self.imp_args, ta),
        )
        logger.info(
            "IMP on %s from %s: run %s, levels at sparsity %s, %s pruning, rewind to %s, seeds %s, output %s",
            self.task.name,
            self.model_args.model_name_or_path,
            self.hash,
            ", ".join(f"{s:.4g}" for s in self.planned) if self.planned is not None else f"chosen by the {self.schedule.name} schedule",
            self.imp_args.criterion,
            "θ0" if self.imp_args.rewind_step == 0 else f"step {self.imp_args.rewind_step}",
            self.seeds,
            self.run_dir,
        )

    def _already_complete(self, level: int, target: float) -> LevelResult | None:
        """The level's record when a previous run completed it (its leftover checkpoints removed).

        Raises:
            ValueError: it was run at another sparsity than the schedule now gives it.
        """
        try:
            done = self.record.completed_level(level)
        except ValueError as err:  # a corrupt metrics.json: the level is re-trained
            logger.warning("level %d: %s: re-training the level", level, first_line(err).split(";")[0])
            return None
        if done is None:
            return None
        if abs(done.target_sparsity - target) > 1e-9:
            raise ValueError(
                f"{self.record.paths.level(level)} was run at sparsity {done.target_sparsity} but this schedule puts "
                f"level {level} at {target}; use another --output_dir"
            )
        problem = self.record.level_problem(level, weights=self._kept_weights())
        k = self.imp_args.rewind_step
        if problem is None and level == 0 and k > 0 and self.imp_args.rewind_data == "full":
            found = self.record.rewind_point_problem(k)
            problem = f"{self.record.paths.rewind_point(k)}: {found}" if found else None
            if problem is None and continues_from_step(self.imp_args):
                problem = next(filter(None, (self.record.rewind_start_problem(s, k) for s in self.seeds)), None)
        if problem is not None:
            logger.warning("level %d is complete but %s: re-training the level", level, problem)
            return None
        self.record.remove_checkpoints(level)  # left if a run died right after completing the level
        logger.info("level %d (sparsity %.4f) already complete: skipped", level, done.sparsity)
        return done

    def _kept_weights(self) -> tuple[str, ...]:
        """The weight files every complete level of this run has kept (what a resume verifies)."""
        return ("trained_model",) * self.keep_trained + ("trained_head",) * self.imp_args.keep_trained_head

    def _repair_initial_heads(self) -> None:
        """Re-create a corrupt initial head of a run whose level 0 is complete: it is the seed's
        fresh head of θ0 (:func:`~bert_tickets.training.weights.load_theta0` is deterministic per
        seed), so no level is re-trained. (Before level 0 completes, level 0 writes it anyway.)"""
        for seed in self.seeds:
            problem = self.record.initial_head_problem(seed)
            if problem is not None and self.record.paths.metrics(0).is_file():
                logger.warning("%s: %s: re-creating it from θ0 and seed %d", self.record.paths.initial_head(seed), problem, seed)
                self.record.save_initial_head(seed, head_state(self._load_model(seed)))

    def _train_level_of(self, level: int, target: float, ticket: TicketMask) -> tuple[LevelResult, dict, torch.nn.Module]:
        """Save the level's ticket (once: its metrics go to metrics.json), fine-tune every seed,
        measure the barrier to the parent level when the schedule reads it, keep the trained
        weights when needed."""
        if abs(ticket.metadata.target_sparsity - target) > 1e-9:
            raise ValueError(
                f"{self.record.paths.ticket(level)} was pruned to {ticket.metadata.target_sparsity}, the schedule says {target}"
            )
        self.prepare()
        self._annotate(ticket)
        self.record.save_ticket(level, ticket)
        result, per_seed, trained = self._levels().run_level(level, target, ticket, self.data)
        if level == 0 and self.schedule.calibrated:
            result.barrier = self._dense_instability(trained)
            logger.info("level 0: the dense network's own barrier (instability) %.4f (%s)", result.barrier, self.task.primary_metric)
        if level > 0 and self.schedule.uses_barrier:
            parent = ticket.metadata.parent_level
            result.parent_level = int(parent) if parent is not None else level - 1
            result.barrier = self._barrier_to(result.parent_level, level, trained)
            logger.info("level %d: barrier to level %d %.4f (%s)", level, result.parent_level, result.barrier, self.task.primary_metric)
        if self.keep_trained:
            self.record.save_trained_model(level, trained.state_dict())
        return result, per_seed, trained

    def _prune_next(
        self, level: int, ticket: TicketMask, trained: torch.nn.Module, history: list[LevelResult], diet_steps: int
    ) -> TicketMask | None:
        """Prune and save the next level's mask from the level the schedule names (the one just
        trained, or an earlier one for a step back). Past the schedule's end it is saved too (at
        the sparsity the schedule would give the next level), so the run can later be extended."""
        judged = self._judged(history)
        decision = self.schedule.explain(judged)  # an adaptive schedule says what it read and why it goes where it goes
        if decision is not None:
            logger.info("%s", decision)
        next_sparsity = self.schedule.next(judged)
        optional = next_sparsity is None
        if optional and self.mask_search is not None:
            # past the schedule's end a mask-data run saves no mask: it would cost a whole search
            # (e.g. DiLM's 25,600 example passes) for a level that may never run; an extension
            # searches it then (:meth:`run`), from this level's ticket alone
            return None
        if optional:
            next_sparsity = self.schedule.beyond(level + 1)
        if next_sparsity is None or next_sparsity >= 1.0:
            return None
        base = self.schedule.base_level(judged)
        base = level if base is None else base
        base_ticket, base_model = (ticket, trained) if base == level else self._trained_level(base)
        spent = self.record.train_steps(base) + (diet_steps if base == 0 else 0)
        if self.mask_search is not None:  # the mask comes from training on the mask data, not from the judged weights
            base_model, search = self.mask_search.search(level, ticket)
            spent = int(search["steps"])
        scope, cap = self.imp_args.pruning_scope, self.imp_args.max_tensor_sparsity
        context = self._criterion_context(base_model)
        granularity = {"granularity": self.imp_args.granularity, "min_per_layer": self.imp_args.min_groups_per_layer}
        try:
            new = prune_ticket(
                base_ticket, base_model, next_sparsity, self.imp_args.criterion, self.seeds[0], scope, cap, **granularity, **context
            )
        except ValueError as err:
            if not optional:
                raise
            # the mask past the schedule's end (only to extend the run later) is not reachable: skip it
            logger.info("no level-%d mask past the schedule's end (%s)", level + 1, first_line(err))
            return None
        new.metadata.level = level + 1
        new.metadata.parent_level = base
        new.metadata.lineage = [*base_ticket.metadata.lineage, base]
        if (options := self.imp_args.criterion_config()) is not None:
            new.metadata.criterion_options = asdict(options)
        # what produced this mask: the training of every level on its lineage (the base level's
        # record carries the levels before it), all seeds
        add_cost(new.metadata, {"train_steps": spent})
        # every rank pruned its own copy of the trained weights: the masks must agree
        check_same_on_all_ranks(new.mask_sha256(), f"the level-{level + 1} mask")
        self.record.save_ticket(level + 1, new)
        return new

    def _log_level(self, result: LevelResult) -> None:
        logger.info(
            "level %d | sparsity %.4f (%d/%d pruned) | %s %.4f%s | %.1fs",
            result.level,
            result.sparsity,
            result.num_pruned,
            result.num_prunable,
            self.task.primary_metric,
            result.mean,
            f" ± {result.std:.4f}" if result.std is not None else "",
            result.elapsed_s,
        )

    def _finish(self, history: list[LevelResult], wall_s: float, extra: dict | None = None) -> list[LevelResult]:
        """Judge every level, write summary.json/csv (with the model's and data's notes, and
        ``extra`` entries such as the early-bird record) and print the table; returns the judged
        rows."""
        self.prepare()  # the trivial baseline needs the evaluation labels (a resumed, finished run has not read them yet)
        summary = summarize(history, self.imp_args.tolerance, self.task.name, wall_s, self.trivial_baseline())
        notes = {**self.model_notes, **(self.data.notes if self.data is not None else {})}
        if notes:
            summary["notes"] = notes
        summary.update(extra or {})
        self.record.write_summary(summary)
        if self.record.is_main:
            print(format_summary(summary))
        names = {f.name for f in fields(LevelResult)}
        return [LevelResult(**{k: v for k, v in row.items() if k in names}) for row in summary["levels"]]

    def _levels(self) -> LevelTrainer:
        """The level trainer of this run (after :meth:`prepare`)."""
        return LevelTrainer(self.task, self.training_args, self.imp_args, self.seeds, self.record, self.tokenizer, self._load_model)

    def _annotate(self, ticket: TicketMask) -> None:
        """Record in the ticket what the model kind and the data said: a local data split in the
        typed ``data_split``, other notes (e.g. an MLM head that was not pre-trained) in ``extra``."""
        notes = {**self.model_notes, **self.data.notes}
        ticket.metadata.data_split = notes.pop("data_split", ticket.metadata.data_split)
        ticket.metadata.extra.update(notes)

    def _criterion_context(self, model: torch.nn.Module) -> dict[str, Any]:
        """What the criterion needs besides the weights: its options, and — for one that scores on
        data — the training batches the first seed's fine-tune draws first (as many as it asks for)."""
        options = self.imp_args.criterion_config()
        context: dict[str, Any] = {} if options is None else {"options": options}
        if self.criterion.needs_data:
            context["batches"] = training_batches(
                model,
                self.task,
                self.data,
                self.training_args,
                seed=self.seeds[0],
                num_batches=self.criterion.batches_needed(options),
                tokenizer=self.tokenizer,
            )
        return context

    def _trained_level(self, level: int) -> tuple[TicketMask, torch.nn.Module]:
        """An earlier level's ticket and trained model (from the run directory), to prune from."""
        model = self._load_model(self.seeds[0])
        model.load_state_dict(self.record.load_trained_model(level), strict=False)
        return self.record.load_ticket(level), model

    def _dense_instability(self, trained: torch.nn.Module) -> float:
        """The dense network's own error barrier (Frankle et al. 2020's instability): a second
        dense copy trained from level 0's start — θ0 with the first seed's head, or that seed's
        state at the rewind step — with another data order (``data_seed`` + 1), and the barrier
        on the path between it and level 0's trained network. What the calibrated adaptive
        schedule's limit is relative to; one extra fine-tune per run.
        """
        seed, k = self.seeds[0], self.imp_args.rewind_step
        data_seed = (self.training_args.data_seed if self.training_args.data_seed is not None else seed) + 1
        other = self._load_model(seed)
        out = self.record.paths.dense_instability()
        resume = str(self.record.paths.rewind_start(k, seed)) if continues_from_step(self.imp_args) else None
        finetune(
            other,
            self.dense_ticket,
            self.task,
            self.data,
            replace(self.training_args, data_seed=data_seed),
            seed=seed,
            output_dir=str(out),
            tokenizer=self.tokenizer,
            resume_from_checkpoint=resume,
        )
        return self._path_barrier({n: t.detach().clone() for n, t in other.state_dict().items()}, trained, out / "path")

    def _barrier_to(self, parent: int, level: int, trained: torch.nn.Module) -> float:
        """Error barrier (primary metric) on the linear path from the trained network of level
        ``parent`` to ``trained`` (Paul et al. 2022; :mod:`bert_tickets.connectivity`); the
        masks differ, so weights pruned only at ``level`` go linearly to 0."""
        return self._path_barrier(self.record.load_trained_model(parent), trained, self.record.paths.level(level) / "barrier")

    def _path_barrier(self, end_a: dict[str, torch.Tensor], trained: torch.nn.Module, out) -> float:
        """Error barrier (primary metric) on the linear path from the weights ``end_a`` to ``trained``."""
        device = next(trained.parameters()).device
        end_a = {n: t.to(device) for n, t in end_a.items()}
        end_b = {n: t.detach().clone() for n, t in trained.state_dict().items()}
        probe = copy.deepcopy(trained)
        out = str(out)
        path = evaluate_linear_path(
            probe,
            end_a,
            end_b,
            lambda m: evaluate_model(m, self.task, self.data, self.training_args, output_dir=out, tokenizer=self.tokenizer),
            self.imp_args.barrier_points,
        )
        del probe
        return error_barrier([p.metrics[self.task.primary_metric] for p in path], higher_is_better=True)

    def _judged(self, history: list[LevelResult]) -> list[LevelResult]:
        """The finished levels with Δ vs dense and the matching decision (:func:`verdicts`: new
        rows; the records are left as written) — what a schedule may read."""
        return verdicts(history, self.imp_args.tolerance, self.trivial_baseline())


class LevelTrainer:
    """Fine-tunes one IMP level: every seed from its starting weights (θ0 with the seed's
    initial head, or the rewind point; a checkpoint left by an interrupted run resumes), the
    rewind point captured during level 0, the Trainer logs recorded; the level's row.

    Args:
        task, training_args, imp_args: the run's task, ``TrainingArguments`` and IMP arguments.
        seeds: the fine-tuning seeds (the first one's trained weights are pruned).
        record: the run's :class:`~bert_tickets.results.RunRecord`.
        tokenizer: the model's tokenizer.
        load_model: ``load_model(seed)`` -> θ0 with that seed's fresh head.
    """

    def __init__(self, task: TaskSpec, training_args, imp_args: IMPArguments, seeds: list[int], record: RunRecord, tokenizer, load_model):
        self.task, self.training_args, self.imp_args, self.seeds = task, training_args, imp_args, seeds
        self.record, self.tokenizer, self.load_model = record, tokenizer, load_model

    @property
    def continues_from_step(self) -> bool:
        return continues_from_step(self.imp_args)

    def _start_weights(self, level: int, seed: int) -> torch.nn.Module:
        """θ0 with this seed's head: level 0 records the initial head; later levels rewind the
        backbone (step k > 0) and restore the initial (or the previous trained) head. (With
        :attr:`continues_from_step` the Trainer loads every weight from the seed's start point
        instead: this model is its template.)"""
        model = self.load_model(seed)
        if level == 0:
            self.record.save_initial_head(seed, head_state(model))
            return model
        if self.continues_from_step:
            return model
        if self.imp_args.rewind_step > 0:
            load_into(get_backbone(model), self.record.load_rewind_point(self.imp_args.rewind_step), "rewind weights")
        if self.imp_args.keep_trained_head:
            load_into(model, self.record.load_trained_head(level - 1), "trained head")
        else:
            load_into(model, self.record.load_initial_head(seed), "initial head")
        return model

    def _rewind_start(self, seed: int) -> str:
        """The seed's start point at the rewind step (a Trainer checkpoint directory written at
        level 0, or by the data diet's pre-training: :func:`~bert_tickets.training.weights.write_start_point`).

        Raises:
            ValueError: it is missing or corrupt (a re-run of the command re-creates it).
        """
        k = self.imp_args.rewind_step
        problem = self.record.rewind_start_problem(seed, k)
        if problem is not None:
            raise ValueError(f"{problem}; re-run the same find command: it is re-created (level 0 or the data diet is re-trained)")
        return str(self.record.paths.rewind_start(k, seed))

    def _checkpoint_to_resume(self, level: int, seed: int, ticket: TicketMask, model: torch.nn.Module) -> str | None:
        """The last Trainer checkpoint (``--save_steps``) of this level and seed, if one is left
        by an interrupted run and its weights fit ``ticket`` (every pruned weight exactly 0);
        checkpoints that do not fit are deleted and the seed starts over."""
        from transformers.trainer_utils import get_last_checkpoint

        seed_dir = self.record.paths.seed(level, seed)
        last = get_last_checkpoint(str(seed_dir)) if seed_dir.is_dir() else None
        if last is None:
            return None
        probe = copy.deepcopy(model)
        try:
            state = self.record.load_checkpoint_weights(last)
            missing, unexpected = probe.load_state_dict(state, strict=False)
            fits = not unexpected and ticket.count_nonzero_pruned(probe) == 0
        except (OSError, ValueError, RuntimeError) as err:
            logger.warning("level %d, seed %d: %s is unreadable (%s): starting over", level, seed, last, err)
            fits = False
        del probe
        if not fits:
            logger.warning("level %d, seed %d: %s does not fit this level's mask: starting over", level, seed, last)
            self.record.remove_checkpoints(level, seed)
            return None
        logger.info("level %d, seed %d: resuming from %s (step %s)", level, seed, last, last.rsplit("-", 1)[-1])
        return last

    def _train_level(self, level: int, ticket: TicketMask, data: PreparedData) -> tuple[dict[str, dict[str, float]], torch.nn.Module]:
        per_seed: dict[str, dict[str, Any]] = {}
        first_model = None
        k = self.imp_args.rewind_step
        for seed in self.seeds:
            model = self._start_weights(level, seed)
            extra = []
            capture = None
            resume = self._checkpoint_to_resume(level, seed, ticket, model)
            saved = self.record.rewind_start(seed, k) is not None if self.continues_from_step else self.record.has_rewind_point(k)
            if resume is not None and level == 0 and k > 0 and not saved:
                logger.warning(
                    "level 0, seed %d: %s is past the rewind step %d but no rewind point was saved: starting over", seed, resume, k
                )
                self.record.remove_checkpoints(level, seed)
                resume = None
            first = seed == self.seeds[0]
            if level == 0 and k > 0 and resume is None and self.imp_args.rewind_data == "full" and (first or self.continues_from_step):
                capture = RewindPointCapture(
                    k,
                    (lambda state: self.record.save_rewind_point(k, state)) if first else None,
                    save_start=(lambda write, s=seed: self.record.save_rewind_start(s, k, write)) if self.continues_from_step else None,
                )
                extra.append(capture)
            rewound = None
            if resume is None and self.continues_from_step and (level > 0 or level0_continues(self.imp_args)):
                rewound = resume = self._rewind_start(seed)
            try:
                result = finetune(
                    model,
                    ticket,
                    self.task,
                    data,
                    self.training_args,
                    seed=seed,
                    output_dir=str(self.record.paths.seed(level, seed)),
                    tokenizer=self.tokenizer,
                    callbacks=extra,
                    resume_from_checkpoint=resume,
                )
            except RuntimeError as err:
                raise RuntimeError(f"level {level}, seed {seed}: {err}") from None
            if capture is not None and not capture.done:
                raise ValueError(f"--rewind_step {k} exceeds the {result.global_step} steps of level-0 training")
            if rewound is not None:
                # Continued from step k: train_loss averages the steps k..T this level ran.
                result.metrics["rewound_to_step"] = k
            elif resume is not None:
                # The Trainer's train_loss averages only the steps run since the resume (it keeps
                # the rest of the sum in a local variable); the evaluation metrics are exact.
                result.metrics["resumed_from_step"] = int(resume.rsplit("-", 1)[-1])
            per_seed[str(seed)] = result.metrics
            self.record.write_log_history(level, seed, result.log_history)
            if first_model is None:
                first_model = result.model
        return per_seed, first_model

    def run_level(self, level: int, target: float, ticket: TicketMask, data: PreparedData) -> tuple[LevelResult, dict, torch.nn.Module]:
        """Fine-tune every seed under ``ticket``; the level's row, per-seed metrics and the first
        seed's trained model (whose weights the next level prunes)."""
        per_tensor = ticket.per_tensor_sparsity()
        collapsed = collapsed_tensors(per_tensor, self.imp_args.collapse_threshold)
        if level > 0:
            lo, hi = min(per_tensor, key=per_tensor.get), max(per_tensor, key=per_tensor.get)
            logger.info("level %d per-tensor sparsity: min %.4f (%s), max %.4f (%s)", level, per_tensor[lo], lo, per_tensor[hi], hi)
        if collapsed:
            logger.warning(
                "layer collapse at level %d: %s pruned beyond %.2f; %s",
                level,
                ", ".join(f"{n} {s:.4f}" for n, s in collapsed.items()),
                self.imp_args.collapse_threshold,
                collapse_options_hint(collapsed),
            )
        t0 = time.perf_counter()
        per_seed, trained = self._train_level(level, ticket, data)
        values = [m[self.task.primary_metric] for m in per_seed.values()]
        result = LevelResult(
            level=level,
            target_sparsity=target,
            sparsity=ticket.sparsity,
            num_pruned=ticket.num_pruned,
            num_prunable=ticket.num_prunable,
            metric=self.task.primary_metric,
            mean=statistics.fmean(values),
            std=statistics.stdev(values) if len(values) > 1 else None,
            per_seed={s: m[self.task.primary_metric] for s, m in per_seed.items()},
            elapsed_s=time.perf_counter() - t0,
            nonzero_pruned_weights=sum(m["nonzero_pruned_weights"] for m in per_seed.values()),
            collapsed_tensors=collapsed,
            near_constant=near_constant_count(per_seed.values()),
            train_loss=_mean_or_none(m.get("train_loss") for m in per_seed.values()),
        )
        if result.near_constant:
            logger.warning(
                "level %d: %d of %d seeds predict (almost) a constant on the evaluation split: the metric says little about the mask",
                level,
                result.near_constant,
                len(per_seed),
            )
        return result, per_seed, trained


#: The argument dataclasses of ``find`` (before ``TrainingArguments``), in command-line order.
ARGUMENTS = (ModelArguments, DataArguments, IMPArguments)


def _mean_or_none(values) -> float | None:
    found = [float(v) for v in values if v is not None]
    return statistics.fmean(found) if found else None


def recorded_arguments(model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args) -> dict:
    """The ``find`` arguments as recorded in ``run_config.json`` (``arguments``; see
    :func:`~bert_tickets.results.argument_groups`): every field of the three ``find`` groups,
    and the ``TrainingArguments`` that differ from their defaults plus ``output_dir``. Not part
    of the run's hash; ``bert-tickets find --config RUN/run_config.json`` parses them back."""
    return argument_groups(model_args, data_args, imp_args, training_args, keep=("output_dir",))


def run(model_args: ModelArguments, data_args: DataArguments, imp_args: IMPArguments, training_args) -> list[LevelResult]:
    """The ``find`` experiment: validate (:class:`IMPRunner`), read and check the data (nothing is
    written before it passes), lock the run directory, run (or resume) every level; then leave
    the process group a launcher made.

    Returns:
        The levels' rows (:class:`~bert_tickets.results.LevelResult`).

    Raises:
        ValueError / FileNotFoundError / OSError: bad arguments, data, model or run directory
            (one line, before anything is written).
        RunLockedError: another process holds the run directory.
    """
    runner = IMPRunner(model_args, data_args, imp_args, training_args)
    runner.prepare()
    with runner.record.lock():
        history = runner.run()
    close_process_group()
    return history
