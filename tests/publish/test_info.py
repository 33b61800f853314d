"""``bert-tickets info RUN``: a short summary by default, every ticket's per-tensor sparsity with
``--verbose``, and a level whose ``metrics.json`` is corrupt marked ``unreadable`` (exit 0)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bert_tickets.cli import main
from bert_tickets.publish.info import describe_ticket
from bert_tickets.results import format_summary
from bert_tickets.ticket import TicketMask

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(FIXTURE, out)
    return out


def _info(capsys, *argv):
    assert main(["info", *map(str, argv)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.rstrip("\n").splitlines()


def test_a_run_is_summed_up_short_and_in_full_with_verbose(run, capsys):
    summary = json.loads((run / "summary.json").read_text())
    tickets = sorted(run.glob("level_*/ticket"))
    names = list(TicketMask.from_pretrained(tickets[0]).masks)
    assert len(summary["levels"]) == 3 and len(tickets) == 4 and len(names) == 13
    table = format_summary(summary).splitlines()
    assert len(table) == 1 + 3 + 2  # header, a row per level, the matching rule, the highest matching sparsity

    short = _info(capsys, run)
    # run/schedule, task/θ0, the table, the best matching level, where the details are
    assert len(short) == 2 + len(table) + 2
    assert short[1] == "task rte; θ0 ckpt (revision main)"
    assert short[2 : 2 + len(table)] == table
    assert short[-2] == f"best matching level: 2 (sparsity {summary['levels'][2]['sparsity']:.4f}): {run / 'level_02' / 'ticket'}"
    assert short[-1].endswith(f"bert-tickets info {run} --verbose")
    assert not any(n in line for line in short for n in names)  # no per-tensor detail

    verbose = _info(capsys, run, "--verbose")
    assert verbose[: len(short) - 1] == short[:-1]
    details = sum(1 + len(describe_ticket(t).splitlines()) for t in tickets)  # a blank line and each ticket
    assert len(verbose) == len(short) - 1 + details
    tensor_rows = [line for line in verbose if line.split() and line.split()[0] in names]
    assert len(tensor_rows) == len(tickets) * len(names)


def test_a_corrupt_level_is_marked_unreadable_and_the_rest_is_shown(run, capsys):
    metrics = run / "level_01" / "metrics.json"
    metrics.write_text('{"result": {"level": 1, ')  # cut short, as by a full disk
    short = _info(capsys, run)
    marked = [line for line in short if "unreadable" in line]
    assert len(marked) == 1
    assert marked[0].startswith(f"level 1: unreadable: {metrics}: corrupt (not valid JSON")
    assert "re-train that level" in marked[0]
    assert "best matching level: 2" in short[-2]  # the rest is still there
    # the level's own ticket says it too
    level = _info(capsys, run / "level_01")
    marked = [line.strip() for line in level if "unreadable" in line]
    assert len(marked) == 1 and marked[0].startswith(f"dev metrics: unreadable: {metrics}: corrupt (not valid JSON")
    assert sum("unreadable" in line for line in _info(capsys, run, "--verbose")) == 2  # the run's mark and the ticket's


def test_an_unfinished_run_lists_its_complete_levels(run, capsys):
    (run / "summary.json").unlink()
    short = _info(capsys, run)
    rows = [line.split() for line in short if line.split() and line.split()[0].isdigit()]
    expected = [json.loads((run / f"level_{lv:02d}" / "metrics.json").read_text())["result"] for lv in range(3)]
    assert [(int(r[0]), float(r[1]), float(r[2])) for r in rows] == [
        (e["level"], round(e["sparsity"], 4), round(e["mean"], 4)) for e in expected
    ]
    assert "the run has not finished" in "\n".join(short)


def test_a_corrupt_summary_is_marked_and_the_levels_are_listed(run, capsys):
    (run / "summary.json").write_text('{"levels": [')
    short = _info(capsys, run)
    assert [line for line in short if "unreadable" in line] == [
        next(line for line in short if line.startswith(f"summary: unreadable: {run / 'summary.json'}: corrupt (not valid JSON"))
    ]
    assert sum(1 for line in short if line.split() and line.split()[0].isdigit()) == 3  # the complete levels' rows
