"""The token store: what streaming through the reviews in chunks (and in
worker processes) builds equals the plain rule applied to all the texts at
once; padding from the store equals Keras' rule; Parquet files stream."""

import numpy as np
import pytest

from flax_sentiment.data import (chunks, datasets, delimited, sources,
                                 token_store, tokenizer)
from tests import multilingual
from tests.conftest import tiny_config
from tests.fake_imdb import fake_records


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_padding_from_the_store_is_keras_rule(padding, truncating):
  rng = np.random.default_rng(0)
  rows = [rng.integers(2, 50, size=n).astype(np.int32)
          for n in rng.integers(0, 30, size=200)]
  flat = np.concatenate(rows)
  lengths = np.array([len(r) for r in rows], np.int32)
  starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
  tokens = token_store.Tokens(flat, starts, lengths, np.zeros(200, np.int32))
  order = rng.permutation(200)  # a subset in another order, as splits are
  want = tokenizer.pad_sequences([rows[i] for i in order], 12, padding,
                                 truncating)
  np.testing.assert_array_equal(
      tokens.subset(order).padded(12, padding, truncating), want)
  np.testing.assert_array_equal(
      np.concatenate(list(tokens.subset(order).chunks())),
      np.concatenate([rows[i] for i in order]))


def _csv(path, records):
  with open(path, "w", encoding="utf-8") as f:
    f.write("text,label\n" + "".join(
        f'"{r["text"].decode()}",{r["label"]}\n' for r in records))
  return path


@pytest.mark.parametrize("kind", ["english", "words"])
def test_streamed_ids_equal_the_rule_on_all_texts_at_once(
    tmp_path, monkeypatch, kind):
  """Blocks of 2 KB parsed by pyarrow, tokenized in threads, the tables
  of chunks merged every 50 tokens: the vocabulary is the most frequent tokens of the train reviews (ties
  alphabetical) and every review's ids are its tokens' ids, as if computed
  on all texts at once."""
  monkeypatch.setattr(delimited, "BLOCK_BYTES", 2048)
  monkeypatch.setattr(chunks, "MERGE_TOKENS", 50)  # many merges
  monkeypatch.setattr(token_store, "ROWS_AT_A_TIME", 5)
  records = fake_records(120, 3)
  path = _csv(tmp_path / "r.csv", records)
  config = tiny_config(dataset=str(path), tokenizer=kind, num_words=40,
                       cache_dir=str(tmp_path / "cache"))
  monkeypatch.setattr(chunks, "THREADS_MIN_BYTES", 0)  # threads
  tokenized, rule = datasets.tokenized_imdb(config)
  texts, labels = sources.read_labeled(path)
  train, test = datasets.held_out(labels, config.test_fraction,
                                  config.validation_seed + 1)
  split = tokenizer.Tokenizer(kind)
  fitted = train if kind == "english" else train[datasets.split_train(
      labels[train], config)[0]]
  want = tokenizer.build_vocabulary((split(texts[i]) for i in fitted), 40)
  assert rule.vocabulary == want
  ids = tokenizer.word_ids(want)
  for name, rows in (("train", train), ("test", test)):
    got = tokenized[name].ragged()
    assert len(got) == len(rows)
    for row, i in zip(got, rows):
      assert row.tolist() == [ids.get(t, 1) for t in split(texts[i])]
    np.testing.assert_array_equal(tokenized[name].labels, labels[rows])


def test_subwords_stream_like_the_trained_model(tmp_path, monkeypatch):
  monkeypatch.setattr(delimited, "BLOCK_BYTES", 1024)
  path = multilingual.write_csv(tmp_path / "ko.csv", "ko", 150, 0)
  config = tiny_config(dataset=str(path), tokenizer="subwords", num_words=110,
                       cache_dir=str(tmp_path / "cache"))
  tokenized, rule = datasets.tokenized_imdb(config)
  texts, _ = sources.read_labeled(path)
  _, test = datasets.held_out(np.arange(150) % 2, config.test_fraction,
                              config.validation_seed + 1)
  ids = tokenizer.word_ids(rule.vocabulary)
  for row, i in zip(tokenized["test"].ragged(), test):
    assert row.tolist() == [ids.get(p, 1) for p in rule.tokenizer(texts[i])]


