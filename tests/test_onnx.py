"""ONNX export: onnxruntime computes what the encoder computes, at shapes other than the traced
one; the onnxruntime latency backend keeps the latency protocol. No test asserts a time."""

import subprocess
import sys

import onnx
import onnxruntime as ort
import pytest
import torch

import arch_search.nn.onnx_export
from arch_search import build_model, compare_latency, measure_latency
from arch_search.measure.latency import LatencyProtocol
from arch_search.measure.latency import Comparison
from arch_search.nn.onnx_export import INPUTS, export_onnx, ort_max_abs_diff, ort_session
from tests.conftest import tiny_spec

SPECS = {  # name: (spec, task head)
    "dense": (tiny_spec(), None),
    "grouped+shuffle": (
        tiny_spec(groups={"q": 2, "k": 4, "v": 8, "ffn_in": [4, 2], "ffn_out": 2}, shuffle={"ffn_in": True, "v": True}),
        3,
    ),
}
SHAPES = [(1, 5), (3, 13)]  # (batch, seq_len); the trace is at (2, 8)


def feed(inputs, batch, seq_len, seed=0):
    """Seeded inputs; with a mask, the last row is padded after a third of its length."""
    g = torch.Generator().manual_seed(seed)
    out = {"input_ids": torch.randint(0, 99, (batch, seq_len), generator=g)}
    if "attention_mask" in inputs:
        out["attention_mask"] = torch.ones(batch, seq_len, dtype=torch.long)
        out["attention_mask"][-1, seq_len // 3 :] = 0
    if "token_type_ids" in inputs:
        out["token_type_ids"] = (torch.arange(seq_len) >= seq_len // 2).long().expand(batch, -1).contiguous()
    return out


@pytest.mark.parametrize("inputs", [INPUTS, ("input_ids",)], ids=["with_mask", "ids_only"])
@pytest.mark.parametrize("name", SPECS)
def test_onnxruntime_matches_the_encoder_at_other_shapes(name, inputs, tmp_path):
    spec, head = SPECS[name]
    torch.manual_seed(0)
    model = build_model(spec, task_head=head)
    session = ort_session(export_onnx(model, tmp_path / "m.onnx", inputs=inputs))
    assert [i.name for i in session.get_inputs()] == list(inputs)
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"] + (["logits"] if head else [])
    for batch, seq_len in SHAPES:
        diffs = ort_max_abs_diff(model, session, feed(inputs, batch, seq_len))
        assert set(diffs) == {o.name for o in session.get_outputs()}
        assert max(diffs.values()) <= 1e-4, (batch, seq_len, diffs)
    assert model.training  # the model's mode is restored


def test_the_mask_input_is_used(tmp_path):
    """Padding changes the real tokens' outputs unless masked: the graph reads the mask."""
    spec, _ = SPECS["grouped+shuffle"]
    session = ort_session(export_onnx(build_model(spec), tmp_path / "m.onnx"))
    x = {k: v.numpy() for k, v in feed(INPUTS, 3, 13).items()}
    masked = session.run(None, x)[0]
    x["attention_mask"][:] = 1
    unmasked = session.run(None, x)[0]
    assert abs(masked[-1, :4] - unmasked[-1, :4]).max() > 1e-3
    assert abs(masked[0] - unmasked[0]).max() == 0  # an unpadded row is unchanged


def test_batch_and_sequence_axes_are_dynamic(tmp_path):
    path = export_onnx(build_model(tiny_spec(), task_head=2), tmp_path / "m.onnx")
    graph = onnx.load(path).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.input, *graph.output]}
    assert dims == {
        "input_ids": ["batch", "sequence"],
        "attention_mask": ["batch", "sequence"],
        "token_type_ids": ["batch", "sequence"],
        "last_hidden_state": ["batch", "sequence", 32],
        "logits": ["batch", 2],
    }
    assert max(op.version for op in onnx.load(path).opset_import if op.domain in ("", "ai.onnx")) == 17


