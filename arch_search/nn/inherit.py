"""Weight inheritance: a grouped design starts from a dense pretrained encoder.

Each grouped projection keeps the block-diagonal slices of the dense weight and drops the
rest, which is lossy for G > 1 (the off-diagonal blocks carried information); G = 1 inherits
exactly. With a channel shuffle after a projection (ShuffleNet), group g's output o lands at
channel o*G + g, so it takes dense output row o*G + g: every channel keeps the meaning it had
in the dense model, and downstream layers (residual, LayerNorm, the next projection) see the
dense channel order either way.
"""

from __future__ import annotations

import torch
from torch import Tensor

from arch_search.nn.model import Encoder, GroupedLinear, build_model
from arch_search.design.spec import DIMS, ArchSpec, shuffles


def output_rows(out_features: int, groups: int, shuffle: bool) -> Tensor:
    """(G, C_out/G): the output channel, in the layer's final order, of group g's output o."""
    channels = torch.arange(out_features)
    if shuffles(groups, shuffle):
        return channels.view(out_features // groups, groups).t()  # o*G + g
    return channels.view(groups, out_features // groups)  # g*C_out/G + o


def in_groups(in_features: int, groups: int) -> Tensor:
    """(C_in,): the group that reads input channel c."""
    return torch.arange(in_features) // (in_features // groups)


def out_groups(out_features: int, groups: int, shuffle: bool) -> Tensor:
    """(C_out,): the group that writes output channel r (after a shuffle, if any)."""
    rows = output_rows(out_features, groups, shuffle)  # (G, C_out/G)
    owner = torch.empty(out_features, dtype=torch.long)
    owner[rows.reshape(-1)] = torch.arange(groups).repeat_interleave(out_features // groups)
    return owner


def block_mask(out_features: int, in_features: int, groups: int, shuffle: bool) -> Tensor:
    """(C_out, C_in) 0/1 mask of the dense weights a grouped layer keeps (its blocks)."""
    return (out_groups(out_features, groups, shuffle)[:, None] == in_groups(in_features, groups)[None, :]).float()


def block_diagonal_slices(weight: Tensor, bias: Tensor, groups: int, shuffle: bool) -> tuple[Tensor, Tensor]:
    """Dense (C_out, C_in) weight and (C_out,) bias -> GroupedLinear's (G, C_out/G, C_in/G)
    weight and (C_out,) bias (indexed group-major, before any shuffle)."""
    out_features, in_features = weight.shape
    cg = in_features // groups
    rows = output_rows(out_features, groups, shuffle)  # (G, C_out/G)
    w = torch.stack([weight[rows[g], g * cg : (g + 1) * cg] for g in range(groups)])  # (G, C_out/G, C_in/G)
    return w, bias[rows.reshape(-1)]


def inherit_from_dense(
    spec: ArchSpec,
    dense: Encoder,
    task_head: int | None = None,
    dropout: float = 0.1,
    attention_dropout: float = 0.1,
) -> Encoder:
    """``spec``'s encoder with weights inherited from the dense encoder ``dense`` (same dims).
    A task head is copied when ``dense`` has one of the same size, else freshly initialised.
    The encoder is on ``dense``'s device."""
    mismatch = {d: (getattr(spec, d), getattr(dense.spec, d)) for d in DIMS if getattr(spec, d) != getattr(dense.spec, d)}
    if mismatch:
        raise ValueError(f"cannot inherit: spec and dense model differ in {mismatch} (spec, dense)")
    if not dense.spec.is_dense:
        raise ValueError(f"inherit from a dense model, got {dense.spec.summary()}")
    model = build_model(spec, task_head=task_head, dropout=dropout, attention_dropout=attention_dropout)
    source = dict(dense.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            if name == "head" and (dense.head is None or dense.head.weight.shape != module.weight.shape):
                continue  # a new task: keep the fresh head
            src = source[name]
            if isinstance(module, GroupedLinear):
                w, b = block_diagonal_slices(src.weight[0], src.bias, module.groups, module.shuffle)
                module.weight.copy_(w)
                module.bias.copy_(b)
            elif not isinstance(module, (Encoder,)) and list(module.parameters(recurse=False)):
                for pname, p in module.named_parameters(recurse=False):
                    p.copy_(getattr(src, pname))
    return model.to(next(dense.parameters()).device)