def test_parquet_files_are_read_like_csv(tmp_path):
  pyarrow = pytest.importorskip("pyarrow")
  import pyarrow.parquet as parquet  # pylint: disable=g-import-not-at-top
  rows = multilingual.reviews("fr", 30, 0)
  parquet.write_table(pyarrow.table({
      "review": [t for t, _ in rows], "stars": [l for _, l in rows]}),
                      tmp_path / "avis.parquet", row_group_size=7)
  texts, labels = sources.read_labeled(tmp_path / "avis.parquet", "review",
                                       "stars")
  assert [t.decode() for t in texts] == [t for t, _ in rows]
  assert labels.tolist() == [l for _, l in rows]
  with pytest.raises(sources.DataError, match=r"avis.parquet:1: no 'text' "
                     r"column \(found: review, stars\)"):
    sources.read_labeled(tmp_path / "avis.parquet")
  (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
  with pytest.raises(sources.DataError, match=r"bad.parquet: not a readable "
                     r"Parquet file"):
    sources.read_labeled(tmp_path / "bad.parquet")


def test_large_splits_are_padded_on_disk_alike(tmp_path, monkeypatch):
  """A split over PADDED_IN_MEMORY_BYTES is written to the cache and read
  memory-mapped, equal to the one built in memory; another vocabulary of
  the same reviews (same lengths) gets its own file."""
  path = _csv(tmp_path / "r.csv", fake_records(200, 5))
  config = tiny_config(dataset=str(path), cache_dir=str(tmp_path / "cache"))
  in_memory = datasets.load_imdb(config)
  monkeypatch.setattr(datasets, "PADDED_IN_MEMORY_BYTES", 0)
  on_disk = datasets.load_imdb(config)
  assert isinstance(on_disk.train.tokens, np.memmap)
  np.testing.assert_array_equal(on_disk.train.tokens, in_memory.train.tokens)
  np.testing.assert_array_equal(on_disk.test.tokens, in_memory.test.tokens)
  config.num_words = 20
  fewer = datasets.load_imdb(config)
  assert fewer.train.tokens.max() < 20 <= on_disk.train.tokens.max()


@pytest.mark.parametrize("kind", ["english", "words", "characters"])
def test_a_chunk_is_tokenized_as_each_review_alone(kind):
  """chunk_ids' fast path (ASCII reviews of a chunk at once) and its slow
  one (the others, one by one) give each review the tokens the tokenizer
  gives it alone, in the reviews' order."""
  texts = [r["text"] for r in fake_records(30, 1)] + [
      "Très <BR />bien<br />, don't 'quote' a''b x_y".encode(), b"",
      "한국어 리뷰 😀 नमस्ते".encode(), b"It's <BR /><br />Go\x01on",
      "ＦＵＬＬ ﬁne rock'n'roll", b"   ", b"ASCII only, 'twas 42",
      "İstanbul 5\u212aB café's".encode(), b"x' 'y '' a' 'b a'-'b'", b"'",
      b"ends <br", b" /> starts", b"bad \xff\xfe bytes's", b"'" * 3,
      "<BR />naïve’s rôle<br />".encode(), b"tab\tnew\nline\r's"]
  order = np.random.default_rng(0).permutation(len(texts))
  texts = [texts[i] for i in order]
  words, ids, lengths = chunks.chunk_ids(kind, texts)
  words = words.to_pylist()
  split = tokenizer.Tokenizer(kind)
  assert lengths.tolist() == [len(split(t)) for t in texts]
  assert [words[i] for i in ids] == [w for t in texts for w in split(t)]
  assert len(set(words)) == len(words)


@pytest.mark.parametrize("kind", ["english", "words"])
def test_the_fast_paths_hold_for_every_code_point(kind):
  """The english rule's fast path cleans bytes, not characters: exact only
  while no character outside ASCII lower-cases to ASCII (İ and the Kelvin
  sign do, and go the slow way). The words rule's classifies each distinct
  code point of the normalized text once. Every code point, between
  letters, beside an apostrophe and alone, gets the tokenizer's tokens."""
  points = [c for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000]
  texts = [" ".join(f"a{chr(c)}b {chr(c)}Z' {chr(c)}" for c in points[i:i + 500]
                    ).encode() for i in range(0, len(points), 500)]
  words, ids, lengths = chunks.chunk_ids(kind, texts)
  words = words.to_pylist()
  split = tokenizer.Tokenizer(kind)
  assert lengths.tolist() == [len(split(t)) for t in texts]
  assert [words[i] for i in ids] == [w for t in texts for w in split(t)]
