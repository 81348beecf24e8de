"""Johnson & Zhang's region CNN, with region ("tv-") embeddings as a side
input (`model=region_cnn`).

A region is the `region_size` words centred on a position. The CNN's one
layer reads each region as a bag of words: its units are the sum of the
region's rows of a [num_words, embed_dim] table (one row per word: the
one-hot bag times a weight matrix, stored as an embedding so that explain
and adversarial training see its rows as the embedded tokens), plus, when
the run has them, a projection of the region's tv-embedding; a ReLU; one
max-pool over the review's real positions; dropout; the dense layer.

The tv-embedding of a region is `RegionEmbedding`: relu(sum of the
region's rows of its own [num_words, region_embedding_dim] table + bias;
with `ngrams` > 1 also the rows, in a table of NGRAM_BUCKETS hashed rows,
of the region's 2- to `ngrams`-grams: Johnson & Zhang's 1-3-gram variant),
learned before the classifier from train + unlabeled text
(`flax_sentiment.training.region_embedding`) and held fixed while the
classifier trains (`FIXED`: no gradient, no optimizer update). The
recurrent model (`classifier.SentimentClassifier`) reads the same module as
a side input of its first layer.

Johnson & Zhang, "Semi-supervised convolutional neural networks for text
categorization via region embedding" (NIPS 2015).
"""

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn

from flax_sentiment.model import classifier_head

# The parameter subtree learned before the classifier and held fixed.
FIXED = "region_embedding"
PAD_ID = 0
NGRAM_BUCKETS = 2 ** 17  # hashed rows shared by a region's 2- to n-grams
# Odd multipliers of the n-gram hash, taken in turn by the n-gram's words.
_HASH_MULTIPLIERS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)


def region_sums(rows: jax.Array, size: int,
                before: int | None = None) -> jax.Array:
  """rows [seq_len, batch, width] -> [seq_len, batch, width]: at each
  position t the sum of the rows of the `size` positions from t - before
  (default (size - 1) // 2: the region centred on t); nothing beyond
  either end."""
  before = (size - 1) // 2 if before is None else before
  padded = jnp.pad(rows, ((before, max(size - 1 - before, 0)), (0, 0),
                          (0, 0)))
  length = rows.shape[0]
  return sum(padded[offset:offset + length] for offset in range(size))


def ngram_buckets(time_major: jax.Array, n: int
                  ) -> tuple[jax.Array, jax.Array]:
  """(buckets [seq_len, batch] int32: the hashed row, in [0, NGRAM_BUCKETS),
  of the n-gram starting at each position; real [seq_len, batch]: whether
  that n-gram lies wholly in the review, no padding in it)."""
  shifted = [jnp.pad(time_major[k:], ((0, k), (0, 0)),
                     constant_values=PAD_ID) for k in range(n)]
  real = functools.reduce(jnp.logical_and,
                          [ids != PAD_ID for ids in shifted])
  mixed = jnp.full(time_major.shape, n, jnp.uint32)
  for k, ids in enumerate(shifted):
    multiplier = _HASH_MULTIPLIERS[k % len(_HASH_MULTIPLIERS)]
    mixed = mixed ^ (ids.astype(jnp.uint32) * jnp.uint32(multiplier))
    mixed = mixed ^ (mixed >> 15)
  return (mixed % NGRAM_BUCKETS).astype(jnp.int32), real


class RegionEmbedding(nn.Module):
  """A region's tv-embedding: token ids [seq_len, batch] ->
  relu(region sum of the words' rows (and with ngrams > 1 of the hashed
  rows of its 2- to ngrams-grams) + bias) [seq_len, batch, width];
  padding (id 0) adds nothing."""
  num_words: int
  width: int
  region_size: int
  ngrams: int = 1

  @nn.compact
  def __call__(self, time_major: jax.Array) -> jax.Array:
    table = self.param("table", nn.initializers.normal(0.1),
                       (self.num_words, self.width))
    bias = self.param("bias", nn.initializers.zeros, (self.width,))
    rows = jnp.where((time_major != PAD_ID)[..., None],
                     jnp.take(table, time_major, axis=0), 0.0)
    total = region_sums(rows, self.region_size)
    if self.ngrams > 1:
      ngram_table = self.param("ngram_table", nn.initializers.normal(0.1),
                               (NGRAM_BUCKETS, self.width))
      before = (self.region_size - 1) // 2
      for n in range(2, self.ngrams + 1):
        buckets, real = ngram_buckets(time_major, n)
        rows = jnp.where(real[..., None],
                         jnp.take(ngram_table, buckets, axis=0), 0.0)
        # The n-grams wholly inside the region: those starting at its
        # first region_size - n + 1 positions.
        total = total + region_sums(rows, self.region_size - n + 1, before)
    return jax.nn.relu(total + bias)


