"""Whether a model was loaded from a ticket's base model θ0 (checked by :meth:`TicketMask.apply`)."""

from __future__ import annotations

import warnings

from torch import nn

from .hub import COMMIT_RE as _COMMIT_RE
from .prunable import unwrap_model


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
