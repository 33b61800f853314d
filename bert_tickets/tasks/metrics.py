"""Offline metrics of every task (no ``evaluate.load`` of Hub modules, which fails without
internet).

GLUE metric names, definitions and return keys follow the GLUE benchmark (Wang et al. 2019,
"GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding") as
implemented by the ``glue`` module of Hugging Face ``evaluate``; SQuAD follows the official
v1.1 evaluation script (Rajpurkar et al. 2016); masked-LM reports masked-token accuracy and
perplexity (Devlin et al. 2019 masking; Chen et al. 2020 report MLM accuracy):

==========  ==================================  =========================
task        metrics (``spec.metrics``)          primary (``spec.primary_metric``)
==========  ==================================  =========================
CoLA        matthews_correlation                matthews_correlation
SST-2       accuracy                            accuracy
MRPC        accuracy, f1                        f1
QQP         accuracy, f1                        f1
STS-B       pearson, spearmanr                  pearson
MNLI        accuracy (matched; mismatched as    accuracy (matched)
            ``validation_mismatched_accuracy``)
QNLI        accuracy                            accuracy
RTE         accuracy                            accuracy
WNLI        accuracy                            accuracy
SQuAD v1.1  exact_match, f1                     f1
MLM         accuracy, perplexity                accuracy
==========  ==================================  =========================

All values except perplexity are fractions (accuracy 0.852, not 85.2; SQuAD F1 0.881, not
88.1); BERT-Tickets, the GLUE leaderboard and the official SQuAD script print them multiplied
by 100. Higher is better for every primary metric. Computed with scikit-learn, SciPy and NumPy.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .spec import TaskSpec

__all__ = [
    "METRICS",
    "accuracy",
    "compute_task_metrics",
    "f1",
    "make_compute_metrics",
    "prediction_spread",
    "masked_lm_metrics",
    "matthews_correlation",
    "normalize_answer",
    "pearson",
    "primary_metric",
    "spearmanr",
    "squad_exact_match",
    "squad_f1",
    "squad_metrics",
]


def _as_1d(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {arr.shape}")
    return arr


def _pair(predictions: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_1d("predictions", predictions)
    r = _as_1d("references", references)
    if p.shape[0] != r.shape[0]:
        raise ValueError(f"predictions and references differ in length: {p.shape[0]} vs {r.shape[0]}")
    if p.shape[0] == 0:
        raise ValueError("cannot compute a metric on 0 examples")
    return p, r


def _class_ids(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    raise ValueError(f"{name} must be integer class ids, got dtype {values.dtype}")


def accuracy(predictions: Any, references: Any) -> float:
    """Fraction of exact matches between predicted and reference class ids.

    Args:
        predictions: predicted class ids, shape ``(n,)`` (or ``(n, 1)``), integer dtype.
        references: gold class ids, shape ``(n,)``, integer dtype.

    Returns:
        Accuracy in ``[0, 1]`` (GLUE ``accuracy``).

    Raises:
        ValueError: shape mismatch, empty input, or non-integer values.
    """
    p, r = _pair(predictions, references)
    return float(accuracy_score(_class_ids("references", r), _class_ids("predictions", p)))


def f1(predictions: Any, references: Any) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP.

    F1 = 2·TP / (2·TP + FP + FN). When there is no positive prediction and no positive
    reference (TP + FP + FN = 0) the value is 0.0 (scikit-learn's ``zero_division=0``).

    Args:
        predictions: predicted class ids in {0, 1}, shape ``(n,)``, integer dtype.
        references: gold class ids in {0, 1}, shape ``(n,)``, integer dtype.

    Returns:
        F1 in ``[0, 1]`` (GLUE ``f1``).

    Raises:
        ValueError: shape mismatch, empty input, non-integer values or labels outside {0, 1}.
    """
    p, r = _pair(predictions, references)
    p, r = _class_ids("predictions", p), _class_ids("references", r)
    if not (np.isin(p, (0, 1)).all() and np.isin(r, (0, 1)).all()):
        raise ValueError("binary f1 needs class ids in {0, 1}")
    return float(f1_score(r, p, pos_label=1, average="binary", zero_division=0.0))


