"""arch_search.study.sampling: per-trial sampler seeds reproduce and differ; the binned start
draws each trial's design in its MAC-speedup bin. (The leveled start inside a search, the
references first, is in test_search.py.)"""

import json
import math
import random

import optuna
import pytest

from arch_search.design.space import SearchSpace
from arch_search.study.sampling import LeveledStart, TrialSeededSampler, mac_speedup, speedup_edges, trial_seed


def test_per_trial_seeds_reproduce_and_differ():
    assert trial_seed(0, 5) == trial_seed(0, 5) and len({trial_seed(0, n) for n in range(100)}) == 100
    assert trial_seed(0, 5) != trial_seed(1, 5)

    def proposals(seed):
        study = optuna.create_study(sampler=TrialSeededSampler(optuna.samplers.RandomSampler, seed))
        study.optimize(lambda t: t.suggest_int("x", 0, 10**6), n_trials=5)
        return [t.params["x"] for t in study.trials]

    assert proposals(0) == proposals(0) != proposals(1)
    assert len(set(proposals(0))) == 5


@pytest.mark.slow
def test_binned_start_puts_trial_n_in_speedup_bin_n_mod_bins():
    """Over 7 x 20 trial numbers, each draw lies in its MAC-speedup bin (squeezebert's range
    has a design in every bin), and every bin gets the same count; bins=0 is the level draw."""
    space = SearchSpace.load("squeezebert")
    edges = speedup_edges(space, 7)
    assert edges[0] == 1.0 and edges[-1] == pytest.approx(11.3846, abs=1e-4)  # every projection at G=16 (closed form)
    assert all(b / a == pytest.approx(edges[1]) for a, b in zip(edges, edges[1:]))  # geometric
    start = LeveledStart(None, space, trials=140, seed=5, bins=7)
    counts = [0] * 7
    for n in range(140):
        x = mac_speedup(space, space.sample(optuna.trial.FixedTrial(start.draw(n))))
        k = n % 7
        assert edges[k] * (1 - 1e-9) <= x <= edges[k + 1] * (1 + 1e-9), (n, x)
        counts[k] += 1
    assert counts == [20] * 7
    assert len({json.dumps(start.draw(n), sort_keys=True) for n in range(140)}) > 100  # draws, not one design a bin
    plain = LeveledStart(None, space, trials=4, seed=5)
    assert plain.draw(3) == space.leveled_params(random.Random(trial_seed(5, 3)))
    assert math.isclose(mac_speedup(space, space.base), 1.0)
