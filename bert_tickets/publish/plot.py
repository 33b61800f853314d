"""``bert-tickets plot RUN_DIR [--out PNG] [--transfer MATRIX_DIR ...]``: the metric-vs-sparsity
curve of an IMP run (levels at or below the trivial baseline marked ``≤ trivial``), with the
reference rows of transfer matrices on the run's task as extra points (each at the matrix's own
sparsity and budget, from its ``matrix.json``). A matrix that cannot be read, or whose target
tasks do not include the run's task, is refused with one line before anything is drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..results import read_run


@dataclass
class PlotArguments:
    """Arguments of ``bert-tickets plot``."""

    run_dir: str = field(metadata={"help": "Run directory of 'bert-tickets find'."})
    out: str | None = field(default=None, metadata={"help": "PNG to write (default RUN_DIR/sparsity_curve.png)."})
    transfer: list[str] = field(default_factory=list, metadata={"help": "Transfer matrix directories whose reference rows to add."})
    barriers: list[str] | None = field(
        default=None,
        metadata={
            "help": "Instead: the barrier-vs-sparsity figure of RUN_DIR and these runs (one line per run, e.g. one per mask "
            "source of find --mask_data), from their stability analyses, and a table with the sharpness and the overlap of "
            "each level's mask with RUN_DIR's at the same sparsity (default out: RUN_DIR/barriers.png). Give no run to draw "
            "RUN_DIR alone."
        },
    )


def _matrix_points(directory: str, task: str) -> dict[str, dict[float, float]]:
    """The reference rows of the transfer matrix in ``directory`` on ``task`` as curve points:
    label -> {sparsity (fraction): mean}, read from its ``matrix.json`` (what ``transfer``
    reported) at the matrix's own sparsity (dense at 0).

    Raises:
        FileNotFoundError: no ``matrix.json`` (not a matrix, or no complete cell yet).
        ValueError: ``matrix.json`` or a cell's ``result.json`` is corrupt, or the matrix's
            target tasks do not include ``task`` (one line naming the file and both).
    """
    from .._io import read_json
    from ..results.cells import BASELINES, MatrixRecord

    path = Path(directory) / "matrix.json"
    if not path.is_file():
        raise FileNotFoundError(f"--transfer {directory}: no {path.name} (not a transfer matrix directory, or no complete cell yet)")
    matrix = read_json(path, "re-run the same transfer command to rebuild it")
    if not isinstance(matrix, dict) or not isinstance(matrix.get("targets"), list) or not isinstance(matrix.get("entries"), dict):
        raise ValueError(f"{path} is corrupt (no 'targets' and 'entries'); re-run the same transfer command to rebuild it")
    if task not in matrix["targets"]:
        raise ValueError(
            f"--transfer {directory}: the matrix's target tasks ({', '.join(matrix['targets']) or 'none'}) do not include "
            f"the run's task {task}: nothing of it belongs on this curve"
        )
    results = MatrixRecord(directory).all_results()
    sparsity = next((r.spec.sparsity for r in results if r.spec.row != "dense"), None)
    points: dict[str, dict[float, float]] = {}
    rows = [("dense", "dense"), ("own ticket", matrix.get("own", {}).get(task))] + [(r, r) for r in BASELINES if r != "dense"]
    for name, row in rows:
        entry = matrix["entries"].get(row, {}).get(task) if row else None
        at = 0.0 if row == "dense" else sparsity
        if entry is not None and at is not None:  # the matrix's cells, at the matrix's own budget
            points.setdefault(f"{name} ({Path(directory).name} cells)", {})[at] = entry["mean"]
    return points


def run(args: PlotArguments) -> Path:
    """Write the curve; returns the PNG's path. Every ``--transfer`` matrix is read and checked
    before anything is drawn.

    Raises:
        FileNotFoundError: not a run directory, or a ``--transfer`` directory without ``matrix.json``.
        ValueError / OSError: unreadable files, or a matrix whose targets do not include the
            run's task (see :func:`_matrix_points`).
    """
    from ..results.figures import sparsity_curve

    if args.barriers is not None:
        return barrier_figure(args)
    task = read_run(args.run_dir).task
    points: dict[str, dict[float, float]] = {}
    for directory in args.transfer:
        points.update(_matrix_points(directory, task))
    return sparsity_curve(args.run_dir, args.out or Path(args.run_dir) / "sparsity_curve.png", points)


def _source_label(run_dir: str) -> str:
    """A run's line label: its directory name and what chose its masks — real data, the
    ``find --mask_data`` set it searched on, or a criterion other than magnitude (random pruning)."""
    from .._io import read_json
    from ..results import RunPaths

    config = read_json(RunPaths(run_dir).run_config)
    imp = config.get("hyperparameters", {}).get("imp", {})
    mask = imp.get("mask_data")
    name = Path(run_dir).resolve().name
    criterion = imp.get("pruning_method", "magnitude")
    if criterion != "magnitude":  # e.g. random pruning: the data played no part in the mask
        return f"{name} ({criterion} pruning)"
    if not mask:
        return f"{name} (real data)"
    provenance = mask.get("provenance", {})
    what = (
        Path(provenance["file"]).name
        if "file" in provenance
        else f"random {provenance.get('size', '?')}"
        if "size" in provenance
        else mask["mask_data"]
    )
    return f"{name} (masks on {what})"


def barrier_rows(reference: str, runs: list[str]) -> list[dict]:
    """One row per instability analysis of ``reference`` and ``runs``: run, level, sparsity,
    the primary metric of each trained copy (real-data fine-tunes with the two data orders:
    ``end_metrics``), barrier (primary metric and loss), the mean top Hessian eigenvalue and
    mean Hutchinson trace of the two copies with a bound on its standard error (the mean of
    the copies' standard errors: both copies use the same probe vectors) (when measured;
    McDermott et al. 2023's sharpness), and the overlap of the level's mask with
    ``reference``'s level at the same sparsity (:meth:`~bert_tickets.ticket.TicketMask.overlap`;
    ``None`` when it has none).

    Raises:
        FileNotFoundError / ValueError: not a run directory (one line).
    """
    from ..results import RunRecord

    ref = RunRecord(reference)
    ref_levels = {}
    for directory in ref.paths.level_dirs():
        lv = int(directory.name.split("_")[1])
        if ref.has_ticket(lv):
            ref_levels[lv] = ref.load_ticket(lv)
    rows = []
    for run_dir in [reference, *runs]:
        read_run(run_dir)  # a run directory, or one line saying what it is not
        record = RunRecord(run_dir)
        for analysis in record.stability_analyses():
            lv = analysis["level"]
            ticket = record.load_ticket(lv)
            twin = next((t for t in ref_levels.values() if abs(t.sparsity - ticket.sparsity) < 1e-9), None)
            overlap = ticket.overlap(twin) if twin is not None and twin.shapes == ticket.shapes else None
            sharp = analysis.get("sharpness", {}).get("copies", {})
            eig = [c["top_eigenvalue"]["eigenvalue"] for c in sharp.values()]
            traces = [c["trace"] for c in sharp.values()]
            rows.append(
                {
                    "run": _source_label(run_dir),
                    "level": lv,
                    "sparsity": analysis["sparsity"],
                    "rewind_step": analysis.get("rewind_step", 0),
                    "data_seeds": analysis.get("data_seeds"),
                    "metric": analysis["metric"],
                    "barrier": analysis["barrier"][analysis["metric"]],
                    "barrier_loss": analysis["barrier"]["loss"],
                    "end_metrics": [m[analysis["metric"]] for m in analysis.get("end_metrics", [])],
                    "top_eigenvalue": sum(eig) / len(eig) if eig else None,
                    "trace": sum(t["trace"] for t in traces) / len(traces) if traces else None,
                    # both copies are probed with the same Rademacher vectors (the run's seed): their
                    # errors are correlated, so the mean's standard error is bounded by the mean of
                    # theirs (perfect correlation), not the smaller independent-estimates value
                    "trace_stderr": sum(t["stderr"] for t in traces) / len(traces) if traces else None,
                    "overlap": overlap,
                }
            )
    return rows


def barrier_figure(args: PlotArguments) -> Path:
    """Draw the barrier-vs-sparsity figure of ``--barriers`` and print its table; returns the PNG."""
    from ..results.figures import barrier_curve

    rows = barrier_rows(args.run_dir, list(args.barriers or []))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        series.setdefault(r["run"], []).append((r["sparsity"], r["barrier"]))
    metric = rows[0]["metric"] if rows else "metric"
    out = barrier_curve(series, metric, args.out or Path(args.run_dir) / "barriers.png")
    print(
        f"| run | level | sparsity | data seeds | {metric} of the copies | barrier ({metric}) | barrier (loss) "
        f"| top Hessian eigenvalue | Hessian trace (± s.e.) | Hamming / Jaccard vs {Path(args.run_dir).name} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eig = "–" if r["top_eigenvalue"] is None else f"{r['top_eigenvalue']:.4g}"
        trace = (
            "–" if r["trace"] is None else f"{r['trace']:.4g}" + ("" if math.isnan(r["trace_stderr"]) else f" ± {r['trace_stderr']:.2g}")
        )
        ends = " / ".join(f"{v:.4f}" for v in r["end_metrics"]) or "–"
        ov = "–" if r["overlap"] is None else f"{r['overlap']['hamming']:.4f} / {r['overlap']['jaccard_pruned']:.4f}"
        seeds = "/".join(map(str, r["data_seeds"] or []))
        print(
            f"| {r['run']} | {r['level']} | {r['sparsity']:.4f} | {seeds} | {ends} | {r['barrier']:.4f} | {r['barrier_loss']:.4f} "
            f"| {eig} | {trace} | {ov} |"
        )
    return out


#: The argument dataclasses of ``plot``.
ARGUMENTS = (PlotArguments,)

__all__ = ["ARGUMENTS", "PlotArguments", "run"]
