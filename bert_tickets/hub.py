"""Tickets as Hugging Face Hub artifacts: download, push, model cards, loading onto a base model.

All Hub I/O goes through ``huggingface_hub`` (``hf_hub_download`` to read;
``HfApi.create_repo`` / ``create_branch`` / ``upload_folder`` to write); nothing here speaks HTTP
itself, and ``HF_HUB_OFFLINE`` / ``local_files_only`` / ``cache_dir`` / ``token`` behave as for
any Hub artifact.

A ticket repository holds three files (see :mod:`bert_tickets.mask`): ``ticket_mask.safetensors``
(bit-packed mask), ``ticket_config.json`` (format version, base model + revision, shapes, task,
level, sparsity global and per tensor, schedule, rewind step, the level's and the dense metric,
library versions, sha256 of the mask file) and ``README.md`` (model card rendered from
``model_cards/ticket_card.md``).

**Levels of one run are published as branches**: level L of a run with target sparsity s goes to
the branch ``sparsity-<100·s>`` (``sparsity-60``, ``sparsity-27.1`` for a geometric schedule;
:func:`branch_name`), and ``main`` holds one chosen level (the one given with ``--level``, else the
highest-sparsity matching level). Every branch has the same three file names, so
``TicketMask.from_pretrained(repo, revision="sparsity-60")`` reaches each level, and a commit sha
pins one exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .mask import CONFIG_FILE, MASK_FILE, TicketMask, read_ticket_config
from .prunable import unwrap_model

logger = logging.getLogger("bert_tickets")

#: Value of ``library_name`` in the model cards (the Hub's "library" facet).
LIBRARY_NAME = "bert-tickets"
#: Template of the model card (shipped as ``bert_tickets.model_cards``; ``model_cards/`` in a checkout).
CARD_TEMPLATE = "ticket_card.md"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

CITATION = """@inproceedings{chen2020lottery,
  title     = {The Lottery Ticket Hypothesis for Pre-trained {BERT} Networks},
  author    = {Chen, Tianlong and Frankle, Jonathan and Chang, Shiyu and Liu, Sijia and
               Zhang, Yang and Wang, Zhangyang and Carbin, Michael},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {33},
  pages     = {15834--15846},
  year      = {2020}
}"""


class TicketNotFoundError(FileNotFoundError):
    """A ticket repository, revision or file does not exist on the Hub, or (offline) is not in
    the local Hugging Face cache."""


class BaseModelMismatchWarning(UserWarning):
    """A ticket is applied to a model loaded from another checkpoint than its ``base_model``."""


# ------------------------------------------------------------------------------ reading
def is_hub_repo_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` can be a Hub repo id (``"name"`` or ``"org/name"``, Hub characters only).

    Paths that exist, absolute paths, paths starting with ``.`` or ``~`` and anything with more
    than one ``/`` are not repo ids.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = os.fspath(name)
    if not isinstance(text, str) or os.path.isabs(text) or text.startswith((".", "~")) or os.path.exists(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _snapshot_commit(path: Path) -> str | None:
    """The commit sha of a file inside the Hugging Face cache (``.../snapshots/<sha>/...``)."""
    for parent in path.parents:
        if parent.parent.name == "snapshots" and _COMMIT_RE.match(parent.name):
            return parent.name
    return None


def download_ticket(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str | None = None,
) -> Path:
    """Fetch a ticket's ``ticket_config.json`` and ``ticket_mask.safetensors`` from the Hub.

    Uses ``huggingface_hub.hf_hub_download`` (Hugging Face cache, ``HF_HUB_OFFLINE``,
    ``local_files_only``, ``token`` as usual). The config is fetched first and its format and
    version checked before the mask is downloaded; the mask is then fetched at the *commit* the
    config came from, so a branch moving in between cannot mix two tickets.

    Returns:
        The local directory (a cache snapshot folder) holding both files.

    Raises:
        TicketNotFoundError: no such repo, revision or file, or not cached while offline.
        ValueError: the config is not a ticket config this version reads.
        OSError: another Hub error (one line).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f"@{revision}" if revision else "") + (f" (subfolder {subfolder})" if subfolder else "")

    def fetch(filename: str, rev: str | None) -> Path:
        try:
            return Path(
                hf_hub_download(
                    repo_id, filename, subfolder=subfolder, revision=rev, cache_dir=cache_dir,
                    local_files_only=local_files_only, token=token, library_name=LIBRARY_NAME,
                )
            )
        except LocalEntryNotFoundError:
            raise TicketNotFoundError(
                f"ticket {where}: no local directory of that name, and {filename} is not in the Hugging Face cache "
                "while the Hub cannot be reached (offline mode or local_files_only)"
            ) from None
        except GatedRepoError:
            raise TicketNotFoundError(f"ticket repo {repo_id} is gated: request access and pass a token") from None
        except RepositoryNotFoundError:
            raise TicketNotFoundError(
                f"no local directory {repo_id} and no Hub repo {repo_id} (or it is private: pass a token)"
            ) from None
        except RevisionNotFoundError:
            raise TicketNotFoundError(
                f"ticket repo {repo_id} has no revision {revision!r} (levels are published as branches sparsity-NN)"
            ) from None
        except EntryNotFoundError:
            raise TicketNotFoundError(f"{where} has no {filename}: not a bert-tickets ticket") from None
        except HfHubHTTPError as err:
            raise OSError(f"ticket {where}: Hub error: {str(err).strip().splitlines()[0]}") from None

    config_path = fetch(CONFIG_FILE, revision)
    read_ticket_config(config_path, f"ticket {where}")  # format checked before the mask is fetched
    commit = _snapshot_commit(config_path)
    mask_path = fetch(MASK_FILE, commit or revision)
    if mask_path.parent != config_path.parent:
        raise OSError(f"ticket {where}: {MASK_FILE} and {CONFIG_FILE} resolved to different snapshots")
    return config_path.parent


