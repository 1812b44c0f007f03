"""The confirmation (arch_search.study.confirm): which designs, paired seeds, the run's noise, resume
after SIGKILL, and the final front with both scores."""

import json
import subprocess
import sys

import optuna
import pytest

from arch_search.study.confirm import MIN_DESIGNS, SUFFIX, Confirmation, bands_of, choose
from arch_search.study.fingerprint import StudyMismatch
from arch_search.study.storage import storage_for
from tests.conftest import REPO, kill_when
from tests.test_record import rec
from tests.test_search import FakeProxy, Shifted, make, space  # noqa: F401  (space: a fixture)

WORKER = REPO / "tests" / "worker.py"


def test_bands_are_geometric_in_latency_and_hold_each_trial_once():
    recs = [rec(n, 0.5, ms) for n, ms in enumerate((25, 30, 35, 36, 49, 51, 70, 71, 100))]
    bands = bands_of(recs, 4)  # edges 25, 35.4, 50, 70.7, 100: a factor sqrt(2) each
    assert [[r.number for r in band] for band in bands] == [[0, 1, 2], [3, 4], [5, 6], [7, 8]]
    assert [len(b) for b in bands_of(recs, 1)] == [9] and bands_of(recs, 0) == []
    assert [len(b) for b in bands_of([rec(0, 0.5, 10), rec(1, 0.4, 10)], 3)] == [2, 0, 0]  # one latency: one band


def test_choose_takes_the_fronts_top_the_fastest_front_design_of_each_band_and_both_references():
    recs = [rec(0, 0.90, 100, "bert_base"), rec(1, 0.60, 45, "squeezebert")]
    recs += [rec(2, 0.85, 95), rec(3, 0.80, 80), rec(4, 0.75, 60), rec(5, 0.70, 55), rec(6, 0.50, 40), rec(7, 0.65, 48),
             rec(8, 0.30, 25), rec(9, 0.20, 30)]  # bands (25..100, sqrt 2 each): {8, 9}, {6, 7}, {4, 5}, {2, 3}
    chosen = [r.number for r in choose(recs, bands=4)]
    assert chosen == [0, 8, 6, 5, 3, 1] and len(chosen) == MIN_DESIGNS  # top (dense), a design a band fastest first, refs
    assert 9 not in chosen  # off the search front (8 is faster and better)
    off = [r for r in recs if r.number not in (6, 7)] + [rec(7, 0.2, 48)]  # a band whose designs are all off the front
    assert [r.number for r in choose(off, bands=4)][:3] == [0, 8, 7]  # gives its best by score
    no_mild = [r for r in recs if r.number not in (4, 5)]  # an empty band is skipped; the best others fill to six
    assert [r.number for r in choose(no_mild, bands=4)] == [0, 8, 6, 3, 1, 2]
    many = [rec(0, 0.9, 100, "bert_base"), *[rec(n, 0.8 - n / 1000, 100 - n) for n in range(1, 76)]]  # 100..25 ms
    assert [r.number for r in choose(many, bands=4)] == [0, 75, 64, 50, 29, 1]  # each band's fastest (all on the front), then the best left
    assert len(choose(many, bands=8)) == 9  # top + 8 bands: more bands, more confirmations
    with pytest.raises(ValueError, match="pick must be one of"):
        choose(recs, bands=4, pick="slowest")
    with pytest.raises(ValueError, match="pick must be one of"):  # at construction, not after the search
        Confirmation({0: FakeProxy(), 1: FakeProxy()}, "sqlite:///:memory:", "s", pick="slowest")


def test_choose_best_score_takes_each_bands_best_by_the_search_score():
    """issue 34's first rule (``search.confirm_pick=best_score``): it sits at each band's slow edge."""
    recs = [rec(0, 0.90, 100, "bert_base"), rec(1, 0.60, 45, "squeezebert")]
    recs += [rec(2, 0.85, 95), rec(3, 0.80, 80), rec(4, 0.75, 60), rec(5, 0.70, 55), rec(6, 0.50, 40), rec(7, 0.65, 48),
             rec(8, 0.30, 25), rec(9, 0.20, 30)]
    best = lambda rs, **kw: [r.number for r in choose(rs, bands=kw.pop("bands", 4), pick="best_score", **kw)]  # noqa: E731
    assert best(recs) == [0, 8, 7, 4, 2, 1]
    assert best([r for r in recs if r.number not in (4, 5)]) == [0, 8, 7, 2, 1, 3]
    top = [r for r in recs if r.number != 0]  # without dense, the front's top (2) is also the slowest band's best
    assert best(top)[:5] == [2, 8, 7, 4, 1]
    assert best(recs, bands=0, min_designs=2) == [0, 1]  # references only (then the best)
    many = [rec(0, 0.9, 100, "bert_base"), *[rec(n, 0.8 - n / 1000, 100 - n) for n in range(1, 76)]]
    assert best(many) == [0, 65, 51, 30, 1, 2]  # each band's slowest, then the best left
    assert len(choose(many, bands=8, pick="best_score")) == 9


