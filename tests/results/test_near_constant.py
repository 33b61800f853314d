"""Issue 20: a level or cell whose models predict (almost) a constant is flagged next to the
trivial-baseline flag, in the summary, the matrix and their tables."""

from __future__ import annotations

from bert_tickets.results import LevelResult, format_summary, near_constant_count, summarize
from bert_tickets.results.cells import CellResult, CellSpec, build_matrix, format_matrix


def _level(level: int, mean: float, flags: list[float | None]) -> LevelResult:
    per_seed = {str(s): mean for s in range(len(flags))}
    return LevelResult(
        level,
        0.1 * level,
        0.1 * level,
        level,
        10,
        "pearson",
        mean,
        0.0,
        per_seed,
        near_constant=near_constant_count([{"near_constant": f} for f in flags]),
    )


def test_near_constant_count_counts_flagged_seeds_and_says_none_when_unmeasured():
    assert near_constant_count([{"near_constant": 1.0}, {"near_constant": 0.0}, {"near_constant": 1.0}]) == 2
    assert near_constant_count([{"near_constant": 0.0}]) == 0
    assert near_constant_count([{"accuracy": 0.5}, {}]) is None


def test_the_summary_table_flags_levels_with_constant_output():
    levels = [_level(0, 0.8, [0.0, 0.0, 0.0]), _level(1, 0.79, [1.0, 0.0, 1.0]), _level(2, 0.1, [None, None, None])]
    summary = summarize(levels, 0.01, "stsb", 1.0)
    assert [r["near_constant"] for r in summary["levels"]] == [0, 2, None]
    rows = format_summary(summary).splitlines()[1:4]
    assert ["constant output" in r for r in rows] == [False, True, False]
    assert rows[1].endswith("constant output (2/3 seeds)")


def test_the_matrix_flags_entries_with_constant_output():
    cells = [
        CellResult(CellSpec("dense", "dense", "", None, "stsb", 0.0, s), f"d{s}", "pearson", 0.8, {"near_constant": 0.0}) for s in (1, 2)
    ] + [
        CellResult(CellSpec("snip", "snip", "", None, "stsb", 0.5, s), f"s{s}", "pearson", 0.1, {"near_constant": float(s == 1)})
        for s in (1, 2)
    ]
    matrix = build_matrix(cells, 0.01)
    assert matrix["entries"]["dense"]["stsb"]["near_constant"] == 0 and matrix["entries"]["snip"]["stsb"]["near_constant"] == 1
    table = format_matrix(matrix)
    assert "const(1/2)" in next(line for line in table.splitlines() if line.startswith("| snip"))
    assert "const(" not in next(line for line in table.splitlines() if line.startswith("| dense"))
