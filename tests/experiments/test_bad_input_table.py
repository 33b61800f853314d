"""Every case of the bad-input table (scripts/bad_input_table.py, docs/reliability.md; issue 23):
over every command, each bad input is one line on stderr (``bert-tickets CMD: error: …``), exit
status 2, no traceback, and nothing under the inputs' directory changed (no half-made output
directory, no file of an existing run, matrix or export touched)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bad_input_table.py"


def _table():
    spec = importlib.util.spec_from_file_location("bad_input_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    module = _table()
    inputs = module.make_inputs(tmp_path_factory.mktemp("table"))
    return module, inputs


def test_the_table_covers_every_command_with_at_least_120_cases(table):
    from bert_tickets.cli import COMMANDS

    module, inputs = table
    found = module.cases(inputs)
    assert len(found) >= 120
    assert {command for command, _, _ in found} == set(COMMANDS)
    assert len({(c, what) for c, what, _ in found}) == len(found)  # each case named once


def test_every_case_is_one_line_exit_2_and_changes_nothing(table):
    module, inputs = table
    failures = []
    for command, what, argv in module.cases(inputs):
        before = module.tree(inputs["root"])
        rc, lines, err = module.run_case(argv)
        changed = module.tree(inputs["root"]) != before
        ok = rc == 2 and len(lines) == 1 and lines[0].startswith(f"bert-tickets {command}: error: ") and "Traceback" not in err
        if not ok or changed:
            failures.append(f"{command} / {what}: exit {rc}, lines {lines}, changed {changed}")
    assert not failures, "\n".join(failures)
