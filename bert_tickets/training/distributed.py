"""What a data-parallel run (``accelerate launch``, ``torchrun``) must agree on across ranks.

Every rank of a ``find`` run trains the same model under DDP and prunes its own copy of the
trained weights; the masks must come out identical (they do when the weights are, which DDP
guarantees up to non-deterministic reductions). :func:`check_same_on_all_ranks` turns a silent
divergence into a loud error at the pruning step where it happens.
"""

from __future__ import annotations

import os


def process_rank() -> int:
    """This process's global rank under ``torch.distributed`` (or, before the process group
    exists, from the ``RANK`` environment variable that launchers set); 0 without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def check_same_on_all_ranks(value: str, what: str) -> None:
    """Gather ``value`` (a short string, e.g. a mask's sha256) from every rank and raise when
    any differs. A no-op without an initialised process group (one process).

    Raises:
        RuntimeError: the ranks disagree; the message lists the value per rank.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    values: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if len(set(values)) != 1:
        raise RuntimeError(f"{what} differs across ranks ({', '.join(f'rank {i}: {v}' for i, v in enumerate(values))}); stopping the run")


def close_process_group() -> None:
    """Wait for every rank, then destroy the process group (a no-op in one process). Called at
    the end of a command: a gloo group left for interpreter exit can abort a rank there
    ("terminate called without an active exception", SIGABRT) after all work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
