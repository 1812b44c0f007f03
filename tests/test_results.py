"""Rank correlations of arch_search.study.results against values computed by hand."""

import math

import pytest

from arch_search.study.results import kendall_tau, spearman


def test_kendall_tau_b_hand_computed():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs of [1,2,3,4] vs [1,3,2,4]: 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # a tie in y: x = [1,2,3], y = [1,1,2]: C=2, D=0, 3 pairs, 1 tied in y only
    # tau-b = (C - D) / sqrt((C + D + ties_x) (C + D + ties_y)) = 2 / sqrt(3 * 2)
    assert kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / 6**0.5)
    # ties in both: x = [1,1,2,3], y = [1,2,2,3]: pairs (01) tied in x, (12) tied in y, the other 4 concordant
    # -> 4 / sqrt((4 + 1) (4 + 1)) = 0.8
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    # a pair tied in both counts in neither: x = [1,1,2], y = [5,5,6]: C=2 -> 2 / sqrt(2 * 2) = 1
    assert kendall_tau([1, 1, 2], [5, 5, 6]) == pytest.approx(1.0)


def test_spearman_hand_computed():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # x = 1 2 2 3 -> average ranks 1, 2.5, 2.5, 4; y = 1 3 2 10 -> ranks 1 3 2 4; both mean 2.5
    # rank deviations (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5): products 4.5, squares 4.5 and 5
    assert spearman([1, 2, 2, 3], [1, 3, 2, 10]) == pytest.approx(math.sqrt(0.9))


@pytest.mark.parametrize("f", [kendall_tau, spearman])
def test_undefined_correlations_are_nan(f):
    assert math.isnan(f([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # a constant list
    assert math.isnan(f([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert math.isnan(f([1.0], [2.0]))  # fewer than two points
    assert type(f([1, 2, 3], [1, 3, 2])) is float
    with pytest.raises(ValueError):
        f([1, 2, 3], [1, 2])


# ---- the trial record and the front --------------------------------------------------------------


def test_pareto_mask_is_dominance_on_random_points():
    """The O(n log n) mask keeps exactly the points no other point ``dominates`` (ties: kept)."""
    import numpy as np

    from arch_search.study.results import dominates, pareto_mask

    rng = np.random.default_rng(0)
    for _ in range(50):
        acc = rng.integers(0, 6, 30) / 10  # coarse values: many ties in both objectives
        ms = rng.integers(0, 6, 30).astype(float)
        slow = [not any(dominates((acc[j], ms[j]), (acc[i], ms[i])) for j in range(30)) for i in range(30)]
        assert pareto_mask(acc, ms).tolist() == slow


def test_record_round_trips_the_user_attrs_and_the_front_skips_copies_and_infeasible():
    import optuna

    from arch_search.study.results import TrialRecord, dense_reference, front, records, set_attrs

    study = optuna.create_study(directions=["maximize", "minimize"])
    points = [(0.90, 100.0, {"reference": "bert_base"}), (0.85, 40.0, {}), (0.85, 40.0, {"duplicate_of": 1}),
              (0.80, 30.0, {"constraints": [1.0, -1.0]}), (0.70, 50.0, {}), (0.88, 60.0, {})]
    for acc, ms, attrs in points:
        study.add_trial(optuna.trial.create_trial(values=[acc, ms], user_attrs={"summary": f"{acc}", **attrs}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"summary": "x"}))
    recs = records(study.trials)
    assert [r.number for r in front(recs)] == [1, 5, 0]  # fastest first; the copy and the infeasible one out
    assert {t.number for t in study.best_trials} >= {1, 5, 0}  # Optuna's front agrees (it keeps the copy, 2)
    assert dense_reference(recs).number == 0 and recs[3].constraints == (1.0, -1.0) and not recs[3].feasible
    assert recs[6].state == "FAIL" and not recs[6].finished and recs[6].score is None
    trial = study.ask()
    set_attrs(trial, params=3, spec_hash="abc")
    with pytest.raises(KeyError, match="not TrialRecord fields: paramz"):
        set_attrs(trial, paramz=3)
    study.tell(trial, [0.5, 1.0])
    assert TrialRecord.of(study.trials[-1]).params == 3


def test_signal_to_noise_is_sd_of_means_over_mean_seed_sd():
    from arch_search.study.results import signal_to_noise

    # means -0.30, -0.35, -0.40: sd 0.05; seed sds 0, 0.04, 0.02: mean 0.02 -> 2.5
    assert signal_to_noise([-0.30, -0.35, -0.40], [0.0, 0.04, 0.02]) == pytest.approx(2.5)
    assert math.isnan(signal_to_noise([1.0, 2.0], [0.0, 0.0]))  # no seed noise: undefined, not infinite
    assert math.isnan(signal_to_noise([1.0], [0.1]))
    with pytest.raises(ValueError, match="2 means against 1 sds"):
        signal_to_noise([1.0, 2.0], [0.1])


def test_kendall_tau_interval_is_a_seeded_bootstrap_over_pairs():
    from arch_search.study.results import kendall_tau_interval

    x = list(range(12))
    assert kendall_tau_interval(x, x) == pytest.approx((1.0, 1.0))  # every resample in the same order
    assert kendall_tau_interval(x, x[::-1]) == pytest.approx((-1.0, -1.0))
    noisy = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10]
    lo, hi = kendall_tau_interval(x, noisy, level=0.9)
    assert lo < kendall_tau(x, noisy) < hi <= 1.0 and hi - lo > 0.05
    assert kendall_tau_interval(x, noisy, level=0.9) == (lo, hi)  # seeded: the same interval again
    wider = kendall_tau_interval(x, noisy, level=0.99)
    assert wider[0] <= lo and wider[1] >= hi
    assert all(math.isnan(v) for v in kendall_tau_interval([1, 1, 1], [1, 2, 3]))  # undefined in every resample
