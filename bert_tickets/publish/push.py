"""Publishing tickets to the Hugging Face Hub: one ticket (:func:`push_ticket`, behind
:meth:`TicketMask.push_to_hub`) or the levels of a run (:func:`push_run`), through one upload
path (:func:`_upload`).

All Hub I/O goes through ``huggingface_hub`` (``HfApi.create_repo`` / ``create_branch`` /
``upload_folder``). **Levels of one run are published as branches**: level L of a run with target
sparsity s goes to the branch ``sparsity-<100·s>`` (``sparsity-60``, ``sparsity-27.1`` for a
geometric schedule; :func:`branch_name`), and ``main`` holds one chosen level (the one given with
``--level``, else the highest-sparsity matching level). Every branch has the same three file
names, so ``TicketMask.from_pretrained(repo, revision="sparsity-60")`` reaches each level.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import first_line
from ..results import RunInfo, RunPaths, check_output_dir, read_run
from ..ticket import LIBRARY_NAME, TicketMask, is_hub_repo_id
from ..ticket.hub import COMMIT_RE
from .card import _task_info, render_model_card


def branch_name(target_sparsity: float) -> str:
    """Branch of a level: ``sparsity-`` + the target sparsity in percent, at most two decimals
    (``0.6`` -> ``sparsity-60``, ``0.271`` -> ``sparsity-27.1``, ``0.40951`` -> ``sparsity-40.95``)."""
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target_sparsity}")
    pct = round(target_sparsity * 100, 2)
    return f"sparsity-{pct:g}" if pct != int(pct) else f"sparsity-{int(pct)}"


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
    ticket = TicketMask.from_pretrained(RunPaths(run.run_dir).ticket(level))
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
    if revision and revision != "main" and not COMMIT_RE.match(revision):
        api.create_branch(repo_id, branch=revision, exist_ok=True, token=token)
    card = model_card if model_card is not None else render_model_card(ticket, repo_id=repo_id, revision=revision)
    message = commit_message or f"Upload bert-tickets ticket (level {ticket.metadata.level}, sparsity {ticket.sparsity:.4f})"
    return _upload(api, ticket, card, repo_id, revision, message, token, create_pr)[1]


def _upload(
    api: Any,
    ticket: TicketMask,
    card: Any,
    repo_id: str,
    revision: str | None,
    message: str,
    token: str | bool | None,
    create_pr: bool = False,
) -> tuple[dict[str, int], Any]:
    """The one upload path: write the ticket and its card to a temporary directory
    (:meth:`TicketMask.save_pretrained`) and commit it with ``HfApi.upload_folder``.

    Returns:
        (file name -> size in bytes, what ``upload_folder`` returned).
    """
    with tempfile.TemporaryDirectory(prefix="bert-tickets-push-") as tmp:
        ticket.save_pretrained(tmp, model_card=card)
        files = {p.name: p.stat().st_size for p in Path(tmp).iterdir() if p.is_file()}
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            revision=revision,
            commit_message=message,
            token=token,
            create_pr=create_pr or None,
        )
    return files, commit


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


def _refuse_trivial(run, level: int | None) -> None:
    """``ValueError`` (one line) when the run's dense level -- or ``level`` -- is recorded as not
    beating the task's trivial baseline."""
    trivial = run.trivial_baseline
    if trivial is None:
        return
    value = "undefined" if trivial.get("value") is None else f"{trivial['value']:.4f}"
    words = f"the trivial baseline ({trivial.get('prediction')}: {value})"
    if run.dense_learned is False:
        dense = run.dense
        raise ValueError(
            f"{run.run_dir}: dense did not learn ({dense['metric']} {dense['mean']:.4f} does not beat {words}), so matching is "
            "undefined and no level is a ticket; pass --force to publish anyway"
        )
    row = run.levels.get(level) if level is not None else None
    if row is not None and row.get("beats_trivial") is False:
        raise ValueError(
            f"{run.run_dir}: level {level} ({row['metric']} {row['mean']:.4f}) does not beat {words}; pass --force to publish anyway"
        )


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
    force: bool = False,
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
        force: publish even when the dense level, or a level to publish, does not beat the
            task's trivial baseline (such a "ticket" carries no evidence).

    Returns:
        One :class:`PushedLevel` per published revision (branches first, ``main`` last).

    Raises:
        ValueError, FileNotFoundError: see :func:`plan_levels`, :func:`read_run`; a ``save_dir``
            that is a file or cannot be created; a local base model without ``base_model_id``; without ``force``, a dense level or a chosen level
            that does not beat the trivial baseline.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo id {repo_id!r}: {first_line(err)}") from None
    if save_dir is not None:
        check_output_dir(save_dir, "--save-dir")
    run = read_run(run_dir)
    if not force:
        _refuse_trivial(run, level)
    branches, main = plan_levels(run, level, all_levels)
    if not force:
        for lv in branches:
            _refuse_trivial(run, lv)
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
            out = ticket.save_pretrained(Path(save_dir) / rev, model_card=card)
            files, commit = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}, None
        else:
            message = f"bert-tickets: level {lv} of run {run.config.get('hash')} (sparsity {ticket.sparsity:.4f})"
            files, commit = _upload(api, ticket, card, repo_id, rev, message, token)
        pushed.append(PushedLevel(lv, rev, ticket.sparsity, files, commit))
    return pushed


