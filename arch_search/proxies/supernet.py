"""Supernet proxy: one weight-sharing network trained once, every design scored in seconds.

The supernet is a dense proxy-scale encoder. A design is a set of block-diagonal masks on its
projection weights: with groups g, row r of a (C_out, C_in) weight keeps the columns of its
group, r // (C_out/g), or r % g after a channel shuffle (the rows ``inherit.output_rows``
assigns). For group counts that divide each other the blocks nest: those of g=8 sit inside
those of g=4.

The distilled recipe (the default; Once-for-All and BigNAS, Cai et al. 2020 / Yu et al. 2020;
DynaBERT, Hou et al. 2020):

1. start from the **task teacher** (the dense checkpoint fine-tuned on the task, cached and
   shared with the compressed proxy: ``arch_search.proxies.teacher``);
2. optionally (``permute=True``; off by default) **permute** its channels once for every group
   count (``surgery.nested_permuted``: each split refines the last, so one channel order
   serves every design; the same function). Measured on 24 designs x 3 seeds
   (``experiments/proxy_supernet``), the supernet ranked designs better without it (Kendall tau
   against the compressed proxy 0.68 vs 0.54, their 90% intervals overlapping; SNR 3.79 vs
   2.68), so it is not the default;
3. train with the **sandwich rule**: at every step the largest design (dense), the smallest
   (every projection at the largest count) and ``random_designs`` random designs of the space,
   their gradients summed. How a random design is drawn is ``sampling``: ``"levels"`` (the
   default) draws how many projection types are grouped, uniform over 1-6, then which, then
   each one's count among those above 1 (per layer when the space is per layer), so every
   complexity level is trained as often (as AttentiveNAS's FLOPs-uniform sampler does for
   FLOPs); ``"uniform"`` draws every choice uniformly, which grouped exactly one projection in
   0.15% of draws and left the designs near dense almost untrained (measured:
   experiments/proxy_supernet); each with **in-place distillation** from the (permuted, frozen)
   teacher: ``kd_weight`` x its logits (temperature ``temperature``) + (1 - ``kd_weight``) x the
   task loss + ``hidden_weight`` x the scale-free hidden-state loss of ``surgery.hidden_loss``.
   Train rows only: the held-out and dev rows are never seen.

``teacher``, ``permute``, ``distill`` and ``sandwich`` switch these parts off (ablations;
``teacher=False`` is the plain supernet: the proxy setup's init, the task loss only).

A design is scored by building it standalone with the supernet's weights (``extract``: equal
to the masked forward, tested, and faster) and one forward pass over the held-out rows: the
gold label's mean log-likelihood (``score="log_likelihood"``), the same after temperature
scaling (``"calibrated_log_likelihood"``), minus the mean KL to the teacher (``"kl"``), or the
task's metric (``"metric"``); all four are in the details.

The design is an argument of ``forward`` (``torch.func.functional_call`` with the masked
weights): there is no "active subnet" state. The trained supernet is cached on disk, keyed by
everything its weights depend on and ``CACHE_VERSION``, written atomically and trained by one
worker while the others wait for it.
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.func import functional_call

from arch_search.checks import at_least
from arch_search.progress import progress_bar
from arch_search.cache import atomic_path, cache_key, exclusive
from arch_search.proxies.surgery import hidden_loss, nested_permuted
from arch_search.nn.inherit import block_mask, inherit_from_dense
from arch_search.tasks.metrics import glue_metric
from arch_search.nn.model import Encoder, EncoderOutput
from arch_search.proxies.base import OnProgress, ProxyDiverged, ProxyResult
from arch_search.proxies.setup import ProxySetup
from arch_search.proxies.teacher import TaskTeacher
from arch_search.measure.runtime import device_of, num_threads, to_device
from arch_search.design.space import leveled
from arch_search.design.spec import PROJECTIONS, ArchSpec
from arch_search.tasks.tokenizer import bucketed_batches
from arch_search.tasks.training import (calibrated_log_likelihood, kd_loss, kl_to, log_likelihood, logits_of, optimizer,
                                  predictions, task_loss)

CACHE_VERSION = 2  # in the supernet's cache key: bump it when training or the saved weights change meaning
SCORES = ("log_likelihood", "calibrated_log_likelihood", "kl", "metric")
SAMPLINGS = ("levels", "uniform")  # how the sandwich draws its random designs (SupernetProxy.sampling)


class Supernet(torch.nn.Module):
    """A dense encoder whose forward takes the design: ``supernet(ids, mask, types, design=spec)``."""

    def __init__(self, dense: Encoder):
        super().__init__()
        if not dense.spec.is_dense:
            raise ValueError("the supernet's weights are a dense encoder")
        self.encoder = dense
        self._masks: dict[tuple[int, int, int, bool, torch.device], torch.Tensor] = {}

    @property
    def spec(self) -> ArchSpec:
        return self.encoder.spec

    def _mask(self, out_f: int, in_f: int, g: int, shuffle: bool, device: torch.device) -> torch.Tensor:
        key = (out_f, in_f, g, shuffle, device)
        if key not in self._masks:  # a cache of constants, the same for every design
            self._masks[key] = block_mask(out_f, in_f, g, shuffle).to(device)
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
                params[name] = w * self._mask(w.shape[1], w.shape[2], g, shuffle, w.device)  # shuffle as it acts (spec.layer)
        return params

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, *, design: ArchSpec) -> EncoderOutput:
        return functional_call(self.encoder, self.weights(design), (input_ids, attention_mask, token_type_ids))

    def extract(self, design: ArchSpec) -> Encoder:
        """``design`` as a standalone (fast, grouped) encoder with the supernet's weights."""
        e = self.encoder
        return inherit_from_dense(
            design, e, task_head=e.num_labels, dropout=e.embeddings.drop.p, attention_dropout=e.layers[0].attention_dropout
        )


