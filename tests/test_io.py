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


def test_canonical_safetensors_and_atomic_write_dir(tmp_path):
    import numpy as np
    from safetensors.numpy import load, save

    from bert_tickets._io import atomic_write_dir, canonical_safetensors

    arrays = {"b": np.arange(3, dtype=np.uint8), "a": np.ones(5, dtype=np.uint8)}
    one = canonical_safetensors(save(arrays, metadata={"x": "1", "y": "2"}))
    two = canonical_safetensors(save(dict(reversed(arrays.items())), metadata={"y": "2", "x": "1"}))
    assert one == two and all(np.array_equal(load(one)[k], v) for k, v in arrays.items())
    with pytest.raises(ValueError, match="not a safetensors file"):
        canonical_safetensors(b"\x03\x00\x00\x00\x00\x00\x00\x00abc")

    def write(tmp):
        (tmp / "f").write_text("x")

    atomic_write_dir(tmp_path / "d", write)
    assert (tmp_path / "d" / "f").read_text() == "x"
    with pytest.raises(FileExistsError):
        atomic_write_dir(tmp_path / "d", write)

    def fail(tmp):
        (tmp / "f").write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write_dir(tmp_path / "e", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing half-made left
