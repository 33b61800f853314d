"""The ``subset`` source: part of the task's training split — given indices, or ``size`` examples
drawn at random with a seed — optionally trained for a fixed optimizer-step budget (the Trainer
cycles the subset over epochs until the budget is spent). Data-diet rewinding trains on it (Paul
et al. 2022, *Lottery Tickets on a Data Diet*, Section 3: the rewind point reached on a subset,
with the full run's schedule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .base import TrainingData, TrainingSource, register_source


def random_subset(num_examples: int, size: int, seed: int) -> torch.Tensor:
    """``size`` distinct indices (int64, ascending) drawn uniformly with a generator seeded by ``seed``.

    Raises:
        ValueError: ``size`` outside ``[1, num_examples]``.
    """
    if not (1 <= size <= num_examples):
        raise ValueError(f"--rewind_subset_size must be in [1, {num_examples}] (the training examples), got {size}")
    return torch.sort(torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))[:size]).values


def _indices(value: str | Sequence[int] | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # command line: "0,3,5"
        try:
            return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
        except ValueError:
            raise ValueError(f"training-data source subset option indices: {value!r} is not a comma-separated list of integers") from None
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return tuple(int(v) for v in value)


@dataclass
class SubsetOptions:
    """Options of the ``subset`` source. ``indices`` and ``size`` exclude each other; with
    neither, the subset is the whole split (a step budget only)."""

    indices: tuple[int, ...] | None = field(
        default=None, metadata={"help": "training-split indices (0-based, distinct; text: comma-separated) to train on"}
    )
    size: int | None = field(default=None, metadata={"help": "train on this many examples drawn at random with `seed`"})
    seed: int = field(default=0, metadata={"help": "seed of the random draw of `size` examples"})
    steps: int | None = field(
        default=None, metadata={"help": "optimizer steps to train (replaces max_steps; the subset is cycled over epochs)"}
    )

    def __post_init__(self):
        self.indices = _indices(self.indices)
        if self.indices is not None and self.size is not None:
            raise ValueError("training-data source subset: give indices or size, not both")
        if self.indices is not None:
            if not self.indices:
                raise ValueError("training-data source subset: indices is empty")
            if min(self.indices) < 0:
                raise ValueError(f"training-data source subset: a negative index {min(self.indices)}")
            if len(set(self.indices)) != len(self.indices):
                raise ValueError("training-data source subset: indices repeat an example (a subset has each example once)")
        if self.size is not None and self.size < 1:
            raise ValueError(f"training-data source subset: size must be >= 1, got {self.size}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"training-data source subset: steps must be >= 1, got {self.steps}")


@register_source
class SubsetSource(TrainingSource):
    """``data.train.select(indices)`` (indices in the order given; the Trainer's sampler shuffles)
    or ``data.train.select(random_subset(n, size, seed))``, else ``data.train`` itself; the
    kind's collator; ``steps`` as the step budget."""

    name = "subset"
    summary = "given training-split indices, or N random ones (seeded), optionally cycled to a step budget"
    Options = SubsetOptions

    def check(self, options, *, task, data, model=None):
        n = len(data.train)
        if options.indices is not None and max(options.indices) >= n:
            raise ValueError(f"training-data source subset: index {max(options.indices)} outside the {n} training examples")
        if options.size is not None and options.size > n:
            raise ValueError(f"training-data source subset: size {options.size} exceeds the {n} training examples")

    def indices(self, options, num_examples: int) -> list[int] | None:
        """The training-split indices the subset holds (``None``: the whole split)."""
        if options.indices is not None:
            return list(options.indices)
        if options.size is not None:
            return random_subset(num_examples, options.size, options.seed).tolist()
        return None

    def build(self, options, *, task, data, tokenizer=None):
        chosen = self.indices(options, len(data.train))
        dataset = data.train if chosen is None else data.train.select(chosen)
        return TrainingData(dataset, max_steps=options.steps)
