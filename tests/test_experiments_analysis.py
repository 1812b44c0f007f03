"""The experiments' analysis code (issue 13): the pure functions that turn measured rows into the
numbers of a results.md, pinned by hand on small synthetic inputs. No training, no timing, no
data from ../shared: every Comparison / Cost / Scores / CSV here is built by hand.

Covered: experiments/toolkit/ (Scores, rows, design_table, stored scores, the groups pattern, the
sampler runs' trials), search_recovers_squeezebert/samplers.py (analyse, render: hypervolumes, the
common reference point, the NSGA-II / random ratio), search_recovers_squeezebert/run.py (render of a
run directory), proxy_compressed/run.py (SNR, gap, tau, the summary builder), and the helpers of
which_layers, group_count and shuffle, and speedup's precision accuracy check
(experiments.speedup.precision_accuracy: the paired per-sentence comparison and its summary).
proxy_fidelity/run.py has no pure helper (its analysis is inline in main(), after training), so it
is not covered here.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import pytest

from arch_search import ArchSpec
from arch_search.design.spec import PROJECTIONS
from arch_search.measure.cost import Cost
from arch_search.measure.latency import Comparison, Env, Latency
from experiments import toolkit
from experiments.speedup import precision_accuracy
from experiments.toolkit import sampler_runs, store
from experiments.toolkit.ranking import NAMED, gap, means, snr, table_of, tau

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"


def load(relpath: str):
    """An experiment script as a module (a unique name each: several are called run.py)."""
    name = "experiment_" + relpath.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


samplers = load("search_recovers_squeezebert/samplers.py")
recovers = load("search_recovers_squeezebert/scratch_proxy/run.py")
compressed = load("proxy_compressed/run.py")
which_layers = load("which_layers/run.py")
group_count = load("group_count/run.py")
shuffle = load("shuffle/run.py")
glue_tasks = load("glue_tasks/run.py")

ENV = Env(cpu="Test CPU @ 1GHz", cores=2, threads=1, torch="0.0", python="3.0", machine="x86_64")


def S(heldout, dev=None, seeds=None, seconds=None, score=()) -> toolkit.Scores:
    """Scores of one design: fractions per seed."""
    seeds = tuple(seeds if seeds is not None else range(len(heldout)))
    return toolkit.Scores(seeds, tuple(heldout), tuple(dev if dev is not None else heldout),
                          tuple(seconds if seconds is not None else [1.0] * len(heldout)), tuple(score))


def lat(median, p10=None, p90=None, cv=0.0) -> Latency:
    return Latency(median_ms=median, p10_ms=median if p10 is None else p10, p90_ms=median if p90 is None else p90,
                   cv=cv, env=ENV)


def comparison(ms: dict[str, float], baseline: str | None = None) -> Comparison:
    return Comparison({name: lat(m) for name, m in ms.items()}, baseline or next(iter(ms)))


def latency_rows(ms: dict[str, float]) -> dict[str, dict]:
    """toolkit.timed's rows: median ms per design (the rest as the medians)."""
    first = next(iter(ms.values()))
    return {n: {"design": n, "median_ms": m, "p10_ms": m, "p90_ms": m, "cv": 0.0, "speedup": round(first / m, 3),
                "machine": str(ENV)} for n, m in ms.items()}


@pytest.fixture
def argv(monkeypatch):
    """sys.argv as if ``script`` ran from the repository root (toolkit.command() reads it)."""

    def set_(script: str, *args: str) -> None:
        monkeypatch.setattr(sys, "argv", [str(REPO / script), *args])

    return set_


def tiny(**changes) -> ArchSpec:
    return ArchSpec(**{"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64, "vocab": 99, "max_positions": 24,
                       **changes})


# ==== experiments/toolkit =========================================================================


def test_scores_stats_are_percent_mean_min_max_over_seeds():
    s = S([0.80, 0.81, 0.90], dev=[0.70, 0.75, 0.71])
    assert s.stats() == pytest.approx((83.6666667, 80.0, 90.0))  # the mean, not the median (81)
    assert s.stats("dev") == pytest.approx((72.0, 70.0, 75.0))
    assert s.text() == "83.7 (80.0-90.0)"
    assert s.text("dev") == "72.0 (70.0-75.0)"


def test_a_score_the_proxy_did_not_give_is_nan_not_the_heldout_metric():
    s = S([0.80, 0.90])  # the scratch proxy: no separate score
    assert all(math.isnan(v) for v in s.points("score")) and len(s.points("score")) == 2
    assert all(math.isnan(v) for v in s.stats("score")) and s.points("heldout") == pytest.approx((80.0, 90.0))


def test_scores_text_of_one_seed_has_no_range():
    assert S([0.8123]).text() == "81.2"


def _designs_for_rows():
    designs = {
        "dense": tiny(),
        "grouped": tiny(groups={"q": 4, "ffn_in": 2}, shuffle={"ffn_in": True, "k": True}),  # k dense: no "s"
        "per-layer": tiny(groups={"v": [2, 4], "ffn_out": 4}),
    }
    scores = {
        "dense": S([0.80, 0.81, 0.90], dev=[0.70, 0.75, 0.71], seeds=(3, 5, 7), seconds=[10, 20, 31],
                   score=[-0.30, -0.32, -0.28]),
        "grouped": S([0.75, 0.7777, 0.80], dev=[0.70, 0.70, 0.73], seeds=(3, 5, 7), seconds=[5, 5, 5],
                     score=[-0.40, -0.41, -0.39]),
        "per-layer": S([0.60, 0.60, 0.60], seeds=(3, 5, 7), score=[-0.5, -0.5, -0.5]),
    }
    latency = {"dense": {"median_ms": 10.0, "p10_ms": 9.0, "p90_ms": 12.0, "cv": 0.05, "speedup": 1.0},
               "grouped": {"median_ms": 3.14, "p10_ms": 3.0, "p90_ms": 3.5, "cv": 0.1235, "speedup": 3.183},
               "per-layer": {"median_ms": 4.0, "p10_ms": 4.0, "p90_ms": 4.0, "cv": 0.0, "speedup": 2.5}}
    cost = {
        "dense": Cost(params=1_234_567, encoder_params=1, macs=2_500_000_000, flops=5_000_000_000,
                      pooler_macs=0, head_macs=0, seq_len=128, batch=1),
        "grouped": Cost(params=555_555, encoder_params=1, macs=1_234_567_890, flops=2_469_135_780,
                        pooler_macs=0, head_macs=0, seq_len=128, batch=1),
        "per-layer": Cost(params=1_000_000, encoder_params=1, macs=1_000_000_000, flops=2_000_000_000,
                          pooler_macs=0, head_macs=0, seq_len=128, batch=1),
    }
    return designs, scores, latency, cost


def test_rows_one_row_per_design_with_stats_latency_and_costs():
    designs, scores, latency, cost = _designs_for_rows()
    rows = toolkit.rows(designs, scores, latency, cost)
    assert [r["design"] for r in rows] == ["dense", "grouped", "per-layer"]
    dense, grouped = rows[0], rows[1]
    assert list(dense) == [
        "design", "groups", "heldout_mean", "heldout_sd", "heldout_seed3", "heldout_seed5", "heldout_seed7",
        "dev_mean", "dev_sd", "dev_seed3", "dev_seed5", "dev_seed7", "score_mean", "score_sd", "score_seed3",
        "score_seed5", "score_seed7", "median_ms", "p10_ms", "p90_ms", "cv", "speedup", "macs", "gmacs", "gflops",
        "params_m", "seconds_mean"]
    assert dense == {
        "design": "dense", "groups": "q1 k1 v1 post1 in1 out1",
        "heldout_mean": 83.67, "heldout_sd": 5.51,  # sd of 80, 81, 90
        "heldout_seed3": 80.0, "heldout_seed5": 81.0, "heldout_seed7": 90.0,
        "dev_mean": 72.0, "dev_sd": 2.65, "dev_seed3": 70.0, "dev_seed5": 75.0, "dev_seed7": 71.0,
        "score_mean": -30.0, "score_sd": 2.0, "score_seed3": -30.0, "score_seed5": -32.0, "score_seed7": -28.0,
        "median_ms": 10.0, "p10_ms": 9.0, "p90_ms": 12.0, "cv": 0.05, "speedup": 1.0,
        "macs": 2_500_000_000, "gmacs": 2.5, "gflops": 5.0, "params_m": 1.23, "seconds_mean": 20.3,
    }
    # 0.7777 -> 77.77; mean (75 + 77.77 + 80) / 3 = 77.59
    assert grouped["groups"] == "q4 k1 v1 post1 in2s out1"
    assert (grouped["heldout_mean"], grouped["heldout_seed5"], grouped["dev_mean"]) == (77.59, 77.77, 71.0)
    assert (grouped["median_ms"], grouped["cv"], grouped["speedup"]) == (3.14, 0.1235, 3.183)
    assert (grouped["gmacs"], grouped["gflops"], grouped["params_m"], grouped["seconds_mean"]) == (1.235, 2.469, 0.56, 5.0)
    assert rows[2]["groups"] == "q1 k1 v2/4 post1 in1 out4"  # per-layer groups joined by "/"


def test_design_table_shows_seed_ranges_and_speedup():
    designs, scores, latency, cost = _designs_for_rows()
    lines = toolkit.design_table(toolkit.rows(designs, scores, latency, cost), scores)
    assert lines == [
        "| design | groups (q k v post in out) | held-out % (seeds) | dev % (seeds) | score x100 (seeds) | median ms "
        "| speedup | GFLOPs | params M |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| dense | q1 k1 v1 post1 in1 out1 | 83.7 (80.0-90.0) | 72.0 (70.0-75.0) | -30.0 (-32.0--28.0) | 10.0 | 1.00x "
        "| 5.0 | 1.23 |",
        "| grouped | q4 k1 v1 post1 in2s out1 | 77.6 (75.0-80.0) | 71.0 (70.0-73.0) | -40.0 (-41.0--39.0) | 3.14 | 3.18x "
        "| 2.469 | 0.56 |",
        "| per-layer | q1 k1 v2/4 post1 in1 out4 | 60.0 (60.0-60.0) | 60.0 (60.0-60.0) | -50.0 (-50.0--50.0) | 4.0 | 2.50x "
        "| 2.0 | 1.0 |",
    ]


