"""Region ("tv-") embeddings learned from unlabeled text, for the region CNN.

`--config.model=region_cnn --config.region_embedding_dim=100` first learns,
from the text word2vec reads (`datasets.ImdbData.pretraining_ids`: the
train reviews kept for training plus the unlabeled reviews, never
validation or test text), a `RegionEmbedding` (`model/region_cnn.py`):
each region of `region_size` words, read as a bag, goes through one layer
of `region_embedding_dim` ReLU units trained to predict the words of the
two neighbouring regions of the same size (Johnson & Zhang 2015's
unsupervised tv-embedding); with `region_embedding_ngrams=3` the region is
read as its words, bigrams and trigrams (hashed), the targets staying the
neighbours' words (their 1-3-gram variant). The classifier then reads it
as a fixed side input.

The loss of a region is squared, as theirs: (score - 1)^2 for each
neighbouring word, plus ZERO_WEIGHT times the squared scores of
ZERO_TARGETS words it does not predict, estimated from NEGATIVES words
drawn uniformly for the whole batch (one matrix product, not a gather per
region). The vocabulary's most frequent words (its first ids: function
words, mostly) are not predicted. Adam, a batch of BATCH regions drawn
without replacement each epoch, `region_embedding_epochs` epochs.

The result does not depend on the run's seed: it is cached in the cache
directory, keyed by the text and every setting, and shared by every seed
of a recipe.
"""

import functools
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flax_sentiment.data import datasets, tokenizer, word_vectors
from flax_sentiment.model import region_cnn
from flax_sentiment.runtime import files

SEED = 0
BATCH = 4096
NEGATIVES = 512        # zero targets drawn for a whole batch
ZERO_TARGETS = 30      # zero targets a region's loss counts (5x its words)
ZERO_WEIGHT = 0.2
LEARNING_RATE = 2e-3
SKIPPED_TARGETS = 100  # the most frequent words are not predicted
STEPS_PER_CALL = 32

Params = dict


