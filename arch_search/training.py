"""Training and scoring an encoder on a GLUE task: the task loss and logit distillation, BERT's
fine-tuning optimiser, one descent step, predictions, GLUE metrics and the gold label's
log-likelihood. Shared by the proxies and by compression (``arch_search.compress``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from arch_search.glue import GlueTask
from arch_search.metrics import glue_metric
from arch_search.model import Encoder
from arch_search.tokenizer import Encoded, eval_batches


class ProxyDiverged(RuntimeError):
    """Training produced a non-finite loss; the design gets no score."""


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: GlueTask) -> torch.Tensor:
    """Cross-entropy, or MSE on the single output for regression (STS-B)."""
    return F.mse_loss(logits[:, 0], labels) if task.is_regression else F.cross_entropy(logits, labels)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, task: GlueTask, temperature: float = 1.0) -> torch.Tensor:
    """Logit distillation (Hinton et al., 2015): T^2 KL(softmax(teacher/T) || softmax(student/T));
    for regression, the squared error to the teacher's output."""
    if task.is_regression:
        return F.mse_loss(student[:, 0], teacher[:, 0])
    T = temperature
    return F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="batchmean") * T * T


def gold_log_likelihood(model: Encoder, data: Encoded, task: GlueTask, batch_size: int = 128) -> float:
    """Mean log-probability of the gold label over ``data`` (classification), or minus the mean
    squared error (regression): a continuous score, less noisy than accuracy on a few rows."""
    total = 0.0
    model.eval()
    with torch.inference_mode():
        for rows, batch in eval_batches(data, batch_size, task.is_regression):
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            if task.is_regression:
                total -= F.mse_loss(logits[:, 0], batch["labels"], reduction="sum").item()
            else:
                total += logits.log_softmax(-1).gather(1, batch["labels"][:, None]).sum().item()
    return total / len(data)


def optimizer(model: torch.nn.Module, lr: float, weight_decay: float, warmup: float, steps: int):
    """BERT's fine-tuning optimiser: AdamW (no decay on biases and LayerNorm) with a linear
    warm-up over ``warmup * steps`` steps and a linear decay to 0. Returns (opt, scheduler)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "norm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warm = max(1, int(warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    return opt, schedule


def descend(loss: torch.Tensor, model: torch.nn.Module, opt, schedule, what: str = "loss") -> float:
    """One optimiser step on ``loss``: ``ProxyDiverged`` if it is not finite, else backward,
    gradient norm clipped at 1.0, step, schedule step, gradients cleared. Returns its value."""
    value = loss.item()
    if not math.isfinite(value):
        raise ProxyDiverged(f"non-finite {what} {value}")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    schedule.step()
    opt.zero_grad(set_to_none=True)
    return value


def predict(model: Encoder, data: Encoded, regression: bool, batch_size: int = 128) -> list:
    """Predictions for every row: class ids, or floats for regression."""
    preds: list = [None] * len(data)
    model.eval()
    with torch.inference_mode():
        for rows, batch in eval_batches(data, batch_size, regression):
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            values = logits[:, 0].tolist() if regression else logits.argmax(-1).tolist()
            for i, v in zip(rows, values):
                preds[i] = v
    return preds


def score(model: Encoder, data: Encoded, task: GlueTask) -> dict[str, float]:
    """GLUE metrics of ``model`` on ``data``."""
    return glue_metric(task.name, predict(model, data, task.is_regression), list(data.labels))
