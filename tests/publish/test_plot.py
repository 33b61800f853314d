"""``bert-tickets plot RUN --transfer MATRIX``: the matrix's reference rows on the run's task join
the curve; a corrupt ``matrix.json`` or a matrix of other tasks is one line, exit 2, nothing
written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bert_tickets.cli import main
from bert_tickets.results.cells import CellResult, CellSpec, MatrixRecord

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


def _write_matrix(root: Path, target: str = "rte") -> dict:
    """A matrix of dense and random cells on ``target`` at sparsity 0.5 (two seeds each), written
    as ``transfer`` writes it; returns its matrix."""
    record = MatrixRecord(root)
    results = []
    for row, values in (("dense", (0.75, 0.70)), ("random", (0.55, 0.60))):
        for seed, value in zip((1, 2), values):
            spec = CellSpec(row, row, "", None, target, 0.5, seed)
            result = CellResult(spec, f"{row}-{seed}", "accuracy", value)
            record.write_result(result)
            results.append(result)
    return record.write_tables(results, 0.01)


@pytest.fixture
def run(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "run")
    return tmp_path / "run"


def test_the_matrix_rows_join_the_curve(run, tmp_path, monkeypatch):
    from bert_tickets.results import figures

    matrix = _write_matrix(tmp_path / "m")
    drawn = {}
    real = figures.sparsity_curve
    monkeypatch.setattr(figures, "sparsity_curve", lambda run_dir, out, points: drawn.update(points) or real(run_dir, out, points))
    assert main(["plot", str(run), "--transfer", str(tmp_path / "m"), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    entries = matrix["entries"]
    assert drawn == {
        "dense (m cells)": {0.0: entries["dense"]["rte"]["mean"]},
        "random (m cells)": {0.5: entries["random"]["rte"]["mean"]},
    }
    assert entries["random"]["rte"]["mean"] == pytest.approx(0.575)


def _refused(capsys, run, matrix_dir, out, *needles):
    assert main(["plot", str(run), "--transfer", str(matrix_dir), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bert-tickets plot: error: "), lines
    assert all(n in lines[0] for n in needles), lines[0]
    assert captured.out == "" and not out.exists()


def test_a_corrupt_matrix_is_one_line_and_nothing_is_drawn(run, tmp_path, capsys):
    _write_matrix(tmp_path / "m")
    (tmp_path / "m" / "matrix.json").write_text('{"targets": ["rte"], ')
    before = sorted(p.name for p in run.iterdir())
    _refused(
        capsys, run, tmp_path / "m", tmp_path / "curve.png", f"{tmp_path / 'm' / 'matrix.json'} is corrupt", "re-run the same transfer"
    )
    _refused(capsys, run, tmp_path / "m", run / "sparsity_curve.png", "matrix.json is corrupt")
    assert sorted(p.name for p in run.iterdir()) == before
    # valid JSON without a matrix in it
    (tmp_path / "m" / "matrix.json").write_text(json.dumps([1, 2]))
    _refused(capsys, run, tmp_path / "m", tmp_path / "curve.png", "matrix.json is corrupt (no 'targets' and 'entries')")
    # no matrix.json at all (a run directory given as a matrix)
    _refused(capsys, run, run, tmp_path / "curve.png", f"--transfer {run}: no matrix.json")


def test_a_matrix_of_other_tasks_is_refused_naming_both(run, tmp_path, capsys):
    _write_matrix(tmp_path / "m", target="mrpc")
    _refused(
        capsys,
        run,
        tmp_path / "m",
        tmp_path / "curve.png",
        f"--transfer {tmp_path / 'm'}: the matrix's target tasks (mrpc) do not include the run's task rte",
    )
