"""Compression of a dense encoder into a grouped design, three steps on top of the naive
block-diagonal slices of ``inherit.py``:

1. ``permuted``: reorder the channels whose order the function does not care about, so that
   the blocks a design keeps hold the most weight energy (Pool & Yu, NeurIPS 2021, "channel
   permutations for N:M sparsity"; DynaBERT's rewiring, Hou et al., 2020). Three kinds, each a
   balanced assignment (every group gets C/G channels; ``linear_sum_assignment``):
   - the intermediate channels of each layer (FFN-in rows with FFN-out columns);
   - the heads of each layer (q, k, v rows of a head with its post-attention columns);
   - the residual stream (every embedding, LayerNorm and projection touching it at once).
   Kept energy is the sum of the squared weights inside the blocks, optionally weighted by the
   mean square of each input channel on calibration text. The permuted model computes the same
   function (tested to 1e-5).
2. ``refit``: each grouped projection, layer by layer in order, refitted by ridge-damped least
   squares: the student's own inputs (after the layers already refitted) to the dense model's
   outputs of that projection, per group, on calibration tokens (padding excluded).
3. ``distill``: per-layer hidden-state distillation from the dense model on unlabeled text
   (MobileBERT, Sun et al., 2020; TinyBERT, Jiao et al., 2020), scale-free: each layer's
   squared error divided by the teacher's mean square at that layer.

Shapes: hidden C, intermediate I, heads H of D = C/H dims; a dense projection's weight is
``GroupedLinear.weight[0]`` of shape (C_out, C_in).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from arch_search.nn.inherit import block_mask, in_groups, out_groups, output_rows
from arch_search.nn.model import Encoder, GroupedLinear
from arch_search.tasks.training import descend, optimizer
from arch_search.design.spec import ArchSpec

Batch = dict[str, Tensor]  # input_ids, attention_mask, token_type_ids (B, T)

# ---- groups of positions ----------------------------------------------------------------------


def _kept_by_input(w2: Tensor, g_out: Tensor, groups: int) -> Tensor:
    """(C_in, G): energy input channel c keeps when it sits in group g's input block."""
    return torch.zeros(w2.shape[1], groups, dtype=w2.dtype).index_add_(1, g_out, w2.t())


def _kept_by_output(w2: Tensor, g_in: Tensor, groups: int) -> Tensor:
    """(C_out, G): energy output channel r keeps when group g writes it."""
    return torch.zeros(w2.shape[0], groups, dtype=w2.dtype).index_add_(1, g_in, w2)


def _assign(score: Tensor, blocks: int = 1) -> Tensor:
    """perm with perm[p] = the channel placed at position p, maximising sum score[perm[p], p];
    with ``blocks`` > 1 a channel stays inside its contiguous block of positions (the parent
    groups of a nested split: only the order within each block is chosen)."""
    n = len(score)
    size = n // blocks
    perm = torch.empty(n, dtype=torch.long)
    for b in range(blocks):
        lo = b * size
        channels, positions = linear_sum_assignment(score[lo : lo + size, lo : lo + size].double().numpy(), maximize=True)
        perm[lo + torch.as_tensor(positions)] = lo + torch.as_tensor(channels)
    return perm


# ---- 1. channel permutation ---------------------------------------------------------------------


def kept_energy(model: Encoder, spec: ArchSpec) -> float:
    """Fraction of the squared projection weights of ``model`` (dense) that ``spec``'s
    block-diagonal slices keep: 1.0 for a dense spec."""
    kept = total = 0.0
    for i, layer in enumerate(model.layers):
        for p, (g, shuffle) in spec.layer(i).items():
            lin: GroupedLinear = getattr(layer, p)
            w2 = lin.weight[0].detach() ** 2
            same = block_mask(lin.out_features, lin.in_features, g, shuffle).bool()
            kept += float(w2[same].sum())
            total += float(w2.sum())
    return kept / total


def permuted(dense: Encoder, spec: ArchSpec, rounds: int = 2) -> Encoder:
    """A copy of the dense ``dense`` with its residual, head and intermediate channels
    reordered so that ``spec``'s blocks keep the most weight energy (alternating: residual,
    heads, intermediate, ``rounds`` times); the same function."""
    if not dense.spec.is_dense:
        raise ValueError(f"permute a dense model, got {dense.spec.summary()}")
    model = copy.deepcopy(dense)
    with torch.no_grad():
        for _ in range(rounds):
            _permute_residual(model, _residual_order(model, spec))
            for i, layer in enumerate(model.layers):
                _permute_heads(layer, _head_order(layer, spec, i))
                _permute_intermediate(layer, _intermediate_order(layer, spec, i))
    return model


