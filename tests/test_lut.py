import hashlib
import json
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


def test_the_table_cache_key_is_pinned(fake_cuda, monkeypatch):
    """Tables on disk are named by it: a refactor keeps the name (on a fixed machine; the key's
    settings hashed in the order written, ``arch_search.cache.cache_key``)."""
    cpu = Env("Test CPU", 2, 1, "2.0.0", "3.11.7", "x86_64")
    monkeypatch.setattr(L.Env, "current", lambda *a, **k: cpu)
    assert LatencyLUT.cache_path("c", LatencyProtocol()).name == "lut-036d478eaf4df54e.json"
    gpu = Env("Test CPU", 2, 1, "2.0.0", "3.11.7", "x86_64", device="NVIDIA H100, CUDA 12.1")
    monkeypatch.setattr(L.Env, "current", lambda *a, **k: gpu)
    assert LatencyLUT.cache_path("c", LatencyProtocol(device="cuda")).name == "lut-d4f8f65cde326174.json"


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


def test_a_cpu_table_keeps_its_file_and_an_older_table_loads(tmp_path):
    """The CPU's cache key is the one before latency.device; a table saved before has no device."""
    env = Env.current(1)
    key = json.dumps({"env": [env.cpu, env.cores, env.threads, env.torch, env.machine], "seq_len": 8, "batch": 1,
                      "rounds": 2, "version": L.CACHE_VERSION})
    path = LatencyLUT.cache_path(tmp_path, LatencyProtocol(seq_len=8, rounds=2))
    assert path.name == f"lut-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    older = {k: v for k, v in vars(env).items() if k != "device"}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"table": {"stem": 1.0}, "env": older, "seq_len": 8, "batch": 1, "mape": 2.0}))
    assert LatencyLUT.load(path).env == env


def test_a_gpu_table_is_timed_there_and_keyed_by_the_gpu(fake_cuda, monkeypatch, tmp_path):
    devices = []

    def op(key, spec, T, B, device="cpu"):  # what the entry would run, kept off the fake GPU
        devices.append(device)
        return lambda: None

    monkeypatch.setattr(LatencyLUT, "_op", staticmethod(op))
    spec = ArchSpec(hidden=32, layers=1, heads=4, intermediate=64, vocab=99, max_positions=24, groups={"ffn_in": 4})
    protocol = LatencyProtocol(seq_len=8, warmup=0, rounds=2, device="cuda")
    lut = LatencyLUT.build([spec], protocol)
    assert set(devices) == {"cuda"} and len(devices) == len(set(entries_of(spec)))
    assert lut.env.device == "Fake GPU, CUDA 12.0" and "sync" in fake_cuda  # timed by the GPU's events
    cpu, gpu = LatencyLUT.cache_path(tmp_path, protocol.replace(device="cpu")), LatencyLUT.cache_path(tmp_path, protocol)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Another GPU")
    assert len({cpu, gpu, LatencyLUT.cache_path(tmp_path, protocol)}) == 3  # one table per device


@pytest.mark.gpu
def test_a_table_built_on_a_real_gpu(space, tmp_path):
    protocol = LatencyProtocol(seq_len=8, warmup=1, rounds=2, device="cuda")
    lut = lut_for(space.covering_specs(), space.random_specs(2, seed=1), tmp_path, protocol, log=lambda _: None)
    assert lut.predict(space.random_specs(1, seed=5)[0]) > 0 and math.isfinite(lut.mape)
    assert lut.env.device.startswith(torch.cuda.get_device_name())
    assert LatencyLUT.cache_path(tmp_path, protocol).is_file()
