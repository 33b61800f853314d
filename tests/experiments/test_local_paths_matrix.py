"""Local paths of ``transfer`` and ``prune-at-init`` as ``find`` has them (issue 23, item 4): the
same command spelled with relative or absolute paths (θ0, data, ticket sources, output) resumes
instead of refusing "changed: base_model" or re-running every cell; a matrix (or ticket) recorded
with paths as typed keeps its spec hash and every cell id; a prune-at-init ticket loads from any
working directory."""

from __future__ import annotations

import json
import os

from transformers import AutoModelForSequenceClassification

from bert_tickets.cli import main
from bert_tickets.experiments import prune_at_init as pai_module
from bert_tickets.experiments import transfer as transfer_module
from bert_tickets.ticket import TicketMask, load_ticket

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

QUICK = [*IMP_TRAIN_ARGS, "--max_steps", "1"]


def _inputs(tmp_path):
    """A tiny θ0, RTE data and a one-level find run under ``tmp_path/inputs``."""
    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    run = tmp_path / "inputs" / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), "--max_levels", "1"]
    assert main([*argv, *IMP_TRAIN_ARGS]) == 0
    return ckpt, glue, run


def _transfer(model, glue, run, out):
    argv = ["transfer", "--tickets", str(run), "--level", "1", "--tasks", "rte", "--model", str(model), "--data_dir", str(glue)]
    return main([*argv, "--baselines", "dense", "random", "--output_dir", str(out), *QUICK])


def _cells(matrix):
    return {p.parent.name: p.stat().st_mtime_ns for p in matrix.glob("cells/*/result.json")}


def test_transfer_resumes_whatever_the_spelling_of_its_paths(tmp_path, monkeypatch, capsys):
    ckpt, glue, run = _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _transfer("inputs/ckpt", "inputs/glue", "inputs/run", "matrix") == 0
    spec = json.loads((tmp_path / "matrix" / "transfer_config.json").read_text())["spec"]
    assert spec["base_model"] == os.path.realpath(ckpt) and spec["data"]["data_dirs"] == {"rte": os.path.realpath(glue)}
    sources = {json.loads(p.read_text())["spec"]["source"] for p in (tmp_path / "matrix").glob("cells/*/cell.json")}
    assert sources == {os.path.realpath(run), ""}  # the ticket row names its run resolved; dense/random none
    cells = _cells(tmp_path / "matrix")
    assert len(cells) == 3  # ticket, dense, random
    # the same matrix from another working directory, every path absolute: resumed, nothing re-run
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _transfer(ckpt, glue, run, tmp_path / "matrix") == 0
    assert "3 cells, 0 to run" in capsys.readouterr().err
    assert _cells(tmp_path / "matrix") == cells


def test_a_matrix_recorded_with_paths_as_typed_keeps_its_cell_ids(tmp_path, monkeypatch, capsys):
    ckpt, glue, run = _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as m:  # the code before paths were resolved: every path as typed
        m.setattr(transfer_module, "_spelling", lambda path, recorded: path, raising=False)
        assert _transfer("inputs/ckpt", "inputs/glue", "inputs/run", "matrix") == 0
    config = json.loads((tmp_path / "matrix" / "transfer_config.json").read_text())
    assert config["spec"]["base_model"] == "inputs/ckpt"
    cells = _cells(tmp_path / "matrix")
    assert len(cells) == 3
    for spelling in ((ckpt, glue, run), ("inputs/ckpt", "inputs/glue", "inputs/run"), ("./inputs/ckpt", "inputs/../inputs/glue", run)):
        capsys.readouterr()
        assert _transfer(*spelling, tmp_path / "matrix") == 0, spelling
        assert "3 cells, 0 to run" in capsys.readouterr().err, spelling
        assert _cells(tmp_path / "matrix") == cells
        assert json.loads((tmp_path / "matrix" / "transfer_config.json").read_text())["hash"] == config["hash"]
    # a new matrix from the same command resolves its paths: other ids, the same results
    assert _transfer("inputs/ckpt", "inputs/glue", "inputs/run", "fresh") == 0
    fresh = _cells(tmp_path / "fresh")
    assert len(fresh) == 3 and not set(fresh) & set(cells)
    values = {json.loads(p.read_text())["value"] for m in ("matrix", "fresh") for p in (tmp_path / m).glob("cells/*/result.json")}
    assert len(values) <= 2  # same cells, same metrics (random and ticket may differ from dense)


def _prune_at_init(model, glue, out, *extra):
    argv = ["prune-at-init", "--task", "rte", "--model", str(model), "--data_dir", str(glue), "--output_dir", str(out)]
    return main([*argv, "--criterion", "magnitude", "--sparsity", "0.5", "--sanity", "none", *QUICK, *extra])


def test_prune_at_init_resumes_with_absolute_paths_and_its_ticket_loads_anywhere(tmp_path, monkeypatch, capsys):
    ckpt, glue, _ = _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _prune_at_init("inputs/ckpt", "inputs/glue", "pai") == 0
    kept = [*(tmp_path / "pai" / "ticket").iterdir(), *(tmp_path / "pai" / "finetune").glob("cells/*/result.json")]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    assert len(stamps) == 4  # mask, config, the ticket and dense cells
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _prune_at_init(ckpt, glue, tmp_path / "pai") == 0
    err = capsys.readouterr().err
    assert "ticket already found" in err and "2 cells, 0 to run" in err
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps
    # its ticket loads from this other directory (θ0 by resolved path, no Hub look-up)
    model = load_ticket(tmp_path / "pai" / "ticket", AutoModelForSequenceClassification, num_labels=2)
    assert TicketMask.from_pretrained(tmp_path / "pai" / "ticket").count_nonzero_pruned(model) == 0


def test_a_prune_at_init_ticket_recorded_with_paths_as_typed_is_reused(tmp_path, monkeypatch, capsys):
    ckpt, glue, _ = _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as m:  # the code before: the mask's spec and the matrix name θ0 as typed
        m.setattr(pai_module, "resolve_model_path", lambda path: path)
        m.setattr(transfer_module, "_spelling", lambda path, recorded: path, raising=False)
        assert _prune_at_init("inputs/ckpt", "inputs/glue", "pai") == 0
    assert TicketMask.from_pretrained(tmp_path / "pai" / "ticket").metadata.extra["prune_at_init"]["base_model"] == "inputs/ckpt"
    cells = _cells(tmp_path / "pai" / "finetune")
    capsys.readouterr()
    assert _prune_at_init(ckpt, glue, tmp_path / "pai") == 0
    err = capsys.readouterr().err
    assert "ticket already found" in err and "2 cells, 0 to run" in err
    assert _cells(tmp_path / "pai" / "finetune") == cells
    # another θ0 is still another mask: refused with one line
    other = tmp_path / "other_ckpt"
    write_imp_inputs(tmp_path / "other")
    os.rename(tmp_path / "other" / "ckpt", other)
    assert _prune_at_init(other, glue, tmp_path / "pai") == 2
    assert "changed: base_model" in capsys.readouterr().err