# ------------------------------------------------------------------------------ base model
def _model_source(model: nn.Module) -> tuple[str | None, str | None]:
    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    name = getattr(config, "_name_or_path", None) or getattr(inner, "name_or_path", None)
    return (str(name) if name else None), getattr(config, "_commit_hash", None)


def _same_checkpoint(a: str, b: str) -> bool:
    a, b = a.strip().rstrip("/"), b.strip().rstrip("/")
    if a == b:
        return True
    # "google-bert/bert-base-uncased" vs "bert-base-uncased", or a local copy named like the repo
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def check_base_model(ticket: TicketMask, model: nn.Module, strict: bool = False) -> bool:
    """Check that ``model`` was loaded from the ticket's base model (θ0).

    Compares the ticket's ``base_model`` with ``model.config._name_or_path`` (unwrapping PEFT /
    DDP): the same string, or the same final path component (``google-bert/bert-base-uncased``
    and ``bert-base-uncased``; a local copy in a folder named like the repo). When both the
    ticket's ``base_model_revision`` and the model's ``config._commit_hash`` are commit shas they
    must be equal. A model built from a config (empty name) or a ticket without base model
    cannot be checked and passes.

    Returns:
        ``True`` when it matches (or cannot be checked), ``False`` after warning.

    Raises:
        ValueError: a mismatch with ``strict=True``.

    Warns:
        BaseModelMismatchWarning: a mismatch with ``strict=False``.
    """
    expected, expected_rev = ticket.metadata.base_model, ticket.metadata.base_model_revision
    actual, actual_rev = _model_source(model)
    if not expected or not actual:
        return True
    problem = None
    if not _same_checkpoint(expected, actual):
        problem = f"the ticket was found on base model {expected!r} but the model was loaded from {actual!r}"
    elif expected_rev and actual_rev and _COMMIT_RE.match(str(expected_rev)) and _COMMIT_RE.match(str(actual_rev)) and expected_rev != actual_rev:
        problem = f"the ticket was found on {expected}@{expected_rev} but the model was loaded at commit {actual_rev}"
    if problem is None:
        return True
    if strict:
        raise ValueError(f"{problem} (strict: refusing to apply the ticket)")
    warnings.warn(f"{problem}; the mask selects weights of another θ0", BaseModelMismatchWarning, stacklevel=3)
    return False


