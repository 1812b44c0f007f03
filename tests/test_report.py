"""The report: a 10,000-trial synthetic study in SQLite reported in under 60 s; a run directory,
a confirmed run; bad input through the CLI. (The front, hypervolume and rank correlations it
draws are pinned by hand in test_front.py and test_stats.py.)"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.trial import TrialState

from arch_search.measure.cost import closed_form_macs
from arch_search.app.report import write_report
from arch_search.design.space import SearchSpace
from arch_search.design.spec import PROJECTIONS

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- a synthetic study with the user attrs a real search stores --------------------------------


def synthetic_trials(n: int, space: str = "squeezebert", seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """``n`` trials as `Search.objective` records them: the two references first, then random
    designs of ``space``; latency follows the MACs (with noise), accuracy falls with log2 of the
    groups. Every 97th trial re-uses an earlier result (``duplicate_of``), every 89th is over a
    constraint, every 101st was pruned."""
    rng = random.Random(seed)
    sp = SearchSpace.load(space)
    refs = sp.references()
    specs = [refs["bert_base"], refs["squeezebert"], *sp.random_specs(n - 2, seed=seed)]
    dense_macs = closed_form_macs(specs[0])
    dists = {p: CategoricalDistribution(list(c)) for p, c in sp.groups.items()} | {"shuffle": CategoricalDistribution(list(sp.shuffle))}
    trials = []
    for i, spec in enumerate(specs):
        params = sp.params_of(spec)
        distributions = {k: dists[k.split(".")[0]] for k in params}
        if i > 2 and i % 101 == 0:
            trials.append(optuna.trial.create_trial(params=params, distributions=distributions, state=TrialState.PRUNED))
            continue
        macs = closed_form_macs(spec)
        ms = 220.0 * (0.15 + 0.85 * macs / dense_macs) * rng.uniform(0.95, 1.05)
        acc = 0.9 - sum(math.log2(g) for p in PROJECTIONS for g in spec.groups[p]) / (30 * spec.layers) + rng.gauss(0, 0.01)
        attrs = {
            "spec_hash": spec.hash, "spec": spec.to_yaml(), "summary": spec.summary(), "worker": "host:1",
            "params": int(110e6 * macs / dense_macs), "macs": macs, "flops": 2 * macs, "latency_source": "measured",
            "latency_cv": rng.uniform(0.005, 0.03), "latency_p90_ms": 1.02 * ms,
            "constraints": [1.0 if i > 2 and i % 89 == 0 else -1.0, -1.0],
            "proxy_metric": "accuracy", "proxy_dev": {"accuracy": acc - 0.02}, "proxy_details": {"proxy": "finetune"},
        }
        if i < 2:
            attrs["reference"] = ("bert_base", "squeezebert")[i]
        values = [acc, ms]
        if i > 2 and i % 97 == 0:  # the same design as trial i - 1: its result, reused
            prev = trials[-1]
            if prev.state == TrialState.COMPLETE:
                params, attrs, values = prev.params, dict(prev.user_attrs) | {"duplicate_of": i - 1}, prev.values
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, values=values, user_attrs=attrs))
    for number, t in enumerate(trials):
        t.number = number  # the number the study will give it
    return trials


def bulk_add_trials(url: str, study_name: str, trials: list[optuna.trial.FrozenTrial]) -> None:
    """What ``study.add_trials`` stores, in one transaction of bulk inserts. Optuna's public API
    writes a trial query by query (about 15 ms of CPU a trial here: minutes for 10,000 trials),
    too slow for a test. The rows go into the tables of the schema Optuna created, read back
    from the database itself (SQLAlchemy reflection, no private Optuna module), in the forms the
    public API gives (``to_internal_repr``, ``distribution_to_json``, state names);
    `test_bulk_add_equals_add_trials` pins the result to add_trials."""
    import datetime

    import sqlalchemy as sa

    def utc(when):  # RDBStorage keeps naive UTC
        return when.astimezone(datetime.timezone.utc).replace(tzinfo=None) if when else None

    def stored(value: float) -> tuple[float | None, str]:  # an objective value as RDBStorage stores it
        return (value, "FINITE") if math.isfinite(value) else (None, "INF_POS" if value > 0 else "INF_NEG")

    engine = sa.create_engine(url)
    db = sa.MetaData()
    db.reflect(engine, only=["studies", "trials", "trial_params", "trial_values", "trial_user_attributes"])
    studies, rows, params, values, attrs = (db.tables[n] for n in ("studies", "trials", "trial_params", "trial_values",
                                                                  "trial_user_attributes"))
    with engine.begin() as conn:
        study_id = conn.execute(sa.select(studies.c.study_id).where(studies.c.study_name == study_name)).scalar_one()
        first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(rows.c.trial_id), 0))).scalar() + 1
        ids = {t.number: first + k for k, t in enumerate(trials)}
        conn.execute(rows.insert(), [
            {"trial_id": ids[t.number], "number": t.number, "study_id": study_id, "state": t.state.name,
             "datetime_start": utc(t.datetime_start), "datetime_complete": utc(t.datetime_complete)} for t in trials])
        conn.execute(params.insert(), [
            {"trial_id": ids[t.number], "param_name": k, "param_value": t.distributions[k].to_internal_repr(v),
             "distribution_json": distribution_to_json(t.distributions[k])} for t in trials for k, v in t.params.items()])
        objectives = [{"trial_id": ids[t.number], "objective": k, "value": v, "value_type": kind}
                      for t in trials for k, (v, kind) in enumerate(map(stored, t.values or []))]
        if objectives:
            conn.execute(values.insert(), objectives)
        conn.execute(attrs.insert(), [
            {"trial_id": ids[t.number], "key": k, "value_json": json.dumps(v)} for t in trials for k, v in t.user_attrs.items()])
    engine.dispose()


def make_study(url: str, trials, name: str = "synthetic", bulk: bool = False) -> optuna.Study:
    """A study of ``trials`` at ``url``: through Optuna's ``add_trials``, or ``bulk`` (10,000 trials)."""
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    if bulk:
        bulk_add_trials(url, name, trials)
    else:
        study.add_trials(trials)
    return study


