"""Parameters, MACs and FLOPs of an ArchSpec, counted by fvcore and checked in closed form.

Convention (fvcore's): we count one fused multiply-add as one flop in fvcore's tables, which
makes its count a MAC count; ``Cost.flops = 2 * Cost.macs``. Only matmul-class ops are counted
(linear, grouped batched matmuls, attention's QK^T and PV): biases, LayerNorm, softmax, GELU
and embedding lookups are not. BERT-base at seq 128 is 11.17 GMACs = 22.35 GFLOPs (the
SqueezeBERT paper, Table 2: 22.5); SqueezeBERT is 3.70 GMACs = 7.40 GFLOPs (paper: 7.42).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from fvcore.nn import FlopCountAnalysis

from arch_search.nn.model import build_model, param_count
from arch_search.design.spec import PROJECTIONS, ArchSpec

# Ops that carry the model's multiply-adds; each gets a handle below.
MATMUL_OPS = (
    "aten::linear",
    "aten::addmm",
    "aten::mm",
    "aten::matmul",
    "aten::bmm",
    "aten::baddbmm",
    "aten::einsum",
    "aten::scaled_dot_product_attention",
)
# Element-wise and data-movement ops: deliberately not counted (see module docstring).
IGNORED_OPS = (
    "aten::layer_norm",
    "aten::gelu",
    "aten::gelu_",
    "aten::relu",
    "aten::relu_",
    "aten::tanh",
    "aten::softmax",
    "aten::add",
    "aten::add_",
    "aten::rsub",
    "aten::sub",
    "aten::mul",
    "aten::embedding",
    "aten::dropout",
)


@dataclass(frozen=True)
class Cost:
    """Costs of one forward pass at (batch, seq_len). ``macs``/``flops`` are the encoder's
    (embeddings excluded: lookups); the pooler and a task head have their own fields."""

    params: int  # all parameters, embeddings included
    encoder_params: int  # the N layers only
    macs: int
    flops: int  # 2 * macs
    pooler_macs: int
    head_macs: int
    seq_len: int
    batch: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _shape(value) -> list[int]:
    return value.type().sizes()


def _linear_macs(inputs, outputs) -> int:
    # aten::linear(x, W, b): out elements x reduction length (bias not counted)
    return prod(_shape(outputs[0])) * _shape(inputs[0])[-1]


def _matmul_macs(inputs, outputs) -> int:
    # mm / matmul / bmm / baddbmm (and their out= forms): out elements x reduction length
    a = _shape(inputs[1] if len(inputs) >= 5 else inputs[0])  # baddbmm(bias, a, b, beta, alpha)
    return prod(_shape(outputs[0])) * a[-1]


def _sdpa_macs(inputs, outputs) -> int:
    q, k, v = (_shape(t) for t in inputs[:3])  # (..., T, D), (..., S, D), (..., S, Dv)
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])  # QK^T and PV


def _einsum_macs(inputs, outputs) -> int:
    from fvcore.nn.jit_handles import einsum_flop_jit

    return einsum_flop_jit(inputs, outputs)


_HANDLES = {
    "aten::linear": _linear_macs,
    "aten::addmm": _matmul_macs,
    "aten::mm": _matmul_macs,
    "aten::matmul": _matmul_macs,
    "aten::bmm": _matmul_macs,
    "aten::baddbmm": _matmul_macs,
    "aten::einsum": _einsum_macs,
    "aten::scaled_dot_product_attention": _sdpa_macs,
}


class _Tensors(torch.nn.Module):
    """fvcore traces with torch.jit: give it a module that returns only tensors."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        out = self.model(input_ids)
        return tuple(t for t in out if t is not None)


def flop_analysis(model: torch.nn.Module, seq_len: int = 128, batch: int = 1) -> FlopCountAnalysis:
    """fvcore's analysis of ``model`` on (batch, seq_len) token ids, with our handles.
    Counts are MACs, keyed by module name under ``model.``."""
    vocab = model.embeddings.word.num_embeddings
    ids = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    analysis = FlopCountAnalysis(_Tensors(model).eval(), (ids,))
    analysis.clear_op_handles()  # fvcore's defaults count LayerNorm; we count matmuls only
    analysis.set_op_handle(**_HANDLES, **{op: None for op in IGNORED_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def count_cost(spec: ArchSpec, seq_len: int = 128, batch: int = 1, task_head: int | None = None) -> Cost:
    """Params and MACs/FLOPs of ``spec`` at (batch, seq_len), counted by fvcore."""
    model = build_model(spec, task_head=task_head).eval()
    with torch.no_grad():
        analysis = flop_analysis(model, seq_len, batch)
        by_module = analysis.by_module()
    macs = sum(by_module[f"model.layers.{i}"] for i in range(spec.layers))
    return Cost(
        params=param_count(model),
        encoder_params=param_count(model.layers),
        macs=macs,
        flops=2 * macs,
        pooler_macs=by_module["model.pooler"],
        head_macs=by_module.get("model.head", 0),
        seq_len=seq_len,
        batch=batch,
    )


def closed_form_macs(spec: ArchSpec, seq_len: int = 128, batch: int = 1) -> int:
    """Encoder MACs by formula: sum over layers of T*C_in*C_out/G per projection, plus
    attention's 2*T^2*C (QK^T and PV). The cross-check for ``count_cost``."""
    T = seq_len
    total = 0
    for i in range(spec.layers):
        for p in PROJECTIONS:
            cin, cout = spec.channels(p)
            total += T * cin * cout // spec.groups[p][i]
        total += 2 * T * T * spec.hidden
    return batch * total
