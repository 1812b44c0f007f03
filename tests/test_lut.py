import math

import pytest
import torch

from arch_search import ArchSpec
from arch_search.measure import lut as L
from arch_search.measure.latency import Env, LatencyProtocol
from arch_search.measure.lut import LatencyLUT, entries_of, lut_for
from arch_search.design.space import SearchSpace
from tests.conftest import race

TINY_SPACE = "base: minilm_l6\ngroups: {q: [1, 4], ffn_in: [1, 2, 4], ffn_out: [1, 4]}\nshuffle: [false, true]\n"


@pytest.fixture
def space(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    return SearchSpace.load(tmp_path / "tiny.yaml")


def test_a_design_is_its_stem_plus_per_layer_entries():
    spec = ArchSpec.preset("squeezebert")
    keys = entries_of(spec)
    assert len(keys) == 1 + 12 * (1 + 6)
    assert keys.count("proj:768:3072:4:0") == 12 and keys.count("proj:768:768:1:0") == 12  # ffn_in; post_attention
    assert "proj:768:768:4:1" in entries_of(spec.replace(shuffle=True))


def test_covering_specs_cover_every_design_of_the_space(space):
    covered = {k for s in space.covering_specs() for k in entries_of(s)}
    for spec in space.random_specs(20, seed=0):
        assert space.contains(spec) and set(entries_of(spec)) <= covered


def test_build_predict_cache_and_validate(space, tmp_path, monkeypatch):
    logs = []
    kwargs = dict(cache_dir=tmp_path, protocol=LatencyProtocol(seq_len=8, warmup=0, rounds=2), log=logs.append)
    lut = lut_for(space.covering_specs(), space.random_specs(2, seed=1), **kwargs)
    spec = space.random_specs(1, seed=5)[0]
    assert lut.predict(spec) > 0 and math.isfinite(lut.mape) and "MAPE" in logs[0]
    assert lut.latency(spec).median_ms == lut.predict(spec) and lut.latency(spec).cv == 0.0

    def no_build(*a, **k):
        raise AssertionError("rebuilt instead of reading the cache")

    monkeypatch.setattr(LatencyLUT, "build", no_build)
    again = lut_for(space.covering_specs(), space.random_specs(2, seed=1), **kwargs)
    assert again.table == lut.table and again.mape == lut.mape and len(logs) == 1
    with pytest.raises(KeyError):  # an entry the table was not built for
        lut.predict(ArchSpec.preset("bert_base"))


def test_cache_path_changes_with_the_cache_version(tmp_path, monkeypatch):
    protocol = LatencyProtocol(seq_len=8, rounds=2)
    before = LatencyLUT.cache_path(tmp_path, protocol)
    assert LatencyLUT.cache_path(tmp_path, protocol.replace(seq_len=9)) != before
    monkeypatch.setattr(L, "CACHE_VERSION", L.CACHE_VERSION + 1)
    assert LatencyLUT.cache_path(tmp_path, protocol) != before


def test_workers_saving_the_same_table_together_leave_one_complete_file(tmp_path):
    table = LatencyLUT({f"proj:{i}": i / 7 for i in range(5000)}, Env.current(1), seq_len=8, batch=1, mape=1.5)
    path = LatencyLUT.cache_path(tmp_path, LatencyProtocol(seq_len=8, rounds=2))
    for _ in range(20):
        assert race(lambda: table.save(path)) == [0] * 4
        assert LatencyLUT.load(path) == table and list(path.parent.iterdir()) == [path]  # no temporary file left


def test_entries_are_timed_through_the_latency_protocol(monkeypatch):
    calls = []

    def fake_time_calls(fns, protocol):
        calls.append((list(fns), protocol.threads, protocol.warmup, protocol.rounds, torch.is_inference_mode_enabled()))
        return {name: [3.0, 1.0, 2.0] for name in fns}  # median 2.0

    monkeypatch.setattr(L, "time_calls", fake_time_calls)
    spec = ArchSpec(hidden=32, layers=1, heads=4, intermediate=64, vocab=99, max_positions=24, groups={"ffn_in": 4})
    lut = LatencyLUT.build([spec, spec], LatencyProtocol(seq_len=8, threads=1, warmup=3, rounds=3))
    assert [c[0] for c in calls] == [[k] for k in dict.fromkeys(entries_of(spec))]  # one entry at a time, each once
    assert all(c[1:] == (1, 3, 3, True) for c in calls)
    assert lut.table == dict.fromkeys(entries_of(spec), 2.0) and lut.predict(spec) == 2.0 * len(entries_of(spec))
