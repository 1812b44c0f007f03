import copy

import pytest
import torch

from arch_search import build_model
from arch_search.nn.inherit import inherit_from_dense
from arch_search.nn.model import GroupedLinear
from tests.conftest import tiny_spec


def masked_dense(dense, spec):
    """The dense model with every projection's weight zeroed outside the block pattern that
    ``spec`` keeps: row r belongs to group r // (C_out/G), or r % G after a shuffle."""
    model = copy.deepcopy(dense)
    for i, layer in enumerate(model.layers):
        for p, (g, shuffle) in spec.layer(i).items():
            lin: GroupedLinear = getattr(layer, p)
            out_f, in_f = lin.out_features, lin.in_features
            rows = torch.arange(out_f)
            row_group = rows % g if shuffle and g > 1 else rows // (out_f // g)
            col_group = torch.arange(in_f) // (in_f // g)
            with torch.no_grad():
                lin.weight[0] *= (row_group[:, None] == col_group[None, :]).float()
    return model


@pytest.fixture
def dense():
    torch.manual_seed(0)
    return build_model(tiny_spec(), task_head=2).eval()


def test_dense_design_inherits_exactly(dense, batch):
    model = inherit_from_dense(tiny_spec(), dense, task_head=2).eval()
    for (name, a), b in zip(model.state_dict().items(), dense.state_dict().values()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.equal(model(*batch).logits, dense(*batch).logits)


@pytest.mark.parametrize("shuffle", [False, True])
def test_grouped_design_equals_block_masked_dense(dense, batch, shuffle):
    spec = tiny_spec(groups={"q": 2, "k": 4, "v": 8, "ffn_in": [4, 2], "ffn_out": [2, 8]}, shuffle=shuffle)
    model = inherit_from_dense(spec, dense, task_head=2).eval()
    reference = masked_dense(dense, spec)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch).logits, reference(*batch).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model(*batch).last_hidden_state, reference(*batch).last_hidden_state, atol=1e-5, rtol=1e-5
        )


def test_new_task_head_is_fresh_and_dims_must_match(dense):
    model = inherit_from_dense(tiny_spec(), dense, task_head=3)
    assert model.head.out_features == 3
    with pytest.raises(ValueError, match="hidden"):
        inherit_from_dense(tiny_spec(hidden=64), dense)
    with pytest.raises(ValueError, match="dense"):
        inherit_from_dense(tiny_spec(), build_model(tiny_spec(groups={"q": 2})))
