"""Progress bars for a terminal only. A worker whose stderr is a file (a SLURM job's log, a
run piped to ``tee``) gets no bars: tqdm redraws a bar on every update, and a file keeps every
redraw as a line (hundreds a trial). The search writes one line per trial instead
(``arch_search.study.search``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, drawn when ``enabled`` (the configs' ``progress``) and
    stderr is a terminal (tqdm's ``disable=None``; a notebook draws its widget); otherwise a
    silent pass-through whose ``update``, ``set_postfix`` and ``close`` do nothing."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
