import re

import pytest
import torch

from arch_search import ArchSpec, build_model, closed_form_macs, count_cost
from arch_search.measure.cost import flop_analysis
from tests.conftest import tiny_spec

MATMUL_CLASS = re.compile(r"mm|matmul|linear|einsum|attention|conv", re.IGNORECASE)


def test_bert_base_and_squeezebert_pinned_macs():
    bert = count_cost(ArchSpec.preset("bert_base"), seq_len=128, batch=1)
    sq = count_cost(ArchSpec.preset("squeezebert"), seq_len=128, batch=1)
    assert bert.macs == 11_173_625_856 and sq.macs == 3_699_376_128
    assert bert.flops == 2 * bert.macs and sq.flops == 2 * sq.macs
    assert round(bert.gflops, 2) == 22.35 and round(sq.gflops, 2) == 7.40  # paper: 22.5 and 7.42
    assert bert.pooler_macs == 768 * 768 and bert.head_macs == 0
    assert bert.params == 109_482_240  # HF BertModel(BertConfig()) has the same count
    assert bert.encoder_params == 12 * (4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 4 * 768)


@pytest.mark.parametrize(
    "spec",
    [
        ArchSpec.preset("minilm_l6"),
        tiny_spec(groups={"q": 2, "k": 4, "v": 8, "post_attention": 1, "ffn_in": [4, 1], "ffn_out": [2, 8]}),
        tiny_spec(groups={"q": 4, "ffn_in": 4, "ffn_out": 4}, shuffle=True),
    ],
    ids=["minilm", "per_layer", "shuffle"],
)
@pytest.mark.parametrize("seq_len, batch", [(16, 1), (7, 3)])
def test_fvcore_equals_closed_form(spec, seq_len, batch):
    cost = count_cost(spec, seq_len=seq_len, batch=batch, task_head=3)
    assert cost.macs == closed_form_macs(spec, seq_len, batch)
    assert cost.pooler_macs == batch * spec.hidden**2 and cost.head_macs == batch * spec.hidden * 3


@pytest.mark.parametrize("grad", [False, True])
def test_no_matmul_class_op_is_left_uncounted(grad):
    model = build_model(tiny_spec(groups={"q": 2, "ffn_in": 4}, shuffle={"ffn_in": True}), task_head=2).eval()
    with torch.set_grad_enabled(grad):  # both the autograd and the inference kernels
        analysis = flop_analysis(model, seq_len=8)
        analysis.total()
    assert not [op for op in analysis.unsupported_ops() if MATMUL_CLASS.search(op)], analysis.unsupported_ops()
    assert set(analysis.by_operator()) <= {"linear", "bmm", "baddbmm", "scaled_dot_product_attention"}


def test_grouping_divides_projection_macs():
    dense = closed_form_macs(tiny_spec(), 10)
    grouped = closed_form_macs(tiny_spec(groups={"ffn_in": 4}), 10)
    assert dense - grouped == 2 * 10 * 32 * 64 * 3 // 4  # two layers, 3/4 of ffn_in saved
