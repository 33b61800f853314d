"""The run record: file names (they must keep matching runs written before the layering), writes
that are no-ops off the main process, the hash check, and the matching rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bert_tickets.results import LevelResult, RunPaths, RunRecord, hyperparameter_hash, read_run, summarize
from bert_tickets.ticket import TicketMask

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


def test_paths_name_the_files_of_an_existing_run():
    p = RunPaths(FIXTURE)
    for path in (p.run_config, p.summary_json, p.summary_csv, p.initial_head(42), p.ticket(1), p.metrics(2), p.log_history(2, 42)):
        assert path.exists(), path
    assert [d.name for d in p.level_dirs()] == ["level_00", "level_01", "level_02", "level_03"]
    assert [f.parent.name for f in p.metrics_files()] == ["level_00", "level_01", "level_02"]
    assert p.rewind_point(5).name == "rewind_step5.safetensors" and p.trained_head(3).parent.name == "level_03"


def _row(level, mean, seeds=None):
    seeds = seeds or {"1": mean}
    std = None if len(seeds) == 1 else float(torch.tensor(list(seeds.values())).std())
    return LevelResult(level, level / 10, level / 10, level, 10, "accuracy", mean, std, seeds)


def test_off_main_writes_nothing_and_main_writes_everything(tmp_path):
    ticket = TicketMask({"w": torch.ones(2, 2, dtype=torch.bool)})
    for is_main, out in ((False, tmp_path / "worker"), (True, tmp_path / "main")):
        rec = RunRecord(out, is_main=is_main)
        rec.write_config("abc", {"imp": {}}, [0.0, 0.1])
        rec.save_ticket(0, ticket)
        rec.save_initial_head(1, {"h": torch.zeros(2)})
        rec.write_log_history(0, 1, [{"loss": 1.0}])
        rec.write_level(_row(0, 0.5), {"1": {"accuracy": 0.5}})
        rec.write_summary(summarize([_row(0, 0.5)], 0.01, "rte", 1.0))
    assert not (tmp_path / "worker").exists()
    rec = RunRecord(tmp_path / "main")
    assert rec.completed_level(0) == _row(0, 0.5) and rec.completed_level(1) is None
    assert torch.equal(rec.load_ticket(0).masks["w"], ticket.masks["w"])
    assert torch.equal(rec.load_initial_head(1)["h"], torch.zeros(2))
    assert rec.paths.summary_csv.read_text().splitlines()[0].startswith("level,target_sparsity,sparsity,")


def test_check_config_names_what_changed(tmp_path):
    rec = RunRecord(tmp_path)
    hp = {"imp": {"rewind_step": 0}, "training": {"learning_rate": 2e-5}}
    rec.write_config(hyperparameter_hash(hp), hp, [0.0, 0.1])
    rec.check_config(hp, hyperparameter_hash(hp), [0.0, 0.1])  # the same run: fine
    other = {"imp": {"rewind_step": 0}, "training": {"learning_rate": 5e-4}}
    with pytest.raises(ValueError, match=r"other hyperparameters .*changed: training\.learning_rate\)"):
        rec.check_config(other, hyperparameter_hash(other))
    rec.write_level(_row(1, 0.5), {})
    with pytest.raises(ValueError, match="this schedule puts level 1 at 0.2"):
        rec.check_config(hp, hyperparameter_hash(hp), [0.0, 0.2])


def test_matching_rule_one_seed_and_several():
    rows = [_row(0, 0.70), _row(1, 0.695), _row(2, 0.689), _row(3, 0.75)]
    s = summarize(rows, 0.01, "rte", 0.0)
    assert [r["matching"] for r in s["levels"]] == [True, True, False, True]
    assert s["highest_matching_sparsity"] == 0.3 and "--tolerance" in s["matching_rule"]
    seeds = {"1": 0.70, "2": 0.74}  # sample std 0.028284...
    rows = [_row(0, 0.72, seeds), _row(1, 0.6918, {"1": 0.6918}), _row(2, 0.6916, {"1": 0.6916})]
    s = summarize(rows, 0.5, "rte", 0.0)
    assert [r["matching"] for r in s["levels"]] == [True, True, False]  # 0.72 - 0.028284 = 0.691716
    assert "one standard deviation" in s["matching_rule"]


def test_super_tickets_are_levels_above_dense_beyond_its_seed_spread():
    from bert_tickets.results import format_summary

    seeds = {"1": 0.70, "2": 0.74}  # mean 0.72, sample std 0.028284...
    rows = [_row(0, 0.72, seeds), _row(1, 0.7483, {"1": 0.7483}), _row(2, 0.7482, {"1": 0.7482}), _row(3, 0.60, {"1": 0.60})]
    s = summarize(rows, 0.5, "rte", 0.0)
    assert [r["super_ticket"] for r in s["levels"]] == [False, True, False, False]  # 0.72 + 0.028284 = 0.748284
    assert s["super_ticket_levels"] == [1]
    table = format_summary(s)
    assert table.splitlines()[2].endswith("super ticket") and "super ticket" not in table.splitlines()[3]
    one = summarize([_row(0, 0.70), _row(1, 0.7101), _row(2, 0.7099)], 0.01, "rte", 0.0)  # one seed: the tolerance
    assert one["super_ticket_levels"] == [1]


def test_read_run_takes_the_summary_decisions():
    run = read_run(FIXTURE)
    summary = json.loads((FIXTURE / "summary.json").read_text())
    assert [run.levels[lv]["matching"] for lv in sorted(run.levels)] == [r["matching"] for r in summary["levels"]]


def test_verdicts_are_pure_and_agree_with_the_summary():
    from bert_tickets.results.matching import verdicts

    rows = [_row(0, 0.70), _row(1, 0.695), _row(2, 0.689)]
    before = [dict(r.__dict__) for r in rows]
    judged = verdicts(rows, 0.01)
    assert [r.__dict__ for r in rows] == before  # the records are left as written
    assert [r.matching for r in judged] == [True, True, False] and [r.delta for r in judged] == [0.0, 0.695 - 0.70, 0.689 - 0.70]
    assert [r.__dict__ for r in judged] == summarize(rows, 0.01, "rte", 0.0)["levels"]
    assert verdicts([], 0.01) == []


@pytest.mark.parametrize(
    ("imp", "level1_steps"),
    [
        ({"rewind_step": 5, "rewind_mode": "state"}, 2 * (20 - 5)),  # levels continue from step 5: 15 steps each
        ({"rewind_step": 5}, 2 * 20),  # backbone_restart: the schedule restarts, 20 steps each
        ({"rewind_step": 0}, 2 * 20),
        ({"rewind_step": 5, "rewind_data": "easy"}, 2 * 20),  # a diet run recorded before session 14 restarts
    ],
)
def test_train_steps_of_a_level_count_only_the_steps_it_ran(tmp_path, imp, level1_steps):
    rec = RunRecord(tmp_path)
    rec.write_config("h", {"imp": imp}, [0.0, 0.1])
    for seed in (1, 2):
        rec.write_log_history(0, seed, [{"step": 10}, {"step": 20}])
        rec.write_log_history(1, seed, [{"step": 10}, {"step": 20}])  # a continued level logs the steps after k
    assert rec.train_steps(0) == 40 and rec.train_steps(1) == level1_steps


def test_train_steps_of_a_diet_state_run_start_at_the_rewind_step_from_level_0(tmp_path):
    """A data diet in state mode: level 0 too continues from each seed's pre-trained state at
    step k (its first k steps are the diet's, counted in subset.json)."""
    rec = RunRecord(tmp_path)
    rec.write_config("h", {"imp": {"rewind_step": 5, "rewind_mode": "state", "rewind_data": "easy"}}, [0.0, 0.1])
    for level in (0, 1):
        for seed in (1, 2):
            rec.write_log_history(level, seed, [{"step": 10}, {"step": 20}])
    assert rec.train_steps(0) == rec.train_steps(1) == 2 * 15 and rec.start_step(0) == 5
    rec.paths.dense_instability().mkdir(parents=True)
    assert rec.calibration_steps() == 15  # one seed's steps 6-20
