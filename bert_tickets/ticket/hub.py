"""Reading tickets from the Hugging Face Hub (the read side only; publishing is
:mod:`bert_tickets.publish`).

All Hub I/O goes through ``huggingface_hub`` (``hf_hub_download``); ``HF_HUB_OFFLINE`` /
``local_files_only`` / ``cache_dir`` / ``token`` behave as for any Hub artifact. Levels of a run
are published as branches ``sparsity-NN`` (see :func:`bert_tickets.publish.branch_name`), so
``TicketMask.from_pretrained(repo, revision="sparsity-60")`` reaches each level and a commit sha
pins one exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import first_line
from .format import CONFIG_FILE, MASK_FILE, read_ticket_config

#: Value of ``library_name`` in Hub requests and model cards (the Hub's "library" facet).
LIBRARY_NAME = "bert-tickets"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_COMMIT_RE = COMMIT_RE


class TicketNotFoundError(FileNotFoundError):
    """A ticket repository, revision or file does not exist on the Hub, or (offline) is not in
    the local Hugging Face cache."""


def is_hub_repo_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` can be a Hub repo id (``"name"`` or ``"org/name"``, Hub characters only).

    Paths that exist, absolute paths, paths starting with ``.`` or ``~`` and anything with more
    than one ``/`` are not repo ids.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = os.fspath(name)
    if not isinstance(text, str) or os.path.isabs(text) or text.startswith((".", "~")) or os.path.exists(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _snapshot_commit(path: Path) -> str | None:
    """The commit sha of a file inside the Hugging Face cache (``.../snapshots/<sha>/...``)."""
    for parent in path.parents:
        if parent.parent.name == "snapshots" and _COMMIT_RE.match(parent.name):
            return parent.name
    return None


def download_ticket(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str | None = None,
) -> Path:
    """Fetch a ticket's ``ticket_config.json`` and ``ticket_mask.safetensors`` from the Hub.

    Uses ``huggingface_hub.hf_hub_download`` (Hugging Face cache, ``HF_HUB_OFFLINE``,
    ``local_files_only``, ``token`` as usual). The config is fetched first and its format and
    version checked before the mask is downloaded; the mask is then fetched at the *commit* the
    config came from, so a branch moving in between cannot mix two tickets.

    Returns:
        The local directory (a cache snapshot folder) holding both files.

    Raises:
        TicketNotFoundError: no such repo, revision or file, or not cached while offline.
        ValueError: the config is not a ticket config this version reads.
        OSError: another Hub error (one line).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f"@{revision}" if revision else "") + (f" (subfolder {subfolder})" if subfolder else "")

    def fetch(filename: str, rev: str | None) -> Path:
        try:
            return Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    subfolder=subfolder,
                    revision=rev,
                    cache_dir=cache_dir,
                    local_files_only=local_files_only,
                    token=token,
                    library_name=LIBRARY_NAME,
                )
            )
        except LocalEntryNotFoundError:
            raise TicketNotFoundError(
                f"ticket {where}: no local directory of that name, and {filename} is not in the Hugging Face cache "
                "while the Hub cannot be reached (offline mode or local_files_only)"
            ) from None
        except GatedRepoError:
            raise TicketNotFoundError(f"ticket repo {repo_id} is gated: request access and pass a token") from None
        except RepositoryNotFoundError:
            raise TicketNotFoundError(f"no local directory {repo_id} and no Hub repo {repo_id} (or it is private: pass a token)") from None
        except RevisionNotFoundError:
            raise TicketNotFoundError(
                f"ticket repo {repo_id} has no revision {revision!r} (levels are published as branches sparsity-NN)"
            ) from None
        except EntryNotFoundError:
            raise TicketNotFoundError(f"{where} has no {filename}: not a bert-tickets ticket") from None
        except HfHubHTTPError as err:
            raise OSError(f"ticket {where}: Hub error: {first_line(err)}") from None

    config_path = fetch(CONFIG_FILE, revision)
    read_ticket_config(config_path, f"ticket {where}")  # format checked before the mask is fetched
    commit = _snapshot_commit(config_path)
    mask_path = fetch(MASK_FILE, commit or revision)
    if mask_path.parent != config_path.parent:
        raise OSError(f"ticket {where}: {MASK_FILE} and {CONFIG_FILE} resolved to different snapshots")
    return config_path.parent


# ------------------------------------------------------------------------------ the write side
_PUSHER: Callable[..., Any] | None = None


def register_pusher(push: Callable[..., Any]) -> None:
    """Install the function behind :meth:`TicketMask.push_to_hub`.

    Publishing (model card, branches, upload) is :mod:`bert_tickets.publish`, a layer *above*
    this one: ``bert_tickets.publish`` registers its ``push_ticket`` here when it is imported
    (and ``import bert_tickets`` imports it), so the ticket layer never imports the layer above
    it and no import cycle exists.
    """
    global _PUSHER
    _PUSHER = push


def ticket_pusher() -> Callable[..., Any]:
    """The registered push function (see :func:`register_pusher`).

    Raises:
        RuntimeError: ``bert_tickets.publish`` has not been imported (it always is through
            ``import bert_tickets``).
    """
    if _PUSHER is None:
        raise RuntimeError("no ticket publisher registered: import bert_tickets.publish")
    return _PUSHER
