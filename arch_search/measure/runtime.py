"""Thread control for torch's intra-op pool: one context manager, used by latency measurement,
the latency lookup table and the proxies' training."""

from __future__ import annotations

import torch


class num_threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, the previous value restored after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
