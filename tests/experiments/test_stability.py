"""`bert-tickets stability` on a tiny run: two copies of a level trained with different data
orders, the linear path between them evaluated, its barriers saved; resume skips it."""

from __future__ import annotations

import json
import math

import pytest

from bert_tickets.cli import main

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stability")
    ckpt, glue = write_imp_inputs(root)
    out = root / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    assert main([*argv, "--max_levels", "1", "--num_train_epochs", "3"]) == 0
    return out


def test_stability_of_a_level_from_theta0_and_from_a_rewind_step(run, capsys):
    assert main(["stability", str(run), "--level", "1", "--points", "5"]) == 0
    out = run / "stability" / "level_01_rewind0"
    result = json.loads((out / "stability.json").read_text())
    assert [p["alpha"] for p in result["points"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert result["metric"] == "accuracy" and result["data_seeds"] == [1, 2] and result["sparsity"] == pytest.approx(0.1, abs=1e-3)
    # the path's ends are the two trained copies, evaluated the same way as after their training
    for end, point in ((0, result["points"][0]), (1, result["points"][-1])):
        assert math.isclose(point["metrics"]["loss"], result["end_metrics"][end]["loss"], rel_tol=1e-6)
    # different data orders: two different networks
    assert result["end_metrics"][0]["loss"] != result["end_metrics"][1]["loss"]
    losses = [p["metrics"]["loss"] for p in result["points"]]
    assert math.isclose(result["barrier"]["loss"], max(losses) - (losses[0] + losses[-1]) / 2)
    accs = [p["metrics"]["accuracy"] for p in result["points"]]
    assert math.isclose(result["barrier"]["accuracy"], (accs[0] + accs[-1]) / 2 - min(accs))
    assert (out / "path.png").stat().st_size > 1000
    assert "barrier accuracy" in capsys.readouterr().out

    # resume: a finished analysis is read back, not recomputed
    stamp = (out / "stability.json").stat().st_mtime_ns
    assert main(["stability", str(run), "--level", "1", "--points", "5"]) == 0
    assert (out / "stability.json").stat().st_mtime_ns == stamp and "already complete" in capsys.readouterr().err
    # other --points: one line, not the saved analysis read back as if it answered
    assert main(["stability", str(run), "--level", "1", "--points", "7"]) == 2
    assert "holds this analysis with 5 points, not --points 7" in capsys.readouterr().err
    # other data seeds: another analysis, in its own directory
    assert main(["stability", str(run), "--level", "1", "--points", "3", "--data_seeds", "3", "4"]) == 0
    other = json.loads((run / "stability" / "level_01_rewind0_seeds3-4" / "stability.json").read_text())
    assert other["data_seeds"] == [3, 4] and (out / "stability.json").stat().st_mtime_ns == stamp

    # from rewind step 2: the run has no such rewind point, so it is made (2 steps of dense training):
    # the run seed's whole state at step 2, from which both copies continue (issue 20)
    assert main(["stability", str(run), "--level", "1", "--points", "3", "--rewind_step", "2"]) == 0
    assert (run / "rewind_step2_seed42" / "model.safetensors").is_file()
    assert json.loads((run / "stability" / "level_01_rewind2_continued" / "stability.json").read_text())["rewind_step"] == 2


def _printed_table(text: str, header: str, metric: str) -> list[tuple[float, float, float]]:
    """The rows (α, metric, eval loss) of the path table printed after ``header``."""
    lines = text.splitlines()
    start = lines.index(header)
    assert lines[start + 1].split() == ["α", metric, "eval", "loss"]
    rows = []
    for line in lines[start + 2 :]:
        if "barrier" in line:
            break
        rows.append(tuple(float(x) for x in line.split()))
    return rows


def _saved_rows(result: dict) -> list[tuple[float, float, float]]:
    return [(round(p["alpha"], 3), round(p["metrics"][result["metric"]], 4), round(p["metrics"]["loss"], 4)) for p in result["points"]]


def test_stability_prints_the_path_point_by_point(run, capsys):
    assert main(["stability", str(run), "--level", "1", "--points", "5"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((run / "stability" / "level_01_rewind0" / "stability.json").read_text())
    rows = _printed_table(printed, "copy with data seed 1 (α = 0) -> copy with data seed 2 (α = 1):", "accuracy")
    assert len(rows) == 5 and rows == _saved_rows(result)
    # the barrier line follows the table
    last = printed.strip().splitlines()[-1]
    assert last.startswith("level 1 (sparsity 0.1000") and f"barrier accuracy {result['barrier']['accuracy']:.4f}" in last


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--level", "1", "--seeds", "3", "3"], "--data_seeds takes two different data seeds"),
        (["--level", "1", "--data_seeds", "4", "4"], "--data_seeds takes two different data seeds, got [4, 4]"),
        (["--level", "1", "--points", "2"], "--points must be >= 3"),
        (["--level", "7"], "no level 7 ticket"),
    ],
)
def test_bad_input(run, capsys, extra, message):
    assert main(["stability", str(run), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_successive_barriers_join_the_summary_and_the_plot(tmp_path, capsys):
    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    out = tmp_path / "run"

    def find(run_dir, *extra):
        argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run_dir), *IMP_TRAIN_ARGS]
        return main([*argv, "--max_levels", "2", "--num_train_epochs", "3", *extra])

    assert find(out) == 0
    capsys.readouterr()
    assert main(["stability", str(out), "--successive"]) == 2  # no trained weights kept
    assert "--save_trained" in capsys.readouterr().err
    trained = tmp_path / "trained"
    assert find(trained, "--save_trained") == 0
    assert main(["stability", str(trained), "--successive", "--points", "5"]) == 0
    printed = capsys.readouterr().out
    assert "levels 0 -> 1: barrier accuracy" in printed and "levels 1 -> 2" in printed and "between the trained levels L-1 and L" in printed
    for lv in (1, 2):  # one table per pair, --points rows, the saved values
        saved = json.loads((trained / "stability" / f"successive_{lv - 1:02d}_{lv:02d}" / "stability.json").read_text())
        rows = _printed_table(printed, f"trained level {lv - 1} (α = 0) -> trained level {lv} (α = 1):", "accuracy")
        assert len(rows) == 5 and rows == _saved_rows(saved)
    summary = json.loads((trained / "summary.json").read_text())
    for row in summary["levels"][1:]:
        saved = json.loads((trained / "stability" / f"successive_{row['level'] - 1:02d}_{row['level']:02d}" / "stability.json").read_text())
        losses = [p["metrics"]["loss"] for p in saved["points"]]
        assert row["barrier_successive_loss"] == saved["barrier"]["loss"] == max(losses) - (losses[0] + losses[-1]) / 2
        assert row["barrier_successive"] == saved["barrier"]["accuracy"]
        assert row["barrier"] is None  # the column of the barrier to the parent level (adaptive) is not touched
        # the ends of the path are the two trained levels, whose metrics the run recorded
        ends = [
            json.loads((trained / f"level_{lv:02d}" / "metrics.json").read_text())["per_seed"]["42"]
            for lv in (row["level"] - 1, row["level"])
        ]
        assert math.isclose(saved["points"][0]["metrics"]["loss"], ends[0]["loss"], rel_tol=1e-6)
        assert math.isclose(saved["points"][-1]["metrics"]["loss"], ends[1]["loss"], rel_tol=1e-6)
    assert "barrier_successive" in (trained / "summary.csv").read_text().splitlines()[0]
    assert main(["plot", str(trained), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_sharpness_of_both_copies_over_the_subnetwork(run, tmp_path, monkeypatch, capsys):
    import bert_tickets.experiments.stability as stability
    from bert_tickets.ticket import TicketMask

    seen = []
    real = stability.top_eigenvalue

    def spy(model, loss_fn, masks, **kw):
        out = real(model, loss_fn, masks, **kw)
        seen.append((model, loss_fn, masks, kw, out))
        return out

    monkeypatch.setattr(stability, "top_eigenvalue", spy)
    argv = ["stability", str(run), "--level", "1", "--points", "3", "--data_seeds", "5", "6"]
    assert main([*argv, "--sharpness", "--sharpness_iterations", "30", "--sharpness_samples", "4"]) == 0
    result = json.loads((run / "stability" / "level_01_rewind0_seeds5-6" / "stability.json").read_text())
    ticket = TicketMask.from_pretrained(run / "level_01" / "ticket")
    assert set(result["sharpness"]["copies"]) == {"5", "6"} and result["sharpness"]["batches"] == 1
    assert len(seen) == 2
    for (model, loss_fn, masks, kw, out), seed in zip(seen, ("5", "6"), strict=True):
        saved = result["sharpness"]["copies"][seed]
        assert saved["top_eigenvalue"] == out and out["eigenvalue"] > 0 and kw["iterations"] == 30
        assert saved["trace"]["samples"] == 4 and math.isfinite(saved["trace"]["trace"])
        assert masks is ticket.masks or all(masks[n].equal(ticket.masks[n]) for n in ticket.masks)
        assert model.config._attn_implementation == "eager" and not model.training
        assert ticket.count_nonzero_pruned(model) == 0
        assert real(model, loss_fn, masks, **kw) == out  # deterministic: same start vector, same batches, dropout off
    # the finished analysis is reused for the same counts, refused for others
    assert main([*argv, "--sharpness", "--sharpness_iterations", "30", "--sharpness_samples", "4"]) == 0 and len(seen) == 2
    assert main([*argv, "--sharpness", "--sharpness_iterations", "30", "--sharpness_samples", "8"]) == 2
    assert "--sharpness_samples 8 (held: 4)" in capsys.readouterr().err
    # an analysis finished without sharpness is not silently reused for --sharpness
    plain = ["stability", str(run), "--level", "1", "--points", "3", "--data_seeds", "7", "8"]
    assert main(plain) == 0
    assert main([*plain, "--sharpness"]) == 2
    assert "without --sharpness" in capsys.readouterr().err
