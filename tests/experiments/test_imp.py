"""End-to-end IMP runs through the `bert-tickets find` CLI on a tiny BERT saved to disk and a
tiny RTE-format GLUE directory (nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizerFast

from bert_tickets.cli import main
from bert_tickets.pruning import target_count
from bert_tickets.results import format_summary
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE
from tiny_assets import IMP_TRAIN_ARGS, IMP_WORDS, write_imp_inputs


@pytest.fixture(scope="module")
def imp_inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def tiny_checkpoint(imp_inputs):
    ckpt = imp_inputs[0]
    tok = BertTokenizerFast.from_pretrained(ckpt)
    assert tok.convert_tokens_to_ids("cat") == 5 + IMP_WORDS.index("cat") and tok.unk_token_id not in tok("the cat sat")["input_ids"]
    return ckpt


@pytest.fixture(scope="module")
def glue_dir(imp_inputs):
    return imp_inputs[1]


#: A budget at which the tiny dense model learns the tiny RTE rule (dev accuracy above the
#: majority class), so that matching is defined.
LEARNS = ("--num_train_epochs", "30", "--learning_rate", "3e-3")


def find(tiny_checkpoint, glue_dir, out, *extra):
    argv = [
        "find",
        "--task",
        "rte",
        "--model",
        str(tiny_checkpoint),
        "--data_dir",
        str(glue_dir),
        "--output_dir",
        str(out),
        *IMP_TRAIN_ARGS,
        *extra,
    ]
    return main(argv)


def test_find_four_levels_exact_sparsity_and_zeros(tiny_checkpoint, glue_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "3") == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    levels = summary["levels"]
    # the trivial baseline: the best constant class on the dev file, counted here
    dev = [line.rsplit("\t", 1)[1] for line in (glue_dir / "RTE" / "dev.tsv").read_text().splitlines()[1:]]
    majority = max(dev.count("entailment"), dev.count("not_entailment")) / len(dev)
    assert summary["trivial_baseline"]["value"] == majority and summary["trivial_baseline"]["metric"] == "accuracy"
    assert [r["beats_trivial"] for r in levels] == [r["mean"] > majority for r in levels]
    if levels[0]["mean"] <= majority:  # at this budget the tiny dense model stays at chance: flagged, no ticket named
        assert summary["dense_learned"] is False and summary["highest_matching_sparsity"] is None
        assert all(r["matching"] is None for r in levels)
        assert "dense did not learn: matching is undefined on rte" in printed and "≤ trivial" in printed
    else:
        assert "highest matching sparsity" in printed or "no pruned level is matching" in printed
    assert [r["level"] for r in levels] == [0, 1, 2, 3]
    prev = None
    for r in levels:
        k = target_count(r["level"] * 0.1, TINY_PRUNABLE)
        assert r["num_pruned"] == k and r["num_prunable"] == TINY_PRUNABLE
        assert r["nonzero_pruned_weights"] == 0
        assert 0.0 <= r["mean"] <= 1.0 and r["metric"] == "accuracy"
        ticket = TicketMask.from_pretrained(out / f"level_{r['level']:02d}" / "ticket")
        assert ticket.num_pruned == k and ticket.metadata.level == r["level"]
        # the ticket is written once, before its level trains: no metrics in it (they are in metrics.json)
        assert "accuracy" not in ticket.metadata.extra and "metrics" not in ticket.metadata.extra
        assert ticket.metadata.lineage == list(range(r["level"])) and ticket.metadata.parent_level == (
            r["level"] - 1 if r["level"] else None
        )
        if prev is not None:  # IMP never revives a pruned weight
            assert all(bool((ticket.masks[n] <= prev.masks[n]).all()) for n in ticket.masks)
        # the cost record: the optimizer steps of every level before this one (its lineage)
        logged = [
            json.loads((out / f"level_{lv:02d}" / "seed_42" / "log_history.json").read_text())[-1]["step"] for lv in range(r["level"])
        ]
        if r["level"] == 0:
            assert ticket.metadata.cost == {}
        else:
            assert ticket.metadata.cost == {"train_steps": sum(logged), "score_forward": 0, "score_backward": 0} and sum(logged) > 0
        prev = ticket
    assert levels[0]["delta"] == 0.0 and levels[0]["matching"] is (True if summary["dense_learned"] else None)
    csv_lines = (out / "summary.csv").read_text().strip().splitlines()
    assert csv_lines[0].startswith("level,") and len(csv_lines) == 5
    assert (out / "level_00" / "seed_42" / "log_history.json").is_file()

    # resume: every level is complete, nothing is retrained
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("level_*/metrics.json")}
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "3") == 0
    assert "already complete: skipped" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.glob("level_*/metrics.json")} == stamps

    # an interrupted level is re-run from its saved mask, finished ones are not
    (out / "level_03" / "metrics.json").unlink()
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "3") == 0
    again = json.loads((out / "level_03" / "metrics.json").read_text())["result"]
    assert again["num_pruned"] == target_count(0.3, TINY_PRUNABLE)
    assert (out / "level_00" / "metrics.json").stat().st_mtime_ns == stamps[out / "level_00" / "metrics.json"]

    # extending a finished run to more levels reuses the finished ones
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "4") == 0
    assert json.loads((out / "summary.json").read_text())["levels"][-1]["num_pruned"] == target_count(0.4, TINY_PRUNABLE)
    assert (out / "level_00" / "metrics.json").stat().st_mtime_ns == stamps[out / "level_00" / "metrics.json"]
    # ... but not with a schedule that contradicts them
    assert find(tiny_checkpoint, glue_dir, out, "--target_sparsity", "0.25") == 2
    assert "this schedule puts level 3 at 0.25" in capsys.readouterr().err

    # different hyperparameters in the same directory: refused before any work
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "3", "--learning_rate", "5e-4") == 2
    assert "other hyperparameters" in capsys.readouterr().err

    # info works on the run and on a ticket
    assert main(["info", str(out / "level_02")]) == 0
    text = capsys.readouterr().out
    assert "encoder.layer.0.attention.self.query.weight" in text and "level: 2" in text
    assert main(["info", str(out)]) == 0


def test_head_is_reset_to_level0_init(tiny_checkpoint, glue_dir, tmp_path):
    from bert_tickets.cli import parse_find_args
    from bert_tickets.experiments.imp import IMPRunner
    from bert_tickets.training.weights import head_state as _head_state

    out = tmp_path / "run"
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "1") == 0
    saved = load_file(out / "initial_head_seed42.safetensors")
    assert set(saved) == {"classifier.weight", "classifier.bias"}
    args = parse_find_args(
        ["--task", "rte", "--model", str(tiny_checkpoint), "--data_dir", str(glue_dir), "--output_dir", str(tmp_path / "x")]
    )
    runner = IMPRunner(*args)
    fresh = _head_state(runner._load_model(42))
    assert all(torch.equal(saved[n], fresh[n]) for n in saved)


def test_rewind_step_geometric_random_and_seeds(tiny_checkpoint, glue_dir, tmp_path, capsys):
    out = tmp_path / "rw"
    assert (
        find(
            tiny_checkpoint,
            glue_dir,
            out,
            "--max_levels",
            "2",
            "--rewind_step",
            "2",
            "--schedule",
            "geometric",
            "--prune_fraction",
            "0.2",
            "--pruning_method",
            "random",
            "--seeds",
            "1",
            "2",
            *LEARNS,
        )
        == 0
    )
    rewind = load_file(out / "rewind_step2.safetensors")
    theta0 = BertModel.from_pretrained(tiny_checkpoint).state_dict()
    q = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(rewind[q], theta0[q])  # two steps of fine-tuning moved it
    summary = json.loads((out / "summary.json").read_text())
    assert [r["num_pruned"] for r in summary["levels"]] == [0, target_count(0.2, TINY_PRUNABLE), target_count(0.36, TINY_PRUNABLE)]
    assert all(r["std"] is not None and len(r["per_seed"]) == 2 for r in summary["levels"])
    assert summary["dense_learned"] is True and "standard deviation" in summary["matching_rule"]
    t1 = TicketMask.from_pretrained(out / "level_01" / "ticket")
    assert t1.metadata.pruning_method == "random" and t1.metadata.rewind_step == 2
    # a rewind step beyond level-0 training fails clearly
    assert find(tiny_checkpoint, glue_dir, tmp_path / "rw2", "--max_levels", "1", "--rewind_step", "1000") == 2
    assert "exceeds the 4 optimizer steps" in capsys.readouterr().err
    assert not (tmp_path / "rw2" / "level_00").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task", "qqqq"], "unknown task"),
        (["--target_sparsity", "1.0"], "[0, 1)"),
        (["--prunable_patterns", "nothing"], "no prunable weights matched"),
        (["--schedule", "linear", "--prune_step", "0"], "prune_step"),
        (["--schedule", "cosine"], "unknown schedule 'cosine'; choose one of"),
        (
            ["--pruning_method", "nope"],
            "unknown pruning method 'nope'; choose one of gem_miner, importance, magnitude, random, snip, synflow",
        ),
        (["--pruning_scope", "rows"], "unknown pruning scope 'rows'"),
        (["--pruning_method", "snip"], "scores weights on training data, for pruning at initialisation"),
        (["--pruning_scope", "layerwise", "--max_tensor_sparsity", "0.5"], "applies to --pruning_scope global only"),
    ],
)
def test_bad_input_fails_before_training(tiny_checkpoint, glue_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert find(tiny_checkpoint, glue_dir, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("bert-tickets find: error:")
    assert not out.exists()


def test_missing_data_and_columns(tiny_checkpoint, glue_dir, tmp_path, capsys):
    assert find(tiny_checkpoint, tmp_path / "nowhere", tmp_path / "o1") == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "badglue" / "RTE"
    bad.mkdir(parents=True)
    (bad / "train.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    (bad / "dev.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    assert find(tiny_checkpoint, tmp_path / "badglue", tmp_path / "o2") == 2
    assert "label" in capsys.readouterr().err
    assert find(tmp_path / "no-model", glue_dir, tmp_path / "o3") == 2
    assert "model directory not found" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


@pytest.fixture(scope="module")
def small_pooler_checkpoint(tmp_path_factory, tiny_checkpoint):
    path = tmp_path_factory.mktemp("ckpt_small_pooler")
    model = BertModel.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        model.pooler.dense.weight.mul_(0.05)
    model.save_pretrained(path)
    BertTokenizerFast.from_pretrained(tiny_checkpoint).save_pretrained(path)
    return path


def test_layer_collapse_reported_and_avoided(small_pooler_checkpoint, glue_dir, tmp_path, capsys):
    out = tmp_path / "collapse"
    assert find(small_pooler_checkpoint, glue_dir, out, "--max_levels", "1", "--prune_step", "0.5") == 0
    captured = capsys.readouterr()
    assert "weight scale far below" in captured.err and "pooler.dense.weight" in captured.err
    assert "layer collapse at level 1: pooler.dense.weight 1.0000" in captured.err
    assert "pooler.dense.weight (1.00)" in captured.out  # in the printed summary table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["levels"][1]["collapsed_tensors"] == {"pooler.dense.weight": 1.0}
    assert main(["info", str(out / "level_01")]) == 0
    assert "collapsed" in capsys.readouterr().out

    # SynFlow at θ0 of the same checkpoint keeps the down-scaled pooler alive (Tanaka et al.'s
    # point), where one-shot magnitude of θ0 empties it
    for criterion, alive in (("magnitude", False), ("synflow", True)):
        pai = tmp_path / f"pai_{criterion}"
        argv = ["--task", "rte", "--model", str(small_pooler_checkpoint), "--data_dir", str(glue_dir), "--output_dir", str(pai)]
        assert main(["prune-at-init", *argv, "--criterion", criterion, "--sparsity", "0.5", "--no_finetune"]) == 0
        ticket = TicketMask.from_pretrained(pai / "ticket")
        assert ticket.num_pruned == target_count(0.5, TINY_PRUNABLE)
        assert (int(ticket.masks["pooler.dense.weight"].sum()) > 0) is alive

    capped = tmp_path / "capped"
    assert find(small_pooler_checkpoint, glue_dir, capped, "--max_levels", "1", "--prune_step", "0.5", "--max_tensor_sparsity", "0.9") == 0
    assert "layer collapse at level" not in capsys.readouterr().err
    level1 = json.loads((capped / "level_01" / "metrics.json").read_text())["result"]
    assert level1["num_pruned"] == target_count(0.5, TINY_PRUNABLE) and level1["collapsed_tensors"] == {}
    ticket = TicketMask.from_pretrained(capped / "level_01" / "ticket")
    assert ticket.metadata.max_tensor_sparsity == 0.9 and max(ticket.per_tensor_sparsity().values()) <= 0.9


def test_an_adaptive_schedule_sees_judged_history_and_drives_the_loop(tiny_checkpoint, glue_dir, tmp_path):
    from bert_tickets.pruning import SCHEDULES_REGISTRY, SparsitySchedule, register_schedule

    seen = []

    class StepBackSchedule(SparsitySchedule):
        """Toy adaptive schedule: 0.5 after dense; then 0.25 if 0.5 missed, else 0.75; stop after 3 levels."""

        name = "toy_adaptive"
        adaptive = True

        def next(self, history):
            seen.append([(r.level, r.matching) for r in history])
            if not history:
                return 0.0
            if len(history) == 3:
                return None
            return 0.5 if len(history) == 1 else (0.75 if history[-1].matching else 0.25)

    register_schedule(StepBackSchedule)
    try:
        out = tmp_path / "adaptive"
        assert find(tiny_checkpoint, glue_dir, out, "--schedule", "toy_adaptive", "--tolerance", "1.0", *LEARNS) == 0
    finally:
        SCHEDULES_REGISTRY.unregister("toy_adaptive")
    summary = json.loads((out / "summary.json").read_text())
    # tolerance 1.0: every level matches, so the schedule steps up from 0.5 to 0.75
    assert [r["target_sparsity"] for r in summary["levels"]] == [0.0, 0.5, 0.75]
    assert [r["num_pruned"] for r in summary["levels"]] == [0, target_count(0.5, TINY_PRUNABLE), target_count(0.75, TINY_PRUNABLE)]
    assert [(0, True), (1, True)] in seen  # the schedule read the matching decisions of finished levels
    assert json.loads((out / "run_config.json").read_text())["schedule"] is None  # not known before the run
    assert not (out / "level_03").exists()  # an adaptive schedule does not guess past its stop


def test_the_adaptive_schedule_logs_each_decision_with_the_recorded_barrier(tiny_checkpoint, glue_dir, tmp_path, capsys):
    """After every level, find logs the adaptive schedule's decision: the barrier it measured (the
    one recorded in the summary), the limit (--max_barrier), good or not, and where it goes on."""
    from bert_tickets.pruning import make_schedule

    out = tmp_path / "adaptive_log"
    extra = ("--schedule", "adaptive", "--target_sparsity", "0.5", "--max_levels", "2", "--tolerance", "1.0")
    # at this budget dense does not learn (matching undefined: every level steps back); the good
    # branch is checked on scripted histories in tests/pruning/test_adaptive.py
    absolute = ("--max_barrier", "0.0", "--barrier_scale", "none", "--barrier_points", "3")
    assert find(tiny_checkpoint, glue_dir, out, *extra, *absolute) == 0
    err = capsys.readouterr().err
    logged = [line[line.index("adaptive schedule after") :] for line in err.splitlines() if "adaptive schedule after level" in line]
    rows = json.loads((out / "summary.json").read_text())["levels"]
    assert len(logged) == len(rows) == 3  # one decision per trained level
    assert logged[0].startswith("adaptive schedule after level 0 (sparsity 0.0000): dense; step 0.2000")
    for line, row in zip(logged[1:], rows[1:]):
        assert f"after level {row['level']} (sparsity {row['sparsity']:.4f})" in line
        assert f"barrier {row['barrier']:.4f}" in line and "limit 0.0000" in line  # the recorded barrier, --max_barrier
        good = bool(row["matching"]) and row["barrier"] <= 0.0
        assert (": good; step grew" in line) == good and (": not good; step shrank" in line) == (not good)
        if not good:
            assert f"stepped back to level {row['parent_level']}" in line
    assert [r["parent_level"] for r in rows] == [None, 0, 0]  # what it said it did
    assert logged[-1].endswith("stop: --max_levels 2 reached")
    # the logged line is the schedule's account of the recorded history
    schedule = make_schedule("adaptive", 0.5, max_levels=2, max_barrier=0.0, barrier_scale=None)
    history = [type("L", (), dict(r))() for r in rows]
    assert logged == [schedule.explain(history[: i + 1]) for i in range(len(rows))]


def test_the_calibrated_adaptive_schedule_measures_the_dense_instability_once(tiny_checkpoint, glue_dir, tmp_path, capsys):
    """Issue 20: by default the adaptive schedule's limit is 1.5 x the dense network's own barrier,
    measured at level 0 (a second dense copy with another data order, recorded as level 0's
    barrier); the log states the limit it derived."""
    out = tmp_path / "calibrated"
    extra = ("--schedule", "adaptive", "--target_sparsity", "0.5", "--max_levels", "1", "--barrier_points", "3")
    assert find(tiny_checkpoint, glue_dir, out, *extra) == 0
    rows = json.loads((out / "summary.json").read_text())["levels"]
    dense = rows[0]["barrier"]
    assert isinstance(dense, float) and dense >= 0.0 and (out / "level_00" / "instability").is_dir()
    err = capsys.readouterr().err
    assert f"the dense network's own barrier (instability) {dense:.4f}" in err
    assert f"its own barrier (instability) {dense:.4f}, so the limit is {1.5 * dense:.4f}" in err
    # the calibration needs the rewind point's whole state: refused with the restarted schedule
    assert find(tiny_checkpoint, glue_dir, tmp_path / "r", *extra, "--rewind_step", "1", "--rewind_mode", "backbone_restart") == 2
    assert "calibrated limit measures the dense network's instability" in capsys.readouterr().err


def test_a_run_at_chance_is_flagged_and_push_refuses_it(tiny_checkpoint, glue_dir, tmp_path, capsys):
    """At the default tiny budget the dense model predicts no better than the majority class: the
    summary and `info` say dense did not learn, no matching sparsity is named, and `push`
    refuses the run unless --force."""
    out = tmp_path / "chance"
    assert find(tiny_checkpoint, glue_dir, out, "--max_levels", "1") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["levels"][0]["mean"] <= summary["trivial_baseline"]["value"]  # precondition: at chance
    assert summary["dense_learned"] is False and summary["highest_matching_sparsity"] is None
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "dense did not learn: matching is undefined" in capsys.readouterr().out
    push = ["push", str(out), "--repo-id", "demo/chance", "--base-model-id", "demo/tiny", "--save-dir", str(tmp_path / "pushed")]
    assert main([*push, "--level", "1"]) == 2
    err = capsys.readouterr().err
    assert "dense did not learn" in err and "--force" in err and err.count("\n") == 1
    assert not (tmp_path / "pushed").exists()
    assert main([*push, "--level", "1", "--force"]) == 0
    assert (tmp_path / "pushed" / "main" / "ticket_mask.safetensors").is_file()


def test_the_adaptive_schedule_drives_find_with_barriers_and_steps_back(tiny_checkpoint, glue_dir, tmp_path):
    """--schedule adaptive: each pruned level records its barrier to the level it was pruned
    from; the sparsities are the schedule's decisions on the recorded history; and a step back
    prunes from the earlier level's ticket and trained weights, not from the failed level."""
    from bert_tickets.pruning import SCHEDULES_REGISTRY, make_schedule, prune_ticket, register_schedule
    from bert_tickets.pruning.schedules.adaptive import AdaptiveSchedule

    out = tmp_path / "adaptive"
    extra = ("--schedule", "adaptive", "--target_sparsity", "0.5", "--tolerance", "1.0", "--max_barrier", "1.0", "--barrier_points", "3")
    extra = (*extra, "--barrier_scale", "none", *LEARNS)
    assert find(tiny_checkpoint, glue_dir, out, *extra) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["levels"]
    # tolerance and max_barrier 1.0: every level is good, so the steps are 0.2 then 0.3
    assert [r["target_sparsity"] for r in rows] == [0.0, 0.2, 0.5]
    assert [r["parent_level"] for r in rows] == [None, 0, 1] and all(isinstance(r["barrier"], float) for r in rows[1:])
    assert all((out / f"level_{lv:02d}" / "trained_model.safetensors").is_file() for lv in range(3))
    # stability --successive adds the barrier from L-1 in its own column: the barrier to the
    # parent level stays as find measured it, and the table shows both, each with its caption
    assert main(["stability", str(out), "--successive", "--points", "3"]) == 0
    after = json.loads((out / "summary.json").read_text())["levels"]
    assert [r["barrier"] for r in after] == [r["barrier"] for r in rows]
    for r in after[1:]:
        saved = json.loads((out / "stability" / f"successive_{r['level'] - 1:02d}_{r['level']:02d}" / "stability.json").read_text())
        assert r["barrier_successive"] == saved["barrier"][saved["metric"]]
    table = format_summary(json.loads((out / "summary.json").read_text()))
    assert "barrier to parent" in table and "barrier from L-1" in table and "(parent_level; adaptive schedule)" in table
    schedule = make_schedule("adaptive", 0.5, max_barrier=1.0, barrier_scale=None)
    history = []
    for r in rows:  # replaying the recorded history gives the recorded sparsities
        assert schedule.next(history) == pytest.approx(r["target_sparsity"])
        history.append(type("L", (), {**r, "matching": r["matching"]})())

    class BackToDense(AdaptiveSchedule):
        """0.5 after dense, then back to dense for 0.25, then stop."""

        name = "test_back_to_dense"

        def next(self, history):
            return [0.0, 0.5, 0.25][len(history)] if len(history) < 3 else None

        def base_level(self, history):
            return 0

    register_schedule(BackToDense)
    try:
        back = tmp_path / "back"
        assert find(tiny_checkpoint, glue_dir, back, "--schedule", "test_back_to_dense", "--barrier_points", "3", *LEARNS) == 0
    finally:
        SCHEDULES_REGISTRY.unregister("test_back_to_dense")
    level0 = TicketMask.from_pretrained(back / "level_00" / "ticket")
    level2 = TicketMask.from_pretrained(back / "level_02" / "ticket")
    assert level2.metadata.level == 2 and level2.metadata.parent_level == 0
    from transformers import AutoModelForSequenceClassification

    trained0 = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint, num_labels=2)
    trained0.load_state_dict(load_file(back / "level_00" / "trained_model.safetensors"), strict=False)
    expected = prune_ticket(level0, trained0, 0.25)
    assert all(torch.equal(level2.masks[n], expected.masks[n]) for n in expected.masks)  # pruned from level 0, not level 1
    rows = json.loads((back / "summary.json").read_text())["levels"]
    assert [r["parent_level"] for r in rows] == [None, 0, 0]


def test_a_linear_run_can_start_at_a_sparsity(tmp_path):
    """Issue 20, item 5: --schedule_options start_sparsity=S puts level 1 at S (one-shot from the
    trained dense level), later levels + prune_step."""
    from bert_tickets.cli import main
    from bert_tickets.pruning import target_count

    from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

    ckpt, glue = write_imp_inputs(tmp_path)
    out = tmp_path / "started"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--output_dir", str(out)]
    assert main([*argv, "--schedule_options", "start_sparsity=0.5", "--max_levels", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    n = summary["levels"][0]["num_prunable"]
    assert [r["target_sparsity"] for r in summary["levels"]] == [0.0, 0.5, 0.6]
    assert [r["num_pruned"] for r in summary["levels"]] == [0, target_count(0.5, n), target_count(0.6, n)]
    assert json.loads((out / "run_config.json").read_text())["hyperparameters"]["imp"]["start_sparsity"] == 0.5
