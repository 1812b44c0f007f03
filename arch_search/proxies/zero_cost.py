"""Zero-cost proxy: training-free scores of the proxy model at initialisation, on one batch.

- ``grad_norm``: sum over parameters of ||dL/dtheta||_2 (Abdelfattah et al., 2021).
- ``snip``: sum |theta * dL/dtheta| (Lee et al., 2019, "SNIP"; as a NAS proxy, Abdelfattah
  et al., 2021).
- ``synflow``: sum theta * dR/dtheta with every parameter replaced by |theta| and R the sum
  of the outputs, in float64 (Tanaka et al., 2020); data-independent but for the token ids.
- ``params``: the proxy model's parameter count.
Larger is taken as better for each. Which one the search sees is ``score``; all are reported.
"""

from __future__ import annotations

import copy
import time

import torch

from arch_search.checks import at_least
from arch_search.tasks.glue import GlueTask
from arch_search.nn.model import Encoder
from arch_search.proxies.base import OnProgress, ProxyResult
from arch_search.proxies.setup import ProxySetup
from arch_search.tasks.training import task_loss
from arch_search.measure.runtime import device_of, num_threads, to_device
from arch_search.design.spec import ArchSpec
from arch_search.tasks.tokenizer import pad_batch

SCORES = ("grad_norm", "snip", "synflow", "params")


class ZeroCostProxy:
    seed = None  # a zero-cost score takes no seed: no seed noise to measure
    SCORED = ("score", "batch_size")  # the settings that change its score (arch_search.study.fingerprint)

    def __init__(self, setup: ProxySetup, score: str = "snip", batch_size: int = 64, threads: int = 2):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.setup, self.score = setup, score
        self.batch_size, self.threads = at_least("proxy.batch_size", batch_size, 1), at_least("proxy.threads", threads, 1)

    def batch(self) -> dict[str, torch.Tensor]:
        """The first ``batch_size`` rows of the train split (after the held-out slice)."""
        data = self.setup.data
        rows = list(range(min(self.batch_size, len(data.train))))
        return pad_batch(data.train, rows, regression=data.task.is_regression)

    def for_space(self, space) -> ZeroCostProxy:
        """Itself, for any space: it scores each design on its own."""
        return self

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult:
        t0 = time.perf_counter()
        with num_threads(self.threads):
            model = self.setup.build(spec)
            scores = zero_cost_scores(model, self.batch(), self.setup.data.task)
        return ProxyResult(
            score=scores[self.score],
            metric=self.score,
            details={"proxy": "zero_cost", "scores": scores, "seconds": round(time.perf_counter() - t0, 2)},
        )


def zero_cost_scores(model: Encoder, batch: dict[str, torch.Tensor], task: GlueTask) -> dict[str, float]:
    """grad_norm, snip, synflow and params of ``model`` (left unchanged) on ``batch``; the
    gradients are of ``task_loss``. In fp32 (synflow in float64) on the model's device."""
    batch = to_device(batch, device_of(model))
    model.eval()  # no dropout: the scores are deterministic
    model.zero_grad(set_to_none=True)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    task_loss(logits, batch["labels"], task).backward()
    params = [p for p in model.parameters() if p.grad is not None]
    grad_norm = sum(p.grad.norm().item() for p in params)
    snip = sum((p * p.grad).abs().sum().item() for p in params)
    model.zero_grad(set_to_none=True)

    linear = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in linear.parameters():
            p.abs_()
    out = linear(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    (out.logits.sum() + out.last_hidden_state.sum()).backward()
    synflow = sum((p * p.grad).sum().item() for p in linear.parameters() if p.grad is not None)
    return {
        "grad_norm": grad_norm,
        "snip": snip,
        "synflow": synflow,
        "params": float(sum(p.numel() for p in model.parameters())),
    }