def test_bad_inputs_are_refused(tmp_path):
    model = build_model(tiny_spec())
    for inputs in [("attention_mask", "input_ids"), ("input_ids", "position_ids"), ("input_ids", "input_ids")]:
        with pytest.raises(ValueError, match="inputs must start with input_ids"):
            export_onnx(model, tmp_path / "m.onnx", inputs=inputs)


def test_session_settings(tmp_path):
    path = export_onnx(build_model(tiny_spec()), tmp_path / "m.onnx")
    session = ort_session(path, threads=2)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert ort_session(path).get_session_options().intra_op_num_threads == 1  # the default


class SpySession:
    """Records every run of a real session: (name, input shapes)."""

    def __init__(self, session, name, log):
        self.session, self.name, self.log = session, name, log

    def run(self, outputs, feed):
        self.log.append((self.name, {k: v.shape for k, v in feed.items()}))
        return self.session.run(outputs, feed)


def test_onnxruntime_backend_keeps_the_protocol(monkeypatch, tmp_path):
    log, opened = [], []

    def spy_session(path, threads=1):
        opened.append(threads)
        return SpySession(ort_session(path, threads), f"session{len(opened)}", log)

    monkeypatch.setattr(arch_search.nn.onnx_export, "ort_session", spy_session)
    models = {"dense": build_model(tiny_spec()), "grouped": build_model(SPECS["grouped+shuffle"][0])}
    before = torch.get_num_threads()
    cmp = compare_latency(models, LatencyProtocol(seq_len=7, batch=2, threads=2, warmup=2, rounds=3,
                                                  backend="onnxruntime"), onnx_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.onnx", "1.onnx"]  # the graphs timed, kept
    assert isinstance(cmp, Comparison) and cmp.baseline == "dense" and cmp.speedup["dense"] == 1.0
    assert opened == [2, 2]  # one session per model, at the requested intra-op threads
    assert [name for name, _ in log] == ["session1", "session2"] * 5  # warm-up and rounds interleave
    assert all(shapes == {"input_ids": (2, 7)} for _, shapes in log)  # ids only, (batch, seq_len)
    assert torch.get_num_threads() == before
    for lat in cmp.latencies.values():
        assert len(lat.samples_ms) == 3 and 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms and lat.cv >= 0
        assert lat.env.threads == 2 and lat.env.backend == f"onnxruntime {ort.__version__}"
        assert f"onnxruntime {ort.__version__}" in str(lat.env)


def test_measure_latency_through_onnxruntime():
    lat = measure_latency(build_model(tiny_spec()), LatencyProtocol(seq_len=8, warmup=1, rounds=4, backend="onnxruntime"))
    assert len(lat.samples_ms) == 4 and 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    assert lat.env.backend.startswith("onnxruntime") and lat.env.threads == 1


def test_evaluate_command_with_the_onnxruntime_backend(tmp_path):
    tiny = ["arch.hidden=32", "arch.layers=1", "arch.heads=2", "arch.intermediate=64", "arch.vocab=99"]
    out = subprocess.run(
        [sys.executable, "-m", "arch_search", "evaluate", "arch=squeezebert", *tiny, "seq_len=8",
         "latency.backend=onnxruntime", "latency.rounds=2", "latency.warmup=0", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"onnxruntime {ort.__version__}" in out.stdout and "candidate" in out.stdout


def test_ort_outputs_fills_left_out_inputs_as_the_encoder_does(tmp_path):
    torch.manual_seed(0)
    model = build_model(SPECS["grouped+shuffle"][0]).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    x = feed(("input_ids", "attention_mask"), 2, 11)
    with torch.inference_mode():
        ours = model(**x).last_hidden_state.numpy()  # token types left out: type 0
    theirs = arch_search.nn.onnx_export.ort_outputs(path, x["input_ids"], x["attention_mask"])["last_hidden_state"]
    assert abs(ours - theirs).max() <= 1e-4
    ids_only = ort_session(export_onnx(model, tmp_path / "ids.onnx", inputs=("input_ids",)))
    with pytest.raises(ValueError, match="no input"):  # a mask the graph would ignore
        arch_search.nn.onnx_export.ort_outputs(ids_only, x["input_ids"], x["attention_mask"])
