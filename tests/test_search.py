"""The study on a tiny space with a fake accuracy proxy and real (short) latency runs."""

import json
import math

import optuna
import pytest

from arch_search.measure.latency import LatencyProtocol
from arch_search.proxies import ProxyDiverged, ProxyResult
from arch_search.study.storage import storage_for
from arch_search.study.run_tables import format_pareto
from arch_search.study.search import Constraints, Search
from arch_search.design.space import SearchSpace

SPACE = """
base: minilm_l6
groups: {q: [1, 4], k: [1, 4], v: [1, 4], post_attention: [1], ffn_in: [1, 4], ffn_out: [1, 4]}
"""


class FakeProxy:
    """Accuracy falls with log2 of the groups; counts calls; can diverge on request."""

    def __init__(self, diverge_when=None):
        self.calls, self.diverge_when = [], diverge_when

    def evaluate(self, spec, report=None):
        self.calls.append(spec.hash)
        if self.diverge_when and self.diverge_when(spec):
            raise ProxyDiverged("nan loss")
        penalty = sum(math.log2(g) for p in spec.groups for g in spec.groups[p]) / 100
        return ProxyResult(score=0.9 - penalty, metric="accuracy", dev={"accuracy": 0.85 - penalty})


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SPACE)
    return SearchSpace.load(path)


def make(space, tmp_path, proxy, name="s", sampler=None, **kw):
    return Search(
        space, proxy, LatencyProtocol(seq_len=8, rounds=2, warmup=0), name,
        storage_for(f"sqlite:///{tmp_path}/study.db", heartbeat_interval=5), sampler or optuna.samplers.RandomSampler,
        **kw,
    )


def test_references_first_values_and_user_attrs(space, tmp_path):
    proxy = FakeProxy()
    study = make(space, tmp_path, proxy).run(4, progress=False)
    t0, t1 = study.trials[:2]
    assert (t0.user_attrs["reference"], t1.user_attrs["reference"]) == ("bert_base", "squeezebert")
    assert t0.params == {"q": 1, "k": 1, "v": 1, "post_attention": 1, "ffn_in": 1, "ffn_out": 1, "shuffle": False}
    assert t1.values[0] < t0.values[0] and all(v > 0 for v in t1.values)
    for key in ("params", "macs", "flops", "latency_cv", "spec", "spec_hash", "proxy_dev", "constraints"):
        assert key in t1.user_attrs, key
    assert t1.user_attrs["flops"] == 2 * t1.user_attrs["macs"]
    assert len(study.trials) == 4


def test_identical_designs_are_not_evaluated_twice(tmp_path, capsys):
    path = tmp_path / "four.yaml"
    path.write_text("base: minilm_l6\ngroups: {ffn_in: [1, 2, 4, 8]}\n")
    proxy = FakeProxy()
    search = make(SearchSpace.load(path), tmp_path, proxy)
    study = search.run(4, progress=False)
    assert len(proxy.calls) == len(set(proxy.calls)) == 4 == search.evaluations()
    dupes = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(study.trials) == 4 + len(dupes)  # copies do not count toward n_trials
    assert all(t.values == study.trials[t.user_attrs["duplicate_of"]].values for t in dupes)
    log = capsys.readouterr().out.splitlines()  # one line a trial, a copy naming its trial
    assert [line for line in log if "copy of trial" in line] == [line for line in log if line.startswith(
        tuple(f"trial {t.number}: " for t in dupes))] and len(log) == len(study.trials)
    front = search.pareto()  # each design once, as the trial that scored it (Optuna's front agrees)
    assert [r.number for r in front] == sorted({t.user_attrs.get("duplicate_of", t.number) for t in study.best_trials},
                                               key=lambda n: study.trials[n].values[1])
    assert search.run(10, progress=False) and len(proxy.calls) == 4  # the space (4 designs) is exhausted: stop


@pytest.mark.slow
def test_resumed_run_proposes_new_designs_and_counts_distinct_evaluations(space, tmp_path):
    """The sampler is seeded per trial number: a rerun with the same seed does not replay the
    first run's proposals (before: trials 6-8 of a resumed run were copies of 2-4)."""
    proxy = FakeProxy()
    make(space, tmp_path, proxy).run(4, progress=False)
    again = make(space, tmp_path, proxy)
    study = again.run(9, progress=False)
    assert len(proxy.calls) == len(set(proxy.calls)) == 9 == again.evaluations()
    assert sum("reference" in t.user_attrs for t in study.trials) == 2  # not enqueued again