def _with_hidden(run, layers) -> tuple[EncoderOutput, list[torch.Tensor]]:
    """``run()``'s output and each of ``layers``' outputs (B, T, C) during it, in order."""
    hidden: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda m, a, y: hidden.append(y)) for layer in layers]
    try:
        out = run()
    finally:
        for h in handles:
            h.remove()
    return out, hidden


class SupernetProxy:
    """Score = a design's held-out score with the weights of a supernet trained once
    (``steps`` sandwich steps) over the grouping choices ``groups`` (per projection type, all
    layers alike; ``per_layer`` samples each layer on its own) and, if ``shuffle``, shuffle
    on/off. ``seed``: of the supernet's training (designs drawn, batch order, dropout); default
    the setup's. The teacher and the held-out rows stay the setup's, so another ``seed`` is
    another draw of the same proxy (its noise)."""

    # the settings that change its score (the study fingerprint, arch_search.study.fingerprint);
    # all but ``score`` change the trained supernet too, and its cache key holds them (``cache_key``)
    SCORED = ("groups", "shuffle", "per_layer", "teacher", "permute", "distill", "sandwich", "sampling", "steps",
              "random_designs", "batch_size", "lr", "warmup", "weight_decay", "kd_weight", "temperature",
              "hidden_weight", "teacher_steps", "teacher_lr", "score", "seed")

    def __init__(
        self,
        setup: ProxySetup,
        groups: tuple[int, ...] = (1, 2, 4, 8, 16),
        shuffle: bool = False,
        per_layer: bool = False,
        teacher: bool = True,
        permute: bool = False,
        distill: bool = True,
        sandwich: bool = True,
        sampling: str = "levels",
        steps: int = 400,
        random_designs: int = 2,
        batch_size: int = 32,
        lr: float = 3e-4,
        warmup: float = 0.1,
        weight_decay: float = 0.01,
        kd_weight: float = 0.9,
        temperature: float = 2.0,
        hidden_weight: float = 1.0,
        teacher_steps: int = 1200,
        teacher_lr: float = 5e-5,
        score: str = "calibrated_log_likelihood",
        eval_dev: bool = True,
        threads: int = 2,
        progress: bool = True,
        seed: int | None = None,
    ):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if teacher and setup.init != "pretrained":
            raise ValueError("the distilled supernet starts from the task teacher, a fine-tuned pretrained checkpoint: "
                             "use proxy_setup=pretrained (or proxy.teacher=false for the plain supernet)")
        if not teacher and (permute or distill):
            raise ValueError("permute and distill need the teacher (proxy.teacher=true)")
        if score == "kl" and not teacher:
            raise ValueError("score=kl is the KL to the teacher: it needs proxy.teacher=true")
        self.setup, self.groups, self.shuffle, self.per_layer = setup, tuple(sorted(groups)), shuffle, per_layer
        self.use_teacher, self.permute, self.distill, self.sandwich_rule = teacher, permute, distill, sandwich
        self.sampling = sampling
        self.steps, self.batch_size = at_least("proxy.steps", steps, 1), at_least("proxy.batch_size", batch_size, 1)
        self.random_designs = random_designs
        self.lr, self.warmup, self.weight_decay = lr, warmup, weight_decay
        self.kd_weight, self.temperature, self.hidden_weight = kd_weight, temperature, hidden_weight
        self.score, self.eval_dev, self.threads, self.progress = score, eval_dev, at_least("proxy.threads", threads, 1), progress
        self.seed = setup.seed if seed is None else seed
        self.teacher = TaskTeacher(setup, teacher_steps, teacher_lr, batch_size, threads, progress) if teacher else None
        self.train_seconds: float | None = None  # of the training this process did or the cache recorded
        self._supernet: Supernet | None = None
        self._teacher_logits: dict[str, torch.Tensor] = {}

    # ---- the space the supernet covers ------------------------------------------------------

    def for_space(self, space) -> SupernetProxy:
        """This proxy over exactly ``space``'s choices (its group counts, shuffle, per-layer or
        not). A supernet shares weights across groupings at fixed dims, so a space that changes
        dims raises ``ValueError`` (use a proxy that trains each design: finetune or compressed)."""
        if space.changes_dims:
            raise ValueError(f"space {space.name} changes dims; the supernet covers groups and shuffle at fixed dims: "
                             "use proxy=finetune_scratch, finetune or compressed for it")
        groups = sorted({g for choices in space.groups.values() for g in choices})
        proxy = copy.copy(self)  # same settings, setup and teacher; its own (not yet trained) supernet
        proxy.groups, proxy.shuffle, proxy.per_layer = tuple(groups), True in space.shuffle, space.per_layer
        proxy._supernet, proxy._teacher_logits, proxy.train_seconds = None, {}, None
        return proxy

    def _design(self, base: ArchSpec, pick) -> ArchSpec:
        groups, shuffle = {}, {}
        for p in PROJECTIONS:
            n = base.layers if self.per_layer else 1
            gs = [pick(p, "g", i) for i in range(n)]
            ss = [pick(p, "s", i) if self.shuffle else False for i in range(n)]
            groups[p], shuffle[p] = (gs if self.per_layer else gs[0]), (ss if self.per_layer else ss[0])
        return base.replace(groups=groups, shuffle=shuffle)

    def _leveled(self, base: ArchSpec, rng: random.Random) -> ArchSpec:
        """A random design by complexity level: in each layer (or once, for all layers alike)
        ``leveled`` (k ~ uniform{1..6} projection types grouped, which ones uniform, each one's
        count uniform over the counts above 1), and a grouped one's shuffle a coin flip if the
        space has shuffle."""
        layers = []
        for _ in range(base.layers if self.per_layer else 1):
            layers.append({p: (g, g > 1 and self.shuffle and rng.random() < 0.5)
                           for p, g in leveled(rng, {p: self.groups for p in PROJECTIONS})})
        return self._design(base, lambda p, kind, i: layers[i][p][0 if kind == "g" else 1])

    @property
    def designs_per_step(self) -> int:
        return self.random_designs + 2

    def draw(self, rng: random.Random, base: ArchSpec | None = None) -> ArchSpec:
        """One random design of the space at proxy scale (``base``: the dense one, if the caller
        has it), by the ``sampling`` rule."""
        base = base or self.setup.proxy_spec(ArchSpec.preset("bert_base"))
        if self.sampling == "levels":
            return self._leveled(base, rng)
        return self._design(base, lambda p, kind, i: rng.choice(self.groups) if kind == "g" else rng.random() < 0.5)

    def sandwich(self, rng: random.Random) -> list[ArchSpec]:
        """The designs of one training step at proxy scale: largest, smallest and
        ``random_designs`` random ones (``draw``); without the sandwich rule, as many random ones."""
        base = self.setup.proxy_spec(ArchSpec.preset("bert_base"))
        if not self.sandwich_rule:
            return [self.draw(rng, base) for _ in range(self.designs_per_step)]
        smallest = self._design(base, lambda p, kind, i: self.groups[-1] if kind == "g" else self.shuffle)
        return [base, smallest, *[self.draw(rng, base) for _ in range(self.random_designs)]]

    def covers(self, design: ArchSpec) -> bool:
        """Whether ``design`` (at proxy scale) is in the space the supernet was trained over."""
        ok_groups = all(g in self.groups for p in PROJECTIONS for g in design.groups[p])
        ok_layers = self.per_layer or design.uniform_groups() is not None
        ok_shuffle = self.shuffle or not design.uses_shuffle
        return ok_groups and ok_layers and ok_shuffle

    # ---- training (once) and cache ------------------------------------------------------------

    def cache_key(self) -> str:
        """16 hex digits hashing all the trained weights depend on (``SCORED`` but ``score``, the
        setup's ``SCORED``; laid out as before the declarations: cached files are named by it)
        and ``CACHE_VERSION``."""
        s = self.setup
        key = {
            "space": {"groups": self.groups, "shuffle": self.shuffle, "per_layer": self.per_layer},
            "task": s.task, "init": s.init, "checkpoint": Path(str(s.checkpoint)).name if s.checkpoint else None,
            "scale": s.scale, "teacher": self.teacher.key() if self.teacher else None,
            "recipe": {"permute": self.permute, "distill": self.distill, "sandwich": self.sandwich_rule, "sampling": self.sampling,
                       "kd_weight": self.kd_weight, "temperature": self.temperature, "hidden_weight": self.hidden_weight},
            "budget": {"steps": self.steps, "random_designs": self.random_designs, "batch_size": self.batch_size,
                       "lr": self.lr, "warmup": self.warmup, "weight_decay": self.weight_decay},
            "data": {"max_len": s.max_len, "heldout": s.heldout, "heldout_disjoint": s.heldout_disjoint,
                     "vocab_size": s.vocab_size},
            "setup_seed": s.seed, "seed": self.seed, "dropout": s.dropout, "version": CACHE_VERSION,
        }
        return cache_key(key)

    @property
    def cache_path(self) -> Path:
        return Path(self.setup.cache_dir) / "supernets" / f"supernet-{self.cache_key()}.safetensors"

    @property
    def supernet(self) -> Supernet:
        """The trained supernet: from the cache if there, else trained now and cached (one
        worker trains, any other that needs the same one waits for it and reads it)."""
        if self._supernet is None:
            path = self.cache_path
            with exclusive(path.with_suffix(".lock")):
                if not path.is_file():
                    dense, target = self._start()
                    with num_threads(self.threads), self.setup.autocast():
                        seconds = self.train(Supernet(dense), target)
                    with atomic_path(path) as tmp:  # a reader sees no file or a whole one (stored from the CPU: loads on any device)
                        save_file({k: v.detach().cpu().contiguous() for k, v in dense.state_dict().items()}, str(tmp),
                                  metadata={"train_seconds": f"{seconds:.1f}", "key": self.cache_key()})
            dense = self._skeleton()
            dense.load_state_dict(load_file(str(path)))
            dense = dense.to(self.setup.device)
            with safe_open(str(path), "pt") as f:
                self.train_seconds = float((f.metadata() or {}).get("train_seconds", "nan"))
            self._supernet = Supernet(dense.eval())
        return self._supernet

    def _skeleton(self) -> Encoder:
        """A dense encoder of the supernet's shape (with the task head), to load weights into."""
        if self.teacher is not None:
            return copy.deepcopy(self.teacher.model)  # on the CPU
        return self.setup.build(ArchSpec.preset("bert_base"))

    def _start(self) -> tuple[Encoder, Encoder | None]:
        """(the supernet's initial weights, the distillation target in the same channel order,
        or None without distillation), on the setup's device."""
        if self.teacher is None:
            return self.setup.build(ArchSpec.preset("bert_base")), None  # dense, pretrained or scratch
        device = self.setup.device
        if self.permute:  # on the CPU copy, then moved
            teacher = nested_permuted(self.teacher.model, self.groups).eval().to(device)
        else:
            teacher = self.teacher.on(device)
        return copy.deepcopy(teacher), teacher if self.distill else None

    def step_loss(self, supernet: Supernet, design: ArchSpec, batch: dict[str, torch.Tensor],
                  target: tuple[torch.Tensor, list[torch.Tensor]] | None) -> torch.Tensor:
        """One design's training loss on ``batch``: the task loss, or with in-place
        distillation from ``target`` (the teacher's logits and hidden states on the batch)."""
        task = self.setup.data.task
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        if target is None:
            return task_loss(supernet(ids, mask, types, design=design).logits, batch["labels"], task)
        out, hidden = _with_hidden(lambda: supernet(ids, mask, types, design=design), supernet.encoder.layers)
        logits_t, hidden_t = target
        loss = self.kd_weight * kd_loss(out.logits, logits_t, task, self.temperature)
        loss = loss + (1 - self.kd_weight) * task_loss(out.logits, batch["labels"], task)
        return loss + self.hidden_weight * hidden_loss(hidden, hidden_t, mask)

    def train(self, supernet: Supernet, teacher: Encoder | None = None) -> float:
        """Sandwich training in place, with in-place distillation from ``teacher`` (in the
        supernet's channel order) if given; returns seconds."""
        data, seed = self.setup.data, self.seed
        torch.manual_seed(seed)
        rng = random.Random(seed)
        model = supernet.encoder
        opt, sched = optimizer(model, self.lr, self.weight_decay, self.warmup, self.steps)
        batches = bucketed_batches(data.train, self.batch_size, seed, regression=data.task.is_regression)
        t0, device = time.perf_counter(), device_of(model)
        bar = progress_bar(range(1, self.steps + 1), enabled=self.progress, desc=f"supernet {data.task.name}", leave=False)
        for step in bar:
            model.train()
            batch = to_device(next(batches), device)
            target = None
            if teacher is not None:
                with torch.no_grad():
                    out, hidden = _with_hidden(lambda: teacher(batch["input_ids"], batch["attention_mask"],
                                                               batch["token_type_ids"]), teacher.layers)
                target = (out.logits, hidden)
            total = 0.0
            for design in self.sandwich(rng):
                loss = self.step_loss(supernet, design, batch, target)
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

    def _teacher_logits_on(self, split: str) -> torch.Tensor:
        if split not in self._teacher_logits:
            data = self.setup.data
            self._teacher_logits[split] = logits_of(self.teacher.on(self.setup.device), getattr(data, split),
                                                    data.task.is_regression)
        return self._teacher_logits[split]

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult:
        design = self.setup.proxy_spec(spec)
        if not self.covers(design):
            raise ValueError(
                f"{design.summary()} is outside the supernet's space (groups {self.groups}, "
                f"shuffle {self.shuffle}, per_layer {self.per_layer}); use proxy=finetune"
            )
        supernet = self.supernet  # trains once, outside the timing below
        data, task = self.setup.data, self.setup.data.task
        if self.teacher is not None and len(data.heldout):
            self._teacher_logits_on("heldout")  # once per proxy, outside the timing too
        t0 = time.perf_counter()
        with num_threads(self.threads), self.setup.autocast():
            model = supernet.extract(design).eval()
            heldout_metrics: dict[str, float] = {}
            if len(data.heldout):
                logits = logits_of(model, data.heldout, task.is_regression)
                heldout_metrics = glue_metric(task.name, predictions(logits, task.is_regression), list(data.heldout.labels))
                heldout_metrics["log_likelihood"] = log_likelihood(logits, data.heldout.labels, task)
                heldout_metrics["calibrated_log_likelihood"] = calibrated_log_likelihood(logits, data.heldout.labels, task)
                if self.teacher is not None:
                    heldout_metrics["kl"] = kl_to(self._teacher_logits_on("heldout"), logits, task)
            score_seconds = time.perf_counter() - t0
            dev = None
            if self.eval_dev:
                dev_logits = logits_of(model, data.dev, task.is_regression)
                dev = glue_metric(task.name, predictions(dev_logits, task.is_regression), list(data.dev.labels))
        value = {"log_likelihood": heldout_metrics.get("log_likelihood"), "metric": heldout_metrics.get(task.metric),
                 "calibrated_log_likelihood": heldout_metrics.get("calibrated_log_likelihood"),
                 "kl": -heldout_metrics["kl"] if "kl" in heldout_metrics else None}[self.score]
        details = {"proxy": "supernet", "init": "teacher" if self.teacher else self.setup.init,
                   "device": str(self.setup.device), "precision": self.setup.precision,
                   "supernet_steps": self.steps, "supernet": str(self.cache_path), "proxy_spec": design.to_dict(),
                   "heldout": heldout_metrics, "score_seconds": round(score_seconds, 2),
                   "seconds": round(time.perf_counter() - t0, 2)}
        return ProxyResult(score=math.nan if value is None else value,
                           metric=task.metric if self.score == "metric" else self.score, dev=dev, details=details,
                           model=model, tokenizer=data.tokenizer, labels=data.task.label_names)
