"""GLUE's metrics (Wang et al., ICLR 2019, Table 1): Matthews correlation for CoLA,
Pearson/Spearman correlation for STS-B, F1/accuracy for MRPC and QQP, accuracy for the others.

Degenerate cases score 0.0 rather than NaN (a constant column, no positive class), as sklearn
does and GLUE's scorers report; values are Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from arch_search.tasks.glue import GlueTask, get_task


def glue_metric(task: str | GlueTask, predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """GLUE's metrics of one task; ``task.metric`` names the main one.

    Classification: ``predictions`` are class ids; every task gets ``accuracy``, MRPC and QQP
    also ``f1`` (of the positive class 1), CoLA also ``matthews_correlation``. STS-B:
    ``predictions`` are float scores; ``pearson`` and ``spearman`` (``scipy.stats``; Spearman
    is Pearson of average ranks, ties share their mean rank). Degenerate cases (a constant
    column, no positive class) score 0.0 rather than NaN, as sklearn does. Values are Python
    floats.
    """
    t = get_task(task)
    p = np.asarray(predictions)
    y = np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(f"glue_metric: predictions and labels must be 1-D, got shapes {p.shape} and {y.shape}")
    if len(p) != len(y):
        raise ValueError(f"glue_metric: {len(p)} predictions for {len(y)} labels")
    if len(p) == 0:
        raise ValueError("glue_metric: no predictions")
    if t.is_regression:
        p, y = p.astype(np.float64), y.astype(np.float64)
        if not (np.isfinite(p).all() and np.isfinite(y).all()):
            raise ValueError("glue_metric: predictions and labels must be finite")
        if np.ptp(p) == 0 or np.ptp(y) == 0:  # a constant column (or one row): undefined, scored 0.0
            return {"pearson": 0.0, "spearman": 0.0}
        return {"pearson": float(stats.pearsonr(p, y).statistic), "spearman": float(stats.spearmanr(p, y).statistic)}
    p, y = _class_ids(p, t, "predictions"), _class_ids(y, t, "labels")
    out = {"accuracy": float(np.mean(p == y))}
    if t.name in ("mrpc", "qqp"):
        tp = int(np.sum((p == 1) & (y == 1)))
        wrong = int(np.sum(p != y))  # binary: fp + fn
        out["f1"] = 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0
    if t.name == "cola":
        out["matthews_correlation"] = _matthews(p, y, t.num_labels)
    return out


def _class_ids(x: np.ndarray, task: GlueTask, what: str) -> np.ndarray:
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and not np.array_equal(x, np.round(x))):
        raise ValueError(f"glue_metric: {task.name} {what} must be class ids, got dtype {x.dtype}")
    ids = x.astype(np.int64)
    if ids.min() < 0 or ids.max() >= task.num_labels:
        raise ValueError(f"glue_metric: {task.name} {what} must be in 0..{task.num_labels - 1}")
    return ids


def _matthews(p: np.ndarray, y: np.ndarray, k: int) -> float:
    """Multiclass MCC (Gorodkin, 2004), as sklearn's ``matthews_corrcoef``; binary: the usual
    (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))."""
    confusion = np.zeros((k, k), dtype=np.float64)  # [true, predicted]
    np.add.at(confusion, (y, p), 1.0)
    true_per_class, pred_per_class = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    cov_yp = correct * n - true_per_class @ pred_per_class
    cov_pp = n * n - pred_per_class @ pred_per_class
    cov_yy = n * n - true_per_class @ true_per_class
    if cov_pp * cov_yy == 0:
        return 0.0
    return float(cov_yp / math.sqrt(cov_pp * cov_yy))