def load_ticket(
    repo_or_dir: str | os.PathLike,
    model_class: Any,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str | None = None,
    base_model: str | os.PathLike | None = None,
    base_model_revision: str | None = None,
    strict: bool = False,
    return_ticket: bool = False,
    **from_pretrained_kwargs: Any,
):
    """Load a ticket and the base model it names, and apply the mask: one call.

    Args:
        repo_or_dir: ticket directory or Hub repo id (see :meth:`TicketMask.from_pretrained`).
        model_class: a ``transformers`` class with ``from_pretrained``, e.g.
            ``AutoModelForSequenceClassification``.
        revision: the *ticket's* revision (branch such as ``"sparsity-60"``, tag or sha).
        cache_dir, local_files_only, token: used for the ticket and the base model alike.
        subfolder: folder of the ticket inside ``repo_or_dir``.
        base_model: load θ0 from here instead of the ticket's ``base_model`` (e.g. a local copy);
            the name is checked with :func:`check_base_model`.
        base_model_revision: revision of ``base_model``; default the ticket's
            ``base_model_revision`` when ``base_model`` is not given.
        strict: raise instead of warning on a base-model mismatch.
        return_ticket: return ``(model, ticket)`` instead of ``model``.
        **from_pretrained_kwargs: passed to ``model_class.from_pretrained`` (e.g.
            ``num_labels=2``); ``use_safetensors`` defaults to ``True`` (never unpickle).

    Returns:
        The model with the pruned weights set to exactly 0 (and the :class:`TicketMask`).

    Raises:
        ValueError: the ticket names no base model and none is given, the ticket does not fit
            the model (names/shapes), or a mismatch with ``strict=True``.
        TicketNotFoundError / FileNotFoundError / OSError: see
            :meth:`TicketMask.from_pretrained` and ``from_pretrained`` of ``model_class``.
    """
    ticket = TicketMask.from_pretrained(
        repo_or_dir, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, subfolder=subfolder
    )
    name = os.fspath(base_model) if base_model is not None else ticket.metadata.base_model
    if not name:
        raise ValueError(f"ticket {repo_or_dir} names no base model; pass base_model=")
    rev = base_model_revision if (base_model is not None or base_model_revision) else ticket.metadata.base_model_revision
    from_pretrained_kwargs.setdefault("use_safetensors", True)
    model = model_class.from_pretrained(
        name, revision=rev, cache_dir=cache_dir, local_files_only=local_files_only, token=token, **from_pretrained_kwargs
    )
    ticket.apply(model, strict=strict)
    return (model, ticket) if return_ticket else model


# ------------------------------------------------------------------------------ run directories
def branch_name(target_sparsity: float) -> str:
    """Branch of a level: ``sparsity-`` + the target sparsity in percent, at most two decimals
    (``0.6`` -> ``sparsity-60``, ``0.271`` -> ``sparsity-27.1``, ``0.40951`` -> ``sparsity-40.95``)."""
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target_sparsity}")
    pct = round(target_sparsity * 100, 2)
    return f"sparsity-{pct:g}" if pct != int(pct) else f"sparsity-{int(pct)}"


