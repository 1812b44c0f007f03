"""Measured latency, on the CPU or a CUDA GPU, with a stated protocol, and interleaved A/B comparisons.

Protocol (``LatencyProtocol``, a frozen value passed whole: conf/latency builds it;
``measure_latency``): ``torch.set_num_threads(threads)`` for the measurement (the
previous value is restored), ``model.eval()``, ``torch.inference_mode()``, fixed seeded
token ids of shape (batch, seq_len) and no attention mask, ``warmup`` untimed forward passes,
then ``rounds`` timed ones with ``time.perf_counter``. Reported: median, p10, p90 (ms) and
the coefficient of variation (std / mean), with the environment fingerprint. The timing loop
itself is ``time_calls``, which the latency lookup table (``arch_search.measure.lut``) times with too.

Device: ``cpu`` (default), or ``cuda``: the models are moved to the GPU (``Module.to``, in
place) with their ids, and each timed forward pass is bracketed by CUDA events after a
``torch.cuda.synchronize()``, then synchronised again: the GPU's time from the call's start to
its last kernel, host launch gaps included (what batch-1 latency is made of on a GPU). Torch
only; the environment names the GPU and the CUDA version.

Backends: ``torch`` runs ``model(input_ids=ids)``. ``onnxruntime`` first exports each model
to ONNX (``arch_search.nn.onnx_export``: opset 17, input ``input_ids`` only, in a temporary
directory) and opens an onnxruntime CPU session with ``threads`` intra-op threads (sequential,
all graph optimisations); a forward pass is then ``session.run`` on the same ids as a numpy
array, under the same warm-up, rounds and interleaving. Export time is not timed.

Precision (``arch_search.measure.precision``): ``fp32`` (default); ``bf16`` times a bfloat16 copy in
torch (on the CPU or the GPU); ``int8`` times the ONNX graph after onnxruntime's dynamic int8
quantisation. The quantisation is not timed either; the environment records the precision.

Machines are noisy, so compare models *interleaved* (``compare_latency``: A B C A B C ...,
one forward each per round) and report ratios of medians, never absolute times across runs;
``format_evaluation`` shows a comparison beside each design's costs (the ``evaluate`` command).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from arch_search.checks import at_least
from arch_search.measure.runtime import PROXY_DEVICES, check_cuda, num_threads

if TYPE_CHECKING:  # the table reads their fields only
    from arch_search.design.spec import ArchSpec
    from arch_search.measure.cost import Cost


@dataclass(frozen=True)
class Env:
    """Where a latency was measured."""

    cpu: str
    cores: int
    threads: int
    torch: str
    python: str
    machine: str
    backend: str = "torch"  # what ran the forward passes: "torch" or "onnxruntime <version>"
    precision: str = "fp32"  # fp32 | bf16 (torch) | int8 (onnxruntime dynamic quantisation)
    device: str = "cpu"  # where the forward passes ran: "cpu", or the GPU: "<name>, CUDA <version>"

    @classmethod
    def current(cls, threads: int, backend: str = "torch", precision: str = "fp32", device: str = "cpu") -> Env:
        """This machine; ``device``: ``cpu`` or ``cuda`` (the current GPU, named)."""
        if backend == "onnxruntime":
            import onnxruntime

            backend = f"onnxruntime {onnxruntime.__version__}"
        if device != "cpu":
            device = f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            threads=threads,
            torch=torch.__version__,
            python=platform.python_version(),
            machine=platform.machine(),
            backend=backend,
            precision=precision,
            device=device,
        )

    def __str__(self) -> str:
        """``<cpu> | <cores> cores | <threads> thread(s) | torch <version>[ | backend][ | precision] | python
        <version> | <machine>``, led by ``<GPU>, CUDA <version> | `` when a GPU ran the passes."""
        runtime = ("" if self.backend == "torch" else f" | {self.backend}") + (
            "" if self.precision == "fp32" else f" | {self.precision}")
        gpu = "" if self.device == "cpu" else f"{self.device} | "
        return (
            f"{gpu}{self.cpu} | {self.cores} cores | {self.threads} thread(s) | torch {self.torch}{runtime}"
            f" | python {self.python} | {self.machine}"
        )


@dataclass(frozen=True)
class Latency:
    """Latency statistics in milliseconds over ``len(samples_ms)`` timed forward passes."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float  # std / mean of the samples
    env: Env
    samples_ms: tuple[float, ...] = field(repr=False, default=())

    @classmethod
    def from_samples(cls, samples_ms: list[float], env: Env) -> Latency:
        s = sorted(samples_ms)
        mean = statistics.fmean(s)
        std = statistics.pstdev(s) if len(s) > 1 else 0.0
        return cls(
            median_ms=statistics.median(s),
            p10_ms=_quantile(s, 0.10),
            p90_ms=_quantile(s, 0.90),
            cv=std / mean if mean else 0.0,
            env=env,
            samples_ms=tuple(samples_ms),
        )


