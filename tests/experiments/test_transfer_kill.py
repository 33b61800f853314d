"""Issue 23: ``transfer`` killed with SIGKILL in the middle of a cell (its own process, local and
on Ray) and re-run gives the same matrix as an uninterrupted run: complete cells are skipped,
the interrupted one is run again from its start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bert_tickets.cli import main

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


def _env() -> dict[str, str]:
    """This process's environment now (after ``ray.init``, which sets what a driver needs to join
    its cluster), one thread per process (every run the same arithmetic)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    ckpt, glue = write_imp_inputs(root / "in")
    run = root / "run"
    assert (
        main(
            [
                "find",
                "--task",
                "rte",
                "--model",
                str(ckpt),
                "--data_dir",
                str(glue),
                "--output_dir",
                str(run),
                "--max_levels",
                "1",
                *IMP_TRAIN_ARGS,
            ]
        )
        == 0
    )
    return root, ckpt, glue, run


def _argv(source, out: Path, *extra: str) -> list[str]:
    root, ckpt, glue, run = source
    return [
        *(sys.executable, "-m", "bert_tickets.cli", "transfer", "--tickets", str(run), "--tasks", "rte", "--sparsity", "0.1"),
        *("--baselines", "dense", "random", "--seeds", "1", "2", "--model", str(ckpt), "--data_dir", str(glue)),
        *("--output_dir", str(out), *IMP_TRAIN_ARGS, "--num_train_epochs", "6", *extra),
    ]


def _kill_mid_cell(argv: list[str], out: Path, timeout: float = 240) -> set[str]:
    """Start ``argv``; once one cell is complete and another has started (its ``cell.json`` is
    written before it trains, its ``result.json`` last), SIGKILL the process group. Returns the
    ids of the cells it left started but not complete."""
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            cells = [p for p in (out / "cells").glob("*") if p.is_dir()]
            started = {p.name for p in cells if (p / "cell.json").is_file() and not (p / "result.json").is_file()}
            if started and any((p / "result.json").is_file() for p in cells):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return started
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    raise AssertionError(f"transfer ended (rc {proc.returncode}) before it could be killed mid-cell")


def _entries(out: Path) -> dict:
    return json.loads((out / "matrix.json").read_text())["entries"]


def _values(out: Path) -> dict[str, float]:
    return {p.parent.name: json.loads(p.read_text())["value"] for p in (out / "cells").glob("*/result.json")}


@pytest.fixture(scope="module")
def uninterrupted(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "matrix"
    subprocess.run(_argv(source, out), env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert len(_values(out)) == 6
    return out


def test_kill_9_mid_cell_then_rerun_gives_the_uninterrupted_matrix(source, uninterrupted, tmp_path):
    out = tmp_path / "matrix"
    argv = _argv(source, out)
    started = _kill_mid_cell(argv, out)
    assert started and all(not (out / "cells" / c / "result.json").exists() for c in started)
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _values(out) == _values(uninterrupted)
    assert _entries(out) == _entries(uninterrupted)


def test_kill_9_of_the_ray_driver_mid_cell_then_rerun_gives_the_uninterrupted_matrix(source, uninterrupted, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        out = tmp_path / "matrix"
        argv = _argv(source, out, "--executor", "ray", "--ray_address", address)
        started = _kill_mid_cell(argv, out)
        assert started
        done = subprocess.run(argv, env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        ray.shutdown()
    assert _values(out) == _values(uninterrupted)
    assert _entries(out) == _entries(uninterrupted)
