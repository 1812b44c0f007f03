"""Compressed proxy: each design is carved out of the dense model fine-tuned on the task (the
teacher), healed, fine-tuned with the teacher's logits, and scored on held-out train rows.

Per design (``arch_search.proxies.surgery``): permute the teacher's channels for the design's blocks,
take the block-diagonal slices, refit them by least squares on calibration text, distil the
hidden states from the permuted teacher on the task's train text, then fine-tune on the task
with logit distillation (TinyBERT's task-specific stage, Jiao et al., 2020). The teacher is
fine-tuned once per task and setting and cached on disk (``arch_search.proxies.teacher``:
workers and runs share it).

``start="supernet"`` (the confirmation's option, ``confirm.start``): each design starts from
the search's distilled supernet instead (``SupernetProxy``: its weights for the design,
already distilled from the teacher), so permute, refit and distil are skipped and only the
fine-tune runs: about 0.57x the seconds, but Kendall tau 0.08 against the teacher start over 24
designs (experiments/proxy_supernet, variant ``from-supernet``): it keeps the supernet's
ranking rather than checking it, so it is not the default.

Every design sees the same calibration rows, the same batches in the same order and the same
seeds (common random numbers): differences between designs are paired, and the teacher's
logits on those batches are computed once per proxy and reused by every design's fine-tune.
The score is the mean log-probability of the gold label on the held-out rows (minus the
squared error for regression), continuous and so less noisy than accuracy; accuracy (the task's metric) on the
held-out rows and dev metrics are reported beside it.
"""

from __future__ import annotations

import time

import torch

from arch_search.checks import at_least
from arch_search.proxies.surgery import distill, permuted, refit
from arch_search.nn.inherit import inherit_from_dense
from arch_search.nn.model import Encoder
from arch_search.proxies.base import OnProgress, ProxyResult, result_of
from arch_search.proxies.setup import ProxySetup
from arch_search.proxies.supernet import SupernetProxy
from arch_search.tasks.training import gold_log_likelihood
from arch_search.proxies.finetune import FinetuneProxy
from arch_search.proxies.teacher import TaskTeacher
from arch_search.measure.runtime import batches_on, num_threads, to_device
from arch_search.design.spec import ArchSpec
from arch_search.tasks.tokenizer import Encoded, bucketed_batches, eval_batches