def first_target_id(num_words: int) -> int:
  """The lowest id a region predicts: past the reserved ids and the
  SKIPPED_TARGETS most frequent words (fewer in a small vocabulary: at
  most a quarter of it)."""
  words = num_words - tokenizer.NUM_RESERVED_IDS
  return tokenizer.NUM_RESERVED_IDS + min(SKIPPED_TARGETS, words // 4)


def corpus(ids: list[np.ndarray], region_size: int
           ) -> tuple[np.ndarray, np.ndarray]:
  """(flat [total] int32: the reviews one after another, each followed by
  2 * region_size padding ids (so no window crosses into another review),
  centres [regions] int64: the position of every word)."""
  margin = 2 * region_size
  lengths = np.asarray([len(r) for r in ids], np.int64)
  starts = margin + np.concatenate([[0], np.cumsum(lengths + margin)[:-1]])
  flat = np.zeros(margin + int(np.sum(lengths + margin)), np.int32)
  for start, review in zip(starts, ids):
    flat[start:start + len(review)] = review
  centres = np.concatenate([np.arange(s, s + n) for s, n in
                            zip(starts, lengths)]) if len(ids) else (
                                np.zeros(0, np.int64))
  return flat, centres.astype(np.int64)


def windows(flat: jax.Array, centres: jax.Array, region_size: int
            ) -> tuple[jax.Array, jax.Array]:
  """(regions [batch, region_size]: the ids of the region centred on each
  of centres [batch]; neighbours [batch, 2 * region_size]: the ids of the
  regions just before and just after it)."""
  before = (region_size - 1) // 2
  region = np.arange(region_size) - before
  left = region - region_size
  right = region + region_size
  neighbour = np.concatenate([left, right])
  return (flat[centres[:, None] + region[None]],
          flat[centres[:, None] + neighbour[None]])


def region_vectors(params: Params, regions: jax.Array, num_words: int,
                   region_size: int, ngrams: int = 1) -> jax.Array:
  """regions [batch, region_size] ids -> [batch, width]: what the region
  CNN's side input computes for the region centred on the middle id,
  reading its 1- to `ngrams`-grams."""
  width = params["bias"].shape[0]
  module = region_cnn.RegionEmbedding(num_words, width, region_size, ngrams)
  return module.apply({"params": params}, regions.T)[(region_size - 1) // 2]


def region_loss(params: Params, regions: jax.Array, neighbours: jax.Array,
                negatives: jax.Array, first_target: int,
                ngrams: int = 1) -> jax.Array:
  """The mean over the batch of each region's squared loss.

  regions [batch, region_size], neighbours [batch, 2 * region_size] ids
  (those under `first_target` are not predicted), negatives [n] ids drawn
  for the batch. A region scores word w as h . output[w] + bias[w], h its
  vector (`region_vectors`)."""
  num_words, _ = params["output"]["table"].shape
  h = region_vectors(params["region"], regions, num_words, regions.shape[1],
                     ngrams)
  table, bias = params["output"]["table"], params["output"]["bias"]
  positive = (jnp.einsum("bd,bkd->bk", h, table[neighbours])
              + bias[neighbours])
  predicted = neighbours >= first_target
  negative = h @ table[negatives].T + bias[negatives]  # [batch, n]
  per_region = (jnp.sum(jnp.where(predicted, (positive - 1.0) ** 2, 0.0), -1)
                + ZERO_WEIGHT * ZERO_TARGETS * jnp.mean(negative ** 2, -1))
  return jnp.mean(per_region)


def init_params(num_words: int, width: int, region_size: int,
                ngrams: int = 1) -> Params:
  """The region layer as the CNN initializes it; the output layer small
  random, its bias zero."""
  key = jax.random.key(SEED)
  region = region_cnn.RegionEmbedding(num_words, width, region_size,
                                      ngrams).init(
      key, jnp.zeros((region_size, 1), jnp.int32))["params"]
  output = 0.01 * jax.random.normal(jax.random.fold_in(key, 1),
                                    (num_words, width))
  return {"region": region,
          "output": {"table": output, "bias": jnp.zeros(num_words)}}


@functools.partial(jax.jit,
                   static_argnames=("region_size", "first_target", "ngrams"),
                   donate_argnums=(0, 1))
def train_steps(params: Params, opt_state, flat: jax.Array,
                centres: jax.Array, key: jax.Array, *, region_size: int,
                first_target: int, ngrams: int = 1):
  """Adam steps over centres [steps, batch]: (params, opt_state, the
  summed loss)."""
  optimizer = optax.adam(LEARNING_RATE)
  num_words = params["output"]["bias"].shape[0]

  def step(carry, step_centres):
    params, opt_state, key, total = carry
    key, draw = jax.random.split(key)
    negatives = jax.random.randint(draw, (NEGATIVES,), first_target,
                                   num_words)
    regions, neighbours = windows(flat, step_centres, region_size)
    loss, grads = jax.value_and_grad(region_loss)(
        params, regions, neighbours, negatives, first_target, ngrams)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, key,
            total + loss), None

  (params, opt_state, _, total), _ = jax.lax.scan(
      step, (params, opt_state, key, jnp.zeros(())), centres)
  return params, opt_state, total


def train(ids: list[np.ndarray], num_words: int, width: int, region_size: int,
          epochs: int, say=lambda message: None, ngrams: int = 1) -> Params:
  """Parameters learned from `ids` (each review's token ids): {"region":
  the region layer's {"table" [num_words, width], "bias" [width], with
  ngrams > 1 "ngram_table" [NGRAM_BUCKETS, width]},
  "output": the layer that predicted the neighbours, {"table" [num_words,
  width], "bias" [num_words]}} (numpy)."""
  flat_np, centres_np = corpus(ids, region_size)
  per_epoch = len(centres_np) // BATCH
  if per_epoch == 0:  # fewer words than a batch: one smaller batch
    batch, per_epoch = len(centres_np), 1
  else:
    batch = BATCH
  params = init_params(num_words, width, region_size, ngrams)
  opt_state = optax.adam(LEARNING_RATE).init(params)
  flat = jnp.asarray(flat_np)
  rng = np.random.default_rng(SEED)
  key = jax.random.key(SEED)
  first_target = first_target_id(num_words)
  for epoch in range(epochs):
    start, total = time.perf_counter(), 0.0
    order = rng.permutation(len(centres_np))[:per_epoch * batch]
    order = order.reshape(per_epoch, batch)
    for begin in range(0, per_epoch, STEPS_PER_CALL):
      key, call_key = jax.random.split(key)
      params, opt_state, loss = train_steps(
          params, opt_state, flat,
          jnp.asarray(centres_np[order[begin:begin + STEPS_PER_CALL]]),
          call_key, region_size=region_size, first_target=first_target,
          ngrams=ngrams)
      total += float(loss)
    say(f"Region embedding epoch {epoch + 1}/{epochs}: loss "
        f"{total / per_epoch:.4f} ({time.perf_counter() - start:.0f}s)")
  return jax.tree.map(np.asarray, params)


def region_embedding_params(ids: list[np.ndarray], config,
                            say=lambda message: None) -> dict:
  """The run's fixed region layer {"table", "bias"}: from the cache, else
  learned (`train`) and cached."""
  settings = (config.num_words, config.region_embedding_dim,
              config.region_size, config.region_embedding_epochs, SEED,
              BATCH, NEGATIVES, ZERO_TARGETS, ZERO_WEIGHT, LEARNING_RATE,
              SKIPPED_TARGETS) + (
                  (config.region_embedding_ngrams, region_cnn.NGRAM_BUCKETS)
                  if config.region_embedding_ngrams > 1 else ())
  cache_dir = pathlib.Path(config.cache_dir or datasets.default_cache_dir())
  path = cache_dir / (
      f"region_embedding_{word_vectors.text_digest(ids, settings)}.npz")
  if path.exists():
    say(f"Loaded region embeddings from the cache {path}")
    with np.load(path) as saved:
      return dict(saved)
  say(f"Learning region embeddings ({config.region_embedding_dim} units, "
      f"regions of {config.region_size} words) from {len(ids):,} reviews "
      f"({sum(map(len, ids)):,} words; once, cached) ...")
  ngrams = config.region_embedding_ngrams
  params = train(ids, config.num_words, config.region_embedding_dim,
                 config.region_size, config.region_embedding_epochs,
                 say, ngrams)["region"]
  with files.atomic_file(path, flag="--config.cache_dir") as f:
    np.savez(f, **params)
  return params
