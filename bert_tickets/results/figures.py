"""Figures (matplotlib, Agg backend, PNG): the transfer heatmap in the style of Chen et al. 2020,
Figure 2, the sparsity–metric curve of an IMP run and the linear path of ``stability``.

Each figure has a builder (``*_figure``: returns the ``matplotlib.figure.Figure``, which the
caller closes) and a writer (saves the PNG atomically and closes it). Entries and levels that
do not beat the task's trivial baseline are marked :data:`TRIVIAL_MARK` in every figure, as in
the tables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write
from .paths import RunPaths
from .rows import DENSE_ROW

#: The mark of a heatmap entry or a curve's level that does not beat the trivial baseline.
TRIVIAL_MARK = "≤ trivial"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (PNG, atomically) and close it; returns ``path``."""
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    finally:
        _pyplot().close(fig)
    return path


def transfer_heatmap(matrix: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`transfer_heatmap_figure` of ``matrix`` to ``path`` (PNG, atomically).

    Returns:
        ``path``.

    Raises:
        ValueError: no entry has a Δ vs dense (no dense cells yet).
    """
    return _save(transfer_heatmap_figure(matrix), path)


def transfer_heatmap_figure(matrix: dict[str, Any]):
    """Heatmap of Δ vs dense (mean over seeds) per row × target, annotated with the value and
    ``M`` where matching; a diverging colour map (``RdBu``) centred on 0 (``TwoSlopeNorm``),
    symmetric in the largest |Δ|; the dense row (Δ = 0 by definition) is left out. An entry at
    or below the target's trivial baseline (``beats_trivial`` false) is hatched (``xxx``) and
    annotated ``≤ trivial``, with a legend entry saying so.

    Args:
        matrix: :func:`~bert_tickets.results.cells.build_matrix`'s output.

    Returns:
        The ``matplotlib.figure.Figure`` (the caller closes it).

    Raises:
        ValueError: no entry has a Δ vs dense (no dense cells yet).
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Patch, Rectangle

    plt = _pyplot()
    rows = [r for r in matrix["rows"] if r != DENSE_ROW]
    targets = matrix["targets"]
    grid = np.full((len(rows), len(targets)), np.nan)
    for i, r in enumerate(rows):
        for j, t in enumerate(targets):
            e = matrix["entries"][r].get(t)
            if e is not None and e["delta_dense"] is not None:
                grid[i, j] = e["delta_dense"]
    if np.isnan(grid).all():
        raise ValueError("no entry has a Δ vs dense: the heatmap needs dense cells")
    bound = float(np.nanmax(np.abs(grid))) or 1e-6
    # room for the row labels (about 0.08 in per character), the columns and the colour bar
    width = max(4.8, 1.6 + 0.08 * max(len(r) for r in rows) + 1.4 * len(targets))
    fig, ax = plt.subplots(figsize=(width, 1.8 + 0.5 * len(rows)), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound), aspect="auto")
    trivial = False
    for i, r in enumerate(rows):
        for j, t in enumerate(targets):
            e = matrix["entries"][r].get(t)
            if e is None or e["delta_dense"] is None:
                ax.text(j, i, "–", ha="center", va="center", fontsize=8)
                continue
            own = " (own)" if matrix["own"].get(t) == r else ""
            text = f"{e['delta_dense']:+.3f}{' M' if e['matching'] else ''}{own}"
            box = None
            if e.get("beats_trivial") is False:
                trivial = True
                text += f"\n{TRIVIAL_MARK}"
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.45", lw=0, gid=TRIVIAL_MARK))
                box = {"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5}
            ax.text(j, i, text, ha="center", va="center", fontsize=8, bbox=box)
    ax.set_xticks(range(len(targets)), [f"{t}\n({matrix['metric'].get(t, '')})" for t in targets])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("target task")
    ax.set_ylabel("source ticket / baseline")
    ax.set_title("Δ vs dense of the target's primary metric (M = matching)", fontsize=9)
    if trivial:
        hatch = Patch(facecolor="white", hatch="//", edgecolor="0.45")
        fig.legend([hatch], [f"{TRIVIAL_MARK}: does not beat the target's trivial baseline"], loc="outside lower center", fontsize=7)
    fig.colorbar(image, ax=ax, label="Δ vs dense")
    return fig


def sparsity_curve(run_dir: str | os.PathLike, path: str | os.PathLike, baselines: dict[str, dict[float, float]] | None = None) -> Path:
    """Write :func:`sparsity_curve_figure` of the run to ``path`` (PNG, atomically); returns ``path``.

    Raises:
        FileNotFoundError / ValueError: see :func:`~bert_tickets.results.record.read_run`.
    """
    return _save(sparsity_curve_figure(run_dir, baselines), path)


def sparsity_curve_figure(run_dir: str | os.PathLike, baselines: dict[str, dict[float, float]] | None = None):
    """Metric vs sparsity of an IMP run (its complete levels), with the dense level as a band of
    mean ± std (± the matching tolerance with one seed) and, where given, baseline points
    (``baselines``: name -> {sparsity: metric}, e.g. random pruning) at the same sparsities.
    With a recorded trivial baseline (``summary.json``) it is drawn as a dotted line and every
    level that does not beat it (``beats_trivial`` false) gets a red ``x`` and the legend entry
    :data:`TRIVIAL_MARK`. Sparsity is shown in % of the prunable weights.

    Returns:
        The ``matplotlib.figure.Figure`` (the caller closes it).

    Raises:
        FileNotFoundError / ValueError: see :func:`~bert_tickets.results.record.read_run`.
    """
    from .record import read_run

    plt = _pyplot()
    run = read_run(run_dir)
    levels = [run.levels[lv] for lv in sorted(run.levels)]
    dense = run.dense
    config = json.loads(RunPaths(run_dir).run_config.read_text())
    tol = config.get("hyperparameters", {}).get("imp", {}).get("tolerance", 0.01)
    half = dense.get("std") if dense.get("std") is not None else tol
    xs = [100 * r["sparsity"] for r in levels]
    ys = [r["mean"] for r in levels]
    errs = [r.get("std") or 0.0 for r in levels]
    barriers = [(100 * r["sparsity"], r["barrier_successive"]) for r in levels if r.get("barrier_successive") is not None]
    if barriers:  # a second panel: the barrier between each level and the one before (stability --successive)
        fig, (ax, bx) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        bx.plot([x for x, _ in barriers], [b for _, b in barriers], marker="o", color="tab:red")
        bx.axhline(0, color="0.5", lw=1)
        bx.set_ylabel(f"barrier ({levels[0]['metric']})")
        bx.set_xlabel("sparsity (% of prunable weights)")
        bx.set_title("error barrier between level L-1 and L (linear path of the trained networks)", fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhspan(
        dense["mean"] - half,
        dense["mean"] + half,
        color="0.85",
        label="dense ± " + ("std" if dense.get("std") is not None else f"tolerance {tol}"),
    )
    ax.axhline(dense["mean"], color="0.5", lw=1)
    ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=f"IMP ({run.task})")
    for x, y, r in zip(xs, ys, levels):
        if r.get("matching") and r["level"] > 0:
            ax.plot([x], [y], marker="o", ms=10, mfc="none", mec="tab:green")
    trivial = run.trivial_baseline
    if trivial is not None and trivial.get("value") is not None:
        ax.axhline(trivial["value"], color="tab:red", lw=1, ls=":", label=f"trivial baseline ({trivial.get('prediction', '')})")
    low = [(x, y) for x, y, r in zip(xs, ys, levels) if r.get("beats_trivial") is False]
    if low:
        ax.plot([x for x, _ in low], [y for _, y in low], ls="none", marker="x", ms=9, mew=2, color="tab:red", label=TRIVIAL_MARK)
    for name, points in (baselines or {}).items():
        pts = sorted(points.items())
        ax.plot([100 * s for s, _ in pts], [v for _, v in pts], marker="s", ls="--", label=name)
    ax.set_xlabel("sparsity (% of prunable weights)")
    ax.set_ylabel(levels[0]["metric"])
    ax.set_title(f"{run.task}: metric vs sparsity (green ring = matching)")
    ax.legend(fontsize=8)
    return fig


def barrier_curve(series: dict[str, list[tuple[float, float]]], metric: str, path: str | os.PathLike) -> Path:
    """Error barrier vs sparsity, one line per mask source (McDermott et al. 2023, Figure 1's
    kind): ``series`` maps a label to ``(sparsity fraction, barrier)`` points (several analyses
    at one sparsity are drawn as separate points and joined through their mean). Writes the PNG
    atomically; returns ``path``.

    Raises:
        ValueError: no point in any series.
    """
    if not any(series.values()):
        raise ValueError("no instability analysis to draw: run bert-tickets stability on the runs' levels first")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        if not points:
            continue
        by = {}
        for s, b in points:
            by.setdefault(s, []).append(b)
        xs = sorted(by)
        line = ax.plot([100 * x for x in xs], [sum(by[x]) / len(by[x]) for x in xs], marker="o", label=label)[0]
        ax.plot([100 * s for s, _ in points], [b for _, b in points], ls="none", marker=".", color=line.get_color(), alpha=0.6)
    ax.axhline(0, color="0.5", lw=1)
    ax.set_xlabel("sparsity (% of prunable weights)")
    ax.set_ylabel(f"error barrier ({metric})")
    ax.set_title("instability: barrier between two copies trained with different data orders", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def linear_path_plot(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`linear_path_figure` of ``result`` to ``path`` (PNG, atomically); returns ``path``."""
    return _save(linear_path_figure(result), path)


def linear_path_figure(result: dict[str, Any]):
    """The primary metric and the eval loss along a linear path (``result`` as written by the
    ``stability`` experiment: ``points`` with ``alpha`` and ``metrics``, ``metric``, barriers),
    one panel each: the panel's title is its barrier, the figure's title (``result["title"]``)
    is wrapped above both (constrained layout, so no text overlaps another).

    Returns:
        The ``matplotlib.figure.Figure`` (the caller closes it).
    """
    import textwrap

    plt = _pyplot()
    alphas = [p["alpha"] for p in result["points"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    for ax, key in zip(axes, (result["metric"], "loss")):
        ax.plot(alphas, [p["metrics"][key] for p in result["points"]], marker="o")
        ax.set_xlabel("α (0 = copy 1, 1 = copy 2)")
        ax.set_ylabel(key)
        ax.set_title(f"barrier {result['barrier'][key]:.4f}", fontsize=9)
    fig.suptitle(textwrap.fill(result.get("title", "linear path"), 90), fontsize=10)
    return fig