def confirmation(tmp_path, proxies, name="s", bands=4, **kw):
    return Confirmation(proxies, storage_for(f"sqlite:///{tmp_path}/study.db", heartbeat_interval=5), name, bands=bands, **kw)


@pytest.mark.slow
def test_confirmation_scores_each_design_once_per_seed_and_gives_the_runs_noise(space, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("WANDB_MODE", "offline")
    search = make(space, tmp_path, FakeProxy())
    search.run(10, progress=False)
    seed0, seed1 = FakeProxy(), Shifted(0.02)
    confirm = confirmation(tmp_path, {0: seed0, 1: seed1}, dev_metric="accuracy")
    confirmed = confirm.run(search.records(), progress=False)
    chosen = choose(search.records(), 4)
    log = capsys.readouterr().out.splitlines()  # one line a trial (copies too) and a confirmation
    assert sum(line.startswith("trial ") for line in log) == len(search.study.trials)
    assert sum(line.startswith("confirmation of trial ") and line.endswith(" s") for line in log) == 2 * len(chosen)
    assert len(chosen) >= MIN_DESIGNS and sorted(seed0.calls) == sorted(seed1.calls) == sorted(r.spec_hash for r in chosen)
    assert [c.trial for c in confirmed] == sorted(r.number for r in chosen)
    assert all(c.scores[1] == pytest.approx(c.scores[0] + 0.02) for c in confirmed)
    noise = confirm.noise(confirmed)
    assert noise.dof == len(chosen) >= 6 and noise.sd == pytest.approx(0.02 / 2**0.5)
    again = confirmation(tmp_path, {0: FakeProxy(), 1: FakeProxy()})
    assert again.run(search.records(), progress=False) == confirmed and not again.proxies[0].calls  # nothing redone

    result = search.finish(tmp_path / "run", confirm)
    from arch_search.study.run_dir import RunDir

    files = RunDir(tmp_path / "run")
    written = {files.pareto_csv, files.trials_csv, files.confirmed_csv, files.study_json}
    assert {p for p in files.path.iterdir() if p.is_file()} == written  # the run's files, as RunDir names them
    pareto = (tmp_path / "run" / "pareto.csv").read_text().splitlines()
    assert "confirmed_score" in pareto[0] and "verdict" in pareto[0]
    rows = (tmp_path / "run" / "confirmed.csv").read_text().splitlines()
    assert len(rows) == 1 + len(chosen)
    summary = json.loads((tmp_path / "run" / "study.json").read_text())
    assert summary["noise"]["dof"] == len(chosen) and "confirmation proxy" in summary["noise"]["source"]
    assert "Confirmed designs" in result.text() and f"{len(chosen)} dof" in result.text()
    assert "report the confirmed 'vs dense'" in result.text()  # what the search front's column is not
    from arch_search.study.tracking import WandbTracker

    WandbTracker(mode="offline", dir=str(tmp_path / "wb")).finish(search.study, result.front)  # "" beside scores: fine
    with pytest.raises(StudyMismatch):  # other confirmation settings: refused, not mixed in
        confirmation(tmp_path, {0: FakeProxy(), 1: FakeProxy()}, fingerprint={"confirm": {"steps": 1}})


class WithTeacher(FakeProxy):
    """FakeProxy whose task teacher scores 0.95 (dev 0.9); counts its measurements."""

    def teacher_result(self):
        from arch_search.proxies.base import ProxyResult

        self.calls.append("teacher")
        return ProxyResult(score=0.95, metric="accuracy", dev={"accuracy": 0.9})


@pytest.mark.slow
def test_the_confirmed_table_shows_the_teacher_itself_beside_the_healed_dense(space, tmp_path):  # noqa: F811
    """The task teacher (dense before the proxy heals it) is scored once per study and shown
    beside the healed dense reference: study.json's ``teacher`` and a line under the table."""
    search = make(space, tmp_path, FakeProxy())
    search.run(8, progress=False)
    seed0 = WithTeacher()
    confirm = confirmation(tmp_path, {0: seed0, 1: FakeProxy()}, dev_metric="accuracy")
    confirm.run(search.records(), progress=False)
    result = search.finish(tmp_path / "run", confirm)
    assert json.loads((tmp_path / "run" / "study.json").read_text())["teacher"] == {
        "score": 0.95, "metric": "accuracy", "dev": {"accuracy": 0.9}}
    dense = next(r for r in result.confirmed if r["reference"] == "bert_base")
    line = next(line for line in result.text().splitlines() if line.startswith("the task teacher itself"))
    assert "score 0.9500 accuracy 90.00" in line and f"{100 * (dense['confirmed_score'] - 0.95):+.2f} points" in line
    assert confirmation(tmp_path, {0: seed0, 1: FakeProxy()}).teacher()["score"] == 0.95
    assert seed0.calls.count("teacher") == 1  # kept in the companion study: measured once


class WithModel(FakeProxy):
    """FakeProxy that also returns a tiny model (the confirmation keeps the first seed's)."""

    def evaluate(self, spec, report=None):
        from dataclasses import replace

        from arch_search.nn.model import build_model

        tiny = spec.with_scale(hidden=16, layers=1, heads=2, intermediate=32, vocab=50).replace(groups={})
        return replace(super().evaluate(spec), model=build_model(tiny, task_head=2).eval())


def test_the_confirmation_cache_key_is_pinned(tmp_path, monkeypatch):
    """Cached confirmations are named by it: a refactor keeps the name (torch's version fixed)."""
    import types

    import torch

    monkeypatch.setattr(torch, "__version__", "2.0.0")
    keys = []
    for device, precision in (("cpu", "fp32"), ("cuda:0", "bf16")):
        on = FakeProxy()
        on.setup = types.SimpleNamespace(device=device, precision=precision)
        confirm = confirmation(tmp_path, {0: on, 1: FakeProxy()}, name=device,
                               fingerprint={"task": "sst2", "confirm": {"steps": 200}})
        keys.append(confirm.cache_key("abcdef012345", 0))
    assert keys == ["81e59b3a4968e610", "a6a6dad3b466dbb2"]


@pytest.mark.slow
def test_a_later_run_copies_each_cached_confirmation_and_scores_only_new_ones(space, tmp_path, capsys):  # noqa: F811
    """With ``cache_dir``, a second run (another study) that picks the same designs with the
    same seeds copies their scores, dev metrics and the first seed's model instead of scoring;
    a seed, a design or settings it has not seen are scored; a cached entry whose model is gone
    is scored again."""
    search = make(space, tmp_path, FakeProxy())
    search.run(10, progress=False)
    recs, cache = search.records(), tmp_path / "cache"
    first = confirmation(tmp_path, {0: WithModel(), 1: Shifted(0.02)}, name="a", cache_dir=cache,
                         weights_dir=tmp_path / "wa", fingerprint={"confirm": {"steps": 3}})
    confirmed = first.run(recs, progress=False)
    chosen = sorted(r.number for r in choose(recs, 4))
    assert len(list(cache.glob("*.json"))) == 2 * len(chosen) and len(list(cache.glob("*.safetensors"))) == len(chosen)
    capsys.readouterr()

    seed0, seed1 = WithModel(), Shifted(0.02)
    second = confirmation(tmp_path, {0: seed0, 1: seed1}, name="b", cache_dir=cache, weights_dir=tmp_path / "wb",
                          fingerprint={"confirm": {"steps": 3}})
    assert second.run(recs, progress=False) == confirmed and not seed0.calls and not seed1.calls
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("confirmation of trial ")]
    assert len(lines) == 2 * len(chosen) and all("(cached)" in line for line in lines)
    trials = [t for t in second.study.trials if "confirm" in t.user_attrs]
    assert all(t.user_attrs["cached"] and t.user_attrs["seconds"] == 0.0 and "cached_seconds" in t.user_attrs
               and t.user_attrs["dev"]["accuracy"] > 0 for t in trials)
    assert sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "wb").glob("confirmed_*.safetensors")) == chosen
    assert all((tmp_path / "wb" / p.name).read_bytes() == p.read_bytes() for p in (tmp_path / "wa").iterdir())

    other_seed = {1: Shifted(0.02), 2: FakeProxy()}  # seed 1 cached (without its model: it was not kept), seed 2 not
    third = confirmation(tmp_path, other_seed, name="c", cache_dir=cache, weights_dir=tmp_path / "wc",
                         fingerprint={"confirm": {"steps": 3}})
    third.run(recs, progress=False)
    assert sorted(other_seed[1].calls) == sorted(other_seed[2].calls) == sorted(r.spec_hash for r in choose(recs, 4))
    other_settings = {0: FakeProxy(), 1: FakeProxy()}  # another budget: nothing shared
    confirmation(tmp_path, other_settings, name="d", cache_dir=cache, fingerprint={"confirm": {"steps": 4}}).run(recs, progress=False)
    assert len(other_settings[0].calls) == len(other_settings[1].calls) == len(chosen)

    for model in cache.glob("*.safetensors"):  # the first seed's models gone: scored again where export needs them
        model.unlink()
    seed0 = WithModel()
    confirmation(tmp_path, {0: seed0, 1: Shifted(0.02)}, name="e", cache_dir=cache, weights_dir=tmp_path / "we",
                 fingerprint={"confirm": {"steps": 3}}).run(recs, progress=False)
    assert len(seed0.calls) == len(chosen) and len(list(cache.glob("*.safetensors"))) == len(chosen)