def describe_pushed(pushed: Sequence[PushedLevel], repo_id: str) -> str:
    """Human-readable lines for :func:`push_run`'s result (printed by ``bert-tickets push``)."""
    lines = []
    for p in pushed:
        size = sum(p.files.values())
        url = getattr(p.commit, "commit_url", None) or ""
        lines.append(
            f"{repo_id}@{p.revision}: level {p.level}, sparsity {p.sparsity:.4f}, {len(p.files)} files, {size:,} bytes {url}".rstrip()
        )
    return "\n".join(lines)


@dataclass
class PushArguments:
    """Arguments of ``bert-tickets push RUN_DIR --repo-id ID [--level N | --all-levels]``
    (every option also with dashes: ``--repo-id``, ``--all-levels``, ``--save-dir``, ...)."""

    run_dir: str = field(metadata={"help": "Run directory of 'bert-tickets find'."})
    repo_id: str = field(metadata={"help": "Hub repo id, e.g. alice/bert-base-uncased-rte-ticket."})
    level: int | None = field(default=None, metadata={"help": "Publish this level (to its branch and to main)."})
    all_levels: bool = field(
        default=False,
        metadata={"help": "Publish every complete pruned level to its branch; main gets the highest-sparsity matching one."},
    )
    private: bool = field(default=False, metadata={"help": "Create the repo as private."})
    force: bool = field(
        default=False,
        metadata={"help": "Publish even when the dense level (or the chosen level) does not beat the trivial baseline."},
    )
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one / HF_TOKEN)."})
    base_model_id: str | None = field(default=None, metadata={"help": "Hub id of the base model when the run used a local copy of it."})
    base_model_revision: str | None = field(default=None, metadata={"help": "Revision (commit sha) of --base-model-id."})
    save_dir: str | None = field(
        default=None, metadata={"help": "Write the folders that would be uploaded to SAVE_DIR/<revision>/ instead of pushing."}
    )

    def __post_init__(self):
        if self.level is not None and self.all_levels:
            raise ValueError("give --level N or --all-levels, not both")


def run(args: PushArguments) -> list[PushedLevel]:
    """``bert-tickets push``: :func:`push_run` with the command's arguments (a repo is created
    private only with ``--private``; without it an existing repo keeps its visibility).

    Raises:
        ValueError / FileNotFoundError / OSError: see :func:`push_run` (one line).
    """
    return push_run(
        args.run_dir,
        args.repo_id,
        level=args.level,
        all_levels=args.all_levels,
        private=True if args.private else None,
        token=args.token,
        base_model_id=args.base_model_id,
        base_model_revision=args.base_model_revision,
        save_dir=args.save_dir,
        force=args.force,
    )


#: The argument dataclasses of ``push``.
ARGUMENTS = (PushArguments,)
