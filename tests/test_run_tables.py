"""arch_search.study.run_tables: the rows of trials.csv, pareto.csv and confirmed.csv, study.json,
and their console tables."""

import csv
import json

import pytest

from arch_search.stats import Noise
from arch_search.study.record import Confirmed, TrialRecord
from arch_search.study.run_dir import RunDir
from arch_search.study.run_tables import (confirmed_rows, format_confirmed, format_pareto, trial_rows, with_confirmed,
                                          with_current_names, write_run)
from tests.test_record import rec


def confirmation():
    """Three designs' records and their confirmations with two seeds (trial 0 is dense)."""
    recs = [rec(0, 0.9, 100, "bert_base"), rec(1, 0.8, 40, "squeezebert"), rec(2, 0.85, 60)]
    confirmed = [Confirmed(0, "ll", {0: -0.30, 1: -0.32}, {0: {"accuracy": 0.90}, 1: {"accuracy": 0.88}}),
                 Confirmed(1, "ll", {0: -0.40, 1: -0.42}, {0: {"accuracy": 0.85}, 1: {"accuracy": 0.85}}),
                 Confirmed(2, "ll", {0: -0.305, 1: -0.33}, {0: {"accuracy": 0.89}, 1: {"accuracy": 0.88}})]
    return recs, confirmed


def test_confirmed_rows_pair_seeds_and_state_the_minimum_detectable_effect():
    recs, confirmed = confirmation()
    rows = confirmed_rows(confirmed, recs, Noise(sd=0.01, designs=3, dof=3), dev_metric="accuracy")
    by = {r["trial"]: r for r in rows}
    assert [r["trial"] for r in rows] == [1, 2, 0]  # fastest first
    assert by[1]["confirmed_vs_dense_points"] == -10.0 and by[1]["verdict"] == "worse than dense"
    assert by[2]["confirmed_vs_dense_points"] == pytest.approx(-0.75) and by[2]["verdict"] == "within noise"
    assert by[2]["mde_points"] == pytest.approx(round(100 * 2.8 * 0.01 * (2 / 2) ** 0.5, 2))
    assert by[1]["dev_vs_dense_points"] == pytest.approx(-4.0) and by[0]["dev_accuracy"] == pytest.approx(0.89)
    assert [r["confirmed_front"] for r in rows] == [True, True, True]
    assert all(r["on_search_front"] for r in rows)


def test_front_designs_within_the_noise_of_a_faster_one_are_marked():
    def trial(number, score, ms):
        return TrialRecord(number, "COMPLETE", score, ms, summary=f"d{number}")

    front = [trial(0, 0.80, 10.0), trial(1, 0.805, 20.0), trial(2, 0.85, 30.0)]  # fastest first
    rows = trial_rows(front, None, noise=Noise(sd=0.01, designs=2))
    assert [r["within_noise"] for r in rows] == [False, True, False]
    assert "~0.8050" in format_pareto(rows) and "~0.8500" not in format_pareto(rows)
    assert "within_noise" not in trial_rows(front, None)[0]


def test_rows_of_older_runs_read_under_todays_names():
    old = {"trial": "3", "proxy_accuracy": "0.5", "accuracy_vs_dense_points": "-1.0", "latency_ms": "2.0"}
    assert with_current_names(old) == {"trial": "3", "score": "0.5", "score_vs_dense_points": "-1.0", "latency_ms": "2.0"}


def test_the_front_carries_the_confirmed_score_where_there_is_one():
    front = [{"trial": 1, "score": 0.8}, {"trial": 5, "score": 0.9}]
    confirmed = [{"trial": 1, "confirmed_score": -0.4, "confirmed_vs_dense_points": -10.0, "verdict": "worse than dense",
                  "seeds": 2}]
    assert with_confirmed(front, confirmed) == [
        {"trial": 1, "score": 0.8, "confirmed_score": -0.4, "confirmed_vs_dense_points": -10.0, "verdict": "worse than dense"},
        {"trial": 5, "score": 0.9, "confirmed_score": "", "confirmed_vs_dense_points": "", "verdict": ""}]


def test_write_run_writes_the_runs_files_with_the_confirmations_noise(tmp_path):
    recs, confirmed = confirmation()
    noise = Noise(sd=0.01, designs=3, dof=3, source="seeds")
    rows, search_noise, confirmed_ = write_run(RunDir(tmp_path / "run"), recs, {"study_name": "s"}, {0: 110.0, 1: 44.0},
                                               confirmed, noise, "accuracy")
    assert [r["trial"] for r in rows] == [1, 2, 0] and rows[0]["remeasured_ms"] == 44.0 and rows[1]["remeasured_ms"] == ""
    assert rows[0]["verdict"] == "worse than dense" and rows[0]["remeasured_speedup"] == pytest.approx(2.5)
    assert search_noise is None and [r["trial"] for r in confirmed_] == [1, 2, 0]
    summary = json.loads((tmp_path / "run" / "study.json").read_text())
    assert summary["study_name"] == "s" and summary["states"]["COMPLETE"] == 3 and summary["noise"]["sd"] == 0.01
    assert summary["proxy_noise"] is None and summary["references"] == {"bert_base": 0, "squeezebert": 1}
    with open(tmp_path / "run" / "confirmed.csv", newline="") as f:
        assert [r["trial"] for r in csv.DictReader(f)] == ["1", "2", "0"]
    with open(tmp_path / "run" / "trials.csv", newline="") as f:
        assert "within_noise" not in next(csv.DictReader(f))  # a front's column only
    table = format_confirmed(confirmed_, noise, {"score": -0.25, "metric": "ll", "dev": {"accuracy": 0.91}})
    assert "noise: sd 0.0100 of the confirmed score, 3 dof (seeds)" in table
    assert "score -0.2500 accuracy 91.00; the healed dense reference minus it: -6.00 points" in table
