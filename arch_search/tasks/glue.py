"""GLUE tasks: reading the official ``glue_data`` TSV files (or HF ``nyu-mll/glue``).

GLUE (Wang et al., ICLR 2019, Sec. 3 and Table 1): nine English sentence and sentence-pair
tasks, each with its metric (``GlueTask.metric``; computed in ``arch_search.tasks.metrics``). Text is
returned as written in the files (no stripping, no tokenisation); label ids follow HF's
``nyu-mll/glue`` ClassLabel order.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HF_DATASET = "nyu-mll/glue"
SPLIT_ALIASES: dict[str, str] = {
    "dev": "validation",
    "dev_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
}


class GlueDataError(RuntimeError):
    """Neither a GLUE folder (``data_dir`` / ``GLUE_DIR``) nor HF ``datasets`` gave the data."""


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its files are, how a row is laid out, and how it is scored.

    Column indices are 0-based positions in a TSV row (negative counts from the end: MNLI's
    ``gold_label`` is the last column, whose position differs between train and dev).
    ``header`` holds the names the header line must have at ``text_columns + (label_column,)``;
    None means the file has no header line and every row has ``num_columns`` columns. With a
    header, every row has as many columns as the header.
    ``tsv_labels`` are the label strings of the TSV in id order (``("0", "1")`` for tasks that
    already store ids); empty for the regression task STS-B, whose label is a float score in
    [0, 5]. ``hf_columns`` are the text columns of the HF dataset, whose ``label`` column holds
    the ids directly. ``label_names`` are the names of the ids, as HF's ``glue`` dataset
    calls them (``negative``/``positive`` for SST-2): an exported model's ``id2label``.
    """

    name: str
    dir_name: str
    num_labels: int
    metric: str
    text_columns: tuple[int, ...]
    label_column: int
    header: tuple[str, ...] | None
    tsv_labels: tuple[str, ...]
    hf_columns: tuple[str, ...]
    splits: tuple[str, ...] = ("train", "validation")
    num_columns: int | None = None
    phrases: bool = False  # train rows include sub-phrases of other rows (SST-2: every parse-tree node)
    label_names: tuple[str, ...] = ()  # what each label id means (HF datasets' ClassLabel names; none for STS-B)

    def __post_init__(self) -> None:
        if len(self.text_columns) not in (1, 2) or len(self.hf_columns) != len(self.text_columns):
            raise ValueError(f"GlueTask {self.name}: one or two text columns, in the TSV and in HF")
        if self.header is not None and len(self.header) != len(self.text_columns) + 1:
            raise ValueError(f"GlueTask {self.name}: header names one column per text column, then the label")
        if (self.header is None) == (self.num_columns is None):
            raise ValueError(f"GlueTask {self.name}: give exactly one of header and num_columns")
        if len(self.tsv_labels) != (0 if self.num_labels == 1 else self.num_labels):
            raise ValueError(f"GlueTask {self.name}: {len(self.tsv_labels)} label names for {self.num_labels} labels")
        if len(self.label_names) != len(self.tsv_labels):
            raise ValueError(f"GlueTask {self.name}: {len(self.label_names)} label_names for {len(self.tsv_labels)} labels")

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def has_header(self) -> bool:
        return self.header is not None

    def canonical_split(self, split: str) -> str:
        """``split`` as one of ``self.splits``; ``dev*`` are aliases of ``validation*``."""
        s = split.lower()
        s = SPLIT_ALIASES.get(s, s)
        if s in self.splits:
            return s
        if s == "validation" and self.name == "mnli":
            raise ValueError("mnli has two validation splits: 'validation_matched' and 'validation_mismatched'")
        raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {list(self.splits)} (or 'dev' for 'validation')")

    @staticmethod
    def file_name(split: str) -> str:
        """TSV file of a canonical split: ``validation_matched`` -> ``dev_matched.tsv``."""
        return split.replace("validation", "dev") + ".tsv"


_NLI2 = ("entailment", "not_entailment")
_BINARY = ("0", "1")

TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        GlueTask("cola", "CoLA", 2, "matthews_correlation", (3,), 1, None, _BINARY, ("sentence",), num_columns=4,
                  label_names=("unacceptable", "acceptable")),
        GlueTask("sst2", "SST-2", 2, "accuracy", (0,), 1, ("sentence", "label"), _BINARY, ("sentence",), phrases=True,
                  label_names=("negative", "positive")),
        GlueTask("mrpc", "MRPC", 2, "f1", (3, 4), 0, ("#1 String", "#2 String", "Quality"), _BINARY, ("sentence1", "sentence2"),
                  label_names=("not_equivalent", "equivalent")),
        GlueTask("stsb", "STS-B", 1, "pearson", (7, 8), 9, ("sentence1", "sentence2", "score"), (), ("sentence1", "sentence2")),
        GlueTask("qqp", "QQP", 2, "f1", (3, 4), 5, ("question1", "question2", "is_duplicate"), _BINARY, ("question1", "question2"),
                  label_names=("not_duplicate", "duplicate")),
        GlueTask(
            "mnli", "MNLI", 3, "accuracy", (8, 9), -1, ("sentence1", "sentence2", "gold_label"),
            ("entailment", "neutral", "contradiction"), ("premise", "hypothesis"),
            splits=("train", "validation_matched", "validation_mismatched"), label_names=("entailment", "neutral", "contradiction"),
        ),
        GlueTask("qnli", "QNLI", 2, "accuracy", (1, 2), 3, ("question", "sentence", "label"), _NLI2, ("question", "sentence"), label_names=_NLI2),
        GlueTask("rte", "RTE", 2, "accuracy", (1, 2), 3, ("sentence1", "sentence2", "label"), _NLI2, ("sentence1", "sentence2"), label_names=_NLI2),
        GlueTask("wnli", "WNLI", 2, "accuracy", (1, 2), 3, ("sentence1", "sentence2", "label"), _BINARY, ("sentence1", "sentence2"),
                  label_names=("not_entailment", "entailment")),
    )
}


def get_task(task: str | GlueTask) -> GlueTask:
    """The task of an HF name (``sst2``) or a GLUE folder name (``SST-2``), case-insensitive."""
    if isinstance(task, GlueTask):
        return task
    key = task.lower().replace("-", "")
    if key not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {list(TASKS)} (or {[t.dir_name for t in TASKS.values()]})")
    return TASKS[key]


