"""What a directory is: a ``find`` run, a transfer matrix, a ``prune-at-init`` directory, an
exported checkpoint or a ticket, so that no command writes into another command's directory.

Each kind records itself in the file that already identifies it (the marker): ``"kind": "run"``
in ``run_config.json``, ``"kind": "matrix"`` in ``transfer_config.json``, the ``prune_at_init``
spec in ``ticket/ticket_config.json``'s metadata, ``"bert_tickets": {"kind": "export"}`` in an
export's ``config.json``. Directories written before the markers existed are recognised by the
same files (a ``run_config.json`` is a run, whether or not it says so).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..ticket import CONFIG_FILE as TICKET_CONFIG_FILE
from .paths import RUN_CONFIG_FILE, TICKET_DIR

RUN = "run"
MATRIX = "matrix"
PRUNE_AT_INIT = "prune-at-init"
EXPORT = "export"
TICKET = "ticket"

#: File of a transfer matrix directory that identifies it (its spec and hash).
MATRIX_CONFIG_FILE = "transfer_config.json"
#: Folders and files of a ``prune-at-init`` directory besides its ``ticket/``.
FINETUNE_DIR = "finetune"
REPORT_FILE = "report.md"

#: How each kind is named in messages, and the command that writes it.
DESCRIPTIONS = {
    RUN: "a find run directory",
    MATRIX: "a transfer matrix directory",
    PRUNE_AT_INIT: "a prune-at-init directory",
    EXPORT: "an exported checkpoint (bert-tickets export)",
    TICKET: "a ticket directory",
}


def _json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is unreadable (a corrupt marker file still
    says what the directory is: it exists)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def directory_kind(path: str | os.PathLike) -> tuple[str, Path] | None:
    """The kind of directory ``path`` holds and the file that says so, or ``None`` for a
    directory of no kind (missing, empty, or holding other files).

    Recognised by marker or, for directories written before the markers, by their files:
    ``run_config.json`` -> run; ``transfer_config.json`` -> matrix; ``ticket/ticket_config.json``
    with a ``prune_at_init`` spec, or ``ticket/`` next to ``finetune/`` or ``report.md`` ->
    prune-at-init; ``config.json`` marked ``export``, or next to ``model.safetensors`` -> export;
    ``ticket_config.json`` -> ticket.
    """
    root = Path(path)
    if not root.is_dir():
        return None
    if (root / RUN_CONFIG_FILE).is_file():
        return RUN, root / RUN_CONFIG_FILE
    if (root / MATRIX_CONFIG_FILE).is_file():
        return MATRIX, root / MATRIX_CONFIG_FILE
    ticket_config = root / TICKET_DIR / TICKET_CONFIG_FILE
    if "prune_at_init" in _json(ticket_config).get("extra", {}) or (
        (root / TICKET_DIR).is_dir() and ((root / FINETUNE_DIR).is_dir() or (root / REPORT_FILE).is_file())
    ):
        return PRUNE_AT_INIT, ticket_config
    hf_config = root / "config.json"
    if hf_config.is_file() and (_json(hf_config).get("bert_tickets", {}).get("kind") == EXPORT or (root / "model.safetensors").is_file()):
        return EXPORT, hf_config
    if (root / TICKET_CONFIG_FILE).is_file():
        return TICKET, root / TICKET_CONFIG_FILE
    return None


def claim_directory(path: str | os.PathLike, kind: str, option: str = "--output_dir") -> None:
    """Refuse, before anything is written, to write ``kind`` into a directory of another kind.

    Raises:
        ValueError: one line naming the directory, what it is (and the file that says so) and
            what the command writes.
    """
    found = directory_kind(path)
    if found is not None and found[0] != kind:
        other, marker = found
        raise ValueError(f"{option} {path} is {DESCRIPTIONS[other]} ({marker.name}), not {DESCRIPTIONS[kind]}; use another {option}")


__all__ = [
    "DESCRIPTIONS",
    "EXPORT",
    "FINETUNE_DIR",
    "MATRIX",
    "MATRIX_CONFIG_FILE",
    "PRUNE_AT_INIT",
    "REPORT_FILE",
    "RUN",
    "TICKET",
    "claim_directory",
    "directory_kind",
]
