import pytest

from arch_search.tasks import tokenizer as T
from tests.conftest import race

CORPUS = ["the cat sat on the mat", "a dog ran in the park", "the cat and the dog"] * 20


@pytest.mark.shared
def test_checkpoint_tokenizer_is_bert_wordpiece(minilm_dir):
    tok = T.load_tokenizer(minilm_dir)
    assert tok.get_vocab_size() == 30522
    assert tok.encode("Hello world").ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]


def test_vocab_txt_only_folder(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join([*T.SPECIAL_TOKENS, "hello", "world", "##s"]) + "\n")
    tok = T.load_tokenizer(tmp_path)
    assert tok.encode("Hello worlds").tokens == ["[CLS]", "hello", "world", "##s", "[SEP]"]
    with pytest.raises(FileNotFoundError):
        T.load_tokenizer(tmp_path / "none")


def test_trained_tokenizer_is_cached_by_data_and_settings(tmp_path, monkeypatch):
    tok = T.train_tokenizer(CORPUS, vocab_size=60, cache_dir=tmp_path)
    files = list(tmp_path.glob("wordpiece-*.json"))
    assert len(files) == 1 and tok.token_to_id("[PAD]") == 0 and tok.token_to_id("cat") is not None

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(T.BertWordPieceTokenizer, "train_from_iterator", no_training)
    again = T.train_tokenizer(CORPUS, vocab_size=60, cache_dir=tmp_path)
    assert again.get_vocab() == tok.get_vocab()
    monkeypatch.undo()
    T.train_tokenizer(CORPUS, vocab_size=70, cache_dir=tmp_path)  # other settings: other key
    T.train_tokenizer(CORPUS[:-1], vocab_size=60, cache_dir=tmp_path)  # other data: other key
    assert len(list(tmp_path.glob("wordpiece-*.json"))) == 3
    monkeypatch.setattr(T, "CACHE_VERSION", T.CACHE_VERSION + 1)  # a new format: a new key
    T.train_tokenizer(CORPUS, vocab_size=60, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("wordpiece-*.json"))) == 4


def test_the_tokenizer_cache_key_is_pinned(tmp_path):
    """Trained vocabularies on disk are named by it: a refactor keeps the name (the texts, then
    the settings in the order written, ``arch_search.cache.cache_key``)."""
    texts = ["a b c", "the cat sat", "on the mat"]
    T.train_tokenizer(texts, vocab_size=40, cache_dir=tmp_path)
    T.train_tokenizer(texts, vocab_size=40, cache_dir=tmp_path, lowercase=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wordpiece-a8929bf7a668f554.json", "wordpiece-d94d428d6b59e3fe.json"]


@pytest.mark.slow
def test_workers_training_the_same_tokenizer_together_all_get_it(tmp_path):
    for _ in range(50):
        for f in tmp_path.iterdir():
            f.unlink()
        assert race(lambda: T.train_tokenizer(CORPUS, vocab_size=60, cache_dir=tmp_path)) == [0] * 4
        [path] = tmp_path.iterdir()  # one complete entry, no temporary file left
        assert path.name.startswith("wordpiece-") and T.Tokenizer.from_file(str(path)).token_to_id("cat") is not None


@pytest.mark.shared
def test_encode_pairs_truncate_and_pad(minilm_dir):
    tok = T.load_tokenizer(minilm_dir)
    enc = T.encode(tok, ["a b c d e f g h", "hi"], ["x y z", "there"], [1, 0], max_len=8)
    assert [len(r) for r in enc.input_ids] == [8, 5]
    assert enc.token_type_ids[1] == (0, 0, 0, 1, 1)
    assert tok.encode("a b c").ids[:1] == [101]  # truncation is off again after encode
    assert len(tok.encode(" ".join(["w"] * 100)).ids) == 102
    batch = T.pad_batch(enc, [1, 0])
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"].tolist()[0] == [1] * 5 + [0] * 3
    assert batch["input_ids"][0, 5:].tolist() == [0, 0, 0] and batch["labels"].tolist() == [0, 1]
    assert T.pad_batch(enc, [0], regression=True)["labels"].dtype.is_floating_point


@pytest.mark.shared
def test_longer_than_counts_the_rows_encode_cuts(minilm_dir):
    tok = T.load_tokenizer(minilm_dir)
    a, b = ["a b c d e f g h", "hi", "a b"], ["x y z", "there", "c"]  # 14, 5, 6 tokens untruncated
    assert T.longer_than(tok, a, b, 13) == pytest.approx(1 / 3)
    assert T.longer_than(tok, a, b, 14) == 0.0 and T.longer_than(tok, a, b, 5) == pytest.approx(2 / 3)
    assert T.longer_than(tok, ["a b c"], None, 4) == 1.0  # one text: [CLS] a b c [SEP]
    assert T.longer_than(tok, [], None, 4) == 0.0
    cut = T.encode(tok, a, b, [0, 1, 0], max_len=13)
    assert sum(len(r) == 13 for r in cut.input_ids) == 1


def test_bucketed_batches_cover_each_epoch_seeded_and_by_length():
    lengths = [1 + (i * 7) % 40 for i in range(200)]
    enc = T.Encoded(tuple((5,) * n for n in lengths), tuple((0,) * n for n in lengths), tuple(range(200)))
    epoch = [next(it) for it in [T.bucketed_batches(enc, 10, seed=3, bucket=5)] for _ in range(20)]
    rows = sorted(r for b in epoch for r in b["labels"].tolist())
    assert rows == list(range(200))  # every row once per epoch
    again = [b["labels"].tolist() for b, _ in zip(T.bucketed_batches(enc, 10, seed=3, bucket=5), range(20))]
    assert again == [b["labels"].tolist() for b in epoch]
    spread = max(max(lengths[r] for r in b["labels"].tolist()) - min(lengths[r] for r in b["labels"].tolist()) for b in epoch)
    assert spread <= 10  # sorted within windows of 50 rows: far below the 39 of random batches
    seen = sorted(r for rows, _ in T.eval_batches(enc, 16) for r in rows)
    assert seen == list(range(200))
