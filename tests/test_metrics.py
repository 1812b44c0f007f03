"""GLUE's metrics against values computed by hand (arch_search.tasks.metrics)."""

from __future__ import annotations

import math

import pytest

from arch_search.tasks.metrics import glue_metric


def test_accuracy_and_f1():
    # tp=2 (rows 0, 3), tn=1, fp=1 (row 2), fn=0: accuracy 3/4, f1 = 2tp / (2tp + fp + fn) = 4/5
    assert glue_metric("mrpc", [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 0.75, "f1": 0.8}
    assert glue_metric("qqp", [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 0.75, "f1": 0.8}
    assert glue_metric("rte", [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 0.75}
    assert glue_metric("mnli", [0, 1, 2, 2, 1], [0, 1, 2, 1, 0]) == {"accuracy": 0.6}
    assert glue_metric("mrpc", [0, 0], [0, 0]) == {"accuracy": 1.0, "f1": 0.0}  # no positives at all


def test_matthews():
    # labels 1 1 1 1 0 0 0, predictions 1 1 1 0 0 0 1: tp=3, fn=1, tn=2, fp=1
    # MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (6 - 1) / sqrt(4*4*3*3) = 5/12
    out = glue_metric("cola", [1, 1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 0, 0, 0])
    assert out["matthews_correlation"] == pytest.approx(5 / 12, abs=1e-15)
    assert out["accuracy"] == pytest.approx(5 / 7)
    assert glue_metric("cola", [0, 1, 0, 1], [1, 0, 1, 0])["matthews_correlation"] == pytest.approx(-1.0)
    # all predictions 1: (tp+fp)(tn+fn) has a zero factor -> 0.0, not NaN
    assert glue_metric("cola", [1, 1, 1, 1], [1, 0, 1, 0])["matthews_correlation"] == 0.0


def test_correlations():
    out = glue_metric("stsb", [0.5, 1.0, 1.5, 4.0], [1.0, 2.0, 3.0, 8.0])  # y = 2x: perfectly linear
    assert out["pearson"] == pytest.approx(1.0) and out["spearman"] == pytest.approx(1.0)
    # x = 1 2 2 3 -> ranks 1, 2.5, 2.5, 4; y = 1 3 2 10 -> ranks 1 3 2 4; both mean 2.5
    # rank deviations (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5): sum of products 4.5, squares 4.5 and 5
    # spearman = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    out = glue_metric("stsb", [1, 2, 2, 3], [1, 3, 2, 10])
    assert out["spearman"] == pytest.approx(math.sqrt(0.9), abs=1e-15)
    # pearson of the raw values: means 2 and 4, deviations (-1, 0, 0, 1) and (-3, -1, -2, 6):
    # sum of products 9, squares 2 and 50 -> 9 / sqrt(100) = 0.9
    assert out["pearson"] == pytest.approx(0.9, abs=1e-15)
    assert glue_metric("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == {"pearson": 0.0, "spearman": 0.0}
    assert all(type(v) is float for v in out.values())


def test_metric_input_errors():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        glue_metric("sst2", [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="class ids"):
        glue_metric("sst2", [0.7, 0.2], [1, 0])
    with pytest.raises(ValueError, match=r"in 0\.\.1"):
        glue_metric("sst2", [2, 0], [1, 0])
    with pytest.raises(ValueError, match="1-D"):
        glue_metric("sst2", [[0.1, 0.9]], [1])
