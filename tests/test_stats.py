"""arch_search.stats against values computed by hand: rank correlations and their bootstrap
interval, signal-to-noise, the pooled seed noise and a paired difference's standard error.
(The paired noise and ``paired_difference`` are pinned in test_experiments_analysis.py, beside
the lessons that use them.)"""

import math

import numpy as np
import pytest

from arch_search.stats import Noise, kendall_tau, kendall_tau_interval, paired_se, pooled_noise, signal_to_noise, spearman


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


def test_spearman_of_arrays_by_hand():
    assert spearman(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(0.8)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])


@pytest.mark.parametrize("f", [kendall_tau, spearman])
def test_undefined_correlations_are_nan(f):
    assert math.isnan(f([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # a constant list
    assert math.isnan(f([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert math.isnan(f([1.0], [2.0]))  # fewer than two points
    assert type(f([1, 2, 3], [1, 3, 2])) is float
    with pytest.raises(ValueError):
        f([1, 2, 3], [1, 2])


def test_kendall_tau_interval_is_a_seeded_bootstrap_over_pairs():
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


def test_signal_to_noise_is_sd_of_means_over_mean_seed_sd():
    # means -0.30, -0.35, -0.40: sd 0.05; seed sds 0, 0.04, 0.02: mean 0.02 -> 2.5
    assert signal_to_noise([-0.30, -0.35, -0.40], [0.0, 0.04, 0.02]) == pytest.approx(2.5)
    assert math.isnan(signal_to_noise([1.0, 2.0], [0.0, 0.0]))  # no seed noise: undefined, not infinite
    assert math.isnan(signal_to_noise([1.0], [0.1]))
    with pytest.raises(ValueError, match="2 means against 1 sds"):
        signal_to_noise([1.0, 2.0], [0.1])


def test_pooled_noise_has_one_dof_per_paired_design():
    noise = pooled_noise([[0.5, 0.52], [0.4, 0.4], [0.3, 0.36], [0.1]], "seeds")
    assert (noise.designs, noise.dof) == (3, 3)
    assert noise.sd == pytest.approx(((0.02**2 / 2 + 0 + 0.06**2 / 2) / 3) ** 0.5)
    assert pooled_noise([[1.0]], "seeds") is None


def test_paired_se_is_sd_times_root_two_over_seeds():
    noise = Noise(sd=0.5, designs=4, dof=4)
    assert paired_se(noise, 2) == pytest.approx(0.5)  # 0.5 x sqrt(2 / 2)
    assert paired_se(noise, 8) == pytest.approx(0.25)  # 0.5 x sqrt(2 / 8)
