"""Parity with HF transformers: random tiny models built from configs (no downloads) and the
real MiniLM checkpoint in ../shared."""

import pytest
import torch
import transformers as tf

from arch_search import ArchSpec, from_hf, to_hf
from tests.conftest import SHARED, tiny_spec

COMMON = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=24, num_labels=3,
)
SQUEEZE_GROUPS = dict(q_groups=2, k_groups=4, v_groups=8, post_attention_groups=1, intermediate_groups=4, output_groups=2)


def hf_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind.startswith("Bert"):
        config = tf.BertConfig(**COMMON)
    else:
        config = tf.SqueezeBertConfig(embedding_size=32, **SQUEEZE_GROUPS, **COMMON)
    model = getattr(tf, kind)(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so a swapped tensor shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def assert_parity(hf, ours, batch, atol=1e-4):
    ids, mask, types = batch
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        b = ours.eval()(ids, mask, types)
    if hasattr(a, "logits"):
        assert (a.logits - b.logits).abs().max() <= atol
    else:
        assert (a.last_hidden_state - b.last_hidden_state).abs().max() <= atol
        assert (a.pooler_output - b.pooler_output).abs().max() <= atol


KINDS = ["BertModel", "BertForSequenceClassification", "SqueezeBertModel", "SqueezeBertForSequenceClassification"]


@pytest.mark.parametrize("kind", KINDS)
def test_from_hf_object_matches_hf_outputs(kind, batch):
    hf = hf_model(kind)
    ours, spec = from_hf(hf)
    assert_parity(hf, ours, batch)
    if kind.startswith("Squeeze"):
        assert spec.uniform_groups() == {"q": 2, "k": 4, "v": 8, "post_attention": 1, "ffn_in": 4, "ffn_out": 2}
    else:
        assert spec.is_dense
    assert ours.num_labels == (3 if "Classification" in kind else None)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("safe", [True, False])
def test_from_hf_checkpoint_folder(kind, safe, batch, tmp_path):
    hf = hf_model(kind)
    if safe:
        hf.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file()
    else:  # the legacy format: a pickled state dict, read back with weights_only=True
        hf.config.save_pretrained(tmp_path)
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours, _ = from_hf(tmp_path)
    assert_parity(hf, ours, batch)


@pytest.mark.parametrize("kind", KINDS)
def test_to_hf_round_trip_is_exact(kind, batch):
    ours, spec = from_hf(hf_model(kind))
    hf = to_hf(ours, spec)
    assert type(hf).__name__ == kind
    again, spec2 = from_hf(hf)
    assert spec2 == spec
    for (name, a), b in zip(ours.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert_parity(hf, ours, batch, atol=1e-6)


def test_to_hf_refuses_what_hf_cannot_express():
    with pytest.raises(ValueError, match="no HF equivalent"):
        to_hf(from_hf(hf_model("BertModel"))[0], tiny_spec(groups={"q": [1, 2]}))
    from arch_search import build_model

    shuffled = tiny_spec(groups={"ffn_in": 4}, shuffle=True)
    with pytest.raises(ValueError, match="no HF equivalent"):
        to_hf(build_model(shuffled))


def test_from_hf_rejects_other_architectures(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    with pytest.raises(ValueError, match="model_type"):
        from_hf(tmp_path)
    with pytest.raises(FileNotFoundError):
        from_hf(tmp_path / "missing")


@pytest.mark.shared
def test_a_hub_id_that_cannot_be_loaded_is_one_clear_error(monkeypatch):
    import huggingface_hub.constants

    from arch_search.nn.hf import CheckpointError
    from arch_search.proxies import ProxySetup

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    hub_id = "no-such-org/no-such-model"
    setup = ProxySetup(task="wnli", init="pretrained", checkpoint=hub_id, max_len=16, heldout=10, data_dir=str(SHARED / "glue"))
    for load in (lambda: from_hf(hub_id), lambda: setup.dense, lambda: setup.data):  # model, and tokenizer
        with pytest.raises(CheckpointError) as e:
            load()
        message = str(e.value)
        assert message.startswith(f"checkpoint {hub_id!r} is not a local folder and could not be loaded from the model hub (")
        assert "point ARCH_SEARCH_CHECKPOINT" in message and "\n" not in message


@pytest.mark.shared
def test_minilm_checkpoint_matches_hf(minilm_dir, batch):
    hf = tf.BertModel.from_pretrained(minilm_dir).eval()
    ours, spec = from_hf(minilm_dir)
    assert spec == ArchSpec.preset("minilm_l6")
    ids, mask, types = batch
    ids = ids * 300  # real vocabulary ids, up to 29,400
    assert_parity(hf, ours, (ids, mask, types))
