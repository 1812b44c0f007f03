"""The latency protocol, not the speed: no test here asserts a time."""

import pytest
import torch

from arch_search import Latency, build_model, compare_latency, measure_latency
from arch_search.measure.latency import Comparison, Env, LatencyProtocol, time_calls
from tests.conftest import tiny_spec

ENV = Env(cpu="test", cores=2, threads=1, torch="x", python="3", machine="x86_64")


def test_statistics_of_known_samples():
    lat = Latency.from_samples([5.0, 1.0, 2.0, 4.0, 3.0], ENV)
    assert lat.median_ms == 3.0
    assert lat.p10_ms == pytest.approx(1.4) and lat.p90_ms == pytest.approx(4.6)
    assert lat.cv == pytest.approx((2**0.5) / 3)  # population std 1.414 / mean 3
    assert lat.samples_ms == (5.0, 1.0, 2.0, 4.0, 3.0)


class Recorder(torch.nn.Module):
    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log
        self.spec = tiny_spec()

    def forward(self, input_ids):
        self.log.append((self.name, tuple(input_ids.shape), torch.is_inference_mode_enabled(), torch.get_num_threads()))
        return input_ids


def test_compare_interleaves_models_under_the_protocol():
    log = []
    models = {"a": Recorder("a", log), "b": Recorder("b", log)}
    before = torch.get_num_threads()
    cmp = compare_latency(models, LatencyProtocol(seq_len=11, batch=2, threads=1, warmup=2, rounds=3))
    assert [name for name, *_ in log] == ["a", "b"] * 5  # warm-up and timed rounds alternate
    assert all(shape == (2, 11) and inference and threads == 1 for _, shape, inference, threads in log)
    assert torch.get_num_threads() == before  # restored
    assert {k: len(v.samples_ms) for k, v in cmp.latencies.items()} == {"a": 3, "b": 3}
    assert cmp.baseline == "a" and cmp.speedup["a"] == 1.0
    assert cmp.latencies["a"].env.threads == 1 and cmp.latencies["a"].env.cores >= 1


def test_time_calls_is_the_loop_with_warm_up_and_timed_rounds():
    log = []
    samples = time_calls({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, LatencyProtocol(warmup=1, rounds=2))
    assert log == ["a", "b"] * 3 and {k: len(v) for k, v in samples.items()} == {"a": 2, "b": 2}
    assert all(ms >= 0 for v in samples.values() for ms in v)



def test_time_calls_runs_a_call_every_kth_round_only():
    log = []
    samples = time_calls({"ref": lambda: log.append("r"), "d": lambda: log.append("d")},
                         LatencyProtocol(warmup=4, rounds=7), every={"ref": 3})
    # warm-up rounds 0..3: ref in 0 and 3; timed rounds 0..6: ref in 0, 3, 6
    assert log == ["r", "d", "d", "d", "r", "d"] + ["r", "d", "d", "d", "r", "d", "d", "d", "r", "d"]
    assert {k: len(v) for k, v in samples.items()} == {"ref": 3, "d": 7}
    for bad in ({"ref": 0}, {"ref": 1.5}, {"other": 2}):
        with pytest.raises(ValueError, match="every must map"):
            time_calls({"ref": lambda: None}, LatencyProtocol(rounds=2), every=bad)


def test_speedup_and_ratio_are_ratios_of_medians():
    slow, fast = Latency.from_samples([10.0, 12.0, 11.0], ENV), Latency.from_samples([5.0, 4.0, 6.0], ENV)
    cmp = Comparison({"dense": slow, "grouped": fast}, baseline="dense")
    assert cmp.speedup == {"dense": 1.0, "grouped": 2.2}
    assert cmp.ratio("dense", "grouped") == 2.2


def test_measure_latency_runs_a_real_model():
    model = build_model(tiny_spec(groups={"ffn_in": 4}))
    lat = measure_latency(model, LatencyProtocol(seq_len=8, threads=1, warmup=1, rounds=4))
    assert len(lat.samples_ms) == 4 and lat.p10_ms <= lat.median_ms <= lat.p90_ms and lat.median_ms > 0
    assert "thread" in str(lat.env) and lat.env.torch == torch.__version__


def test_bad_arguments():
    with pytest.raises(ValueError):
        compare_latency({})


@pytest.mark.parametrize("bad, message", [
    ({"rounds": 0}, "latency.rounds must be an integer >= 1, got 0"),
    ({"warmup": -1}, "latency.warmup must be an integer >= 0"),
    ({"threads": 0}, "latency.threads must be an integer >= 1"),
    ({"seq_len": 2.5}, "latency.seq_len must be an integer >= 1, got 2.5"),
    ({"batch": True}, "latency.batch must be an integer >= 1, got True"),
    ({"backend": "tensorrt"}, "latency.backend must be one of"),
    ({"precision": "int8"}, "precision=int8 runs on latency.backend=onnxruntime"),
])
def test_a_latency_protocol_is_checked_when_built(bad, message):
    """One place checks the protocol's settings: the frozen value refuses a bad one when built,
    before any model is exported or timed."""
    with pytest.raises(ValueError, match=message):
        LatencyProtocol(**bad)
    protocol = LatencyProtocol(seq_len=8)
    with pytest.raises(ValueError, match=message):
        protocol.replace(**bad)
    with pytest.raises(AttributeError):  # frozen: passed whole, never edited in place
        protocol.rounds = 3


def test_the_fingerprint_holds_what_makes_latencies_comparable():
    """backend, threads and the shape make latencies comparable; warm-up, rounds and the ids'
    seed only change the noise. fp32 leaves no key (older studies resume); another precision does."""
    base = LatencyProtocol(seq_len=8).fingerprint()
    assert {k: base[k] for k in ("backend", "threads", "seq_len", "batch")} == {
        "backend": "torch", "threads": 1, "seq_len": 8, "batch": 1}
    assert LatencyProtocol(seq_len=8, warmup=0, rounds=3, seed=4).fingerprint() == base
    for other in ({"threads": 2}, {"seq_len": 9}, {"batch": 2}, {"precision": "bf16"}):
        assert LatencyProtocol(**{"seq_len": 8, **other}).fingerprint() != base
    assert "precision" not in base and LatencyProtocol(precision="bf16").fingerprint()["precision"] == "bf16"


def test_env_names_the_backend_only_when_not_torch():
    assert "onnxruntime" not in str(ENV) and ENV.backend == "torch"
    ort = Env(cpu="test", cores=2, threads=1, torch="x", python="3", machine="x86_64", backend="onnxruntime 1.0")
    assert "| onnxruntime 1.0 |" in str(ort)
