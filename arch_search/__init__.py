"""arch_search: neural architecture exploration for efficient NLP encoders.

SqueezeBERT's grouped convolutions (Iandola et al., 2020) as a search space: ArchSpec says
which position-wise layers are grouped, ``build_model`` builds it, ``count_cost`` counts it,
``measure_latency`` times it (in torch or onnxruntime), ``from_hf``/``to_hf`` move weights to
and from HF, ``export_onnx`` writes it as ONNX.
"""

from arch_search.cost import Cost, closed_form_macs, count_cost
from arch_search.glue import glue_metric, load_glue
from arch_search.hf import from_hf, to_hf
from arch_search.latency import Comparison, Env, Latency, compare_latency, measure_latency
from arch_search.model import Encoder, EncoderOutput, GroupedLinear, build_model
from arch_search.onnx_export import export_onnx, ort_session
from arch_search.spec import PROJECTIONS, ArchSpec

__all__ = [
    "PROJECTIONS",
    "ArchSpec",
    "Comparison",
    "Cost",
    "Encoder",
    "EncoderOutput",
    "Env",
    "GroupedLinear",
    "Latency",
    "build_model",
    "closed_form_macs",
    "compare_latency",
    "count_cost",
    "export_onnx",
    "from_hf",
    "glue_metric",
    "load_glue",
    "measure_latency",
    "ort_session",
    "to_hf",
]
