"""Run directories and tickets written before the layering (commit 9d89cf2, the committed
fixture ``tests/fixtures/v0_1_run``: ``find --task rte --model ckpt --data_dir glue
--max_levels 2 ...`` on the tiny inputs of :func:`tiny_assets.write_imp_inputs`) stay readable:
``info``, resume and ``push --save-dir`` work on them, the run hash is unchanged, and today's
code reproduces their masks exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bert_tickets.cli import main, parse_find_args
from bert_tickets.experiments.imp import run_hyperparameters
from bert_tickets.results import hyperparameter_hash, read_run
from bert_tickets.ticket import TicketMask

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"
ARGS = [
    "--task",
    "rte",
    "--model",
    "ckpt",
    "--data_dir",
    "glue",
    *IMP_TRAIN_ARGS,
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A copy of the fixture as ``run`` next to freshly built ``ckpt`` and ``glue``; cwd = there."""
    write_imp_inputs(tmp_path)
    shutil.copytree(FIXTURE, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def untimed(metrics: dict) -> dict:
    """Metrics without the wall-clock ones (``*_runtime``, ``*_per_second``)."""
    return {k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k}


def same_masks(a: TicketMask, b: TicketMask) -> bool:
    return a.masks.keys() == b.masks.keys() and all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)


def test_info_reads_the_old_run_and_ticket(capsys):
    assert main(["info", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "hash 21c56742ca4a" in out and "highest matching sparsity on rte: 0.2000" in out
    assert main(["info", str(FIXTURE / "level_02")]) == 0
    out = capsys.readouterr().out
    assert "level: 2" in out and "3,482 of 17,408 prunable weights pruned" in out
    run = read_run(FIXTURE)
    assert sorted(run.levels) == [0, 1, 2] and run.best_matching_level() == 2


def test_the_same_arguments_are_the_same_run(workdir):
    """Today's hash differs from v0.1's by design (resolved paths, the weights' sha256 as a local
    checkpoint's revision, the global batch instead of the per-device one), but the run
    recorded by v0.1 compares equal to the same arguments, so it is continued, not refused."""
    from bert_tickets.results.record import changed_hyperparameters

    args = parse_find_args([*ARGS, "--output_dir", "run"])
    old = json.loads((FIXTURE / "run_config.json").read_text())
    new = run_hyperparameters(*args)
    assert hyperparameter_hash(new) != old["hash"]
    assert changed_hyperparameters(old["hyperparameters"], new) == []
    assert changed_hyperparameters(old["hyperparameters"], run_hyperparameters(*parse_find_args([*ARGS, "--learning_rate", "0.5"]))) == [
        "training.learning_rate"
    ]


def test_resume_extends_the_old_run_and_matches_a_fresh_run(workdir, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in (workdir / "run").glob("level_0[0-2]/metrics.json")}
    assert main(["find", *ARGS, "--output_dir", "run", "--max_levels", "3"]) == 0
    assert "already complete: skipped" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # levels 0-2 not re-run
    resumed = json.loads((workdir / "run" / "level_03" / "metrics.json").read_text())

    # A fresh run with today's code: the same masks (old levels 1-3 included) and level-3 metrics.
    assert main(["find", *ARGS, "--output_dir", "fresh", "--max_levels", "3"]) == 0
    for level in (1, 2, 3):
        old = TicketMask.from_pretrained(workdir / "run" / f"level_{level:02d}" / "ticket")
        new = TicketMask.from_pretrained(workdir / "fresh" / f"level_{level:02d}" / "ticket")
        assert same_masks(old, new), level
    fresh = json.loads((workdir / "fresh" / "level_03" / "metrics.json").read_text())
    assert untimed(fresh["per_seed"]["42"]) == untimed(resumed["per_seed"]["42"])
    for level in (0, 1, 2):  # every metric of the old run, to the last digit
        old = json.loads((FIXTURE / f"level_{level:02d}" / "metrics.json").read_text())["per_seed"]["42"]
        new = json.loads((workdir / "fresh" / f"level_{level:02d}" / "metrics.json").read_text())["per_seed"]["42"]
        # issue 20 added the prediction spread; every metric the old run has is unchanged
        assert set(untimed(new)) - set(untimed(old)) == {"majority_share", "near_constant"}, level
        assert {k: untimed(new)[k] for k in untimed(old)} == untimed(old) and "loss" in untimed(new), level


def test_push_save_dir_from_the_old_run(workdir, capsys):
    save = workdir / "upload"
    assert main(["push", "run", "--repo-id", "alice/tiny-rte-ticket", "--base-model-id", "alice/tiny-bert", "--save-dir", str(save)]) == 0
    printed = capsys.readouterr().out
    assert "alice/tiny-rte-ticket" in printed and "sparsity-20" in printed
    assert sorted(p.name for p in save.iterdir()) == ["main", "sparsity-20"]
    pushed = TicketMask.from_pretrained(save / "main")
    assert same_masks(pushed, TicketMask.from_pretrained(FIXTURE / "level_02" / "ticket"))
    ev = pushed.metadata.extra["evaluation"]
    assert ev["value"] == 0.5 and ev["dense_value"] == 0.5 and ev["matching"] is True
    assert pushed.metadata.base_model == "alice/tiny-bert" and pushed.metadata.extra["base_model_source"]["base_model"] == "ckpt"
    assert (save / "main" / "README.md").read_text().count("bert-tickets find") >= 1
