"""arch_search: neural architecture exploration for efficient NLP encoders.

SqueezeBERT's grouped convolutions (Iandola et al., 2020) as a search space: ArchSpec says
which position-wise layers are grouped, ``build_model`` builds it, ``count_cost`` counts it,
``measure_latency`` times it (in torch or onnxruntime), ``from_hf``/``to_hf`` move weights to
and from HF, ``export_onnx`` writes it as ONNX.

The names below are imported on first use (PEP 562), so that a command that only reads
results (``report``, ``dashboard``) does not load torch.

Layout, in the order data flows (a package imports only those before it): ``design`` (spec,
space) -> ``nn`` (the encoder, weights) -> ``measure`` (costs, latency) -> ``tasks`` (GLUE data,
training) -> ``proxies`` (accuracy scores) -> ``study`` (the Optuna search, its confirmation,
storage, trial records, the front, the run's tables) -> ``app`` (CLI, report, export, dashboard).
Beneath them all, modules any of them use: ``stats`` (rank correlations, seed noise, paired
differences), ``tables`` (CSV and Markdown), ``checks``, ``cache``, ``progress``, ``resources``.
"""

from __future__ import annotations

import importlib

_WHERE = {  # public name -> the module that defines it
    "Cost": "measure.cost", "closed_form_macs": "measure.cost", "count_cost": "measure.cost",
    "load_glue": "tasks.glue",
    "from_hf": "nn.hf", "to_hf": "nn.hf",
    "Comparison": "measure.latency", "Env": "measure.latency", "Latency": "measure.latency",
    "compare_latency": "measure.latency", "measure_latency": "measure.latency", "LatencyProtocol": "measure.latency",
    "glue_metric": "tasks.metrics",
    "Encoder": "nn.model", "EncoderOutput": "nn.model", "GroupedLinear": "nn.model", "build_model": "nn.model",
    "export_onnx": "nn.onnx_export", "ort_session": "nn.onnx_export",
    "PROJECTIONS": "design.spec", "ArchSpec": "design.spec",
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
