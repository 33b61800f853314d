"""Issue 23, the directories' integrity: every directory says what it is and no command writes
into another kind's; a corrupt or truncated file is one line naming it when it is read, and a
resume re-creates it (re-training the level / re-running the cell that wrote it) instead of
calling the work complete."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bert_tickets.cli import main
from bert_tickets.results import directory_kind

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("bert-tickets")]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A complete 2-level find run that kept its trained weights, and a transfer matrix (ticket
    and dense rows, one seed) that kept its cells' weights."""
    root = tmp_path_factory.mktemp("integrity")
    ckpt, glue = write_imp_inputs(root / "in")
    find = ["find", "--task", "rte", "--model", ckpt, "--data_dir", glue, "--max_levels", "2", "--save_trained", "true", *IMP_TRAIN_ARGS]
    assert _run([*find, "--output_dir", root / "run"])[0] == 0
    transfer = [
        *("transfer", "--tickets", root / "run", "--tasks", "rte", "--sparsity", "0.1", "--baselines", "dense", "--seeds", "3"),
        *("--model", ckpt, "--data_dir", glue, "--save_trained", "true", *IMP_TRAIN_ARGS),
    ]
    assert _run([*transfer, "--output_dir", root / "matrix"])[0] == 0
    return root, find, transfer


def _copy(made, name: str, src: str) -> Path:
    root = made[0]
    out = root / "copies" / name
    shutil.copytree(root / src, out)
    return out


# ------------------------------------------------------------------------ run-kind markers
def test_each_directory_records_its_kind(made):
    root = made[0]
    assert json.loads((root / "run" / "run_config.json").read_text())["kind"] == "run"
    assert json.loads((root / "matrix" / "transfer_config.json").read_text())["kind"] == "matrix"
    assert directory_kind(root / "run")[0] == "run" and directory_kind(root / "matrix")[0] == "matrix"
    assert directory_kind(root / "run" / "level_01" / "ticket")[0] == "ticket"
    assert directory_kind(root / "nowhere") is None and directory_kind(root / "in") is None


@pytest.mark.parametrize(
    "command, target, other",
    [
        ("transfer", "run", "a find run directory (run_config.json), not a transfer matrix directory"),
        ("find", "matrix", "a transfer matrix directory (transfer_config.json), not a find run directory"),
        ("prune-at-init", "run", "a find run directory (run_config.json), not a prune-at-init directory"),
        ("prune-at-init", "matrix", "a transfer matrix directory (transfer_config.json), not a prune-at-init directory"),
        ("find", "ticket", "a ticket directory (ticket_config.json), not a find run directory"),
    ],
)
def test_a_command_refuses_another_kinds_directory(made, command, target, other):
    root, find, transfer = made
    out = _copy(made, f"{command}-into-{target}", "run/level_01/ticket" if target == "ticket" else target)
    before = _tree(out)
    argv = {
        "find": find,
        "transfer": transfer,
        "prune-at-init": ["prune-at-init", "--task", "rte", "--model", find[4], "--data_dir", find[6], "--criterion", "magnitude"]
        + ["--sparsity", "0.5", "--no_finetune", "true", *IMP_TRAIN_ARGS],
    }[command]
    rc, err = _run([*argv, "--output_dir", out])
    assert rc == 2 and _error_lines(err) == [f"bert-tickets {command}: error: --output_dir {out} is {other}; use another --output_dir"]
    assert _tree(out) == before


def test_directories_written_before_the_markers_are_recognised_by_their_files(made):
    root, find, transfer = made
    old_run = _copy(made, "old-run", "run")
    cfg = json.loads((old_run / "run_config.json").read_text())
    del cfg["kind"]
    (old_run / "run_config.json").write_text(json.dumps(cfg))
    old_matrix = _copy(made, "old-matrix", "matrix")
    cfg = json.loads((old_matrix / "transfer_config.json").read_text())
    del cfg["kind"]
    (old_matrix / "transfer_config.json").write_text(json.dumps(cfg))
    assert directory_kind(old_run)[0] == "run" and directory_kind(old_matrix)[0] == "matrix"
    assert _run([*transfer, "--output_dir", old_run])[0] == 2
    assert _run([*find, "--output_dir", old_matrix])[0] == 2
    rc, err = _run([*find, "--output_dir", old_run])  # its own kind: resumes (complete)
    assert rc == 0 and "level 2 (sparsity 0.2000) already complete: skipped" in err


def test_an_export_records_its_kind_and_find_refuses_it(made, tmp_path):
    root, find, _ = made
    out = tmp_path / "exported"
    assert _run(["export", root / "run", "--level", "1", "--output_dir", out])[0] == 0
    marker = json.loads((out / "config.json").read_text())["bert_tickets"]
    assert marker["kind"] == "export" and marker["level"] == 1 and marker["run"] == str((root / "run").resolve())
    before = _tree(out)
    rc, err = _run([*find, "--output_dir", out])
    assert rc == 2 and "is an exported checkpoint (bert-tickets export) (config.json), not a find run directory" in err
    assert _tree(out) == before


