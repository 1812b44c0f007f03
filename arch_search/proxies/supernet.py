"""Supernet proxy: one weight-sharing network trained once, every design scored by inheritance.

The supernet is the dense proxy-scale encoder. A design is a set of block-diagonal masks on
its projection weights: with groups g, row r of a (C_out, C_in) weight keeps the columns of
its group, r // (C_out/g), or r % g after a channel shuffle (the rows ``inherit.output_rows``
assigns). For group counts that are powers of two the blocks nest: the blocks of g=8 sit
inside those of g=4 (cf. Once-for-All, Cai et al., 2020; BigNAS's sandwich rule, Yu et al.,
2020). Training samples the largest design (dense), the smallest (every projection at the
largest group count) and random ones at every step, and sums their losses. A design is
scored by building it standalone with the supernet's weights (``inherit_from_dense``) and
evaluating it: no training, and equal to the supernet's masked forward.

The design is an argument of ``forward`` (``torch.func.functional_call`` with the masked
weights): there is no "active subnet" state. The trained supernet is cached on disk, keyed by
the space, task, init, budget, seed and ``CACHE_VERSION``, and reused by every later trial and run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.func import functional_call
from tqdm.auto import tqdm

from arch_search.cache import atomic_path
from arch_search.inherit import inherit_from_dense, output_rows
from arch_search.model import Encoder, EncoderOutput
from arch_search.proxies.base import OnProgress, ProxyDiverged, ProxyResult, result_of
from arch_search.proxies.setup import ProxySetup
from arch_search.training import optimizer, task_loss
from arch_search.runtime import num_threads
from arch_search.spec import PROJECTIONS, ArchSpec
from arch_search.tokenizer import bucketed_batches

CACHE_VERSION = 1  # in the supernet's cache key: bump it when training or the saved weights change meaning


def block_mask(out_features: int, in_features: int, groups: int, shuffle: bool) -> torch.Tensor:
    """(C_out, C_in) 0/1 mask of the weights a grouped layer keeps of a dense one."""
    rows = output_rows(out_features, groups, shuffle)  # (G, C_out/G): rows of group g
    row_group = torch.empty(out_features, dtype=torch.long)
    row_group[rows.reshape(-1)] = torch.arange(groups).repeat_interleave(out_features // groups)
    col_group = torch.arange(in_features) // (in_features // groups)
    return (row_group[:, None] == col_group[None, :]).float()


class Supernet(torch.nn.Module):
    """A dense encoder whose forward takes the design: ``supernet(ids, mask, types, design=spec)``."""

    def __init__(self, dense: Encoder):
        super().__init__()
        if not dense.spec.is_dense:
            raise ValueError("the supernet's weights are a dense encoder")
        self.encoder = dense
        self._masks: dict[tuple[int, int, int, bool], torch.Tensor] = {}

    @property
    def spec(self) -> ArchSpec:
        return self.encoder.spec

    def _mask(self, out_f: int, in_f: int, g: int, shuffle: bool) -> torch.Tensor:
        key = (out_f, in_f, g, shuffle)
        if key not in self._masks:  # a cache of constants, the same for every design
            self._masks[key] = block_mask(out_f, in_f, g, shuffle)
        return self._masks[key]

    def weights(self, design: ArchSpec) -> dict[str, torch.Tensor]:
        """The encoder's parameters with each projection weight masked for ``design``."""
        params = dict(self.encoder.named_parameters())
        for i in range(design.layers):
            for p, (g, shuffle) in design.layer(i).items():
                if g == 1:
                    continue
                name = f"layers.{i}.{p}.weight"
                w = params[name]  # (1, C_out, C_in)
                params[name] = w * self._mask(w.shape[1], w.shape[2], g, shuffle and g > 1)
        return params

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, *, design: ArchSpec) -> EncoderOutput:
        return functional_call(self.encoder, self.weights(design), (input_ids, attention_mask, token_type_ids))

    def extract(self, design: ArchSpec) -> Encoder:
        """``design`` as a standalone (fast, grouped) encoder with the supernet's weights."""
        e = self.encoder
        return inherit_from_dense(
            design, e, task_head=e.num_labels, dropout=e.embeddings.drop.p, attention_dropout=e.layers[0].attention_dropout
        )