@dataclass(frozen=True, repr=False)
class GlueSplit(Sequence):
    """The examples of one split: ``split[i]`` is ``(text_a, text_b, label)``.

    ``text_b`` is None for single-sentence tasks (CoLA, SST-2). Labels are int ids for
    classification and float scores in [0, 5] for STS-B. ``source`` is the file read, or
    ``"hf:nyu-mll/glue"``.
    """

    task: GlueTask
    split: str
    text_a: tuple[str, ...]
    text_b: tuple[str, ...] | None
    labels: tuple[int | float, ...]
    source: str

    def __post_init__(self) -> None:
        if (self.text_b is not None) != self.task.is_pair:
            raise ValueError(f"GlueSplit {self.task.name}: text_b must be {'given' if self.task.is_pair else 'None'}")
        lengths = {len(self.text_a), len(self.labels)} | ({len(self.text_b)} if self.text_b is not None else set())
        if len(lengths) != 1:
            raise ValueError(f"GlueSplit {self.task.name} {self.split}: text and label columns differ in length")

    def __len__(self) -> int:
        return len(self.text_a)

    def __getitem__(self, i: int) -> tuple[str, str | None, int | float]:
        if isinstance(i, slice):
            raise TypeError("GlueSplit: use .subset(range(...)) instead of a slice")
        return self.text_a[i], (self.text_b[i] if self.text_b is not None else None), self.labels[i]

    def subset(self, indices: Sequence[int]) -> GlueSplit:
        """The same split with only the rows ``indices``, in that order (repeats allowed)."""
        idx = [int(i) for i in indices]
        return GlueSplit(
            task=self.task,
            split=self.split,
            text_a=tuple(self.text_a[i] for i in idx),
            text_b=tuple(self.text_b[i] for i in idx) if self.text_b is not None else None,
            labels=tuple(self.labels[i] for i in idx),
            source=self.source,
        )

    def hold_out(self, n: int, seed: int, disjoint: bool = True) -> tuple[GlueSplit, GlueSplit]:
        """(held-out, rest): ``n`` seeded random rows held out of this split, and the others.

        With ``disjoint`` and a task whose rows include sub-phrases of other rows (SST-2), a
        random row is mostly a fragment of a sentence still in the rest, so its label leaks:
        the held-out rows are then drawn among whole sentences (rows no other row contains),
        and the rest loses every row that is a span of a held-out sentence (or a copy of it).
        ``n = 0``: nothing is held out (an empty split, and every row).
        """
        if not 0 <= n < len(self):
            raise ValueError(f"heldout={n} must be in [0, {len(self)}), the rows of {self.task.name} {self.split}")
        if n == 0:
            return self.subset([]), self
        rng = random.Random(seed)
        if not (disjoint and self.task.phrases):
            order = list(range(len(self)))
            rng.shuffle(order)
            held = sorted(order[:n])
            return self.subset(held), self.subset(sorted(order[n:]))
        words = [tuple(t.split()) for t in self.text_a]
        rows = set(words)
        inside = {s for w in words for s in _spans(w, proper=True) if s in rows}  # rows inside other rows
        sentences = sorted({w for w in rows if w not in inside})
        if n >= len(sentences):
            raise ValueError(f"heldout={n} must be below the {len(sentences)} whole sentences of {self.task.name} {self.split}")
        held_sentences = set(rng.sample(sentences, n))
        first = {}
        for i, w in enumerate(words):
            if w in held_sentences:
                first.setdefault(w, i)
        held = sorted(first.values())
        leak = {s for w in held_sentences for s in _spans(w, proper=False)}
        return self.subset(held), self.subset([i for i, w in enumerate(words) if w not in leak])

    def __repr__(self) -> str:
        return f"GlueSplit(task={self.task.name!r}, split={self.split!r}, rows={len(self)}, source={self.source!r})"


def _spans(words: tuple[str, ...], proper: bool):
    """Every contiguous word span of ``words`` (without ``words`` itself when ``proper``)."""
    n = len(words)
    for i in range(n):
        for j in range(i + 1, n + 1):
            if not (proper and j - i == n):
                yield words[i:j]


# ---- reading -------------------------------------------------------------------------------


def load_glue(task: str | GlueTask, split: str, data_dir: str | Path | None = None) -> GlueSplit:
    """One split of a GLUE task.

    The data comes from ``data_dir``, else the ``GLUE_DIR`` environment variable: a folder in
    the official layout ``<dir>/<TASK>/{train,dev}.tsv`` (MNLI: ``dev_matched.tsv``,
    ``dev_mismatched.tsv``). A missing file there is an error; there is no fallback. With
    neither set, the split is read from HF ``datasets`` (``nyu-mll/glue``).
    Splits: ``train``, ``validation`` (alias ``dev``); MNLI has ``validation_matched`` and
    ``validation_mismatched`` instead of ``validation``.
    """
    t = get_task(task)
    split = t.canonical_split(split)
    from_env = data_dir is None
    folder = (os.environ.get("GLUE_DIR") or None) if from_env else data_dir  # GLUE_DIR="" counts as unset
    if folder is None:
        return _load_hf(t, split)
    path = Path(folder).expanduser() / t.dir_name / t.file_name(split)
    if not path.is_file():
        origin = "GLUE_DIR" if from_env else "data_dir"
        raise FileNotFoundError(f"{path}: no such file (GLUE {t.dir_name} {split}, {origin}={str(folder)!r})")
    return read_tsv(t, split, path)


