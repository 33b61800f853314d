"""Model cards of tickets: rendered from ``model_cards/ticket_card.md`` (shipped as
``bert_tickets.model_cards``) with huggingface_hub's ``ModelCard`` / ``ModelCardData``."""

from __future__ import annotations

import json
import logging
import math
import shlex
from pathlib import Path
from typing import Any

from ..results import RunInfo, reproducing_arguments
from ..ticket import CONFIG_FILE, LIBRARY_NAME, MASK_FILE, TicketMask, is_hub_repo_id

logger = logging.getLogger("bert_tickets")

#: Template of the model card (shipped as ``bert_tickets.model_cards``; ``model_cards/`` in a checkout).
CARD_TEMPLATE = "ticket_card.md"

CITATION = """@inproceedings{chen2020lottery,
  title     = {The Lottery Ticket Hypothesis for Pre-trained {BERT} Networks},
  author    = {Chen, Tianlong and Frankle, Jonathan and Chang, Shiyu and Liu, Sijia and
               Zhang, Yang and Wang, Zhangyang and Carbin, Michael},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {33},
  pages     = {15834--15846},
  year      = {2020}
}"""


def _task_info(task: str | None) -> dict[str, Any]:
    """Hub metadata of a task: dataset id/config/name, pipeline task type and model class (both
    from the task's kind, :attr:`~bert_tickets.tasks.TaskKind.hub_task_type` and
    :meth:`~bert_tickets.tasks.TaskKind.model_class`), eval split."""
    info = {
        "dataset": None,
        "config": None,
        "name": task or "unknown task",
        "task_type": "text-classification",
        "model_class": "AutoModelForSequenceClassification",
        "split": "validation",
    }
    if not task:
        return info
    try:
        from ..tasks import get_kind, get_task  # imported here: the task kinds pull in transformers' model classes

        spec = get_task(task)
        kind = get_kind(spec.kind)
    except Exception:  # noqa: BLE001 - a card must render even for a task this version does not know
        return info
    info["dataset"] = getattr(spec, "hub_dataset", None)
    info["config"] = getattr(spec, "hub_config", None)
    display = getattr(spec, "display_name", task)
    info["name"] = f"GLUE {display}" if spec.kind == "glue" else display
    info["task_type"] = kind.hub_task_type
    info["model_class"] = kind.model_class(spec).__name__
    splits = [getattr(s, "hub", None) or getattr(s, "name", None) for s in getattr(spec, "splits", ())]
    if len(splits) > 1 and splits[1]:
        info["split"] = splits[1]
    return info


def card_template_path() -> Path:
    """Path of ``ticket_card.md``: the installed ``bert_tickets.model_cards`` package data, or
    the repository's ``model_cards/`` folder in a source checkout.

    Raises:
        FileNotFoundError: neither exists.
    """
    try:
        from importlib import resources

        path = Path(str(resources.files("bert_tickets.model_cards") / CARD_TEMPLATE))
        if path.is_file():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    path = Path(__file__).resolve().parents[2] / "model_cards" / CARD_TEMPLATE
    if not path.is_file():
        raise FileNotFoundError(f"model card template {CARD_TEMPLATE} not found (bert_tickets.model_cards or {path.parent})")
    return path


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


#: ``TrainingArguments`` that say where a run writes, not what it computes: not in the command.
_PLACE_KEYS = ("output_dir", "logging_dir")


def find_command(run_config: dict) -> str:
    """The ``bert-tickets find`` command line that reproduces a run (from ``run_config.json``),
    on one process, writing to find's default ``--output_dir`` (add one to choose).

    A run recorded with its typed ``arguments`` (:meth:`~bert_tickets.results.RunRecord.write_config`)
    gives every option it was run with: each field of the ``find`` groups that is set (not
    ``None`` or ``False``) and each ``TrainingArguments`` value that differs from its default.
    An older run gives its hashed hyperparameters, the schedule's options as
    ``--schedule_options``, ``--target_sparsity`` from the schedule's last level and the batch
    from the ``launch`` record (per-device batch and accumulation). A run launched on N
    processes is reproduced on one with N times the accumulation steps: the same global batch,
    which is what the run's hash holds.
    """
    typed = reproducing_arguments(run_config)
    options = _typed_options(typed) if typed else _recorded_options(run_config)
    launch = run_config.get("launch") or {}
    world = int(launch.get("world_size") or 1)
    if world > 1:
        options["gradient_accumulation_steps"] = int(options.get("gradient_accumulation_steps") or 1) * world
    args: list[str] = ["bert-tickets", "find"]
    for key, value in options.items():
        args += _flag(key, value)
    return " ".join(shlex.quote(a) for a in args)


