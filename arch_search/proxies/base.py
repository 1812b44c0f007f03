"""What every proxy shares: its result type, the task data it scores on, and prediction.

A proxy scores a design (an ArchSpec at target scale) for accuracy, cheaply. The search sees
``ProxyResult.score``, computed on a seeded held-out slice of the *train* split, so that the
dev split stays clean for the numbers we report (``ProxyResult.dev``, GLUE's metrics on dev).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from arch_search.glue import GlueTask, get_task, glue_metric, load_glue
from arch_search.hf import from_hf, hub_errors
from arch_search.inherit import inherit_from_dense
from arch_search.model import Encoder, build_model
from arch_search.spec import ArchSpec
from arch_search.tokenizer import Encoded, encode, eval_batches, load_tokenizer, train_tokenizer

# report(step, score): called at intervals; may raise (e.g. optuna.TrialPruned) to stop early
Report = Callable[[int, float], None]


class ProxyDiverged(RuntimeError):
    """Training produced a non-finite loss; the design gets no score."""


@dataclass(frozen=True)
class ProxyResult:
    score: float  # the search signal: ``metric`` on the held-out train slice (higher is better)
    metric: str  # e.g. "accuracy", "matthews_correlation", "pearson"
    dev: dict[str, float] | None = None  # GLUE metrics on the dev split: the numbers to report
    details: dict[str, Any] = field(default_factory=dict)  # steps, seconds, history, ...
    # the trained proxy-scale model and its tokenizer, when the proxy trains one (for export)
    model: Encoder | None = field(default=None, repr=False, compare=False)
    tokenizer: Tokenizer | None = field(default=None, repr=False, compare=False)


class Proxy(Protocol):
    def evaluate(self, spec: ArchSpec, report: Report | None = None) -> ProxyResult: ...


@dataclass(frozen=True)
class TaskData:
    """A GLUE task tokenised: train (minus the held-out slice), held-out, dev."""

    task: GlueTask
    tokenizer: Tokenizer
    train: Encoded
    heldout: Encoded
    dev: Encoded

    @classmethod
    def load(
        cls,
        task: str,
        tokenizer: str | Path | None,
        max_len: int,
        heldout: int,
        seed: int,
        data_dir: str | Path | None = None,
        vocab_size: int = 8192,
        cache_dir: str | Path = ".cache",
        heldout_disjoint: bool = True,
    ) -> TaskData:
        """``tokenizer``: a checkpoint folder whose vocabulary to use, or None to train a
        WordPiece vocabulary of ``vocab_size`` on the train split (cached in ``cache_dir``).
        ``heldout_disjoint``: see ``GlueSplit.heldout`` (SST-2's held-out rows are whole
        sentences whose sub-phrases leave train)."""
        glue_task = get_task(task)
        train = load_glue(glue_task.name, "train", data_dir)
        dev_split = "validation_matched" if glue_task.name == "mnli" else "validation"
        dev = load_glue(glue_task.name, dev_split, data_dir)
        held, rest = train.heldout(heldout, seed, disjoint=heldout_disjoint)
        if tokenizer is None:
            texts = list(rest.text_a) + list(rest.text_b or ())
            tok = train_tokenizer(texts, vocab_size, Path(cache_dir) / "tokenizers")
        else:
            with hub_errors(tokenizer):  # a hub id, offline: one CheckpointError (from_hf raises the same)
                tok = load_tokenizer(tokenizer)

        def enc(split):
            return encode(tok, split.text_a, split.text_b, split.labels, max_len)

        return cls(glue_task, tok, enc(rest), enc(held), enc(dev))


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


MINILM_DIMS = {"hidden": 384, "layers": 6, "heads": 12, "intermediate": 1536}
_DIMS = ("hidden", "layers", "heads", "intermediate", "vocab", "max_positions", "type_vocab")


class ProxySetup:
    """What every proxy of a run shares: the task data and the proxy-scale models.

    The design keeps its grouping pattern at the proxy dims (default the MiniLM-L6 dims, so
    it can start from a pretrained dense checkpoint such as all-MiniLM-L6-v2).
    ``init="pretrained"`` inherits the dense weights block-diagonally (``arch_search.inherit``;
    lossy for G > 1) and uses the checkpoint's vocabulary; ``init="scratch"`` starts from
    BERT's random init with a WordPiece vocabulary trained on the task's train split.
    Data and the dense model are loaded once, on first use.
    """

    def __init__(
        self,
        task: str = "sst2",
        init: str = "pretrained",
        checkpoint: str | None = None,
        scale: dict[str, int] | None = None,
        max_len: int = 64,
        heldout: int = 2000,
        dropout: float = 0.1,
        seed: int = 0,
        data_dir: str | None = None,
        vocab_size: int = 8192,
        cache_dir: str = ".cache/arch_search",
        heldout_disjoint: bool = True,
    ):
        if init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {init!r}")
        if init == "pretrained" and not checkpoint:
            raise ValueError("init='pretrained' needs a dense BERT checkpoint (folder or hub id)")
        self.task, self.init, self.checkpoint = task, init, checkpoint
        self.scale = dict(scale or MINILM_DIMS)
        self.max_len, self.heldout, self.dropout, self.seed = max_len, heldout, dropout, seed
        self.data_dir, self.vocab_size, self.cache_dir = data_dir, vocab_size, cache_dir
        self.heldout_disjoint = heldout_disjoint
        self._data: TaskData | None = None
        self._dense: Encoder | None = None

    @property
    def data(self) -> TaskData:
        if self._data is None:
            self._data = TaskData.load(
                self.task, self.checkpoint if self.init == "pretrained" else None, self.max_len,
                self.heldout, self.seed, self.data_dir, self.vocab_size, self.cache_dir, self.heldout_disjoint,
            )
        return self._data

    @property
    def dense(self) -> Encoder:
        """The pretrained dense encoder (init="pretrained" only)."""
        if self._dense is None:
            self._dense = from_hf(self.checkpoint)[0]
        return self._dense

    def proxy_spec(self, spec: ArchSpec) -> ArchSpec:
        """``spec``'s pattern at proxy scale (the checkpoint's dims when pretrained)."""
        if self.init == "pretrained":
            d = self.dense.spec
            dims = {k: getattr(d, k) for k in _DIMS}
            if any(self.scale.get(k, v) != v for k, v in dims.items()):
                raise ValueError(f"proxy scale {self.scale} differs from the checkpoint's dims {dims}")
            return spec.with_scale(**dims).replace(act=d.act, layer_norm_eps=d.layer_norm_eps)
        return spec.with_scale(**self.scale, vocab=self.data.tokenizer.get_vocab_size())

    def build(self, spec: ArchSpec, seed: int | None = None) -> Encoder:
        """The untrained proxy model of ``spec``, with a head for the task, its random init
        seeded by ``seed`` (default the setup's)."""
        torch.manual_seed(self.seed if seed is None else seed)
        pspec = self.proxy_spec(spec)
        n, p = self.data.task.num_labels, self.dropout
        if self.init == "pretrained":
            return inherit_from_dense(pspec, self.dense, task_head=n, dropout=p, attention_dropout=p)
        return build_model(pspec, task_head=n, dropout=p, attention_dropout=p)


def result_of(model: Encoder, data: TaskData, eval_dev: bool, details: dict[str, Any]) -> ProxyResult:
    """The ProxyResult of a ready model: score on the held-out slice (NaN when the setup holds
    nothing out, ``heldout=0``: fine-tuning on all of train to report dev), GLUE metrics on dev."""
    heldout = score(model, data.heldout, data.task) if len(data.heldout) else {}
    dev = score(model, data.dev, data.task) if eval_dev else None
    return ProxyResult(score=heldout.get(data.task.metric, math.nan), metric=data.task.metric, dev=dev,
                       details={**details, "heldout": heldout}, model=model, tokenizer=data.tokenizer)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b between two score lists (ties in either ranking handled): how well a
    proxy ranks designs as the reference does; 1 = same order, -1 = reversed."""
    n, concordant, discordant, tx, ty = len(x), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + tx) * (concordant + discordant + ty)) ** 0.5
    return (concordant - discordant) / denom if denom else 0.0
