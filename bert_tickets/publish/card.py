"""Model cards of tickets: rendered from ``model_cards/ticket_card.md`` (shipped as
``bert_tickets.model_cards``) with huggingface_hub's ``ModelCard`` / ``ModelCardData``."""

from __future__ import annotations

import json
import logging
import math
import shlex
from pathlib import Path
from typing import Any

from ..results import RunInfo
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
    """Hub metadata of a task: dataset id/config/name, pipeline task type, eval split."""
    info = {"dataset": None, "config": None, "name": task or "unknown task", "task_type": "text-classification", "split": "validation"}
    if not task:
        return info
    try:
        from ..tasks import get_task  # imported here: the task kinds pull in transformers' model classes

        spec = get_task(task)
    except Exception:  # noqa: BLE001 - a card must render even for a task this version does not know
        return info
    kind = getattr(spec, "kind", "glue")
    info["dataset"] = getattr(spec, "hub_dataset", None)
    info["config"] = getattr(spec, "hub_config", None)
    display = getattr(spec, "display_name", task)
    info["name"] = f"GLUE {display}" if kind == "glue" else display
    info["task_type"] = {"squad": "question-answering", "mlm": "fill-mask"}.get(kind, "text-classification")
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


def find_command(run_config: dict) -> str:
    """The ``bert-tickets find`` command line that reproduces a run (from ``run_config.json``):
    every recorded hyperparameter, ``--target_sparsity`` from the schedule's last level."""
    hp = run_config.get("hyperparameters", {})
    args: list[str] = ["bert-tickets", "find"]
    model = hp.get("model", {})
    groups = [
        ("model_name_or_path", model.get("model_name_or_path"), "--model"),
        ("revision", model.get("revision"), "--revision"),
    ]
    for key, value, flag in groups:
        if value is not None and not (key == "revision" and value == "main"):
            args += [flag, str(value)]
    for group in ("data", "imp", "training"):
        for key, value in hp.get(group, {}).items():
            if value is None or value is False:
                continue
            if value is True:
                args.append(f"--{key}")
            elif isinstance(value, (list, tuple)):
                args += [f"--{key}", *map(str, value)]
            else:
                args += [f"--{key}", str(value)]
    schedule = run_config.get("schedule") or []
    if schedule:
        args += ["--target_sparsity", f"{schedule[-1]:g}"]
    return " ".join(shlex.quote(a) for a in args)


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
        model_class={"question-answering": "AutoModelForQuestionAnswering", "fill-mask": "AutoModelForMaskedLM"}.get(
            info["task_type"], "AutoModelForSequenceClassification"
        ),
        citation=CITATION,
        mask_file=MASK_FILE,
        config_file=CONFIG_FILE,
    )
    return ModelCard.from_template(card_data, template_path=str(card_template_path()), **kwargs)
