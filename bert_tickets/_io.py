"""File helpers shared by every layer: atomic writes (temporary file + rename, so an interrupted
write never leaves a half-written file) and the versions of the libraries that wrote a file.

The bottom layer of the package: it imports nothing from ``bert_tickets``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch


def json_hash(obj: Any, digits: int = 12) -> str:
    """The first ``digits`` hex digits of the sha256 of ``obj``'s key-sorted JSON (non-JSON values
    by ``str``): how runs, cells, matrix specs and cached masks are named (open_lth-style hash-named
    directories). The one spelling of that rule: changing it would rename every saved run."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:digits]


def first_line(err: BaseException) -> str:
    """The first non-empty line of ``err``'s message, or its type name when the message is empty
    (``KeyError()``, ``OSError()``): what every command prints after ``error:``."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def derived_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th of several generators derived from one seed (random pruning of a
    tensor, a layer-shuffle permutation, a re-initialised tensor): ``seed * 100_003 + index``.
    Saved masks and cells depend on it, so it must not change."""
    return int(seed) * 100_003 + int(index)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` onto ``path`` (same directory, created
    if needed). On any error the temporary file is removed and ``path`` is left as it was. The
    file gets mode ``0666 & ~umask``, as ``open`` would give it (not ``mkstemp``'s 0600), so
    collaborators on a shared filesystem can read a run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a file written here gets the usual mode
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def atomic_write_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Create the directory ``path`` as one unit: call ``write(tmp_dir)`` on a fresh sibling
    directory, then rename it onto ``path``. A crash leaves either no ``path`` or a complete one
    (plus, at worst, a hidden ``.<name>.*.tmp`` sibling that nothing reads). The directory gets
    mode ``0777 & ~umask``.

    Raises:
        FileExistsError: ``path`` exists (a directory holding other files is never replaced).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        write(tmp)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header written canonically (keys sorted, no spaces,
    padded with spaces to a multiple of 8 bytes as the format asks), so that the same tensors and
    ``__metadata__`` give the same bytes in every process. (The Rust writer serialises the
    metadata map in hash order, which differs from process to process.) The tensor data and its
    offsets are unchanged: they are relative to the end of the header.

    Raises:
        ValueError: ``data`` is not a safetensors file.
    """
    if len(data) < 8:
        raise ValueError("not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a safetensors file (its header is not JSON)") from None
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """``json.loads`` of a file this package wrote.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid JSON; the message names the file (one line).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupt (not valid JSON: {first_line(err)}); delete it to redo that step") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (non-JSON values through ``str``), atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write ``tensors`` (name -> contiguous CPU tensor) as a safetensors file, atomically."""
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(dict(tensors), tmp))


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that write a ticket (recorded in ``ticket_config.json``)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("bert-tickets", "torch", "transformers", "huggingface_hub", "safetensors", "numpy", "peft"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out
