"""Atomic writes: the file appears whole or not at all, with the mode open() would give it."""

from __future__ import annotations

import os

import pytest

from bert_tickets._io import atomic_write, atomic_write_text


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o007)
        atomic_write_text(tmp_path / "b.json", "{}")
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o660
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    atomic_write_text(tmp_path / "c.txt", "old")

    def boom(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "c.txt", boom)
    assert (tmp_path / "c.txt").read_text() == "old" and os.listdir(tmp_path) == ["c.txt"]
