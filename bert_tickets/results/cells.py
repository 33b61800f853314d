"""Cells of a transfer matrix: one fine-tuning run of a mask on a target task with a seed
(Chen et al. 2020, Figure 2 and Table 2). Each cell's directory is named by a hash of its full
spec (open_lth-style), its result is written atomically and last, so a finished cell is skipped
on re-run and the matrix is rebuilt from whatever cells are complete.

Layout of a matrix directory (``--output_dir``)::

    transfer_config.json        the matrix spec (base model, sparsity, budgets) + its hash
    cells/<cell_id>/cell.json   the cell's spec and hyperparameters
    cells/<cell_id>/result.json its metrics (written last = complete)
    cells/<cell_id>/trainer/    the Trainer's output_dir
    cells/<cell_id>/ticket/, trained_model.safetensors  the cell's mask and fine-tuned model (--save_trained)
    masks/<hash>/               a criterion row's mask (snip, synflow, gem_miner), one per search
    results.csv, results.json   one row per complete cell (tidy)
    matrix.json, matrix.md      mean ± std of the primary metric per row × target, Δ, criteria
    heatmap.png                 Δ vs dense (Figure 2 style)
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text, file_problem, file_record, json_hash, read_json, read_tensors, save_tensors, write_json
from ..tasks import TrivialBaseline
from .kinds import MATRIX, MATRIX_CONFIG_FILE
from .matching import EPS, dense_not_learned, is_matching, matching_margin, near_constant_count
from .paths import TICKET_DIR, TRAINED_MODEL_FILE
from .rows import DENSE_ROW, TICKET_ROW, get_row, row_label

#: The default reference rows of ``transfer`` (Chen et al. 2020, Table 2; ``own`` is the target's
#: own IMP ticket: the source row whose task is the target, not a separate cell). Every row kind
#: is a registered class of :mod:`.rows`.
BASELINES = ("dense", "random", "reinit", "weight_shuffle", "magnitude")

CONFIG_FILE = MATRIX_CONFIG_FILE
CELLS_DIR = "cells"
CELL_FILE = "cell.json"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class CellSpec:
    """What one cell computes.

    Attributes:
        row: the row kind's spec key (:attr:`.rows.MatrixRow.spec_key`): ``"ticket"`` (a source
            ticket), ``"dense"``, a criterion row (``"oneshot"`` = magnitude, ``"random"``,
            ``"snip"``, ...), ``"reinit"`` or ``"shuffle"`` (= weight_shuffle).
        label: the source's label for ``ticket``; the row key for the others (``ROW (check)`` for
            a sanity variant). Tables show :func:`.rows.row_label` (renamed rows by their new name).
        source: where the mask came from (run dir, ticket dir, Hub id) — ``""`` for baselines
            that use no source mask; ``reinit`` / ``shuffle`` name the own ticket they use.
        source_task: the source ticket's task (``None`` when there is none).
        target: target task name.
        sparsity: the matrix's target sparsity (fraction).
        seed: fine-tuning seed (also seeds the head, random masks, re-initialisation, shuffles,
            and the training batches a data-dependent criterion scores on).
        sanity: ``None``, or a check of :data:`SANITY_CHECKS` applied to the row's mask.

    Renamed rows keep their old spelling here, so saved cells keep their ids.
    """

    row: str
    label: str
    source: str
    source_task: str | None
    target: str
    sparsity: float
    seed: int
    sanity: str | None = None

    def cell_id(self, context: dict[str, Any]) -> str:
        """12 hex digits of the sha256 of this spec plus ``context`` (base model, mask sha,
        the target's training hyperparameters, data options): another budget is another cell.
        A spec without ``sanity`` hashes as before the field existed (old cells keep their ids)."""
        spec = asdict(self)
        if spec["sanity"] is None:
            del spec["sanity"]
        return json_hash({"spec": spec, "context": context})


@dataclass
class CellResult:
    """A complete cell: its spec, id, metrics, wall time (seconds), where it ran (executor,
    host, pid, ``CUDA_VISIBLE_DEVICES``, Ray GPU ids) and what finding its mask cost (the
    ticket's cost record, keys of :data:`bert_tickets.pruning.COST_KEYS`; ``{}`` when the mask
    cost nothing or the ticket predates cost records)."""

    spec: CellSpec
    cell_id: str
    metric: str
    value: float
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    placement: dict[str, Any] = field(default_factory=dict)
    mask_cost: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The tidy results row (every metric as its own column)."""
        out = {
            "cell_id": self.cell_id,
            **asdict(self.spec),
            "metric": self.metric,
            "value": self.value,
            "wall_s": self.wall_s,
            "executor": self.placement.get("executor"),
        }
        out.update({f"metric_{k}": v for k, v in self.metrics.items() if isinstance(v, (int, float)) and v is not None})
        out.update({f"mask_{k}": v for k, v in self.mask_cost.items()})
        return out


class MatrixRecord:
    """The matrix directory's one owner (see the module docstring for the layout).

    Args:
        root: the ``--output_dir``.
        is_main: whether this process writes (``TrainingArguments.process_index == 0`` under
            ``accelerate launch``); elsewhere every write is a no-op.
    """

    def __init__(self, root: str | os.PathLike, *, is_main: bool = True):
        self.root = Path(root)
        self.is_main = is_main

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / CELLS_DIR / cell_id

    def trainer_dir(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / "trainer"

    def ticket_dir(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / TICKET_DIR

    def save_trained(self, cell_id: str, ticket, state: Mapping[str, torch.Tensor]) -> None:
        """Keep the cell's mask and fine-tuned model (``--save_trained``; main process only)."""
        if self.is_main:
            ticket.save_pretrained(self.ticket_dir(cell_id))
            save_tensors(self.cell_dir(cell_id) / TRAINED_MODEL_FILE, {n: t.detach().cpu().clone().contiguous() for n, t in state.items()})

    def has_trained(self, cell_id: str) -> bool:
        return (self.cell_dir(cell_id) / TRAINED_MODEL_FILE).is_file() and self.ticket_dir(cell_id).is_dir()

    def load_trained(self, cell_id: str) -> dict[str, torch.Tensor]:
        """The cell's kept fine-tuned weights (one-line ``ValueError`` when the file is corrupt)."""
        return read_tensors(self.cell_dir(cell_id) / TRAINED_MODEL_FILE, self.repair(cell_id))

    def repair(self, cell_id: str) -> str:
        """What to do about a corrupt file of a cell (part of every such message)."""
        return (
            f"delete {self.cell_dir(cell_id)} and re-run the same transfer command to re-run that cell (a re-run also redoes it by itself)"
        )

    def cell_spec(self, cell_id: str) -> dict[str, Any]:
        """The cell's ``cell.json`` (spec and context)."""
        return read_json(self.cell_dir(cell_id) / CELL_FILE, self.repair(cell_id))

    def check_config(self, spec: dict[str, Any]) -> str:
        """The spec's hash; raises ``ValueError`` when the directory holds another matrix spec."""
        spec_hash = json_hash(spec)
        path = self.root / CONFIG_FILE
        if path.is_file():
            old = read_json(path)
            if old.get("hash") != spec_hash:
                changed = sorted(
                    k
                    for k in set(spec) | set(old.get("spec", {}))
                    if json.dumps(spec.get(k), default=str) != json.dumps(old.get("spec", {}).get(k), default=str)
                )
                raise ValueError(
                    f"{self.root} holds a transfer matrix with another spec (changed: {', '.join(changed) or '?'}); use another --output_dir"
                )
        return spec_hash

    def write_config(self, spec: dict[str, Any], spec_hash: str) -> None:
        if self.is_main:
            write_json(self.root / CONFIG_FILE, {"kind": MATRIX, "hash": spec_hash, "spec": spec})

    def completed(self, cell_id: str) -> CellResult | None:
        """The cell's result when it is complete (``result.json`` exists), else ``None``.

        Raises:
            ValueError: ``result.json`` is corrupt (one line naming it and what to do).
        """
        path = self.cell_dir(cell_id) / RESULT_FILE
        if not path.is_file():
            return None
        return self._result(cell_id, read_json(path, self.repair(cell_id)))

    def _result(self, cell_id: str, raw: Any) -> CellResult:
        """The :class:`CellResult` of a cell's parsed ``result.json`` (``ValueError`` when it lacks a field)."""
        path = self.cell_dir(cell_id) / RESULT_FILE
        try:
            return CellResult(
                CellSpec(**raw["spec"]),
                raw["cell_id"],
                raw["metric"],
                float(raw["value"]),
                raw["metrics"],
                raw["wall_s"],
                raw.get("placement", {}),
                raw.get("mask_cost", {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is corrupt (no valid cell result: {err!r}); {self.repair(cell_id)}") from None

    def cell_problem(self, cell_id: str, trained: bool = False) -> str | None:
        """Why the complete cell cannot be reused as it is, or ``None``: its ``result.json`` is
        valid and its id is this cell's; the files it lists (``--save_trained``: the fine-tuned
        weights, size and sha256) are intact, and with ``trained`` its kept ticket loads (mask
        sha256). What a resume checks before it skips a cell; a cell with a problem is re-run."""
        path = self.cell_dir(cell_id) / RESULT_FILE
        if not path.is_file():
            return "not complete"
        try:
            raw = read_json(path, self.repair(cell_id))
            done = self._result(cell_id, raw)
        except ValueError as err:
            return str(err).split(";")[0]
        if done.cell_id != cell_id:
            return f"{path} holds cell {done.cell_id}"
        listed = raw.get("files") or {}
        names = set(listed) | ({TRAINED_MODEL_FILE} if trained else set())
        for name in sorted(names):
            problem = file_problem(self.cell_dir(cell_id) / name, listed.get(name))
            if problem is not None:
                return f"{self.cell_dir(cell_id) / name}: {problem}"
        if trained:
            from ..ticket import TicketMask

            try:
                TicketMask.from_pretrained(self.ticket_dir(cell_id))
            except (ValueError, OSError) as err:
                return str(err).split(";")[0]
        return None

    def write_cell_spec(self, cell_id: str, spec: CellSpec, context: dict[str, Any]) -> None:
        if self.is_main:
            write_json(self.cell_dir(cell_id) / CELL_FILE, {"cell_id": cell_id, "spec": asdict(spec), "context": context})

    def write_result(self, result: CellResult) -> None:
        """Atomically write the cell's ``result.json``: from now on the cell is complete. It lists
        the weights the cell kept (``files``: name -> bytes and sha256)."""
        if self.is_main:
            trained = self.cell_dir(result.cell_id) / TRAINED_MODEL_FILE
            files = {TRAINED_MODEL_FILE: file_record(trained)} if trained.is_file() else {}
            record = {**asdict(result), "spec": asdict(result.spec)}
            if files:  # the weights the cell kept (--save_trained), so a resume can verify them
                record["files"] = files
            write_json(self.cell_dir(result.cell_id) / RESULT_FILE, record)

    def all_results(self) -> list[CellResult]:
        """Every complete cell in the directory, ordered by cell id."""
        out = []
        for path in sorted((self.root / CELLS_DIR).glob(f"*/{RESULT_FILE}")):
            done = self.completed(path.parent.name)
            if done is not None:
                out.append(done)
        return out

    def write_tables(
        self, results: list[CellResult], tolerance: float, trivial: dict[str, TrivialBaseline] | None = None
    ) -> dict[str, Any]:
        """Rebuild ``results.csv/json``, ``matrix.json`` and ``matrix.md`` from ``results``
        (main process only; the matrix is returned everywhere); ``trivial``: see :func:`build_matrix`."""
        matrix = build_matrix(results, tolerance, trivial)
        if not self.is_main:
            return matrix
        rows = [r.row() for r in results]
        write_json(self.root / "results.json", rows)
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.root / "results.csv", buf.getvalue())
        write_json(self.root / "matrix.json", matrix)
        atomic_write_text(self.root / "matrix.md", format_matrix(matrix))
        return matrix


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def build_matrix(results: list[CellResult], tolerance: float, trivial: dict[str, TrivialBaseline] | None = None) -> dict[str, Any]:
    """Mean ± std of the primary metric per (row label, target) over seeds, with Δ vs dense,
    Δ vs own, and the paper's two criteria per entry.

    *matching* (Chen et al. 2020, Section 3): mean ≥ dense mean − one sample std of the dense
    cells across seeds (``tolerance`` with one seed). *transfer ≥ own*: mean ≥ the mean of the
    target's own IMP ticket (the source row whose task is the target), when there is one.

    With ``trivial`` (target -> the task's :class:`~bert_tickets.tasks.TrivialBaseline`) every
    entry also gets ``beats_trivial``; on a target whose dense row does not beat it the dense
    model did not learn, so matching is undefined there (``None``, and the rule says so).

    Returns:
        ``{"targets": [...], "rows": [...], "metric": {target: name}, "entries": {row: {target:
        {mean, std, n, seeds, delta_dense, delta_own, matching, transfer_ge_own, beats_trivial,
        near_constant (cells predicting (almost) a constant, ``None`` unmeasured), mask_train_steps,
        mask_score_passes}}}, "kinds": {row: its row kind, e.g. "ticket",
        "snip", "snip+layer_shuffle"}, "checks": {sanity row: {"of": the row it checks (``None``
        when that row has no complete cell), "check": the check's name}}, "own": {target: row},
        "rules": {target: rule}, "trivial": {target: baseline dict}}``. Row labels are
        :func:`.rows.row_label`: renamed rows show their current name.
    """
    trivial = trivial or {}
    targets = sorted({r.spec.target for r in results})
    labels: list[str] = []
    kinds: dict[str, str] = {}
    checks: dict[str, dict[str, str]] = {}
    shown = {id(r): row_label(r.spec.row, r.spec.label, r.spec.sanity) for r in results}
    # the row a sanity variant checks: the unchecked cell of the same row kind and source
    unchecked = {(r.spec.row, r.spec.source): shown[id(r)] for r in results if r.spec.sanity is None}
    for r in sorted(results, key=lambda r: (get_row(r.spec.row).order, shown[id(r)])):
        label = shown[id(r)]
        if label not in labels:
            labels.append(label)
            name = get_row(r.spec.row).name
            kinds[label] = name if r.spec.sanity is None else f"{name}+{r.spec.sanity}"
            if r.spec.sanity is not None:
                checks[label] = {"of": unchecked.get((r.spec.row, r.spec.source)), "check": r.spec.sanity}
    groups: dict[tuple[str, str], list[CellResult]] = {}
    for r in results:
        groups.setdefault((shown[id(r)], r.spec.target), []).append(r)
    own = {}
    for r in results:
        if r.spec.row == TICKET_ROW and r.spec.sanity is None and r.spec.source_task == r.spec.target:
            own[r.spec.target] = r.spec.label
    entries: dict[str, dict[str, Any]] = {label: {} for label in labels}
    rules, metric = {}, {}
    for t in targets:
        dense = groups.get((DENSE_ROW, t))
        margin, rule = (None, "no dense cells: matching undefined")
        dense_mean = None
        if dense:
            dense_mean, dense_std = _mean_std([c.value for c in dense])
            margin, rule = matching_margin(dense_std, len(dense), tolerance)
            undefined = dense_not_learned(dense[0].metric, dense_mean, trivial.get(t))
            if undefined is not None:
                margin, rule = None, undefined
        rules[t] = rule
        own_mean = _mean_std([c.value for c in groups[(own[t], t)]])[0] if t in own and (own[t], t) in groups else None
        for label in labels:
            cells = groups.get((label, t))
            if not cells:
                continue
            metric[t] = cells[0].metric
            mean, std = _mean_std([c.value for c in cells])
            costs = [c.mask_cost for c in cells if c.mask_cost]
            entries[label][t] = {
                "mask_train_steps": statistics.fmean(c.get("train_steps", 0) for c in costs) if costs else None,
                "mask_score_passes": statistics.fmean(c.get("score_forward", 0) for c in costs) if costs else None,
                "mean": mean,
                "std": std,
                "n": len(cells),
                "seeds": sorted(c.spec.seed for c in cells),
                "delta_dense": None if dense_mean is None else mean - dense_mean,
                "delta_own": None if own_mean is None else mean - own_mean,
                "matching": None if margin is None else is_matching(mean, dense_mean, margin),
                "transfer_ge_own": None if own_mean is None else bool(mean >= own_mean - EPS),
                "beats_trivial": trivial[t].beaten_by(mean) if t in trivial else None,
                "near_constant": near_constant_count(c.metrics for c in cells),
            }
    return {
        "targets": targets,
        "rows": labels,
        "kinds": kinds,
        "checks": checks,
        "metric": metric,
        "entries": entries,
        "own": own,
        "rules": rules,
        "trivial": {t: b.to_dict() for t, b in trivial.items() if t in targets},
    }


def format_matrix(matrix: dict[str, Any]) -> str:
    """The matrix as a markdown table: ``mean ± std (Δ vs dense)`` and flags ``M`` (matching) and
    ``≥own`` per entry, one column per target; when any mask has a cost record, a last column
    with the training steps (and scoring passes) spent finding each row's mask."""
    targets = matrix["targets"]
    kinds = matrix.get("kinds", {})
    costed = any(e.get("mask_train_steps") is not None for row in matrix["entries"].values() for e in row.values())
    head = "| row | " + " | ".join(f"{t} ({matrix['metric'].get(t, '?')})" for t in targets) + " |" + (" mask cost |" if costed else "")
    lines = [head, "|" + "---|" * (len(targets) + 1 + costed)]
    for label in matrix["rows"]:
        transferred = kinds.get(label) == TICKET_ROW
        cells = []
        for t in targets:
            e = matrix["entries"][label].get(t)
            if e is None:
                cells.append("–")
                continue
            text = f"{e['mean']:.4f}" + (f" ± {e['std']:.4f}" if e["std"] is not None else "")
            if e["delta_dense"] is not None and label != DENSE_ROW:
                text += f" ({e['delta_dense']:+.4f})"
            flags = [
                f
                for f, on in (
                    ("M", e["matching"]),
                    ("≥own", e["transfer_ge_own"] and matrix["own"].get(t) != label and transferred),
                    ("≤trivial", e.get("beats_trivial") is False),
                    (f"const({e.get('near_constant')}/{e['n']})", bool(e.get("near_constant"))),
                )
                if on
            ]
            if flags:
                text += " " + " ".join(flags)
            cells.append(text)
        tag = " (own on " + ", ".join(t for t, o in matrix["own"].items() if o == label) + ")" if label in matrix["own"].values() else ""
        cost = ""
        if costed:
            first = next((e for e in matrix["entries"][label].values() if e.get("mask_train_steps") is not None), None)
            cost = " – |"
            if first is not None:
                cost = f" {first['mask_train_steps']:.0f} steps" + (
                    f" + {first['mask_score_passes']:.0f} scoring passes" if first["mask_score_passes"] else ""
                )
                cost += " |"
        lines.append(f"| {label}{tag} | " + " | ".join(cells) + " |" + cost)
    lines.append("")
    lines.append(
        "Entries: mean ± sample std over seeds of the target's primary metric (Δ vs dense). M = matching; ≥own = a transferred ticket at least "
        "as good as the target's own; "
        "≤trivial = does not beat the target's trivial baseline; const(k/n) = k of the n cells predict (almost) a constant."
        + (
            " Mask cost: optimizer steps (mean over cells) that produced the mask — IMP levels on its lineage, Gem-Miner's score "
            "training — plus forward/backward passes spent scoring (SNIP, SynFlow); – = free (magnitude, random) or not recorded."
            if costed
            else ""
        )
    )
    for t, rule in matrix["rules"].items():
        lines.append(f"- {t}: matching = {rule}")
    for t, b in matrix.get("trivial", {}).items():
        shown = "undefined" if b["value"] is None else f"{b['value']:.4f}"
        lines.append(f"- {t}: trivial baseline {shown} ({b['prediction']}); an entry must reach {b['rule']}")
    return "\n".join(lines) + "\n"
