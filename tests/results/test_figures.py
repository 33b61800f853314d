"""The figures say what the tables say: the linear path's titles do not overlap, and the
heatmap's entries and the curve's levels at or below the trivial baseline are marked (exactly
those)."""

from __future__ import annotations

import itertools
import json
import shutil
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Rectangle

from bert_tickets.results import read_run
from bert_tickets.results.figures import TRIVIAL_MARK, linear_path_figure, sparsity_curve_figure, transfer_heatmap_figure

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


def _title_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [fig._suptitle] + [ax.title for ax in fig.axes]
    return [t.get_window_extent(renderer) for t in titles if t is not None and t.get_text()]


@pytest.mark.parametrize(
    "title",
    [
        "rte level 1 (sparsity 0.100), rewind step 0, data seeds 1 / 2",
        "stsb level 12 (sparsity 0.718), rewind step 1000, data seeds 1 / 2 " * 3,  # long: wrapped, still clear of the panels
    ],
)
def test_linear_path_titles_do_not_overlap(title):
    result = {
        "metric": "accuracy",
        "points": [{"alpha": i / 4, "metrics": {"accuracy": 0.5 + i / 100, "loss": 0.69 - i / 1000}} for i in range(5)],
        "barrier": {"accuracy": 0.0123, "loss": 0.0045},
        "title": title,
    }
    fig = linear_path_figure(result)
    try:
        boxes = _title_boxes(fig)
        assert len(boxes) == 3  # the figure's title and one per panel
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
        width = fig.bbox.width
        assert all(0 <= b.x0 and b.x1 <= width for b in boxes)  # nothing cut off at the sides
        assert [ax.title.get_text() for ax in fig.axes] == ["barrier 0.0123", "barrier 0.0045"]
    finally:
        plt.close(fig)


def _entry(delta, beats_trivial, matching=False):
    return {"delta_dense": delta, "matching": matching, "beats_trivial": beats_trivial, "mean": 0.5 + delta}


def test_heatmap_marks_exactly_the_entries_at_or_below_the_trivial_baseline():
    matrix = {
        "rows": ["dense", "rte", "random", "snip"],
        "targets": ["mrpc", "rte"],
        "metric": {"mrpc": "f1", "rte": "accuracy"},
        "own": {"rte": "rte"},
        "entries": {
            "dense": {"mrpc": _entry(0.0, True), "rte": _entry(0.0, True)},
            "rte": {"mrpc": _entry(-0.02, False), "rte": _entry(0.01, True, True)},
            "random": {"mrpc": _entry(-0.1, True), "rte": _entry(-0.03, False)},
            "snip": {"mrpc": _entry(-0.05, None), "rte": _entry(-0.04, False)},  # None: no baseline known, not marked
        },
    }
    flagged = {
        (i, j)
        for i, r in enumerate(["rte", "random", "snip"])
        for j, t in enumerate(matrix["targets"])
        if matrix["entries"][r][t]["beats_trivial"] is False
    }
    assert flagged == {(0, 0), (1, 1), (2, 1)}
    fig = transfer_heatmap_figure(matrix)
    try:
        ax = fig.axes[0]
        marked_text = {(round(t.get_position()[1]), round(t.get_position()[0])) for t in ax.texts if TRIVIAL_MARK in t.get_text()}
        hatched = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()}
        assert marked_text == flagged and hatched == flagged
        legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        assert legend == [f"{TRIVIAL_MARK}: does not beat the target's trivial baseline"]
    finally:
        plt.close(fig)
    # no entry below the baseline: no mark, no legend
    for row in matrix["entries"].values():
        for e in row.values():
            e["beats_trivial"] = True
    fig = transfer_heatmap_figure(matrix)
    try:
        assert not any(TRIVIAL_MARK in t.get_text() for t in fig.axes[0].texts) and not fig.legends
    finally:
        plt.close(fig)


def test_curve_marks_exactly_the_levels_at_or_below_the_trivial_baseline(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["trivial_baseline"] = {"metric": "accuracy", "value": 0.5, "prediction": "always 'entailment'", "rule": "accuracy > 0.5"}
    for row, beats in zip(summary["levels"], (True, False, False)):
        row["beats_trivial"] = beats
    (run / "summary.json").write_text(json.dumps(summary))
    levels = read_run(run).levels
    expected = [100 * levels[lv]["sparsity"] for lv in sorted(levels) if levels[lv]["beats_trivial"] is False]
    assert len(expected) == 2
    fig = sparsity_curve_figure(run)
    try:
        ax = fig.axes[0]
        marks = [line for line in ax.get_lines() if line.get_label() == TRIVIAL_MARK]
        assert len(marks) == 1 and marks[0].get_marker() == "x"
        assert list(marks[0].get_xdata()) == pytest.approx(expected)
        assert TRIVIAL_MARK in [t.get_text() for t in ax.get_legend().get_texts()]
        baseline = [line for line in ax.get_lines() if line.get_label().startswith("trivial baseline")]
        assert len(baseline) == 1 and list(baseline[0].get_ydata()) == [0.5, 0.5]
    finally:
        plt.close(fig)
    # the fixture as recorded (no trivial baseline): nothing marked
    fig = sparsity_curve_figure(FIXTURE)
    try:
        assert not [line for line in fig.axes[0].get_lines() if line.get_label() == TRIVIAL_MARK]
    finally:
        plt.close(fig)


def test_heatmap_of_one_target_and_long_row_labels_lays_out():
    """Constrained layout fits the row labels, the colour bar and the legend (matplotlib warns
    and gives up when they do not fit)."""
    rows = ["dense", "rte", "synflow", "gem_miner", "rte (layer_shuffle)", "synflow (layer_shuffle)", "gem_miner (layer_shuffle)"]
    matrix = {
        "rows": rows,
        "targets": ["rte"],
        "metric": {"rte": "accuracy"},
        "own": {"rte": "rte"},
        "entries": {r: {"rte": _entry(-0.01 * i, i % 2 == 0, True)} for i, r in enumerate(rows)},
    }
    fig = transfer_heatmap_figure(matrix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig.canvas.draw()
        assert sum(TRIVIAL_MARK in t.get_text() for t in fig.axes[0].texts) == 3  # rte, gem_miner, synflow (layer_shuffle)
    finally:
        plt.close(fig)
