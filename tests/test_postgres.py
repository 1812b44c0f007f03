"""Many workers, real engine: two worker processes share one study on a PostgreSQL server.
.ci/run installs and starts the server and sets ARCH_SEARCH_POSTGRES_URL; without it this
test fails (it does not skip)."""

import os
import subprocess
import sys
import uuid

import optuna

from arch_search.runs import storage_for
from tests.conftest import REPO

SPACE = "base: minilm_l6\ngroups: {q: [1, 2, 4, 8], k: [1, 2, 4, 8], v: [1, 2, 4, 8], ffn_in: [1, 2, 4, 8], ffn_out: [1, 2, 4, 8]}\n"


def test_two_workers_share_one_study_on_postgres(tmp_path):
    url = os.environ.get("ARCH_SEARCH_POSTGRES_URL")
    assert url, "set ARCH_SEARCH_POSTGRES_URL=postgresql://user:pass@host/db (see .ci/run, which starts one)"
    (tmp_path / "space.yaml").write_text(SPACE)
    name, n = f"two-workers-{uuid.uuid4().hex[:8]}", 8
    cmd = [sys.executable, str(REPO / "tests" / "worker.py"), str(tmp_path / "space.yaml"), url, "0.3"]
    workers = [subprocess.Popen([*cmd, str(seed), str(n), name], stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    try:
        trials = optuna.load_study(study_name=name, storage=storage_for(url)).trials
        states = {t.state for t in trials}
        finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
        # none lost, none running; a worker may finish the one trial it had started when the other reached n
        assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
        assert n <= len(finished) <= n + 1
        assert len({t.number for t in trials}) == len(trials) == len({t._trial_id for t in trials})  # no duplicates
        assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
        references = sorted(t.user_attrs["reference"] for t in trials if "reference" in t.user_attrs)
        assert references == ["bert_base", "squeezebert"]  # enqueued once, by the worker that created the study
    finally:
        optuna.delete_study(study_name=name, storage=storage_for(url))
