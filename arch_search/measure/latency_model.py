"""How a search prices a design's latency (``conf/search/latency_mode``): ``MeasuredLatency``
times each design on the machine, interleaved with the dense reference in one measurement
(the protocol of ``conf/latency``); ``LUTLatency`` predicts it from the machine's per-operator
look-up table (``arch_search.measure.lut``), built once for the space. Either way the search re-measures
its front at the end (``Search.finish``).

Both follow ``LatencyModel``: ``prepare(space, seed)`` once before the trials, then
``time(spec) -> Timing`` per design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from arch_search.checks import at_least
from arch_search.measure.latency import Comparison, Latency, LatencyProtocol, RunnerCache
from arch_search.nn.model import build_model
from arch_search.design.spec import ArchSpec, Reference

class Measure(Protocol):
    """What times models: a ``LatencyProtocol`` (conf/latency), or a test's stand-in."""

    def compare(self, models: Mapping[str, Any], baseline: str | None = None, onnx_dir: Any = None,
                cache: RunnerCache | None = None, every: Mapping[str, int] | None = None) -> Comparison: ...


@dataclass(frozen=True)
class Timing:
    """A design's latency, and the dense reference's from the same measurement (None when
    predicted: a table does not drift)."""

    design: Latency
    reference: Latency | None = None


class LatencyModel(Protocol):
    source: str  # "measured" | "lut": what the study's fingerprint and each trial record

    def prepare(self, space: Any, seed: int) -> None: ...

    def time(self, spec: ArchSpec) -> Timing: ...


class MeasuredLatency:
    """Each design timed on this machine beside the space's dense reference (BERT-base
    pattern), interleaved round by round, so the search can correct for drift.
    ``reference_every``: the reference runs only in every k-th round of a design's measurement
    (ceil(rounds / k) samples for its median, the drift factor's denominator): at k = 3 the
    reference, the slowest model, costs a third of the time; its median is noisier by about
    sqrt(k). Measured at k = 3 (experiments/search_recovers_squeezebert, AMD EPYC): 13.0 s a
    design instead of 18.6, the drift factor's sampling error 0.55% from 10 samples."""

    source = "measured"

    def __init__(self, protocol: Measure, reference_every: int = 3):
        self.protocol, self.reference_every = protocol, at_least("search.latency_mode.reference_every", reference_every, 1)
        self.reference: ArchSpec | None = None
        self._reference_model = None
        self._prepared = RunnerCache()  # the reference's prepared runner (bf16 copy, ONNX session), made once

    def prepare(self, space: Any, seed: int) -> None:
        self.reference = space.references()[Reference.DENSE]

    def time(self, spec: ArchSpec) -> Timing:
        if self.reference is None:
            raise RuntimeError("MeasuredLatency.prepare(space, seed) first: it needs the space's dense reference")
        if self._reference_model is None:
            self._reference_model = build_model(self.reference)
        models = {"reference": self._reference_model}
        if spec.hash != self.reference.hash:
            models["design"] = build_model(spec)
        self._prepared.keep_only(self._reference_model)  # the designs' go
        every = {"reference": self.reference_every} if "design" in models else None
        latencies = self.protocol.compare(models, baseline="reference", cache=self._prepared, every=every).latencies
        return Timing(latencies.get("design", latencies["reference"]), latencies["reference"])


class LUTLatency:
    """Predicted from the machine's look-up table of per-operator timings (``lut_for``: loaded
    from ``cache_dir`` or built for every entry the space can need, and validated on ``heldout_designs``
    random designs of the space when anything new was timed). Deterministic: every run on this
    machine prices a design the same. Torch timings only."""

    source = "lut"

    def __init__(self, cache_dir: str | Path, protocol: LatencyProtocol, heldout_designs: int):
        from arch_search.measure.lut import check_torch_fp32

        check_torch_fp32(protocol)  # before the table is built, in trial 0
        self.cache_dir, self.protocol = cache_dir, protocol
        self.heldout_designs = at_least("search.latency_mode.heldout_designs", heldout_designs, 1)
        self.lut = None

    def prepare(self, space: Any, seed: int) -> None:
        from arch_search.measure.lut import lut_for

        self.lut = lut_for(space.covering_specs(), space.random_specs(self.heldout_designs, seed), self.cache_dir,
                           self.protocol)

    def time(self, spec: ArchSpec) -> Timing:
        if self.lut is None:
            raise RuntimeError("LUTLatency.prepare(space, seed) first: it builds or loads the table")
        return Timing(self.lut.latency(spec))
