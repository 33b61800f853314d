"""Data-diet rewinding (Paul et al. 2022, *Lottery Tickets on a Data Diet: Finding Initializations
with Sparse Trainable Networks*, Sections 3–4; released code mansheej/lth_diet): the rewind point —
the weights after the first K optimizer steps — is reached by training on a subset of M training
examples only, chosen at random or as the *easiest* by EL2N score; the IMP levels then train on
the full data from that point.

EL2N (Paul, Ganguli & Dziugaite 2021, *Deep Learning on a Data Diet*, Section 2.2) of example
(x, y) is ‖softmax(f(x)) − onehot(y)‖₂, averaged over several networks each trained briefly from
θ0 with its own seed; *easy* = lowest scores. For a regression task (STS-B) there is no softmax:
the score is |f(x) − y|, the L2 norm of the one-dimensional error (our decision: the same "error
vector norm" the classification score measures).

Both trainings go through the training seam of :func:`~bert_tickets.training.finetune.finetune`:
the short EL2N runs and the rewind-point pre-training train on the ``subset`` source (the whole
split for ``steps`` optimizer steps; the chosen examples cycled to the full run's schedule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..tasks import PreparedData, TaskSpec
from ..ticket import TicketMask
from .finetune import finetune, predict_logits
from .sources.subset import random_subset

__all__ = ["REWIND_DATA", "easy_subset", "el2n_scores", "label_distribution", "mean_el2n", "random_subset"]

#: ``--rewind_data`` choices: the standard rewind point (full data), a random or an easy subset.
REWIND_DATA = ("full", "random", "easy")


def el2n_scores(logits: torch.Tensor, labels: torch.Tensor, *, regression: bool) -> torch.Tensor:
    """EL2N of each example: ``logits`` float ``(n, C)`` (``(n, 1)`` or ``(n,)`` for
    regression), ``labels`` ``(n,)`` class indices (or float targets). Returns float32 ``(n,)``.

    Raises:
        ValueError: shapes that do not match, or a class label outside ``[0, C)``.
    """
    logits = logits.float()
    if regression:
        pred = logits.reshape(len(logits), -1)
        if pred.shape[1] != 1 or len(labels) != len(pred):
            raise ValueError(f"EL2N for regression needs (n, 1) outputs and n targets, got {tuple(logits.shape)} and {len(labels)}")
        return (pred[:, 0] - labels.float()).abs()
    if logits.dim() != 2 or len(labels) != len(logits):
        raise ValueError(f"EL2N needs (n, C) logits and n labels, got {tuple(logits.shape)} and {len(labels)}")
    labels = labels.long()
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(f"a label outside [0, {logits.shape[1]}) for EL2N")
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).float()
    return torch.linalg.vector_norm(torch.softmax(logits, dim=1) - onehot, dim=1)


def label_distribution(labels, indices: list[int], *, regression: bool) -> dict[str, dict[str, float]]:
    """The labels of the chosen training examples next to those of all of them (issue 20: an
    "easy" subset can be a selection by label value — after 10 steps on STS-B every easy pair had
    a label in [0.33, 1.25] against an overall mean of 2.40).

    Args:
        labels: every training example's label (class ids, or float targets for regression).
        indices: the chosen examples.

    Returns:
        ``{"subset": stats, "all": stats}``; stats are ``{"mean", "std", "min", "max"}`` (population
        std) for regression, else ``{class id (str): fraction}``.
    """
    values = torch.as_tensor(list(labels))

    def stats(v: torch.Tensor) -> dict[str, float]:
        if regression:
            v = v.double()
            return {"mean": float(v.mean()), "std": float(v.std(unbiased=False)), "min": float(v.min()), "max": float(v.max())}
        counts = torch.bincount(v.long(), minlength=int(values.max()) + 1)
        return {str(c): float(n) / len(v) for c, n in enumerate(counts.tolist())}

    return {"subset": stats(values[torch.as_tensor(indices, dtype=torch.long)]), "all": stats(values)}


def easy_subset(scores: torch.Tensor, size: int) -> torch.Tensor:
    """Indices (int64, ascending) of the ``size`` examples with the lowest scores; ties go to the
    earlier example.

    Raises:
        ValueError: ``size`` outside ``[1, len(scores)]``.
    """
    if not (1 <= size <= len(scores)):
        raise ValueError(f"--rewind_subset_size must be in [1, {len(scores)}] (the training examples), got {size}")
    order = torch.sort(scores.float(), stable=True).indices
    return torch.sort(order[:size]).values


def mean_el2n(
    make_model: Callable[[int], torch.nn.Module],
    ticket: TicketMask,
    task: TaskSpec,
    data: PreparedData,
    training_args: Any,
    *,
    models: int,
    steps: int,
    seed: int,
    output_dir: str,
    tokenizer: Any = None,
) -> torch.Tensor:
    """EL2N of every training example averaged over ``models`` networks, the i-th built by
    ``make_model(seed + i)`` (θ0 with a fresh head) and fine-tuned ``steps`` optimizer steps
    under ``ticket`` with seed ``seed + i`` on the ``subset`` source with a budget of ``steps``
    (the whole training split; the learning-rate schedule of ``max_steps = steps``), then run on
    the training set in evaluation mode. Float32 ``(len(data.train),)``.

    Raises:
        ValueError: ``models`` or ``steps`` < 1.
    """
    if models < 1 or steps < 1:
        raise ValueError(f"--el2n_models and --el2n_steps must be >= 1, got {models} and {steps}")
    total = None
    for i in range(models):
        model = make_model(seed + i)
        finetune(
            model,
            ticket,
            task,
            data,
            training_args,
            seed=seed + i,
            output_dir=f"{output_dir}/model_{i}",
            tokenizer=tokenizer,
            source="subset",
            source_options={"steps": steps},
        )
        logits, labels = predict_logits(
            model, data.train, task, data, training_args, output_dir=f"{output_dir}/model_{i}", tokenizer=tokenizer
        )
        scores = el2n_scores(logits, labels, regression=task.is_regression)
        total = scores if total is None else total + scores
    return total / models