def nested_splits(groups: Iterable[int]) -> list[int]:
    """The group counts > 1 of ``groups``, ascending, each dividing the next (so that the blocks
    of one split sit inside those of the one before); ``ValueError`` if they do not."""
    counts = sorted({g for g in groups if g > 1})
    for a, b in zip([1, *counts], counts):
        if b % a:
            raise ValueError(f"group counts {counts} do not nest: {b} is not a multiple of {a}")
    return counts


def nested_permuted(dense: Encoder, groups: Iterable[int], rounds: int = 2) -> Encoder:
    """A copy of the dense ``dense`` with one channel order for every group count in ``groups``
    (powers of two, or each a multiple of the last): top-down recursive splitting. The split
    into the smallest count is chosen first (``permuted``'s balanced assignment with every
    projection at that count); each later split only reorders channels inside the blocks of
    the split before, so the blocks of G nest inside those of every smaller count and one
    permuted model serves every design. Residual and intermediate channels are split at every
    level; heads move only while a parent block holds whole heads. The same function."""
    if not dense.spec.is_dense:
        raise ValueError(f"permute a dense model, got {dense.spec.summary()}")
    model = copy.deepcopy(dense)
    spec, parent = dense.spec, 1
    H = spec.heads
    with torch.no_grad():
        for g in nested_splits(groups):
            level = spec.replace(groups=dict.fromkeys(spec.groups, g))  # every projection at g
            whole_heads = H % parent == 0  # each parent block is H/parent whole heads
            for _ in range(rounds):
                _permute_residual(model, _residual_order(model, level, parent))
                for i, layer in enumerate(model.layers):
                    if whole_heads:
                        _permute_heads(layer, _head_order(layer, level, i, parent))
                    _permute_intermediate(layer, _intermediate_order(layer, level, i, parent))
            parent = g
    return model


def _w2(lin: GroupedLinear) -> Tensor:
    return lin.weight[0].detach().double() ** 2  # (C_out, C_in)


def _residual_order(model: Encoder, spec: ArchSpec, blocks: int = 1) -> Tensor:
    """Residual position p <- channel perm[p]: every projection that reads (q, k, v, FFN in)
    or writes (post-attention, FFN out) the residual stream votes."""
    C = model.spec.hidden
    score = torch.zeros(C, C, dtype=torch.float64)
    for i, layer in enumerate(model.layers):
        for p, (g, shuffle) in spec.layer(i).items():
            if g == 1:
                continue
            lin: GroupedLinear = getattr(layer, p)
            if p in ("post_attention", "ffn_out"):  # writes the residual: output positions
                kept = _kept_by_output(_w2(lin), in_groups(lin.in_features, g), g)  # (C, G)
                score += kept[:, out_groups(C, g, shuffle)]
            else:  # reads it: input positions
                kept = _kept_by_input(_w2(lin), out_groups(lin.out_features, g, shuffle), g)  # (C, G)
                score += kept[:, in_groups(C, g)]
    return _assign(score, blocks)


def _head_order(layer, spec: ArchSpec, i: int, blocks: int = 1) -> Tensor:
    """Head slot s <- head perm[s]: q, k, v rows of a head and its post-attention columns move
    together (attention is per head, so the order of heads does not matter)."""
    H, C = layer.heads, layer.q.in_features
    D = C // H
    score = torch.zeros(H, H, dtype=torch.float64)
    for p, (g, shuffle) in spec.layer(i).items():
        if g == 1 or p not in ("q", "k", "v", "post_attention"):
            continue
        lin: GroupedLinear = getattr(layer, p)
        if p == "post_attention":  # reads the heads: input positions
            kept = _kept_by_input(_w2(lin), out_groups(C, g, shuffle), g)  # (C, G)
            where = in_groups(C, g)
        else:  # writes the heads: output positions
            kept = _kept_by_output(_w2(lin), in_groups(C, g), g)  # (C, G)
            where = out_groups(C, g, shuffle)
        per_dim = kept[:, where]  # (C, C): channel c at position p
        # head h at slot s: its D channels at the slot's D positions, dim by dim
        score += per_dim.view(H, D, H, D).diagonal(dim1=1, dim2=3).sum(-1)
    return _assign(score, blocks)


