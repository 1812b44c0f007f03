"""HF interoperability: BERT / SqueezeBERT weights in (``from_hf``) and out (``to_hf``).

Reads HF ``BertModel``, ``BertForSequenceClassification``, ``SqueezeBertModel`` and
``SqueezeBertForSequenceClassification`` objects, or their checkpoint folders (config.json +
model.safetensors, or pytorch_model.bin loaded with ``weights_only=True``), without needing
``transformers`` for folders. A hub id is resolved through ``transformers`` when installed.
SqueezeBERT's ``Conv1d(groups=G).weight`` of shape (C_out, C_in/G, 1) is exactly our
``GroupedLinear.weight`` (G, C_out/G, C_in/G) viewed per group.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from arch_search.nn.model import Encoder, build_model
from arch_search.design.spec import ArchSpec

# Our per-layer names -> (BERT name, SqueezeBERT name), relative to the layer.
_LAYER_KEYS = {
    "q": ("attention.self.query", "attention.query"),
    "k": ("attention.self.key", "attention.key"),
    "v": ("attention.self.value", "attention.value"),
    "post_attention": ("attention.output.dense", "post_attention.conv1d"),
    "attn_norm": ("attention.output.LayerNorm", "post_attention.layernorm"),
    "ffn_in": ("intermediate.dense", "intermediate.conv1d"),
    "ffn_out": ("output.dense", "output.conv1d"),
    "ffn_norm": ("output.LayerNorm", "output.layernorm"),
}
_EMBEDDING_KEYS = {
    "embeddings.word": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.token_type": "embeddings.token_type_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
    "pooler": "pooler.dense",
}
_SQUEEZEBERT_GROUPS = {
    "q": "q_groups",
    "k": "k_groups",
    "v": "v_groups",
    "post_attention": "post_attention_groups",
    "ffn_in": "intermediate_groups",
    "ffn_out": "output_groups",
}


class CheckpointError(ValueError):
    """A checkpoint that is no local folder and that the model hub did not give (offline, unknown id)."""


@contextmanager
def hub_errors(checkpoint: str | Path) -> Iterator[None]:
    """Turns the OSError of ``transformers`` failing to fetch hub id ``checkpoint`` into one
    CheckpointError that says what to do; errors about a local path pass through."""
    try:
        yield
    except OSError as e:
        if Path(checkpoint).exists() or str(checkpoint).startswith((".", "/")):
            raise
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"checkpoint {str(checkpoint)!r} is not a local folder and could not be loaded from the model hub ({why}); "
            "point ARCH_SEARCH_CHECKPOINT (or proxy_setup.checkpoint=...) at a local checkpoint folder, "
            "e.g. ../shared/models/all-MiniLM-L6-v2") from e


def spec_from_hf_config(config: Mapping[str, Any]) -> ArchSpec:
    """ArchSpec of an HF BERT or SqueezeBERT config (a dict or a ``PretrainedConfig``)."""
    c = dict(config if isinstance(config, Mapping) else config.to_dict())
    model_type = c.get("model_type")
    if model_type not in ("bert", "squeezebert"):
        raise ValueError(f"from_hf supports model_type 'bert' and 'squeezebert', got {model_type!r}")
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"only absolute position embeddings are supported, got {c['position_embedding_type']!r}")
    if model_type == "squeezebert" and c.get("embedding_size", c["hidden_size"]) != c["hidden_size"]:
        raise ValueError("SqueezeBERT with embedding_size != hidden_size is not supported")
    groups = {p: int(c.get(key, 1)) for p, key in _SQUEEZEBERT_GROUPS.items()} if model_type == "squeezebert" else {}
    return ArchSpec(
        hidden=c["hidden_size"],
        layers=c["num_hidden_layers"],
        heads=c["num_attention_heads"],
        intermediate=c["intermediate_size"],
        vocab=c["vocab_size"],
        max_positions=c["max_position_embeddings"],
        type_vocab=c["type_vocab_size"],
        groups=groups,
        act=c.get("hidden_act", "gelu"),
        layer_norm_eps=float(c.get("layer_norm_eps", 1e-12)),
    )


def _load_folder(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    config = json.loads((path / "config.json").read_text())
    spec_from_hf_config(config)  # unsupported architectures fail before any weights are read
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(path / "model.safetensors"))
    elif (path / "pytorch_model.bin").is_file():
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")
    return config, state


def _resolve(model_or_path: Any) -> tuple[dict[str, Any], dict[str, Tensor]]:
    if isinstance(model_or_path, torch.nn.Module):
        return model_or_path.config.to_dict(), model_or_path.state_dict()
    path = Path(model_or_path)
    if path.is_dir():
        return _load_folder(path)
    if path.exists() or str(model_or_path).startswith((".", "/")):
        raise FileNotFoundError(f"{model_or_path}: not a checkpoint folder (config.json + weights)")
    try:  # a hub id: let transformers find (and cache) it
        from transformers import AutoModel
    except ImportError as e:
        raise FileNotFoundError(f"{model_or_path!r} is no folder; loading a hub id needs `pip install arch_search[hf]`") from e
    with hub_errors(model_or_path):
        model = AutoModel.from_pretrained(str(model_or_path))
    return model.config.to_dict(), model.state_dict()


def from_hf(model_or_path: Any, dropout: float | None = None) -> tuple[Encoder, ArchSpec]:
    """Our encoder with the weights of an HF BERT / SqueezeBERT model, folder or hub id.

    A ``...ForSequenceClassification`` checkpoint brings its classifier as our task head.
    Dropout defaults to the checkpoint's ``hidden_dropout_prob``.
    """
    config, state = _resolve(model_or_path)
    spec = spec_from_hf_config(config)
    squeeze = config["model_type"] == "squeezebert"
    # strip the wrapper prefix of ...ForSequenceClassification ("bert." / "transformer.")
    prefix = next((p for p in ("bert.", "transformer.") if any(k.startswith(p) for k in state)), "")
    state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    head = state["classifier.weight"].shape[0] if "classifier.weight" in state else None

    p = config.get("hidden_dropout_prob", 0.1) if dropout is None else dropout
    model = build_model(spec, task_head=head, dropout=p, attention_dropout=config.get("attention_probs_dropout_prob", 0.1))
    ours = {}
    for name, tensor in model.state_dict().items():
        src = _hf_name(name, squeeze)
        if src not in state:
            raise KeyError(f"HF checkpoint has no {src!r} (for our {name!r})")
        ours[name] = state[src].reshape(tensor.shape)  # (C_out, C_in/G[, 1]) -> (G, C_out/G, C_in/G)
    model.load_state_dict(ours)
    return model, spec


def _hf_name(ours: str, squeeze: bool) -> str:
    """HF parameter name (without wrapper prefix) of our parameter ``ours``."""
    parts = ours.split(".")
    if parts[0] == "layers":  # layers.{i}.{module}.{weight|bias}
        i, module, leaf = parts[1], parts[2], parts[3]
        layer = f"encoder.layers.{i}" if squeeze else f"encoder.layer.{i}"
        return f"{layer}.{_LAYER_KEYS[module][int(squeeze)]}.{leaf}"
    if parts[0] == "head":
        return f"classifier.{parts[1]}"
    stem, leaf = ".".join(parts[:-1]), parts[-1]
    return f"{_EMBEDDING_KEYS[stem]}.{leaf}"


def to_hf(model: Encoder, spec: ArchSpec | None = None):
    """The equivalent ``transformers`` model: BERT when all dense, SqueezeBERT when each
    projection has one group count for all layers; raises ``ValueError`` otherwise (per-layer
    groups or channel shuffle have no HF equivalent)."""
    import transformers as tf

    spec = spec or model.spec
    uniform = spec.uniform_groups()
    if spec.uses_shuffle or uniform is None:
        raise ValueError(f"{spec.summary()}: per-layer groups or channel shuffle have no HF equivalent")
    squeeze = not spec.is_dense
    common = dict(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=spec.max_positions,
        type_vocab_size=spec.type_vocab,
        hidden_act=spec.act,
        layer_norm_eps=spec.layer_norm_eps,
        hidden_dropout_prob=model.embeddings.drop.p,
        attention_probs_dropout_prob=model.layers[0].attention_dropout,
        num_labels=model.num_labels or 2,
    )
    if squeeze:
        groups = {key: uniform[p] for p, key in _SQUEEZEBERT_GROUPS.items()}
        config = tf.SqueezeBertConfig(embedding_size=spec.hidden, **groups, **common)
        cls = tf.SqueezeBertForSequenceClassification if model.head is not None else tf.SqueezeBertModel
    else:
        config = tf.BertConfig(**common)
        cls = tf.BertForSequenceClassification if model.head is not None else tf.BertModel
    hf = cls(config).eval()
    prefix = ("transformer." if squeeze else "bert.") if model.head is not None else ""
    target = hf.state_dict()
    state = {}
    for name, tensor in model.state_dict().items():
        key = _hf_name(name, squeeze)
        key = key if key.startswith("classifier.") else prefix + key
        state[key] = tensor.reshape(target[key].shape).clone()
    missing = set(target) - set(state)
    if any(not k.endswith("position_ids") for k in missing):
        raise KeyError(f"no weights for HF parameters {sorted(missing)}")
    hf.load_state_dict(state, strict=False)
    return hf

