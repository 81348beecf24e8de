"""The notebook's model: Embedding -> SimpleRNN | LSTM | GRU -> Dense(1)."""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flax_sentiment.configuration import fields
from flax_sentiment.model import classifier_head, embedding, recurrence
from flax_sentiment.model import implementation as implementation_lib
from flax_sentiment.model import region_cnn

CELLS = dict(zip(fields.CELL_NAMES, (nn.SimpleCell, nn.LSTMCell,
                                     nn.GRUCell)))


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
    if kind == "max":
      parts.append(classifier_head.max_pool(states, mask))
      continue
    real = mask[..., None] > 0
    parts.append(jnp.sum(jnp.where(real, states, 0.0), axis=0)
                 / jnp.maximum(jnp.sum(real, axis=0), 1))
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
    implementation: "hoisted" (fast, `flax_sentiment.model.recurrence`) or "stock"
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
    num_classes: 2 is the notebook's Dense(1) with one logit per review
      [batch] (sigmoid: P(positive)); K > 2 is Dense(K), K logits per
      review [batch, K] (softmax).
    region_embedding_dim: >0: each token's first-layer input is its
      embedding joined with the fixed region (tv-) embedding of the
      `region_size` words centred on it (`region_cnn.RegionEmbedding`,
      learned from unlabeled text; Johnson & Zhang 2016's side input).
    region_embedding_ngrams: the side input reads the region's 1- to
      this-many-grams (1: its words).
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
  num_classes: int = 2
  region_size: int = 5
  region_embedding_dim: int = 0
  region_embedding_ngrams: int = 1

  @property
  def directions(self) -> tuple[bool, ...]:
    return (False, True) if self.bidirectional else (False,)

  @property
  def poolings(self) -> tuple[str, ...]:
    return tuple(self.pooling.split("+"))

  def recurrences(self) -> list[tuple[int, bool, str]]:
    """(layer, backward, parameter name) of every recurrence, bottom up:
    the one structure `__call__` runs and `summary` describes."""
    return [(layer, backward, rnn_name(layer, backward))
            for layer in range(self.num_layers)
            for backward in self.directions]

  @nn.compact
  def __call__(self, tokens: jax.Array,
               distinct_ids: jax.Array | None = None,
               deterministic: bool = True,
               perturbation: jax.Array | None = None,
               return_states: bool = False
               ) -> jax.Array | list[jax.Array]:
    """tokens [batch, seq_len] -> logits [batch].

    distinct_ids [num_ids], optional (hoisted path; the stock path ignores
    it): ids that include every id in `tokens`, e.g. from
    `batching.distinct_ids`. Then only those embedding rows are projected.
    Ids of `tokens` missing from it give wrong results.
    deterministic: False in training (dropout on; needs a "dropout" rng).
    perturbation [seq_len, batch, embed_dim], optional: added to the
    embedded tokens (adversarial training, `train.adversarial_perturbation`).
    return_states: if True, return instead the top layer's states, one
    [seq_len, batch, hidden] per direction (forward first), before pooling
    (language-model pretraining, `flax_sentiment.training.language_model`).
    """
    embed = nn.Embed(self.num_words, self.embed_dim, name="embedding")
    keep = self._word_keep(deterministic)
    # Stock at init: nn.RNN creates the parameters both paths use.
    stock = self.implementation == "stock" or self.is_initializing()
    # Time-major throughout (looking up tokens.T costs nothing, while
    # transposing [batch, seq_len, embed] does).
    time_major = tokens.T  # [seq_len, batch]
    mask = time_major != 0 if self.mask_padding else None
    side = None  # [seq_len, batch, region_embedding_dim]
    if self.region_embedding_dim:
      side = jax.lax.stop_gradient(region_cnn.RegionEmbedding(
          self.num_words, self.region_embedding_dim, self.region_size,
          self.region_embedding_ngrams, name=region_cnn.FIXED)(time_major))
    wants_states = return_states or self.poolings != ("last",)
    states = None  # [seq_len, batch, features] of the layer below
    finals, outputs = [], []
    for layer, backward, name in self.recurrences():
      if not backward:
        finals, outputs = [], []
      last_layer = layer == self.num_layers - 1
      if stock:
        inputs = (self._embedded(embed, time_major, keep, perturbation, side)
                  if layer == 0 else states)
        final, ys = self._stock_direction(name, inputs, mask, backward)
      else:
        final, ys = self._hoisted_direction(
            name, layer, time_major, states, distinct_ids, keep, mask,
            backward, with_states=wants_states or not last_layer,
            perturbation=perturbation, side=side)
      finals.append(final)
      outputs.append(ys)
      if return_states and last_layer and len(outputs) == len(self.directions):
        return outputs
      if len(outputs) == len(self.directions) and outputs[0] is not None:
        states = jnp.concatenate(outputs, axis=-1)
        if not last_layer:
          states = nn.Dropout(self.dropout)(states, deterministic)
    features = pool(finals, states, mask, self.poolings)
    features = nn.Dropout(self.dropout)(features, deterministic)
    return classifier_head.dense(features, self.num_classes, self.dtype)

  def _word_keep(self, deterministic: bool) -> jax.Array | None:
    """[num_words] scale per word (0 dropped, 1/(1-p) kept), or None."""
    if deterministic or not self.embed_dropout:
      return None
    return classifier_head.word_keep(self.make_rng("dropout"),
                                     self.embed_dropout, self.num_words)

  def _cell(self) -> nn.Module:
    # float32: nn.RNN's carries must keep their (float32) initial dtype; the
    # stock path computes in float32 whatever `dtype` (newer Flax cells
    # return carries in `dtype`, which lax.scan refuses).
    return CELLS[self.cell](self.hidden_dim, dtype=jnp.float32, parent=None)

  @staticmethod
  def _embedded(embed: nn.Embed, time_major: jax.Array,
                keep: jax.Array | None,
                perturbation: jax.Array | None = None,
                side: jax.Array | None = None) -> jax.Array:
    """Embedded tokens [seq_len, batch, embed], dropped words zeroed,
    `perturbation` added, the region embeddings `side` joined after."""
    inputs = embed(time_major)
    if keep is not None:
      inputs = inputs * keep[time_major][..., None]
    if perturbation is not None:
      inputs = inputs + perturbation
    if side is not None:
      inputs = jnp.concatenate([inputs, side], axis=-1)
    return inputs

  def _stock_direction(self, name: str, inputs: jax.Array,
                       mask: jax.Array | None, backward: bool
                       ) -> tuple[jax.Array, jax.Array]:
    """nn.RNN over the stock cell: (final hidden state [batch, hidden],
    states [seq_len, batch, hidden]); masked only for end padding."""
    lengths = mask.sum(axis=0) if mask is not None else None
    rnn = nn.RNN(self._cell(), name=name, reverse=backward, keep_order=True,
                 time_major=True)
    carry, ys = rnn(inputs, seq_lengths=lengths, return_carry=True)
    return (carry[1] if self.cell == "lstm" else carry), ys

  def _hoisted_direction(self, name: str, layer: int, time_major: jax.Array,
                         states: jax.Array | None,
                         distinct_ids: jax.Array | None,
                         keep: jax.Array | None, mask: jax.Array | None,
                         backward: bool, with_states: bool,
                         perturbation: jax.Array | None = None,
                         side: jax.Array | None = None
                         ) -> tuple[jax.Array, jax.Array | None]:
    """`recurrence.run_projected` (final [batch, hidden], states [seq_len,
    batch, hidden] or None), its input projection hoisted out of the loop:
    a row lookup for the first layer, one matmul for the others."""
    weights = recurrence.fused_weights(
        self.cell, self.variables["params"][name]["cell"])
    if layer == 0:
      # [x, side] @ w_i = x @ w_i[:embed] + side @ w_i[embed:]
      of_words = weights if side is None else dataclasses.replace(
          weights, w_i=weights.w_i[:self.embed_dim])
      projected = embedding.project_tokens(
          self.variables["params"]["embedding"]["embedding"], time_major,
          of_words, self.dtype, distinct_ids, keep)
      if perturbation is not None:  # (x + r) @ w_i = x @ w_i + r @ w_i
        projected = projected + recurrence.matmul(perturbation, of_words.w_i,
                                                  self.dtype)
      if side is not None:
        projected = projected + recurrence.matmul(
            side, weights.w_i[self.embed_dim:], self.dtype)
    else:
      projected = recurrence.matmul(states, weights.w_i,
                                    self.dtype) + weights.b_i
    out = recurrence.run_projected(
        self.cell, weights, projected, mask, unroll=self.unroll,
        dtype=self.dtype, reverse=backward, with_states=with_states,
        pallas=self.implementation == "pallas")
    return out if isinstance(out, tuple) else (out, None)


def model_from_config(config, num_classes: int = 2
                      ) -> "SentimentClassifier | region_cnn.RegionCNN":
  """The network `config` describes (for data of `num_classes` classes):
  the region CNN (`model=region_cnn`), else the recurrent classifier
  running the implementation and unroll that
  `flax_sentiment.model.implementation` chooses for it."""
  if config.model == fields.REGION_CNN:
    return region_cnn.RegionCNN(
        num_words=config.num_words, embed_dim=config.embed_dim,
        region_size=config.region_size,
        region_embedding_dim=config.region_embedding_dim,
        region_embedding_ngrams=config.region_embedding_ngrams,
        embed_dropout=config.embed_dropout, dropout=config.dropout,
        num_classes=num_classes)
  return SentimentClassifier(
      cell=config.cell, num_words=config.num_words, embed_dim=config.embed_dim,
      hidden_dim=config.hidden_dim, mask_padding=config.mask_padding,
      implementation=implementation_lib.resolve(config),
      unroll=implementation_lib.resolve_unroll(config.unroll,
                                               config.mask_padding),
      dtype=jnp.dtype(config.dtype),
      bidirectional=config.bidirectional, num_layers=config.num_layers,
      pooling=config.pooling, embed_dropout=config.embed_dropout,
      dropout=config.dropout, num_classes=num_classes,
      region_size=config.region_size,
      region_embedding_dim=config.region_embedding_dim,
      region_embedding_ngrams=config.region_embedding_ngrams)


count_params = classifier_head.count_params


def summary(model, params, seq_len: int) -> str:
  """A Keras-style summary of either network: layer, output shape,
  parameter count."""
  if isinstance(model, region_cnn.RegionCNN):
    return region_cnn.summary(model, params, seq_len)
  cell_type = CELLS[model.cell].__name__
  pooled = model.hidden_dim * len(model.directions) * len(model.poolings)
  rows = [("embedding (Embed)", f"(None, {seq_len}, {model.embed_dim})",
           count_params(params["embedding"]))]
  fixed = 0
  if model.region_embedding_dim:
    fixed = count_params(params[region_cnn.FIXED])
    rows.append((f"{region_cnn.FIXED} (fixed)",
                 f"(None, {seq_len}, {model.region_embedding_dim})", fixed))
  for layer, _, name in model.recurrences():
    last = layer == model.num_layers - 1 and model.poolings == ("last",)
    shape = (f"(None, {model.hidden_dim})" if last
             else f"(None, {seq_len}, {model.hidden_dim})")
    rows.append((f"{name} ({cell_type})", shape, count_params(params[name])))
  rows.append(("dense (Dense)",
               f"(None, {model.num_classes if model.num_classes > 2 else 1})",
               count_params(params["dense"])))
  notes = ([f"(pooling {model.pooling}: {pooled} features to dense)"]
           if model.pooling != "last" else [])
  return classifier_head.summary_table(f"sentiment_{model.cell}", rows,
                                       count_params(params), fixed, notes)