def _intermediate_order(layer, spec: ArchSpec, i: int, blocks: int = 1) -> Tensor:
    """Intermediate position p <- channel perm[p] (FFN-in rows with FFN-out columns)."""
    (g_in, sh_in), (g_out, sh_out) = spec.layer(i)["ffn_in"], spec.layer(i)["ffn_out"]
    inner = layer.ffn_in.out_features
    score = torch.zeros(inner, inner, dtype=torch.float64)
    if g_in > 1:
        kept = _kept_by_output(_w2(layer.ffn_in), in_groups(layer.ffn_in.in_features, g_in), g_in)  # (I, G)
        score += kept[:, out_groups(inner, g_in, sh_in)]
    if g_out > 1:
        kept = _kept_by_input(_w2(layer.ffn_out), out_groups(layer.ffn_out.out_features, g_out, sh_out), g_out)
        score += kept[:, in_groups(inner, g_out)]
    return _assign(score, blocks)


def _rows(lin: GroupedLinear, perm: Tensor) -> None:
    lin.weight[0] = lin.weight[0][perm]
    lin.bias.copy_(lin.bias[perm])


def _cols(lin: GroupedLinear, perm: Tensor) -> None:
    lin.weight[0] = lin.weight[0][:, perm]


def _permute_residual(model: Encoder, perm: Tensor) -> None:
    emb = model.embeddings
    for table in (emb.word, emb.position, emb.token_type):
        table.weight.copy_(table.weight[:, perm])
    for norm in [emb.norm] + [n for layer in model.layers for n in (layer.attn_norm, layer.ffn_norm)]:
        norm.weight.copy_(norm.weight[perm])
        norm.bias.copy_(norm.bias[perm])
    for layer in model.layers:
        for lin in (layer.q, layer.k, layer.v, layer.ffn_in):
            _cols(lin, perm)
        for lin in (layer.post_attention, layer.ffn_out):
            _rows(lin, perm)
    model.pooler.weight.copy_(model.pooler.weight[:, perm])


def _permute_heads(layer, heads: Tensor) -> None:
    D = layer.q.out_features // layer.heads
    perm = (heads[:, None] * D + torch.arange(D)).reshape(-1)  # head order -> channel order
    for lin in (layer.q, layer.k, layer.v):
        _rows(lin, perm)
    _cols(layer.post_attention, perm)


def _permute_intermediate(layer, perm: Tensor) -> None:
    _rows(layer.ffn_in, perm)
    _cols(layer.ffn_out, perm)


# ---- 2. least-squares refit -----------------------------------------------------------------

STAGES = (("q", "k", "v"), ("post_attention",), ("ffn_in",), ("ffn_out",))  # each reads the last's output


def _forward(model: Encoder, batches: list[Batch]) -> None:
    model.eval()
    with torch.no_grad():
        for b in batches:
            model(b["input_ids"], b["attention_mask"], b["token_type_ids"])


def _capture(model: Encoder, batches: list[Batch], modules: dict[str, torch.nn.Module], inputs: bool) -> dict[str, Tensor]:
    """Inputs (or outputs) of ``modules`` on the calibration tokens, padding dropped: {name: (N, C)}."""
    seen: dict[str, list[Tensor]] = {name: [] for name in modules}
    keep: list[Tensor] = []

    def hook(name):
        def fn(module, args, out):
            x = args[0] if inputs else out  # (B, T, C)
            seen[name].append(x[keep[-1]].detach().double())  # (tokens, C)
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    try:
        for b in batches:
            keep.append(b["attention_mask"].bool())
            _forward(model, [b])
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(xs) for name, xs in seen.items()}