def read_tsv(task: GlueTask, split: str, path: str | Path) -> GlueSplit:
    """Parse one GLUE TSV file: tabs, no quoting (lone ``"`` are text), UTF-8 with optional BOM.

    A malformed row raises ValueError naming ``path:line`` (1-based physical line).
    """
    path = Path(path)
    label_of = {name: i for i, name in enumerate(task.tsv_labels)}
    a_col = task.text_columns[0]
    b_col = task.text_columns[1] if task.is_pair else None
    label_col = task.label_column
    text_a: list[str] = []
    text_b: list[str] | None = [] if task.is_pair else None
    labels: list[int | float] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        num_columns = task.num_columns
        if task.header is not None:
            header = next(rows, None)
            if header is None:
                raise ValueError(f"{path}: empty file, expected a header line")
            _check_header(task, path, header)
            num_columns = len(header)
        for row in rows:
            if len(row) != num_columns:
                raise ValueError(f"{path}:{rows.line_num}: expected {num_columns} columns, got {len(row)}")
            raw = row[label_col]
            if task.is_regression:
                label = _parse_score(raw)
                if label is None:
                    raise ValueError(f"{path}:{rows.line_num}: score {raw!r} is not a number in [0, 5]")
            else:
                label = label_of.get(raw)
                if label is None:
                    raise ValueError(f"{path}:{rows.line_num}: unknown label {raw!r}; expected one of {list(task.tsv_labels)}")
            text_a.append(row[a_col])
            if text_b is not None:
                text_b.append(row[b_col])
            labels.append(label)
    if not labels:
        raise ValueError(f"{path}: no examples")
    return GlueSplit(task, split, tuple(text_a), tuple(text_b) if text_b is not None else None, tuple(labels), str(path))


def _check_header(task: GlueTask, path: Path, header: list[str]) -> None:
    columns = (*task.text_columns, task.label_column)
    for col, name in zip(columns, task.header):
        found = header[col] if -len(header) <= col < len(header) else None
        if found != name:
            raise ValueError(
                f"{path}:1: header is not {task.dir_name}'s: expected {name!r} in column {col}, found {found!r} "
                f"(header {header})"
            )


def _parse_score(raw: str) -> float | None:
    try:
        score = float(raw)
    except ValueError:
        return None
    return score if math.isfinite(score) and 0.0 <= score <= 5.0 else None


def _load_hf(task: GlueTask, split: str) -> GlueSplit:
    """The split from HF ``datasets``; ``datasets`` is imported here, only when needed."""
    try:
        import datasets

        ds = datasets.load_dataset(HF_DATASET, task.name, split=split)
    except Exception as e:  # ImportError, no network, hub errors: all mean "no data this way"
        raise GlueDataError(
            f"GLUE {task.name} {split}: no data. Either set task.data_dir (load_glue's data_dir) or the "
            f"GLUE_DIR environment variable to a folder in the official layout <TASK>/{{train,dev}}.tsv "
            f"(here {task.dir_name}/{task.file_name(split)}), or install `datasets` with network access to "
            f"the Hugging Face dataset {HF_DATASET}. Reading {HF_DATASET} failed with {type(e).__name__}: {e}"
        ) from e
    source = f"hf:{HF_DATASET}"
    missing = [c for c in (*task.hf_columns, "label") if c not in ds.column_names]
    if missing:
        raise ValueError(f"{source} {task.name} {split}: missing column(s) {missing}; has {ds.column_names}")
    texts = [tuple(ds[c]) for c in task.hf_columns]
    if task.is_regression:
        labels = tuple(float(y) for y in ds["label"])
    else:
        labels = tuple(int(y) for y in ds["label"])
        bad = [y for y in set(labels) if not 0 <= y < task.num_labels]
        if bad:
            raise ValueError(f"{source} {task.name} {split}: label ids {sorted(bad)} outside 0..{task.num_labels - 1}")
    return GlueSplit(task, split, texts[0], texts[1] if task.is_pair else None, labels, source)
