"""Finetune proxy: train the design at proxy scale for a few hundred steps, score it.

Fine-tuning as in BERT (Devlin et al., 2019, Sec. 4): AdamW, linear warm-up and decay,
gradient clipping at 1.0; the proxy model comes from ``ProxySetup`` (scale and init).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from arch_search.checks import at_least
from arch_search.progress import progress_bar
from arch_search.nn.model import Encoder
from arch_search.proxies.base import OnProgress, ProxyResult, result_of
from arch_search.proxies.setup import ProxySetup
from arch_search.measure.runtime import device_of, num_threads, to_device
from arch_search.design.spec import ArchSpec
from arch_search.tasks.tokenizer import bucketed_batches
from arch_search.tasks.training import descend, kd_loss, optimizer, score, task_loss


class FinetuneProxy:
    """Score = the task's GLUE metric on a held-out slice of train after ``steps`` steps of
    fine-tuning the proxy model that ``setup`` builds."""

    # the settings that change its score (the study fingerprint, arch_search.study.fingerprint;
    # the others change speed or what is shown)
    SCORED = ("steps", "lr", "batch_size", "warmup", "weight_decay", "seed")

    def __init__(
        self,
        setup: ProxySetup,
        *,
        steps: int,
        lr: float,
        eval_every: int,
        batch_size: int = 32,
        warmup: float = 0.1,
        weight_decay: float = 0.01,
        eval_dev: bool = True,
        threads: int = 2,
        progress: bool = True,
        seed: int | None = None,
    ):
        """``steps``, ``lr`` and ``eval_every`` have no default: conf/proxy/finetune.yaml and
        finetune_scratch.yaml set them (a pretrained and a from-scratch design want different
        budgets). ``seed``: of the model's init and the training (data order, dropout); default the
        setup's seed, which also fixes the held-out split, so another seed here is another
        draw of the same proxy on the same rows."""
        self.setup, self.seed = setup, setup.seed if seed is None else seed
        self.steps, self.batch_size = at_least("proxy.steps", steps, 1), at_least("proxy.batch_size", batch_size, 1)
        self.lr, self.warmup = lr, warmup
        self.weight_decay, self.eval_every, self.eval_dev = weight_decay, eval_every, eval_dev
        self.threads, self.progress = at_least("proxy.threads", threads, 1), progress

    def for_space(self, space) -> FinetuneProxy:
        """Itself, for any space: it trains each design on its own."""
        return self

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult:
        with num_threads(self.threads), self.setup.autocast():
            model = self.setup.build(spec, seed=self.seed)
            t0 = time.perf_counter()
            history = self.train(model, report)
            details = {
                "proxy": "finetune", "init": self.setup.init, "steps": self.steps,
                "device": str(self.setup.device), "precision": self.setup.precision,
                "train_seconds": round(time.perf_counter() - t0, 1), "history": history,
                "proxy_spec": self.setup.proxy_spec(spec).to_dict(),
            }
            return result_of(model, self.setup.data, self.eval_dev, details)

    def batches(self):
        """The fine-tune's batches, endless, in the order ``train`` sees them: fixed by the seed,
        the same for every design (common random numbers)."""
        data = self.setup.data
        return bucketed_batches(data.train, self.batch_size, self.seed, regression=data.task.is_regression)

    def teacher_logits(self, teacher: Encoder) -> list[torch.Tensor]:
        """``teacher``'s logits (eval mode) on the ``steps`` batches ``train`` will see, in order,
        for ``train(teacher_logits=...)``: a caller scoring many designs computes them once
        instead of running the teacher at every step of every design."""
        batches, device, logits = self.batches(), device_of(teacher), []
        teacher.eval()
        with torch.no_grad():
            for _ in range(self.steps):
                batch = to_device(next(batches), device)
                logits.append(teacher(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits)
        return logits

    def train(
        self, model: Encoder, report: OnProgress | None = None, teacher_logits: Sequence[torch.Tensor] | None = None,
        kd_weight: float = 0.5, temperature: float = 1.0,
    ) -> list[tuple[int, float]]:
        """Fine-tune in place; returns [(step, held-out score)] at each ``eval_every``. With
        ``teacher_logits`` (a teacher's, from ``self.teacher_logits``: computed once, the same
        for every design), the loss is (1 - kd_weight) x the task loss + kd_weight x ``kd_loss``
        to them. Batches go to the model's device (the logits must be on it)."""
        if teacher_logits is not None and len(teacher_logits) < self.steps:
            raise ValueError(f"{len(teacher_logits)} precomputed teacher logits for {self.steps} steps")
        data = self.setup.data
        task, seed = data.task, self.seed
        torch.manual_seed(seed)
        opt, sched = optimizer(model, self.lr, self.weight_decay, self.warmup, self.steps)
        batches = self.batches()
        history: list[tuple[int, float]] = []
        bar = progress_bar(range(1, self.steps + 1), enabled=self.progress, desc=f"finetune {task.name}", leave=False)
        seen, t0, device = 0, time.perf_counter(), device_of(model)
        for step in bar:
            model.train()
            batch = to_device(next(batches), device)
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            loss = task_loss(logits, batch["labels"], task)
            if teacher_logits is not None:
                loss = (1 - kd_weight) * loss + kd_weight * kd_loss(logits, teacher_logits[step - 1], task, temperature)
            value = descend(loss, model, opt, sched, f"loss at step {step}")
            seen += len(batch["labels"])
            bar.set_postfix(loss=f"{value:.3f}", ex_per_s=f"{seen / (time.perf_counter() - t0):.0f}")
            if step % self.eval_every == 0 and step < self.steps and len(data.heldout):
                value = score(model, data.heldout, task)[task.metric]
                history.append((step, value))
                if report is not None:
                    report(step, value)
        return history
