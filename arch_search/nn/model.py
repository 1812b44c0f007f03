"""The encoder: BERT (Devlin et al., 2019) with grouped position-wise layers (SqueezeBERT,
Iandola et al., 2020, Sec. 3) and optional channel shuffle (ShuffleNet, Zhang et al., 2018).

Layout is (B, T, C) throughout: batch, tokens, channels. A grouped 1x1 convolution over
tokens is a grouped linear layer over channels; ``GroupedLinear`` runs it one way per mode:
- fp32 CPU inference: ``_per_group`` with ``onednn_linear``, one oneDNN GEMM per group, dense
  layers included. ``F.linear`` / ``bmm`` call MKL's sgemm, which on an AMD EPYC runs at less
  than half oneDNN's rate (87-91 vs 189-193 GFLOP/s at BERT-base's shapes, 1 thread:
  ``experiments/speedup/profile.txt``);
- dense layers otherwise, and ONNX export: ``_per_group`` with ``F.linear``;
- training, shuffle and ``torch.compile``: ``_batched``, one ``torch.baddbmm`` over the groups;
- other inference (bf16, a GPU, or no oneDNN): ``_batched_in_place``, ``bmm`` into the output.
PyTorch's grouped ``Conv1d`` in (B, C, T) layout needs permutes around every LayerNorm and
attention; (B, T, C) needs none (measured: ``experiments/speedup``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arch_search.design.spec import ArchSpec, shuffles

_ACT = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
_ACT_INPLACE = {
    "gelu": torch.ops.aten.gelu_,
    "gelu_new": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
    "relu": torch.relu_,
}


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.linear(x, weight, bias)`` through oneDNN's GEMM: torch's private op for it (what
    torch.compile's CPU linear fusions call), on dense tensors, no autograd. Guarded below:
    a build without it takes the aten path."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


# None where this torch build has no oneDNN linear (then inference takes the batched matmul)
onednn_linear = _onednn_linear if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise") else None


def _fast_path(x: Tensor) -> bool:
    """fp32 CPU inference, not traced (tracers, fvcore's and ONNX's, record the plain maths)."""
    return (onednn_linear is not None and not torch.is_grad_enabled() and x.dtype == torch.float32
            and x.device.type == "cpu" and not torch.jit.is_tracing())


class EncoderOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, C)
    pooler_output: Tensor  # (B, C): tanh(W h[:, 0] + b)
    logits: Tensor | None = None  # (B, n_labels); n_labels == 1 is regression


class GroupedLinear(nn.Module):
    """A grouped 1x1 convolution over tokens == a block-diagonal linear layer over channels.

    Input (..., C_in) -> output (..., C_out). Group ``g`` maps input channels
    ``[g*C_in/G, (g+1)*C_in/G)`` to output channels ``[g*C_out/G, (g+1)*C_out/G)``.
    ``weight`` is (G, C_out/G, C_in/G), i.e. ``nn.Conv1d(groups=G).weight`` viewed per group,
    and for G=1 ``nn.Linear.weight`` with a leading 1. With ``shuffle`` the output channels are
    shuffled as in ShuffleNet: (G, C_out/G) -> (C_out/G, G).
    """

    def __init__(self, in_features: int, out_features: int, groups: int = 1, shuffle: bool = False):
        super().__init__()
        if in_features % groups or out_features % groups:
            raise ValueError(f"groups={groups} must divide in={in_features} and out={out_features}")
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.shuffle = shuffles(groups, shuffle)
        self.weight = nn.Parameter(torch.empty(groups, out_features // groups, in_features // groups))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As ``nn.Conv1d(groups=G)``: U(-b, b) with b = 1/sqrt(C_in/G). The encoder re-inits
        with BERT's N(0, 0.02)."""
        bound = 1 / math.sqrt(self.in_features // self.groups)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C_in) -> (..., C_out), one kernel per mode (module docstring)."""
        if _fast_path(x):  # fp32 CPU inference
            return self._per_group(x, onednn_linear)
        if self.groups == 1 or torch.onnx.is_in_onnx_export():  # dense, or ONNX export
            return self._per_group(x, F.linear)
        if torch.is_grad_enabled() or self.shuffle or torch.compiler.is_compiling():  # autograd, shuffle, compile
            return self._batched(x)
        return self._batched_in_place(x)  # other inference

    def _per_group(self, x: Tensor, linear) -> Tensor:
        """One 2-D GEMM per group, then a concat: in fp32 on CPU oneDNN's runs ~2x MKL's; in ONNX
        onnxruntime prepacks 2-D weights (~6% faster than a 3-D MatMul) and int8 sees them plain."""
        G, cin, cout = self.groups, self.in_features // self.groups, self.out_features // self.groups
        if G == 1:
            return linear(x, self.weight[0], self.bias)  # (..., C_in) -> (..., C_out)
        ys = [linear(x[..., g * cin:(g + 1) * cin], self.weight[g], self.bias[g * cout:(g + 1) * cout])
              for g in range(G)]  # G x (..., C_out/G)
        if self.shuffle:  # channel o*G + g
            return torch.stack(ys, -1).flatten(-2)  # (..., C_out/G, G) -> (..., C_out)
        return torch.cat(ys, -1)  # channel g*C_out/G + o

    def _batched(self, x: Tensor) -> Tensor:
        """One baddbmm over the groups: with autograd, and where out= can't serve (a shuffled
        layout; torch.compile cannot trace out= into a strided view: a graph break per layer)."""
        G, lead = self.groups, x.shape[:-1]
        xg = x.reshape(-1, G, self.in_features // G).transpose(0, 1)  # (..., C_in) -> (G, N, C_in/G)
        w = self.weight.transpose(1, 2)  # (G, C_in/G, C_out/G)
        y = torch.baddbmm(self.bias.view(G, 1, -1), xg, w)  # (G, N, C_out/G)
        # back to (N, C_out): channel g*C_out/G + o, or o*G + g after a shuffle
        y = y.permute(1, 2, 0) if self.shuffle else y.transpose(0, 1)  # (N, C_out/G, G) | (N, G, C_out/G)
        return y.reshape(*lead, self.out_features)

    def _batched_in_place(self, x: Tensor) -> Tensor:
        """Inference without oneDNN (bf16, a GPU): bmm writes into the output's layout through a
        strided view, so no buffer is copied (out= has no autograd, hence inference only)."""
        G, lead = self.groups, x.shape[:-1]
        xg = x.reshape(-1, G, self.in_features // G).transpose(0, 1)  # (..., C_in) -> (G, N, C_in/G)
        w = self.weight.transpose(1, 2)  # (G, C_in/G, C_out/G)
        y = x.new_empty(xg.shape[1], G, self.out_features // G)  # (N, G, C_out/G)
        torch.bmm(xg, w, out=y.transpose(0, 1))  # (G, N, C_in/G) @ (G, C_in/G, C_out/G)
        y += self.bias.view(G, -1)
        return y.view(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, groups={self.groups}, shuffle={self.shuffle}"


class Embeddings(nn.Module):
    def __init__(self, spec: ArchSpec, dropout: float):
        super().__init__()
        self.word = nn.Embedding(spec.vocab, spec.hidden)
        self.position = nn.Embedding(spec.max_positions, spec.hidden)
        self.token_type = nn.Embedding(spec.type_vocab, spec.hidden)
        self.norm = nn.LayerNorm(spec.hidden, eps=spec.layer_norm_eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None) -> Tensor:
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.position(positions)  # (B, T, C)
        if token_type_ids is None:
            x = x + self.token_type.weight[0]
        else:
            x = x + self.token_type(token_type_ids)
        return self.drop(self.norm(x))


class Layer(nn.Module):
    """Post-LN BERT block; the six position-wise projections are GroupedLinear."""

    def __init__(self, spec: ArchSpec, i: int, dropout: float, attention_dropout: float):
        super().__init__()
        C, I = spec.hidden, spec.intermediate
        g = spec.layer(i)  # {projection: (groups, shuffle)}
        self.heads = spec.heads
        self.q = GroupedLinear(C, C, *g["q"])
        self.k = GroupedLinear(C, C, *g["k"])
        self.v = GroupedLinear(C, C, *g["v"])
        self.post_attention = GroupedLinear(C, C, *g["post_attention"])
        self.attn_norm = nn.LayerNorm(C, eps=spec.layer_norm_eps)
        self.ffn_in = GroupedLinear(C, I, *g["ffn_in"])
        self.ffn_out = GroupedLinear(I, C, *g["ffn_out"])
        self.ffn_norm = nn.LayerNorm(C, eps=spec.layer_norm_eps)
        self.act = spec.act
        self.drop = nn.Dropout(dropout)
        self.attention_dropout = attention_dropout

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.shape
        H = self.heads
        q = self.q(x).view(B, T, H, C // H).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)
        k = self.k(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        v = self.v(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        p = self.attention_dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, D)
        ctx = ctx.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, C)
        in_place = not (self.training or torch.is_grad_enabled())
        x = self.attn_norm(self._residual(x, self.post_attention(ctx), in_place))  # (B, T, C)
        h = (_ACT_INPLACE if in_place else _ACT)[self.act](self.ffn_in(x))  # (B, T, I)
        return self.ffn_norm(self._residual(x, self.ffn_out(h), in_place))  # (B, T, C)

    def _residual(self, x: Tensor, y: Tensor, in_place: bool) -> Tensor:
        """x + dropout(y); at inference (eval, no autograd) added into y: fewer fresh buffers matter
        on CPU, where a large allocation can come back from malloc as new pages to fault in."""
        return y.add_(x) if in_place else x + self.drop(y)


class Encoder(nn.Module):
    """Embeddings -> N layers -> pooler [-> task head]. ``forward`` mirrors HF's BertModel."""

    def __init__(
        self,
        spec: ArchSpec,
        task_head: int | None = None,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
    ):
        super().__init__()
        self.spec = spec
        self.embeddings = Embeddings(spec, dropout)
        self.layers = nn.ModuleList(Layer(spec, i, dropout, attention_dropout) for i in range(spec.layers))
        self.pooler = nn.Linear(spec.hidden, spec.hidden)
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(spec.hidden, task_head) if task_head else None
        self.apply(_init_weights)

    @property
    def num_labels(self) -> int | None:
        return self.head.out_features if self.head is not None else None

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> EncoderOutput:
        """input_ids, token_type_ids: (B, T) int; attention_mask: (B, T), 1 = token, 0 = padding."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        mask = None
        if attention_mask is not None:  # (B, T) -> additive (B, 1, 1, T), as HF does
            keep = attention_mask[:, None, None, :].to(x.dtype)
            mask = (1.0 - keep) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)  # (B, T, C)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, C)
        logits = self.head(self.head_drop(pooled)) if self.head is not None else None  # (B, n)
        return EncoderOutput(x, pooled, logits)


def _init_weights(m: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(m, (nn.Linear, GroupedLinear)):
        nn.init.normal_(m.weight, std=std)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=std)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_model(
    spec: ArchSpec,
    task_head: int | None = None,
    dropout: float = 0.1,
    attention_dropout: float = 0.1,
) -> Encoder:
    """The encoder of ``spec``; ``task_head=n`` adds a head with n outputs (1 = regression)."""
    return Encoder(spec, task_head=task_head, dropout=dropout, attention_dropout=attention_dropout)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


