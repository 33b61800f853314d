"""The ticket artifact: the prunable set, ``TicketMask`` and its on-disk format, the base-model
check, reading tickets from a directory or the Hub, and ``load_ticket``.

Layer: imports only :mod:`bert_tickets._io` (and third-party libraries).
"""

from .base_model import (
    BaseModelMismatchWarning,
    check_base_model,
    check_model_source,
    hub_revision,
    local_checkpoint_revision,
    resolve_model_path,
    same_path,
)
from .format import CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, MASK_FILE, README_FILE, read_ticket_config
from .hub import LIBRARY_NAME, TicketNotFoundError, download_ticket, is_hub_repo_id
from .load import load_ticket
from .mask import TicketMask, TicketMetadata
from .prunable import DEFAULT_PRUNABLE_PATTERNS, get_backbone, is_backbone_parameter, prunable_parameters, unwrap_model

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PRUNABLE_PATTERNS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LIBRARY_NAME",
    "MASK_FILE",
    "README_FILE",
    "BaseModelMismatchWarning",
    "TicketMask",
    "TicketMetadata",
    "TicketNotFoundError",
    "check_base_model",
    "check_model_source",
    "hub_revision",
    "local_checkpoint_revision",
    "resolve_model_path",
    "same_path",
    "download_ticket",
    "get_backbone",
    "is_backbone_parameter",
    "is_hub_repo_id",
    "load_ticket",
    "prunable_parameters",
    "read_ticket_config",
    "unwrap_model",
]
