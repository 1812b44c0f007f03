"""arch_search: neural architecture exploration for efficient NLP encoders.

SqueezeBERT's grouped convolutions (Iandola et al., 2020) as a search space: ArchSpec says
which position-wise layers are grouped, ``build_model`` builds it, ``count_cost`` counts it,
``measure_latency`` times it (in torch or onnxruntime), ``from_hf``/``to_hf`` move weights to
and from HF, ``export_onnx`` writes it as ONNX.

The names below are imported on first use (PEP 562), so that a command that only reads
results (``report``, ``dashboard``) does not load torch.
"""

from __future__ import annotations

import importlib

_WHERE = {  # public name -> the module that defines it
    "Cost": "cost", "closed_form_macs": "cost", "count_cost": "cost",
    "load_glue": "glue",
    "from_hf": "hf", "to_hf": "hf",
    "Comparison": "latency", "Env": "latency", "Latency": "latency", "compare_latency": "latency",
    "measure_latency": "latency",
    "glue_metric": "metrics",
    "Encoder": "model", "EncoderOutput": "model", "GroupedLinear": "model", "build_model": "model",
    "export_onnx": "onnx_export", "ort_session": "onnx_export",
    "PROJECTIONS": "spec", "ArchSpec": "spec",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'arch_search' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"arch_search.{_WHERE[name]}"), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
