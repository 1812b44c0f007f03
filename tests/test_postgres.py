"""Many workers, real engine: two worker processes share one study on a PostgreSQL server.
.ci/run installs and starts the server and sets ARCH_SEARCH_POSTGRES_URL; without it this
test fails (it does not skip)."""

import os
import subprocess
import sys
import uuid

import optuna
import pytest

from arch_search.study.storage import storage_for
from tests.conftest import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

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
        finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                    and "duplicate_of" not in t.user_attrs]  # distinct evaluations (copies do not count)
        # none lost, none running; a worker may finish the one trial it had started when the other reached n
        assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
        assert n <= len(finished) <= n + 1
        assert len({t.number for t in trials}) == len(trials) == len({t._trial_id for t in trials})  # no duplicates
        assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
        assert len({t.user_attrs["spec_hash"] for t in finished}) == len(finished)  # no design evaluated twice
        references = sorted(t.user_attrs["reference"] for t in trials if "reference" in t.user_attrs)
        assert references == ["bert_base", "squeezebert"]  # enqueued once, by the worker that created the study
    finally:
        optuna.delete_study(study_name=name, storage=storage_for(url))


@pytest.mark.shared
@pytest.mark.parametrize("how", ["override", "environment"])
def test_the_storage_password_is_written_nowhere(how, tmp_path):
    """A search on PostgreSQL with W&B logging: the password is in no file under the run
    directory (Hydra's .hydra/*.yaml, W&B's offline runs, the CSVs), and not in the output,
    whether the URL came as `storage.url=...` or in ARCH_SEARCH_STORAGE_URL."""
    from sqlalchemy.engine import make_url

    from tests.conftest import SHARED

    url = os.environ.get("ARCH_SEARCH_POSTGRES_URL")
    assert url, "set ARCH_SEARCH_POSTGRES_URL=postgresql://user:pass@host/db (see .ci/run, which starts one)"
    password = make_url(url).password
    assert password and len(password) >= 8, "the test needs a password found nowhere else (see .ci/run)"
    space = tmp_path / "tiny.yaml"
    space.write_text("base: minilm_l6\ngroups: {q: [1, 4], ffn_in: [1, 4]}\n")
    name = f"secret-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "ARCH_SEARCH_STORAGE_URL"}
    if how == "environment":
        env["ARCH_SEARCH_STORAGE_URL"] = url
    out = subprocess.run(
        [sys.executable, "-m", "arch_search", "run", f"space={space}", "storage=postgres",
         *([f"storage.url={url}"] if how == "override" else []), f"search.study_name={name}", "logger=wandb",
         "proxy=zero_cost", "~confirm", "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.init=scratch",
         "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}", "proxy_setup.heldout=100",
         "proxy_setup.vocab_size=400", "proxy.batch_size=8", "proxy.threads=1", "seq_len=8", "latency.rounds=1",
         "latency.warmup=0", "search.progress=false", "search.n_trials=3", f"cache_dir={tmp_path}/cache",
         f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        assert password not in out.stdout + out.stderr
        files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
        assert any(p.parent.name == ".hydra" for p in files) and any(p.suffix == ".wandb" for p in files)
        leaks = [str(p) for p in files if password.encode() in p.read_bytes()]
        assert not leaks, leaks
    finally:
        optuna.delete_study(study_name=name, storage=storage_for(url))