class LastChoice(optuna.samplers.BaseSampler):
    """A fake inner sampler: every parameter at its last choice."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.choices[-1]


def test_leveled_start_draws_the_first_trials_by_level_then_hands_over(space, tmp_path):
    import random

    from arch_search.study.sampling import LeveledStart, trial_seed

    drawn = lambda seed, n: space.leveled_params(random.Random(trial_seed(seed, n)))  # noqa: E731
    study = optuna.create_study(sampler=LeveledStart(LastChoice(), space, trials=5, seed=3))
    study.optimize(lambda t: len(space.sample(t).summary()), n_trials=8)
    assert [t.params for t in study.trials[:5]] == [drawn(3, n) for n in range(5)]
    assert all(t.params == {**{p: c[-1] for p, c in space.groups.items()}, "shuffle": False} for t in study.trials[5:])
    assert drawn(3, 4) != drawn(4, 4)  # seeded by (seed, trial number)

    proxy = FakeProxy()  # in a search: the references first (enqueued), then the level draws, each design once
    search = make(space, tmp_path, proxy, leveled_start=6, seed=1)
    study = search.run(7, progress=False)
    assert [t.user_attrs.get("reference") for t in study.trials[:2]] == ["bert_base", "squeezebert"]
    assert [t.params for t in study.trials[2:6]] == [drawn(1, n) for n in range(2, 6)]
    assert len(proxy.calls) == len(set(proxy.calls)) == 7 == search.evaluations()
    binned = make(space, tmp_path, FakeProxy(), name="b", leveled_start=6, start_bins=3, seed=1)
    from arch_search.study.sampling import speedup_edges
    assert binned.study.sampler.edges == speedup_edges(space, 3) and search.study.sampler.edges is None


class StepMeasure:
    """A fake latency protocol: the machine slows down 10% per call (drift); a design takes
    half the reference's time in every measurement."""

    def __init__(self):
        self.calls = 0

    def compare(self, models, baseline=None, cache=None, every=None):
        self.every = every
        from arch_search.measure.latency import Comparison, Env, Latency

        self.calls += 1
        ref = 10.0 * 1.1 ** self.calls
        env = Env.current(1)
        out = {name: Latency.from_samples([ref if name == "reference" else ref / 2], env) for name in models}
        return Comparison(out, baseline or next(iter(models)))


def test_latency_is_timed_beside_the_reference_and_corrected_for_drift(space, tmp_path):
    from arch_search.measure.latency_model import MeasuredLatency

    search = make(space, tmp_path, FakeProxy(), latency=MeasuredLatency(StepMeasure()))
    study = search.run(5, progress=False)
    anchor = study.user_attrs["latency_anchor_ms"]
    assert anchor == 11.0  # the first measurement's reference median
    dense, *others = [t for t in study.trials if t.values and "duplicate_of" not in t.user_attrs]
    assert dense.values[1] == anchor and dense.user_attrs["latency_drift"] == 1.0
    for t in others:  # the machine drifted, the objective did not
        assert t.user_attrs["latency_drift"] > 1.0
        assert t.user_attrs["latency_raw_ms"] == t.user_attrs["reference_ms"] / 2
        assert t.values[1] == pytest.approx(anchor / 2)


def test_the_reference_is_timed_every_kth_round_beside_a_design(space, tmp_path):
    from arch_search.measure.latency_model import MeasuredLatency

    measure = StepMeasure()
    latency = MeasuredLatency(measure, reference_every=3)
    latency.prepare(space, 0)
    latency.time(space.references()["squeezebert"])
    assert measure.every == {"reference": 3}
    latency.time(space.references()["bert_base"])  # the reference alone: every round
    assert measure.every is None
    # the real protocol: ceil(rounds / 3) samples of the reference, every round of the design
    real = MeasuredLatency(LatencyProtocol(seq_len=8, rounds=4, warmup=0), reference_every=3)
    real.prepare(space, 0)
    timing = real.time(space.references()["squeezebert"])
    assert (len(timing.reference.samples_ms), len(timing.design.samples_ms)) == (2, 4)
    search = make(space, tmp_path, FakeProxy(), latency=real)
    trials = [t for t in search.run(3, progress=False).trials if t.values]
    assert [t.user_attrs["reference_samples"] for t in trials] == [4, 2, 2]  # dense alone: every round
    with pytest.raises(ValueError, match="reference_every must be an integer >= 1"):
        MeasuredLatency(measure, reference_every=0)


def test_a_failed_reference_is_queued_again(space, tmp_path):
    class Broken(FakeProxy):
        def evaluate(self, spec, report=None):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        make(space, tmp_path, Broken()).run(4, progress=False)
    study = make(space, tmp_path, FakeProxy()).run(4, progress=False)
    refs = {t.user_attrs["reference"]: t.state for t in study.trials if "reference" in t.user_attrs}
    assert refs == {"bert_base": optuna.trial.TrialState.COMPLETE, "squeezebert": optuna.trial.TrialState.COMPLETE}
    assert any(t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("reference") == "bert_base"
               for t in study.trials)


