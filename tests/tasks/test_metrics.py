"""Tests for bert_tickets.tasks.metrics: hand-computed values, cross-checks against scikit-learn /
SciPy, and the task-level wrappers. Nothing here downloads anything."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bert_tickets.tasks import get_task
from bert_tickets.tasks import metrics as M

# ------------------------------------------------------------------------- hand-computed values


def test_accuracy_by_hand():
    preds = [0, 1, 1, 0, 1]
    refs = [0, 1, 0, 0, 0]
    assert M.accuracy(preds, refs) == pytest.approx(3 / 5)


def test_f1_by_hand():
    preds = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    refs = np.array([1, 0, 1, 1, 0, 0, 1, 1])
    tp, fp, fn = 3, 1, 2  # counted by hand
    assert M.f1(preds, refs) == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 6/9
    assert M.f1(preds, refs) == pytest.approx(f1_score(refs, preds))


def test_f1_is_of_the_positive_class():
    # Swapping the roles of 0 and 1 changes F1 (it is not symmetric like accuracy).
    preds = np.array([1, 1, 1, 1, 0])
    refs = np.array([1, 1, 1, 0, 0])
    assert M.f1(preds, refs) == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))
    assert M.f1(1 - preds, 1 - refs) == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))


def test_f1_no_positives_is_zero_and_non_binary_raises():
    assert M.f1([0, 0, 0], [0, 0, 0]) == 0.0
    assert M.f1([0, 0, 0], [1, 0, 1]) == 0.0
    with pytest.raises(ValueError, match="binary"):
        M.f1([0, 2, 1], [0, 1, 1])


def test_matthews_from_confusion_matrix():
    tp, tn, fp, fn = 6, 3, 2, 1
    refs = np.array([1] * tp + [0] * tn + [0] * fp + [1] * fn)
    preds = np.array([1] * tp + [0] * tn + [1] * fp + [0] * fn)
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert expected == pytest.approx(16 / math.sqrt(1120))
    assert M.matthews_correlation(preds, refs) == pytest.approx(expected)
    assert M.matthews_correlation(preds, refs) == pytest.approx(matthews_corrcoef(refs, preds))


def test_matthews_extremes_and_constant_prediction():
    refs = np.array([0, 1, 1, 0, 1])
    assert M.matthews_correlation(refs, refs) == pytest.approx(1.0)
    assert M.matthews_correlation(1 - refs, refs) == pytest.approx(-1.0)
    assert M.matthews_correlation(np.ones_like(refs), refs) == 0.0


def test_pearson_by_hand():
    x = [1.0, 2.0, 3.0, 4.0]
    y = [2.0, 4.0, 5.0, 9.0]
    # deviations: dx = (-1.5, -0.5, 0.5, 1.5), dy = (-3, -1, 0, 4): sum dx*dy = 11, sum dx^2 = 5, sum dy^2 = 26
    assert M.pearson(x, y) == pytest.approx(11 / math.sqrt(5 * 26))
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])


def test_spearman_by_hand_with_ties():
    p = [1.0, 2.0, 2.0, 3.0]  # ranks 1, 2.5, 2.5, 4
    r = [1.0, 3.0, 2.0, 4.0]  # ranks 1, 3, 2, 4
    assert M.spearmanr(p, r) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    assert M.spearmanr(p, r) == pytest.approx(stats.spearmanr(p, r)[0])


def test_correlations_of_constant_predictions_are_zero():
    refs = [0.5, 1.0, 3.0, 4.5]
    assert M.pearson([2.0] * 4, refs) == 0.0
    assert M.spearmanr([2.0] * 4, refs) == 0.0


# ------------------------------------------------------------------------- against sklearn / scipy


def test_random_inputs_agree_with_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 2, size=200)
    preds = np.where(rng.random(200) < 0.7, refs, 1 - refs)
    assert M.accuracy(preds, refs) == pytest.approx(accuracy_score(refs, preds))
    assert M.f1(preds, refs) == pytest.approx(f1_score(refs, preds))
    assert M.matthews_correlation(preds, refs) == pytest.approx(matthews_corrcoef(refs, preds))
    s_ref = rng.uniform(0, 5, size=200)
    s_pred = s_ref + rng.normal(0, 1, size=200)
    assert M.pearson(s_pred, s_ref) == pytest.approx(stats.pearsonr(s_pred, s_ref)[0])
    assert M.spearmanr(s_pred, s_ref) == pytest.approx(stats.spearmanr(s_pred, s_ref)[0])


def test_shape_errors():
    with pytest.raises(ValueError, match="differ in length"):
        M.accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="0 examples"):
        M.accuracy([], [])
    with pytest.raises(ValueError, match="shape"):
        M.accuracy(np.zeros((3, 2), dtype=int), [0, 1, 1])
    with pytest.raises(ValueError, match="integer class ids"):
        M.accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        M.pearson([1.0], [1.0])


# ------------------------------------------------------------------------- task-level wrappers


def test_primary_metrics():
    expected = {
        "rte": "accuracy",
        "sst2": "accuracy",
        "mrpc": "f1",
        "cola": "matthews_correlation",
        "stsb": "pearson",
    }
    assert {n: M.primary_metric(get_task(n)) for n in expected} == expected


def test_compute_task_metrics_mrpc_from_logits():
    spec = get_task("mrpc")
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5], [1.0, 0.0]], dtype=np.float32)
    refs = np.array([1, 0, 0, 1])  # argmax = [1, 0, 1, 0]: TP 1, TN 1, FP 1, FN 1
    out = M.compute_task_metrics(spec, logits, refs)
    assert list(out) == ["accuracy", "f1"]
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert all(type(v) is float for v in out.values())


def test_compute_task_metrics_cola_and_rte():
    logits = np.array([[2.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.2, 0.1]])
    refs = np.array([0, 1, 0, 0, 1])  # preds [0, 1, 1, 0, 0]
    cola = M.compute_task_metrics(get_task("cola"), logits, refs)
    assert list(cola) == ["matthews_correlation"]
    assert cola["matthews_correlation"] == pytest.approx(matthews_corrcoef(refs, [0, 1, 1, 0, 0]))
    rte = M.compute_task_metrics(get_task("rte"), logits, refs)
    assert rte == {"accuracy": pytest.approx(3 / 5)}
    # integer class ids are accepted as predictions too
    assert M.compute_task_metrics(get_task("rte"), np.array([0, 1, 1, 0, 0]), refs) == rte


def test_compute_task_metrics_stsb_column_vector():
    spec = get_task("stsb")
    preds = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    refs = np.array([2.0, 4.0, 5.0, 9.0], dtype=np.float32)
    out = M.compute_task_metrics(spec, preds, refs)
    assert list(out) == ["pearson", "spearmanr"]
    assert out["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert out["spearmanr"] == pytest.approx(1.0)


def test_compute_task_metrics_errors():
    rte = get_task("rte")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        M.compute_task_metrics(rte, np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="unlabelled"):
        M.compute_task_metrics(rte, np.zeros((2, 2)), [-1, -1])
    with pytest.raises(ValueError, match="2 predictions but 3"):
        M.compute_task_metrics(rte, np.zeros((2, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match="regression"):
        M.compute_task_metrics(get_task("stsb"), np.zeros((4, 2)), [0.0, 1.0, 2.0, 3.0])


def test_make_compute_metrics_with_eval_prediction():
    from transformers import EvalPrediction

    spec = get_task("sst2")
    fn = M.make_compute_metrics(spec)
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 1, 0])
    expected = {"accuracy": pytest.approx(2 / 3), "majority_share": pytest.approx(2 / 3), "near_constant": 0.0}
    assert fn(EvalPrediction(predictions=logits, label_ids=labels)) == expected
    # models returning (logits, hidden_states): first element is used
    assert fn(EvalPrediction(predictions=(logits, np.zeros((3, 4))), label_ids=labels)) == expected
    assert fn((logits, labels)) == expected


def test_prediction_spread_flags_a_near_constant_model_exactly():
    """Issue 20: the spread of evaluation predictions and the near-constant flag on known inputs."""
    stsb, rte = get_task("stsb"), get_task("rte")
    refs = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # population std sqrt(35/12)
    label_std = float(np.sqrt(35 / 12))
    flat = np.full(6, 2.4) + np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.0])
    out = M.prediction_spread(stsb, flat[:, None], refs)
    assert out["label_std"] == pytest.approx(label_std) and out["prediction_std"] == pytest.approx(float(np.std(flat)))
    assert out["near_constant"] == 1.0
    assert M.prediction_spread(stsb, refs * 0.5, refs)["near_constant"] == 0.0  # std ratio 0.5
    logits = np.zeros((20, 2))
    logits[:19, 0] = 1.0  # 19 of 20 predicted class 0
    logits[19, 1] = 1.0
    labels = np.array([0, 1] * 10)
    assert M.prediction_spread(rte, logits, labels) == {"majority_share": 0.95, "near_constant": 1.0}
    logits[18] = [0.0, 1.0]  # 18 of 20
    assert M.prediction_spread(rte, logits, labels) == {"majority_share": 0.9, "near_constant": 0.0}
    trainer_metrics = M.make_compute_metrics(rte)((logits, labels))
    assert (
        trainer_metrics["majority_share"] == 0.9 and trainer_metrics["accuracy"] == M.compute_task_metrics(rte, logits, labels)["accuracy"]
    )
