"""``bert-tickets plot RUN_DIR [--out PNG] [--transfer MATRIX_DIR ...]``: the metric-vs-sparsity
curve of an IMP run, with the reference rows of transfer matrices on the run's task as extra
points (each at the matrix's own sparsity and budget)."""

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


def run(args: PlotArguments) -> Path:
    """Write the curve; returns the PNG's path.

    Raises:
        FileNotFoundError: not a run directory, or a matrix without a complete cell.
        ValueError / OSError: unreadable files.
    """
    from ..results.cells import BASELINES, MatrixRecord, build_matrix
    from ..results.figures import sparsity_curve

    task = read_run(args.run_dir).task
    points: dict[str, dict[float, float]] = {}
    for directory in args.transfer:
        results = MatrixRecord(directory).all_results()
        if not results:
            raise FileNotFoundError(f"{directory}: no complete transfer cell")
        matrix = build_matrix(results, 0.01)
        sparsity = next(r.spec.sparsity for r in results if r.spec.row != "dense")
        rows = [("dense", "dense"), ("own ticket", matrix["own"].get(task))] + [(r, r) for r in BASELINES if r != "dense"]
        for name, row in rows:
            entry = matrix["entries"].get(row, {}).get(task) if row else None
            if entry is not None:  # the matrix's cells, at the matrix's own budget
                points.setdefault(f"{name} ({Path(directory).name} cells)", {})[0.0 if row == "dense" else sparsity] = entry["mean"]
    return sparsity_curve(args.run_dir, args.out or Path(args.run_dir) / "sparsity_curve.png", points)


#: The argument dataclasses of ``plot``.
ARGUMENTS = (PlotArguments,)

__all__ = ["ARGUMENTS", "PlotArguments", "run"]
