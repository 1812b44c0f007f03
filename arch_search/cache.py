"""Disk caches shared by concurrent workers: each entry named by one recipe (``cache_key``) and
written whole or not at all.

An entry's name hashes the settings that change it (``cache_key``). Each writer writes its own temporary file in the entry's folder and renames it onto the
entry (``os.replace``: atomic within one file system). A reader sees the old file or a new
one, never half of one; of two workers writing the same entry, the last rename wins and both
files are complete. Each cache keeps a ``CACHE_VERSION`` in its keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o22)
os.umask(_UMASK)  # read the process's umask (os.umask can only read it by setting it)


def cache_key(settings: Mapping[str, Any], *, length: int = 16, sort_keys: bool = True, texts: Iterable[str] = ()) -> str:
    """The name of a cache entry: the first ``length`` hex digits of the SHA-256 of ``texts`` (the
    data the entry was made from, each text followed by a NUL byte; none by default), then of
    ``settings`` as JSON (what changes the entry, its ``CACHE_VERSION`` among them; tuples, and
    other iterables JSON lacks, as lists). ``sort_keys=False`` hashes the keys in the order given:
    the latency tables and trained tokenizers were named so before this helper, and their files
    keep their names."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    digest.update(json.dumps(settings, sort_keys=sort_keys, default=list).encode())
    return digest.hexdigest()[:length]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` for the caller to write to; on leaving the
    block it is flushed to disk and renamed onto ``path``. If the block raises, the temporary
    file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp's 0600 -> the mode a plain open() gives; after the write, as a writer may have
        # replaced the file (safetensors' save_file does, with 0600 again)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``path`` for the block: a second worker that
    reaches the same block waits here until the first leaves it (then finds the entry the
    first wrote instead of computing it again). ``flock``: the lock goes with its process, so
    a worker killed inside the block does not leave the others waiting forever."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
