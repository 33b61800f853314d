"""The time-to-ticket benchmark's cost table (scripts/bench_time_to_ticket.py) on a tiny run and
a tiny prune-at-init matrix: the steps it reports are the ones the logs and cost records hold."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bert_tickets.cli import main
from bert_tickets.pruning import target_count

from conftest import TINY_PRUNABLE
from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_time_to_ticket.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_time_to_ticket", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inputs(tmp_path):
    """A tiny checkpoint, GLUE files and the find arguments that read them."""
    ckpt, glue = write_imp_inputs(tmp_path)
    return ckpt, glue, ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS]


def test_cost_table_rows_of_a_run_and_a_matrix(bench, tmp_path):
    _, _, common = _inputs(tmp_path)
    run = tmp_path / "run"
    assert main(["find", *common, "--output_dir", str(run), "--max_levels", "2", "--tolerance", "1.0"]) == 0
    row = bench.run_row("IMP linear", run)
    # tolerance 1: every level matches, so the row is the last level (2); its mask cost the
    # steps of levels 0 and 1 (from their logs), as its ticket's cost record says
    logged = [json.loads((run / f"level_{lv:02d}" / "seed_42" / "log_history.json").read_text())[-1]["step"] for lv in (0, 1)]
    assert (
        row["sparsity"] == target_count(0.2, TINY_PRUNABLE) / TINY_PRUNABLE
        and row["steps"] == sum(logged) > 0
        and row["scoring_passes"] == 0
    )
    pai = tmp_path / "pai"
    extra = ["--criterion", "synflow", "--sparsity", "0.3", "--score_iterations", "4", "--sanity", "none", "--baselines", "dense"]
    assert main(["prune-at-init", *common, "--output_dir", str(pai), *extra]) == 0
    rows = {r["method"]: r for r in bench.matrix_rows(pai / "finetune")}
    assert set(rows) == {"rte (finetune)", "dense (finetune)"}
    assert rows["rte (finetune)"]["scoring_passes"] == 4 and rows["rte (finetune)"]["steps"] == 0
    assert rows["dense (finetune)"]["sparsity"] is None
    table = bench.format_cost_table([row, *rows.values()])
    assert table.count("\n") == 4 and "| IMP linear | 0.2000 |" in table


def test_a_run_ticket_without_a_cost_record_gets_its_lineage_steps(tmp_path):
    from bert_tickets.experiments.transfer import TransferArguments, resolve_sources

    ckpt, glue = write_imp_inputs(tmp_path)
    run = tmp_path / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), *IMP_TRAIN_ARGS]
    assert main([*argv, "--max_levels", "2"]) == 0
    config = run / "level_02" / "ticket" / "ticket_config.json"
    raw = json.loads(config.read_text())
    recorded, raw["cost"] = raw["cost"], {}  # as a run written before cost records has it
    config.write_text(json.dumps(raw))
    (source,) = resolve_sources(TransferArguments(tickets=[str(run)], tasks=["rte"], level=2))
    logged = [json.loads((run / f"level_{lv:02d}" / "seed_42" / "log_history.json").read_text())[-1]["step"] for lv in (0, 1)]
    assert source.ticket.metadata.cost == recorded == {"train_steps": sum(logged), "score_forward": 0, "score_backward": 0}


def test_time_to_ticket_compares_routes_with_the_ground_truth(bench, tmp_path):
    _, _, common = _inputs(tmp_path)
    linear = tmp_path / "linear"
    assert main(["find", *common, "--output_dir", str(linear), "--max_levels", "5"]) == 0
    # a known matching pattern: 1 yes, 2 no, 3 yes, 4 no, 5 no -> s* = level 3 (the first two
    # consecutive misses come after it); level 5 "matching" after them would not count
    summary_path = linear / "summary.json"
    summary = json.loads(summary_path.read_text())
    for row, ok in zip(summary["levels"], [True, True, False, True, False, False], strict=True):
        row["matching"], row["beats_trivial"] = ok, True
    summary_path.write_text(json.dumps(summary))
    truth = bench.ground_truth(linear)
    logged = [json.loads((linear / f"level_{lv:02d}" / "seed_42" / "log_history.json").read_text())[-1]["step"] for lv in range(6)]
    assert truth["level"] == 3 and truth["sparsity"] == summary["levels"][3]["sparsity"]
    assert truth["steps"] == sum(logged[:4]) and truth["examples"] == 8 * truth["steps"]

    eb = tmp_path / "eb"
    options = ["--early_bird", "--early_bird_options", "interval=2", "epsilon=0.5", "window=2"]
    assert main(["find", *common, "--output_dir", str(eb), "--max_levels", "3", *options]) == 0
    route = bench.route_row(eb)
    cost = json.loads((eb / "summary.json").read_text())["early_bird"]["cost"]
    assert route["steps"] == cost["total_steps"] == cost["search_steps"] + cost["judging_steps"] and route["examples"] == 8 * route["steps"]
    table = bench.format_time_to_ticket(truth, [route])
    ratio = route["steps"] / truth["steps"]
    assert f"| {ratio:.3f} |" in table and table.splitlines()[2].startswith("| linear (ground truth) |")
    # without a matching level the early-bird row shows its least sparse judged pruned level, and says so
    eb_summary = json.loads((eb / "summary.json").read_text())
    eb_summary["highest_matching_sparsity"] = None
    (eb / "summary.json").write_text(json.dumps(eb_summary))
    judged = min((r for r in eb_summary["levels"] if r["level"] > 0), key=lambda r: r["sparsity"])
    unmatched = bench.route_row(eb)
    assert unmatched["level"] == judged["level"] > 0 and unmatched["mean"] == judged["mean"] and unmatched["sparsity"] is None
    assert f"no level matched: metric of level {judged['level']}" in unmatched["note"] and unmatched["steps"] == route["steps"]


def test_at_init_routes_of_a_matrix_count_judging_and_every_search(bench, tmp_path):
    ckpt, glue, common = _inputs(tmp_path)
    linear = tmp_path / "linear"
    assert main(["find", *common, "--output_dir", str(linear), "--max_levels", "1"]) == 0
    matrix = tmp_path / "matrix"
    transfer = ["transfer", "--tickets", str(linear), "--level", "1", "--tasks", "rte", "--model", str(ckpt), "--data_dir", str(glue)]
    transfer += [*IMP_TRAIN_ARGS, "--seeds", "1", "2", "--baselines", "dense", "magnitude", "synflow", "gem_miner"]
    transfer += ["--sanity", "layer_shuffle", "--score_iterations", "3", "--gem_steps", "2", "--output_dir", str(matrix)]
    assert main(transfer) == 0
    per_cell = json.loads((linear / "level_00" / "seed_42" / "log_history.json").read_text())[-1]["step"]
    routes = {r["route"].split(" at ")[0]: r for r in bench.matrix_routes(matrix, linear)}
    # criterion rows only: not dense, not the IMP ticket row, not the layer_shuffle checks
    assert set(routes) == {"magnitude", "synflow", "gem_miner"}
    judging = (2 + 2) * per_cell  # the row's two seeds and dense's two
    assert routes["magnitude"]["steps"] == judging and routes["synflow"]["steps"] == judging  # one seedless synflow search: no steps
    assert routes["gem_miner"]["steps"] == judging + 2 * 2  # a 2-step score search per seed
    assert routes["magnitude"]["examples"] == 8 * routes["magnitude"]["steps"]
    assert "3 scoring passes" in routes["synflow"]["note"]
    entries = json.loads((matrix / "matrix.json").read_text())["entries"]
    sparsity = json.loads((matrix / "transfer_config.json").read_text())["spec"]["sparsity"]
    for label, r in routes.items():
        e = entries[label]["rte"]
        assert r["sparsity"] == (sparsity if e["matching"] and e["beats_trivial"] is not False else None)
        assert r["mean"] == e["mean"]
    other = tmp_path / "other"
    assert main(["find", *common, "--learning_rate", "0.5", "--output_dir", str(other), "--max_levels", "0"]) == 0
    with pytest.raises(ValueError, match="budget differs .* learning_rate"):
        bench.matrix_routes(matrix, other)


def test_the_calibrated_schedules_dense_copy_counts_in_a_route(bench, tmp_path):
    _, _, common = _inputs(tmp_path)
    run = tmp_path / "ada"
    assert main(["find", *common, "--schedule", "adaptive", "--max_levels", "1", "--output_dir", str(run)]) == 0
    steps = json.loads((run / "level_00" / "seed_42" / "log_history.json").read_text())[-1]["step"]
    from bert_tickets.results import RunRecord

    record = RunRecord(run)
    assert record.paths.dense_instability().is_dir() and record.calibration_steps() == steps > 0
    route = bench.route_row(run)
    assert f"dense instability copy {steps} steps" in route["note"]
    cost = bench.cost_to_ticket(run)  # the main mode's adaptive / linear ratio counts the copy too
    levels = sum(record.train_steps(lv) for lv in range(cost["levels_to_ticket"]))
    assert route["steps"] == cost["steps_to_ticket"] == levels + steps and cost["calibration_steps"] == steps


def test_the_magnitude_start_route_counts_its_scan_and_checks_the_start(bench, tmp_path, capsys):
    ckpt, glue, common = _inputs(tmp_path)
    linear = tmp_path / "linear"
    assert main(["find", *common, "--output_dir", str(linear), "--max_levels", "2"]) == 0
    scans = []
    for level, ok in ((1, True), (2, False)):  # the scan: magnitude of θ0 at 0.1 matches, at 0.2 not
        scan = tmp_path / f"scan{level}"
        transfer = ["transfer", "--tickets", str(linear), "--level", str(level), "--tasks", "rte", "--model", str(ckpt)]
        transfer += ["--data_dir", str(glue), *IMP_TRAIN_ARGS, "--seeds", "1", "2", "--baselines", "dense", "magnitude"]
        assert main([*transfer, "--output_dir", str(scan)]) == 0
        matrix = json.loads((scan / "matrix.json").read_text())
        matrix["entries"]["magnitude"]["rte"].update(matching=ok, beats_trivial=True)
        (scan / "matrix.json").write_text(json.dumps(matrix))
        scans.append(scan)
    start = json.loads((scans[0] / "transfer_config.json").read_text())["spec"]["sparsity"]
    run = tmp_path / "start"
    argv = ["find", *common, "--schedule_options", f"start_sparsity={start}", "--max_levels", "1", "--output_dir", str(run)]
    assert main(argv) == 0
    per_cell = json.loads((linear / "level_00" / "seed_42" / "log_history.json").read_text())[-1]["step"]
    route = bench.magnitude_start_route(f"{run}+{scans[0]}+{scans[1]}", linear)
    # the run's own levels, then the scan: two magnitude rows of two seeds each, dense's two seeds once
    assert route["steps"] == bench.route_row(run)["steps"] + (2 + 2 + 2) * per_cell > 0
    assert route["examples"] == 8 * route["steps"] and "0.10 ✓, 0.20 ✗" in route["note"]
    capsys.readouterr()
    assert bench.compare([str(linear), f"{run}+{scans[0]}+{scans[1]}"]) == 0
    assert f"| θ0-magnitude start {start:g} (start) |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not the highest matching scanned sparsity"):
        bench.magnitude_start_route(f"{run}+{scans[1]}", linear)
    assert bench.compare([str(linear), f"{run}+{scans[1]}"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="no --schedule_options start_sparsity"):
        bench.magnitude_start_route(f"{linear}+{scans[0]}", linear)
    with pytest.raises(ValueError, match="a second scan at sparsity"):
        bench.magnitude_start_route(f"{run}+{scans[0]}+{scans[0]}", linear)
    # a matching start that is not the highest matching scanned sparsity
    matrix = json.loads((scans[1] / "matrix.json").read_text())
    matrix["entries"]["magnitude"]["rte"]["matching"] = True
    (scans[1] / "matrix.json").write_text(json.dumps(matrix))
    with pytest.raises(ValueError, match=r"0.10 matching, 0.20 matching"):
        bench.magnitude_start_route(f"{run}+{scans[0]}+{scans[1]}", linear)


def test_a_prune_at_init_magnitude_directory_is_a_scan_point(bench, tmp_path):
    _, _, common = _inputs(tmp_path)
    linear = tmp_path / "linear"
    assert main(["find", *common, "--output_dir", str(linear), "--max_levels", "0"]) == 0
    extra = ["--sparsity", "0.3", "--sanity", "none", "--baselines", "dense", "--seeds", "1", "2"]
    for criterion in ("magnitude", "random"):
        assert main(["prune-at-init", *common, "--criterion", criterion, *extra, "--output_dir", str(tmp_path / criterion)]) == 0
    matrix = json.loads((tmp_path / "magnitude" / "finetune" / "matrix.json").read_text())
    e = matrix["entries"]["rte"]["rte"]
    assert bench._scan_point(tmp_path / "magnitude", linear) == (
        0.3,
        bool(e["matching"]) and e["beats_trivial"] is not False,
        2,
        2,
    )
    with pytest.raises(ValueError, match="a prune-at-init scan of 'random', not magnitude"):
        bench._scan_point(tmp_path / "random", linear)


def test_a_route_without_a_matching_level_shows_its_least_sparse_pruned_level(bench, tmp_path):
    """Not dense's metric (which reads as a ticket at dense's value): the closest level it judged."""
    _, _, common = _inputs(tmp_path)
    run = tmp_path / "nomatch"
    assert main(["find", *common, "--output_dir", str(run), "--max_levels", "2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    summary["highest_matching_sparsity"] = None
    (run / "summary.json").write_text(json.dumps(summary))
    level1 = next(r for r in summary["levels"] if r["level"] == 1)
    route = bench.route_row(run)
    from bert_tickets.results import RunRecord

    record = RunRecord(run)
    assert route["sparsity"] is None and route["level"] == 1 and route["mean"] == level1["mean"]
    assert route["steps"] == sum(record.train_steps(lv) for lv in range(3)) > 0  # every level it ran
    assert f"no level matched: metric of level 1 (sparsity {level1['sparsity']:.2f})" in route["note"]


def test_a_route_whose_level_0_is_not_linears_dense_is_judged_against_linears_dense(bench, tmp_path):
    """A data diet in state mode trains its level 0 from its pre-trained point: its own level 0
    is not the dense model s* is defined against. --compare judges it against the linear run's
    dense (mean - one std of its seeds), charges that dense judging to it, and notes its own
    verdict; a route with linear's level 0 is unchanged."""
    import shutil

    from bert_tickets.results import RunRecord

    _, _, common = _inputs(tmp_path)
    linear = tmp_path / "linear"
    assert main(["find", *common, "--output_dir", str(linear), "--max_levels", "2", "--seeds", "1", "2"]) == 0
    route = tmp_path / "route"
    shutil.copytree(linear, route)
    assert bench.route_row(route, linear) == bench.route_row(route)  # the same level 0: nothing re-judged
    truth = json.loads((linear / "summary.json").read_text())
    truth["levels"][0].update(mean=0.56, std=0.02)  # threshold 0.54
    (linear / "summary.json").write_text(json.dumps(truth))
    ours = json.loads((route / "summary.json").read_text())
    ours["levels"][0].update(mean=0.70, std=0.01, per_seed={"1": 0.69, "2": 0.71})
    for level, mean in ((1, 0.60), (2, 0.55)):
        ours["levels"][level].update(mean=mean, beats_trivial=True, matching=False)
    ours.update(highest_matching_sparsity=None, dense_learned=True)
    (route / "summary.json").write_text(json.dumps(ours))
    row = bench.route_row(route, linear)
    level2 = ours["levels"][2]
    assert row["sparsity"] == level2["sparsity"] and row["level"] == 2 and row["mean"] == 0.55  # 0.55 >= 0.56 - 0.02
    dense_judging = RunRecord(linear).train_steps(0)  # the dense it is judged against, charged to it
    assert row["steps"] == sum(RunRecord(route).train_steps(lv) for lv in range(3)) + dense_judging and dense_judging > 0
    assert "judged against linear's dense 0.5600 ± 0.0200" in row["note"] and "highest matching sparsity is none" in row["note"]
    ours["levels"][2]["mean"] = 0.5399  # below the threshold: level 1 is the highest matching
    (route / "summary.json").write_text(json.dumps(ours))
    row = bench.route_row(route, linear)
    assert row["level"] == 1 and row["steps"] == sum(RunRecord(route).train_steps(lv) for lv in range(2)) + dense_judging