def test_the_paired_noise_is_the_residual_of_design_plus_seed():
    """A seed that is lucky for every design (common random numbers) is not noise: b = a + 1 on
    every seed leaves no residual; one interaction of 2 points leaves sd 1 with 1 dof. The
    pooled within-design sd counts the shared seed effect as noise."""
    from arch_search.stats import paired_noise, pooled_noise

    shifted = {"a": [80.0, 84.0, 88.0], "b": [81.0, 85.0, 89.0]}
    assert paired_noise(shifted, "t").sd == 0.0 and paired_noise(shifted, "t").dof == 2
    assert pooled_noise(list(shifted.values()), "t").sd == pytest.approx(4.0)  # the seed's shared 4 points
    n = paired_noise({"a": [0.0, 0.0], "b": [0.0, 2.0]}, "t")  # residuals +-0.5: sum of squares 1, 1 dof
    assert (n.sd, n.dof, n.designs) == (pytest.approx(1.0), 1, 2)
    assert paired_noise({"a": [1.0], "b": [2.0]}, "t") is None  # one seed: no noise to measure
    assert paired_noise({"a": [1.0, math.nan], "b": [2.0, 3.0]}, "t") is None  # a diverged run


def test_a_paired_difference_has_its_mde_and_a_verdict():
    from arch_search.stats import Noise, paired_difference

    noise = Noise(sd=1.0, designs=2, dof=1)
    d = paired_difference([0.0, 2.0], [0.0, 0.0], noise)  # se = 1 x sqrt(2 / 2) = 1: MDE 2
    assert (d.mean, d.by_seed, d.se, d.mde) == (1.0, (0.0, 2.0), pytest.approx(1.0), pytest.approx(2.0))
    assert d.verdict(+1) == d.verdict(-1) == "not reproduced"  # 1 point is below the MDE either way
    big = paired_difference([3.0, 4.0, 5.0, 6.0], [0.0, 0.0, 0.0, 0.0], noise)  # 4.5 > MDE 2 x sqrt(2 / 4)
    assert big.mde == pytest.approx(2 * math.sqrt(0.5))
    assert (big.verdict(+1), big.verdict(-1)) == ("reproduced", "contradicted")
    assert big.text() == "+4.50 (MDE 1.41)"
    with pytest.raises(ValueError):
        big.verdict(0)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0], noise)


class FakeProxy:
    """Stands in for the compressed proxy: held-out accuracy 0.8 - 0.01 x q's groups + 0.001 x seed."""

    calls: list[tuple[str, int]] = []

    def __init__(self, seed: int):
        from types import SimpleNamespace

        self.seed = seed
        self.setup = SimpleNamespace(data=SimpleNamespace(task=SimpleNamespace(metric="accuracy")))

    def evaluate(self, spec):
        from arch_search.proxies import ProxyResult

        FakeProxy.calls.append((spec.summary(), self.seed))
        v = 0.8 - 0.01 * spec.groups["q"][0] + 0.001 * self.seed
        return ProxyResult(score=-v, metric="log_likelihood", dev={"accuracy": v - 0.05}, details={"heldout": {"accuracy": v}})


def test_lesson_scores_are_stored_row_by_row_resumed_and_shared(tmp_path, monkeypatch):
    """Each (design, seed) is scored once: a second run scores nothing, a lost row is scored
    again, another lesson copies a design it shares (same spec, seed and proxy) and scores the
    rest; a row under another proxy key does not count; a stored design whose spec changed stops
    the run in one line; --render scores nothing and names what is missing."""
    monkeypatch.setattr(store, "instantiate", lambda node, **kw: FakeProxy(node.seed))
    FakeProxy.calls = []
    args = argparse.Namespace(seeds=[0, 1], rounds=2, data_dir="/data/glue", cache_dir=str(tmp_path / "cache"),
                              proxy_threads=None, quick=False, render=False)
    base = ArchSpec.preset("bert_base")
    designs = {"dense": base, "q4": base.replace(groups={"q": 4})}
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    scores = toolkit.stored_scores(designs, args, a)
    assert len(FakeProxy.calls) == 4 and scores["q4"].heldout == pytest.approx((0.76, 0.761))
    assert scores["dense"].score == pytest.approx((-0.79, -0.791)) and scores["dense"].dev == pytest.approx((0.74, 0.741))
    rows = toolkit.read_rows(a / "scores.csv")
    assert [(r["design"], r["seed"]) for r in rows] == [("dense", "0"), ("q4", "0"), ("dense", "1"), ("q4", "1")]
    assert list(rows[0]) == list(toolkit.SCORE_COLUMNS) and rows[0]["spec"] == base.summary() and rows[0]["from"] == ""
    assert rows[0]["spec_hash"] == base.hash and rows[1]["spec_hash"] == designs["q4"].hash

    FakeProxy.calls = []
    assert toolkit.stored_scores(designs, args, a) == scores and FakeProxy.calls == []
    toolkit.scores_only(designs, args, a)  # not asked for: returns
    with pytest.raises(SystemExit) as stop:  # --scores-only: everything is stored, so it scores nothing and exits 0
        toolkit.scores_only(designs, argparse.Namespace(**{**vars(args), "scores_only": True}), a)
    assert stop.value.code == 0 and FakeProxy.calls == []
    (a / "scores.csv").write_text("".join((a / "scores.csv").read_text().splitlines(keepends=True)[:-1]))  # a lost row
    toolkit.stored_scores(designs, args, a)
    assert FakeProxy.calls == [(designs["q4"].summary(), 1)]

    FakeProxy.calls = []
    other = {"plain": base, "k4": base.replace(groups={"k": 4})}
    toolkit.stored_scores(other, args, b)
    assert sorted(FakeProxy.calls) == [(other["k4"].summary(), 0), (other["k4"].summary(), 1)]
    copied = [r for r in toolkit.read_rows(b / "scores.csv") if r["design"] == "plain"]
    assert [r["from"] for r in copied] == ["a", "a"] and copied[0]["heldout"] == rows[0]["heldout"]

    text = (b / "scores.csv").read_text()
    key = copied[0]["proxy"]
    (b / "scores.csv").write_text(text.replace(f"plain,{base.summary()},{base.hash},0,", f"plain,{base.summary()},{base.hash},9,"))  # seed 0 lost
    (a / "scores.csv").write_text((a / "scores.csv").read_text().replace(key, "another-proxy"))  # nothing to copy
    FakeProxy.calls = []
    toolkit.stored_scores(other, args, b)
    assert FakeProxy.calls == [(base.summary(), 0)]

    g2 = base.replace(groups=2)
    (a / "scores.csv").write_text((a / "scores.csv").read_text().replace(base.summary(), g2.summary()).replace(base.hash, g2.hash))
    with pytest.raises(SystemExit, match=rf"'dense' was scored as .*g\[q2 k2 v2 post2 in2 out2\] \({g2.hash}\), not .* \({base.hash}\)"):
        toolkit.stored_scores(designs, args, a)
    FakeProxy.calls = []
    render = argparse.Namespace(**{**vars(args), "render": True})
    with pytest.raises(SystemExit, match="no score for plain seed 0, plain seed 1, k4 seed 0, k4 seed 1"):
        toolkit.stored_scores(other, render, tmp_path / "c")  # nothing stored there, and --render copies nothing
    assert FakeProxy.calls == []


def test_a_design_is_stored_by_its_hash_and_a_row_from_before_the_hash_by_its_summary(tmp_path, monkeypatch):
    """scores.csv identifies a design by spec.hash: a design the summary cannot tell apart (another
    activation, vocab or layer-norm eps) is not copied from a sibling's row. A committed row from
    before the spec_hash column (its summary only) counts for a design of the presets' other
    fields, and only for one: a summary match with another vocab stops the run as another spec."""
    monkeypatch.setattr(store, "instantiate", lambda node, **kw: FakeProxy(node.seed))
    args = argparse.Namespace(seeds=[0], rounds=2, data_dir="/data/glue", cache_dir=str(tmp_path / "cache"),
                              proxy_threads=None, quick=False, render=False)
    base = ArchSpec.preset("bert_base")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    toolkit.stored_scores({"dense": base}, args, a)
    FakeProxy.calls = []
    relu = base.replace(act="relu")
    assert relu.summary() == base.summary() and relu.hash != base.hash
    toolkit.stored_scores({"dense relu": relu}, args, b)
    assert FakeProxy.calls == [(base.summary(), 0)]  # scored, not copied from a's dense
    assert [r["spec_hash"] for r in toolkit.read_rows(b / "scores.csv")] == [relu.hash]

    legacy = [{k: v for k, v in r.items() if k != "spec_hash"} for r in toolkit.read_rows(a / "scores.csv")]
    toolkit.save_rows(a / "scores.csv", legacy)  # as committed before the column: no spec_hash
    for r in legacy:
        assert store.scored_as(r, base) and not store.scored_as(r, relu) and not store.scored_as(r, base.replace(vocab=8))
    FakeProxy.calls = []
    assert toolkit.stored_scores({"dense": base}, args, a)["dense"].heldout == pytest.approx((0.79,))
    toolkit.stored_scores({"plain": base}, args, c)
    assert FakeProxy.calls == []  # a's row from before the hash copied
    assert [(r["from"], r["spec_hash"]) for r in toolkit.read_rows(c / "scores.csv")] == [("a", base.hash)]
    with pytest.raises(SystemExit, match=r"'dense' was scored as .* \(no hash\), not"):
        toolkit.stored_scores({"dense": base.replace(vocab=8)}, args, a)


def test_save_rows_writes_the_csv_whole_and_read_rows_gives_it_back(tmp_path):
    """A resumable run's CSV: the first row's columns (or those named, a missing one empty), written
    whole (no temporary file left), read back as strings; no file reads as no rows."""
    path = tmp_path / "results.csv"
    assert toolkit.read_rows(path) == []
    toolkit.save_rows(path, [{"design": "dense", "seed": 0, "score": -0.3}, {"design": "q4", "seed": 1, "score": -0.35}])
    assert toolkit.read_rows(path) == [{"design": "dense", "seed": "0", "score": "-0.3"},
                                       {"design": "q4", "seed": "1", "score": "-0.35"}]
    toolkit.save_rows(path, [{"seed": 2, "design": "k4"}], columns=("design", "seed", "score"))
    assert path.read_text() == "design,seed,score\nk4,2,\n" and list(tmp_path.iterdir()) == [path]


