"""WordPiece tokenisation (HF ``tokenizers``) and padded, length-bucketed batches.

Two sources of a vocabulary: a checkpoint folder's ``tokenizer.json`` (or ``vocab.txt``), used
when a model starts from pretrained weights; or a BERT WordPiece tokenizer trained on the
task's train split, cached on disk under a key made of the data's hash and the settings.
Batches are padded to their longest row (dynamic padding); rows of similar length are batched
together (length bucketing) to waste little compute on padding.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from arch_search.cache import atomic_path, cache_key

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CACHE_VERSION = 1  # in the tokenizer cache's key: bump it when what is cached changes meaning (training, format)


def load_tokenizer(checkpoint: str | Path) -> Tokenizer:
    """The tokenizer of a checkpoint folder: ``tokenizer.json``, else ``vocab.txt`` (+ its
    ``tokenizer_config.json`` for lower-casing); a hub id goes through ``transformers``. Padding and truncation are turned off: we
    truncate per call and pad per batch."""
    path = Path(checkpoint)
    if (path / "tokenizer.json").is_file():
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    elif (path / "vocab.txt").is_file():
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        tok = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=config.get("do_lower_case", True))._tokenizer
    elif not path.exists() and not str(checkpoint).startswith((".", "/")):  # a hub id
        try:
            from transformers import AutoTokenizer
        except ImportError as e:
            raise FileNotFoundError(f"{checkpoint!r} is no folder; a hub id needs `pip install arch_search[hf]`") from e
        tok = AutoTokenizer.from_pretrained(str(checkpoint)).backend_tokenizer
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint folder")
    else:
        raise FileNotFoundError(f"{path}: no tokenizer.json or vocab.txt")
    tok.no_padding()
    tok.no_truncation()
    return tok


def train_tokenizer(texts: Sequence[str], vocab_size: int, cache_dir: str | Path, lowercase: bool = True) -> Tokenizer:
    """A BERT WordPiece tokenizer trained on ``texts``; cached as
    ``<cache_dir>/wordpiece-<key>.json`` where key hashes the texts, the settings and
    ``CACHE_VERSION``."""
    settings = {"vocab_size": vocab_size, "lowercase": lowercase, "version": CACHE_VERSION}  # hashed in this order (cache_key)
    path = Path(cache_dir) / f"wordpiece-{cache_key(settings, sort_keys=False, texts=texts)}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    wp = BertWordPieceTokenizer(lowercase=lowercase)
    wp.train_from_iterator(list(texts), vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok = wp._tokenizer
    tok.no_padding()
    tok.no_truncation()
    with atomic_path(path) as tmp:  # workers training the same vocabulary each write a whole file
        tok.save(str(tmp))
    return tok


@dataclass(frozen=True)
class Encoded:
    """Token ids of a split, one list per row: ``[CLS] a [SEP] (b [SEP])``."""

    input_ids: tuple[tuple[int, ...], ...]
    token_type_ids: tuple[tuple[int, ...], ...]
    labels: tuple[int | float, ...]

    def __len__(self) -> int:
        return len(self.labels)


def encode(tok: Tokenizer, text_a: Sequence[str], text_b: Sequence[str] | None, labels: Sequence, max_len: int) -> Encoded:
    """Encode rows, truncating pairs longest-first to ``max_len`` tokens in all."""
    tok.enable_truncation(max_len, strategy="longest_first")
    try:
        rows = tok.encode_batch(list(zip(text_a, text_b)) if text_b is not None else list(text_a))
    finally:
        tok.no_truncation()
    return Encoded(
        input_ids=tuple(tuple(r.ids) for r in rows),
        token_type_ids=tuple(tuple(r.type_ids) for r in rows),
        labels=tuple(labels),
    )


def longer_than(tok: Tokenizer, text_a: Sequence[str], text_b: Sequence[str] | None, max_len: int) -> float:
    """The share of rows longer than ``max_len`` tokens untruncated (a pair: both texts, [CLS]
    and [SEP]s): what ``encode`` cuts at that length."""
    rows = tok.encode_batch(list(zip(text_a, text_b)) if text_b is not None else list(text_a))
    return sum(len(r.ids) > max_len for r in rows) / max(len(rows), 1)


def pad_batch(enc: Encoded, rows: Sequence[int], pad_id: int = 0, regression: bool = False) -> dict[str, torch.Tensor]:
    """Rows ``rows`` of ``enc`` padded to their longest: input_ids, token_type_ids,
    attention_mask (B, T) and labels (B,)."""
    T = max(len(enc.input_ids[i]) for i in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), T), dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, i in enumerate(rows):
        n = len(enc.input_ids[i])
        ids[b, :n] = torch.tensor(enc.input_ids[i])
        types[b, :n] = torch.tensor(enc.token_type_ids[i])
        mask[b, :n] = 1
    labels = torch.tensor([enc.labels[i] for i in rows], dtype=torch.float32 if regression else torch.long)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}


def bucketed_batches(
    enc: Encoded, batch_size: int, seed: int, bucket: int = 50, regression: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches: each epoch shuffles rows (seeded), sorts windows of
    ``bucket * batch_size`` rows by length, cuts them into batches and shuffles the batches."""
    rng = random.Random(seed)
    order = list(range(len(enc)))
    while True:
        rng.shuffle(order)
        batches = []
        window = bucket * batch_size
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: len(enc.input_ids[i]))
            batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        for rows in batches:
            yield pad_batch(enc, rows, regression=regression)


def eval_batches(enc: Encoded, batch_size: int, regression: bool = False) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Every row once, sorted by length for speed; yields (row indices, batch)."""
    order = sorted(range(len(enc)), key=lambda i: len(enc.input_ids[i]))
    for j in range(0, len(order), batch_size):
        rows = order[j : j + batch_size]
        yield rows, pad_batch(enc, rows, regression=regression)
