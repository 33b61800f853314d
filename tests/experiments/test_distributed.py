"""Data-parallel `find` (issue 12, item 6): a real two-process CPU launch (torchrun, gloo) logs
once, records its world size and global batch, checks that every rank pruned the same mask; a
one-process re-run continues it at the same global batch and is refused at another."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch.multiprocessing as mp

from bert_tickets.cli import main

from tiny_assets import write_imp_inputs

ARGS = "--num_train_epochs 1 --use_cpu true --disable_tqdm true --max_seq_length 16 --max_levels 2".split()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_find_logs_once_records_world_size_and_checks_masks(tmp_path, capsys):
    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    out = tmp_path / "run"
    common = ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *ARGS]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launch, "-m", "bert_tickets.cli", "find", *common, "--per_device_train_batch_size", "4", "--ddp_backend", "gloo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = proc.stdout + proc.stderr
    for level in (0, 1, 2):
        assert logged.count(f"bert-tickets: level {level} |") == 1, logged[-3000:]  # rank 0 only
    assert logged.count("highest matching sparsity") + logged.count("dense did not learn") == 1  # one summary
    config = json.loads((out / "run_config.json").read_text())
    assert config["launch"] == {
        "world_size": 2,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "global_train_batch_size": 8,
    }
    assert config["hyperparameters"]["training"]["global_train_batch_size"] == 8
    assert "per_device_train_batch_size" not in config["hyperparameters"]["training"]

    # one process, the same global batch (8): the same run, every level already complete
    capsys.readouterr()
    assert main(["find", *common, "--per_device_train_batch_size", "8"]) == 0
    assert "already complete: skipped" in capsys.readouterr().err
    # one process at the two-process run's per-device batch: another global batch, refused
    assert main(["find", *common, "--per_device_train_batch_size", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "training.global_train_batch_size" in err and "other hyperparameters" in err


def _rank(rank, port, values, errors):
    import torch.distributed as dist

    from bert_tickets.training.distributed import check_same_on_all_ranks

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        check_same_on_all_ranks("same", "a test value")  # agree: passes
        try:
            check_same_on_all_ranks(values[rank], "the level-1 mask")
        except RuntimeError as err:
            errors.put(str(err))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def test_ranks_that_disagree_stop_the_run():
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    mp.spawn(_rank, args=(_port(), ["aaaa", "bbbb"], errors), nprocs=2, join=True)
    got = sorted(errors.get(timeout=30) for _ in range(2))
    assert all("the level-1 mask differs across ranks (rank 0: aaaa, rank 1: bbbb)" in g for g in got)


def test_one_process_is_a_no_op():
    from bert_tickets.training.distributed import check_same_on_all_ranks, process_rank

    check_same_on_all_ranks("x", "anything")
    assert process_rank() == int(os.environ.get("RANK", "0"))


@pytest.fixture(autouse=True)
def _no_rank_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