def test_dense_as_the_teacher_moves_only_dense_and_keeps_the_paired_noise():
    """dense_as_teacher: dense's row at the teacher's level, its seed pattern and every other row
    kept, so the pooled noise (and with it the MDE) is the lesson's own; the verdict sees the move."""
    scores = {"dense": S([0.86, 0.88]), "a": S([0.84, 0.85]), "b": S([0.80, 0.83])}
    teacher = S([0.90, 0.90])
    seen = {}

    def rule(s):
        seen.update(s)
        return "up" if s["dense"].stats()[0] > 88 else "down"

    out = toolkit.dense_as_teacher(scores, "dense", teacher, rule, task="sst2")
    assert seen["dense"].heldout == pytest.approx((0.89, 0.91)) and seen["a"] == scores["a"]
    assert toolkit.noise(seen).sd == pytest.approx(toolkit.noise(scores).sd)
    assert out["verdict"] == "up" and rule(scores) == "down"
    assert out["healed_minus_teacher_points"] == pytest.approx(-3.0) and out["metric"] == "held-out accuracy"
    assert toolkit.dense_as_teacher(scores, "dense", None, rule, task="sst2") == {"verdict": "not measured"}
    assert toolkit.dense_as_teacher(scores, "dense", teacher, rule, "dev", task="cola")["metric"] == "dev MCC"


def test_a_metric_is_labelled_by_its_task():
    """The report's name of a metric says the task's own (GLUE's: MCC, Pearson, F1, accuracy)."""
    assert [toolkit.metric_label("dev", t) for t in ("sst2", "cola", "stsb", "mrpc", "rte")] == [
        "dev accuracy", "dev MCC", "dev Pearson", "dev F1", "dev accuracy"]
    assert toolkit.metric_label("heldout", "sst2") == "held-out accuracy"  # the lessons' (SST-2) labels as before
    assert toolkit.metric_label("score", "cola") == "score (log-likelihood x100)"


def test_scores_stats_of_a_diverged_seed_do_not_depend_on_its_position():
    first, middle = S([math.nan, 0.80, 0.90]), S([0.80, math.nan, 0.90])
    assert [math.isnan(x) for x in first.stats()] == [math.isnan(x) for x in middle.stats()]


# ==== search_recovers_squeezebert/samplers.py =======================================================

TRIAL_COLUMNS = ("trial", "reference", "design", "proxy_accuracy", "latency_ms", "speedup_vs_dense",
                 "accuracy_vs_dense_points", "dev_score", "gflops", "params_m", "latency_cv", "spec_hash")


def write_csv(path: Path, rows: list[dict], columns=TRIAL_COLUMNS) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows([{c: r.get(c, "") for c in columns} for r in rows])


# (trial number, accuracy, latency ms, design hash) per run, in trial order; the reference point
# is the worst accuracy (0.60) and worst latency (120 ms) seen in any run: random seed 0, trial 1.
RUNS = {
    ("nsga2", 0): [(9, 0.80, 100.0, "h0"), (10, 0.70, 40.0, "h1"), (11, 0.78, 50.0, "h2"), (12, 0.75, 30.0, "h3")],
    ("random", 0): [(0, 0.80, 100.0, "h0"), (1, 0.60, 120.0, "h4"), (2, 0.72, 60.0, "h5"), (3, 0.72, 60.0, "h5")],
    ("nsga2", 1): [(0, 0.80, 100.0, "h0"), (1, 0.76, 45.0, "h6"), (2, 0.65, 20.0, "h7"), (3, 0.79, 80.0, "h8"),
                   (4, 0.81, 110.0, "h9")],  # one trial more than the others: not in the rows (n = 4)
    ("random", 1): [(0, 0.80, 100.0, "h0"), (1, 0.70, 90.0, "h10"), (2, 0.62, 35.0, "h11"), (3, 0.79, 25.0, "h12")],
}
# Hypervolume after each trial against (0.60, 120), area = sum over the front (by latency) of
# (next latency - latency) * (accuracy - 0.60), the last up to 120 ms:
HV = {
    ("nsga2", 0): [4.0, 10.0, 14.0, 16.0],  # 20*.2; +60*.1; 10*.1+50*.18+4; (30,.75) replaces (40,.7): 20*.15+9+4
    ("random", 0): [4.0, 4.0, 8.8, 8.8],  # (0.60, 120) is on the reference point: adds nothing; 40*.12+4; a repeat
    ("nsga2", 1): [4.0, 12.8, 14.05, 14.65, 14.75],  # 55*.16+4; +25*.05; 1.25+35*.16+20*.19+4; +10*.2+10*.21-20*.2
    ("random", 1): [4.0, 5.0, 6.1, 18.25],  # 10*.1+4; 55*.02+5; (25,.79) dominates both: 75*.19+4
}


def write_sampler_runs(out: Path, machine: str | None = "Test CPU | 2 cores") -> None:
    for (sampler, seed), trials in RUNS.items():
        run = out / f"{sampler}-seed{seed}"
        run.mkdir(parents=True)
        rows = [{"trial": t, "reference": "", "design": f"design {h}", "proxy_accuracy": a, "latency_ms": ms,
                 "spec_hash": h} for t, a, ms, h in trials]
        write_csv(run / "trials.csv", rows[::-1])  # out of order: trial order is the trial column, numerically
        (run / "wall_seconds.txt").write_text({("nsga2", 0): "600\n", ("random", 0): "630\n"}.get((sampler, seed), "1200\n"))
    if machine:
        (out / "machine.txt").write_text(machine + "\n")


def test_samplers_trials_are_read_in_numeric_trial_order(tmp_path):
    write_sampler_runs(tmp_path)
    assert sampler_runs.trials(tmp_path / "nsga2-seed0") == [(0.80, 100.0, "h0"), (0.70, 40.0, "h1"), (0.78, 50.0, "h2"),
                                                             (0.75, 30.0, "h3")]  # 9 before 10 (not "10" < "9")
    # experiments/samplers counts designs: each once, where the run first evaluated it (h5 twice)
    assert sampler_runs.distinct(tmp_path / "random-seed0") == [(0.80, 100.0), (0.60, 120.0), (0.72, 60.0)]


def test_samplers_analyse_hypervolumes_and_the_common_reference_point(tmp_path):
    write_sampler_runs(tmp_path)
    rows, curves, ref = samplers.analyse(tmp_path, [0, 1])
    assert ref == (0.60, 120.0)
    assert set(curves) == set(HV)
    for key, hv in HV.items():
        assert curves[key] == pytest.approx(hv), key
    by = {(r["sampler"], r["seed"]): r for r in rows}
    assert [(r["sampler"], r["seed"]) for r in rows] == [("nsga2", 0), ("nsga2", 1), ("random", 0), ("random", 1)]
    assert all(r["trials"] == 4 for r in rows)  # the shortest run's count
    assert by[("nsga2", 0)] == {"sampler": "nsga2", "seed": 0, "trials": 4, "hypervolume": 16.0, "hv_at_half": 10.0,
                                "best_accuracy": 80.0, "fastest_ms": 30.0, "distinct_designs": 4}
    assert by[("random", 0)] == {"sampler": "random", "seed": 0, "trials": 4, "hypervolume": 8.8, "hv_at_half": 4.0,
                                 "best_accuracy": 80.0, "fastest_ms": 60.0, "distinct_designs": 3}  # h5 twice
    # the 5th trial (0.81, 110 ms) is past n = 4: not in the hypervolume, best accuracy or designs
    assert by[("nsga2", 1)] == {"sampler": "nsga2", "seed": 1, "trials": 4, "hypervolume": 14.65, "hv_at_half": 12.8,
                                "best_accuracy": 80.0, "fastest_ms": 20.0, "distinct_designs": 4}
    assert by[("random", 1)] == {"sampler": "random", "seed": 1, "trials": 4, "hypervolume": 18.25, "hv_at_half": 5.0,
                                 "best_accuracy": 80.0, "fastest_ms": 25.0, "distinct_designs": 4}


def _sampler_args(seeds=(0, 1)) -> argparse.Namespace:
    return argparse.Namespace(seeds=list(seeds), trials=4, proxy_steps=150, jobs=2, cache_dir=".cache/arch_search",
                              data_dir="../shared/glue", quick=False, render=True)


def test_samplers_render_table_ratio_and_wins(tmp_path, argv):
    argv("experiments/search_recovers_squeezebert/samplers.py", "--render")
    write_sampler_runs(tmp_path)
    rows, lines, fig = samplers.render(_sampler_args(), tmp_path)
    text = "\n".join(lines)
    assert "Command: `python experiments/search_recovers_squeezebert/samplers.py` (" in text  # what computed the rows, not --render
    assert "Machine: Test CPU | 2 cores" in lines
    assert "the worst of both seen anywhere: accuracy 60.00%, latency 120.0 ms" in text
    assert "seed=<seed>" in text and "seed=0" not in text
    table = lines[lines.index("## Hypervolume per run") + 2:]
    assert table[:6] == [
        "| sampler | seed | trials | hypervolume at 4 | at 2 | best accuracy % | fastest ms | distinct designs | wall min |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| nsga2 | 0 | 4 | 16.0 | 10.0 | 80.0 | 30.0 | 4 | 10.0 |",
        "| nsga2 | 1 | 4 | 14.65 | 12.8 | 80.0 | 20.0 | 4 | 20.0 |",
        "| random | 0 | 4 | 8.8 | 4.0 | 80.0 | 60.0 | 3 | 10.5 |",
        "| random | 1 | 4 | 18.25 | 5.0 | 80.0 | 25.0 | 4 | 20.0 |",
    ]
    # means (16 + 14.65) / 2 and (8.8 + 18.25) / 2; ratios 16 / 8.8 and 14.65 / 18.25
    assert ("Mean hypervolume at 4 trials: NSGA-II 15.3250, random 13.5250; NSGA-II / random per seed: 1.818, 0.803 "
            "(NSGA-II ahead in 1 of 2 seeds).") in lines
    assert len(fig.data) == 4
    assert list(fig.data[0].y) == pytest.approx(HV[("nsga2", 0)])
    assert list(fig.data[1].y) == pytest.approx(HV[("nsga2", 1)][:4])  # cut at the common n
    assert [r["hypervolume"] for r in rows] == [16.0, 14.65, 8.8, 18.25]


