"""A model at the numeric precision it is deployed in (``latency.precision``), and how far its
outputs move from fp32.

- ``fp32``: the model as it is (torch or onnxruntime).
- ``bf16``: torch only: a copy with bfloat16 weights and activations (oneDNN's bf16 kernels on
  CPUs with AVX512-BF16 or AMX; elsewhere emulated and slow). Outputs come back as float32.
- ``int8``: onnxruntime only: the fp32 ONNX graph quantised dynamically
  (``onnxruntime.quantization.quantize_dynamic``: int8 weights per output channel, activations
  quantised at run time per tensor). Per-channel weights halve the error of per-tensor ones on
  all-MiniLM-L6-v2 (relative L2 of the last hidden state on 64 SST-2 dev sentences: 0.15 vs
  0.32, development measurement). They need 2-D weights: the ONNX graph has one GEMM per group
  (``GroupedLinear._per_group``). Static quantisation (calibrated activation ranges) is not
  offered.

``precision_error`` compares a model's last hidden state at a precision against fp32 on real
inputs (relative L2 error over real tokens and mean cosine similarity per token).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

PRECISIONS = ("fp32", "bf16", "int8")
BACKEND_OF = {"bf16": "torch", "int8": "onnxruntime"}  # the runtime each lower precision needs


def check(precision: str, backend: str) -> None:
    """ValueError unless ``precision`` is known and runs on ``backend``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    needs = BACKEND_OF.get(precision)
    if needs is not None and backend != needs:
        raise ValueError(f"precision={precision} runs on latency.backend={needs}, not {backend}")


def bf16_copy(model: nn.Module) -> nn.Module:
    """A bfloat16 copy of ``model`` in eval mode (the original is untouched)."""
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def quantize_int8(path: str | Path, out: str | Path) -> Path:
    """``path``'s fp32 ONNX graph with int8 dynamic quantisation, written to ``out``."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice, once per model
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    return Path(out)


def hidden_states(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], precision: str,
                  workdir: str | Path) -> list[np.ndarray]:
    """``model``'s last hidden state (float32, (B, T, C)) on each batch (input_ids,
    attention_mask) at ``precision``; ONNX files go to ``workdir``."""
    batches = list(batches)
    if precision in ("fp32", "bf16"):
        run = bf16_copy(model) if precision == "bf16" else model.eval()
        with torch.inference_mode():
            return [run(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state.float().numpy()
                    for b in batches]
    from arch_search.onnx_export import export_onnx, ort_outputs, ort_session

    fp32 = export_onnx(model, Path(workdir) / "fp32.onnx", inputs=("input_ids", "attention_mask"))
    session = ort_session(quantize_int8(fp32, Path(workdir) / "int8.onnx"))
    return [ort_outputs(session, b["input_ids"], b["attention_mask"])["last_hidden_state"] for b in batches]


def precision_error(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], precision: str,
                    workdir: str | Path) -> dict[str, float]:
    """How far ``model``'s last hidden state at ``precision`` is from torch fp32 on ``batches``,
    over real tokens (attention_mask 1): ``rel_l2`` = ||low - fp32|| / ||fp32||, ``cosine`` =
    the mean cosine similarity of a token's vector, ``max_abs``."""
    batches = list(batches)
    ref = hidden_states(model, batches, "fp32", workdir)
    low = hidden_states(model, batches, precision, workdir)
    keep = [b["attention_mask"].bool().numpy() for b in batches]
    a = np.concatenate([r[k] for r, k in zip(ref, keep)]).astype(np.float64)  # (tokens, C)
    b = np.concatenate([x[k] for x, k in zip(low, keep)]).astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"rel_l2": float(np.linalg.norm(b - a) / np.linalg.norm(a)), "cosine": float(cosine.mean()),
            "max_abs": float(np.abs(b - a).max()), "tokens": int(len(a))}