class RegionCNN(nn.Module):
  """Token ids [batch, seq_len] -> logits [batch] (two classes) or
  [batch, K]; the call signature of `classifier.SentimentClassifier`.

  Attributes:
    num_words: vocabulary size, id 0 being padding.
    embed_dim: the region layer's units (Johnson & Zhang: 1000).
    region_size: words per region (5).
    region_embedding_dim: width of the fixed tv-embedding side input
      (0: none, the labeled-only CNN).
    region_embedding_ngrams: the tv-embedding reads the region's 1- to
      this-many-grams (1: its words).
    embed_dropout: probability of dropping a word (its row) in training.
    dropout: dropout on the pooled features.
    num_classes: 2 (one logit) or K.
  """
  num_words: int = 30_000
  embed_dim: int = 1000
  region_size: int = 5
  region_embedding_dim: int = 0
  region_embedding_ngrams: int = 1
  embed_dropout: float = 0.0
  dropout: float = 0.5
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array,
               distinct_ids: jax.Array | None = None,
               deterministic: bool = True,
               perturbation: jax.Array | None = None,
               return_states: bool = False) -> jax.Array:
    """tokens [batch, seq_len] -> logits [batch] or [batch, K].

    distinct_ids: ignored (the recurrent model's projection shortcut).
    perturbation [seq_len, batch, embed_dim], optional: added to the
    embedded tokens (adversarial training, explain).
    return_states: if True, the region layer's units [seq_len, batch,
    embed_dim] instead of logits."""
    del distinct_ids
    time_major = tokens.T  # [seq_len, batch]
    real = (time_major != PAD_ID)[..., None]
    rows = nn.Embed(self.num_words, self.embed_dim, name="embedding")(
        time_major)
    if not deterministic and self.embed_dropout:
      keep = classifier_head.word_keep(self.make_rng("dropout"),
                                       self.embed_dropout, self.num_words)
      rows = rows * keep[time_major][..., None]
    if perturbation is not None:
      rows = rows + perturbation
    units = region_sums(jnp.where(real, rows, 0.0), self.region_size)
    if self.region_embedding_dim:
      side = jax.lax.stop_gradient(RegionEmbedding(
          self.num_words, self.region_embedding_dim, self.region_size,
          self.region_embedding_ngrams, name=FIXED)(time_major))
      units = units + nn.Dense(self.embed_dim, use_bias=False,
                               name="side")(side)
    units = jax.nn.relu(
        units + self.param("region_bias", nn.initializers.zeros,
                           (self.embed_dim,)))
    if return_states:
      return units
    pooled = classifier_head.max_pool(units, real[..., 0])
    pooled = nn.Dropout(self.dropout)(pooled, deterministic)
    return classifier_head.dense(pooled, self.num_classes)


def summary(model: RegionCNN, params, seq_len: int) -> str:
  """A Keras-style summary: layer, output shape, parameter count."""
  count = classifier_head.count_params
  rows = [("embedding (region layer)", f"(None, {seq_len}, {model.embed_dim})",
           count(params["embedding"]) + count(params["region_bias"]))]
  if model.region_embedding_dim:
    rows += [(f"{FIXED} (fixed)",
              f"(None, {seq_len}, {model.region_embedding_dim})",
              count(params[FIXED])),
             ("side (Dense)", f"(None, {seq_len}, {model.embed_dim})",
              count(params["side"]))]
  rows += [("max pool", f"(None, {model.embed_dim})", 0),
           ("dense (Dense)",
            f"(None, {model.num_classes if model.num_classes > 2 else 1})",
            count(params["dense"]))]
  fixed = count(params[FIXED]) if model.region_embedding_dim else 0
  return classifier_head.summary_table(
      f"region_cnn_{model.region_size}", rows, count(params), fixed)
