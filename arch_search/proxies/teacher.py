"""The task teacher: the dense checkpoint fine-tuned on the task, once per task and setting.

The compressed proxy heals each design from it and the distilled supernet starts from it and
distils from it. It is cached on disk (``<cache_dir>/teachers``), keyed by the checkpoint's
name, the task, the fine-tune budget, the setup's seed (which also picks the held-out rows it
never sees), the data settings and ``CACHE_VERSION``, not by the device: it is trained on the
setup's device, stored from the CPU and loads on any device. Written atomically, and trained by
one worker while any other that needs it waits (``arch_search.cache.exclusive``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from arch_search.cache import atomic_path, cache_key, exclusive
from arch_search.nn.model import Encoder
from arch_search.proxies.finetune import FinetuneProxy
from arch_search.proxies.setup import ProxySetup
from arch_search.measure.runtime import num_threads

CACHE_VERSION = 1  # bump when a cached teacher's meaning changes


class TaskTeacher:
    """``model``: the setup's dense checkpoint fine-tuned on its task for ``steps`` steps
    (BERT's recipe, ``FinetuneProxy``), from the cache if there, else trained now and cached."""

    # what changes the teacher (its cache key): its own settings, and the setup's scored ones
    # (``ProxySetup.SCORED``) but init, scale and vocab_size: a teacher is always the pretrained
    # checkpoint at its own dims and vocabulary
    SCORED = ("steps", "lr", "batch_size")
    SETUP_SCORED = tuple(s for s in ProxySetup.SCORED if s not in ("init", "scale", "vocab_size"))

    def __init__(self, setup: ProxySetup, steps: int = 1200, lr: float = 5e-5, batch_size: int = 32,
                 threads: int = 2, progress: bool = True):
        if setup.init != "pretrained":
            raise ValueError("a task teacher fine-tunes a pretrained dense checkpoint: use proxy_setup=pretrained")
        self.setup, self.steps, self.lr, self.batch_size = setup, steps, lr, batch_size
        self.threads, self.progress = threads, progress
        self._model: Encoder | None = None
        self._copies: dict[torch.device, Encoder] = {}

    def key(self) -> str:
        setup = {name: getattr(self.setup, name) for name in self.SETUP_SCORED}
        setup["checkpoint"] = Path(str(self.setup.checkpoint)).name  # the same model in another folder is the same
        return cache_key({**setup, **{name: getattr(self, name) for name in self.SCORED}, "version": CACHE_VERSION})

    @property
    def path(self) -> Path:
        return Path(self.setup.cache_dir) / "teachers" / f"teacher-{self.key()}.safetensors"

    @property
    def model(self) -> Encoder:
        """The fine-tuned dense encoder with its task head, in eval mode, on the CPU (the copy
        that weight surgery reads; ``on`` gives it on the proxies' device)."""
        if self._model is None:
            model = self.setup.build(self.setup.dense.spec)  # the pretrained dense model with a task head, on the device
            with exclusive(self.path.with_suffix(".lock")):  # one worker trains it, the others wait for it
                if not self.path.is_file():
                    trainer = FinetuneProxy(self.setup, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                            eval_every=self.steps + 1, eval_dev=False, threads=self.threads,
                                            progress=self.progress)
                    with num_threads(self.threads), self.setup.autocast():
                        trainer.train(model)
                    with atomic_path(self.path) as tmp:
                        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp),
                                  metadata={"key": self.key()})
            model = model.cpu()
            model.load_state_dict(load_file(str(self.path)))
            self._model = model.eval()
        return self._model

    def on(self, device: torch.device) -> Encoder:
        """``model`` on ``device`` (itself on the CPU; one cached copy per other device)."""
        if device.type == "cpu":
            return self.model
        if device not in self._copies:
            self._copies[device] = copy.deepcopy(self.model).to(device).eval()
        return self._copies[device]
