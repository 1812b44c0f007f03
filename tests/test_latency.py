"""The latency protocol, not the speed: no test here asserts a time."""

import dataclasses

import pytest
import torch

from arch_search import Latency, build_model, compare_latency, measure_latency
from arch_search.measure import latency as latency_module
from arch_search.measure.latency import Comparison, Env, LatencyProtocol, time_calls
from arch_search.measure.runtime import DeviceUnavailable
from arch_search.nn.model import onednn_linear
from tests.conftest import tiny_spec
from tests.test_cli import run

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


def test_the_evaluate_table_shows_each_designs_costs_latency_and_speedup():
    from arch_search import ArchSpec, Cost
    from arch_search.measure.latency import format_evaluation

    slow, fast = Latency.from_samples([10.0, 12.0, 11.0], ENV), Latency.from_samples([5.0, 4.0, 6.0], ENV)
    designs = {"dense reference": ArchSpec.preset("bert_base"), "candidate": ArchSpec.preset("squeezebert")}
    costs = {name: Cost(params=p, encoder_params=p, macs=m, flops=2 * m, pooler_macs=0, head_macs=0, seq_len=128, batch=1)
             for name, p, m in (("dense reference", 110_000_000, 11_000_000_000), ("candidate", 51_000_000, 4_000_000_000))}
    lines = format_evaluation(designs, costs, Comparison({"dense reference": slow, "candidate": fast}, "dense reference")).splitlines()
    assert lines[0].split() == ["design", "spec", "params", "GMACs", "GFLOPs", "median", "ms", "p10-p90", "ms", "CV", "speedup"]
    assert lines[2].startswith("dense reference  768x12 h12 ffn3072 g[q1 k1 v1 post1 in1 out1]")
    assert lines[2].split()[-7:] == ["110.0M", "11.00", "22.00", "11.0", "10.2-11.8", "0.074", "1.00x"]
    assert lines[3].startswith("candidate ") and lines[3].split()[-7:] == ["51.0M", "4.00", "8.00", "5.0", "4.2-5.8", "0.163", "2.20x"]
    assert lines[-2] == ("batch 1, seq 128; GMACs/GFLOPs: encoder matmuls (FLOPs = 2 x MACs); "
                         "speedup vs the dense reference, 3 interleaved rounds") and lines[-1] == f"env: {ENV}"


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
    ({"device": "tpu"}, "latency.device must be one of"),
    ({"device": "cuda", "backend": "onnxruntime"}, "latency.device=cuda times torch only"),
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


def test_env_on_the_cpu_reads_as_before_and_names_the_gpu_first_on_one():
    assert str(ENV) == "test | 2 cores | 1 thread(s) | torch x | python 3 | x86_64" and ENV.device == "cpu"
    gpu = dataclasses.replace(ENV, device="Fake GPU, CUDA 12.0", precision="bf16")
    assert str(gpu) == "Fake GPU, CUDA 12.0 | test | 2 cores | 1 thread(s) | torch x | bf16 | python 3 | x86_64"


# ---- latency.device=cuda: CUDA faked (``fake_cuda``: nothing runs there), or a real GPU (``gpu``) ----


def test_cuda_without_a_gpu_fails_when_the_protocol_is_built(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailable, match=r"^latency.device=cuda: torch finds no CUDA GPU on this machine "
                                                r"\(torch .*\); use latency.device=cpu$"):
        LatencyProtocol(device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_latency_on_cuda_without_a_gpu_is_one_error_line_before_any_study(command, tmp_path):
    out = run(command, "latency.device=cuda", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("error: latency.device=cuda: torch finds no CUDA GPU on this machine")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run" / "study.db").exists()


def test_on_cuda_each_timed_call_is_bracketed_by_events_after_a_synchronise(fake_cuda):
    calls = {name: (lambda name=name: fake_cuda.append(name)) for name in ("a", "b")}
    samples = time_calls(calls, LatencyProtocol(warmup=1, rounds=2, device="cuda"))
    assert samples == {"a": [1.0, 3.0], "b": [2.0, 4.0]}  # the events' times, in round order
    timed = ["sync", "record", "a", "record", "sync", "sync", "record", "b", "record", "sync"]
    assert fake_cuda == ["a", "b"] + timed * 2  # warm-up untimed, then interleaved


class Moved(Recorder):
    """A ``Recorder`` that notes where ``Module.to`` sends it, and stays on the CPU."""

    def to(self, *args, **kwargs):
        self.moved_to = args
        return self


def test_compare_on_cuda_moves_models_and_ids_and_names_the_gpu(fake_cuda, monkeypatch):
    moved_ids = []

    class Ids:  # the protocol's ids, kept on the CPU, noting where they were sent
        def __init__(self, ids):
            self.ids = ids

        def to(self, device):
            moved_ids.append(device)
            return self.ids

    ids = latency_module._ids
    monkeypatch.setattr(latency_module, "_ids", lambda *a: Ids(ids(*a)))
    log = []
    models = {"a": Moved("a", log), "b": Moved("b", log)}
    cmp = compare_latency(models, LatencyProtocol(seq_len=11, batch=2, warmup=1, rounds=3, device="cuda"))
    assert [name for name, *_ in log] == ["a", "b"] * 4 and all(shape == (2, 11) for _, shape, *_ in log)
    assert moved_ids == ["cuda", "cuda"] and all(m.moved_to == ("cuda",) for m in models.values())
    assert cmp.latencies["a"].samples_ms == (1.0, 3.0, 5.0) and cmp.latencies["b"].samples_ms == (2.0, 4.0, 6.0)
    env = cmp.latencies["a"].env
    assert env.device == "Fake GPU, CUDA 12.0" and str(env).startswith("Fake GPU, CUDA 12.0 | ")
    assert Env.current(1, device="cuda").device == env.device and Env.current(1).device == "cpu"


def test_the_fingerprint_names_the_device_only_when_it_is_not_the_cpu(fake_cuda):
    """A CPU protocol's fingerprint is the one studies made before latency.device stored; a GPU's
    names the device, and no oneDNN GEMMs (the CPU's kernels)."""
    cpu = LatencyProtocol(seq_len=8).fingerprint()
    assert cpu == {"backend": "torch", "threads": 1, "seq_len": 8, "batch": 1,
                   **({"gemm": "onednn"} if onednn_linear else {})}
    assert LatencyProtocol(seq_len=8, device="cuda").fingerprint() == {
        "backend": "torch", "threads": 1, "seq_len": 8, "batch": 1, "device": "cuda"}
    bf16 = LatencyProtocol(seq_len=8, device="cuda", precision="bf16").fingerprint()  # bf16 runs on a GPU too
    assert bf16["precision"] == "bf16" and bf16["device"] == "cuda"


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_real_gpu_times_models_there(precision):
    models = {"dense": build_model(tiny_spec()), "grouped": build_model(tiny_spec(groups={"ffn_in": 4}))}
    cmp = compare_latency(models, LatencyProtocol(seq_len=8, warmup=1, rounds=4, device="cuda", precision=precision))
    assert all(len(lat.samples_ms) == 4 and lat.median_ms > 0 for lat in cmp.latencies.values())
    env = cmp.latencies["grouped"].env
    assert env.device == f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}" and env.precision == precision
    if precision == "fp32":  # moved in place (bf16 times a copy)
        assert next(models["grouped"].parameters()).device.type == "cuda"