@pytest.mark.slow
def test_a_run_killed_during_confirmation_resumes_without_redoing_finished_ones(tmp_path):
    (tmp_path / "space.yaml").write_text("base: minilm_l6\ngroups: {ffn_in: [1, 2, 4, 8, 16], ffn_out: [1, 2, 4]}\n")
    url = f"sqlite:///{tmp_path}/study.db"
    cmd = [sys.executable, str(WORKER), str(tmp_path / "space.yaml"), url, "0.0", "0", "10", "crash"]
    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING

    def ready(trials):  # confirming: some finished, one running
        busy = [t for t in trials if t.state == running and "worker" in t.user_attrs]
        return sum(t.state == complete for t in trials) >= 3 and busy

    trials = kill_when([*cmd, "2.0"], "crash" + SUFFIX, url, ready)
    done = [t for t in trials if t.state == complete]
    running = [t for t in trials if t.state == running and "worker" in t.user_attrs]
    before = {t.number: t.value for t in done}
    second = subprocess.run([*cmd, "0.05"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    trials = optuna.load_study(study_name="crash" + SUFFIX, storage=url).trials
    by_number = {t.number: t for t in trials}
    for number, value in before.items():  # finished confirmations kept, not redone
        assert by_number[number].state == optuna.trial.TrialState.COMPLETE and by_number[number].value == value
        assert by_number[number].user_attrs["worker"] == done[0].user_attrs["worker"]
    assert by_number[running[0].number].state == optuna.trial.TrialState.FAIL
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    keys = [(t.user_attrs["confirm"]["spec_hash"], t.user_attrs["confirm"]["seed"]) for t in complete]
    assert len(keys) == len(set(keys)) and len(keys) % 2 == 0 and len(keys) >= 2 * MIN_DESIGNS  # each once, both seeds
    second_worker = {t.user_attrs["worker"] for t in complete} - {done[0].user_attrs["worker"]}
    assert len(second_worker) == 1
    assert sum(t.user_attrs["worker"] in second_worker for t in complete) == len(keys) - len(before)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    from arch_search.study.record import records

    searched = records(optuna.load_study(study_name="crash", storage=url).trials)
    assert {h for h, _ in keys} == {r.spec_hash for r in choose(searched, bands=4)}  # every band's design, after the kill


def test_export_carries_the_tasks_label_names(tmp_path):
    """A model saved with its task's labels exports with them as id2label; transformers'
    pipeline prints them (not LABEL_0/LABEL_1)."""
    import transformers

    from arch_search import ArchSpec
    from arch_search.app.export import export_hf
    from arch_search.study.weights import load_trial_weights, save_trial_weights, trial_labels
    from arch_search.tasks.glue import get_task
    from arch_search.nn.model import build_model
    from arch_search.tasks.tokenizer import load_tokenizer
    from tests.conftest import SHARED

    labels = get_task("sst2").label_names
    assert labels == ("negative", "positive") and get_task("rte").label_names == ("entailment", "not_entailment")
    checkpoint = SHARED / "models" / "all-MiniLM-L6-v2"
    tokenizer = load_tokenizer(checkpoint)
    spec = ArchSpec.preset("minilm_l6").with_scale(hidden=32, layers=1, heads=2, intermediate=64,
                                                  vocab=tokenizer.get_vocab_size())
    model = build_model(spec.replace(groups={"ffn_in": 2}), task_head=2).eval()
    save_trial_weights(tmp_path / "w.safetensors", model, tokenizer, labels)
    assert trial_labels(tmp_path / "w.safetensors") == labels
    loaded, tok = load_trial_weights(tmp_path / "w.safetensors")
    out = tmp_path / "hf"
    out.mkdir()
    export_hf(loaded, out, labels)
    tok.save(str(out / "tokenizer.json"))
    config = transformers.AutoConfig.from_pretrained(str(out))
    assert config.id2label == {0: "negative", 1: "positive"}
    pipe = transformers.pipeline("text-classification", model=str(out))
    assert pipe("a gripping, funny film")[0]["label"] in labels
