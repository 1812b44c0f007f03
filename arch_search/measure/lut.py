"""Latency lookup table: predict a design's latency from per-op timings on this machine.

A forward pass is the embeddings and pooler (the stem), plus per layer the six projections
(keyed by C_in, C_out, groups, shuffle) and the rest of the layer (attention, LayerNorms,
GELU, residual adds; keyed by hidden, heads, intermediate). Each entry is timed once through
the protocol's timing loop (``latency.time_calls``: threads, warm-up, rounds, inference mode;
the median of the rounds, ``Latency.from_samples``) at the target (batch, seq_len); a design's
latency is the sum of its entries (cf. ProxylessNAS's and FBNet's latency tables, Cai et al.,
2019; Wu et al., 2019). The table is cached per machine fingerprint, device and settings (on
``latency.device=cuda`` the ops run on the GPU, timed with CUDA events, and the table is the
GPU's: its name and CUDA version key it); when built, its error against measured latency on
held-out designs (MAPE) is reported.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from arch_search.cache import atomic_path, cache_key
from arch_search.measure.latency import Env, Latency, LatencyProtocol, compare_latency, time_calls
from arch_search.nn.model import Embeddings, GroupedLinear, build_model
from arch_search.measure.runtime import num_threads
from arch_search.design.spec import ArchSpec, shuffles

CACHE_VERSION = 2  # in the table's cache key: bump it when what an entry times or means changes
# (2: fp32 inference runs the projections through oneDNN, arch_search.nn.model)


def check_torch_fp32(protocol: LatencyProtocol) -> None:
    """ValueError unless ``protocol`` times fp32 in torch, what a table's entries hold."""
    if protocol.backend != "torch" or protocol.precision != "fp32":
        raise ValueError("a latency look-up table holds fp32 torch timings; use latency.backend=torch "
                         "latency.precision=fp32 with it (or search.latency_mode=measured)")


def _projection_key(cin: int, cout: int, groups: int, shuffle: bool) -> str:
    return f"proj:{cin}:{cout}:{groups}:{int(shuffles(groups, shuffle))}"


def _rest_key(hidden: int, heads: int, intermediate: int) -> str:
    return f"rest:{hidden}:{heads}:{intermediate}"


def _stem_key(spec: ArchSpec) -> str:
    return f"stem:{spec.hidden}:{spec.vocab}:{spec.max_positions}:{spec.type_vocab}"


def entries_of(spec: ArchSpec) -> list[str]:
    """The table entries whose sum is ``spec``'s predicted latency."""
    keys = [_stem_key(spec)]
    for i in range(spec.layers):
        keys.append(_rest_key(spec.hidden, spec.heads, spec.intermediate))
        for p, (g, shuffle) in spec.layer(i).items():
            keys.append(_projection_key(*spec.channels(p), g, shuffle))
    return keys