@pytest.mark.slow
def test_a_dead_workers_running_trial_is_failed_and_requeued_at_start(space, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from arch_search.study.recovery import process_start

    search = make(space, tmp_path, FakeProxy())
    search.run(2, progress=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    for pid, started in ((int(dead.stdout), "123"), (os.getpid(), process_start(os.getpid()))):
        t = search.study.ask({"q": optuna.distributions.CategoricalDistribution([1, 4])})
        t.set_user_attr("worker", f"{host}:{pid}")
        t.set_user_attr("worker_started", started)
    assert make(space, tmp_path, FakeProxy()).recover() == [2]  # the dead one; ours is alive
    trials = search.study.trials
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[3].state == optuna.trial.TrialState.RUNNING
    assert trials[4].state == optuna.trial.TrialState.WAITING and trials[4].system_attrs["failed_trial"] == 2
    assert trials[4].params == trials[2].params


def test_resuming_with_other_settings_is_refused(space, tmp_path):
    from arch_search.study.fingerprint import StudyMismatch

    make(space, tmp_path, FakeProxy(), fingerprint={"task": "sst2", "proxy": {"steps": 400}}).run(2, progress=False)
    make(space, tmp_path, FakeProxy(), fingerprint={"task": "sst2", "proxy": {"steps": 400}})  # same: fine
    with pytest.raises(StudyMismatch, match=r"proxy.steps: 400 -> 80; task: 'sst2' -> 'rte'"):
        make(space, tmp_path, FakeProxy(), fingerprint={"task": "rte", "proxy": {"steps": 80}})
    other = tmp_path / "other.yaml"
    other.write_text("base: minilm_l6\ngroups: {q: [1, 2]}\n")
    with pytest.raises(StudyMismatch, match=r"space.groups.q: \[1, 4\] -> \[1, 2\]"):
        make(SearchSpace.load(other), tmp_path, FakeProxy(), fingerprint={"task": "sst2", "proxy": {"steps": 400}})


def test_diverging_proxy_prunes_and_the_study_goes_on(space, tmp_path, capsys):
    proxy = FakeProxy(diverge_when=lambda spec: spec.groups["q"][0] == 4)
    study = make(space, tmp_path, proxy).run(5, progress=False)
    states = [t.state for t in study.trials]
    assert states[1] == optuna.trial.TrialState.PRUNED  # SqueezeBERT has q=4
    assert "trial 1 (squeezebert): 384x6 h12 ffn1536 g[q4 k4 v4 post1 in4 out4]  pruned: " in capsys.readouterr().out
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 1 and len(study.trials) == 5


def test_constraints_and_outputs(space, tmp_path):
    search = make(space, tmp_path, FakeProxy(), constraints=Constraints(max_params=20_000_000))
    study = search.run(4, progress=False)
    dense, squeeze = study.trials[:2]
    assert dense.user_attrs["constraints"][1] > 0 > squeeze.user_attrs["constraints"][1]  # 22.7M vs 15.4M params
    assert dense.system_attrs["constraints:params"] > 0 > squeeze.system_attrs["constraints:params"]  # what samplers read
    search.write(tmp_path / "run")
    trials = (tmp_path / "run" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 4 and trials[0].startswith("trial,reference,design,score,latency_ms,speedup_vs_dense")
    pareto_rows = search.rows(search.pareto())
    assert pareto_rows and (tmp_path / "run" / "study.json").is_file()
    assert any(r["reference"] == "bert_base" and r["speedup_vs_dense"] == 1.0 for r in search.rows(search.records()))
    assert "bert_base" in format_pareto(search.rows(search.records()))
    remeasured = search.remeasure(search.pareto())
    assert set(remeasured) >= {r.number for r in search.pareto()} | {0}


def test_wandb_offline_run_per_trial_and_pareto(space, tmp_path, monkeypatch):
    from arch_search.study.tracking import WandbTracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = WandbTracker(mode="offline", dir=str(tmp_path / "wb"), config={"space": "tiny"})
    search = make(space, tmp_path, FakeProxy(), tracker=tracker)
    search.run(2, progress=False)
    result = search.finish(tmp_path / "run")  # re-measure, write, close the tracker
    assert result.front and "proxy seed noise: not measured" in result.text()
    assert "vs dense: the search proxy's score minus dense's" not in result.text()  # no confirmed 'vs dense' to point to
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # two trials and the Pareto run
    assert all(any(r.glob("*.wandb")) for r in runs)


class Shifted(FakeProxy):
    """The fake proxy with another 'seed': every score moved by ``shift``."""

    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def evaluate(self, spec, report=None):
        r = super().evaluate(spec)
        return ProxyResult(score=r.score + self.shift, metric=r.metric, dev=r.dev)


def test_a_run_knows_its_own_noise(space, tmp_path):
    again = Shifted(0.02)
    search = make(space, tmp_path, FakeProxy(), noise_proxy=again)
    study = search.run(4, progress=False)
    refs = [t for t in study.trials if "reference" in t.user_attrs]
    assert len(again.calls) == 2 == len(refs)  # only the references are scored twice
    assert all(t.user_attrs["proxy_score_again"] == pytest.approx(t.values[0] + 0.02) for t in refs)
    noise = search.proxy_noise()
    assert noise.designs == 2 and noise.sd == pytest.approx(0.02 / 2**0.5)
    search.write(tmp_path / "run")
    import json

    assert json.loads((tmp_path / "run" / "study.json").read_text())["proxy_noise"]["designs"] == 2
