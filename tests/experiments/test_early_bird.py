"""`find --early_bird` end to end on a tiny BERT (issue 20, item 4): every level's mask search
stops at its early-bird step, only the bisection's levels are judged (full fine-tunes, every
seed), and the costs of search and judging are counted apart."""

from __future__ import annotations

import json

import pytest

from bert_tickets.cli import main
from bert_tickets.pruning import target_count
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE
from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

BUDGET = ("--num_train_epochs", "10", "--learning_rate", "3e-3")  # 4 steps per epoch: 40 steps per full fine-tune


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("inputs"))


def find(inputs, out, *extra):
    ckpt, glue = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    return main([*argv, *BUDGET, *extra])


def _last_step(path):
    return json.loads(path.read_text())[-1]["step"]


def test_early_bird_levels_search_short_judge_by_bisection_and_count_costs(inputs, tmp_path, capsys):
    out = tmp_path / "eb"
    options = ["--early_bird", "--early_bird_options", "interval=2", "epsilon=0.5", "window=2"]
    assert find(inputs, out, "--max_levels", "3", "--seeds", "1", "2", *options) == 0
    summary = json.loads((out / "summary.json").read_text())
    eb = summary["early_bird"]
    searches = [json.loads((out / f"level_{lv:02d}" / "early_bird.json").read_text()) for lv in range(3)]
    assert [s["level"] for s in searches] == [0, 1, 2] and not (out / "level_03" / "early_bird.json").exists()
    for s in searches:
        lv = s["level"]
        ticket = TicketMask.from_pretrained(out / f"level_{lv + 1:02d}" / "ticket")
        # exact counts, monotone, and the search's record of which step gave the mask
        assert ticket.num_pruned == target_count(0.1 * (lv + 1), TINY_PRUNABLE)
        assert ticket.metadata.parent_level == lv and ticket.metadata.extra["early_bird"]["step"] == s["mask_step"]
        if lv > 0:
            parent = TicketMask.from_pretrained(out / f"level_{lv:02d}" / "ticket")
            assert all(bool((ticket.masks[n] <= parent.masks[n]).all()) for n in ticket.masks)
        # the rule (a queue of 2 masks): the search stopped at the first draw within 0.5 of the one before
        steps = [int(step) for step, _ in s["distances"]]
        assert steps == list(range(4, s["stopped_at_step"] + 1, 2))  # a draw every 2 steps, the first compared at step 4
        fired = next((st for st, d in s["distances"] if d <= 0.5), None)
        assert s["converged_at_step"] == fired
        if fired is not None:
            assert s["stopped_at_step"] == fired < 40 and s["mask_step"] == fired
        else:
            assert s["stopped_at_step"] == 40
        # the search is one seed's training, in its own directory (not a judged seed's)
        assert (out / f"level_{lv:02d}" / "early_bird").is_dir()
        assert s["steps"] == s["stopped_at_step"] and s["seed"] == 1
        # the ticket's cost record sums the searches of its lineage only
        assert ticket.metadata.cost["train_steps"] == sum(x["steps"] for x in searches[: lv + 1])
    # judging: dense, then the bisection over levels 1..3 (2 first, then 3 or 1)
    judged = sorted(r["level"] for r in summary["levels"])
    assert eb["judged_levels"][0] == 2 and len(eb["judged_levels"]) == 2 and judged == sorted([0, *eb["judged_levels"]])
    for lv in range(4):
        assert (out / f"level_{lv:02d}" / "metrics.json").is_file() == (lv in judged)
    for lv in judged:  # judged = full fine-tunes with every seed
        for seed in (1, 2):
            assert _last_step(out / f"level_{lv:02d}" / f"seed_{seed}" / "log_history.json") == 40
    cost = eb["cost"]
    assert cost["search_steps"] == sum(s["steps"] for s in searches)
    assert cost["judging_steps"] == 40 * 2 * len(judged)
    assert cost["total_examples"] == 8 * (cost["search_steps"] + cost["judging_steps"]) and cost["global_batch_size"] == 8
    rows = {r["level"]: r for r in summary["levels"]}
    on_path = [lv for lv in eb["judged_levels"] if rows[lv]["matching"]]
    assert eb["highest_matching_level_on_bisection_path"] == max(on_path, default=0)

    # resume: searches and judged levels are all skipped
    stamps = {p: p.stat().st_mtime_ns for p in [*out.glob("level_*/metrics.json"), *out.glob("level_*/early_bird.json")]}
    assert find(inputs, out, "--max_levels", "3", "--seeds", "1", "2", *options) == 0
    err = capsys.readouterr().err
    assert "early-bird search already complete: skipped" in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # other early-bird options are another run (the hash changed)
    assert find(inputs, out, "--max_levels", "3", "--seeds", "1", "2", "--early_bird", "--early_bird_options", "interval=3") == 2
    assert "other hyperparameters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--early_bird", "--schedule", "adaptive"], "--early_bird draws magnitude masks on a fixed schedule"),
        (["--early_bird", "--criterion", "random"], "--early_bird draws magnitude masks on a fixed schedule"),
        (["--early_bird_options", "interval=2"], "--early_bird_options needs --early_bird"),
        (["--early_bird", "--early_bird_options", "window=1"], "early-bird window must be an integer >= 2"),
        (["--early_bird", "--early_bird_options", "patience=3"], "has no option 'patience'"),
        (["--early_bird", "--keep_trained_head"], "cannot keep their trained heads"),
    ],
)
def test_bad_early_bird_arguments_fail_before_any_work(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert find(inputs, out, "--max_levels", "2", *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
