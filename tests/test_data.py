import numpy as np
import pytest

from flax_sentiment.data import datasets
from flax_sentiment.data import imdb as imdb_source
from flax_sentiment.data import tokenizer
from flax_sentiment.runtime.errors import DataNotFoundError
from tests.conftest import tiny_config

SEQS = [np.array([1, 2, 3, 4, 5]), np.array([6, 7]), np.array([], np.int32)]


@pytest.mark.parametrize("padding,truncating,expected", [
    ("pre", "pre", [[2, 3, 4, 5], [0, 0, 6, 7], [0, 0, 0, 0]]),
    ("pre", "post", [[1, 2, 3, 4], [0, 0, 6, 7], [0, 0, 0, 0]]),
    ("post", "pre", [[2, 3, 4, 5], [6, 7, 0, 0], [0, 0, 0, 0]]),
    ("post", "post", [[1, 2, 3, 4], [6, 7, 0, 0], [0, 0, 0, 0]]),
])
def test_pad_sequences_matches_keras(padding, truncating, expected):
  out = tokenizer.pad_sequences(SEQS, 4, padding, truncating)
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, expected)


def test_pad_sequences_rejects_unknown_side():
  with pytest.raises(ValueError, match="'middle'"):
    tokenizer.pad_sequences(SEQS, 4, padding="middle")


def test_tokenize_lowercases_and_splits_br_tags():
  assert tokenizer.tokenize(b"Great film!<br /><br />I'd SEE it again.") == [
      "great", "film", "i'd", "see", "it", "again"]


def test_vocabulary_reserves_ids_and_maps_unknown_words():
  train = [["b", "a", "b"], ["c", "b", "a"], ["d"]]
  vocab = tokenizer.build_vocabulary(train, num_words=4)
  assert vocab == ["b", "a"]  # most frequent first; 0 and 1 reserved
  ids = tokenizer.encode([["a", "b", "zzz", "c"]], vocab)[0]
  np.testing.assert_array_equal(ids, [3, 2, tokenizer.OOV_ID, tokenizer.OOV_ID])


def test_vocabulary_ties_break_alphabetically():
  assert tokenizer.build_vocabulary([["z", "y", "x"]], num_words=10) == ["x", "y", "z"]


def test_balanced_subset_is_seeded_and_balanced():
  labels = np.array([0] * 70 + [1] * 30)
  subset = datasets.balanced_subset(labels, 20, seed=3)
  assert len(subset) == 20 and np.all(np.diff(subset) > 0)
  assert np.sum(labels[subset]) == 10
  np.testing.assert_array_equal(subset, datasets.balanced_subset(labels, 20, seed=3))
  assert not np.array_equal(subset, datasets.balanced_subset(labels, 20, seed=4))
  assert len(datasets.balanced_subset(labels, None, seed=0)) == 100


def test_vocabulary_comes_from_the_train_split_only(fake_imdb, tmp_path,
                                                   monkeypatch):
  texts = {"train": [b"good good movie", b"bad movie"],
           "test": [b"zebra zebra zebra movie", b"zebra good"]}
  monkeypatch.setattr(imdb_source, "read_split", lambda _, split: (
      texts[split], np.array([1, 0], np.int32)))
  imdb = datasets.load_imdb(tiny_config(cache_dir=str(tmp_path), seq_len=4))
  assert imdb.vocabulary == ["good", "movie", "bad"]
  np.testing.assert_array_equal(imdb.test.tokens, [[1, 1, 1, 3], [0, 0, 1, 2]])
  np.testing.assert_array_equal(imdb.train.tokens, [[0, 2, 2, 3], [0, 0, 4, 3]])


def test_fake_imdb_shapes(fake_imdb, tmp_path):
  imdb = datasets.load_imdb(tiny_config(cache_dir=str(tmp_path)))
  assert imdb.train.tokens.shape == (256, 16)
  assert imdb.test.tokens.shape == (128, 16)
  assert 0 <= imdb.train.tokens.min() and imdb.train.tokens.max() < 64


def test_tokenized_data_is_cached(fake_imdb, tmp_path, monkeypatch):
  config = tiny_config(cache_dir=str(tmp_path))
  first = datasets.load_imdb(config)
  assert len(list(tmp_path.glob("tokens_*"))) == 1

  def no_tokenizing(*args):
    raise AssertionError("tokenized again despite the cache")
  monkeypatch.setattr(tokenizer, "tokenize", no_tokenizing)
  second = datasets.load_imdb(config)
  np.testing.assert_array_equal(first.train.tokens, second.train.tokens)
  assert first.vocabulary == second.vocabulary
  # Another num_words is another cache entry, not a stale hit.
  monkeypatch.undo()
  datasets.load_imdb(tiny_config(cache_dir=str(tmp_path), num_words=32))
  assert len(list(tmp_path.glob("tokens_*"))) == 2