class CompressedProxy:
    """Score = mean log-likelihood of the gold label (``score="log_likelihood"``) or the task's
    metric (``score="metric"``) on the held-out rows after compress -> heal -> fine-tune.
    ``permute``, ``refit`` and ``distill_steps=0`` switch the three healing steps (ablations).
    ``start="supernet"`` with ``supernet`` (a ``SupernetProxy``): start each design from the
    supernet's weights for it, then fine-tune (no compress, no heal)."""

    # the settings that change its score (the study fingerprint, arch_search.study.fingerprint;
    # ``supernet`` is the search's, which its own fingerprint holds)
    SCORED = ("teacher_steps", "teacher_lr", "permute", "refit", "calibration", "ridge", "distill_steps", "distill_lr",
              "steps", "lr", "kd_weight", "temperature", "batch_size", "score", "seed", "start")

    def __init__(
        self,
        setup: ProxySetup,
        teacher_steps: int = 1200,
        teacher_lr: float = 5e-5,
        permute: bool = True,
        refit: bool = True,
        calibration: int = 256,
        ridge: float = 1e-2,
        distill_steps: int = 200,
        distill_lr: float = 1e-3,
        steps: int = 200,
        lr: float = 2e-4,
        kd_weight: float = 0.9,
        temperature: float = 2.0,
        batch_size: int = 32,
        score: str = "log_likelihood",
        eval_dev: bool = True,
        threads: int = 2,
        progress: bool = True,
        seed: int | None = None,
        start: str = "teacher",
        supernet: SupernetProxy | None = None,
    ):
        """``seed``: of the per-design training (head init, batch order, dropout); default the
        setup's seed. The teacher, the held-out split and the calibration rows stay the setup's,
        so another ``seed`` is another draw of the same proxy (its noise)."""
        if setup.init != "pretrained":
            raise ValueError("the compressed proxy compresses a pretrained dense checkpoint: use proxy_setup=pretrained")
        if score not in ("log_likelihood", "metric"):
            raise ValueError(f"score must be log_likelihood or metric, got {score!r}")
        if start not in ("teacher", "supernet"):
            raise ValueError(f"start must be teacher or supernet, got {start!r}")
        if start == "supernet" and not isinstance(supernet, SupernetProxy):
            raise ValueError("start=supernet starts each design from the search's supernet: it needs proxy=supernet")
        self.start, self.start_from = start, supernet if start == "supernet" else None
        self.setup, self.permute, self.refit, self.calibration, self.ridge = setup, permute, refit, calibration, ridge
        self.teacher_steps, self.teacher_lr = at_least("proxy.teacher_steps", teacher_steps, 1), teacher_lr
        self.distill_steps = at_least("proxy.distill_steps", distill_steps, 0)
        self.distill_lr, self.kd_weight, self.temperature = distill_lr, kd_weight, temperature
        self.batch_size, self.threads = at_least("proxy.batch_size", batch_size, 1), at_least("proxy.threads", threads, 1)
        self.score, self.eval_dev, self.progress = score, eval_dev, progress
        self.seed = setup.seed if seed is None else seed
        self.finetune = FinetuneProxy(setup, steps=steps, batch_size=batch_size, lr=lr, eval_every=steps + 1,
                                      eval_dev=eval_dev, threads=threads, progress=progress, seed=self.seed)
        self.task_teacher = TaskTeacher(setup, teacher_steps, teacher_lr, batch_size, threads, progress)
        self._teacher_logits: list[torch.Tensor] | None = None

    @property
    def teacher(self) -> Encoder:
        """The dense checkpoint fine-tuned on the task (``teacher_steps``): cached, else trained now."""
        return self.task_teacher.model

    def teacher_logits(self) -> list[torch.Tensor]:
        """The teacher's logits on the fine-tune's batches, computed once (the batches are the
        same for every design of this seed) and reused: the teacher no longer runs at each step
        of each design's fine-tune. A design's permuted teacher computes the same function
        (to float rounding), so the plain teacher's logits serve every design."""
        if self._teacher_logits is None:
            self._teacher_logits = self.finetune.teacher_logits(self.task_teacher.on(self.setup.device))
        return self._teacher_logits

    # ---- one design ------------------------------------------------------------------------------

    def compress(self, spec: ArchSpec) -> tuple[Encoder, Encoder, dict]:
        """(student, the permuted teacher it was cut from, timings) for ``spec`` at proxy scale,
        after the healing steps switched on (before the task fine-tune), both on the setup's
        device. The permutation and the cut run on the CPU copy of the teacher."""
        design, data, seed, device = self.setup.proxy_spec(spec), self.setup.data, self.seed, self.setup.device
        teacher, seconds = self.task_teacher.on(device), {}
        if self.start_from is not None:  # the supernet's weights, distilled already: nothing to heal
            t0 = time.perf_counter()
            torch.manual_seed(seed)
            student = self.start_from.supernet.extract(design).train()
            seconds["extract"] = time.perf_counter() - t0
            return student, teacher, seconds  # logits are the same in any channel order: the plain teacher
        t0 = time.perf_counter()
        base = permuted(self.teacher, design).to(device) if self.permute and not design.is_dense else teacher
        seconds["permute"] = time.perf_counter() - t0
        torch.manual_seed(seed)
        p = self.setup.dropout
        student = inherit_from_dense(design, base, task_head=data.task.num_labels, dropout=p, attention_dropout=p)
        t0 = time.perf_counter()
        if self.refit and not design.is_dense:
            rows = list(range(min(self.calibration, len(data.train))))
            calib = [to_device(b, device) for _, b in eval_batches(_subset(data.train, rows), self.batch_size)]
            refit(student, base, calib, ridge=self.ridge)
        seconds["refit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self.distill_steps and not design.is_dense:
            torch.manual_seed(seed)
            batches = batches_on(bucketed_batches(data.train, self.batch_size, seed + 1), device)  # the train text, labels unused
            distill(student, base, batches, self.distill_steps, lr=self.distill_lr)
        seconds["distill"] = time.perf_counter() - t0
        return student, base, seconds

    def teacher_result(self) -> ProxyResult:
        """The task teacher itself scored as ``evaluate`` scores a design, with no compression,
        healing or fine-tune: what the dense model a user already has scores (the healed dense
        design is fine-tuned once more and scores below it)."""
        with num_threads(self.threads), self.setup.autocast():
            teacher, data = self.task_teacher.on(self.setup.device), self.setup.data
            result = result_of(teacher, data, True, {"proxy": "compressed", "design": "the task teacher"})
            if self.score == "metric":
                return result
            return ProxyResult(score=gold_log_likelihood(teacher, data.heldout, data.task), metric="log_likelihood",
                               dev=result.dev, details=result.details)

    def for_space(self, space) -> CompressedProxy:
        """Itself, for any space: it compresses each design on its own."""
        return self

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult:
        with num_threads(self.threads), self.setup.autocast():
            student, _, seconds = self.compress(spec)
            t0 = time.perf_counter()
            self.finetune.train(student, report, teacher_logits=self.teacher_logits(), kd_weight=self.kd_weight,
                                temperature=self.temperature)
            seconds["finetune"] = time.perf_counter() - t0
            data = self.setup.data
            details = {"proxy": "compressed", "init": "pretrained", "start": self.start, "steps": self.finetune.steps,
                       "device": str(self.setup.device), "precision": self.setup.precision,
                       "distill_steps": self.distill_steps, "permute": self.permute, "refit": self.refit,
                       "seconds": {k: round(v, 1) for k, v in seconds.items()},
                       "proxy_spec": self.setup.proxy_spec(spec).to_dict()}
            result = result_of(student, data, self.eval_dev, details)
            if self.score == "metric":
                return result
            loglik = gold_log_likelihood(student, data.heldout, data.task)
            details = {**result.details, "heldout": {**result.details["heldout"], "log_likelihood": loglik}}
            return ProxyResult(score=loglik, metric="log_likelihood", dev=result.dev, details=details,
                               model=result.model, tokenizer=result.tokenizer, labels=result.labels)


def _subset(enc: Encoded, rows: list[int]) -> Encoded:
    return Encoded(tuple(enc.input_ids[i] for i in rows), tuple(enc.token_type_ids[i] for i in rows),
                   tuple(enc.labels[i] for i in rows))
