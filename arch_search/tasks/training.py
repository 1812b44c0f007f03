"""Training and scoring an encoder on a GLUE task: the task loss and logit distillation, BERT's
fine-tuning optimiser, one descent step, predictions, GLUE metrics and the gold label's
log-likelihood. Shared by the proxies and by compression (``arch_search.proxies.surgery``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from arch_search.tasks.glue import GlueTask
from arch_search.tasks.metrics import glue_metric
from arch_search.measure.runtime import device_of, to_device
from arch_search.nn.model import Encoder
from arch_search.tasks.tokenizer import Encoded, eval_batches


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


def logits_of(model: Encoder, data: Encoded, regression: bool = False, batch_size: int = 128) -> torch.Tensor:
    """(N, labels) fp32 logits of every row of ``data``, in row order, on the CPU (eval mode,
    one pass on the model's device)."""
    out: torch.Tensor | None = None
    model.eval()
    device = device_of(model)
    with torch.inference_mode():
        for rows, batch in eval_batches(data, batch_size, regression):
            batch = to_device(batch, device)
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits.float().cpu()
            if out is None:
                out = logits.new_empty(len(data), logits.shape[1])
            out[torch.as_tensor(rows)] = logits
    return out


def log_likelihood(logits: torch.Tensor, labels, task: GlueTask) -> float:
    """Mean log-probability of the gold label (classification), or minus the mean squared error
    (regression): a continuous score, less noisy than accuracy on a few rows."""
    labels = torch.as_tensor(labels)
    if task.is_regression:
        return -F.mse_loss(logits[:, 0], labels.float()).item()
    return logits.log_softmax(-1).gather(1, labels[:, None]).mean().item()


def calibrated_log_likelihood(logits: torch.Tensor, labels, task: GlueTask) -> float:
    """``log_likelihood`` after temperature scaling (Guo et al., 2017): the logits divided by
    the one temperature that maximises it on these rows. Ranks models by how well they separate
    the classes, not by how confident their training made them; regression: ``log_likelihood``."""
    if task.is_regression:
        return log_likelihood(logits, labels, task)
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(lambda log_t: -log_likelihood(logits / math.exp(log_t), labels, task),
                          bounds=(-4.0, 4.0), method="bounded", options={"xatol": 1e-4})
    return -float(fit.fun)


def gold_log_likelihood(model: Encoder, data: Encoded, task: GlueTask, batch_size: int = 128) -> float:
    """``log_likelihood`` of ``model``'s logits on ``data``."""
    return log_likelihood(logits_of(model, data, task.is_regression, batch_size), data.labels, task)


def kl_to(teacher: torch.Tensor, student: torch.Tensor, task: GlueTask) -> float:
    """Mean KL(teacher || student) of the label distributions over the rows (the squared
    difference of the outputs for regression): how far a design's predictions are from the
    teacher's, without the labels."""
    if task.is_regression:
        return F.mse_loss(student[:, 0], teacher[:, 0]).item()
    return F.kl_div(student.log_softmax(-1), teacher.log_softmax(-1), log_target=True, reduction="batchmean").item()


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


def predictions(logits: torch.Tensor, regression: bool) -> list:
    """Class ids, or floats for regression, from (N, labels) logits."""
    return logits[:, 0].tolist() if regression else logits.argmax(-1).tolist()


def predict(model: Encoder, data: Encoded, regression: bool, batch_size: int = 128) -> list:
    """Predictions for every row: class ids, or floats for regression."""
    return predictions(logits_of(model, data, regression, batch_size), regression)


def score(model: Encoder, data: Encoded, task: GlueTask) -> dict[str, float]:
    """GLUE metrics of ``model`` on ``data``."""
    return glue_metric(task.name, predict(model, data, task.is_regression), list(data.labels))