def test_samplers_render_without_machine_txt_and_one_seed(tmp_path, argv):
    argv("experiments/search_recovers_squeezebert/samplers.py")
    write_sampler_runs(tmp_path, machine=None)
    _, lines, _ = samplers.render(_sampler_args(seeds=(0,)), tmp_path)
    assert "Machine: ?" in lines
    # seed 0 only: the reference point is still (0.60, 120) (random seed 0 saw both)
    assert any("accuracy 60.00%, latency 120.0 ms" in line for line in lines)
    assert ("Mean hypervolume at 4 trials: NSGA-II 16.0000, random 8.8000; NSGA-II / random per seed: 1.818 "
            "(NSGA-II ahead in 1 of 1 seeds).") in lines


# ==== search_recovers_squeezebert/scratch_proxy/run.py: render(run_dir) ============================

PARETO_COLUMNS = (*TRIAL_COLUMNS, "within_noise", "remeasured_ms", "remeasured_speedup")
DENSE = "768x12 h12 ffn3072 g[q1 k1 v1 post1 in1 out1]"
SQUEEZE = "768x12 h12 ffn3072 g[q4 k4 v4 post1 in4 out4]"
D = {n: f"768x12 h12 ffn3072 g[q{g} k8 v4 post1 in8 out8]" for n, g in zip(range(2, 9), (16, 8, 4, 2, 1, 1, 2))}


def row(trial, acc, ms, points, reference="", design=None, spec_hash=None, dev="", speedup=None, gflops=5.0,
        params=40.0, **extra) -> dict:
    """A trials.csv / pareto.csv row as ``arch_search.study.run_tables.trial_rows`` writes it (dense: 0.82 at 100 ms)."""
    return {"trial": trial, "reference": reference, "design": design or D[trial], "proxy_accuracy": acc,
            "latency_ms": ms, "speedup_vs_dense": speedup if speedup is not None else round(100.0 / ms, 2),
            "accuracy_vs_dense_points": points, "dev_score": dev, "gflops": gflops, "params_m": params,
            "latency_cv": 0.01, "spec_hash": spec_hash or f"hash{trial}", **extra}


T = {
    0: row(0, 0.82, 100.0, 0.0, "bert_base", DENSE, dev=0.81, gflops=22.3472, params=109.48),
    1: row(1, 0.79, 40.0, -3.0, "squeezebert", SQUEEZE, dev=0.78, gflops=7.399, params=51.09),
    2: row(2, 0.805, 38.0, -1.5, dev=0.8012, gflops=5.123, params=40.31),  # dominates SqueezeBERT
    3: row(3, 0.795, 35.0, -2.5, gflops=4.5, params=38.2),  # dominates SqueezeBERT
    4: row(4, 0.79, 40.0, -3.0),  # equal to SqueezeBERT: does not dominate it
    5: row(5, 0.80, 45.0, -2.0),  # more accurate but slower: does not
    6: row(6, 0.70, 20.0, -12.0, gflops=1.5, params=30.0),  # faster but less accurate: does not
    7: row(7, 0.70, 20.0, -12.0, design=D[6], spec_hash="hash6", gflops=1.5, params=30.0),  # trial 6 sampled again
    8: row(8, 0.815, 42.0, -0.5, dev=0.8105, gflops=6.0, params=45.0),
}


def run_dir(tmp_path: Path, trials: dict, pareto: list[dict], states=None) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    write_csv(d / "trials.csv", list(trials.values()))
    write_csv(d / "pareto.csv", pareto, PARETO_COLUMNS)
    states = states or {"RUNNING": 0, "COMPLETE": len(trials), "PRUNED": 0, "FAIL": 0, "WAITING": 0}
    (d / "study.json").write_text(json.dumps({"n_trials": sum(states.values()), "states": states}))
    (d / "wall_seconds.txt").write_text("1830\n")
    (d / "machine.txt").write_text("Test CPU | 2 cores\n")
    return d


def remeasured(r: dict, ms, speedup) -> dict:
    return {**r, "within_noise": False, "remeasured_ms": ms, "remeasured_speedup": speedup}


def recovers_case(tmp_path) -> str:
    pareto = [  # fastest first, as Search.pareto() orders it; trial 7 repeats trial 6's design
        remeasured(T[6], 21.0, 4.9), remeasured(T[7], 21.5, 4.8), remeasured(T[3], 36.0, 2.8),
        remeasured(T[2], 38.5, 2.6), remeasured(T[8], 40.0, 2.5), remeasured(T[0], 100.0, 1.0),
    ]
    states = {"RUNNING": 0, "COMPLETE": 9, "PRUNED": 1, "FAIL": 0, "WAITING": 0}
    return recovers.render(run_dir(tmp_path, T, pareto, states))


def test_recovers_render_front_table_lists_a_repeated_design_once(tmp_path):
    lines = recovers_case(tmp_path).splitlines()
    assert "Machine: Test CPU | 2 cores" in lines
    assert any(line.startswith("Wall time: **30.5 min** for 10 trials (complete 9, pruned 1), ") for line in lines)
    assert ("5 designs (8 distinct designs among the 9 finished trials; a repeat is not scored again, its trial "
            "numbers are listed):") in lines
    start = lines.index("## Pareto front") + 6
    assert lines[start:start + 5] == [
        f"| 6, 7 | - | {D[6]} | 0.7000 | -12.00 | - | 21.0 | 4.90x | 1.50 | 30.0M |",
        f"| 3 | - | {D[3]} | 0.7950 | -2.50 | - | 36.0 | 2.80x | 4.50 | 38.2M |",
        f"| 2 | - | {D[2]} | 0.8050 | -1.50 | 0.8012 | 38.5 | 2.60x | 5.12 | 40.3M |",
        f"| 8 | - | {D[8]} | 0.8150 | -0.50 | 0.8105 | 40.0 | 2.50x | 6.00 | 45.0M |",
        f"| 0 | bert_base | {DENSE} | 0.8200 | +0.00 | 0.81 | 100.0 | 1.00x | 22.35 | 109.5M |",
    ]
    assert lines[start + 5] == ""


def test_recovers_render_fastest_front_design_meeting_the_bar(tmp_path):
    lines = recovers_case(tmp_path).splitlines()
    # meets (>= 2.5x re-measured AND >= -1.5 points): trial 2 (2.6x, -1.5: on the bound) and trial 8
    # (2.5x: on the bound); not trial 6 (-12) nor 3 (-2.5) nor the dense one (1.0x)
    assert (f"- Front design with >= 2.5x re-measured speedup at <= 1.5 points loss: **yes** — 2 of 5; fastest: "
            f"trial 2 (found by the search), {D[2]}, 2.60x at -1.50 points (dev 0.8012 vs dense 0.81).") in lines
    assert "- Of those, found by the search (not an enqueued reference): 2." in lines


def test_recovers_render_squeezebert_off_the_front_dominated_by_exactly_two(tmp_path):
    lines = recovers_case(tmp_path).splitlines()
    assert (f"- SqueezeBERT's design (trial 1): accuracy 0.7900 (-3.00 points vs dense), 40.0 ms in-search, "
            f"**not on the front**: dominated by 2 design(s), e.g. trial 3 {D[3]} (0.7950, 35.0 ms); "
            f"trial 2 {D[2]} (0.8050, 38.0 ms).") in lines


def test_recovers_render_spread_line(tmp_path):
    lines = recovers_case(tmp_path).splitlines()
    # 9 scores sorted: .70 .70 .79 .79 .795 .80 .805 .815 .82 -> the 5th is the median
    assert ("- Spread of the proxy score over all 9 finished trials: 0.7000 to 0.8200 (median 0.7950); "
            "dense reference 0.8200.") in lines


def test_recovers_render_squeezebert_on_the_front_and_no_design_meeting_the_bar(tmp_path):
    trials = {0: T[0], 1: T[1], 2: row(2, 0.70, 30.0, -12.0)}
    pareto = [{**t, "within_noise": False, "remeasured_ms": "", "remeasured_speedup": ""}  # not re-measured
              for t in (trials[2], trials[1], trials[0])]
    lines = recovers.render(run_dir(tmp_path, trials, pareto)).splitlines()
    start = lines.index("## Pareto front") + 6
    assert lines[start:start + 3] == [  # latency and speedup fall back to the in-search ones
        f"| 2 | - | {D[2]} | 0.7000 | -12.00 | - | 30.0 | 3.33x | 5.00 | 40.0M |",
        f"| 1 | squeezebert | {SQUEEZE} | 0.7900 | -3.00 | 0.78 | 40.0 | 2.50x | 7.40 | 51.1M |",
        f"| 0 | bert_base | {DENSE} | 0.8200 | +0.00 | 0.81 | 100.0 | 1.00x | 22.35 | 109.5M |",
    ]
    assert "- Front design with >= 2.5x at <= 1.5 points loss: **no**." in lines  # the bar reads re-measured speedups
    assert ("- SqueezeBERT's design (trial 1): accuracy 0.7900 (-3.00 points vs dense), 40.0 ms in-search, "
            "**on the Pareto front**.") in lines
    assert ("- Spread of the proxy score over all 3 finished trials: 0.7000 to 0.8200 (median 0.7900); "
            "dense reference 0.8200.") in lines


def test_recovers_render_counts_a_repeated_dominating_design_once(tmp_path):
    trials = {**T, 9: row(9, 0.805, 38.0, -1.5, design=D[2], spec_hash="hash2", dev=0.8012)}  # trial 2 again
    pareto = [remeasured(T[6], 21.0, 4.9), remeasured(T[3], 36.0, 2.8), remeasured(T[2], 38.5, 2.6),
              remeasured(T[8], 40.0, 2.5), remeasured(T[0], 100.0, 1.0)]
    assert "dominated by 2 design(s)" in recovers.render(run_dir(tmp_path, trials, pareto))


# ==== search_recovers_squeezebert/run.py (the default search): front coverage ========================

recovers_main = load("search_recovers_squeezebert/run.py")


def test_speedup_hypervolume_is_the_staircase_above_the_reference_point():
    hv = recovers_main.speedup_hypervolume
    assert hv([(2.0, -5.0)]) == pytest.approx(1.0 * 10.0)  # (2 - 1) x (-5 + 15)
    assert hv([(2.0, -5.0), (1.5, -2.0)]) == pytest.approx(0.5 * 13.0 + 0.5 * 10.0)
    assert hv([(2.0, -5.0), (1.5, -2.0), (1.4, -6.0)]) == pytest.approx(11.5)  # dominated: nothing added
    assert hv([(2.0, -5.0), (3.0, -20.0), (0.9, 1.0)]) == pytest.approx(10.0)  # below the reference point: nothing
    assert hv([]) == 0.0


