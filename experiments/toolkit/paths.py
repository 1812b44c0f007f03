"""Where the experiments' inputs are: the checkout (``REPO``), the shared data beside it
(``SHARED``: ``ARCH_SEARCH_SHARED``, else ``../shared``), the GLUE folders (``GLUE_DIR``) and the
dense checkpoint (``ARCH_SEARCH_CHECKPOINT``; ``data_env`` hands both to a child process), text that names them relative to the repository
(what a committed file may name), and the checkout's commit."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # experiments/toolkit/paths.py -> the checkout
SHARED = Path(os.environ.get("ARCH_SEARCH_SHARED", REPO.parent / "shared"))


def glue_dir() -> str:
    """The GLUE TSV folders: GLUE_DIR, else ../shared's."""
    return os.environ.get("GLUE_DIR", str(SHARED / "glue"))


def checkpoint() -> str:
    """The dense checkpoint the pretrained setup compresses: ARCH_SEARCH_CHECKPOINT, else ../shared's MiniLM."""
    return os.environ.get("ARCH_SEARCH_CHECKPOINT", str(SHARED / "models" / "all-MiniLM-L6-v2"))


def data_env() -> dict[str, str]:
    """The environment of a ``python -m arch_search`` child: this one, with GLUE_DIR and
    ARCH_SEARCH_CHECKPOINT set to where the experiments find them."""
    return {**os.environ, "GLUE_DIR": glue_dir(), "ARCH_SEARCH_CHECKPOINT": checkpoint()}


def relative(text: str) -> str:
    """``text`` naming no path of this machine: the checkout's paths relative to the repository
    root, ``../shared``'s as ``../shared`` (what a committed file may name)."""
    for path, name in ((SHARED.resolve(), "../shared"), (SHARED, "../shared"), (REPO, ".")):  # a linked ../shared: both spellings
        text = text.replace(f"{path}/", "" if name == "." else f"{name}/").replace(str(path), name)
    return text


def code_commit() -> str:
    """The commit the scores come from (``+`` when the tree has uncommitted changes)."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+" if git("status", "--porcelain", "--untracked-files=no", "arch_search", "conf") else "")
