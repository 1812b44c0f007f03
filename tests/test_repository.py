"""The repository as committed (issue 36): no tracked file names a folder of the machine that made
it (an absolute home, temporary or work path), so a clone reads the same on any machine. A run
directory, log or report keeps paths relative to the repository (``toolkit.relative``) or none."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

# An absolute path into a home, temporary or work folder: a leading slash, then root, tmp, work,
# home/<user>, Users/<user>, macOS's private/var or var/folders. Only where a path starts: the character
# before the slash is none of \w . ~ - (so not `runs/tmp/x`, `../work/x`, `~/x` or a URL's path).
MACHINE_PATH = re.compile(rb"(?<![\w.~-])/(?:root|tmp|work|private/var|var/folders|home/[^/\s]+|Users/[^/\s]+)(?![\w.-])")
SQLITE = b"SQLite format 3\x00"  # a study.db: its strings (trial attributes, the study's) are plain UTF-8


def machine_paths(name: str, data: bytes) -> list[str]:
    """``name:line: text`` for each line of a text file's bytes that names a machine path; in an
    SQLite database, ``name:@offset: text`` (the byte offset and the printable run around the
    path). Other binary files (a NUL byte: the PNGs) are not read."""
    sqlite = data.startswith(SQLITE)
    if b"\0" in data and not sqlite:
        return []
    found = []
    for m in MACHINE_PATH.finditer(data):
        if sqlite:
            start, end = m.start(), m.end()
            while start > 0 and 32 <= data[start - 1] < 127:
                start -= 1
            while end < len(data) and 32 <= data[end] < 127:
                end += 1
            where = f"@{m.start()}"
        else:
            start, end = data.rfind(b"\n", 0, m.start()) + 1, data.find(b"\n", m.end())
            end = len(data) if end < 0 else end
            where = str(data.count(b"\n", 0, m.start()) + 1)
        found.append(f"{name}:{where}: {data[start:end].decode(errors='replace').strip()[:200]}")
    return found


def tracked_machine_paths(root: Path) -> tuple[int, list[str]]:
    """How many files ``git ls-files`` lists in ``root``, and each of their lines that names a
    machine path."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.decode().split("\0")
    names = [n for n in names if n]
    found = []
    for name in names:
        path = root / name
        if path.is_file() and not path.is_symlink():  # a file deleted but not yet staged: nothing to read
            found += machine_paths(name, path.read_bytes())
    return len(names), found


def test_no_tracked_file_names_a_machine_path():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no tracked files to list")
    count, found = tracked_machine_paths(REPO)
    assert count > 500  # the checkout's tracked files (714 when this test was written), not an empty listing
    assert not found, "machine paths in tracked files:\n" + "\n".join(found)


def test_the_check_names_each_file_and_line_with_a_machine_path(tmp_path):
    """Planted files in a fresh repository: each machine path is reported with its file and line,
    relative and look-alike paths are not, an SQLite study's attributes are read, a PNG is not."""
    s = "/"  # the planted paths are built, so that this file itself names none
    planted = [f"cache: {s}root/.cache", "ok: experiments/samplers/runs/tmp/x", f"data: {s}home/alice/glue",
               "ok: ../work/x and ~/work/x and https://example.org/tmp/x and /data/glue and /tmpfile",
               f"out: {s}tmp/g", f"cd {s}work/main && ls", f"mac: {s}Users/bob/x", f"tar -C {s}tmp && ls"]
    (tmp_path / "notes.md").write_text("\n".join(planted) + "\n")
    (tmp_path / "clean.txt").write_text("python experiments/gpu/run.py --out \"$(mktemp -d)\"\n")
    with sqlite3.connect(tmp_path / "study.db") as db:
        db.execute("CREATE TABLE attrs (key TEXT, value_json TEXT)")
        db.executemany("INSERT INTO attrs VALUES (?, ?)", [("run_dir", f'"{s}tmp/run"'), ("cwd", '"."')])
    db.close()
    (tmp_path / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n\0" + f" {s}tmp/x".encode())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)

    count, found = tracked_machine_paths(tmp_path)
    assert count == 4
    assert [f.split(":")[0] for f in found] == ["notes.md"] * 6 + ["study.db"]  # the PNG is not read
    assert found[:6] == [f"notes.md:1: cache: {s}root/.cache", f"notes.md:3: data: {s}home/alice/glue", f"notes.md:5: out: {s}tmp/g",
                     f"notes.md:6: cd {s}work/main && ls", f"notes.md:7: mac: {s}Users/bob/x", f"notes.md:8: tar -C {s}tmp && ls"]
    assert re.fullmatch(rf'study\.db:@\d+: .*"{s}tmp/run"', found[6]), found[6]  # a row's printable bytes
    assert machine_paths("clean.txt", (tmp_path / "clean.txt").read_bytes()) == []
