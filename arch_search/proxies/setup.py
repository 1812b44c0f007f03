"""What every proxy of a run shares: the task's data, tokenised (``TaskData``), and the
proxy-scale models (``ProxySetup``: the init, the scale, the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from arch_search.checks import at_least
from arch_search.tasks.glue import GlueTask, get_task, load_glue
from arch_search.nn.hf import from_hf, hub_errors
from arch_search.nn.inherit import inherit_from_dense
from arch_search.nn.model import Encoder, build_model
from arch_search.design.spec import DIMS, ArchSpec
from arch_search.measure.runtime import bf16_autocast, precision_on, resolve_device
from arch_search.tasks.tokenizer import Encoded, encode, load_tokenizer, train_tokenizer

CACHE_DIR = ".cache/arch_search"  # conf/config.yaml's cache_dir (tests/test_defaults.py holds them equal)


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
        cache_dir: str | Path = CACHE_DIR,
        heldout_disjoint: bool = True,
    ) -> TaskData:
        """``tokenizer``: a checkpoint folder whose vocabulary to use, or None to train a
        WordPiece vocabulary of ``vocab_size`` on the train split (cached in ``cache_dir``).
        ``heldout_disjoint``: see ``GlueSplit.hold_out`` (SST-2's held-out rows are whole
        sentences whose sub-phrases leave train)."""
        glue_task = get_task(task)
        train = load_glue(glue_task.name, "train", data_dir)
        dev_split = "validation_matched" if glue_task.name == "mnli" else "validation"
        dev = load_glue(glue_task.name, dev_split, data_dir)
        held, rest = train.hold_out(heldout, seed, disjoint=heldout_disjoint)
        if tokenizer is None:
            texts = list(rest.text_a) + list(rest.text_b or ())
            tok = train_tokenizer(texts, vocab_size, Path(cache_dir) / "tokenizers")
        else:
            with hub_errors(tokenizer):  # a hub id, offline: one CheckpointError (from_hf raises the same)
                tok = load_tokenizer(tokenizer)

        def enc(split):
            return encode(tok, split.text_a, split.text_b, split.labels, max_len)

        return cls(glue_task, tok, enc(rest), enc(held), enc(dev))


MINILM_DIMS = {d: getattr(ArchSpec.preset("minilm_l6"), d) for d in ("hidden", "layers", "heads", "intermediate")}


class ProxySetup:
    """What every proxy of a run shares: the task data and the proxy-scale models.

    The design keeps its grouping pattern at the proxy dims (default the MiniLM-L6 dims, so
    it can start from a pretrained dense checkpoint such as all-MiniLM-L6-v2).
    ``init="pretrained"`` inherits the dense weights block-diagonally (``arch_search.nn.inherit``;
    lossy for G > 1) and uses the checkpoint's vocabulary; ``init="scratch"`` starts from
    BERT's random init with a WordPiece vocabulary trained on the task's train split.
    Data and the dense model are loaded once, on first use.

    ``device``: where every proxy trains and scores (``auto``: CUDA when there is a GPU, else
    the CPU; ``cpu``; ``cuda``: a GPU or ``DeviceUnavailable`` now). Weight surgery (inheritance,
    channel permutation) stays on the CPU; ``build`` puts the model on the device, and batches
    follow the model. ``bf16``: bfloat16 autocast on a GPU that supports it (``autocast``); the
    CPU always trains in fp32. Neither is in the study fingerprint: each trial records both.
    """

    # the settings that change a score (the study fingerprint, arch_search.study.fingerprint); the
    # others (paths, the device, bf16) change where and how fast, and each trial records its device
    SCORED = ("task", "init", "checkpoint", "scale", "max_len", "heldout", "heldout_disjoint", "dropout", "seed",
              "vocab_size")

    def __init__(
        self,
        task: str = "sst2",
        *,
        init: str,
        checkpoint: str | None = None,
        scale: dict[str, int] | None = None,
        max_len: int = 64,
        heldout: int = 2000,
        dropout: float = 0.1,
        seed: int = 0,
        data_dir: str | None = None,
        vocab_size: int = 8192,
        cache_dir: str = CACHE_DIR,
        heldout_disjoint: bool = True,
        device: str = "auto",
        bf16: bool = True,
    ):
        if init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {init!r}")
        if init == "pretrained" and not checkpoint:
            raise ValueError("init='pretrained' needs a dense BERT checkpoint (folder or hub id)")
        self.task, self.init, self.checkpoint = task, init, checkpoint
        self.scale = dict(scale or MINILM_DIMS)
        self.max_len, self.heldout = at_least("proxy_setup.max_len", max_len, 2), at_least("proxy_setup.heldout", heldout, 0)
        self.dropout, self.seed = dropout, seed
        self.data_dir, self.vocab_size, self.cache_dir = data_dir, vocab_size, cache_dir
        self.heldout_disjoint = heldout_disjoint
        self.device, self.bf16 = resolve_device(device), bf16
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
    def precision(self) -> str:
        """What the proxies compute in on ``device``: ``fp32`` or ``bf16``."""
        return precision_on(self.device, self.bf16)

    def autocast(self):
        """Context manager: bf16 autocast where ``precision`` says so, else nothing."""
        return bf16_autocast(self.device, self.bf16)

    @property
    def dense(self) -> Encoder:
        """The pretrained dense encoder (init="pretrained" only), on the CPU."""
        if self._dense is None:
            self._dense = from_hf(self.checkpoint)[0]
        return self._dense

    def proxy_spec(self, spec: ArchSpec) -> ArchSpec:
        """``spec``'s pattern at proxy scale (the checkpoint's dims when pretrained)."""
        if self.init == "pretrained":
            d = self.dense.spec
            dims = {k: getattr(d, k) for k in DIMS}
            if any(self.scale.get(k, v) != v for k, v in dims.items()):
                raise ValueError(f"proxy scale {self.scale} differs from the checkpoint's dims {dims}: set "
                                 f"proxy_setup.scale to the checkpoint's dims (the space's group counts must divide them)")
            return spec.with_scale(**dims).replace(act=d.act, layer_norm_eps=d.layer_norm_eps)
        return spec.with_scale(**self.scale, vocab=self.data.tokenizer.get_vocab_size())

    def prepare(self, base: ArchSpec | None = None) -> None:
        """Load what a proxy's first trial would (the task's data; the checkpoint when
        pretrained) and put ``base`` at proxy scale, so that a missing folder, a malformed file
        or a checkpoint the space cannot group raises now (OSError, ValueError, RuntimeError),
        before a study exists."""
        self.data
        if self.init == "pretrained":
            self.dense
        if base is not None:
            self.proxy_spec(base)

    def build(self, spec: ArchSpec, seed: int | None = None) -> Encoder:
        """The untrained proxy model of ``spec`` on ``device``, with a head for the task, its
        random init seeded by ``seed`` (default the setup's; drawn on the CPU, so the same on
        any device)."""
        torch.manual_seed(self.seed if seed is None else seed)
        pspec = self.proxy_spec(spec)
        n, p = self.data.task.num_labels, self.dropout
        if self.init == "pretrained":
            return inherit_from_dense(pspec, self.dense, task_head=n, dropout=p, attention_dropout=p).to(self.device)
        return build_model(pspec, task_head=n, dropout=p, attention_dropout=p).to(self.device)
