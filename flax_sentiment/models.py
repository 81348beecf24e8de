"""The notebook's model: Embedding -> SimpleRNN | LSTM | GRU -> Dense(1)."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flax_sentiment import recurrence

CELLS = {"rnn": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
IMPLEMENTATIONS = ("hoisted", "stock")


@jax.custom_vjp
def _listed_rows(table: jax.Array, ids: jax.Array,
                 position: jax.Array) -> jax.Array:
  """table[ids] [num_ids, embed], where position [num_words] gives for each
  listed id a place it has in `ids`.

  Its gradient with respect to the table is gathered rather than scattered:
  row v is d_rows[position[v]] if v is listed (else 0), with no zero-filled
  [num_words, embed] buffer to scatter into first; XLA fuses it into the
  optimizer update (LSTM-64: 5-7% faster per step, measured). Exact when
  only that place of a listed id receives gradient, as in `_hoisted`.
  """
  return jnp.take(table, ids, axis=0)


def _listed_rows_fwd(table, ids, position):
  return jnp.take(table, ids, axis=0), (ids, position)


def _listed_rows_bwd(saved, d_rows):
  ids, position = saved
  listed = jnp.take(ids, position) == jnp.arange(position.shape[0])
  d_table = jnp.where(listed[:, None], jnp.take(d_rows, position, axis=0), 0)
  return d_table, None, None


_listed_rows.defvjp(_listed_rows_fwd, _listed_rows_bwd)


POOLINGS = ("last", "max", "mean")


def rnn_name(layer: int, backward: bool) -> str:
  """Parameter name of a recurrent layer: rnn, rnn_backward, rnn2, ..."""
  return ("rnn" if layer == 0 else f"rnn{layer + 1}") + (
      "_backward" if backward else "")


def pool(finals: list[jax.Array], states: jax.Array | None,
         mask: jax.Array | None, how: tuple[str, ...]) -> jax.Array:
  """Pooled features [batch, features]: for each of `how`, "last" (each
  direction's final state, concatenated), "max" or "mean" over the real
  (mask 1) steps of states [seq_len, batch, features]."""
  parts = []
  for kind in how:
    if kind == "last":
      parts.append(jnp.concatenate(finals, axis=-1))
      continue
    real = mask[..., None] > 0
    count = jnp.sum(real, axis=0)
    if kind == "max":
      top = jnp.max(jnp.where(real, states, -jnp.inf), axis=0)
      parts.append(jnp.where(count > 0, top, 0.0))
    else:
      parts.append(jnp.sum(jnp.where(real, states, 0.0), axis=0)
                   / jnp.maximum(count, 1))
  return jnp.concatenate(parts, axis=-1)


class SentimentClassifier(nn.Module):
  """Maps token ids [batch, seq_len] to one logit per review [batch].

  The notebook's model with the defaults: Embedding -> one recurrent layer
  -> its last hidden state -> Dense(1).

  Attributes:
    cell: "rnn" (`nn.SimpleCell`, tanh), "lstm" (`nn.LSTMCell`) or "gru".
    num_words: vocabulary size, id 0 being padding.
    embed_dim: embedding width.
    hidden_dim: recurrent state width (per direction).
    mask_padding: if True, padding (id 0) leaves the recurrent state untouched,
      at either end of the sequence, and pooling skips it; if False (the
      notebook), padding tokens are fed to the cell like any other token.
    implementation: "hoisted" (fast, `flax_sentiment.recurrence`) or "stock"
      (`nn.RNN` over the Flax cell). Both use the same parameters. The stock
      path supports masking only for padding at the end (`seq_lengths`).
    unroll: time steps unrolled per loop iteration (hoisted path, without
      masking: masked loops skip all-padding steps, a dynamic length).
    dtype: matmul operand dtype of the hoisted path; parameters, carries,
      gate math stay float32 (the stock path computes in float32).
    bidirectional: a second recurrence per layer from the last real token
      back to the first (needs mask_padding).
    num_layers: stacked recurrent layers.
    pooling: what the dense layer reads: "last", "max", "mean" or several
      joined by "+" (e.g. "last+max+mean"); max/mean skip padding.
    embed_dropout: probability of dropping a word (its whole embedding row,
      the same in every position of a batch) in training.
    dropout: dropout between recurrent layers and before the dense layer.
  """
  cell: str = "lstm"
  num_words: int = 10_000
  embed_dim: int = 256
  hidden_dim: int = 128
  mask_padding: bool = False
  implementation: str = "hoisted"
  unroll: int = 1
  dtype: Any = jnp.float32
  bidirectional: bool = False
  num_layers: int = 1
  pooling: str = "last"
  embed_dropout: float = 0.0
  dropout: float = 0.0

  @property
  def directions(self) -> tuple[bool, ...]:
    return (False, True) if self.bidirectional else (False,)

  @property
  def poolings(self) -> tuple[str, ...]:
    return tuple(self.pooling.split("+"))

  @nn.compact
  def __call__(self, tokens: jax.Array,
               distinct_ids: jax.Array | None = None,
               deterministic: bool = True) -> jax.Array:
    """tokens [batch, seq_len] -> logits [batch].

    distinct_ids [num_ids], optional (hoisted path; the stock path ignores
    it): ids that include every id in `tokens`, e.g. from
    `batching.distinct_ids`. Then only those embedding rows are projected.
    Ids of `tokens` missing from it give wrong results.
    deterministic: False in training (dropout on; needs a "dropout" rng).
    """
    embed = nn.Embed(self.num_words, self.embed_dim, name="embedding")
    keep = self._word_keep(deterministic)
    if self.implementation == "stock" or self.is_initializing():
      features = self._stock(tokens, embed, keep, deterministic)
    else:
      features = self._hoisted(tokens, distinct_ids, keep, deterministic)
    features = nn.Dropout(self.dropout)(features, deterministic)
    logits = nn.Dense(1, dtype=self.dtype, name="dense")(features)
    return logits[:, 0].astype(jnp.float32)

  def _word_keep(self, deterministic: bool) -> jax.Array | None:
    """[num_words] scale per word (0 dropped, 1/(1-p) kept), or None."""
    if deterministic or not self.embed_dropout:
      return None
    rate = self.embed_dropout
    kept = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - rate,
                                (self.num_words,))
    return kept.astype(jnp.float32) / (1.0 - rate)

  def _cell(self) -> nn.Module:
    # float32: nn.RNN's carries must keep their (float32) initial dtype; the
    # stock path computes in float32 whatever `dtype` (newer Flax cells
    # return carries in `dtype`, which lax.scan refuses).
    return CELLS[self.cell](self.hidden_dim, dtype=jnp.float32, parent=None)

  def _stock(self, tokens, embed, keep, deterministic) -> jax.Array:
    """nn.RNN over the stock cells (and at init: creates the parameters)."""
    lengths = (tokens != 0).sum(axis=1) if self.mask_padding else None
    inputs = embed(tokens)
    if keep is not None:
      inputs = inputs * keep[tokens][..., None]
    for layer in range(self.num_layers):
      if layer:
        inputs = nn.Dropout(self.dropout)(inputs, deterministic)
      finals, outputs = [], []
      for backward in self.directions:
        rnn = nn.RNN(self._cell(), name=rnn_name(layer, backward),
                     reverse=backward, keep_order=True)
        carry, ys = rnn(inputs, seq_lengths=lengths, return_carry=True)
        finals.append(carry[1] if self.cell == "lstm" else carry)
        outputs.append(ys)
      inputs = jnp.concatenate(outputs, axis=-1)
    mask = (tokens != 0).T if self.mask_padding else None
    return pool(finals, jnp.swapaxes(inputs, 0, 1), mask, self.poolings)

  def _hoisted(self, tokens, distinct_ids, keep, deterministic) -> jax.Array:
    """The recurrences of `recurrence.py`, time-major throughout (looking
    up tokens.T costs nothing, while transposing [batch, seq_len, embed]
    does)."""
    params = self.variables["params"]
    time_major = tokens.T  # [seq_len, batch]
    mask = time_major != 0 if self.mask_padding else None
    wants_states = self.poolings != ("last",)
    states = None
    for layer in range(self.num_layers):
      finals, outputs = [], []
      last_layer = layer == self.num_layers - 1
      for backward in self.directions:
        weights = recurrence.fused_weights(
            self.cell, params[rnn_name(layer, backward)]["cell"])
        if layer == 0:
          projected = self._project_tokens(time_major, distinct_ids, keep,
                                           weights)
        else:
          projected = recurrence.matmul(states, weights.w_i,
                                        self.dtype) + weights.b_i
        out = recurrence.run_projected(
            self.cell, weights, projected, mask, unroll=self.unroll,
            dtype=self.dtype, reverse=backward,
            with_states=wants_states or not last_layer)
        final, ys = out if isinstance(out, tuple) else (out, None)
        finals.append(final)
        outputs.append(ys)
      if outputs[0] is not None:
        states = jnp.concatenate(outputs, axis=-1)
        if not last_layer:
          states = nn.Dropout(self.dropout)(states, deterministic)
    return pool(finals, states, mask, self.poolings)

  def _project_tokens(self, time_major, distinct_ids, keep,
                      weights: recurrence.Weights) -> jax.Array:
    """x_t @ w_i + b_i for every token [seq_len, batch, G], as a row lookup
    in a projected table `embedding[ids] @ w_i + b_i`. Whichever is
    smallest is projected: the batch's distinct words (given
    `distinct_ids`; ~1,800 rows for a [32, 512] IMDB batch), the whole
    vocabulary (when the batch holds more tokens than the vocabulary has
    words), or every token. Parameters stay float32; `dtype` is that of the
    matmul operands (recurrence.matmul)."""
    table = self.variables["params"]["embedding"]["embedding"]

    def project(rows: jax.Array, ids: jax.Array) -> jax.Array:
      if keep is not None:
        rows = rows * keep[ids][..., None]
      return recurrence.matmul(rows, weights.w_i, self.dtype) + weights.b_i

    if distinct_ids is not None:
      # Where each id sits in distinct_ids (ids listed twice: either place).
      position = jnp.zeros(self.num_words, jnp.int32).at[distinct_ids].set(
          jnp.arange(distinct_ids.shape[0], dtype=jnp.int32))
      rows = _listed_rows(table, distinct_ids, position)
      return jnp.take(project(rows, distinct_ids), position[time_major],
                      axis=0)
    if time_major.size > self.num_words:
      return jnp.take(project(table, jnp.arange(self.num_words)), time_major,
                      axis=0)
    return project(jnp.take(table, time_major, axis=0), time_major)


# Time steps per loop iteration when config.unroll = 0 ("auto"), by backend.
# On a GPU every iteration of an XLA while loop launches its kernels, and
# unrolling lets XLA fuse across steps (LSTM-512 on an H100: see
# docs/performance.md); on CPU it measured the same or slower.
AUTO_UNROLL = {"gpu": 8}


def resolve_unroll(unroll: int, mask_padding: bool,
                   backend: str | None = None) -> int:
  """`unroll`, or for 0 the backend's default (1 for masked loops, whose
  bounds are dynamic)."""
  if unroll:
    return unroll
  if mask_padding:
    return 1
  return AUTO_UNROLL.get(backend or jax.default_backend(), 1)


def model_from_config(config) -> SentimentClassifier:
  return SentimentClassifier(
      cell=config.cell, num_words=config.num_words, embed_dim=config.embed_dim,
      hidden_dim=config.hidden_dim, mask_padding=config.mask_padding,
      implementation=config.implementation,
      unroll=resolve_unroll(config.unroll, config.mask_padding),
      dtype=jnp.dtype(config.dtype),
      bidirectional=config.get("bidirectional", False),
      num_layers=config.get("num_layers", 1),
      pooling=config.get("pooling", "last"),
      embed_dropout=config.get("embed_dropout", 0.0),
      dropout=config.get("dropout", 0.0))


def count_params(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def summary(model: SentimentClassifier, params, seq_len: int) -> str:
  """A Keras-style summary: layer, output shape, parameter count."""
  cell_type = CELLS[model.cell].__name__
  pooled = model.hidden_dim * len(model.directions) * len(model.poolings)
  rows = [("embedding (Embed)", f"(None, {seq_len}, {model.embed_dim})",
           "embedding")]
  for layer in range(model.num_layers):
    for backward in model.directions:
      name = rnn_name(layer, backward)
      last = layer == model.num_layers - 1 and model.poolings == ("last",)
      shape = (f"(None, {model.hidden_dim})" if last
               else f"(None, {seq_len}, {model.hidden_dim})")
      rows.append((f"{name} ({cell_type})", shape, name))
  rows.append(("dense (Dense)", "(None, 1)", "dense"))
  rule = "=" * 65
  lines = [f'Model: "sentiment_{model.cell}"', rule,
           f"{'Layer (type)':<29}{'Output Shape':<26}Param #", rule]
  for layer, shape, name in rows:
    lines.append(f"{layer:<29}{shape:<26}{count_params(params[name]):,}")
  if model.pooling != "last":
    lines.append(f"(pooling {model.pooling}: {pooled} features to dense)")
  total = count_params(params)
  lines += [rule, f"Total params: {total:,}", f"Trainable params: {total:,}",
            "Non-trainable params: 0"]
  return "\n".join(lines)
