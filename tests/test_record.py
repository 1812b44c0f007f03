"""arch_search.study.record: a trial's user attrs round-trip through TrialRecord, set_attrs takes
only its fields, the dense reference, the search proxy's noise and a design's confirmation."""

import optuna
import pytest

from arch_search.study.record import Confirmed, TrialRecord, dense_reference, proxy_noise, records, set_attrs

# (score, latency ms, user attrs) of the trials of ``study_of``: the dense reference, a design, its copy,
# an infeasible design, a dominated one and a slower, better one
POINTS = [(0.90, 100.0, {"reference": "bert_base"}), (0.85, 40.0, {}), (0.85, 40.0, {"duplicate_of": 1}),
          (0.80, 30.0, {"constraints": [1.0, -1.0]}), (0.70, 50.0, {}), (0.88, 60.0, {})]


def rec(number, score, ms, reference=None):
    """A finished trial's record, with a hash and a summary of its own."""
    return TrialRecord(number, "COMPLETE", score, ms, reference=reference, spec_hash=f"h{number}", summary=f"d{number}",
                       spec="x")


def study_of(points=POINTS) -> optuna.Study:
    """An in-memory study with a finished trial per point, then a failed one."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for score, ms, attrs in points:
        study.add_trial(optuna.trial.create_trial(values=[score, ms], user_attrs={"summary": f"{score}", **attrs}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"summary": "x"}))
    return study


def test_record_round_trips_the_user_attrs():
    study = study_of()
    recs = records(study.trials)
    assert dense_reference(recs).number == 0 and recs[3].constraints == (1.0, -1.0) and not recs[3].feasible
    assert recs[6].state == "FAIL" and not recs[6].finished and recs[6].score is None
    trial = study.ask()
    set_attrs(trial, params=3, spec_hash="abc")
    with pytest.raises(KeyError, match="not TrialRecord fields: paramz"):
        set_attrs(trial, paramz=3)
    study.tell(trial, [0.5, 1.0])
    assert TrialRecord.of(study.trials[-1]).params == 3


def test_the_proxy_noise_is_the_references_scored_with_two_seeds():
    recs = [TrialRecord(0, "COMPLETE", 0.9, 100.0, reference="bert_base", proxy_score=0.90, proxy_score_again=0.92),
            TrialRecord(1, "COMPLETE", 0.8, 40.0, reference="squeezebert", proxy_score=0.80, proxy_score_again=0.80),
            TrialRecord(2, "COMPLETE", 0.8, 40.0, reference="squeezebert", proxy_score=0.80, proxy_score_again=0.70,
                        duplicate_of=1),  # a copy: its scores are another trial's
            TrialRecord(3, "COMPLETE", 0.7, 50.0, proxy_score=0.7)]  # one seed only
    noise = proxy_noise(recs)
    assert (noise.designs, noise.dof) == (2, 2) and noise.sd == pytest.approx((0.02**2 / 2 / 2) ** 0.5)
    assert proxy_noise(recs[3:]) is None and dense_reference(recs[1:]) is None


def test_a_confirmation_averages_its_seeds():
    c = Confirmed(4, "ll", {0: -0.30, 1: -0.34}, {0: {"accuracy": 0.90}, 1: {"accuracy": 0.86, "f1": 0.5}})
    assert c.mean == pytest.approx(-0.32) and c.dev_mean("accuracy") == pytest.approx(0.88)
    assert c.dev_mean("f1") == pytest.approx(0.5) and c.dev_mean("mcc") is None
