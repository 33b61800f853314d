"""The run-directory lock: a second run refuses with the holder's pid and host; a holder killed
with SIGKILL leaves no stale lock; release leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from bert_tickets.results import RunLock, RunLockedError, RunPaths

HOLD = textwrap.dedent(
    """
    import sys, time
    from bert_tickets.results import RunLock
    lock = RunLock(sys.argv[1]).acquire()  # kept referenced: a collected FileLock releases itself
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock on tmp_path / 'run' until killed with SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_holder_is_refused_with_pid_and_host(holder, tmp_path):
    with pytest.raises(RunLockedError) as err:
        RunLock(tmp_path / "run").acquire()
    message = str(err.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message and "use another --output_dir" in message
    assert "\n" not in message


def test_find_refuses_a_held_directory_before_any_work(holder, tmp_path, capsys):
    from bert_tickets.cli import main

    from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(tmp_path / "run"), *IMP_TRAIN_ARGS]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("bert-tickets find: error:") and f"pid {holder.pid}" in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([RunPaths("x").lock_file.name, RunPaths("x").lock_holder.name])


def test_a_killed_holder_leaves_no_stale_lock(holder, tmp_path):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    paths = RunPaths(tmp_path / "run")
    assert paths.lock_file.exists() and paths.lock_holder.exists()  # left behind by the dead process
    with RunLock(tmp_path / "run") as lock:
        assert lock.holder()["pid"] == os.getpid()
    assert not paths.lock_file.exists() and not paths.lock_holder.exists()


def test_release_removes_a_directory_it_created_when_still_empty(tmp_path):
    with RunLock(tmp_path / "new"):
        assert (tmp_path / "new").is_dir()
    assert not (tmp_path / "new").exists()
    with RunLock(tmp_path / "kept"):
        (tmp_path / "kept" / "run_config.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["run_config.json"]
    RunLock(tmp_path / "off", enabled=False).acquire()  # other ranks: nothing happens
    assert not (tmp_path / "off").exists()
