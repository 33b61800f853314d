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
    file gets mode ``0666 & ~umask``, as ``open`` would give it (not ``mkstemp``'s 0600, nor the
    0600 of a library that writes through its own temporary file, as ``safetensors`` does), so
    collaborators on a shared filesystem can read a run.

    Raises:
        IsADirectoryError: ``path`` is a directory (one line).
        NotADirectoryError: a parent of ``path`` is a file (one line).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    make_parent_dirs(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # after the write: a writer may have replaced the file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_parent_dirs(path: str | os.PathLike) -> None:
    """``mkdir -p`` of ``path``'s parent.

    Raises:
        NotADirectoryError: a component of the parent is a file (one line naming it, not the
            ``[Errno 17] File exists`` of ``os.mkdir``).
    """
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), parent)
        raise NotADirectoryError(f"cannot write {path}: {blocker} is a file, not a directory") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(root: Path) -> None:
    """Give ``root`` and every directory and file under it the modes ``mkdir`` / ``open`` give
    under the umask (``0777`` / ``0666`` ``& ~umask``)."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)


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
    mode ``0777 & ~umask`` and every file and directory written in it the modes ``open`` and
    ``mkdir`` give under the umask (whatever the writer used: ``save_pretrained`` writes its
    safetensors file 0600).

    Raises:
        FileExistsError: ``path`` exists (a directory holding other files is never replaced).
        NotADirectoryError: a parent of ``path`` is a file.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    make_parent_dirs(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        _follow_umask(tmp)
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


def read_json(path: str | os.PathLike, fix: str = "delete it to redo that step") -> Any:
    """``json.loads`` of a file this package wrote: the one reader of a run's or a matrix's JSON.

    Args:
        fix: what the user should do about a corrupt file, in the message (e.g. "delete the
            cell directory to re-run it").

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid JSON; the message names the file and ``fix`` (one line).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupt (not valid JSON: {first_line(err)}); {fix}") from None


def tensors_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the safetensors file ``path`` without reading its tensors: ``None``
    when its 8-byte header length, JSON header and data length agree with the file's size
    (a truncated or overwritten file does not), else the reason (one phrase).

    The check reads the header only (a few KiB), so a resume can verify every weight file it
    skips. Format: https://huggingface.co/docs/safetensors (header length little-endian u64,
    header JSON with each tensor's ``data_offsets`` relative to the end of the header)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return f"{size} bytes, shorter than the 8-byte header length"
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                return f"its header claims {n} bytes but the file has {size}"
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"unreadable header ({first_line(err)})"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return f"truncated or padded: {size} bytes, its header describes {expected}"
    return None


def read_tensors(path: str | os.PathLike, fix: str) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` of a weight file this package wrote (CPU tensors): the one
    reader of a run's or a matrix's weights.

    Args:
        fix: what the user should do about a corrupt file, in the message (e.g. "re-run the
            level").

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated or corrupt; one line naming the file and ``fix``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {fix}")
    problem = tensors_problem(path)
    if problem is not None:
        raise ValueError(f"{path} is corrupt ({problem}); {fix}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"{path} is corrupt ({first_line(err)}); {fix}") from None


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file: what a record lists about a file it
    relies on, so that a resume can verify it (:func:`file_problem`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": h.hexdigest()}


def file_problem(path: str | os.PathLike, recorded: Mapping[str, Any] | None = None) -> str | None:
    """What is wrong with a file a record relies on, or ``None``: missing; a size or sha256
    other than ``recorded`` (:func:`file_record`) says; for a ``.safetensors`` file without a
    record, its header against its size (:func:`tensors_problem`)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if recorded:
        size = path.stat().st_size
        if "bytes" in recorded and size != recorded["bytes"]:
            return f"{size} bytes, {recorded['bytes']} recorded"
        if "sha256" in recorded and file_record(path)["sha256"] != recorded["sha256"]:
            return "its sha256 differs from the one recorded"
        return None
    return tensors_problem(path) if path.suffix == ".safetensors" else None


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