def test_bulk_add_equals_add_trials(tmp_path):
    trials = synthetic_trials(30)
    a = make_study(f"sqlite:///{tmp_path}/a.db", trials).get_trials()
    make_study(f"sqlite:///{tmp_path}/b.db", trials, bulk=True)
    b = optuna.load_study(study_name="synthetic", storage=f"sqlite:///{tmp_path}/b.db").get_trials()
    assert len(a) == len(b) == 30
    for x, y in zip(a, b):
        assert (x.number, x.state, x.values, x.params, x.distributions, x.user_attrs, x.datetime_start) == \
               (y.number, y.state, y.values, y.params, y.distributions, y.user_attrs, y.datetime_start)


# ---- 10,000 trials ----------------------------------------------------------------------------


def non_dominated(acc: np.ndarray, ms: np.ndarray) -> set[int]:
    """Brute force: i is dominated if some j is at least as good in both and better in one."""
    out = set()
    for lo in range(0, len(acc), 500):
        a, m = acc[lo:lo + 500, None], ms[lo:lo + 500, None]
        dominated = ((acc >= a) & (ms <= m) & ((acc > a) | (ms < m))).any(axis=1)
        out |= {lo + i for i in np.flatnonzero(~dominated)}
    return out


@pytest.mark.slow
@pytest.mark.browser  # the six PNGs
def test_report_of_10000_trials_under_60_seconds(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    trials = synthetic_trials(10_000)
    make_study(url, trials, bulk=True)
    t0 = time.perf_counter()
    report = write_report(url, out=tmp_path / "out")
    seconds = time.perf_counter() - t0
    print(f"report of 10,000 trials: {seconds:.1f} s")
    assert seconds < 60

    assert report.html.is_file() and report.html.stat().st_size > 1_000_000
    page = report.html.read_text()
    assert page.count("<script") >= 6 and len(re.findall(r"\* plotly\.js v", page)) == 1  # plotly.js inlined once
    assert len(report.pngs) == 6 and all(p.stat().st_size > 10_000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in report.pngs)

    # the front: the non-dominated set of finished, feasible, distinct designs
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    considered = [t for t in done if "duplicate_of" not in t.user_attrs and t.user_attrs["constraints"][0] <= 0]
    idx = non_dominated(np.array([t.values[0] for t in considered]), np.array([t.values[1] for t in considered]))
    assert {t.number for t in report.front} == {considered[i].number for i in idx}
    assert len(report.rows) == len(idx) == page.count("<tr>") - 1
    assert any(r["reference"] == "bert_base" and r["speedup_vs_dense"] == 1.0 for r in report.rows)

    hv = report.hypervolume
    assert len(hv) == sum(t.user_attrs["constraints"][0] <= 0 for t in done)
    assert all(b >= a for a, b in zip(hv, hv[1:])) and hv[-1] > 0
    assert report.reference_point == (min(t.values[0] for t in done if t.user_attrs["constraints"][0] <= 0),
                                      max(t.values[1] for t in done if t.user_attrs["constraints"][0] <= 0))


# ---- a run directory, and bad input through the CLI --------------------------------------------


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "arch_search", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def make_run_dir(path, n: int = 40, name: str = "squeezebert"):
    """A run directory as `run` leaves it: study.db, study.json, pareto.csv with re-measured latency."""
    path.mkdir(parents=True, exist_ok=True)
    trials = synthetic_trials(n)
    make_study(f"sqlite:///{path}/study.db", trials, name=name)
    (path / "study.json").write_text(json.dumps({"study_name": name}))
    with open(path / "pareto.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["trial", "remeasured_ms", "remeasured_speedup"])
        writer.writeheader()
        writer.writerows({"trial": t.number, "remeasured_ms": 100.0 + t.number, "remeasured_speedup": 1.5}
                         for t in trials if t.state == TrialState.COMPLETE)
    return trials


def test_report_of_a_run_directory_with_remeasured_latency(tmp_path):
    make_run_dir(tmp_path / "run")
    out = run_cli("report", str(tmp_path / "run"), "--no-png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"wrote {tmp_path / 'run' / 'report.html'} and 0 PNGs")
    page = (tmp_path / "run" / "report.html").read_text()
    assert "re-measured ms" in page and "<td>100.0</td>" in page  # trial 0, the dense reference, from pareto.csv
    assert "dense (BERT-base)" in page and "SqueezeBERT" in page and "Spearman rank correlation" in page
    assert not list((tmp_path / "run").glob("*.png"))


def test_report_of_a_confirmed_run_draws_both_scores(tmp_path):
    from arch_search.app.report import confirmed_of
    from arch_search.stats import Noise
    from arch_search.study.record import Confirmed, records
    from arch_search.study.run_tables import confirmed_rows
    from arch_search.tables import write_csv

    trials = make_run_dir(tmp_path / "run", n=12)
    recs = [r for r in records(trials) if r.finished]
    chosen = [r for r in recs if r.evaluated][:6]
    confirmed = [Confirmed(r.number, "log_likelihood", {0: r.score - 0.05, 1: r.score - 0.04}, {})
                 for r in chosen]
    write_csv(tmp_path / "run" / "confirmed.csv", confirmed_rows(confirmed, recs, Noise(0.01, 6, 6, "seeds")))
    report = write_report(str(tmp_path / "run"), png=False)
    page = report.html.read_text()
    assert 'id="confirmed_front"' in page and 'id="search_vs_confirmed"' in page and "Kendall tau 1.00" in page
    table = page[page.index('<table id="confirmed-table">'):]
    assert table.count("<tr>") == 1 + 6 and "MDE (points)" in table  # the header and one row per design
    assert [int(r["trial"]) for r in confirmed_of(tmp_path / "run")] == [
        int(r["trial"]) for r in sorted(confirmed_rows(confirmed, recs, None), key=lambda r: r["latency_ms"])]
    (tmp_path / "run" / "confirmed.csv").unlink()  # no confirmation: neither figure nor table
    page = write_report(str(tmp_path / "run"), png=False).html.read_text()
    assert 'id="confirmed_front"' not in page and "confirmed-table" not in page


def test_report_dashboard_and_spec_export_do_not_load_torch(tmp_path):
    """Commands that only read a run (report, dashboard, ``export format=spec``) never import
    torch: they run where it is not installed, and start in a fraction of the time."""
    make_run_dir(tmp_path / "run", n=12)
    probe = ("import sys\nfrom arch_search.app.cli import main\nfrom arch_search.app.dashboard import check_port\n"
             f"main(['report', {str(tmp_path / 'run')!r}, '--no-png'])\n"
             f"main(['export', {str(tmp_path / 'run')!r}, 'trial=3', 'format=spec', 'out={tmp_path}/spec'])\n"
             "print('torch loaded:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("torch loaded: False"), out.stdout
    from arch_search import ArchSpec

    assert ArchSpec.from_yaml(tmp_path / "spec" / "spec.yaml").hash and f"wrote {tmp_path}/spec" in out.stdout


@pytest.mark.parametrize("case", ["missing run dir", "missing study", "no study.db", "missing sqlite file", "two studies"])
def test_bad_input_is_one_clear_error(case, tmp_path):
    make_run_dir(tmp_path / "run", n=12)
    args = {
        "missing run dir": ["report", str(tmp_path / "nope")],
        "missing study": ["report", str(tmp_path / "run"), "--study", "other"],
        "no study.db": ["report", str(tmp_path)],
        "missing sqlite file": ["dashboard", f"sqlite:///{tmp_path}/nope.db"],
        "two studies": ["report", f"sqlite:///{tmp_path}/run/study.db"],
    }[case]
    if case == "two studies":
        optuna.create_study(study_name="second", storage=args[1])
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    expected = {
        "missing run dir": f"no such run directory: {tmp_path / 'nope'}",
        "missing study": "study 'other' not in sqlite:///",
        "no study.db": "has no study.db",
        "missing sqlite file": f"no SQLite file at {tmp_path}/nope.db",
        "two studies": "holds 2 studies (squeezebert, second): name one with --study",
    }[case]
    assert expected in lines[0]
    assert not (tmp_path / "nope.db").exists()


def test_dashboard_on_a_port_in_use_is_one_clear_error(tmp_path):
    make_run_dir(tmp_path / "run", n=12)
    with socket.create_server(("127.0.0.1", 0)) as busy:  # listening: the port is taken
        port = busy.getsockname()[1]
        out = run_cli("dashboard", str(tmp_path / "run"), "--port", str(port), cwd=tmp_path)
    assert out.returncode != 0 and "http://" not in out.stdout  # no URL of a server that never started
    lines = out.stderr.strip().splitlines()
    assert lines == [f"error: port {port} on 127.0.0.1 is in use: pick another with --port"], out.stderr


def test_report_without_a_browser_is_the_html_and_a_note(tmp_path, monkeypatch):
    make_run_dir(tmp_path / "run", n=12)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))  # kaleido looks there and nowhere else
    report = write_report(str(tmp_path / "run"), out=tmp_path / "lib")
    assert report.html.is_file() and report.pngs == [] and not list((tmp_path / "lib").glob("*.png"))
    assert len(report.notes) == 1 and "PNGs skipped" in report.notes[0]
    assert "apt-get install chromium" in report.notes[0] and "BROWSER_PATH" in report.notes[0]
    out = run_cli("report", str(tmp_path / "run"), cwd=tmp_path)  # the env (BROWSER_PATH) goes along
    assert out.returncode == 0 and out.stdout.startswith(f"wrote {tmp_path / 'run' / 'report.html'} and 0 PNGs"), out.stderr

    def broken(*args, **kwargs):
        raise ValueError("not a browser")

    monkeypatch.setattr("plotly.io.write_images", broken)
    with pytest.raises(ValueError, match="not a browser"):  # any other PNG error is raised
        write_report(str(tmp_path / "run"), out=tmp_path / "lib")


@pytest.mark.postgres
def test_report_of_a_study_on_postgres(tmp_path):
    """A storage URL with several studies: --study picks one; the password stays off the page.
    Needs ARCH_SEARCH_POSTGRES_URL (.ci/run starts a server), like tests/test_postgres.py."""
    url = os.environ.get("ARCH_SEARCH_POSTGRES_URL")
    assert url, "set ARCH_SEARCH_POSTGRES_URL=postgresql://user:pass@host/db (see .ci/run, which starts one)"
    from arch_search.study.storage import storage_for

    name = f"report-{uuid.uuid4().hex[:8]}"
    trials = synthetic_trials(25)
    optuna.create_study(study_name=name, storage=storage_for(url), directions=["maximize", "minimize"]).add_trials(trials)
    try:
        out = run_cli("report", url, "--study", name, "--out", str(tmp_path / "out"), "--no-png", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        page = (tmp_path / "out" / "report.html").read_text()
        assert f"study {name}" in page and "dense (BERT-base)" in page
        user, _, password = url.split("://", 1)[1].split("@")[0].partition(":")
        assert password and f"{user}:{password}@" not in page and f"{user}:***@" in page
    finally:
        optuna.delete_study(study_name=name, storage=storage_for(url))