@dataclass
class RunInfo:
    """What a run directory says about its levels (read by :func:`read_run`).

    Attributes:
        run_dir: the directory.
        config: ``run_config.json`` (``hash``, ``hyperparameters``, ``schedule``).
        levels: level -> result row (``level``, ``target_sparsity``, ``sparsity``, ``metric``,
            ``mean``, ``std``, ``per_seed``, ``delta``, ``matching``, …) of every *complete*
            level (``level_NN/metrics.json`` exists), with ``delta`` / ``matching`` taken from
            ``summary.json`` when present, else computed with the run's matching rule.
        matching_rule: the rule in words.
    """

    run_dir: Path
    config: dict
    levels: dict[int, dict] = field(default_factory=dict)
    matching_rule: str = ""

    @property
    def task(self) -> str | None:
        """The run's task name (``hyperparameters.data.task``), or ``None``."""
        return self.config.get("hyperparameters", {}).get("data", {}).get("task")

    @property
    def dense(self) -> dict:
        """Result row of the dense level 0."""
        return self.levels[0]

    def best_matching_level(self) -> int | None:
        """Highest-sparsity matching pruned level, or ``None``."""
        matching = [r for lv, r in self.levels.items() if lv > 0 and r.get("matching")]
        return max(matching, key=lambda r: r["sparsity"])["level"] if matching else None


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """Read ``run_config.json``, every complete level's ``metrics.json`` and ``summary.json``.

    Raises:
        FileNotFoundError: not a run directory, or its dense level (``level_00``) is incomplete.
        ValueError: unreadable JSON.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "run_config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a bert-tickets run directory (no run_config.json)")
    try:
        config = json.loads(cfg_path.read_text())
        levels = {}
        for path in sorted(run_dir.glob("level_*/metrics.json")):
            row = dict(json.loads(path.read_text())["result"])
            levels[int(row["level"])] = row
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{run_dir}: unreadable run files: {err}") from None
    if 0 not in levels:
        raise FileNotFoundError(f"{run_dir}: the dense level (level_00/metrics.json) is not complete yet")
    from .imp import matching_margin

    dense = levels[0]
    tol = config.get("hyperparameters", {}).get("imp", {}).get("tolerance", 0.01)
    margin, rule = matching_margin(dense.get("std"), len(dense.get("per_seed", {})), tol)
    from_summary = {int(r["level"]): r for r in (summary or {}).get("levels", [])}
    for lv, row in levels.items():
        done = from_summary.get(lv, {})
        row["delta"] = done.get("delta", row["mean"] - dense["mean"])
        row["matching"] = done.get("matching", bool(row["mean"] >= dense["mean"] - margin - 1e-12))
    return RunInfo(run_dir, config, levels, (summary or {}).get("matching_rule", rule))


def ticket_from_run(
    run_dir: str | os.PathLike | RunInfo,
    level: int,
    *,
    base_model_id: str | None = None,
    base_model_revision: str | None = None,
) -> TicketMask:
    """A complete level's ticket with the run's evaluation added to its metadata.

    ``metadata.extra["evaluation"]`` gets ``task``, ``metric``, ``split``, ``value`` (the level's
    mean), ``std``, ``per_seed``, ``dense_value`` / ``dense_std`` (level 0 of the run),
    ``delta``, ``matching`` and ``matching_rule``; ``metadata.extra["run_hash"]`` the run's hash.
    With ``base_model_id`` the ticket names that Hub id (and ``base_model_revision``, default
    unknown) as its base model and records the original ``base_model`` / revision under
    ``extra["base_model_source"]`` — for runs made from a local copy of a Hub checkpoint.

    Raises:
        FileNotFoundError: the level is not complete or has no ticket.
        ValueError: see :meth:`TicketMask.from_pretrained`.
    """
    run = run_dir if isinstance(run_dir, RunInfo) else read_run(run_dir)
    if level not in run.levels:
        done = ", ".join(map(str, sorted(run.levels))) or "none"
        raise FileNotFoundError(f"{run.run_dir}: level {level} is not complete (complete levels: {done})")
    ticket = TicketMask.from_pretrained(run.run_dir / f"level_{level:02d}" / "ticket")
    row, dense = run.levels[level], run.dense
    spec = _task_info(ticket.metadata.task or run.task)
    ticket.metadata.extra["evaluation"] = {
        "task": ticket.metadata.task or run.task,
        "metric": row["metric"],
        "split": spec["split"],
        "value": row["mean"],
        "std": row.get("std"),
        "per_seed": row.get("per_seed", {}),
        "dense_value": dense["mean"],
        "dense_std": dense.get("std"),
        "delta": row["delta"],
        "matching": row["matching"],
        "matching_rule": run.matching_rule,
    }
    ticket.metadata.extra["run_hash"] = run.config.get("hash")
    if base_model_id is not None:
        meta = ticket.metadata
        meta.extra["base_model_source"] = {"base_model": meta.base_model, "base_model_revision": meta.base_model_revision}
        meta.base_model, meta.base_model_revision = base_model_id, base_model_revision
    return ticket


# ------------------------------------------------------------------------------ model cards
def _task_info(task: str | None) -> dict[str, Any]:
    """Hub metadata of a task: dataset id/config/name, pipeline task type, eval split."""
    info = {"dataset": None, "config": None, "name": task or "unknown task", "task_type": "text-classification", "split": "validation"}
    if not task:
        return info
    try:
        from .tasks import get_task

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
    path = Path(__file__).resolve().parents[1] / "model_cards" / CARD_TEMPLATE
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
            task_type=info["task_type"], dataset_type=info["dataset"], dataset_name=info["name"],
            dataset_config=info["config"], dataset_split=ev.get("split", info["split"]), metric_type=ev["metric"],
        )
        eval_results.append(EvalResult(metric_value=ev["value"], metric_name=f"{ev['metric']} (ticket, sparsity {_pct(ticket.sparsity, 1)})", **common))
        if ev.get("dense_value") is not None:
            eval_results.append(EvalResult(metric_value=ev["dense_value"], metric_name=f"{ev['metric']} (dense {base}, same recipe)", **common))
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
            rows.append({
                "level": lv, "target": _pct(r["target_sparsity"]), "sparsity": _pct(r["sparsity"], 3),
                "value": _num(r["mean"]) + (f" ± {r['std']:.4f}" if r.get("std") is not None else ""),
                "delta": "–" if lv == 0 else f"{r['delta']:+.4f}", "matching": "dense" if lv == 0 else ("yes" if r["matching"] else "no"),
                "branch": f"`{branches[lv]}`" if branches and lv in branches else "–",
                "this": lv == meta.level,
            })
    per_tensor = ticket.per_tensor_sparsity()
    hp = (run.config.get("hyperparameters", {}) if run else {})
    hp_rows = [(f"{g}.{k}", json.dumps(v) if not isinstance(v, str) else v) for g in ("model", "data", "imp", "training") for k, v in hp.get(g, {}).items() if v is not None]
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
            info["task_type"], "AutoModelForSequenceClassification"),
        citation=CITATION,
        mask_file=MASK_FILE,
        config_file=CONFIG_FILE,
    )
    return ModelCard.from_template(card_data, template_path=str(card_template_path()), **kwargs)


# ------------------------------------------------------------------------------ pushing
def _api(api: Any, token: str | bool | None):
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name=LIBRARY_NAME)


def push_ticket(
    ticket: TicketMask,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    model_card: Any = None,
    create_pr: bool = False,
    api: Any = None,
    create_repo: bool = True,
):
    """Upload a ticket (mask, config, model card) to ``repo_id`` in one commit.

    Calls ``HfApi.create_repo(repo_id, private=private, exist_ok=True)`` (unless
    ``create_repo=False``), ``HfApi.create_branch(repo_id, branch=revision, exist_ok=True)`` when
    ``revision`` is a branch other than ``main``, then ``HfApi.upload_folder`` of a temporary
    directory written by :meth:`TicketMask.save_pretrained`.

    Args:
        ticket: the ticket.
        repo_id: ``"org/name"``.
        revision: target branch (created from ``main`` when missing); default ``main``.
        private: visibility of a newly created repo.
        token: Hub token (default: the logged-in one).
        commit_message: default ``"Upload bert-tickets ticket (level L, sparsity S)"``.
        model_card: ``README.md`` content (``str`` / ``ModelCard``); default
            :func:`render_model_card` of the ticket alone.
        create_pr: open a pull request instead of committing.
        api: an ``HfApi`` (or a stand-in with the same methods, e.g. in tests).
        create_repo: call ``create_repo`` first.

    Returns:
        What ``upload_folder`` returns (``huggingface_hub.CommitInfo``).
    """
    api = _api(api, token)
    if create_repo:
        api.create_repo(repo_id, private=private, exist_ok=True, token=token)
    if revision and revision != "main" and not _COMMIT_RE.match(revision):
        api.create_branch(repo_id, branch=revision, exist_ok=True, token=token)
    card = model_card if model_card is not None else render_model_card(ticket, repo_id=repo_id, revision=revision)
    message = commit_message or f"Upload bert-tickets ticket (level {ticket.metadata.level}, sparsity {ticket.sparsity:.4f})"
    with tempfile.TemporaryDirectory(prefix="bert-tickets-push-") as tmp:
        ticket.save_pretrained(tmp, model_card=card)
        return api.upload_folder(
            repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=message, token=token, create_pr=create_pr or None,
        )


@dataclass
class PushedLevel:
    """One level published by :func:`push_run`."""

    level: int
    revision: str
    sparsity: float
    files: dict[str, int]
    commit: Any = None


def plan_levels(run: RunInfo, level: int | None = None, all_levels: bool = False) -> tuple[dict[int, str], int]:
    """Which levels go to which branch, and which level ``main`` holds.

    ``level``: that level (to its branch and to ``main``); ``all_levels``: every complete pruned
    level (level 0, the dense all-ones mask, only when given explicitly) to its branch, ``main``
    holding the highest-sparsity matching level (else the highest level); neither: the
    highest-sparsity matching level.

    Returns:
        (level -> branch, level for ``main``).

    Raises:
        ValueError: both ``level`` and ``all_levels``, no such complete level, no matching level
            to choose, or two levels mapping to the same branch.
    """
    if level is not None and all_levels:
        raise ValueError("give either --level N or --all-levels, not both")
    complete = sorted(run.levels)
    if level is not None:
        if level not in run.levels:
            raise ValueError(f"{run.run_dir}: level {level} is not complete (complete levels: {', '.join(map(str, complete))})")
        chosen = [level]
        main = level
    elif all_levels:
        chosen = [lv for lv in complete if lv > 0]
        if not chosen:
            raise ValueError(f"{run.run_dir}: no pruned level is complete yet")
        best = run.best_matching_level()
        main = best if best is not None else chosen[-1]
    else:
        best = run.best_matching_level()
        if best is None:
            raise ValueError(f"{run.run_dir}: no pruned level is matching; choose one with --level N or push --all-levels")
        chosen, main = [best], best
    branches = {lv: branch_name(run.levels[lv]["target_sparsity"]) for lv in chosen}
    if len(set(branches.values())) != len(branches):
        raise ValueError(f"two levels map to the same branch: {branches}")
    return branches, main


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    level: int | None = None,
    all_levels: bool = False,
    private: bool | None = None,
    token: str | bool | None = None,
    base_model_id: str | None = None,
    base_model_revision: str | None = None,
    save_dir: str | os.PathLike | None = None,
    api: Any = None,
) -> list[PushedLevel]:
    """Publish levels of a run directory: each to its branch ``sparsity-NN``, one also to ``main``.

    See :func:`plan_levels` for the choice of levels. Every published folder holds the level's
    ticket (with its evaluation and the dense metric, :func:`ticket_from_run`) and a model card
    listing the whole run. Branches are created from ``main`` before ``main`` is written, then
    filled; ``main`` is committed last.

    Args:
        run_dir: run directory of ``bert-tickets find``.
        repo_id: ``"org/name"``.
        level, all_levels: see :func:`plan_levels`.
        private, token: as for :func:`push_ticket`.
        base_model_id, base_model_revision: Hub id (and revision) of the base model when the run
            used a local copy; required when the run's base model is not a Hub id.
        save_dir: write the folders that would be uploaded to ``save_dir/<revision>/`` and do not
            contact the Hub.
        api: an ``HfApi`` or stand-in.

    Returns:
        One :class:`PushedLevel` per published revision (branches first, ``main`` last).

    Raises:
        ValueError, FileNotFoundError: see :func:`plan_levels`, :func:`read_run`; a local base
            model without ``base_model_id``.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo id {repo_id!r}: {str(err).splitlines()[0]}") from None
    run = read_run(run_dir)
    branches, main = plan_levels(run, level, all_levels)
    tickets = {lv: ticket_from_run(run, lv, base_model_id=base_model_id, base_model_revision=base_model_revision) for lv in branches}
    base = tickets[main].metadata.base_model
    if not base or not is_hub_repo_id(base):
        raise ValueError(
            f"the run's base model {base!r} is not a Hub repo id; pass --base-model-id (the Hub id of that checkpoint) "
            "so the published ticket names a loadable base model"
        )
    targets = [(lv, br) for lv, br in sorted(branches.items())] + [(main, "main")]
    pushed: list[PushedLevel] = []
    if save_dir is None:
        api = _api(api, token)
        api.create_repo(repo_id, private=private, exist_ok=True, token=token)
        for _, br in targets[:-1]:
            api.create_branch(repo_id, branch=br, exist_ok=True, token=token)
    for lv, rev in targets:
        ticket = tickets[lv]
        card = render_model_card(ticket, repo_id=repo_id, revision=rev, run=run, branches=branches)
        if save_dir is not None:
            out = Path(save_dir) / rev
            ticket.save_pretrained(out, model_card=card)
            commit = None
        else:
            with tempfile.TemporaryDirectory(prefix="bert-tickets-push-") as tmp:
                out = Path(tmp)
                ticket.save_pretrained(out, model_card=card)
                files = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
                commit = api.upload_folder(
                    repo_id=repo_id, folder_path=str(out), revision=rev, token=token,
                    commit_message=f"bert-tickets: level {lv} of run {run.config.get('hash')} (sparsity {ticket.sparsity:.4f})",
                )
            pushed.append(PushedLevel(lv, rev, ticket.sparsity, files, commit))
            continue
        pushed.append(PushedLevel(lv, rev, ticket.sparsity, {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}, commit))
    return pushed


def describe_pushed(pushed: Sequence[PushedLevel], repo_id: str) -> str:
    """Human-readable lines for :func:`push_run`'s result (printed by ``bert-tickets push``)."""
    lines = []
    for p in pushed:
        size = sum(p.files.values())
        url = getattr(p.commit, "commit_url", None) or ""
        lines.append(f"{repo_id}@{p.revision}: level {p.level}, sparsity {p.sparsity:.4f}, {len(p.files)} files, {size:,} bytes {url}".rstrip())
    return "\n".join(lines)
