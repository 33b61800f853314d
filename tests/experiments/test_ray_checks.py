"""``transfer --executor ray`` fails fast instead of hanging (issue 23, item 1): nothing listening
at ``--ray_address`` is one line within seconds, and resources per cell that no node of the
cluster has are refused right after connecting -- one line naming what was asked and what the
cluster has, exit status 2, before anything is written."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from bert_tickets.cli import main

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

# imported at collection, so that Ray's log handler holds the session's stderr, not one test's capture
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_checks")
    ckpt, glue = write_imp_inputs(root)
    run = root / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), "--max_levels", "1"]
    assert main([*argv, *IMP_TRAIN_ARGS]) == 0
    return root, glue, run


def _argv(inputs, out, *extra):
    root, glue, run = inputs
    argv = ["transfer", "--tickets", str(run), "--level", "1", "--tasks", "rte", "--data_dir", str(glue), "--baselines", "dense"]
    return [*argv, "--output_dir", str(out), "--executor", "ray", *IMP_TRAIN_ARGS, "--max_steps", "1", *extra]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def _one_line(capsys) -> str:
    """The error: the last line on stderr and the only one besides progress bars (loading θ0)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert len(err) == 1 and err[0].startswith("bert-tickets transfer: error: "), err
    return err[0]


def test_nothing_listening_at_the_ray_address_fails_fast(inputs, capsys):
    assert not ray.is_initialized()
    root = inputs[0]
    before = _tree(root)
    capsys.readouterr()
    started = time.perf_counter()
    assert main(_argv(inputs, root / "matrix", "--ray_address", "127.0.0.1:1")) == 2
    assert time.perf_counter() - started < 20
    err = _one_line(capsys)
    assert "--ray_address 127.0.0.1:1: no Ray cluster answers there within 5 s" in err
    assert _tree(root) == before and not ray.is_initialized()


def test_resources_no_node_has_are_refused_after_connecting(inputs, capsys):
    root = inputs[0]
    before = _tree(root)
    capsys.readouterr()
    # a local Ray started by the command (this machine's CPUs, no GPU)
    assert main(_argv(inputs, root / "matrix", "--cpus_per_cell", "4096")) == 2
    err = _one_line(capsys)
    assert "--cpus_per_cell 4096 --gpus_per_cell 0: no node of the Ray cluster has that many (its 1 node: " in err
    assert _tree(root) == before and not ray.is_initialized()  # nothing written; the Ray it started is shut down
    # a cluster joined before: 2 CPUs, no GPU
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    capsys.readouterr()
    try:
        for extra, asked in (
            (("--cpus_per_cell", "3"), "--cpus_per_cell 3 --gpus_per_cell 0"),
            (("--gpus_per_cell", "0.5"), "--cpus_per_cell 1 --gpus_per_cell 0.5"),
        ):
            assert main(_argv(inputs, root / "matrix", *extra)) == 2
            assert f"{asked}: no node of the Ray cluster has that many (its 1 node: 2 CPUs, 0 GPUs)" in _one_line(capsys)
            assert _tree(root) == before
        assert ray.is_initialized()  # a session it did not start is left as it was
    finally:
        ray.shutdown()
