import pytest
import torch

from arch_search import GroupedLinear, build_model
from tests.conftest import tiny_spec


def block_diagonal(layer: GroupedLinear) -> torch.Tensor:
    """The dense (C_out, C_in) matrix that a grouped layer stands for."""
    return torch.block_diag(*layer.weight.detach())


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("shape", [(5, 32), (2, 7, 32)])
def test_grouped_linear_is_a_block_diagonal_linear_layer(groups, shape):
    torch.manual_seed(0)
    layer = GroupedLinear(32, 64, groups)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(*shape)
    expected = x @ block_diagonal(layer).T + layer.bias
    assert layer(x).shape == (*shape[:-1], 64)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():  # the allocation-free inference path gives the same numbers
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_grouped_linear_matches_grouped_conv1d():
    torch.manual_seed(0)
    layer = GroupedLinear(32, 16, 4)
    conv = torch.nn.Conv1d(32, 16, 1, groups=4)
    conv.weight.data = layer.weight.detach().reshape(16, 8, 1)
    conv.bias.data = layer.bias.detach().clone()
    x = torch.randn(2, 32, 7)  # (B, C, T)
    torch.testing.assert_close(layer(x.transpose(1, 2)), conv(x).transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_channel_shuffle_permutes_outputs_as_shufflenet():
    torch.manual_seed(0)
    plain, shuffled = GroupedLinear(32, 32, 4), GroupedLinear(32, 32, 4, shuffle=True)
    shuffled.load_state_dict(plain.state_dict())
    x = torch.randn(3, 32)
    y = plain(x)
    # ShuffleNet: channels (G, C/G) -> transpose -> (C/G, G)
    expected = y.view(3, 4, 8).transpose(1, 2).reshape(3, 32)
    torch.testing.assert_close(shuffled(x), expected)
    with torch.inference_mode():
        torch.testing.assert_close(shuffled(x), expected)
    assert not GroupedLinear(32, 32, 1, shuffle=True).shuffle  # no-op when dense


def test_encoder_shapes_and_heads(batch):
    ids, mask, types = batch
    spec = tiny_spec(groups={"q": 2, "k": 4, "v": 8, "ffn_in": 4, "ffn_out": 2})
    out = build_model(spec).eval()(ids, mask, types)
    assert out.last_hidden_state.shape == (3, 9, 32) and out.pooler_output.shape == (3, 32)
    assert out.logits is None
    assert build_model(spec, task_head=3)(ids).logits.shape == (3, 3)
    assert build_model(spec, task_head=1)(ids).logits.shape == (3, 1)  # regression (STS-B)


@pytest.mark.parametrize("shuffle", [False, True])
def test_padding_does_not_change_real_tokens(batch, shuffle):
    ids, mask, types = batch
    model = build_model(tiny_spec(groups={"q": 2, "ffn_in": 4, "ffn_out": 4}, shuffle=shuffle)).eval()
    with torch.no_grad():
        padded = model(ids, mask, types).last_hidden_state
        alone = model(ids[1:2, :6], mask[1:2, :6], types[1:2, :6]).last_hidden_state
    torch.testing.assert_close(padded[1:2, :6], alone, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and the mask matters: without it, padding leaks into real tokens
        unmasked = model(ids[1:2], None, types[1:2]).last_hidden_state
    assert (unmasked[:, :6] - alone).abs().max() > 1e-3


def test_inference_path_equals_autograd_path(batch):
    ids, mask, types = batch
    spec = tiny_spec(groups={"q": 2, "k": 4, "v": 8, "ffn_in": [4, 2], "ffn_out": 2}, shuffle={"ffn_in": True})
    model = build_model(spec, task_head=2).eval()
    with_grad = model(ids, mask, types)
    with torch.inference_mode():
        fast = model(ids, mask, types)
    torch.testing.assert_close(with_grad.last_hidden_state, fast.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(with_grad.logits, fast.logits, atol=1e-5, rtol=1e-5)


def test_training_reaches_every_parameter_and_dropout_is_configurable(batch):
    ids, mask, types = batch
    model = build_model(tiny_spec(groups={"v": 4, "ffn_out": 2}), task_head=2, dropout=0.5, attention_dropout=0.0)
    assert model.layers[0].drop.p == 0.5 and model.layers[0].attention_dropout == 0.0
    model.train()
    torch.manual_seed(0)
    a = model(ids, mask, types).logits
    b = model(ids, mask, types).logits
    assert not torch.allclose(a, b)  # dropout active in train mode
    torch.nn.functional.cross_entropy(a, torch.tensor([0, 1, 0])).backward()
    unused = {"embeddings.token_type.weight"}  # rows used, but only by name: all get grads
    for name, p in model.named_parameters():
        assert p.grad is not None and (p.grad.abs().sum() > 0 or name in unused), name
    model.eval()
    torch.testing.assert_close(model(ids, mask, types).logits, model(ids, mask, types).logits)


def test_param_count_matches_closed_form():
    spec = tiny_spec(groups={"q": 2, "ffn_in": 4})
    C, I, L = 32, 64, 2
    projections = C * C / 2 + C * C * 3 + C * I / 4 + I * C + 5 * C + I  # weights + biases
    norms = 2 * 2 * C
    embeddings = (99 + 24 + 2) * C + 2 * C
    expected = int(L * (projections + norms) + embeddings + C * C + C)  # + pooler
    assert sum(p.numel() for p in build_model(spec).parameters()) == expected


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_path_of_a_grouped_layer_computes_the_same(shuffle, groups, monkeypatch):
    """Training (baddbmm), fp32 inference (oneDNN per group), inference without oneDNN (bmm
    written in place) and what ONNX export traces (F.linear per group, then Concat /
    interleave) agree, shuffle included."""
    import torch.nn.functional as F

    from arch_search.nn import model as model_module
    from arch_search.nn.model import GroupedLinear

    torch.manual_seed(0)
    lin = GroupedLinear(32, 48, groups=groups, shuffle=shuffle)
    x = torch.randn(2, 5, 32)
    train = lin(x).detach()  # autograd on: the training path
    assert torch.allclose(lin._per_group(x, F.linear), train, atol=1e-6)
    with torch.inference_mode():
        assert torch.allclose(lin(x), train, atol=1e-6)  # oneDNN
        monkeypatch.setattr(model_module, "onednn_linear", None)
        assert torch.allclose(lin(x), train, atol=1e-6)  # bmm written in place


def test_each_mode_takes_its_own_named_path(monkeypatch):
    """GroupedLinear's dispatch: fp32 CPU inference -> ``_per_group`` on oneDNN; dense or ONNX
    export -> ``_per_group`` on ``F.linear``; autograd, shuffle or torch.compile -> ``_batched``;
    other inference -> ``_batched_in_place``. Layer adds its residuals in place only in eval
    without autograd."""
    import torch.nn.functional as F

    from arch_search.nn import model as model_module
    from arch_search.nn.model import GroupedLinear, Layer

    kernels = {F.linear: "F.linear", model_module.onednn_linear: "oneDNN"}
    calls = []
    for name in ("_per_group", "_batched", "_batched_in_place"):
        def spy(self, x, *linear, _name=name, _real=getattr(GroupedLinear, name)):
            calls.append((_name, *(kernels[k] for k in linear)))
            return _real(self, x, *linear)
        monkeypatch.setattr(GroupedLinear, name, spy)

    def path(groups=4, shuffle=False, dtype=torch.float32, grad=False, flag=None):
        calls.clear()
        lin = GroupedLinear(16, 32, groups, shuffle).to(dtype)
        with torch.set_grad_enabled(grad), monkeypatch.context() as m:
            if flag:
                m.setattr(flag[0], flag[1], lambda: True)
            lin(torch.randn(3, 16, dtype=dtype))
        return calls[0]

    assert path() == path(groups=1) == path(shuffle=True) == ("_per_group", "oneDNN")
    assert path(grad=True) == path(shuffle=True, grad=True) == ("_batched",)
    assert path(groups=1, grad=True) == path(grad=True, flag=(torch.onnx, "is_in_onnx_export")) == ("_per_group", "F.linear")
    assert path(dtype=torch.bfloat16) == ("_batched_in_place",)
    assert path(dtype=torch.bfloat16, shuffle=True) == ("_batched",)
    assert path(dtype=torch.bfloat16, flag=(torch.compiler, "is_compiling")) == ("_batched",)
    assert path(dtype=torch.bfloat16, groups=1) == ("_per_group", "F.linear")

    in_place = []
    real = Layer._residual
    monkeypatch.setattr(Layer, "_residual", lambda self, x, y, i: in_place.append(i) or real(self, x, y, i))
    layer = build_model(tiny_spec()).layers[0]
    for training in (True, False):
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                layer.train(training)(torch.randn(2, 5, 32), None)
    assert in_place == [False, False, False, False, False, False, True, True]


def test_fp32_inference_runs_the_projections_through_onednn_and_training_does_not():
    """On this torch build (pinned: 2.13.0, CPU) oneDNN's linear is there, and fp32 inference
    takes it for every projection (6 per layer, dense and grouped alike: G calls for G groups);
    training, bf16 and traced forwards (fvcore, ONNX) take the aten ops."""
    from arch_search.nn.model import onednn_linear

    assert onednn_linear is not None
    model = build_model(tiny_spec(groups={"q": 2, "ffn_in": 4})).eval()
    ids = torch.randint(0, 99, (1, 7))

    def calls(run):
        with torch.profiler.profile() as prof:
            run()
        return sum(e.count for e in prof.key_averages() if e.key == "mkldnn::_linear_pointwise")

    with torch.inference_mode():
        assert calls(lambda: model(ids)) == 2 * (4 + 2 + 4)  # 2 layers: q 2 groups, ffn_in 4, 4 dense
        bf16 = build_model(tiny_spec(groups={"q": 2})).to(torch.bfloat16).eval()
        assert calls(lambda: bf16(ids)) == 0
    assert calls(lambda: model(ids)) == 0  # autograd on


def test_a_compiled_inference_forward_is_one_graph_and_computes_the_same():
    """``torch.compile`` (experiments/speedup ``--compile``) traces the bf16 and GPU inference path
    whole: ``baddbmm`` where eager writes ``bmm`` in place (Dynamo cannot trace ``out=`` into a
    strided view: it would break the graph at every grouped layer)."""
    import torch._dynamo

    torch.manual_seed(0)
    model = build_model(tiny_spec(groups={"q": 2, "ffn_in": 4})).to(torch.bfloat16).eval()
    ids = torch.randint(0, 99, (2, 7))
    torch._dynamo.reset()
    with torch.inference_mode():
        assert torch._dynamo.explain(model)(ids).graph_break_count == 0
        compiled = torch.compile(model, backend="aot_eager", dynamic=False)
        torch.testing.assert_close(compiled(ids).last_hidden_state, model(ids).last_hidden_state)  # bf16 tolerances
    torch._dynamo.reset()
