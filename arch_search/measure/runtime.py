"""Where and how torch runs: the intra-op thread pool (``num_threads``, used by latency
measurement, the latency lookup table and the proxies' training), and the device the proxies
train and score on (``resolve_device``, ``autocast``, ``to_device``; ``check_cuda``, which
``latency.device=cuda`` checks with too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch

PROXY_DEVICES = ("auto", "cpu", "cuda")  # proxy_setup.device: where the proxies train and score


class num_threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, the previous value restored after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


class DeviceUnavailable(ValueError):
    """A device was asked for that this machine does not have (the CLI prints ``error: ...``)."""


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when this machine has it, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``:
    that GPU, or ``DeviceUnavailable`` when there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        check_cuda(f"device {name!r}", instead="auto or cpu")
        return torch.device(name)
    raise ValueError(f"device must be one of {PROXY_DEVICES} (or cuda:N), got {name!r}")


def check_cuda(what: str, instead: str) -> None:
    """``DeviceUnavailable`` (``<what>: torch finds no CUDA GPU ...; use <instead>``) unless torch
    finds a CUDA GPU."""
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"{what}: torch finds no CUDA GPU on this machine "
                                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use {instead}")


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on a CUDA device that supports it (Ampere and later) when ``enabled``;
    otherwise nothing changes (fp32, and always fp32 on the CPU)."""
    if precision_on(device, enabled) == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_on(device: torch.device, bf16: bool) -> str:
    """What ``bf16_autocast(device, bf16)`` computes in: ``bf16`` or ``fp32``."""
    return "bf16" if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's tensors on ``device`` (the same tensors when already there)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def batches_on(batches: Iterable[Mapping[str, torch.Tensor]], device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """Each batch of ``batches`` on ``device``, lazily."""
    return (to_device(b, device) for b in batches)


def device_of(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters are (data follows the model)."""
    return next(model.parameters()).device
