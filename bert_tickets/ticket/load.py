"""``load_ticket``: a ticket and the base model it names, loaded and masked in one call."""

from __future__ import annotations

import os
import warnings
from typing import Any

from .base_model import LOCAL_REVISION_PREFIX, BaseModelMismatchWarning, check_model_source, local_checkpoint_revision
from .mask import TicketMask


def load_ticket(
    repo_or_dir: str | os.PathLike,
    model_class: Any,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str | None = None,
    base_model: str | os.PathLike | None = None,
    base_model_revision: str | None = None,
    strict: bool = False,
    return_ticket: bool = False,
    **from_pretrained_kwargs: Any,
):
    """Load a ticket and the base model it names, and apply the mask: one call.

    Args:
        repo_or_dir: ticket directory or Hub repo id (see :meth:`TicketMask.from_pretrained`).
        model_class: a ``transformers`` class with ``from_pretrained``, e.g.
            ``AutoModelForSequenceClassification``.
        revision: the *ticket's* revision (branch such as ``"sparsity-60"``, tag or sha).
        cache_dir, local_files_only, token: used for the ticket and the base model alike.
        subfolder: folder of the ticket inside ``repo_or_dir``.
        base_model: load θ0 from here instead of the ticket's ``base_model`` (e.g. a local copy);
            the name is checked with :func:`check_base_model`.
        base_model_revision: revision of ``base_model``; default the ticket's
            ``base_model_revision`` when ``base_model`` is not given.
        strict: raise instead of warning on a base-model mismatch.
        return_ticket: return ``(model, ticket)`` instead of ``model``.
        **from_pretrained_kwargs: passed to ``model_class.from_pretrained`` (e.g.
            ``num_labels=2``); ``use_safetensors`` defaults to ``True`` (never unpickle).

    Returns:
        The model with the pruned weights set to exactly 0 (and the :class:`TicketMask`).

    Raises:
        ValueError: the ticket names no base model and none is given, the ticket does not fit
            the model (names/shapes), or a mismatch with ``strict=True``.
        FileNotFoundError: the base model is a local path that does not exist here (and no Hub
            repo id), one line.
        TicketNotFoundError / FileNotFoundError / OSError: see
            :meth:`TicketMask.from_pretrained` and ``from_pretrained`` of ``model_class``.
    """
    ticket = TicketMask.from_pretrained(
        repo_or_dir, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, subfolder=subfolder
    )
    name = os.fspath(base_model) if base_model is not None else ticket.metadata.base_model
    if not name:
        raise ValueError(f"ticket {repo_or_dir} names no base model; pass base_model=")
    what = "base_model" if base_model is not None else f"the base model of ticket {repo_or_dir},"
    check_model_source(name, what, "" if base_model is not None else "; pass base_model= (where θ0 is on this machine)")
    rev = base_model_revision if (base_model is not None or base_model_revision) else ticket.metadata.base_model_revision
    if rev and str(rev).startswith(LOCAL_REVISION_PREFIX):
        # a local checkpoint's content hash, not a Hub revision: check it instead of passing it on
        actual = local_checkpoint_revision(name)
        if actual is not None and actual != rev:
            problem = f"θ0 at {name} changed since the ticket was found (weights {actual[:19]}…, the ticket says {str(rev)[:19]}…)"
            if strict:
                raise ValueError(f"{problem} (strict: refusing to apply the ticket)")
            warnings.warn(f"{problem}; the mask selects weights of another θ0", BaseModelMismatchWarning, stacklevel=2)
        rev = None
    from_pretrained_kwargs.setdefault("use_safetensors", True)
    model = model_class.from_pretrained(
        name, revision=rev, cache_dir=cache_dir, local_files_only=local_files_only, token=token, **from_pretrained_kwargs
    )
    ticket.apply(model, strict=strict)
    return (model, ticket) if return_ticket else model
