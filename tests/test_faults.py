"""Crash safety: a worker killed with SIGKILL mid-trial loses no completed trial, and its
running trial is failed and retried by the next worker at once (its process is gone); two
workers started together on one study never evaluate one design twice."""

import subprocess
import sys

import optuna
import pytest

from tests.conftest import REPO, kill_when

WORKER = REPO / "tests" / "worker.py"

SPACE = "base: minilm_l6\ngroups: {q: [1, 2, 4, 8], k: [1, 2, 4, 8], v: [1, 2, 4, 8], ffn_in: [1, 2, 4, 8], ffn_out: [1, 2, 4, 8]}\n"


@pytest.mark.slow
def test_sigkill_mid_trial_loses_nothing_and_the_trial_is_retried(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path}/study.db"
    cmd = [sys.executable, str(WORKER), str(tmp_path / "space.yaml"), url]
    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING

    def ready(trials):
        busy = [t for t in trials if t.state == running]
        return sum(t.state == complete for t in trials) >= 2 and busy and "spec_hash" in busy[0].user_attrs

    trials = kill_when([*cmd, "3.0", "0", "50", "faults"], "faults", url, ready, timeout=180)
    done = [t for t in trials if t.state == complete]
    running = [t for t in trials if t.state == running]
    killed = running[0]
    before = {t.number: t.values for t in done}
    # rerun at once: the heartbeat grace (60 s) has not passed; the dead PID is what tells

    second = subprocess.run([*cmd, "0.05", "1", str(len(before) + 2), "faults"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    trials = optuna.load_study(study_name="faults", storage=url).trials
    by_number = {t.number: t for t in trials}
    for number, values in before.items():  # nothing completed was lost or changed
        assert by_number[number].state == optuna.trial.TrialState.COMPLETE and by_number[number].values == values
    assert by_number[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.slow
def test_two_workers_with_the_same_seed_never_evaluate_one_design_twice(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path}/study.db"
    cmd = [sys.executable, str(WORKER), str(tmp_path / "space.yaml"), url, "0.3", "0", "10", "pair"]
    workers = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read().decode()[-2000:]
    trials = optuna.load_study(study_name="pair", storage=url).trials
    evaluated = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    hashes = [t.user_attrs["spec_hash"] for t in evaluated]
    assert len(hashes) == len(set(hashes)) and 10 <= len(hashes) <= 11  # n_trials distinct (+1: two workers)
    assert len({t.user_attrs["worker"] for t in evaluated}) == 2
    skipped = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert all(t.user_attrs["spec_hash"] == trials[t.user_attrs["duplicate_of"]].user_attrs["spec_hash"] for t in skipped)


def test_workers_racing_to_create_a_new_database_retry(tmp_path, monkeypatch):
    """Two workers starting on a fresh database both create its schema; the loser's duplicate
    alembic row (IntegrityError) is retried, and the storage then opens. Other database errors
    are not retried."""
    import sqlalchemy.exc

    from arch_search.study import storage as where

    real, calls = where.RDBStorage, []

    def losing_once(url, **kw):
        calls.append(url)
        if len(calls) == 1:
            real(url, **kw)  # the other worker wins: the schema is now there
            raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return real(url, **kw)

    monkeypatch.setattr(where, "RDBStorage", losing_once)
    monkeypatch.setattr(where.time, "sleep", lambda s: None)
    url = f"sqlite:///{tmp_path}/shared.db"
    storage = where.storage_for(url)
    assert len(calls) == 2
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2

    def broken(url, **kw):
        calls.append(url)
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(where, "RDBStorage", broken)
    calls.clear()
    with pytest.raises(sqlalchemy.exc.OperationalError, match="disk I/O error"):
        where.storage_for(url)
    assert len(calls) == 1


@pytest.mark.slow
def test_workers_starting_together_claim_a_queued_trial_once(tmp_path):
    """Four processes open the shared SQLite study at once and each asks for a trial while one is
    queued (a reference): exactly one gets it, and each tells its own trial, in each of 8 rounds.
    SQLite ignores SELECT ... FOR UPDATE: without ``storage._immediate`` (BEGIN IMMEDIATE) two
    processes claimed the queued trial in 4 of 8 rounds here and the second failed with "Cannot
    tell a COMPLETE trial" (the fan-out test's rare failure)."""
    from arch_search.study.storage import storage_for
    from tests.conftest import race

    url = f"sqlite:///{tmp_path}/shared.db"
    for round_ in range(8):
        name = f"s{round_}"
        optuna.create_study(study_name=name, storage=storage_for(url)).enqueue_trial({"x": 0.5})

        def claim():
            study = optuna.load_study(study_name=name, storage=storage_for(url))
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            study.tell(trial, 1.0)

        assert race(claim) == [0] * 4, f"round {round_}"
        trials = optuna.load_study(study_name=name, storage=url).trials
        assert len(trials) == 4 and [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
        assert sum(t.params["x"] == 0.5 for t in trials) == 1