class SupernetProxy:
    """Score = the design's GLUE metric on the held-out slice, with weights inherited from a
    supernet trained once (``steps`` sandwich steps) over the grouping choices ``groups``
    (per projection type, all layers alike; ``per_layer`` samples each layer on its own)
    and, if ``shuffle``, shuffle on/off."""

    def __init__(
        self,
        setup: ProxySetup,
        groups: tuple[int, ...] = (1, 2, 4, 8, 16),
        shuffle: bool = False,
        per_layer: bool = False,
        steps: int = 1500,
        random_designs: int = 1,
        batch_size: int = 32,
        lr: float = 5e-5,
        warmup: float = 0.1,
        weight_decay: float = 0.01,
        eval_dev: bool = True,
        threads: int = 2,
        progress: bool = True,
    ):
        self.setup, self.groups, self.shuffle, self.per_layer = setup, tuple(sorted(groups)), shuffle, per_layer
        self.steps, self.random_designs, self.batch_size = steps, random_designs, batch_size
        self.lr, self.warmup, self.weight_decay = lr, warmup, weight_decay
        self.eval_dev, self.threads, self.progress = eval_dev, threads, progress
        self._supernet: Supernet | None = None

    # ---- the space the supernet covers ------------------------------------------------------

    def for_space(self, space) -> SupernetProxy:
        """This proxy over exactly ``space``'s choices (its group counts, shuffle, per-layer or
        not). A supernet shares weights across groupings at fixed dims, so a space that changes
        dims raises ``ValueError`` (use a proxy that trains each design: finetune or compressed)."""
        if space.changes_dims:
            raise ValueError(f"space {space.name} changes dims; the supernet covers groups and shuffle at fixed dims: "
                             "use proxy=finetune_scratch, finetune or compressed for it")
        groups = sorted({g for choices in space.groups.values() for g in choices})
        proxy = copy.copy(self)  # same settings and setup; its own (not yet trained) supernet
        proxy.groups, proxy.shuffle, proxy.per_layer, proxy._supernet = tuple(groups), True in space.shuffle, space.per_layer, None
        return proxy


    def _design(self, base: ArchSpec, pick) -> ArchSpec:
        groups, shuffle = {}, {}
        for p in PROJECTIONS:
            n = base.layers if self.per_layer else 1
            gs = [pick(p, "g", i) for i in range(n)]
            ss = [pick(p, "s", i) if self.shuffle else False for i in range(n)]
            groups[p], shuffle[p] = (gs if self.per_layer else gs[0]), (ss if self.per_layer else ss[0])
        return base.replace(groups=groups, shuffle=shuffle)

    def sandwich(self, rng: random.Random) -> list[ArchSpec]:
        """Largest, smallest and ``random_designs`` random designs at proxy scale."""
        base = self.setup.proxy_spec(ArchSpec.preset("bert_base"))
        largest = base
        smallest = self._design(base, lambda p, kind, i: self.groups[-1] if kind == "g" else self.shuffle)
        randoms = [
            self._design(base, lambda p, kind, i: rng.choice(self.groups) if kind == "g" else rng.random() < 0.5)
            for _ in range(self.random_designs)
        ]
        return [largest, smallest, *randoms]

    def covers(self, design: ArchSpec) -> bool:
        """Whether ``design`` (at proxy scale) is in the space the supernet was trained over."""
        ok_groups = all(g in self.groups for p in PROJECTIONS for g in design.groups[p])
        ok_layers = self.per_layer or design.uniform_groups() is not None
        ok_shuffle = self.shuffle or not design.uses_shuffle
        return ok_groups and ok_layers and ok_shuffle

    # ---- training (once) and cache ------------------------------------------------------------

    def cache_key(self) -> str:
        """16 hex digits hashing all the trained weights depend on, and ``CACHE_VERSION``."""
        s = self.setup
        key = {
            "space": {"groups": self.groups, "shuffle": self.shuffle, "per_layer": self.per_layer},
            "task": s.task, "init": s.init, "checkpoint": str(s.checkpoint), "scale": s.scale,
            "budget": {"steps": self.steps, "random_designs": self.random_designs, "batch_size": self.batch_size,
                       "lr": self.lr, "warmup": self.warmup, "weight_decay": self.weight_decay},
            "data": {"max_len": s.max_len, "heldout": s.heldout, "heldout_disjoint": s.heldout_disjoint,
                     "vocab_size": s.vocab_size},
            "seed": s.seed, "dropout": s.dropout, "version": CACHE_VERSION,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]

    @property
    def cache_path(self) -> Path:
        return Path(self.setup.cache_dir) / "supernets" / f"supernet-{self.cache_key()}.safetensors"

    @property
    def supernet(self) -> Supernet:
        """The trained supernet: from the cache if there, else trained now and cached."""
        if self._supernet is None:
            dense = self.setup.build(ArchSpec.preset("bert_base"))  # dense, pretrained or scratch
            path = self.cache_path
            if path.is_file():
                dense.load_state_dict(load_file(str(path)))
                self._supernet = Supernet(dense)
            else:
                self._supernet = Supernet(dense)
                with num_threads(self.threads):
                    seconds = self.train(self._supernet)
                with atomic_path(path) as tmp:  # workers training the same supernet each write a whole file
                    save_file({k: v.contiguous() for k, v in dense.state_dict().items()}, str(tmp),
                              metadata={"train_seconds": f"{seconds:.1f}", "key": self.cache_key()})
        return self._supernet

    def train(self, supernet: Supernet) -> float:
        """Sandwich training in place; returns seconds."""
        data, seed = self.setup.data, self.setup.seed
        task = data.task
        torch.manual_seed(seed)
        rng = random.Random(seed)
        model = supernet.encoder
        opt, sched = optimizer(model, self.lr, self.weight_decay, self.warmup, self.steps)
        batches = bucketed_batches(data.train, self.batch_size, seed, regression=task.is_regression)
        t0 = time.perf_counter()
        bar = tqdm(range(1, self.steps + 1), desc=f"supernet {task.name}", disable=not self.progress, leave=False)
        for step in bar:
            model.train()
            batch = next(batches)
            total = 0.0
            for design in self.sandwich(rng):
                logits = supernet(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], design=design).logits
                loss = task_loss(logits, batch["labels"], task)
                if not math.isfinite(loss.item()):
                    raise ProxyDiverged(f"supernet: non-finite loss at step {step} ({design.summary()})")
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{total:.3f}")
        return time.perf_counter() - t0

    # ---- the proxy ------------------------------------------------------------------------------

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult:
        design = self.setup.proxy_spec(spec)
        if not self.covers(design):
            raise ValueError(
                f"{design.summary()} is outside the supernet's space (groups {self.groups}, "
                f"shuffle {self.shuffle}, per_layer {self.per_layer}); use proxy=finetune"
            )
        supernet = self.supernet  # trains once, outside the timing below
        t0 = time.perf_counter()
        details = {"proxy": "supernet", "init": self.setup.init, "supernet_steps": self.steps,
                   "supernet": str(self.cache_path), "proxy_spec": design.to_dict()}
        with num_threads(self.threads):
            result = result_of(supernet.extract(design), self.setup.data, self.eval_dev, details)
        result.details["score_seconds"] = round(time.perf_counter() - t0, 2)
        return result