def test_subset_sizes_and_balance(fake_imdb, tmp_path):
  imdb = datasets.load_imdb(tiny_config(cache_dir=str(tmp_path),
                                        max_train_examples=50, max_test_examples=20))
  assert len(imdb.train) == 50 and imdb.train.labels.sum() == 25
  assert len(imdb.test) == 20 and imdb.test.labels.sum() == 10


def test_missing_data_says_where_it_looked(tmp_path):
  config = tiny_config(data_dir=str(tmp_path / "nowhere"), download=False,
                       cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataNotFoundError, match="nowhere.*TFDS_DATA_DIR"):
    datasets.load_imdb(config)
  assert not (tmp_path / "cache").exists()


def test_offline_without_data_fails_fast_and_writes_nothing(tmp_path,
                                                           monkeypatch):
  monkeypatch.setattr(imdb_source, "_source_reachable", lambda: False)
  config = tiny_config(data_dir=str(tmp_path / "empty"), download=True,
                       cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataNotFoundError,
                     match=r"empty.*ai\.stanford\.edu.*offline.*TFDS_DATA_DIR"):
    datasets.load_imdb(config)
  assert not (tmp_path / "cache").exists()


class NoNetworkInTests(Exception):
  pass


def test_download_path_has_its_dependencies(tmp_path, monkeypatch):
  """tfds' real download + prepare path gets as far as opening the URL (here
  intercepted): everything it imports is installed."""
  pytest.importorskip("tensorflow", reason="preparing IMDB needs the "
                      "[prepare] extra (TensorFlow)")
  from tensorflow_datasets.core.download import downloader

  def refuse(url, **kwargs):
    raise NoNetworkInTests(url)
  monkeypatch.setattr(downloader, "_open_url", refuse)
  monkeypatch.setattr(imdb_source, "_source_reachable", lambda: True)
  config = tiny_config(data_dir=str(tmp_path / "tfds"), download=True,
                       cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataNotFoundError, match="NoNetworkInTests.*aclImdb"):
    datasets.load_imdb(config)


def test_real_data_reads_both_splits(real_data_dir, tmp_path):
  config = tiny_config(data_dir=real_data_dir, download=False,
                       num_words=10_000, seq_len=64, cache_dir=str(tmp_path))
  imdb = datasets.load_imdb(config)
  assert len(imdb.train) == 25_000 and len(imdb.test) == 25_000
  assert imdb.train.labels.sum() == 12_500
  assert len(imdb.vocabulary) == 10_000 - tokenizer.NUM_RESERVED_IDS
  assert imdb.vocabulary[:3] == ["the", "and", "a"]
  # Pre-padding: short reviews end with real tokens, start with zeros.
  short = np.flatnonzero(imdb.train.lengths < 64)
  assert len(short) and np.all(imdb.train.tokens[short, -1] != 0)
  assert np.all(imdb.train.tokens[short, 0] == 0)


def test_unlabeled_text_in_vocabulary_and_pretraining_never_test_or_validation(
    fake_imdb, tmp_path, monkeypatch):
  texts = {"train": [b"good good movie", b"bad movie", b"fine plot",
                     b"held out words", b"dull film", b"nice cast"],
           "test": [b"zebra zebra zebra movie", b"zebra good"],
           "unsupervised": [b"quokka film film", b"quokka"]}
  labels = {"train": np.array([1, 0, 1, 0, 1, 0], np.int32),
            "test": np.array([1, 0], np.int32),
            "unsupervised": np.array([-1, -1], np.int32)}
  monkeypatch.setattr(imdb_source, "read_split",
                      lambda _, split: (texts[split], labels[split]))
  config = tiny_config(cache_dir=str(tmp_path), seq_len=4,
                       vocabulary_splits="train+unsupervised",
                       pretrained_embeddings="word2vec",
                       validation_examples=2)
  imdb = datasets.load_imdb(config)
  assert "quokka" in imdb.vocabulary and "zebra" not in imdb.vocabulary
  assert len(imdb.validation) == 2 and len(imdb.train) == 4
  as_words = lambda ids: [imdb.vocabulary[i - 2] for i in ids if i >= 2]
  pretraining = [" ".join(as_words(ids)) for ids in imdb.pretraining_ids]
  held = [" ".join(as_words(row[row > 0])) for row in imdb.validation.tokens]
  assert len(pretraining) == 4 + 2 and "quokka film film" in pretraining
  assert not set(held) & set(pretraining)
  assert "zebra" not in " ".join(pretraining)
  # The validation split does not depend on the run's seed.
  other = datasets.load_imdb(tiny_config(**{**config.to_dict(), "seed": 5}))
  np.testing.assert_array_equal(other.validation.tokens,
                                imdb.validation.tokens)
