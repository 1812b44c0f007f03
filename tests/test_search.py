"""The study on a tiny space with a fake accuracy proxy and real (short) latency runs."""

import functools
import math

import optuna
import pytest

from arch_search import compare_latency
from arch_search.proxies import ProxyDiverged, ProxyResult
from arch_search.runs import storage_for
from arch_search.search import Constraints, Search, format_pareto
from arch_search.space import SearchSpace

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
        space, proxy, functools.partial(compare_latency, seq_len=8, rounds=2, warmup=0), name,
        storage_for(f"sqlite:///{tmp_path}/study.db", heartbeat_interval=5), sampler or optuna.samplers.RandomSampler(seed=0),
        seq_len=8, **kw,
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


def test_identical_designs_are_not_evaluated_twice(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("base: minilm_l6\ngroups: {ffn_in: [1, 4]}\n")
    proxy = FakeProxy()
    search = make(SearchSpace.load(path), tmp_path, proxy)
    study = search.run(6, progress=False)
    assert len(study.trials) == 6 and len(proxy.calls) == len(set(proxy.calls)) == 2
    dupes = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(dupes) == 4 and all(t.values == study.trials[t.user_attrs["duplicate_of"]].values for t in dupes)
    front = search.pareto()  # each design once, as the trial that scored it
    assert [t.number for t in front] == sorted({t.user_attrs.get("duplicate_of", t.number) for t in study.best_trials},
                                               key=lambda n: study.trials[n].values[1])


def test_resume_continues_the_same_study(space, tmp_path):
    make(space, tmp_path, FakeProxy()).run(3, progress=False)
    again = make(space, tmp_path, FakeProxy(), sampler=optuna.samplers.RandomSampler(seed=1))
    study = again.run(5, progress=False)
    assert len(study.trials) == 5
    assert sum("reference" in t.user_attrs for t in study.trials) == 2  # not enqueued again


def test_diverging_proxy_prunes_and_the_study_goes_on(space, tmp_path):
    proxy = FakeProxy(diverge_when=lambda spec: spec.groups["q"][0] == 4)
    study = make(space, tmp_path, proxy).run(5, progress=False)
    states = [t.state for t in study.trials]
    assert states[1] == optuna.trial.TrialState.PRUNED  # SqueezeBERT has q=4
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 1 and len(study.trials) == 5


def test_constraints_and_outputs(space, tmp_path):
    search = make(space, tmp_path, FakeProxy(), constraints=Constraints(max_params=20_000_000))
    study = search.run(4, progress=False)
    dense, squeeze = study.trials[:2]
    assert dense.user_attrs["constraints"][1] > 0 > squeeze.user_attrs["constraints"][1]  # 22.7M vs 15.4M params
    assert dense.system_attrs["constraints:params"] > 0 > squeeze.system_attrs["constraints:params"]  # what samplers read
    search.write(tmp_path / "run")
    trials = (tmp_path / "run" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 4 and trials[0].startswith("trial,reference,design,proxy_accuracy,latency_ms,speedup_vs_dense")
    pareto_rows = search.rows(search.pareto())
    assert pareto_rows and (tmp_path / "run" / "study.json").is_file()
    assert any(r["reference"] == "bert_base" and r["speedup_vs_dense"] == 1.0 for r in search.rows(study.trials))
    assert "bert_base" in format_pareto(search.rows(study.trials))
    remeasured = search.remeasure(search.pareto())
    assert set(remeasured) >= {t.number for t in search.pareto()} | {0}


def test_wandb_offline_run_per_trial_and_pareto(space, tmp_path, monkeypatch):
    from arch_search.tracking import WandbTracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = WandbTracker(mode="offline", dir=str(tmp_path / "wb"), config={"space": "tiny"})
    search = make(space, tmp_path, FakeProxy(), tracker=tracker)
    study = search.run(2, progress=False)
    tracker.finish(study, search.rows(search.pareto()))
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # two trials and the Pareto run
    assert all(any(r.glob("*.wandb")) for r in runs)