def _typed_options(typed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Option -> value of a run's typed ``arguments`` (every ``find`` group field that is set, the
    recorded ``TrainingArguments`` but where the run wrote)."""
    options: dict[str, Any] = {}
    for group, values in typed.items():
        for key, value in values.items():
            if group == "TrainingArguments":
                if key not in _PLACE_KEYS and value != []:
                    options[key] = value
            elif value is not None and value is not False:
                options[key] = value
    return options


def _recorded_options(run_config: dict) -> dict[str, Any]:
    """Option -> value from the hashed ``hyperparameters`` of a run recorded before typed
    arguments were (see :func:`find_command`)."""
    from .._registry import option_names
    from ..pruning import SCHEDULES_REGISTRY
    from ..ticket.base_model import LOCAL_REVISION_PREFIX

    hp = run_config.get("hyperparameters", {})
    options: dict[str, Any] = {}
    model = hp.get("model", {})
    options["model_name_or_path"] = model.get("model_name_or_path")
    revision = model.get("revision")
    if revision and revision != "main" and not str(revision).startswith(LOCAL_REVISION_PREFIX):
        options["revision"] = revision
    options.update(hp.get("data", {}))
    imp = dict(hp.get("imp", {}))
    imp["criterion"] = imp.pop("pruning_method", imp.get("criterion"))
    schedule = imp.get("schedule", "linear")
    every = {k for n in SCHEDULES_REGISTRY.names() for k in option_names(SCHEDULES_REGISTRY.get(n).Options)}
    own = set(option_names(SCHEDULES_REGISTRY.get(schedule).Options)) if schedule in SCHEDULES_REGISTRY else set()
    schedule_options = {k: imp.pop(k) for k in list(imp) if k in every}
    options.update(imp)
    options["schedule_options"] = {k: v for k, v in schedule_options.items() if k in own} or None
    training = dict(hp.get("training", {}))
    if "global_train_batch_size" in training:  # the hash holds the global batch; find takes the per-device one
        launch = run_config.get("launch") or {}
        global_batch = training.pop("global_train_batch_size")
        training["per_device_train_batch_size"] = launch.get("per_device_train_batch_size", global_batch)
        training["gradient_accumulation_steps"] = launch.get("gradient_accumulation_steps", 1)
    options.update(training)
    if run_config.get("schedule"):
        options["target_sparsity"] = float(f"{run_config['schedule'][-1]:g}")
    return {k: v for k, v in options.items() if v is not None and v is not False}


def _flag(key: str, value: Any) -> list[str]:
    """``--key`` and its value(s) as the find parser reads them: a mapping as ``KEY=VALUE``
    entries, a boolean spelled out (``Optional[bool]`` options of ``TrainingArguments`` need it)."""
    if isinstance(value, bool):
        return [f"--{key}", str(value).lower()]
    if isinstance(value, dict):
        return [f"--{key}", *(f"{k}={v}" for k, v in value.items())]
    if isinstance(value, (list, tuple)):
        return [f"--{key}", *map(str, value)]
    return [f"--{key}", str(value)]


def render_model_card(
    ticket: TicketMask,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    run: RunInfo | None = None,
    branches: dict[int, str] | None = None,
):
    """Render the ticket's model card from ``model_cards/ticket_card.md``.

    YAML metadata: ``base_model`` (when it is a Hub id), ``library_name: bert-tickets``,
    ``tags`` (``lottery-ticket``, ``pruning``, ``sparsity``, ``bert``, the task), ``datasets``,
    and a ``model-index`` with the task's metric for this ticket and for the dense model (one
    model entry, two metrics told apart by ``name``: huggingface_hub keeps only one model name
    per card). Body: summary, sparsity table of the run (``run``; branches from ``branches``),
    how the ticket was found (command and hyperparameters from ``run_config.json``), how to load
    it, files, and the citation of Chen et al. 2020.

    Args:
        ticket: the ticket (its ``metadata.extra["evaluation"]`` from :func:`ticket_from_run`
            gives the metrics).
        repo_id, revision: where it is published (used in the load snippet).
        run: the run the ticket came from (:func:`read_run`), or ``None``.
        branches: level -> branch of the levels published with it.

    Returns:
        ``huggingface_hub.ModelCard``.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    meta = ticket.metadata
    ev = meta.extra.get("evaluation") or {}
    task = meta.task or (run.task if run else None)
    info = _task_info(task)
    base = meta.base_model
    base_is_hub = bool(base) and is_hub_repo_id(base)
    if base and not base_is_hub:
        logger.warning("base model %s is not a Hub repo id: the card's base_model metadata is left out", base)
    name = (repo_id or "bert-ticket").rsplit("/", 1)[-1]
    eval_results = []
    if ev.get("value") is not None and info["dataset"]:
        common = dict(
            task_type=info["task_type"],
            dataset_type=info["dataset"],
            dataset_name=info["name"],
            dataset_config=info["config"],
            dataset_split=ev.get("split", info["split"]),
            metric_type=ev["metric"],
        )
        eval_results.append(
            EvalResult(metric_value=ev["value"], metric_name=f"{ev['metric']} (ticket, sparsity {_pct(ticket.sparsity, 1)})", **common)
        )
        if ev.get("dense_value") is not None:
            eval_results.append(
                EvalResult(metric_value=ev["dense_value"], metric_name=f"{ev['metric']} (dense {base}, same recipe)", **common)
            )
    tags = ["bert-tickets", "lottery-ticket", "pruning", "sparsity", "bert"] + ([task] if task else [])
    card_data = ModelCardData(
        base_model=base if base_is_hub else None,
        library_name=LIBRARY_NAME,
        tags=tags,
        datasets=[info["dataset"]] if info["dataset"] else None,
        model_name=name,
        eval_results=eval_results or None,
    )
    rows = []
    if run is not None:
        for lv, r in sorted(run.levels.items()):
            rows.append(
                {
                    "level": lv,
                    "target": _pct(r["target_sparsity"]),
                    "sparsity": _pct(r["sparsity"], 3),
                    "value": _num(r["mean"]) + (f" ± {r['std']:.4f}" if r.get("std") is not None else ""),
                    "delta": "–" if lv == 0 else f"{r['delta']:+.4f}",
                    "matching": "dense" if lv == 0 else ("yes" if r["matching"] else "no"),
                    "branch": f"`{branches[lv]}`" if branches and lv in branches else "–",
                    "this": lv == meta.level,
                }
            )
    per_tensor = ticket.per_tensor_sparsity()
    hp = run.config.get("hyperparameters", {}) if run else {}
    hp_rows = [
        (f"{g}.{k}", json.dumps(v) if not isinstance(v, str) else v)
        for g in ("model", "data", "imp", "training")
        for k, v in hp.get(g, {}).items()
        if v is not None
    ]
    rev_arg = f', revision="{revision}"' if revision and revision != "main" else ""
    kwargs = dict(
        title=f"{name}: {task.upper() if task else 'BERT'} lottery ticket at {_pct(ticket.sparsity, 1)} sparsity",
        repo_id=repo_id or "path/to/ticket",
        revision=revision or "main",
        rev_arg=rev_arg,
        base_model_name=base or "unknown",
        base_model_revision=meta.base_model_revision,
        base_model_source=meta.extra.get("base_model_source"),
        base_is_hub=base_is_hub,
        task=task,
        task_name=info["name"],
        dataset=info["dataset"],
        split=ev.get("split", info["split"]),
        level=meta.level,
        sparsity=_pct(ticket.sparsity, 3),
        target_sparsity=_pct(meta.target_sparsity),
        num_pruned=f"{ticket.num_pruned:,}",
        num_prunable=f"{ticket.num_prunable:,}",
        num_tensors=len(ticket.masks),
        min_tensor=min(per_tensor.items(), key=lambda kv: kv[1]),
        max_tensor=max(per_tensor.items(), key=lambda kv: kv[1]),
        metric=ev.get("metric"),
        value=_num(ev.get("value")),
        std=ev.get("std"),
        dense_value=_num(ev.get("dense_value")),
        delta=None if ev.get("delta") is None else f"{ev['delta']:+.4f}",
        matching=ev.get("matching"),
        matching_rule=ev.get("matching_rule"),
        rows=rows,
        branch=(branches or {}).get(meta.level),
        schedule=meta.schedule,
        pruning=f"{meta.pruning_method} ({meta.pruning_scope})",
        rewind_step=meta.rewind_step,
        exclude=", ".join(meta.exclude_patterns) or "nothing",
        command=find_command(run.config) if run else None,
        run_hash=run.config.get("hash") if run else meta.extra.get("run_hash"),
        hp_rows=hp_rows,
        model_class=info["model_class"],
        citation=CITATION,
        mask_file=MASK_FILE,
        config_file=CONFIG_FILE,
    )
    return ModelCard.from_template(card_data, template_path=str(card_template_path()), **kwargs)
