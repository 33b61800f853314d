"""``RunLock``: one process at a time in a run directory.

Two ``find`` runs on one ``--output_dir`` would interleave their files (run config from one,
metrics from the other). The lock is ``filelock.FileLock`` on ``.bert-tickets.lock`` inside the
run directory (:attr:`RunPaths.lock_file`) — an OS lock (``flock`` on POSIX), so it is released by the kernel when its holder
dies: a lock left by a killed run never blocks the next one (no stale lock). Who holds it (pid,
host, start time) is written next to it (:attr:`RunPaths.lock_holder`), so a refused run
can say whom it waited for. On network filesystems without ``flock`` support filelock falls back
to its own soft lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .._io import write_json
from .paths import RunPaths


class RunLockedError(RuntimeError):
    """The run directory is held by another live process (one-line message naming it)."""


class RunLock:
    """Exclusive lock on a run directory (a context manager; ``acquire`` / ``release`` too).

    Args:
        run_dir: the run directory (created by :meth:`acquire` if missing, and removed again by
            :meth:`release` when it is still empty then).
        enabled: ``False`` makes every method a no-op (processes other than the main one).

    Raises:
        RunLockedError: from :meth:`acquire`, when another process holds the lock.
    """

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.paths = RunPaths(run_dir)
        self.enabled = enabled
        self._lock: FileLock | None = None
        self._created = False

    @property
    def holder_path(self) -> Path:
        return self.paths.lock_holder

    def holder(self) -> dict:
        """What the holder wrote about itself (``pid``, ``host``, ``since``), or ``{}``."""
        try:
            return json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        if not self.enabled or self._lock is not None:
            return self
        self._created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.paths.lock_file, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            h = self.holder()
            who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('since', '?')}"
            raise RunLockedError(
                f"{self.run_dir} is in use by another bert-tickets run ({who}); wait for it or use another --output_dir"
            ) from None
        self._lock = lock
        write_json(self.holder_path, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()
        self.paths.lock_file.unlink(missing_ok=True)
        self._lock = None
        if self._created and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