@dataclass(frozen=True)
class Comparison:
    """Interleaved measurement of several models. ``speedup[name]`` = median latency of the
    baseline / median latency of ``name`` (> 1: faster than the baseline)."""

    latencies: dict[str, Latency]
    baseline: str

    @property
    def speedup(self) -> dict[str, float]:
        base = self.latencies[self.baseline].median_ms
        return {name: base / lat.median_ms for name, lat in self.latencies.items()}

    def ratio(self, slower: str, faster: str) -> float:
        """How many times faster ``faster`` is than ``slower`` (ratio of medians)."""
        return self.latencies[slower].median_ms / self.latencies[faster].median_ms


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _vocab_size(model: torch.nn.Module) -> int:
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.vocab
    config = getattr(model, "config", None)  # an HF model
    return getattr(config, "vocab_size", 1000)


BACKENDS = ("torch", "onnxruntime")
LATENCY_DEVICES = tuple(d for d in PROXY_DEVICES if d != "auto")  # latency.device: a study times one device, chosen


def _ids(model: torch.nn.Module, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """The protocol's seeded token ids, (batch, seq_len) int64."""
    return torch.randint(0, _vocab_size(model), (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def _runners(
    models: Mapping[str, torch.nn.Module], protocol: LatencyProtocol, onnx_dir: str | Path | None,
    cache: RunnerCache | None = None,
) -> dict[str, Callable[[], object]]:
    """One forward pass of each model, as a call with no arguments (backends, precisions and
    devices above; ``arch_search.measure.precision``). A model found in ``cache`` (the same object, the same
    protocol) reuses its call: no new bf16 copy, ONNX export or quantisation."""
    from arch_search.measure.precision import bf16_copy, quantize_int8

    p = protocol
    settings = (p.seq_len, p.batch, p.seed, p.threads, p.backend, p.precision, p.device)
    runners: dict[str, Callable[[], object]] = {}
    for name, m in models.items():
        hit = cache.get(m, settings) if cache is not None else None
        if hit is not None:
            runners[name] = hit
    todo = [(i, name, m) for i, (name, m) in enumerate(models.items()) if name not in runners]
    if p.backend == "torch":
        for _, name, m in todo:
            run = (bf16_copy(m) if p.precision == "bf16" else m.eval()).to(p.device)  # in place (a no-op on the CPU)
            runners[name] = partial(run, input_ids=_ids(m, p.seq_len, p.batch, p.seed).to(p.device))
    elif todo:
        from arch_search.nn.onnx_export import export_onnx, ort_session

        with tempfile.TemporaryDirectory(prefix="arch_search-onnx-") as tmp:  # a session keeps its own copy
            for i, name, m in todo:
                path = export_onnx(m, Path(onnx_dir or tmp) / f"{i}.onnx", inputs=("input_ids",))
                if p.precision == "int8":
                    path = quantize_int8(path, path.with_suffix(".int8.onnx"))
                session = ort_session(path, threads=p.threads)
                runners[name] = partial(session.run, None, {"input_ids": _ids(m, p.seq_len, p.batch, p.seed).numpy()})
    if cache is not None:
        for _, name, m in todo:
            cache.put(m, settings, runners[name])
    return {name: runners[name] for name in models}


@dataclass(frozen=True)
class _Prepared:
    model: torch.nn.Module  # held, so its id is not reused while cached
    settings: tuple
    call: Callable[[], object]


class RunnerCache:
    """Prepared forward passes (a bf16 copy, an ONNX session) kept between measurements, for a
    model timed again unchanged: the same object with the same settings."""

    def __init__(self):
        self._by_id: dict[int, _Prepared] = {}

    def get(self, model: torch.nn.Module, settings: tuple) -> Callable[[], object] | None:
        hit = self._by_id.get(id(model))
        return hit.call if hit is not None and hit.model is model and hit.settings == settings else None

    def put(self, model: torch.nn.Module, settings: tuple, call: Callable[[], object]) -> None:
        self._by_id[id(model)] = _Prepared(model, settings, call)

    def keep_only(self, *models: torch.nn.Module) -> None:
        """Forget every prepared model but ``models`` (and let the others be freed)."""
        self._by_id = {k: v for k, v in self._by_id.items() if any(v.model is m for m in models)}

    def __len__(self) -> int:
        return len(self._by_id)


def _check_every(every: Mapping[str, int] | None, names: Iterable[str]) -> dict[str, int]:
    every = dict(every or {})
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in every.values()) or set(every) - set(names):
        raise ValueError(f"every must map names of the timed calls to integers >= 1, got {every}")
    return every


@dataclass(frozen=True)
class LatencyProtocol:
    """How a latency is measured (conf/latency), passed whole: the input's shape (``batch``,
    ``seq_len``) and seeded ids (``seed``), ``threads``, ``warmup`` untimed rounds then
    ``rounds`` timed ones, the ``backend`` that runs the forward passes, the ``precision`` and
    the ``device`` they run on. The one place these settings, their defaults and their checks
    live; a bad value is a ``ValueError`` naming its ``latency.`` key, and ``device=cuda``
    where torch finds no GPU a ``DeviceUnavailable`` (a ``ValueError``), when built."""

    seq_len: int = 128
    batch: int = 1
    threads: int = 1
    warmup: int = 5
    rounds: int = 30
    seed: int = 0
    backend: str = "torch"  # "torch" | "onnxruntime"
    precision: str = "fp32"  # fp32 | bf16 (torch) | int8 (onnxruntime)
    device: str = "cpu"  # cpu | cuda (torch only; timed with CUDA events)

    def __post_init__(self):
        for key, lowest in (("seq_len", 1), ("batch", 1), ("threads", 1), ("warmup", 0), ("rounds", 1), ("seed", 0)):
            at_least(f"latency.{key}", getattr(self, key), lowest)
        if self.backend not in BACKENDS:
            raise ValueError(f"latency.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in LATENCY_DEVICES:
            raise ValueError(f"latency.device must be one of {LATENCY_DEVICES}, got {self.device!r}")
        if self.device == "cuda" and self.backend != "torch":
            raise ValueError(f"latency.device=cuda times torch only (onnxruntime runs on the CPU here), "
                             f"not latency.backend={self.backend}")
        from arch_search.measure.precision import check

        check(self.precision, self.backend)
        if self.device == "cuda":
            check_cuda("latency.device=cuda", instead="latency.device=cpu")

    def replace(self, **changes) -> LatencyProtocol:
        """The same protocol with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def compare(self, models: Mapping[str, torch.nn.Module], baseline: str | None = None,
                onnx_dir: str | Path | None = None, cache: RunnerCache | None = None,
                every: Mapping[str, int] | None = None) -> Comparison:
        """``compare_latency(models, self, ...)``."""
        return compare_latency(models, self, baseline=baseline, onnx_dir=onnx_dir, cache=cache, every=every)

    def measure(self, model: torch.nn.Module) -> Latency:
        """``measure_latency(model, self)``."""
        return measure_latency(model, self)

    def fingerprint(self) -> dict[str, object]:
        """The settings that make latencies comparable between studies (warm-up, rounds and the
        ids' seed change the noise, not what is measured). ``precision`` only when not fp32,
        ``device`` only when not the CPU, and ``gemm: onednn`` when torch times the projections
        through oneDNN on the CPU (``arch_search.nn.model``): a study made before any of them
        existed timed fp32 on the CPU through MKL's GEMMs (much slower on some CPUs), so its
        fingerprint, without the keys, still matches a run like it, and not one that times otherwise."""
        from arch_search.nn.model import onednn_linear

        on_cpu = self.device == "cpu"
        return {"backend": self.backend, "threads": self.threads, "seq_len": self.seq_len, "batch": self.batch,
                **({} if self.precision == "fp32" else {"precision": self.precision}),
                **({"gemm": "onednn"} if self.backend == "torch" and on_cpu and onednn_linear else {}),
                **({} if on_cpu else {"device": self.device})}


def time_calls(calls: Mapping[str, Callable[[], object]], protocol: LatencyProtocol = LatencyProtocol(),
               every: Mapping[str, int] | None = None) -> dict[str, list[float]]:
    """The protocol's timing loop, the only one: under ``num_threads(protocol.threads)`` and
    ``torch.inference_mode()``, ``protocol.warmup`` untimed rounds, then ``protocol.rounds``
    timed ones; each round runs every call once, in turn (interleaved). ``every``: a call named
    there runs only in every k-th round (rounds 0, k, 2k, ... of the warm-up and of the timed
    ones), so it gives ceil(rounds / k) samples. Returns each call's samples, in ms
    (``time.perf_counter``, or CUDA events on ``device=cuda``: ``_clock``), in round order
    (``Latency.from_samples`` gives the statistics)."""
    every = _check_every(every, calls)
    clock = _clock(protocol.device)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    with num_threads(protocol.threads), torch.inference_mode():
        for i in range(protocol.warmup):
            for name, run in calls.items():
                if i % every.get(name, 1) == 0:
                    run()
        for i in range(protocol.rounds):
            for name, run in calls.items():
                if i % every.get(name, 1) == 0:
                    samples[name].append(clock(run))
    return samples


def _clock(device: str) -> Callable[[Callable[[], object]], float]:
    """How ``time_calls`` times one call, in ms. ``cpu``: ``time.perf_counter`` around it.
    ``cuda``: ``torch.cuda.synchronize()`` (nothing queued), a CUDA event recorded before the call
    and one after it on the current stream, ``synchronize()`` again, and the events' elapsed time:
    every kernel the call queued, and the gaps where the GPU waited for the host to launch them."""
    if device == "cpu":
        def on_cpu(run: Callable[[], object]) -> float:
            t0 = time.perf_counter()
            run()
            return (time.perf_counter() - t0) * 1e3

        return on_cpu
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def on_gpu(run: Callable[[], object]) -> float:
        torch.cuda.synchronize()
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)

    return on_gpu


def measure_latency(model: torch.nn.Module, protocol: LatencyProtocol = LatencyProtocol()) -> Latency:
    """Latency of one forward pass of ``model`` under ``protocol`` (above)."""
    return compare_latency({"model": model}, protocol).latencies["model"]


def compare_latency(
    models: Mapping[str, torch.nn.Module],
    protocol: LatencyProtocol = LatencyProtocol(),
    baseline: str | None = None,
    onnx_dir: str | Path | None = None,
    cache: RunnerCache | None = None,
    every: Mapping[str, int] | None = None,
) -> Comparison:
    """Measure several models interleaved (one forward each per round, in turn), under one
    ``protocol``; ``baseline`` (default: the first) is the reference of ``speedup``. With the
    onnxruntime backend each model is exported to ONNX first, the i-th model to
    ``<onnx_dir>/<i>.onnx`` (without ``onnx_dir``, to a temporary directory).
    ``cache``: a ``RunnerCache`` the caller keeps between calls; a model timed again unchanged (the same
    object, the same protocol) reuses what was prepared for it (a bf16 copy, an ONNX session).
    A model changed in place between calls must not be timed through the same cache.
    ``every``: a model named there is timed only in every k-th round (``time_calls``).
    With ``protocol.device=cuda`` the models are moved to the GPU, in place (``Module.to``)."""
    if not models:
        raise ValueError("compare_latency needs at least one model")
    _check_every(every, models)  # before any export
    runners = _runners(models, protocol, onnx_dir, cache)
    samples = time_calls(runners, protocol, every)
    env = Env.current(protocol.threads, protocol.backend, protocol.precision, protocol.device)
    latencies = {name: Latency.from_samples(s, env) for name, s in samples.items()}
    return Comparison(latencies, baseline or next(iter(models)))


def format_evaluation(designs: Mapping[str, ArchSpec], costs: Mapping[str, Cost], comparison: Comparison) -> str:
    """The ``evaluate`` command's table: each design's costs and measured latency, and its speedup."""
    env = next(iter(comparison.latencies.values())).env
    head = f"{'design':<16} {'spec':<44} {'params':>8} {'GMACs':>7} {'GFLOPs':>7} {'median ms':>10} {'p10-p90 ms':>15} {'CV':>6} {'speedup':>8}"
    rows = [head, "-" * len(head)]
    for name, spec in designs.items():
        c, lat = costs[name], comparison.latencies[name]
        rows.append(
            f"{name:<16} {spec.summary():<44} {c.params / 1e6:>7.1f}M {c.gmacs:>7.2f} {c.gflops:>7.2f} "
            f"{lat.median_ms:>10.1f} {f'{lat.p10_ms:.1f}-{lat.p90_ms:.1f}':>15} {lat.cv:>6.3f} "
            f"{comparison.speedup[name]:>7.2f}x"
        )
    n = len(next(iter(comparison.latencies.values())).samples_ms)
    c0 = next(iter(costs.values()))
    rows += [
        "",
        f"batch {c0.batch}, seq {c0.seq_len}; GMACs/GFLOPs: encoder matmuls (FLOPs = 2 x MACs); "
        f"speedup vs the dense reference, {n} interleaved rounds",
        f"env: {env}",
    ]
    return "\n".join(rows)
