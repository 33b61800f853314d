"""File names and the format check of a ticket directory (format version :data:`FORMAT_VERSION`;
the layout is described in :mod:`bert_tickets.ticket.mask`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT_NAME = "bert-tickets-mask"
#: Version written. 2: typed provenance fields (``criterion`` — formerly ``pruning_method`` —,
#: ``criterion_options``, ``cost``, ``parent_level``, ``lineage``, ``data_split``, ``sanity``)
#: that version 1 kept in ``extra``.
FORMAT_VERSION = 2
#: Versions read (version 1 tickets load unchanged: their ``extra`` keys become the typed fields).
READABLE_VERSIONS = (1, 2)
#: Version of the mask file's encoding (its safetensors header): unchanged by format 2, so a mask
#: saved now has the same bytes (and ``mask_sha256``, the Hub's LFS id) as before.
MASK_FORMAT_VERSION = 1
MASK_FILE = "ticket_mask.safetensors"
CONFIG_FILE = "ticket_config.json"
README_FILE = "README.md"


def read_ticket_config(path: Path, where: str) -> dict[str, Any]:
    """Read ``ticket_config.json`` and check its format name and version.

    Raises:
        ValueError: invalid JSON, or a format/version this bert-tickets does not read; the
            message starts with ``where``.
    """
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: {CONFIG_FILE} is not valid JSON: {err}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME or cfg.get("format_version") not in READABLE_VERSIONS:
        cfg = cfg if isinstance(cfg, dict) else {}
        raise ValueError(
            f"{where}: unsupported ticket format {cfg.get('format')!r} version {cfg.get('format_version')!r} "
            f"(this bert-tickets reads {FORMAT_NAME!r} versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    return cfg
