"""Word vectors from unlabeled text, to initialize the embedding table.

`--config.pretrained_embeddings=word2vec` trains gensim's word2vec
(CBOW with negative sampling) on the token ids of the train reviews
kept for training plus IMDB's 50,000 unlabeled reviews — never test or
validation text (`datasets.ImdbData.pretraining_ids`) — and starts the
embedding from it. Vectors are cached in the cache directory, keyed by
the text, the vocabulary size and the width (the same for every seed of a run).
"""

import hashlib
import pathlib
import time

import numpy as np

from flax_sentiment.data import datasets
from flax_sentiment.data import tokenizer
from flax_sentiment.runtime import files

WINDOW = 5
EPOCHS = 5
MIN_COUNT = 2
SEED = 0  # the vectors depend on the text only, not on the run's seed


def text_digest(ids: list[np.ndarray], settings: tuple) -> str:
  """Hex digest of token-id texts and the settings a cached result of
  them depends on (word2vec here, `language_model` too)."""
  digest = hashlib.sha256(repr(settings).encode())
  flat, offsets = _ragged_to_flat(ids)
  digest.update(flat.tobytes())
  digest.update(offsets.tobytes())
  return digest.hexdigest()[:24]


def _key(ids: list[np.ndarray], config) -> str:
  return text_digest(ids, (config.num_words, config.embed_dim, SEED, WINDOW,
                           EPOCHS, MIN_COUNT))


def stable_hash(text: str) -> int:
  """A hash of `text` that is the same in every process (Python's is
  salted per process); gensim seeds its vectors with it."""
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def word2vec_table(ids: list[np.ndarray], config,
                   say=lambda message: None) -> np.ndarray:
  """[num_words, embed_dim] float32: word2vec vectors for the words it saw
  (at least MIN_COUNT times), scaled to unit std overall; other rows small
  random; row 0 (padding) zero."""
  cache_dir = pathlib.Path(config.cache_dir or datasets.default_cache_dir())
  path = cache_dir / f"word2vec_{_key(ids, config)}.npy"
  if path.exists():
    say(f"Loaded word2vec vectors from the cache {path}")
    return np.load(path)
  from gensim.models import Word2Vec  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  sentences = [[str(i) for i in review if i >= tokenizer.NUM_RESERVED_IDS]
               for review in ids]
  say(f"Training word2vec on {len(sentences):,} reviews "
      f"({sum(map(len, sentences)):,} words; once, cached) ...")
  # One worker and a fixed hash: the same vectors on every run and process.
  model = Word2Vec(sentences, vector_size=config.embed_dim, window=WINDOW,
                   min_count=MIN_COUNT, sg=0, negative=5, epochs=EPOCHS,
                   workers=1, seed=SEED, hashfxn=stable_hash)
  rng = np.random.default_rng(SEED)
  table = rng.normal(0.0, 0.1, (config.num_words, config.embed_dim))
  found = [i for i in range(config.num_words) if str(i) in model.wv]
  vectors = np.stack([model.wv[str(i)] for i in found])
  table[found] = vectors / vectors.std()
  table[tokenizer.PAD_ID] = 0.0
  table = table.astype(np.float32)
  with files.atomic_file(path, flag="--config.cache_dir") as f:
    np.save(f, table)
  say(f"word2vec: {len(found):,} of {config.num_words:,} words "
      f"({time.perf_counter() - start:.0f}s)")
  return table


def _ragged_to_flat(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(every sequence's ids one after another [total] int32, offsets
  [len(seqs) + 1] int64)."""
  offsets = np.zeros(len(seqs) + 1, np.int64)
  np.cumsum([len(s) for s in seqs], out=offsets[1:])
  flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
  return flat.astype(np.int32), offsets