def fit_grouped(x: Tensor, y: Tensor, groups: int, shuffle: bool, ridge: float) -> tuple[Tensor, Tensor]:
    """Least squares per group: inputs x (N, C_in), targets y (N, C_out) -> GroupedLinear's
    weight (G, C_out/G, C_in/G) and bias (C_out,) (group-major), ridge-damped: lambda = ridge x
    the mean diagonal of the group's Gram matrix."""
    n, cin = x.shape
    rows = output_rows(y.shape[1], groups, shuffle)  # (G, C_out/G)
    weights, biases = [], []
    for g in range(groups):
        xg = torch.cat([x[:, g * cin // groups : (g + 1) * cin // groups], x.new_ones(n, 1)], 1)  # (N, C_in/G + 1)
        gram = xg.T @ xg
        damp = ridge * gram.diagonal()[:-1].mean() * torch.eye(len(gram), dtype=x.dtype, device=x.device)
        damp[-1, -1] = 0  # the bias is not damped
        sol = torch.linalg.solve(gram + damp, xg.T @ y[:, rows[g]])  # (C_in/G + 1, C_out/G)
        weights.append(sol[:-1].T)
        biases.append(sol[-1])
    return torch.stack(weights), torch.cat(biases)


def refit(student: Encoder, teacher: Encoder, batches: list[Batch], ridge: float = 1e-2) -> Encoder:
    """Refit ``student``'s grouped projections in place (g = 1 ones stay as they are): layer by
    layer, stage by stage (q/k/v, post-attention, FFN in, FFN out), each on the student's own
    inputs at that point against the teacher's outputs of the same projection. In fp32 and
    float64 whatever autocast is on outside (least squares in bf16 would not fit)."""
    with torch.autocast(next(student.parameters()).device.type, enabled=False):
        return _refit(student, teacher, batches, ridge)


def _refit(student: Encoder, teacher: Encoder, batches: list[Batch], ridge: float) -> Encoder:
    names = {f"{i}.{p}": getattr(layer, p) for i, layer in enumerate(teacher.layers) for p in sum(STAGES, ())}
    targets = _capture(teacher, batches, names, inputs=False)
    for i, layer in enumerate(student.layers):
        for stage in STAGES:
            grouped = {p: getattr(layer, p) for p in stage if getattr(layer, p).groups > 1}
            if not grouped:
                continue
            xs = _capture(student, batches, {p: m for p, m in grouped.items()}, inputs=True)
            with torch.no_grad():
                for p, lin in grouped.items():
                    w, b = fit_grouped(xs[p], targets[f"{i}.{p}"], lin.groups, lin.shuffle, ridge)
                    lin.weight.copy_(w)
                    lin.bias.copy_(b)
    return student


# ---- 3. hidden-state distillation -------------------------------------------------------------


def hidden_states(model: Encoder, batch: Batch) -> list[Tensor]:
    """Each layer's output (B, T, C), in order, from one forward pass."""
    out: list[Tensor] = []
    handles = [layer.register_forward_hook(lambda m, a, y: out.append(y)) for layer in model.layers]
    try:
        model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    finally:
        for h in handles:
            h.remove()
    return out


def hidden_loss(student: list[Tensor], teacher: list[Tensor], mask: Tensor) -> Tensor:
    """Mean over layers of the squared error on real tokens over the teacher's mean square
    there (scale-free: each layer counts alike whatever its LayerNorm's scale)."""
    keep = mask.bool()
    losses = [(s[keep].float() - t[keep].float()).pow(2).mean() / t[keep].float().pow(2).mean()
              for s, t in zip(student, teacher)]  # in fp32 under bf16 autocast too
    return torch.stack(losses).mean()


def distill(
    student: Encoder, teacher: Encoder, batches: Iterator[Batch], steps: int, lr: float = 1e-4,
    weight_decay: float = 0.01, warmup: float = 0.1,
) -> list[float]:
    """``steps`` steps of hidden-state distillation (``hidden_loss``) of ``student`` from
    ``teacher`` on unlabeled ``batches``; returns the loss at each step."""
    teacher.eval()
    opt, sched = optimizer(student, lr, weight_decay, warmup, steps)
    losses = []
    for _ in range(steps):
        batch = next(batches)
        student.train()
        with torch.no_grad():
            target = hidden_states(teacher, batch)
        loss = hidden_loss(hidden_states(student, batch), target, batch["attention_mask"])
        losses.append(descend(loss, student, opt, sched, "distillation loss"))
    return losses


def reconstruction_error(student: Encoder, teacher: Encoder, batches: Iterable[Batch]) -> float:
    """``hidden_loss`` of ``student`` against ``teacher`` over ``batches`` (eval mode, mean)."""
    student.eval()
    teacher.eval()
    with torch.no_grad():
        errors = [float(hidden_loss(hidden_states(student, b), hidden_states(teacher, b), b["attention_mask"]))
                  for b in batches]
    return sum(errors) / len(errors)
