"""Compression of a dense encoder into a grouped design (arch_search.proxies.surgery)."""

import copy

import pytest
import torch

from arch_search import build_model
from arch_search.proxies.surgery import (distill, fit_grouped, kept_energy, permuted, reconstruction_error,
                                  refit)
from arch_search.nn.inherit import inherit_from_dense, out_groups
from arch_search.nn.model import GroupedLinear
from tests.conftest import tiny_spec

GROUPED = tiny_spec(groups={"q": 2, "k": 4, "v": 8, "post_attention": 2, "ffn_in": [4, 2], "ffn_out": [2, 8]})


def batches(n, seed, B=6, T=10):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1, 99, (B, T), generator=g)
        mask = torch.ones(B, T, dtype=torch.long)
        mask[B // 2 :, T // 2 :] = 0  # padded rows
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros(B, T, dtype=torch.long)})
    return out


@pytest.fixture
def dense():
    torch.manual_seed(0)
    model = build_model(tiny_spec(), task_head=2).eval()
    with torch.no_grad():  # weights of uneven size per channel, as a trained model has
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(torch.rand(p.shape[-1]) * 4)
    return model


def test_out_groups_follow_the_shuffle():
    assert out_groups(8, 2, False).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert out_groups(8, 2, True).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]  # group g's output o at o*G + g


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_permuted_dense_model_computes_the_same_and_keeps_more(dense, batch, shuffle):
    spec = GROUPED.replace(shuffle=shuffle)
    model = permuted(dense, spec)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch).logits, dense(*batch).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(*batch).pooler_output, dense(*batch).pooler_output, atol=1e-5, rtol=1e-5)
        # the residual stream itself comes out in the new channel order: the same values, permuted
        torch.testing.assert_close(model(*batch).last_hidden_state.sort(-1).values,
                                   dense(*batch).last_hidden_state.sort(-1).values, atol=1e-5, rtol=1e-5)
    before, after = kept_energy(dense, spec), kept_energy(model, spec)
    assert after > before + 0.02, (before, after)
    assert kept_energy(dense, tiny_spec()) == kept_energy(model, tiny_spec()) == 1.0
    assert not any(torch.equal(a, b) for a, b in zip(model.layers[0].ffn_in.weight, dense.layers[0].ffn_in.weight))


def test_least_squares_recovers_a_grouped_layer_exactly():
    torch.manual_seed(0)
    layer = GroupedLinear(8, 12, groups=4, shuffle=True)
    x = torch.randn(200, 8, dtype=torch.float64)
    with torch.no_grad():
        y = layer.double()(x)
    w, b = fit_grouped(x, y, groups=4, shuffle=True, ridge=0.0)
    torch.testing.assert_close(w, layer.weight.double())
    torch.testing.assert_close(b, layer.bias.double())


def test_refit_keeps_dense_projections_and_beats_naive_slices_on_held_out_text(dense):
    spec = GROUPED
    naive = inherit_from_dense(spec, dense, task_head=2)
    fitted = refit(copy.deepcopy(naive), dense, batches(8, seed=1))
    for i, (a, b) in enumerate(zip(naive.layers, fitted.layers)):
        for p, (g, _) in spec.layer(i).items():
            same = torch.equal(getattr(a, p).weight, getattr(b, p).weight)
            assert same == (g == 1), (i, p)  # g=1 untouched, grouped ones refitted
    held_out = batches(4, seed=2)
    assert reconstruction_error(fitted, dense, held_out) < 0.8 * reconstruction_error(naive, dense, held_out)


def test_block_slices_of_a_permuted_model_start_closer_and_distillation_closes_more(dense):
    spec = GROUPED
    held_out = batches(4, seed=2)
    naive = inherit_from_dense(spec, dense, task_head=2)
    base = permuted(dense, spec)
    student = inherit_from_dense(spec, base, task_head=2)
    assert reconstruction_error(student, base, held_out) < reconstruction_error(naive, dense, held_out)
    torch.manual_seed(0)
    losses = distill(student, base, iter(batches(40, seed=3)), steps=40, lr=3e-3)
    assert len(losses) == 40 and sum(losses[-5:]) < 0.8 * sum(losses[:5])  # dropout on: noisy, but falling
    assert reconstruction_error(student, base, held_out) < reconstruction_error(
        inherit_from_dense(spec, base, task_head=2), base, held_out)


def _residual_channels(model, dense) -> torch.Tensor:
    """perm with model's residual position p = dense's channel perm[p] (found from the word embeddings)."""
    a, b = model.embeddings.word.weight, dense.embeddings.word.weight  # (V, C)
    return torch.stack([torch.nonzero((b == a[:, [p]]).all(0)).flatten()[0] for p in range(a.shape[1])])


def _intermediate_channels(model, dense, i) -> torch.Tensor:
    a, b = model.layers[i].ffn_in.weight[0], dense.layers[i].ffn_in.weight[0]  # rows: intermediate channels
    perm_res = _residual_channels(model, dense)
    b = b[:, perm_res]  # dense's rows with their columns in model's residual order
    return torch.stack([torch.nonzero((b == a[[p]]).all(1)).flatten()[0] for p in range(a.shape[0])])


def test_nested_permutation_computes_the_same_function_and_each_split_refines_the_last(dense, batch):
    from arch_search.proxies.surgery import nested_permuted

    nested = nested_permuted(dense, (1, 2, 4, 8))
    with torch.no_grad():
        torch.testing.assert_close(nested(*batch).logits, dense(*batch).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(nested(*batch).pooler_output, dense(*batch).pooler_output, atol=1e-5, rtol=1e-5)
    # Splitting finer never moves a channel out of the block the coarser split put it in: the
    # blocks of the 2-way split after all levels hold the channels the 2-way split alone chose.
    coarse = nested_permuted(dense, (2,))
    for upto in ((2, 4), (2, 4, 8)):
        finer = nested_permuted(dense, upto)
        for level, g in enumerate(upto[:-1]):
            before = nested_permuted(dense, upto[: level + 1])
            for perm_of in (_residual_channels, lambda m, d: _intermediate_channels(m, d, 1)):
                a, b = perm_of(before, dense), perm_of(finer, dense)
                blocks_a = [set(x.tolist()) for x in a.view(g, -1)]
                blocks_b = [set(x.tolist()) for x in b.view(g, -1)]
                assert blocks_a == blocks_b, (upto, g)
    assert _residual_channels(coarse, dense).tolist() != list(range(32))  # it did move channels
    # and each level keeps more of the weights than the unpermuted model at that count
    for g in (2, 4, 8):
        design = tiny_spec(groups=dict.fromkeys(("q", "k", "v", "post_attention", "ffn_in", "ffn_out"), g))
        assert kept_energy(nested, design) > kept_energy(dense, design) + 0.01, g


def test_nested_splits_need_counts_that_divide_each_other(dense):
    from arch_search.proxies.surgery import nested_permuted, nested_splits

    assert nested_splits((16, 1, 2, 4, 8, 4)) == [2, 4, 8, 16]
    assert nested_splits((1, 3, 6)) == [3, 6]
    with pytest.raises(ValueError, match="do not nest"):
        nested_splits((2, 3))
    with pytest.raises(ValueError, match="dense"):
        nested_permuted(inherit_from_dense(GROUPED, dense), (2,))
