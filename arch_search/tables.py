"""Rows (one mapping each) as text: CSV and Markdown tables. No torch, no study: the run's
files, the lessons and the experiments write their tables with these."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path


def csv_text(rows: Sequence[Mapping]) -> str:
    """``rows`` as CSV, header from the first row's keys ("" for no rows)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, rows: Sequence[Mapping]) -> None:
    Path(path).write_text(csv_text(rows))


def md_table(rows: Sequence[Mapping], columns: Mapping[str, str]) -> list[str]:
    """Markdown table of ``rows``: ``columns`` maps a row key to its header."""
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) for k in columns) + " |")
    return lines