def test_front_coverage_of_the_committed_runs_and_of_the_reference_itself():
    ref = recovers_main.reference_front()
    assert len(ref) == 24  # which_layers 14 + group_count 5 + shuffle's 5 unshuffled rows
    names = {n for _, _, n in ref}
    assert "shuffle: ffn G=4" in names and not any("+ shuffle" in n for n in names)
    out4 = next((sp, sc) for sp, sc, n in ref if n == "which_layers: only out")
    assert out4 == (pytest.approx(1.253), pytest.approx(-1.65, abs=0.01))  # the issue's 1.25x, -1.7
    before = recovers_main.before_issue34()  # the issue's baseline: the committed runs before its changes
    assert before["seed0"] == {"front_coverage": 0.737, "widest_speedup_step": 2.254, "confirmed_front_speedups": [1.0, 2.25, 2.5, 3.15],
                               "leveled_start": 0, "start_bins": 0, "fastest_trial_speedup": 3.2, "mild_designs": 1}
    assert [before[n]["front_coverage"] for n in ("seed1", "seed0-cached")] == [0.694, 0.786]
    rows = [{"reference": "bert_base", "latency_ms": "200", "confirmed_vs_dense_points": "0.0"}]
    rows += [{"reference": "", "latency_ms": str(200 / sp), "confirmed_vs_dense_points": str(sc)} for sp, sc, _ in ref]
    whole = recovers_main.front_coverage(rows, ref)
    assert whole["front_coverage"] == 1.0 and whole["widest_speedup_step"] < 1.35  # the reference covers itself
    ceiling = recovers_main.coverage_ceiling()  # the lessons' own designs at 2 seeds: the target's noise floor
    assert ceiling["two_seeds"] == {"0,1": 0.956, "0,2": 1.0, "1,2": 0.846} and ceiling["two_seeds_mean"] == 0.934
    assert (ceiling["best_of_coverage"], ceiling["best_of_speedups"]) == (0.966, [1.25, 1.92, 2.15, 2.52, 3.22])


def test_rechoose_best_score_picks_what_the_run_confirmed():
    """rechoose.py's picks on its copies of the two runs made with ``best_score`` (rechosen/):
    ``best_score`` gives exactly the designs each run first confirmed, ``front_fastest`` one
    design a band on the search front, the fastest first; the copy confirmed both (resumed)."""
    rechoose = load("search_recovers_squeezebert/rechoose.py")
    for name, best, fastest in (("seed0-cached", {0, 1, 7, 25, 39, 52}, {0, 1, 50, 55, 64, 67}),
                                ("seed0", {0, 1, 11, 40, 59, 61}, {0, 1, 4, 17, 64, 68})):
        run = EXPERIMENTS / "search_recovers_squeezebert" / "rechosen" / name
        confirmed = {int(r["trial"]) for r in recovers_main.read_csv(run / "confirmed.csv")}
        assert rechoose.picks(run, "best_score") == best and rechoose.picks(run, "front_fastest") == fastest
        assert confirmed == best | fastest  # dense, SqueezeBERT and four new a rule: one a band
    run = EXPERIMENTS / "search_recovers_squeezebert" / "seed0-cached"  # the run itself, made with best_score
    assert {int(r["trial"]) for r in recovers_main.read_csv(run / "confirmed.csv")} == {0, 1, 7, 25, 39, 52}


