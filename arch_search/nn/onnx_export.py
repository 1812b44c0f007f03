"""ONNX export of the encoder (opset 17, dynamic batch and sequence axes) and onnxruntime
sessions to run it (ONNX operator set 17, onnx.ai; onnxruntime's CPU execution provider).

Inputs are int64 (batch, sequence) tensors named as the forward arguments (``input_ids``,
then optionally ``attention_mask``, 1 = token, 0 = padding, and ``token_type_ids``); outputs
are ``last_hidden_state`` (batch, sequence, hidden) and, when the model has a task head,
``logits`` (batch, n_labels). Both axes of every input and output are dynamic.

The graph comes from ``torch.onnx.export`` (its TorchScript tracer, ``dynamo=False``: the
torch.export-based exporter needs ``onnxscript``, which this project does not install). The
trace runs the model in eval mode with autograd enabled, so ``GroupedLinear`` and ``Layer``
take their out-of-place path: the inference path writes a batched matmul through a strided
``out=`` view, which a tracer records as a fresh buffer, not as the matmul's output (the
graph would be wrong). Both paths compute the same numbers (``tests/test_model.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # onnxruntime is the optional extra `onnx`: imported when a session is made
    from onnxruntime import InferenceSession

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Graph(nn.Module):
    """The model with positional tensor inputs and a tuple of tensor outputs, as traced."""

    def __init__(self, model: nn.Module, inputs: Sequence[str], logits: bool):
        super().__init__()
        self.model, self.inputs, self.logits = model, tuple(inputs), logits

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        out = self.model(**dict(zip(self.inputs, tensors)))
        return (out.last_hidden_state, out.logits) if self.logits else (out.last_hidden_state,)


def example_inputs(inputs: Sequence[str], batch: int = 2, seq_len: int = 8) -> dict[str, Tensor]:
    """Trace inputs of shape (batch, seq_len): token ids 1, the last row padded after half its
    length (so no all-ones shortcut is traced), token types 0 then 1."""
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    mask[-1, seq_len // 2 :] = 0
    types = torch.zeros(batch, seq_len, dtype=torch.long)
    types[:, seq_len // 2 :] = 1
    make = {"input_ids": torch.ones(batch, seq_len, dtype=torch.long), "attention_mask": mask, "token_type_ids": types}
    return {name: make[name] for name in inputs}


def export_onnx(
    model: nn.Module,
    path: str | Path,
    opset: int = 17,
    inputs: Sequence[str] = INPUTS,
    example_shape: tuple[int, int] = (2, 8),
) -> Path:
    """Write ``model`` to ``path`` as ONNX with dynamic batch and sequence axes; returns the path.

    ``model``: our ``Encoder``, or any module whose forward takes ``input_ids=`` (and the other
    ``inputs`` by name) and returns an object with ``last_hidden_state`` (and ``logits``, used
    when not None), e.g. HF's ``BertModel`` and ``SqueezeBertModel``. ``inputs``: the graph's
    inputs, in order, ``input_ids`` first; leave out ``attention_mask`` for the no-padding
    graph (what latency measures). ``example_shape``: (batch, seq_len) of the trace; any other
    shape runs too. The model's train/eval mode is restored afterwards."""
    inputs = tuple(inputs)
    if not inputs or inputs[0] != "input_ids" or not set(inputs) <= set(INPUTS) or len(set(inputs)) < len(inputs):
        raise ValueError(f"inputs must start with input_ids and be drawn from {INPUTS}, got {inputs}")
    path = Path(path)
    example = example_inputs(inputs, *example_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.no_grad():
            logits = getattr(model(**example), "logits", None) is not None
        graph = _Graph(model, inputs, logits).eval()
        outputs = ("last_hidden_state", "logits") if logits else ("last_hidden_state",)
        axes = {name: {0: "batch", 1: "sequence"} for name in (*inputs, "last_hidden_state")}
        if logits:
            axes["logits"] = {0: "batch"}
        with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings():
            # The legacy exporter announces its own deprecation; the tracer warns about Python
            # values it freezes (none here changes with the input's shape: parity tests).
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message="The feature will be removed.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                graph, tuple(example.values()), str(path), dynamo=False, opset_version=opset,
                input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes, do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return path


def ort_session(path: str | Path, threads: int = 1, profile: str | Path | None = None) -> InferenceSession:
    """An onnxruntime ``InferenceSession`` on the CPU: ``threads`` intra-op threads, one
    inter-op thread, sequential execution, all graph optimisations, and no spinning of idle
    worker threads between runs (so sessions timed in turn do not steal each other's cores).
    ``profile``: a file prefix; onnxruntime then profiles every run (``end_profiling()``
    returns the JSON file's path)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_outputs(
    session: InferenceSession | str | Path,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    token_type_ids: Tensor | None = None,
    threads: int = 1,
) -> dict[str, np.ndarray]:
    """Run an exported graph (an ``InferenceSession``, or a path opened with ``threads``) on
    (batch, sequence) int64 inputs; returns its outputs by name. An input the graph takes but
    the call leaves out means what the encoder's ``None`` means: a mask of ones, token type 0.
    Passing an input the graph does not take is an error (padding would be ignored)."""
    if isinstance(session, (str, Path)):
        session = ort_session(session, threads)
    given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    names = [i.name for i in session.get_inputs()]
    extra = [k for k, v in given.items() if v is not None and k not in names]
    if extra:
        raise ValueError(f"the graph has no input {extra} (its inputs: {names})")
    defaults = {"attention_mask": torch.ones_like(input_ids), "token_type_ids": torch.zeros_like(input_ids)}
    feed = {k: (given[k] if given[k] is not None else defaults[k]).numpy() for k in names}
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


def ort_max_abs_diff(model: nn.Module, session: InferenceSession, feed: Mapping[str, Tensor]) -> dict[str, float]:
    """Max abs difference between ``model``'s outputs (eval, no autograd) and the session's,
    per session output, on ``feed`` (inputs by name, int64 (batch, sequence) tensors)."""
    theirs = ort_outputs(session, **feed)
    was_training = model.training
    with torch.inference_mode():
        ours = model.eval()(**feed)
    model.train(was_training)
    return {name: float(np.abs(getattr(ours, name).numpy() - value).max()) for name, value in theirs.items()}