@dataclass
class LatencyLUT:
    table: dict[str, float]  # entry -> median ms
    env: Env
    seq_len: int
    batch: int
    mape: float | None = None  # held-out error when built, in percent

    def predict(self, spec: ArchSpec) -> float:
        """Predicted median latency (ms) of ``spec``; KeyError if an entry was not built."""
        return sum(self.table[k] for k in entries_of(spec))

    def latency(self, spec: ArchSpec) -> Latency:
        """The prediction as a ``Latency`` (p10 = p90 = median, CV 0: not a measurement)."""
        ms = self.predict(spec)
        return Latency(median_ms=ms, p10_ms=ms, p90_ms=ms, cv=0.0, env=self.env)

    # ---- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, specs: Iterable[ArchSpec], protocol: LatencyProtocol = LatencyProtocol()) -> LatencyLUT:
        """Time every entry the designs ``specs`` need, one at a time (``time_calls``; median ms).
        Torch fp32 timings: the protocol's backend and precision must be those."""
        check_torch_fp32(protocol)
        table: dict[str, float] = {}
        env = Env.current(protocol.threads, device=protocol.device)
        with num_threads(protocol.threads), torch.inference_mode():  # one thread setting for the build; ops built here
            for spec in specs:
                for key in entries_of(spec):
                    if key not in table:
                        op = cls._op(key, spec, protocol.seq_len, protocol.batch, protocol.device)
                        table[key] = Latency.from_samples(time_calls({key: op}, protocol)[key], env).median_ms
        return cls(table, env, protocol.seq_len, protocol.batch)

    @staticmethod
    def _op(key: str, spec: ArchSpec, T: int, B: int, device: str = "cpu") -> Callable[[], object]:
        """The entry ``key`` as a call on ``device``: its module and inputs, made on the CPU, moved there."""
        kind, *dims = key.split(":")
        if kind == "proj":
            cin, cout, g, shuffle = map(int, dims)
            layer = GroupedLinear(cin, cout, g, bool(shuffle)).to(device)
            x = torch.randn(B, T, cin).to(device)
            return lambda: layer(x)
        if kind == "rest":  # attention, two LayerNorms, GELU, two residual adds
            C, H, inner = map(int, dims)
            q, k, v = (torch.randn(B, H, T, C // H).to(device) for _ in range(3))
            x, h = torch.randn(B, T, C).to(device), torch.randn(B, T, inner).to(device)
            norm = torch.nn.LayerNorm(C).to(device)

            def rest():
                ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
                y = norm(ctx.add_(x))
                torch.ops.aten.gelu_(h)
                return norm(y + x)

            return rest
        stem_spec = spec.with_scale(layers=1)
        emb, pooler = Embeddings(stem_spec, 0.0).to(device), torch.nn.Linear(spec.hidden, spec.hidden).to(device)
        ids = torch.randint(0, spec.vocab, (B, T)).to(device)
        return lambda: torch.tanh(pooler(emb(ids, None)[:, 0]))

    def validate(self, specs: list[ArchSpec], threads: int = 1, warmup: int = 3, rounds: int = 10,
                 device: str = "cpu") -> float:
        """Mean absolute percentage error of the predictions against measured latency (the
        designs interleaved at the table's shape on the table's ``device``: ``warmup`` and
        ``rounds`` of their own, fewer than the table's entries need, since a design takes longer
        than an entry)."""
        protocol = LatencyProtocol(self.seq_len, self.batch, threads, warmup, rounds, device=device)
        comparison = compare_latency({i: build_model(s) for i, s in enumerate(specs)}, protocol)
        errors = [abs(self.predict(s) - comparison.latencies[i].median_ms) / comparison.latencies[i].median_ms
                  for i, s in enumerate(specs)]
        self.mape = 100 * statistics.fmean(errors)
        return self.mape

    # ---- cache ------------------------------------------------------------------------------------

    @staticmethod
    def cache_path(cache_dir: str | Path, protocol: LatencyProtocol) -> Path:
        """The table's file for this machine, device and protocol (and ``CACHE_VERSION``); the
        device is in the key only when not the CPU (a CPU table keeps its file)."""
        env = Env.current(protocol.threads, device=protocol.device)
        gpu = {} if env.device == "cpu" else {"device": env.device}  # "<GPU name>, CUDA <version>"
        key = {"env": [env.cpu, env.cores, env.threads, env.torch, env.machine], "seq_len": protocol.seq_len,
               "batch": protocol.batch, "rounds": protocol.rounds, "version": CACHE_VERSION, **gpu}
        return Path(cache_dir) / "lut" / f"lut-{cache_key(key, sort_keys=False)}.json"  # in this order (cache_key)

    def save(self, path: Path) -> None:
        """Write the table whole: workers saving at once each write a complete file."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"table": self.table, "env": vars(self.env), "seq_len": self.seq_len,
                                       "batch": self.batch, "mape": self.mape}, indent=1))

    @classmethod
    def load(cls, path: Path) -> LatencyLUT:
        d = json.loads(path.read_text())
        return cls(d["table"], Env(**d["env"]), d["seq_len"], d["batch"], d["mape"])


def lut_for(
    specs: list[ArchSpec], heldout_designs: list[ArchSpec], cache_dir: str | Path,
    protocol: LatencyProtocol = LatencyProtocol(), log: Callable[[str], None] = print,
) -> LatencyLUT:
    """The machine's table covering ``specs`` (every entry a design of the space can need):
    loaded from the cache, extended with missing entries, or built; validated on
    ``heldout_designs`` when anything new was timed."""
    check_torch_fp32(protocol)
    path = LatencyLUT.cache_path(cache_dir, protocol)
    lut = (LatencyLUT.load(path) if path.is_file()
           else LatencyLUT({}, Env.current(protocol.threads, device=protocol.device), protocol.seq_len, protocol.batch))
    missing = [s for s in specs if any(k not in lut.table for k in entries_of(s))]
    if missing or lut.mape is None:
        t0 = time.perf_counter()
        new = LatencyLUT.build(missing, protocol)
        lut.table.update(new.table)
        lut.validate(heldout_designs, threads=protocol.threads, device=protocol.device)
        lut.save(path)
        log(f"latency LUT: {len(lut.table)} entries, built in {time.perf_counter() - t0:.0f} s; "
            f"held-out MAPE {lut.mape:.1f}% over {len(heldout_designs)} designs ({path})")
    return lut

