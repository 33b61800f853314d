"""Files and directories follow the umask (issue 23, item 4): the initial head, every
``trained_model.safetensors`` (of a run and of a transfer cell), the exported checkpoint and its
directory get the modes ``open`` and ``mkdir`` give (umask 022: files 0644, directories 0755),
not the 0600 / 0700 of a temporary file or of safetensors' own temporary file."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from bert_tickets._io import atomic_write_dir, save_tensors
from bert_tickets.cli import main

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_tensors_and_a_directory_written_as_a_unit_follow_the_umask(tmp_path, umask_022):
    save_tensors(tmp_path / "w.safetensors", {"a": torch.zeros(3)})
    assert _mode(tmp_path / "w.safetensors") == 0o644

    from safetensors.torch import save_file

    def write(tmp):
        save_file({"a": torch.zeros(2)}, str(tmp / "model.safetensors"))  # written 0600 by safetensors
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "x.txt").write_text("x")

    atomic_write_dir(tmp_path / "out", write)
    assert _mode(tmp_path / "out") == 0o755 and _mode(tmp_path / "out" / "sub") == 0o755
    assert _mode(tmp_path / "out" / "model.safetensors") == 0o644 and _mode(tmp_path / "out" / "sub" / "x.txt") == 0o644
    os.umask(0o077)
    save_tensors(tmp_path / "private.safetensors", {"a": torch.zeros(3)})
    assert _mode(tmp_path / "private.safetensors") == 0o600


def test_run_matrix_and_export_files_follow_the_umask(tmp_path, umask_022):
    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    run = tmp_path / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), "--max_levels", "1"]
    assert main([*argv, *IMP_TRAIN_ARGS, "--save_trained"]) == 0
    weights = [run / "initial_head_seed42.safetensors", *sorted(run.glob("level_*/trained_model.safetensors"))]
    assert len(weights) == 3  # the head, levels 0 and 1
    assert {str(p): _mode(p) for p in weights} == {str(p): 0o644 for p in weights}
    assert {str(p): _mode(p) for p in run.rglob("*") if p.is_file()} == {str(p): 0o644 for p in run.rglob("*") if p.is_file()}

    out = tmp_path / "exported"
    assert main(["export", str(run), "--level", "1", "--output_dir", str(out)]) == 0
    assert _mode(out) == 0o755
    files = {p.name: _mode(p) for p in out.iterdir()}
    assert "model.safetensors" in files and files == {name: 0o644 for name in files}

    matrix = tmp_path / "matrix"
    argv = ["transfer", "--tickets", str(run), "--level", "1", "--tasks", "rte", "--data_dir", str(glue), "--model", str(ckpt)]
    assert main([*argv, "--baselines", "dense", "--output_dir", str(matrix), *IMP_TRAIN_ARGS, "--max_steps", "1", "--save_trained"]) == 0
    kept = sorted(matrix.glob("cells/*/trained_model.safetensors"))
    assert len(kept) == 2 and {_mode(p) for p in kept} == {0o644}
