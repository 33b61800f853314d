"""Experiments: each module holds its arguments dataclass(es) and a ``run(...)`` entry; the
registry below maps a command name to its module (one line per experiment).

Layer: imports :mod:`bert_tickets.results`, :mod:`bert_tickets.training` and below.
"""

from . import distill, imp, prune_at_init, stability, transfer
from .common import DataArguments, ModelArguments

#: command -> experiment module (with ``ARGUMENTS`` and ``run``).
EXPERIMENTS = {"find": imp, "transfer": transfer, "stability": stability, "prune-at-init": prune_at_init, "distill": distill}

__all__ = ["EXPERIMENTS", "DataArguments", "ModelArguments"]
