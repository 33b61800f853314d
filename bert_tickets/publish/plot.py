"""``bert-tickets plot RUN_DIR [--out PNG] [--transfer MATRIX_DIR ...]``: the metric-vs-sparsity
curve of an IMP run (levels at or below the trivial baseline marked ``≤ trivial``), with the
reference rows of transfer matrices on the run's task as extra points (each at the matrix's own
sparsity and budget, from its ``matrix.json``). A matrix that cannot be read, or whose target
tasks do not include the run's task, is refused with one line before anything is drawn."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results import read_run


@dataclass
class PlotArguments:
    """Arguments of ``bert-tickets plot``."""

    run_dir: str = field(metadata={"help": "Run directory of 'bert-tickets find'."})
    out: str | None = field(default=None, metadata={"help": "PNG to write (default RUN_DIR/sparsity_curve.png)."})
    transfer: list[str] = field(default_factory=list, metadata={"help": "Transfer matrix directories whose reference rows to add."})


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

    task = read_run(args.run_dir).task
    points: dict[str, dict[float, float]] = {}
    for directory in args.transfer:
        points.update(_matrix_points(directory, task))
    return sparsity_curve(args.run_dir, args.out or Path(args.run_dir) / "sparsity_curve.png", points)


#: The argument dataclasses of ``plot``.
ARGUMENTS = (PlotArguments,)

__all__ = ["ARGUMENTS", "PlotArguments", "run"]