def matthews_correlation(predictions: Any, references: Any) -> float:
    """Matthews correlation coefficient (GLUE's CoLA metric).

    For two classes MCC = (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)); the
    multi-class generalisation of scikit-learn is used for more classes. When the
    denominator is 0 (e.g. constant predictions) the value is 0.0, as in scikit-learn.

    Args:
        predictions: predicted class ids, shape ``(n,)``, integer dtype.
        references: gold class ids, shape ``(n,)``, integer dtype.

    Returns:
        MCC in ``[-1, 1]`` (GLUE ``matthews_correlation``).

    Raises:
        ValueError: shape mismatch, empty input, or non-integer values.
    """
    p, r = _pair(predictions, references)
    return float(matthews_corrcoef(_class_ids("references", r), _class_ids("predictions", p)))


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def _float_pair(predictions: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    p, r = _pair(predictions, references)
    p, r = p.astype(np.float64), r.astype(np.float64)
    if p.shape[0] < 2:
        raise ValueError("a correlation needs at least 2 examples")
    return p, r


def pearson(predictions: Any, references: Any) -> float:
    """Pearson correlation between predicted and gold scores (GLUE's STS-B ``pearson``).

    Args:
        predictions: predicted scores, shape ``(n,)`` or ``(n, 1)``, float dtype, ``n >= 2``.
        references: gold scores, shape ``(n,)``, float dtype.

    Returns:
        r in ``[-1, 1]``. If either input is constant the correlation is undefined (SciPy
        returns NaN); this function returns 0.0 instead, like scikit-learn's MCC, so that
        a collapsed model (constant output) scores "no correlation" and results stay
        JSON-serialisable and comparable. NaN inputs give NaN.

    Raises:
        ValueError: shape mismatch or fewer than 2 examples.
    """
    p, r = _float_pair(predictions, references)
    if _constant(p) or _constant(r):
        return 0.0
    return float(stats.pearsonr(p, r)[0])


def spearmanr(predictions: Any, references: Any) -> float:
    """Spearman rank correlation between predicted and gold scores (GLUE's STS-B
    ``spearmanr``; ties get average ranks).

    Args:
        predictions: predicted scores, shape ``(n,)`` or ``(n, 1)``, float dtype, ``n >= 2``.
        references: gold scores, shape ``(n,)``, float dtype.

    Returns:
        rho in ``[-1, 1]``; 0.0 when either input is constant (see :func:`pearson`).

    Raises:
        ValueError: shape mismatch or fewer than 2 examples.
    """
    p, r = _float_pair(predictions, references)
    if _constant(p) or _constant(r):
        return 0.0
    return float(stats.spearmanr(p, r)[0])


#: Metric name (as in the GLUE ``evaluate`` module) -> function(predictions, references) -> float.
METRICS: Mapping[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearmanr,
}


def primary_metric(spec: TaskSpec) -> str:
    """Name of the task's primary metric (the one used to decide whether a subnetwork is
    matching, and for ``TrainingArguments(metric_for_best_model=...)``): ``"accuracy"`` for
    RTE / SST-2 / QNLI / WNLI / MNLI (matched) and MLM (masked tokens), ``"f1"`` for MRPC / QQP
    and SQuAD, ``"matthews_correlation"`` for CoLA, ``"pearson"`` for STS-B. Higher is better
    for all of them."""
    return spec.primary_metric


def _predicted_labels(spec: TaskSpec, predictions: Any) -> np.ndarray:
    preds = np.asarray(predictions)
    if spec.is_regression:
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        if preds.ndim != 1:
            raise ValueError(f"{spec.name}: regression predictions must have shape (n,) or (n, 1), got {preds.shape}")
        if preds.dtype.kind not in "fiu":
            raise ValueError(f"{spec.name}: regression predictions must be numbers, got dtype {preds.dtype}")
        return preds.astype(np.float64)
    if preds.ndim == 2:
        if preds.shape[1] != spec.num_labels:
            raise ValueError(f"{spec.name}: logits must have shape (n, {spec.num_labels}), got {preds.shape}")
        return preds.argmax(axis=-1)
    if preds.ndim == 1 and preds.dtype.kind in "iu":
        return preds.astype(np.int64)
    raise ValueError(
        f"{spec.name}: predictions must be logits of shape (n, {spec.num_labels}) or int class ids of "
        f"shape (n,), got shape {preds.shape} dtype {preds.dtype}"
    )


def compute_task_metrics(spec: TaskSpec, predictions: Any, references: Any) -> dict[str, float]:
    """Compute every metric listed in ``spec.metrics`` (GLUE conventions, Wang et al. 2019).

    Args:
        spec: the task.
        predictions: classification: logits (or probabilities) of shape ``(n, num_labels)``,
            float dtype; the predicted class is the argmax. Integer class ids of shape
            ``(n,)`` are accepted too. Regression: float scores of shape ``(n,)`` or
            ``(n, 1)``.
        references: gold labels of shape ``(n,)`` (or ``(n, 1)``): int class ids, or float
            scores for regression.

    Returns:
        ``{metric name: value}`` in the order of ``spec.metrics`` with plain Python floats,
        e.g. ``{"accuracy": 0.85, "f1": 0.89}`` for MRPC.

    Raises:
        ValueError: shapes inconsistent with the task or with each other, empty input,
            negative reference labels (an unlabelled GLUE test split has label -1), a
            metric name without an implementation, or a non-GLUE task (SQuAD:
            :func:`squad_metrics`; MLM: :func:`masked_lm_metrics`).
    """
    if spec.kind != "glue":
        raise ValueError(
            f"{spec.name}: compute_task_metrics covers GLUE tasks; {spec.kind} uses "
            + ("squad_metrics" if spec.kind == "squad" else "masked_lm_metrics")
        )
    refs = _as_1d("references", references)
    preds = _predicted_labels(spec, predictions)
    if preds.shape[0] != refs.shape[0]:
        raise ValueError(f"{spec.name}: {preds.shape[0]} predictions but {refs.shape[0]} references")
    if not spec.is_regression:
        refs = _class_ids("references", refs)
        if refs.size and (refs.min() < 0 or refs.max() >= spec.num_labels):
            raise ValueError(f"{spec.name}: reference labels outside 0..{spec.num_labels - 1} (an unlabelled test split?)")
    out = {}
    for name in spec.metrics:
        fn = METRICS.get(name)
        if fn is None:
            raise ValueError(f"{spec.name}: no implementation for metric {name!r} (known: {', '.join(METRICS)})")
        out[name] = fn(preds, refs)
    return out


#: Below this ratio of the predictions' std to the labels' std a regression model "predicts (almost)
#: a constant": after 63 steps every STS-B model of issue 20 predicted about the label mean
#: (prediction std 0.03 against a label std of 1.5, ratio 0.02) while models that rank masks reach
#: ratios of 0.5 and more; 0.1 separates the two with margin on both sides.
CONSTANT_STD_RATIO = 0.1
#: At or above this share of the evaluation examples predicted as one class a classifier
#: "predicts (almost) a constant" (at most 1 example in 20 gets another class).
CONSTANT_MAJORITY_SHARE = 0.95


def prediction_spread(spec: TaskSpec, predictions: Any, references: Any) -> dict[str, float]:
    """How much a GLUE model's evaluation predictions vary, and whether it predicts (almost) a
    constant (issue 20: a fine-tune too short to rank masks predicts about the label mean, and a
    metric of such a model says nothing about its mask).

    Args:
        spec, predictions, references: as for :func:`compute_task_metrics`.

    Returns:
        Regression: ``prediction_std`` (population std of the predicted scores, label units) and
        ``label_std``; classification: ``majority_share`` (fraction of examples predicted as the
        most predicted class, in (0, 1]). Both: ``near_constant`` 1.0 when the predictions'
        std is below :data:`CONSTANT_STD_RATIO` × the labels' std (regression) or the majority
        share is at least :data:`CONSTANT_MAJORITY_SHARE` (classification), else 0.0.

    Raises:
        ValueError: as :func:`compute_task_metrics`.
    """
    preds = _predicted_labels(spec, predictions)
    refs = _as_1d("references", references)
    if preds.shape[0] != refs.shape[0] or preds.shape[0] == 0:
        raise ValueError(f"{spec.name}: {preds.shape[0]} predictions but {refs.shape[0]} references")
    if spec.is_regression:
        std, label_std = float(np.std(preds)), float(np.std(refs.astype(np.float64)))
        return {"prediction_std": std, "label_std": label_std, "near_constant": float(std < CONSTANT_STD_RATIO * label_std)}
    share = float(np.bincount(preds.astype(np.int64)).max() / preds.shape[0])
    return {"majority_share": share, "near_constant": float(share >= CONSTANT_MAJORITY_SHARE)}


def make_compute_metrics(spec: TaskSpec) -> Callable[[Any], dict[str, float]]:
    """Return a ``compute_metrics`` function for :class:`transformers.Trainer`.

    The returned callable takes an :class:`transformers.EvalPrediction` (or a
    ``(predictions, label_ids)`` tuple). If ``predictions`` is a tuple (models that also
    return hidden states), its first element is used as the logits. It returns
    :func:`compute_task_metrics`'s dict and :func:`prediction_spread`'s; the Trainer prefixes
    the keys with ``eval_``.
    """

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        if hasattr(eval_pred, "predictions"):
            predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:
            predictions, label_ids = eval_pred
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return {**compute_task_metrics(spec, predictions, label_ids), **prediction_spread(spec, predictions, label_ids)}

    compute_metrics.__name__ = f"compute_metrics_{spec.name}"
    return compute_metrics


# --------------------------------------------------------------------------------------------
# SQuAD v1.1 (Rajpurkar et al. 2016): the official evaluation script's EM and F1
# --------------------------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalisation (official ``evaluate-v1.1.py``, Rajpurkar et al. 2016).

    Lower-cases, removes ASCII punctuation (``string.punctuation``), removes the articles
    ``a``, ``an``, ``the`` (whole words) and collapses runs of whitespace to single spaces
    (stripping both ends), in that order: ``"The  Cat's hat!"`` -> ``"cats hat"``.

    Args:
        text: an answer string.

    Returns:
        The normalised string.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 if the normalised prediction equals the normalised gold answer, else 0.0
    (:func:`normalize_answer`; official SQuAD v1.1 ``exact_match_score``)."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 between a predicted and a gold answer (official SQuAD v1.1 ``f1_score``).

    Both strings are normalised (:func:`normalize_answer`) and split on whitespace; the overlap
    is the size of the multiset intersection of the two token lists. With no overlap (including
    an empty prediction or an empty gold answer) F1 is 0.0; otherwise
    ``2 * P * R / (P + R)`` with ``P = overlap / len(prediction tokens)`` and
    ``R = overlap / len(gold tokens)``.

    Returns:
        F1 in ``[0, 1]``.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Any]) -> dict[str, float]:
    """Official SQuAD v1.1 exact match and F1, as fractions.

    For each question the score is the maximum over its gold answers; the result is the mean
    over all questions in ``references``. A question without a prediction scores 0 (the
    official script prints a warning and does the same).

    Args:
        predictions: question id -> predicted answer text.
        references: question id -> gold answer texts (a list of str, or a SQuAD ``answers``
            dict with a ``"text"`` list).

    Returns:
        ``{"exact_match": em, "f1": f1}``, both in ``[0, 1]`` (the official script prints them
        multiplied by 100).

    Raises:
        ValueError: no references, or a question without gold answers.
    """
    if not references:
        raise ValueError("cannot compute SQuAD metrics on 0 questions")
    em_total = f1_total = 0.0
    for qid, gold in references.items():
        texts = list(gold["text"] if isinstance(gold, Mapping) else gold)
        if not texts:
            raise ValueError(f"question {qid!r} has no gold answer")
        if qid not in predictions:
            continue
        pred = predictions[qid]
        em_total += max(squad_exact_match(pred, t) for t in texts)
        f1_total += max(squad_f1(pred, t) for t in texts)
    n = len(references)
    return {"exact_match": em_total / n, "f1": f1_total / n}


