"""Whether a model was loaded from a ticket's base model θ0 (checked by :meth:`TicketMask.apply`)."""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

from torch import nn

from .hub import COMMIT_RE as _COMMIT_RE
from .hub import is_hub_repo_id
from .prunable import unwrap_model

#: Prefix of the revision recorded for a local checkpoint: the sha256 of its weight files.
LOCAL_REVISION_PREFIX = "sha256:"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")


def hub_revision(revision: str | None) -> str | None:
    """``revision`` as ``from_pretrained`` takes it: ``None`` for a local checkpoint's content
    hash (``sha256:…``, not a Hub revision), else unchanged."""
    return None if revision is None or str(revision).startswith(LOCAL_REVISION_PREFIX) else revision


def resolve_model_path(name: str) -> str:
    """A local checkpoint directory as an absolute path with symlinks resolved (so a run or a
    ticket names the same θ0 from any working directory); a Hub id unchanged."""
    path = os.path.expanduser(name)
    return os.path.realpath(path) if os.path.isdir(path) else name


def same_path(a: str | None, b: str | None) -> bool:
    """Whether two spellings name the same thing: equal strings, or paths (relative ones against
    the working directory, ``~`` expanded, symlinks resolved) of the same existing file or
    directory."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    ra, rb = (os.path.realpath(os.path.expanduser(x)) for x in (a, b))
    return ra == rb and os.path.exists(ra)


def check_model_source(name: str, what: str = "--model", hint: str = "") -> None:
    """Refuse, before anything loads it, a θ0 that is neither a local directory nor a Hub repo id
    (a relative path that does not exist from here, a checkpoint that was moved), with one line
    instead of the Hub's "Repo id must be in the form ..." for a path taken as a repo id.

    Args:
        name: the model (``--model``, or the base model a run or ticket records).
        what: how the message names it (``"--model"``, ``"the run's base model"``).
        hint: what to do, appended to the message (``"; pass base_model= ..."``).

    Raises:
        FileNotFoundError: ``name`` is a file, or no directory and no possible Hub repo id.
    """
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return
    if os.path.exists(path):
        raise FileNotFoundError(f"{what} {name} is a file, not a model directory{hint}")
    if not is_hub_repo_id(name):
        raise FileNotFoundError(f"{what} {name}: model directory not found (and it is not a Hub repo id){hint}")


def local_checkpoint_revision(name: str) -> str | None:
    """The revision of a local checkpoint: ``"sha256:<64 hex>"`` over its weight files (names
    and bytes, in name order; ``*.safetensors``, ``*.bin``, ... and shard indexes), so that a
    changed θ0 is detected wherever the directory lives. ``None`` for a Hub id.

    Decision: the weights only -- not ``config.json`` or the tokenizer -- because θ0 is the
    weights; a config edit that changes the architecture fails the mask's shape check anyway.
    Computed once per process per (path, sizes, mtimes): bert-base's 440 MB take ~1.5 s.
    """
    path = os.path.expanduser(name)
    if not os.path.isdir(path):
        return None
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and (p.name.endswith(_WEIGHT_SUFFIXES) or p.name.endswith(".index.json")))
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _revision(os.path.realpath(path), stamp)


@functools.lru_cache(maxsize=16)
def _revision(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(path, name), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return LOCAL_REVISION_PREFIX + digest.hexdigest()


class BaseModelMismatchWarning(UserWarning):
    """A ticket is applied to a model loaded from another checkpoint than its ``base_model``."""


def _model_source(model: nn.Module) -> tuple[str | None, str | None]:
    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    name = getattr(config, "_name_or_path", None) or getattr(inner, "name_or_path", None)
    return (str(name) if name else None), getattr(config, "_commit_hash", None)


def _same_checkpoint(a: str, b: str) -> bool:
    a, b = a.strip().rstrip("/"), b.strip().rstrip("/")
    if a == b:
        return True
    # "google-bert/bert-base-uncased" vs "bert-base-uncased", or a local copy named like the repo
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def check_base_model(ticket, model: nn.Module, strict: bool = False) -> bool:
    """Check that ``model`` was loaded from the ticket's base model (θ0).

    Compares the ticket's ``base_model`` with ``model.config._name_or_path`` (unwrapping PEFT /
    DDP): the same string, or the same final path component (``google-bert/bert-base-uncased``
    and ``bert-base-uncased``; a local copy in a folder named like the repo). When both the
    ticket's ``base_model_revision`` and the model's ``config._commit_hash`` are commit shas they
    must be equal. A model built from a config (empty name) or a ticket without base model
    cannot be checked and passes.

    Returns:
        ``True`` when it matches (or cannot be checked), ``False`` after warning.

    Raises:
        ValueError: a mismatch with ``strict=True``.

    Warns:
        BaseModelMismatchWarning: a mismatch with ``strict=False``.
    """
    expected, expected_rev = ticket.metadata.base_model, ticket.metadata.base_model_revision
    actual, actual_rev = _model_source(model)
    if not expected or not actual:
        return True
    problem = None
    if not _same_checkpoint(expected, actual):
        problem = f"the ticket was found on base model {expected!r} but the model was loaded from {actual!r}"
    elif (
        expected_rev
        and actual_rev
        and _COMMIT_RE.match(str(expected_rev))
        and _COMMIT_RE.match(str(actual_rev))
        and expected_rev != actual_rev
    ):
        problem = f"the ticket was found on {expected}@{expected_rev} but the model was loaded at commit {actual_rev}"
    if problem is None:
        return True
    if strict:
        raise ValueError(f"{problem} (strict: refusing to apply the ticket)")
    warnings.warn(f"{problem}; the mask selects weights of another θ0", BaseModelMismatchWarning, stacklevel=3)
    return False