# ------------------------------------------------------------------------ corrupt files, read
def _truncate(path: Path, keep: int = 1000) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("command", ["stability --successive", "export --level 1"])
def test_a_truncated_trained_model_is_one_line_naming_it(made, tmp_path, command):
    run = _copy(made, f"trunc-{command.split()[0]}", "run")
    weights = run / "level_01" / "trained_model.safetensors"
    _truncate(weights)
    before = _tree(run)
    extra = ["--output_dir", tmp_path / "x"] if command.startswith("export") else []
    name, *flags = command.split()
    rc, err = _run([name, run, *flags, *extra])
    lines = _error_lines(err)
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"bert-tickets {name}: error: {weights} is corrupt (") and "re-run the same find command" in lines[0]
    assert _tree(run) == before and not (tmp_path / "x").exists()


def test_export_of_a_corrupt_cell_is_one_line_saying_what_to_do(made, tmp_path):
    matrix = _copy(made, "corrupt-cell-export", "matrix")
    cell = next(p for p in sorted((matrix / "cells").iterdir()) if (p / "trained_model.safetensors").is_file())
    (cell / "result.json").write_text("{oops")
    rc, err = _run(["export", matrix, "--cell", cell.name, "--output_dir", tmp_path / "x"])
    lines = _error_lines(err)
    assert rc == 2 and len(lines) == 1
    assert f"{cell / 'result.json'} is corrupt (not valid JSON" in lines[0] and f"delete {cell} and re-run" in lines[0]


# ------------------------------------------------------------------------ corrupt files, resumed
def _metrics(run: Path) -> dict[int, dict]:
    return {lv: json.loads((run / f"level_{lv:02d}" / "metrics.json").read_text())["result"] for lv in (0, 1, 2)}


def _same_level_metrics(a: dict, b: dict) -> bool:
    keep = ("level", "sparsity", "num_pruned", "mean", "per_seed")
    return all({k: a[lv][k] for k in keep} == {k: b[lv][k] for k in keep} for lv in a)


@pytest.mark.parametrize(
    "damage, retrained",
    [
        ("level_01/trained_model.safetensors", 1),
        ("level_01/metrics.json", 1),
        ("level_02/ticket/ticket_mask.safetensors", 1),
        ("level_00/ticket/ticket_config.json", 0),
    ],
)
def test_find_resume_retrains_the_level_whose_file_is_corrupt(made, damage, retrained):
    root, find, _ = made
    run = _copy(made, "resume-" + damage.replace("/", "-"), "run")
    reference = _tree(root / "run")
    path = run / damage
    if path.suffix == ".json":
        path.write_text("{oops")
    else:
        _truncate(path, 100)
    rc, err = _run([*find, "--output_dir", run])
    assert rc == 0, err
    skipped = {lv for lv in (0, 1, 2) if f"level {lv} (sparsity {0.1 * lv:.4f}) already complete: skipped" in err}
    assert skipped == {0, 1, 2} - {retrained}
    assert f"level {retrained}" in err and str(path) in err and "re-training the level" in err
    assert _same_level_metrics(_metrics(run), _metrics(root / "run"))
    after = _tree(run)
    for name in (
        "level_01/ticket/ticket_mask.safetensors",
        "level_02/ticket/ticket_mask.safetensors",
        "level_00/ticket/ticket_config.json",
    ):
        if damage.endswith(name.split("/")[-1]) or name == damage:
            assert after[name] == reference[name]  # re-created byte for byte
    ref_w, new_w = (load_file(r / "level_01" / "trained_model.safetensors") for r in (root / "run", run))
    assert ref_w.keys() == new_w.keys() and all((ref_w[k] == new_w[k]).all() for k in ref_w)


def test_find_resume_recreates_a_corrupt_initial_head_and_summary_without_training(made):
    root, find, _ = made
    run = _copy(made, "resume-head", "run")
    head = next(run.glob("initial_head_seed*.safetensors"))
    _truncate(head, 50)
    (run / "summary.json").write_text("{oops")
    rc, err = _run([*find, "--output_dir", run])
    assert rc == 0 and err.count("already complete: skipped") == 3
    assert f"{head}: " in err and "re-creating it from θ0" in err
    assert head.read_bytes() == (root / "run" / head.name).read_bytes()
    assert json.loads((run / "summary.json").read_text())["levels"] == json.loads((root / "run" / "summary.json").read_text())["levels"]


@pytest.mark.parametrize("damage", ["result.json", "trained_model.safetensors"])
def test_transfer_resume_reruns_a_corrupt_cell(made, damage):
    root, _, transfer = made
    matrix = _copy(made, f"resume-cell-{damage}", "matrix")
    cells = sorted((matrix / "cells").iterdir())
    victim = cells[0] / damage
    if damage.endswith(".json"):
        victim.write_text("{oops")
    else:
        _truncate(victim, 2000)
    rc, err = _run([*transfer, "--output_dir", matrix])
    assert rc == 0, err
    assert f"cell {cells[0].name}: {victim}" in err and "re-running the cell" in err
    assert err.count("re-running the cell") == 1  # the intact cells were skipped
    ref = json.loads((root / "matrix" / "matrix.json").read_text())
    assert json.loads((matrix / "matrix.json").read_text())["entries"] == ref["entries"]
    assert (
        json.loads(victim.parent.joinpath("result.json").read_text())["value"]
        == json.loads((root / "matrix" / "cells" / cells[0].name / "result.json").read_text())["value"]
    )
