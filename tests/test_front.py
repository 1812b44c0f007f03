"""arch_search.study.front: the Pareto mask against brute-force dominance, the front of a search's
records, and hypervolume by hand; every point is (score, latency ms)."""

import numpy as np
import pytest

from arch_search.study.front import dominates, front, hypervolume_2d, hypervolume_history, pareto_mask
from arch_search.study.record import records
from tests.test_record import study_of


def test_pareto_mask_is_dominance_on_random_points():
    """The O(n log n) mask keeps exactly the points no other point ``dominates`` (ties: kept)."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        score = rng.integers(0, 6, 30) / 10  # coarse values: many ties in both objectives
        ms = rng.integers(0, 6, 30).astype(float)
        slow = [not any(dominates((score[j], ms[j]), (score[i], ms[i])) for j in range(30)) for i in range(30)]
        assert pareto_mask(score, ms).tolist() == slow


def test_pareto_mask_by_hand():
    score = np.array([0.5, 0.8, 0.6, 0.8, 0.4, 0.9])
    ms = np.array([2.0, 5.0, 6.0, 5.0, 2.0, 9.0])
    # equal points (1, 3) both stay; 4 is dominated by 0 (same ms, lower score); 2 by 1
    assert pareto_mask(score, ms).tolist() == [True, True, False, True, False, True]


def test_the_front_skips_copies_and_infeasible():
    study = study_of()
    recs = records(study.trials)
    assert [r.number for r in front(recs)] == [1, 5, 0]  # fastest first; the copy and the infeasible one out
    assert {t.number for t in study.best_trials} >= {1, 5, 0}  # Optuna's front agrees (it keeps the copy, 2)


def test_hypervolume_of_three_points_by_hand():
    # maximise accuracy, minimise ms; reference point (accuracy 0, 10 ms)
    points = [(0.5, 2.0), (0.8, 5.0), (0.6, 6.0)]  # the third is dominated by the second
    # after 1: 8 ms x 0.5 = 4.0; after 2: (5 - 2) x 0.5 + (10 - 5) x 0.8 = 5.5; after 3: unchanged
    assert hypervolume_history(points, ref=(0.0, 10.0)) == pytest.approx([4.0, 5.5, 5.5])
    assert hypervolume_2d([(0.5, 2.0), (0.8, 5.0)], ref=(0.0, 10.0)) == pytest.approx(5.5)
    # a point that dominates both, one outside the reference box, a tie at the same latency
    assert hypervolume_history([(0.5, 2.0), (0.9, 1.0), (0.95, 11.0), (0.9, 1.0)], ref=(0.0, 10.0)) == \
           pytest.approx([4.0, 8.1, 8.1, 8.1])
    assert hypervolume_history([(0.4, 3.0), (0.6, 3.0)], ref=(0.0, 10.0)) == pytest.approx([2.8, 4.2])


def test_both_hypervolumes_take_score_then_latency_in_any_order():
    """One order, (score, ms), for the points and the reference point of both functions; the
    front's points may come in any order."""
    front_ = [(0.9, 6.0), (0.5, 2.0), (0.8, 5.0)]  # non-dominated, not sorted
    # (5 - 2) x 0.5 + (6 - 5) x 0.8 + (10 - 6) x 0.9 = 5.9
    assert hypervolume_2d(front_, ref=(0.0, 10.0)) == pytest.approx(5.9)
    assert hypervolume_2d(front_, ref=(0.0, 10.0)) == hypervolume_history(front_, ref=(0.0, 10.0))[-1]
    assert hypervolume_2d([], ref=(0.0, 10.0)) == 0.0 and hypervolume_history([], ref=(0.0, 10.0)) == []