# --------------------------------------------------------------------------------------------
# Masked-LM
# --------------------------------------------------------------------------------------------


def masked_lm_metrics(predictions: Any, labels: Any, token_nll: Any | None = None) -> dict[str, float]:
    """Masked-token accuracy and perplexity over the positions with a label.

    Args:
        predictions: predicted token ids, int array of shape ``(n, seq_len)`` (argmax of the
            MLM logits).
        labels: gold token ids of the same shape; ``-100`` marks positions that were not
            masked (not scored), as produced by ``DataCollatorForLanguageModeling``.
        token_nll: optional float array of the same shape with the negative log-likelihood
            (natural log) of the gold token at each position (ignored where ``labels == -100``).

    Returns:
        ``{"accuracy": correct / scored}`` plus, when ``token_nll`` is given,
        ``"perplexity": exp(mean NLL over the scored tokens)`` (a token-weighted mean; lower
        is better) and ``"masked_tokens"``: the number of scored positions (as a float).

    Raises:
        ValueError: shapes differ, or no position is scored.
    """
    preds, refs = np.asarray(predictions), np.asarray(labels)
    if preds.shape != refs.shape:
        raise ValueError(f"predictions {preds.shape} and labels {refs.shape} differ in shape")
    scored = refs != -100
    n = int(scored.sum())
    if n == 0:
        raise ValueError("no masked token to score (every label is -100)")
    out = {"accuracy": float((preds[scored] == refs[scored]).sum() / n)}
    if token_nll is not None:
        nll = np.asarray(token_nll, dtype=np.float64)
        if nll.shape != refs.shape:
            raise ValueError(f"token_nll {nll.shape} and labels {refs.shape} differ in shape")
        mean = float(nll[scored].mean())
        out["perplexity"] = math.exp(mean) if mean < 700 else math.inf
        out["masked_tokens"] = float(n)
    return out
