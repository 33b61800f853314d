"""Bad input to `find` (issue 12, item 7): one line on stderr, exit status 2, and nothing on disk
changed -- no half-made run directory, no file of an existing run touched."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from bert_tickets.cli import main

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    ckpt, glue = write_imp_inputs(root)
    run = root / "done"
    assert _find(ckpt, glue, run) == 0  # a finished one-level run to resume
    return root, ckpt, glue, run


def _find(ckpt, glue, out, *extra):
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), "--max_levels", "1"]
    return main([*argv, *IMP_TRAIN_ARGS, *extra])


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    last = err[-1]
    assert last.startswith("bert-tickets find: error: ") and "Traceback" not in "\n".join(err)
    for needle in needles:
        assert needle in last, last
    return last


def test_bad_data_and_options_leave_nothing_behind(inputs, tmp_path, capsys):
    root, ckpt, glue, _ = inputs
    empty = tmp_path / "glue_empty"
    shutil.copytree(glue, empty)
    (empty / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty_model").mkdir()
    before = _tree(tmp_path)
    cases = [
        ((ckpt, empty, tmp_path / "o1"), (), ("train.tsv", "no examples")),
        ((ckpt, glue, tmp_path / "o2"), ("--max_train_samples", "0"), ("--max_train_samples must be a positive number, got 0",)),
        ((ckpt, glue, tmp_path / "o3"), ("--max_train_samples", "-3"), ("got -3",)),
        ((ckpt, glue, tmp_path / "o4"), ("--max_eval_samples", "0"), ("--max_eval_samples",)),
        ((ckpt, glue, tmp_path / "a_file"), (), ("a_file is a file, not a directory",)),
        ((ckpt, glue, tmp_path / "a_file" / "run"), (), ("a_file is a file, so the directory cannot be created",)),
        ((tmp_path / "empty_model", glue, tmp_path / "o5"), (), ("without config.json is not a transformers checkpoint",)),
    ]
    for (model, data, out), extra, needles in cases:
        assert _find(model, data, out, *extra) == 2, needles
        _one_line_error(capsys, *needles)
        assert _tree(tmp_path) == before and not any(tmp_path.glob("o*")), needles


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc as a filesystem nobody can write")
def test_an_unwritable_output_dir(inputs, capsys):
    root, ckpt, glue, _ = inputs
    assert _find(ckpt, glue, "/proc/bert-tickets-test/run") == 2
    _one_line_error(capsys, "--output_dir /proc/bert-tickets-test/run: cannot write in /proc")


@pytest.mark.parametrize("corrupt, needles", [("run_config.json", ("run_config.json is corrupt",))])
def test_a_corrupt_file_found_on_resume_is_named(inputs, tmp_path, capsys, corrupt, needles):
    """A corrupt run_config.json (what the directory holds) stops a resume with one line. (A
    corrupt level file is re-created instead: tests/experiments/test_run_integrity.py.)"""
    root, ckpt, glue, run = inputs
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / corrupt
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated, as by a full disk
    before = _tree(copy)
    assert _find(ckpt, glue, copy) == 2
    _one_line_error(capsys, *needles)
    assert _tree(copy) == before
    rc = main(["info", str(copy)])  # info shows what it can read, or names the file
    err = capsys.readouterr().err
    assert rc == 0 or (rc == 2 and corrupt.split("/")[-1] in err and err.count("\n") == 1)


def test_ctrl_c_says_how_to_resume_and_frees_the_directory(inputs, tmp_path, capsys, monkeypatch):
    root, ckpt, glue, run = inputs
    from bert_tickets.experiments import imp

    real = imp.IMPRunner.run

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(imp.IMPRunner, "run", interrupted)
    assert _find(ckpt, glue, tmp_path / "run") == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "bert-tickets find: interrupted — re-run the same command to resume"
    monkeypatch.setattr(imp.IMPRunner, "run", real)
    assert _find(ckpt, glue, tmp_path / "run") == 0  # the lock was released; the re-run completes
