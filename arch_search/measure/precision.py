"""A model at the numeric precision it is deployed in (``latency.precision``), and how far its
outputs move from fp32.

- ``fp32``: the model as it is (torch or onnxruntime).
- ``bf16``: torch only: a copy with bfloat16 weights and activations (oneDNN's bf16 kernels on
  CPUs with AVX512-BF16 or AMX; elsewhere emulated and slow; on a GPU, ``latency.device=cuda``,
  cuBLAS's, native from Ampere on). Outputs come back as float32.
- ``int8``: onnxruntime only: the fp32 ONNX graph quantised dynamically
  (``onnxruntime.quantization.quantize_dynamic``: int8 weights per output channel, activations
  quantised at run time per tensor). Per-channel weights halve the error of per-tensor ones on
  all-MiniLM-L6-v2 (relative L2 of the last hidden state on 64 SST-2 dev sentences: 0.15 vs
  0.32, development measurement). They need 2-D weights: the ONNX graph has one GEMM per group
  (``GroupedLinear._per_group``).

Static quantisation (``quantize_int8(..., calibration=feeds)``: activation ranges calibrated
once, QDQ graph) is here to be measured against dynamic, not offered as a latency setting:
on the committed benchmark it is slower and less accurate than dynamic
(``experiments/speedup/precision.md``).

``precision_outputs`` runs a model at a precision; ``precision_error`` compares its last hidden
state against fp32 on real inputs (relative L2 error over real tokens and mean cosine
similarity per token).
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


STATIC_OPS = ("MatMul", "Gemm", "Conv")  # what static quantisation quantises: the weighted ops, as dynamic does


def quantize_int8(path: str | Path, out: str | Path,
                  calibration: Iterable[Mapping[str, Tensor | np.ndarray]] | None = None) -> Path:
    """``path``'s fp32 ONNX graph quantised to int8, written to ``out``. Without ``calibration``:
    dynamic (the ``latency.precision=int8`` graph). With it, static: feeds (input name ->
    (batch, sequence) int64 array) whose activation ranges (min/max) fix each quantised op's
    input scale once; QDQ format, uint8 activations, int8 weights per output channel."""
    import logging

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice, once per model
    try:
        if calibration is None:
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True)
        else:
            feeds = [{k: np.asarray(v) for k, v in feed.items()} for feed in calibration]
            if not feeds:
                raise ValueError("static quantisation needs at least one calibration feed")

            class Feeds(CalibrationDataReader):
                def __init__(self):
                    self.left = iter(feeds)

                def get_next(self):
                    return next(self.left, None)

            quantize_static(str(path), str(out), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(STATIC_OPS))
    finally:
        root.setLevel(level)
    return Path(out)


def precision_outputs(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], precision: str,
                      workdir: str | Path,
                      calibration: Iterable[Mapping[str, Tensor]] | None = None) -> list[dict[str, np.ndarray]]:
    """``model``'s outputs on each batch (input_ids, attention_mask) at ``precision``, as
    float32 arrays by name: ``last_hidden_state`` (B, T, C) and, with a task head, ``logits``
    (B, n). ``calibration`` (int8 only): batches to calibrate static quantisation on (see
    ``quantize_int8``); default dynamic. ONNX files go to ``workdir``."""
    batches = list(batches)
    check(precision, "torch" if precision in ("fp32", "bf16") else "onnxruntime")
    if calibration is not None and precision != "int8":
        raise ValueError(f"calibration is for static int8 quantisation, not precision={precision}")
    if precision in ("fp32", "bf16"):
        run = bf16_copy(model) if precision == "bf16" else model.eval()
        outs = []
        with torch.inference_mode():
            for b in batches:
                out = run(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
                got = {"last_hidden_state": out.last_hidden_state.float().numpy()}
                if out.logits is not None:
                    got["logits"] = out.logits.float().numpy()
                outs.append(got)
        return outs
    from arch_search.nn.onnx_export import export_onnx, ort_outputs, ort_session

    names = ("input_ids", "attention_mask")
    fp32 = export_onnx(model, Path(workdir) / "fp32.onnx", inputs=names)
    feeds = None if calibration is None else [{k: b[k].numpy() for k in names} for b in calibration]
    session = ort_session(quantize_int8(fp32, Path(workdir) / "int8.onnx", feeds))
    return [ort_outputs(session, b["input_ids"], b["attention_mask"]) for b in batches]


def output_error(ref: list[dict[str, np.ndarray]], low: list[dict[str, np.ndarray]],
                 masks: Iterable[Tensor]) -> dict[str, float]:
    """How far ``low``'s last hidden states are from ``ref``'s (``precision_outputs`` of the same
    batches), over real tokens (``masks``: each batch's attention_mask, 1 = token):
    ``rel_l2`` = ||low - ref|| / ||ref||, ``cosine`` = the mean cosine similarity of a token's
    vector, ``max_abs``, ``tokens``."""
    keep = [m.bool().numpy() for m in masks]
    a = np.concatenate([r["last_hidden_state"][k] for r, k in zip(ref, keep)]).astype(np.float64)  # (tokens, C)
    b = np.concatenate([x["last_hidden_state"][k] for x, k in zip(low, keep)]).astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"rel_l2": float(np.linalg.norm(b - a) / np.linalg.norm(a)), "cosine": float(cosine.mean()),
            "max_abs": float(np.abs(b - a).max()), "tokens": int(len(a))}


def precision_error(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], precision: str,
                    workdir: str | Path, calibration: Iterable[Mapping[str, Tensor]] | None = None) -> dict[str, float]:
    """``output_error`` of ``model`` at ``precision`` (``calibration``: as in
    ``precision_outputs``) against torch fp32 on ``batches``."""
    batches = list(batches)
    ref = precision_outputs(model, batches, "fp32", workdir)
    low = precision_outputs(model, batches, precision, workdir, calibration)
    return output_error(ref, low, [b["attention_mask"] for b in batches])