def test_search_reach_counts_the_fastest_and_the_mildly_grouped_designs(tmp_path):
    from experiments.toolkit.runs import search_reach

    rows = ["trial,reference,design,speedup_vs_dense,spec_hash",
            "0,bert_base,768x12 h12 ffn3072 g[q1 k1 v1 post1 in1 out1],1.0,a",
            "1,squeezebert,768x12 h12 ffn3072 g[q4 k4 v4 post1 in4 out4],2.2,b",
            "2,,768x12 h12 ffn3072 g[q1 k1 v1 post1 in1 out4],1.25,c",  # one type grouped: mild
            "3,,768x12 h12 ffn3072 g[q1 k1 v1 post1 in16 out8],1.97,d",  # two: mild
            "4,,768x12 h12 ffn3072 g[q2 k1 v1 post1 in16 out8],2.05,e",  # three
            "5,,768x12 h12 ffn3072 g[q1 k1 v1 post1 in16 out8],1.97,d"]  # a copy: counted once
    (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
    assert search_reach(tmp_path) == {"leveled_start": 0, "start_bins": 0, "fastest_trial_speedup": 2.05, "mild_designs": 2}
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\nsearch:\n  leveled_start: 16\n  start_bins: 7\n")
    assert (search_reach(tmp_path)["leveled_start"], search_reach(tmp_path)["start_bins"]) == (16, 7)


# ==== experiments/toolkit/ranking.py, on proxy_compressed's rows; proxy_compressed/run.py =============


def crow(task, variant, design, seed, score, heldout, dev, seconds) -> dict:
    """A results.csv row, as csv.DictReader gives it back (strings)."""
    return {"task": task, "variant": variant, "design": design, "seed": str(seed), "score": str(score),
            "heldout_metric": str(heldout), "dev_metric": str(dev), "seconds": str(seconds)}


# Default budget, 3 designs x 3 seeds. Score: means -0.30, -0.35, -0.40 (sd of the means 0.05),
# seed sds 0, 0.04, 0.02 (mean 0.02) -> SNR 2.5. Dev: means .87 .85 .83 (sd .02), seed sds .01 .02
# .03 (mean .02) -> SNR 1.0; gap 100 * (.87 - .85) = 2.0 points, SqueezeBERT's sd 2.0 points.
# Held-out: constant per design -> within sd 0 -> no SNR.
DEFAULT = {
    "dense": [(-0.30, 0.86, 0.86, 60), (-0.30, 0.86, 0.87, 60), (-0.30, 0.86, 0.88, 60)],
    "squeezebert": [(-0.39, 0.84, 0.83, 100), (-0.35, 0.84, 0.85, 110), (-0.31, 0.84, 0.87, 120)],
    "all-4": [(-0.38, 0.82, 0.80, 90), (-0.40, 0.82, 0.83, 90), (-0.42, 0.82, 0.86, 90)],
}


def compressed_rows(task="wnli") -> list[dict]:
    rows = [crow(task, "default", name, seed, *v) for name, vs in DEFAULT.items() for seed, v in enumerate(vs)]
    rows += [crow(task, "budget-4x", "dense", 0, -0.20, 0.9, 0.90, 200),  # scores in the order d > s > a,
             crow(task, "budget-4x", "squeezebert", 0, -0.25, 0.9, 0.86, 400),  # dev d > a > s
             crow(task, "budget-4x", "all-4", 0, -0.30, 0.9, 0.88, 500)]
    rows += [crow(task, "no-refit", "squeezebert", s, -0.6, 0.8, 0.80, 50) for s in (0, 1, 2)]
    rows += [crow(task, "distill-8", "squeezebert", 0, -0.5, 0.8, 0.84, 70)]
    rows += [crow("mrpc", "default", "dense", 0, -0.50, 0.8, 0.80, 30), crow("mrpc", "default", "squeezebert", 0, -0.60, 0.7, 0.75, 30),
             crow("mrpc", "default", "all-4", 0, -0.55, 0.7, 0.78, 30)]
    return rows


def compressed_table(rows: list[dict], task: str, variant: str) -> dict:
    return table_of(rows, NAMED, compressed.KEYS, task=task, variant=variant)


def test_table_of_means_and_seed_sds():
    t = compressed_table(compressed_rows(), "wnli", "default")
    assert list(t) == ["dense", "squeezebert", "all-4"]  # NAMED order
    assert t["squeezebert"]["n"] == 3
    assert t["squeezebert"]["score"] == pytest.approx((-0.35, 0.04))
    assert t["all-4"]["dev_metric"] == pytest.approx((0.83, 0.03))
    assert t["dense"]["seconds"] == pytest.approx((60.0, 0.0))
    one = compressed_table(compressed_rows(), "wnli", "distill-8")
    assert one == {"squeezebert": {"score": (-0.5, 0.0), "heldout_metric": (0.8, 0.0), "dev_metric": (0.84, 0.0),
                                   "seconds": (70.0, 0.0), "n": 1}}


def test_snr_is_sd_of_means_over_mean_seed_sd():
    t = compressed_table(compressed_rows(), "wnli", "default")
    assert snr(t, "score") == pytest.approx(0.05 / 0.02)
    assert snr(t, "dev_metric") == pytest.approx(0.02 / 0.02)
    assert snr(t, "heldout_metric") is None  # no seed noise at all: undefined, not infinite
    assert snr({"dense": t["dense"]}, "score") is None  # one design
    assert snr(compressed_table(compressed_rows(), "wnli", "budget-4x"), "score") is None  # one seed


def test_gap_in_points_and_against_another_variants_dense():
    rows = compressed_rows()
    main = compressed_table(rows, "wnli", "default")
    assert gap(main) == pytest.approx((2.0, 2.0))
    assert gap(compressed_table(rows, "wnli", "budget-4x")) == pytest.approx((4.0, 0.0))
    no_refit = compressed_table(rows, "wnli", "no-refit")  # SqueezeBERT only: dense from the default
    assert gap(no_refit) is None
    assert gap(no_refit, main) == pytest.approx((7.0, 0.0))


def test_tau_over_common_designs():
    a = {"d1": 1.0, "d2": 2.0, "d3": 3.0, "d4": 4.0}
    # one discordant pair (d2, d3) of 6: (5 - 1) / 6; d5 is not in a
    assert tau(a, {"d1": 1.0, "d2": 3.0, "d3": 2.0, "d4": 4.0, "d5": 9.0}, interval=False) == {"tau": 0.667, "designs": 4}
    # tau-b with a tie in b: 5 concordant, 0 discordant, 1 tied pair: 5 / sqrt(6 * 5) = 0.9129
    assert tau(a, {"d1": 1.0, "d2": 1.0, "d3": 2.0, "d4": 3.0}, interval=False) == {"tau": 0.913, "designs": 4}
    assert tau(a, {k: -v for k, v in a.items()}, interval=False) == {"tau": -1.0, "designs": 4}
    assert tau(a, {"d1": 1.0, "d2": 2.0}) == {"tau": None, "ci90": [None, None], "designs": 2}  # fewer than 3 in common
    with_interval = tau(a, {"d1": 1.0, "d2": 3.0, "d3": 2.0, "d4": 4.0})  # bootstrap over designs, seeded
    assert list(with_interval) == ["tau", "ci90", "designs"] and with_interval["ci90"][0] <= 0.667 <= with_interval["ci90"][1]


def test_compressed_analyse_summary(argv):
    argv("experiments/proxy_compressed/run.py", "--quick")
    summary, lines, fig = compressed.analyse(compressed_rows(), {"wnli": 12.34}, 90.0, "Test CPU", quick=True)
    distill = toolkit.proxy_settings("compressed")["distill_steps"]
    assert (summary["task"], summary["designs"], summary["seeds"], summary["machine"]) == ("wnli", 3, [0, 1, 2], "Test CPU")
    assert (summary["gap_points"], summary["gap_squeezebert_sd_points"]) == (2.0, 2.0)
    assert (summary["snr"], summary["snr_heldout_metric"], summary["snr_dev_metric"]) == (2.5, None, 1.0)
    # default means vs budget-4x: scores d > s > a in both (1.0); dev d > s > a vs d > a > s (1/3)
    assert (summary["kendall_tau"], summary["kendall_tau_designs"], summary["kendall_tau_dev_metric"]) == (1.0, 3, 0.333)
    assert summary["score_choice"] == {
        "score": {"snr": 2.5, "kendall_tau_vs_reference_dev": 0.333},
        "heldout_metric": {"snr": None, "kendall_tau_vs_reference_dev": 0.333},
        "dev_metric": {"snr": 1.0, "kendall_tau_vs_reference_dev": 0.333},
    }
    # per-seed score orders: seed 0 d > a > s, seeds 1 and 2 d > s > a: taus 1/3, 1/3, 1 -> mean 0.56
    assert summary["kendall_tau_between_seeds"] == 0.56
    assert summary["kendall_tau_vs_old"] == {}
    assert summary["gap_points_reference"] == 4.0
    assert summary["ablation_gap_points"] == {"default": 2.0, "no-refit": 7.0}  # no-permute/no-distill: no rows
    assert summary["distill_curve_gap_points"] == {8: 3.0, distill: 2.0}  # 100 * (.87 - .84); no-distill: no rows
    assert summary["seconds_per_design"] == 100.0  # grouped designs only: (100 + 110 + 120 + 3 * 90) / 6
    assert summary["seconds_per_design_reference"] == 450.0
    assert summary["teacher_seconds"] == {"wnli": 12.3}
    assert summary["compute_minutes"] == 36.5  # (780 + 1100 + 150 + 70 + 90) s / 60
    assert summary["second_task"] == {"mrpc": {
        "designs": 3, "seeds": [0], "metric": "F1", "gap_points": 5.0,
        "kendall_tau_vs_sst2_score": 0.333, "kendall_tau_vs_sst2_dev": 0.333}}
    text = "\n".join(lines)
    assert "- **Gap dense - SqueezeBERT pattern (dev accuracy): 2.0 points** (target <= 3); " in text
    assert "- **Signal-to-noise (score): 2.5** over 3 designs x 3 seeds (target >= 3)" in text
    assert "| score | 2.50 | 0.333 |" in lines and "| heldout_metric | n/a | 0.333 |" in lines
    assert "| no-refit | 3 | -0.6000 ± 0.0000 | 80.0 ± 0.0 | 7.0 | 50 |" in lines
    assert "| 8 | 3.0 ± 0.0 |" in lines
    # designs by mean score, best first
    first = lines.index("| --- | --- | --- | --- | --- | --- | --- | --- |") + 1
    assert [line.split(" | ")[0] for line in lines[first:first + 3]] == ["| dense", "| squeezebert", "| all-4"]
    assert lines[first + 1] == ("| squeezebert | 4 4 4 1 4 4 | -0.3500 ± 0.0400 | 84.0 | 85.0 ± 2.0 | -2.0 | "
                                "-0.2500 | 86.0 |")


# ==== which_layers, group_count, shuffle ===========================================================


def which_layers_inputs():
    """Dense 100 ms, all-4 40 ms; 'only p' saves SAVED[p] ms, 'all but p' costs KEPT[p] ms. Held-out
    (2 seeds): dense .80 .82, all-4 .70 .72; 'only p' / 'all but p' move them by LOSS[p] / GAIN[p] points."""
    SAVED = {"q": 10, "k": 10, "v": 10, "post_attention": 5, "ffn_in": 20, "ffn_out": 20}
    KEPT = {"q": 8, "k": 8, "v": 8, "post_attention": 4, "ffn_in": 16, "ffn_out": 16}
    LOSS = {"q": (-1, -1), "k": (-1, -1), "v": (-1, -1), "post_attention": (-3, -1), "ffn_in": (-2, -2), "ffn_out": (-1, -3)}
    GAIN = {"q": (1, 1), "k": (1, 1), "v": (1, 1), "post_attention": (2, 4), "ffn_in": (2, 2), "ffn_out": (2, 2)}
    dense, all4 = (0.80, 0.82), (0.70, 0.72)
    scores = {"dense": S(dense, dev=[x - 0.1 for x in dense]), which_layers.ALL: S(all4, dev=[x - 0.1 for x in all4])}
    ms = {"dense": 100.0, which_layers.ALL: 40.0}
    for p in PROJECTIONS:
        only = [x + d / 100 for x, d in zip(dense, LOSS[p])]
        but = [x + d / 100 for x, d in zip(all4, GAIN[p])]
        scores[which_layers.ONLY[p]] = S(only, dev=[x - 0.1 for x in only])
        scores[which_layers.BUT[p]] = S(but, dev=[x - 0.1 for x in but])
        ms[which_layers.ONLY[p]] = 100.0 - SAVED[p]
        ms[which_layers.BUT[p]] = 40.0 + KEPT[p]
    return scores, latency_rows(ms)


def test_which_layers_effects_per_projection():
    scores, latency = which_layers_inputs()
    eff = which_layers.effects(scores, latency)
    assert [r["projection"] for r in eff] == list(PROJECTIONS)
    mde = toolkit.compare(scores, "dense", which_layers.ALL).mde  # one pooled noise for every difference
    post = next(r for r in eff if r["projection"] == "post_attention")
    assert post == pytest.approx({
        "projection": "post_attention",
        "alone_heldout": -2.0, "alone_heldout_mde": round(mde, 2), "alone_heldout_min": -3.0, "alone_heldout_max": -1.0,
        "alone_dev": -2.0, "alone_dev_mde": round(mde, 2), "alone_dev_min": -3.0, "alone_dev_max": -1.0,
        "alone_saved_ms": 5.0, "alone_saved_fraction": 0.05, "alone_points_lost_per_10ms": 4.0,  # -10 * -2 / 5
        "keep_heldout": 3.0, "keep_heldout_mde": round(mde, 2), "keep_heldout_min": 2.0, "keep_heldout_max": 4.0,
        "keep_dev": 3.0, "keep_dev_mde": round(mde, 2), "keep_dev_min": 2.0, "keep_dev_max": 4.0,
        "keep_cost_ms": 4.0, "keep_cost_fraction": 0.1, "keep_points_gained_per_10ms": 7.5,  # 10 * 3 / 4
    })
    ffn_in = next(r for r in eff if r["projection"] == "ffn_in")
    assert (ffn_in["alone_points_lost_per_10ms"], ffn_in["keep_points_gained_per_10ms"]) == pytest.approx((1.0, 1.25))
    assert which_layers.rank(eff, "alone_points_lost_per_10ms") == 1
    assert which_layers.rank(eff, "keep_points_gained_per_10ms") == 1
    assert which_layers.rank(eff, "alone_saved_ms") == 6  # post saves the least
    assert which_layers.rank(eff, "alone_saved_ms", "ffn_in") in (1, 2)  # tied with ffn_out


def test_which_layers_verdict_is_keeping_post_dense_against_the_mde():
    """Keeping post dense gains 3 points (far above the MDE) and 2 more than keeping q, k or v
    dense: reproduced. Post kept dense no better than k (both +3): (a) holds, (b) does not: not
    reproduced. Keeping k dense 2 points better than post: contradicted."""
    scores, _ = which_layers_inputs()
    n = toolkit.noise(scores)
    assert n.dof == 13 and 0 < n.sd < 1
    word, keep, alone, versus = which_layers.verdict(scores)
    assert (word, keep.mean, alone.mean) == ("reproduced", pytest.approx(3.0), pytest.approx(-2.0))
    assert {p: d.mean for p, d in versus.items()} == pytest.approx({"q": 2.0, "k": 2.0, "v": 2.0})
    scores[which_layers.BUT["k"]] = S([0.72, 0.76])  # +2 / +4, as post
    word, keep, _, versus = which_layers.verdict(scores)
    assert keep.verdict(+1) == "reproduced" and versus["k"].mean == pytest.approx(0.0) and word == "not reproduced"
    scores[which_layers.BUT["k"]] = S([0.74, 0.78])  # 2 points above post on both seeds
    assert which_layers.verdict(scores)[0] == "contradicted"


def test_which_layers_no_latency_saved_is_nan_not_a_division_by_zero():
    scores, latency = which_layers_inputs()
    ms = {name: l["median_ms"] for name, l in latency.items()}
    ms[which_layers.ONLY["q"]] = 100.0  # grouping q alone saved nothing
    q = which_layers.effects(scores, latency_rows(ms))[0]
    assert q["alone_saved_ms"] == 0.0 and math.isnan(q["alone_points_lost_per_10ms"])


def test_which_layers_rank_ignores_a_nan_projection():
    scores, latency = which_layers_inputs()
    ms = {name: l["median_ms"] for name, l in latency.items()}
    ms[which_layers.ONLY["q"]] = 100.0  # q saved nothing: its points per 10 ms is NaN
    eff = which_layers.effects(scores, latency_rows(ms))
    assert which_layers.rank(eff, "alone_points_lost_per_10ms") == 1  # post still has the largest (4.0)


def test_group_count_following_flops_vs_latency():
    rows = [{"design": "G=1", "macs": 1000, "median_ms": 100.0, "speedup": 1.0},
            {"design": "G=2", "macs": 500, "median_ms": 62.5, "speedup": 1.6},
            {"design": "G=4", "macs": 250, "median_ms": 50.0, "speedup": 2.0}]
    out = group_count.following(rows)
    assert out[0] == {"design": "G=1", "flop_reduction": 1.0, "speedup": 1.0, "speedup_over_flop_reduction": 1.0,
                      "ms_if_latency_followed_flops": 100.0, "median_ms": 100.0, "ms_above_flops_line": 0.0,
                      "step_flops_cut_pct": "", "step_latency_cut_pct": ""}
    assert out[1] == {"design": "G=2", "flop_reduction": 2.0, "speedup": 1.6, "speedup_over_flop_reduction": 0.8,
                      "ms_if_latency_followed_flops": 50.0, "median_ms": 62.5, "ms_above_flops_line": 12.5,
                      "step_flops_cut_pct": 50.0, "step_latency_cut_pct": 37.5}
    # the step is against the previous G (62.5 ms), not against dense: 1 - 50 / 62.5 = 20 %
    assert out[2] == {"design": "G=4", "flop_reduction": 4.0, "speedup": 2.0, "speedup_over_flop_reduction": 0.5,
                      "ms_if_latency_followed_flops": 25.0, "median_ms": 50.0, "ms_above_flops_line": 25.0,
                      "step_flops_cut_pct": 50.0, "step_latency_cut_pct": 20.0}


def group_count_inputs(heldout: dict[str, float]):
    """Five designs, latency 100 / 60 / 40 / 32 / 28 ms; held-out accuracy per design on 2 seeds
    (seed 1 = seed 0 + 1 point, and +-0.5 on G=2 for some noise)."""
    ms = dict(zip(group_count.DESIGNS, (100.0, 60.0, 40.0, 32.0, 28.0)))
    scores = {n: S([a / 100, (a + 1 + (0.5 if n == "G=2" else 0)) / 100]) for n, a in heldout.items()}
    rows = [{"design": n, "median_ms": ms[n], "heldout_mean": scores[n].stats()[0]} for n in group_count.DESIGNS]
    return rows, scores


def test_group_count_knee_and_verdict():
    """Flat to G=4, then falling: the knee is G=4 (reproduced); falling from G=2 on, it is G=2,
    and G=4 is 3 points below it (above the MDE): contradicted."""
    rows, scores = group_count_inputs({"G=1": 85.0, "G=2": 85.0, "G=4": 84.8, "G=8": 80.0, "G=16": 75.0})
    assert group_count.knee(rows) == "G=4"
    drop = group_count.drops(scores)
    assert [r["vs_dense_verdict"] for r in drop] == ["", "within noise", "within noise", "falls", "falls"]
    assert drop[3]["vs_previous"] == pytest.approx(-4.8) and drop[0]["vs_previous"] == ""  # MDE 0.32 (sd 0.16, 4 dof)
    assert group_count.verdict(rows, scores, drop) == ("reproduced", "G=4", "G=8")
    rows, scores = group_count_inputs({"G=1": 85.0, "G=2": 84.0, "G=4": 81.0, "G=8": 80.0, "G=16": 79.5})
    assert group_count.knee(rows) == "G=2"
    assert group_count.verdict(rows, scores, group_count.drops(scores))[0] == "contradicted"


def test_shuffle_pairs_on_minus_off():
    scores = {"dense": S([0.8, 0.8])}
    ms = {"dense": 100.0}
    for i, (label, (plain, shuffled)) in enumerate(shuffle.PAIRS.items()):
        scores[plain] = S([0.75, 0.77], dev=[0.70, 0.70])
        scores[shuffled] = S([0.78, 0.76 - 0.01 * i], dev=[0.72, 0.71])  # +3 / -1 (- i) held-out, +2 / +1 dev
        ms[plain], ms[shuffled] = 50.0, 52.0 + i
    out = shuffle.pairs(scores, latency_rows(ms))
    assert [r["pair"] for r in out] == ["ffn G=4", "ffn G=8", "ffn G=16", "all-4"]
    mde = toolkit.compare(scores, "ffn G=4 + shuffle", "ffn G=4").mde
    assert out[0] == pytest.approx({
        "pair": "ffn G=4", "heldout_off": 76.0, "heldout_on": 77.0,
        "shuffle_heldout": 1.0, "shuffle_heldout_mde": round(mde, 2), "shuffle_heldout_min": -1.0,
        "shuffle_heldout_max": 3.0, "verdict_heldout": "not reproduced",
        "shuffle_dev": 1.5, "shuffle_dev_mde": out[0]["shuffle_dev_mde"], "shuffle_dev_min": 1.0,
        "shuffle_dev_max": 2.0, "verdict_dev": out[0]["verdict_dev"],
        "ms_off": 50.0, "ms_on": 52.0, "shuffle_cost_ms": 2.0, "shuffle_cost_pct": 4.0,
    })
    assert (out[2]["shuffle_heldout_min"], out[2]["shuffle_cost_ms"], out[2]["shuffle_cost_pct"]) == pytest.approx((-3.0, 4.0, 8.0))
    assert shuffle.DESIGNS["all-4 + shuffle"].pattern() == "q4s k4s v4s post4s in4s out4s"


# ==== glue_tasks/run.py ============================================================================


def test_glue_tasks_constant_baseline_is_the_best_constant_prediction():
    """RTE: the majority class, 3 of 4; MRPC: all "paraphrase", F1 = 2 * 0.5 * 1 / 1.5; a
    constant scores 0 MCC (CoLA) and 0 Pearson (STS-B)."""
    assert glue_tasks.constant_baseline("rte", [1, 1, 0, 1]) == pytest.approx(0.75)
    assert glue_tasks.constant_baseline("mrpc", [1, 1, 0, 0]) == pytest.approx(2 / 3)
    assert glue_tasks.constant_baseline("cola", [1, 1, 0, 1]) == 0.0
    assert glue_tasks.constant_baseline("stsb", [0.5, 4.0, 2.5]) == 0.0


def test_glue_tasks_overall_verdict_needs_every_task_with_a_paper_number():
    rows = [{"verdict": "reproduced"}, {"verdict": "no paper number"}]
    assert glue_tasks.overall(rows) == "reproduced"
    assert glue_tasks.overall(rows + [{"verdict": "not reproduced"}]) == "not reproduced"
    assert glue_tasks.overall(rows + [{"verdict": "not reproduced"}, {"verdict": "contradicted"}]) == "contradicted"
    assert glue_tasks.overall([{"verdict": "no paper number"}]) == "not reproduced"


# ==== speedup/run.py --precision (experiments.speedup.precision_accuracy) =========================


def test_a_precision_is_compared_with_fp32_sentence_by_sentence():
    """10 sentences: fp32 gets rows 0-6 right. The low precision loses rows 5 and 6 (b = 2),
    gains rows 7 and 9 (c = 2), is wrong with fp32 on row 8, and agrees with fp32 on 6 rows.
    diff = (c - b) / n = 0; SE (McNemar) = sqrt(b + c - (c - b)^2 / n) / n = 0.2."""
    import numpy as np

    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    fp32 = np.array([1, 0, 1, 0, 1, 0, 1, 1, 0, 1])
    low = np.array([1, 0, 1, 0, 1, 1, 0, 0, 0, 0])
    got = precision_accuracy.paired(fp32, low, labels)
    assert (got["flips_lost"], got["flips_gained"]) == (2, 2)
    assert (got["fp32_accuracy"], got["accuracy"], got["agreement"]) == (0.7, 0.7, 0.6)
    assert got["diff"] == 0.0 and got["se"] == round(math.sqrt(4) / 10, 4) and not got["significant"]
    lost_only = precision_accuracy.paired(labels, 1 - labels, labels)  # every sentence flips to wrong: SE 0, told apart
    assert (lost_only["diff"], lost_only["se"], lost_only["significant"]) == (-1.0, 0.0, True)


def test_the_precision_summary_averages_seeds_and_counts_the_told_apart():
    def r(model, seed, precision, fp32, diff, agreement, significant):
        return {"model": model, "seed": seed, "precision": precision, "fp32_accuracy": fp32, "diff": diff,
                "agreement": agreement, "significant": significant}

    rows = [r("dense", 0, "bf16", 0.80, 0.0, 1.0, False), r("dense", 0, "int8", 0.80, -0.02, 0.96, True),
            r("dense", 1, "bf16", 0.84, 0.01, 0.99, False), r("dense", 1, "int8", 0.84, 0.0, 0.98, False)]
    lines = precision_accuracy.summary_lines({"rows": rows})
    # fp32 accuracy over seeds: mean 82.00, sd of (80, 84) = 2.83; int8: mean agreement 97.00, diff -1.00
    assert lines[2:] == ["| dense | 82.00 +/- 2.83 | bf16 | 99.50 | +0.50 | 0 / 2 |",
                         "| dense | 82.00 +/- 2.83 | int8 | 97.00 | -1.00 | 1 / 2 |"]


# ==== proxy_supernet/run.py =========================================================================

supernet_exp = load("proxy_supernet/run.py")


def srow(proxy, variant, design, seed, score, dev, kl="", heldout=0.8) -> dict:
    """A results.csv row (strings); the supernet's temperature-scaled score (its configured one) = score + 0.1."""
    return {"proxy": proxy, "variant": variant, "design": design, "seed": str(seed), "score": str(score),
            "calibrated": str(score + 0.1) if proxy == "supernet" else "", "kl": str(kl), "heldout_metric": str(heldout), "dev_metric": str(dev),
            "seconds": "5.0", "score_seconds": "4.0", "source": "this run"}


@pytest.mark.slow
def test_supernet_experiment_tau_snr_gap_and_the_kl_sign(argv):
    argv("experiments/proxy_supernet/run.py")
    designs = ["dense", "squeezebert", "all-2", "all-4"]
    ref = [srow("compressed", "default", d, s, -0.3 - 0.05 * i + 0.01 * s, 0.86 - 0.02 * i) for i, d in enumerate(designs)
           for s in (0, 1)]
    # the supernet: the same order as the reference except all-2 and all-4 swapped; seed sd 0.01 each
    sup_means = {"dense": -0.30, "squeezebert": -0.40, "all-2": -0.55, "all-4": -0.50}
    sup = [srow("supernet", "default", d, s, m + (0.01 if s else -0.01) * (1 if s < 2 else 0), 0.85 - 0.01 * i,
                kl=0.1 * i + 0.01 * s) for i, (d, m) in enumerate(sup_means.items()) for s in (0, 1)]
    rows = ref + sup
    t = table_of(rows, supernet_exp.DESIGNS, supernet_exp.SCORES, supernet_exp.NEGATED, proxy="supernet", variant="default")
    assert list(t) == designs and t["squeezebert"]["score"] == pytest.approx((-0.40, 0.01414), abs=1e-4)
    assert t["squeezebert"]["calibrated"] == pytest.approx((-0.30, 0.01414), abs=1e-4)
    assert t["all-2"]["kl"][0] == pytest.approx(-0.205)  # negated: higher is better, like every score
    ref = table_of(rows, supernet_exp.DESIGNS, supernet_exp.SCORES, proxy="compressed", variant="default")
    by_ref = tau(means(t, "score"), means(ref, "score"))
    assert by_ref["tau"] == pytest.approx(4 / 6, abs=1e-3) and by_ref["designs"] == 4  # 5 concordant pairs, 1 discordant
    assert by_ref["ci90"][0] <= by_ref["tau"] <= by_ref["ci90"][1]
    sd_means = statistics.stdev(sup_means.values())
    assert snr(t, "score") == pytest.approx(sd_means / 0.014142, rel=1e-3)
    assert supernet_exp.gap_points(t) == pytest.approx(1.0)  # dev 0.85 - 0.84
    summary, lines = supernet_exp.analyse(rows, [{"variant": "default", "seed": "0", "train_seconds": "540.0"}], "Test CPU")
    assert summary["kendall_tau_vs_compressed"] == by_ref["tau"] and summary["train_seconds"] == 540.0
    assert summary["score"].startswith("gold log-likelihood, temperature-scaled")  # conf/proxy/supernet.yaml's score
    assert summary["kendall_tau_one_supernet_vs_compressed"] == [pytest.approx(4 / 6, abs=1e-3)] * 2
    assert summary["designs"] == 4 and summary["seeds"] == [0, 1] and summary["seconds_per_design"] == 4.0
    assert summary["seconds_per_design_with_dev"] == 5.0
    assert any("Kendall tau vs the compressed proxy, all 4 designs: 0.667" in line for line in lines)
    assert summary["kendall_tau_all"] == by_ref["tau"] and summary["designs_all"] == 4 and summary["designs_mild"] == 0


def test_proxy_experiments_compose_their_proxies_as_run_does_with_the_committed_keys():
    """proxy_compressed and proxy_supernet build every proxy from conf/run.yaml as ``run`` composes it,
    a variant's overrides on top, and keep the cache keys their committed rows were made under: the
    SST-2 and MRPC teachers of teacher.csv / teachers.csv, the default supernet's (tests/test_supernet.py)."""
    from hydra.utils import instantiate

    assert toolkit.proxy_settings("compressed")["teacher_steps"] == 1200  # resolved per task, not "${task.teacher_steps}"
    cfg = compressed.proxy_config("sst2", "budget-4x", 1, "cache")
    proxy = instantiate(cfg.proxy, setup=instantiate(cfg.proxy_setup))
    assert (proxy.distill_steps, proxy.finetune.steps, proxy.seed, proxy.setup.seed, proxy.teacher_steps) == (800, 800, 1, 0, 1200)
    assert proxy.task_teacher.key() == "03baa617e0548437"
    mrpc = compressed.proxy_config("mrpc", "no-refit", 0, "cache")
    assert (mrpc.proxy.refit, mrpc.proxy.permute, mrpc.proxy_setup.heldout) == (False, True, 1000)
    assert instantiate(mrpc.proxy, setup=instantiate(mrpc.proxy_setup)).task_teacher.key() == "565904aae1c1b2ae"
    quick = compressed.proxy_config("wnli", "distill-8", 0, "cache", quick=True)  # the variant after --quick's budget
    assert (quick.proxy.distill_steps, quick.proxy.steps, quick.proxy_setup.heldout, quick.proxy_setup.max_len) == (8, 2, 60, 24)

    setup = instantiate(supernet_exp.proxy_config("supernet", "default", 0, "cache").proxy_setup)
    assert supernet_exp.build("supernet", "default", 0, setup, "cache").cache_key() == "17e998eccc067fde"
    ablation = supernet_exp.build("supernet", "permute-no-sandwich", 0, setup, "cache")
    assert (ablation.sampling, ablation.permute, ablation.sandwich_rule, ablation.distill) == ("uniform", True, False, True)
    started = supernet_exp.build("compressed", "from-supernet", 1, setup, "cache")
    assert (started.start, started.seed, started.start_from.sampling, started.start_from.seed) == ("supernet", 1, "uniform", 0)
    assert started.task_teacher.key() == proxy.task_teacher.key()  # one teacher for both experiments


def test_supernet_experiment_reference_sets():
    sets, designs = supernet_exp.SETS, supernet_exp.DESIGNS
    assert {k: len(v) for k, v in sets.items()} == {"proxy_supernet": 24, "lessons": 20, "mild": 12}
    assert len(designs) == 48 and set(designs) == {n for v in sets.values() for n in v}
    assert all(1 <= sum(g > 1 for g in designs[n]) <= 2 for n in sets["mild"])
    assert not set(sets["mild"]) & (set(sets["proxy_supernet"]) | set(sets["lessons"]))
    assert len(set(designs.values())) == len(designs)  # one name per design
    assert designs["in4"] == (1, 1, 1, 1, 4, 1) and designs["all-but-q-4"] == (1, 4, 4, 4, 4, 4)
    assert "ffn-only-4" in sets["lessons"] and "squeezebert" in sets["lessons"]  # named once, in both sets
    rows = supernet_exp.lesson_rows([])
    assert len(rows) == 3 * 20 and {r["source"] for r in rows} == {"which_layers", "group_count", "shuffle"}
    have = [srow("compressed", "default", d, 0, -0.4, 0.8) for d in ("dense", "squeezebert")]
    assert len(supernet_exp.lesson_rows(have)) == 3 * 18  # designs scored here keep their own rows
    t = {n: {"n": 2, "score": (-0.3 - 0.01 * i, 0.01)} for i, n in enumerate(designs)}
    ref = {n: -0.3 - 0.01 * i for i, n in enumerate(designs)}
    ref["q2+in4"], ref["q8+v16"] = ref["q8+v16"], ref["q2+in4"]  # one discordant pair, in the mild set only
    taus = supernet_exp.set_taus(t, "score", ref)
    assert taus["mild"]["designs"] == 12 and taus["mild"]["tau"] == pytest.approx(1 - 2 / 66, abs=1e-3)
    assert taus["proxy_supernet"]["tau"] == 1.0 and taus["all"]["designs"] == 48


# ==== experiments/toolkit/store.py: a lesson killed mid-design ======================================

KILLED_LESSON = """
import argparse, sys, time
from arch_search import ArchSpec
from experiments import toolkit
from experiments.toolkit import store
sys.path.insert(0, {tests!r})
from test_experiments_analysis import FakeProxy

class Slow(FakeProxy):
    def evaluate(self, spec):
        if spec.groups["q"][0] == 4:
            time.sleep(60)  # killed here
        return super().evaluate(spec)

store.instantiate = lambda node, **kw: Slow(node.seed)
args = argparse.Namespace(seeds=[0, 1], rounds=2, data_dir="/data/glue", cache_dir={cache!r}, proxy_threads=None,
                          quick=False, render=False)
base = ArchSpec.preset("bert_base")
toolkit.stored_scores({{"dense": base, "q4": base.replace(groups={{"q": 4}})}}, args, __import__("pathlib").Path({here!r}))
"""


def test_a_lesson_killed_mid_design_keeps_its_rows_and_resumes(tmp_path, monkeypatch):
    """SIGKILL while the second design trains: scores.csv holds the first design's row, whole;
    the rerun scores only what is missing (3 of 4)."""
    import signal
    import subprocess
    import time

    here = tmp_path / "lesson"
    here.mkdir()
    code = KILLED_LESSON.format(tests=str(REPO / "tests"), cache=str(tmp_path / "cache"), here=str(here))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not (here / "scores.csv").is_file():
        time.sleep(0.2)
    time.sleep(1.0)  # inside the second design's sleep
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = toolkit.read_rows(here / "scores.csv")
    assert [(r["design"], r["seed"]) for r in rows] == [("dense", "0")], proc.stdout.read()[-2000:]
    assert not list(here.glob("*.tmp"))
    monkeypatch.setattr(store, "instantiate", lambda node, **kw: FakeProxy(node.seed))
    FakeProxy.calls = []
    args = argparse.Namespace(seeds=[0, 1], rounds=2, data_dir="/data/glue", cache_dir=str(tmp_path / "cache"),
                              proxy_threads=None, quick=False, render=False)
    base = ArchSpec.preset("bert_base")
    toolkit.stored_scores({"dense": base, "q4": base.replace(groups={"q": 4})}, args, here)
    assert len(FakeProxy.calls) == 3 and (base.summary(), 0) not in FakeProxy.calls
    assert len(toolkit.read_rows(here / "scores.csv")) == 4


# ==== toolkit.relative / scrub_paths: committed runs name no folder of the machine ================


def test_relative_names_no_path_of_this_machine():
    repo, shared = toolkit.REPO, toolkit.SHARED
    text = f"cache_dir={repo}/.cache/x checkpoint={shared}/models/m cwd {repo} data {shared}"
    assert toolkit.relative(text) == "cache_dir=.cache/x checkpoint=../shared/models/m cwd . data ../shared"
    assert toolkit.relative("/usr/lib/python3 and ../shared") == "/usr/lib/python3 and ../shared"  # nothing else moves


def test_scrub_paths_rewrites_a_run_directory_text_and_study(tmp_path):
    import sqlite3

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(f"cache_dir: {toolkit.REPO}/.cache\ndata_dir: {toolkit.SHARED}/glue\n")
    (run / "weights.bin").write_bytes(f"{toolkit.REPO}".encode())  # not a text file: left alone
    with sqlite3.connect(run / "study.db") as db:
        db.execute("CREATE TABLE attrs (id INTEGER, value_json VARCHAR(2048))")
        db.executemany("INSERT INTO attrs VALUES (?, ?)", [(1, f'"{toolkit.REPO}/experiments/x/run"'), (2, '"plain"'), (3, None)])
    toolkit.scrub_paths(run)
    assert (run / ".hydra" / "config.yaml").read_text() == "cache_dir: .cache\ndata_dir: ../shared/glue\n"
    assert (run / "weights.bin").read_bytes() == f"{toolkit.REPO}".encode()
    with sqlite3.connect(run / "study.db") as db:
        assert db.execute("SELECT value_json FROM attrs ORDER BY id").fetchall() == [('"experiments/x/run"',), ('"plain"',), (None,)]
