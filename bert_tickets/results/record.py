"""``RunRecord``: the one owner of a run directory — what is written where (through
:class:`~.paths.RunPaths`), which levels are complete, whether the directory holds this run
(hyperparameter hash), and writes that are no-ops off the main process (so a multi-process run
writes each file once). ``read_run`` reads a finished or partial run back (for ``info`` and
``push``).

Every write is atomic (temporary file + rename); a level is complete once its
``metrics.json`` exists, and the next level's mask is written before it, so resuming never needs
trained weights.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import (
    atomic_write_dir,
    atomic_write_text,
    file_problem,
    file_record,
    json_hash,
    read_json,
    read_tensors,
    save_tensors,
    write_json,
)
from ..ticket import TicketMask
from ..ticket.base_model import LOCAL_REVISION_PREFIX, same_path
from .kinds import RUN
from .lock import RunLock
from .matching import LevelResult, is_matching, is_super_ticket, level_barrier, matching_margin
from .paths import RunPaths

SUMMARY_COLUMNS = (
    "level",
    "target_sparsity",
    "sparsity",
    "num_pruned",
    "num_prunable",
    "metric",
    "mean",
    "std",
    "delta",
    "matching",
    "elapsed_s",
    "collapsed_tensors",
    "parent_level",
    "barrier",
    "barrier_successive",
    "near_constant",
    "train_loss",
    "super_ticket",
)


def hyperparameter_hash(hparams: dict) -> str:
    """Short stable hash of a run's hyperparameters (open_lth-style run naming): the first 12
    hex digits of the sha256 of their key-sorted JSON."""
    return json_hash(hparams)


class RunRecord:
    """Reads and writes one run directory.

    Args:
        run_dir: the directory (created on the first write).
        is_main: whether this process writes (``TrainingArguments.process_index == 0``); on
            other processes every write method does nothing and reads work as usual.
    """

    def __init__(self, run_dir: str | os.PathLike, *, is_main: bool = True):
        self.paths = RunPaths(run_dir)
        self.is_main = is_main

    @property
    def root(self) -> Path:
        return self.paths.root

    def lock(self) -> RunLock:
        """The directory's :class:`~.lock.RunLock` (taken by the main process only)."""
        return RunLock(self.root, enabled=self.is_main)

    # ----------------------------------------------------------------- configuration
    def check_config(self, hparams: dict, run_hash: str, schedule: list[float] | None = None) -> None:
        """Refuse a directory that holds another run, before any work.

        Raises:
            ValueError: ``run_config.json`` has another hash (the message lists the changed
                hyperparameters), or a complete level was run at another sparsity than
                ``schedule`` (level -> target) gives it.
        """
        cfg = self.paths.run_config
        if cfg.exists():
            old = read_json(cfg)
            if old.get("hash") != run_hash:
                changed = changed_hyperparameters(old.get("hyperparameters", {}), hparams)
                if "model.revision" in changed and str(hparams["model"]["revision"]).startswith(LOCAL_REVISION_PREFIX):
                    raise ValueError(
                        f"{self.root} was run on another θ0: the weights of {hparams['model']['model_name_or_path']} changed "
                        f"(now {hparams['model']['revision'][:19]}…, the run has {old['hyperparameters']['model']['revision'][:19]}…); "
                        "use another --output_dir"
                    )
                if changed:
                    raise ValueError(
                        f"{self.root} holds a run with other hyperparameters (hash {old.get('hash')} vs {run_hash}; "
                        f"changed: {', '.join(changed)}); use another --output_dir"
                    )
                # the same run, its paths spelled differently (or recorded before they were resolved)
        if schedule is None:
            return
        for path in self.paths.metrics_files():
            try:
                done = _result(path)
            except ValueError:
                continue  # a corrupt level is re-trained (level_problem), not compared
            level = done["level"]
            if level < len(schedule) and abs(done["target_sparsity"] - schedule[level]) > 1e-9:
                raise ValueError(
                    f"{path.parent} was run at sparsity {done['target_sparsity']} but this schedule puts level {level} "
                    f"at {schedule[level]}; use another --output_dir"
                )

    def level_problem(self, level: int, *, weights: tuple[str, ...] = ()) -> str | None:
        """Why the complete level ``level`` cannot be reused as it is, or ``None``: what a resume
        verifies before it skips a level. Checked: its ``metrics.json`` (valid, with its row);
        the files that record lists (size and sha256) or, for runs written before it listed
        them, those of the weight files named in ``weights`` that exist (``"trained_model"``,
        ``"trained_head"``: safetensors header against file size; a missing one is no problem:
        ``--save_trained`` added to a finished run does not re-train it); the next level's ticket when it exists (the
        level's product, written before its ``metrics.json``; its mask sha256) and level 0's
        own ticket. A level with a problem is re-trained, which re-creates all of them.

        Returns:
            One phrase naming the file and what is wrong with it.
        """
        path = self.paths.metrics(level)
        try:
            raw = read_json(path)
            _result(path, raw)
        except ValueError as err:
            return str(err).split(";")[0]
        listed = raw.get("files") or {}
        names = {"trained_model": self.paths.trained_model(level), "trained_head": self.paths.trained_head(level)}
        present = {names[w].name for w in weights if names[w].exists()}  # a run may add --save_trained later
        for name in sorted(set(listed) | present):
            problem = file_problem(self.paths.level(level) / name, listed.get(name))
            if problem is not None:
                return f"{self.paths.level(level) / name}: {problem}"
        for lv in (level, level + 1) if level == 0 else (level + 1,):
            if self.has_ticket(lv):
                try:
                    self.load_ticket(lv)
                except (ValueError, OSError) as err:
                    return str(err).split(";")[0]
        return None

    def write_config(
        self,
        run_hash: str,
        hparams: dict,
        schedule: list[float] | None,
        launch: dict | None = None,
        arguments: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Create the directory and write ``run_config.json`` (main process only).

        Only ``hash`` and ``hyperparameters`` say which run the directory holds
        (:meth:`check_config`); the rest is recorded, not hashed: ``launch`` (how this
        invocation ran: world size, per-device batch, accumulation) and ``arguments`` (the typed
        argument groups, :func:`argument_groups`, which load back through the command's parser:
        ``bert-tickets find --config RUN/run_config.json``).
        """
        if self.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            config = {"kind": RUN, "hash": run_hash, "hyperparameters": hparams, "schedule": schedule}
            if launch is not None:
                config["launch"] = launch
            if arguments is not None:
                config["arguments"] = arguments
            write_json(self.paths.run_config, config)

    # ----------------------------------------------------------------- levels
    def completed_level(self, level: int) -> LevelResult | None:
        """The level's result when it is complete (``metrics.json`` exists), else ``None``.

        Raises:
            ValueError: ``metrics.json`` is corrupt (one line naming it).
        """
        path = self.paths.metrics(level)
        if not path.exists():
            return None
        return LevelResult(**_result(path))

    def has_ticket(self, level: int) -> bool:
        return (self.paths.ticket(level)).is_dir()

    def load_ticket(self, level: int) -> TicketMask:
        """The level's saved ticket (see :meth:`TicketMask.from_pretrained` for errors)."""
        return TicketMask.from_pretrained(self.paths.ticket(level))

    def save_ticket(self, level: int, ticket: TicketMask) -> None:
        if self.is_main:
            ticket.save_pretrained(self.paths.ticket(level))

    def write_level(self, result: LevelResult, per_seed: dict[str, dict[str, Any]]) -> None:
        """Write ``metrics.json``: from now on the level is complete. It lists the weight files
        the level kept (``files``: name -> bytes and sha256, :func:`~bert_tickets._io.file_record`)."""
        if self.is_main:
            files = {
                p.name: file_record(p)
                for p in (self.paths.trained_model(result.level), self.paths.trained_head(result.level))
                if p.is_file()
            }
            record = {"result": result.__dict__, "per_seed": per_seed}
            if files:  # the weights the level kept, so a resume can verify them (level_problem)
                record["files"] = files
            write_json(self.paths.metrics(result.level), record)

    def completed_mask_search(self, level: int) -> dict | None:
        """The level's mask-search record (``find --mask_data``), ``None`` when absent or corrupt."""
        return _optional_json(self.paths.mask_search_record(level))

    def write_mask_search(self, level: int, record: dict) -> None:
        if self.is_main:
            write_json(self.paths.mask_search_record(level), record)

    def completed_early_bird(self, level: int) -> dict | None:
        """The level's early-bird search record (``find --early_bird``) when the search is complete
        (its record and the next level's ticket exist), else ``None``; a corrupt record counts as
        not done (the search runs again)."""
        return _optional_json(self.paths.early_bird_record(level)) if self.has_ticket(level + 1) else None

    def write_early_bird(self, level: int, record: dict) -> None:
        if self.is_main:
            write_json(self.paths.early_bird_record(level), record)

    def has_rewind_point(self, step: int) -> bool:
        """Whether a readable rewind point at ``step`` is saved (a truncated one is made again)."""
        path = self.paths.rewind_point(step)
        return path.is_file() and file_problem(path) is None

    def load_checkpoint_weights(self, checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
        """The model weights of a Trainer checkpoint directory (``model.safetensors``)."""
        return self._load(Path(checkpoint) / "model.safetensors", "the level starts over without it")

    def remove_checkpoints(self, level: int, seed: int | None = None) -> None:
        """Delete the Trainer checkpoints (``checkpoint-N``) of a level's seeds (or one seed)."""
        if not self.is_main:
            return
        import shutil

        seed_dirs = [self.paths.seed(level, seed)] if seed is not None else sorted(self.paths.level(level).glob("seed_*"))
        for seed_dir in seed_dirs:
            for ckpt in sorted(seed_dir.glob("checkpoint-*")):
                if ckpt.is_dir():
                    shutil.rmtree(ckpt)

    def completed_stability(self, level: int, rewind_step: int, continued: bool = False, data_seeds=(1, 2)) -> dict | None:
        """The saved instability analysis (``stability.json``), or ``None`` when not done."""
        return _completed_analysis(self.paths.stability(level, rewind_step, continued, data_seeds) / "stability.json")

    def stability_analyses(self) -> list[dict]:
        """Every complete instability analysis of the run (``stability/level_*/stability.json``,
        successive paths excluded), in directory order; corrupt ones are skipped with a warning."""
        found = []
        for path in sorted((self.root / "stability").glob("level_*/stability.json")):
            done = _completed_analysis(path)
            if done is not None:
                found.append(done)
        return found

    def write_stability(self, level: int, rewind_step: int, result: dict, continued: bool = False, data_seeds=(1, 2)) -> Path:
        """Write ``stability.json`` (last: from now on the analysis is complete)."""
        path = self.paths.stability(level, rewind_step, continued, data_seeds) / "stability.json"
        if self.is_main:
            write_json(path, result)
        return path

    def write_log_history(self, level: int, seed: int, history: list[dict[str, Any]]) -> None:
        if self.is_main:
            write_json(self.paths.log_history(level, seed), history)

    # ----------------------------------------------------------------- weights
    def train_steps(self, level: int) -> int:
        """Optimizer steps the level's fine-tunes took, summed over its seeds (the last ``step``
        of each seed's ``log_history.json``; 0 for a level without logs), less the steps before
        :meth:`start_step` per seed (they are counted elsewhere: level 0's, or the data diet's)."""
        start = self.start_step(level)
        total = 0
        for path in sorted(self.paths.level(level).glob("seed_*/log_history.json")):
            last = max((int(h.get("step", 0)) for h in read_json(path)), default=0)
            total += max(last - start, 0)
        return total

    def calibration_steps(self) -> int:
        """Optimizer steps of the calibrated adaptive schedule's second dense copy
        (:meth:`RunPaths.dense_instability`; one fine-tune of the first seed on level 0's data and
        budget, which keeps no Trainer log): one seed's whole fine-tune less the rewind step k
        when the copy continues from step k's state; 0 when the run measured no dense
        instability."""
        if not self.paths.dense_instability().is_dir():
            return 0
        return max(self.steps_per_seed(0) + self.start_step(0) - self.continued_from_step(), 0)

    def steps_per_seed(self, level: int) -> int:
        """:meth:`train_steps` of ``level`` divided by its number of seed logs (one seed's
        fine-tune); 0 for a level without logs."""
        seeds = len(list(self.paths.level(level).glob("seed_*/log_history.json")))
        return self.train_steps(level) // seeds if seeds else 0

    def _imp_hyperparameters(self) -> dict:
        cfg = self.paths.run_config
        return read_json(cfg).get("hyperparameters", {}).get("imp", {}) if cfg.is_file() else {}

    def continued_from_step(self) -> int:
        """The rewind step k from which levels continue each seed's whole training state
        (``run_config.json``: ``rewind_step`` k > 0, ``rewind_mode`` ``state`` — ``find``'s
        ``continues_from_step``); 0 otherwise, or without a config. Runs recorded before the
        rewind modes existed (and data-diet runs recorded before session 14) restarted the
        schedule (``backbone_restart``: no ``rewind_mode`` recorded)."""
        return _continued_from_step(self._imp_hyperparameters())

    def start_step(self, level: int) -> int:
        """The step each seed's fine-tune of ``level`` starts from: :meth:`continued_from_step`
        for pruned levels, and for level 0 too when a data diet made the state at step k (its k
        steps are the diet's, counted in ``data_diet/subset.json``); else 0."""
        imp = self._imp_hyperparameters()
        return 0 if level == 0 and imp.get("rewind_data", "full") == "full" else _continued_from_step(imp)

    def lineage_train_steps(self, level: int) -> int:
        """Optimizer steps of every level on ``level``'s lineage (its parent, the parent's parent,
        … down to level 0; the parent is the ticket's ``parent_level``, else L − 1):
        what produced its mask, for tickets written before cost records existed."""
        total, current = 0, level
        while current > 0:
            parent = current - 1
            if self.has_ticket(current):
                found = self.load_ticket(current).metadata.parent_level
                parent = int(found) if found is not None else parent
            total += self.train_steps(parent)
            current = parent
        return total

    def _save(self, path: Path, state: dict[str, torch.Tensor]) -> None:
        if self.is_main:
            save_tensors(path, state)

    #: What to do about a corrupt weight file of a run (the message of :meth:`_load`).
    REPAIR = "re-run the same find command: it re-creates what is corrupt (re-training the level that wrote it)"

    @staticmethod
    def _load(path: Path, fix: str = REPAIR) -> dict[str, torch.Tensor]:
        """The one reader of the run's weight files (:func:`~bert_tickets._io.read_tensors`):
        a truncated or corrupt file is a one-line ``ValueError`` naming it and what to do."""
        return read_tensors(path, fix)

    def save_initial_head(self, seed: int, state: dict[str, torch.Tensor]) -> None:
        self._save(self.paths.initial_head(seed), state)

    def load_initial_head(self, seed: int) -> dict[str, torch.Tensor]:
        return self._load(self.paths.initial_head(seed))

    def initial_head_problem(self, seed: int) -> str | None:
        """What is wrong with the seed's saved initial head (``None``: nothing, or not saved yet)."""
        path = self.paths.initial_head(seed)
        return None if not path.exists() else file_problem(path)

    def rewind_point_problem(self, step: int) -> str | None:
        """What is wrong with the saved rewind point (``None``: nothing, or not saved yet)."""
        path = self.paths.rewind_point(step)
        return None if not path.exists() else file_problem(path)

    def save_rewind_start(self, seed: int, step: int, write) -> None:
        """Write the seed's start point at ``step`` (``write(directory)``, see
        :func:`~bert_tickets.training.weights.write_start_point`) as one directory (a temporary
        one, then a rename); an earlier one — a re-run of level 0 re-creates it — is replaced."""
        if not self.is_main:
            return
        path = self.paths.rewind_start(step, seed)
        if path.exists():
            import shutil

            shutil.rmtree(path)
        atomic_write_dir(path, write)

    def rewind_start(self, seed: int, step: int) -> Path | None:
        """The seed's saved start point at ``step`` when it is intact (its weights' header and
        its step record readable), else ``None``."""
        path = self.paths.rewind_start(step, seed)
        return path if self.rewind_start_problem(seed, step) is None else None

    def rewind_start_problem(self, seed: int, step: int) -> str | None:
        """What is wrong with the seed's start point at ``step`` (``"missing"`` when there is none)."""
        path = self.paths.rewind_start(step, seed)
        problem = file_problem(path / "model.safetensors")
        if problem is None:
            try:
                read_json(path / "trainer_state.json")
            except (ValueError, FileNotFoundError) as err:
                problem = str(err).split(";")[0]
        return None if problem is None else f"{path}: {problem}"

    def save_rewind_point(self, step: int, state: dict[str, torch.Tensor]) -> None:
        self._save(self.paths.rewind_point(step), state)

    def load_rewind_point(self, step: int) -> dict[str, torch.Tensor]:
        return self._load(self.paths.rewind_point(step))

    def load_el2n(self) -> torch.Tensor | None:
        """The run's saved EL2N scores (float32 ``(n,)``), or ``None``."""
        path = self.paths.data_diet() / "el2n.safetensors"
        return self._load(path)["el2n"] if path.is_file() else None

    def el2n_info(self) -> dict | None:
        """How the saved EL2N scores were computed (``el2n.json``: ``models``, ``steps``,
        ``seeds``), or ``None``."""
        path = self.paths.data_diet() / "el2n.json"
        return read_json(path) if path.is_file() else None

    def save_el2n(self, scores: torch.Tensor, info: dict) -> None:
        """Save the EL2N scores with how they were computed (``el2n.json``)."""
        if self.is_main:
            self._save(self.paths.data_diet() / "el2n.safetensors", {"el2n": scores.float().contiguous()})
            write_json(self.paths.data_diet() / "el2n.json", info)

    def save_rewind_subset(self, info: dict) -> None:
        """The indices of the training examples the rewind point was trained on, and how chosen."""
        if self.is_main:
            write_json(self.paths.data_diet() / "subset.json", info)

    def save_trained_model(self, level: int, state: Mapping[str, torch.Tensor]) -> None:
        """The level's fine-tuned task model (``state_dict``; tied tensors are stored once each
        under every name, as independent copies)."""
        self._save(self.paths.trained_model(level), {n: t.detach().cpu().clone().contiguous() for n, t in state.items()})

    def has_trained_model(self, level: int) -> bool:
        return self.paths.trained_model(level).is_file()

    def load_trained_model(self, level: int) -> dict[str, torch.Tensor]:
        return self._load(self.paths.trained_model(level))

    def save_trained_head(self, level: int, state: dict[str, torch.Tensor]) -> None:
        self._save(self.paths.trained_head(level), state)

    def load_trained_head(self, level: int) -> dict[str, torch.Tensor]:
        return self._load(self.paths.trained_head(level))

    # ----------------------------------------------------------------- summary
    def completed_successive(self, level: int) -> dict | None:
        """The saved path between levels ``level - 1`` and ``level``, or ``None``."""
        return _completed_analysis(self.paths.successive(level) / "stability.json")

    def write_successive(self, level: int, result: dict) -> Path:
        path = self.paths.successive(level) / "stability.json"
        if self.is_main:
            write_json(path, result)
        return path

    def write_summary(self, summary: dict) -> None:
        """Write ``summary.json`` and ``summary.csv`` (atomically, main process only). Levels
        with a saved successive path (``stability --successive``) get its barriers in their own
        columns, ``barrier_successive`` (primary metric) and ``barrier_successive_loss``, between
        the level and level L − 1; ``barrier`` stays the barrier to ``parent_level`` that an
        adaptive schedule measured (so neither producer overwrites the other)."""
        for row in summary.get("levels", []):
            done = self.completed_successive(row["level"]) if row["level"] > 0 else None
            if done is not None:
                row["barrier_successive"] = done["barrier"][done["metric"]]
                row["barrier_successive_loss"] = done["barrier"]["loss"]
        if self.is_main:
            write_json(self.paths.summary_json, summary)
            atomic_write_text(self.paths.summary_csv, summary_csv(summary))


def summary_csv(summary: dict) -> str:
    """The summary's level rows as CSV text (columns :data:`SUMMARY_COLUMNS`; collapsed tensors
    joined with ``;``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in summary["levels"]:
        row = {k: ("" if r.get(k) is None else r.get(k)) for k in SUMMARY_COLUMNS}
        row["collapsed_tensors"] = ";".join(r.get("collapsed_tensors", {}))
        writer.writerow(row)
    return buf.getvalue()


@dataclass
class RunInfo:
    """What a run directory says about its levels (read by :func:`read_run`).

    Attributes:
        run_dir: the directory.
        config: ``run_config.json`` (``hash``, ``hyperparameters``, ``schedule``; runs written since issue 19 also
            ``launch`` and ``arguments``, see :meth:`RunRecord.write_config`).
        levels: level -> result row (``level``, ``target_sparsity``, ``sparsity``, ``metric``,
            ``mean``, ``std``, ``per_seed``, ``delta``, ``matching``, …) of every *complete*
            level (``level_NN/metrics.json`` exists), with ``delta`` / ``matching`` taken from
            ``summary.json`` when present, else computed with the run's matching rule.
        matching_rule: the rule in words.
        trivial_baseline: the task's trivial baseline (``metric``, ``value``, ``prediction``,
            ``rule``) from ``summary.json``; ``None`` before the run finished or for runs
            written before it was recorded.
        dense_learned: whether the dense level beats it (``None`` when unknown); when
            ``False`` matching is undefined and no level is a ticket.
    """

    run_dir: Path
    config: dict
    levels: dict[int, dict] = field(default_factory=dict)
    matching_rule: str = ""
    trivial_baseline: dict | None = None
    dense_learned: bool | None = None

    @property
    def task(self) -> str | None:
        """The run's task name (``hyperparameters.data.task``), or ``None``."""
        return self.config.get("hyperparameters", {}).get("data", {}).get("task")

    @property
    def arguments(self) -> dict[str, dict[str, Any]] | None:
        """The run's typed argument groups (:func:`argument_groups`), or ``None`` for a run
        recorded before they were; :func:`reproducing_arguments`)."""
        return reproducing_arguments(self.config)

    @property
    def dense(self) -> dict:
        """Result row of the dense level 0."""
        return self.levels[0]

    def best_matching_level(self) -> int | None:
        """Highest-sparsity matching pruned level, or ``None``."""
        matching = [r for lv, r in self.levels.items() if lv > 0 and r.get("matching")]
        return max(matching, key=lambda r: r["sparsity"])["level"] if matching else None


def _continued_from_step(imp: dict) -> int:
    """:meth:`RunRecord.continued_from_step` of a run's hashed ``imp`` hyperparameters."""
    k = int(imp.get("rewind_step", 0) or 0)
    return k if k > 0 and imp.get("rewind_mode", "backbone_restart") == "state" else 0


def reproducing_arguments(config: dict) -> dict[str, dict[str, Any]] | None:
    """The typed argument groups of a ``run_config.json`` (``config["arguments"]``, ``None`` for
    a run recorded before they were) as they reproduce the run. One correction: a data-diet run
    recorded before session 14 (``--rewind_data`` random / easy, ``--rewind_step`` > 0, no
    ``rewind_mode`` among its hashed hyperparameters) recorded ``rewind_mode: state`` but rewound
    as ``backbone_restart`` (and is hashed so): its ``rewind_mode`` is given as that."""
    typed = config.get("arguments")
    if not isinstance(typed, dict):
        return typed
    hashed = config.get("hyperparameters", {}).get("imp", {})
    imp = typed.get("IMPArguments")
    diet = hashed.get("rewind_data", "full") != "full" and int(hashed.get("rewind_step") or 0) > 0
    if diet and "rewind_mode" not in hashed and isinstance(imp, dict) and imp.get("rewind_mode") == "state":
        typed = {**typed, "IMPArguments": {**imp, "rewind_mode": "backbone_restart"}}
    return typed


def argument_groups(*groups: Any, keep: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The typed argument groups of a command as JSON, by class name (the layout of
    ``run_config.json``'s ``arguments``): ``{"ModelArguments": {...}, ..., "TrainingArguments":
    {...}}``. A group with a ``to_dict`` method (``transformers.TrainingArguments``, 100+ fields)
    keeps only what differs from a default instance of its class, plus the fields in ``keep``
    (e.g. ``output_dir``); every other group keeps every field. Values that are not JSON
    (callables, objects) and ``*_token`` fields (secrets) are left out. Each group loads back
    with ``HfArgumentParser(...).parse_dict`` (every field left out is at its default).
    """
    out: dict[str, dict[str, Any]] = {}
    for group in groups:
        if hasattr(group, "to_dict"):
            values, base = group.to_dict(), type(group)().to_dict()
            # compared as JSON: 0.0 and 0 are different records (and different run hashes)
            values = {k: v for k, v in values.items() if k in keep or _json(v) != _json(base.get(k))}
        else:
            values = {f.name: getattr(group, f.name) for f in dataclasses.fields(group) if f.init}
        out[type(group).__name__] = {k: v for k, v in values.items() if not k.endswith("_token") and _is_json(v)}
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def changed_hyperparameters(before: dict, after: dict) -> list[str]:
    """``group.key`` of every hyperparameter that differs between two runs' ``hyperparameters``.

    Paths are compared as the directories they name: a local model or data directory spelled
    relative in one and absolute in the other (resolved against the working directory) is the
    same. A local model's revision is the sha256 of its weights (``sha256:…``): equal shas make
    a moved checkpoint the same θ0; a run recorded before shas were (revision ``main`` for a
    local directory) cannot be checked and is taken as the same.
    """

    same_dir = same_path
    before, after = _by_global_batch(before), _by_global_batch(after)
    out = []
    old_rev, new_rev = before.get("model", {}).get("revision"), after.get("model", {}).get("revision")
    shas = all(str(r).startswith(LOCAL_REVISION_PREFIX) for r in (old_rev, new_rev))
    for group in sorted(set(before) | set(after)):
        b, a = before.get(group, {}), after.get(group, {})
        for key in sorted(set(b) | set(a)):
            x, y = b.get(key), a.get(key)
            if json.dumps(x, default=str) == json.dumps(y, default=str):
                continue
            if (group, key) in (("model", "model_name_or_path"), ("data", "data_dir")):
                if same_dir(x, y) or (key == "model_name_or_path" and shas and old_rev == new_rev):
                    continue
            if (
                (group, key) == ("model", "revision")
                and not str(x).startswith(LOCAL_REVISION_PREFIX)
                and str(y).startswith(LOCAL_REVISION_PREFIX)
            ):
                continue  # recorded before local checkpoints had a content revision
            out.append(f"{group}.{key}")
    return out


def _by_global_batch(hparams: dict) -> dict:
    """``hparams`` with the training batch as ``global_train_batch_size`` only (runs recorded
    before it was: per-device batch x accumulation, one process -- all they could know)."""
    training = dict(hparams.get("training", {}))
    if "global_train_batch_size" not in training and "per_device_train_batch_size" in training:
        training["global_train_batch_size"] = training["per_device_train_batch_size"] * (training.get("gradient_accumulation_steps") or 1)
    training.pop("per_device_train_batch_size", None)
    training.pop("gradient_accumulation_steps", None)
    return {**hparams, "training": training}


def _optional_json(path: Path) -> Any:
    """A JSON record, or ``None`` when it is missing or unreadable (the step that wrote it runs again)."""
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def _completed_analysis(path: Path) -> dict | None:
    """A saved ``stability.json``, or ``None`` when there is none or it is corrupt (then it is
    redone: a warning names it)."""
    if not path.is_file():
        return None
    try:
        found = read_json(path)
        if isinstance(found, dict) and "barrier" in found:
            return found
        problem = "not an analysis record"
    except ValueError as err:
        problem = str(err).split(";")[0]
    logging.getLogger("bert_tickets").warning("%s: %s; the analysis is redone", path, problem)
    return None


def _result(path: Path, raw: Any = None) -> dict:
    """The ``result`` row of a level's ``metrics.json`` (read now unless ``raw`` is given);
    ``ValueError`` naming the file when it is corrupt or lacks the row."""
    fix = "re-run the same find command to re-train that level"
    raw = read_json(path, fix) if raw is None else raw
    if not isinstance(raw, dict) or not isinstance(raw.get("result"), dict) or "level" not in raw["result"]:
        raise ValueError(f"{path} is corrupt (no 'result' row with a 'level'); {fix}")
    return raw["result"]


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """Read ``run_config.json``, every complete level's ``metrics.json`` and ``summary.json``.

    Raises:
        FileNotFoundError: not a run directory, or its dense level (``level_00``) is incomplete.
        ValueError: unreadable JSON.
    """
    run_dir = Path(run_dir)
    paths = RunPaths(run_dir)
    cfg_path = paths.run_config
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a bert-tickets run directory (no run_config.json)")
    config = read_json(cfg_path)
    levels = {}
    for path in paths.metrics_files():
        row = dict(_result(path))
        levels[int(row["level"])] = row
    summary = read_json(paths.summary_json) if paths.summary_json.is_file() else None
    if 0 not in levels:
        raise FileNotFoundError(f"{run_dir}: the dense level (level_00/metrics.json) is not complete yet")
    dense = levels[0]
    tol = config.get("hyperparameters", {}).get("imp", {}).get("tolerance", 0.01)
    margin, rule = matching_margin(dense.get("std"), len(dense.get("per_seed", {})), tol)
    from_summary = {int(r["level"]): r for r in (summary or {}).get("levels", [])}
    for lv, row in levels.items():
        done = from_summary.get(lv, {})
        row["delta"] = done.get("delta", row["mean"] - dense["mean"])
        row["matching"] = done.get("matching", is_matching(row["mean"], dense["mean"], margin))
        row["beats_trivial"] = done.get("beats_trivial")
        above = lv > 0 and row["beats_trivial"] is not False and is_super_ticket(row["mean"], dense["mean"], margin)
        row["super_ticket"] = done.get("super_ticket", None if row["matching"] is None else above)
        row["barrier"] = level_barrier(done, "barrier")
        row["barrier_successive"] = level_barrier(done, "barrier_successive")
    summary = summary or {}
    return RunInfo(
        run_dir, config, levels, summary.get("matching_rule", rule), summary.get("trivial_baseline"), summary.get("dense_learned")
    )
