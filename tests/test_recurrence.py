"""The hoisted recurrences equal nn.RNN over Flax's stock cells."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.data import batching
from flax_sentiment.model import classifier, recurrence
from tests.equivalence import (assert_outputs_and_grads_close,
                               hoisted_last_hidden)
from tests import equivalence

CELLS = list(classifier.CELLS)


HIDDEN = 5


def stock_last_hidden(cell, params, inputs, seq_lengths=None):
  return equivalence.stock_last_hidden(cell, HIDDEN, params, inputs,
                                       seq_lengths)


def cell_params(cell, in_dim=6, seed=0):
  module = classifier.CELLS[cell](HIDDEN)
  carry = module.initialize_carry(jax.random.key(1), (1, in_dim))
  params = module.init(jax.random.key(seed), carry, jnp.zeros((1, in_dim)))["params"]
  # Non-zero biases so that a mix-up of bias terms cannot hide.
  return jax.tree.map(lambda p: p + 0.1 * jax.random.normal(
      jax.random.key(2), p.shape), params)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_and_gradients_match_nn_rnn(cell):
  params = cell_params(cell)
  inputs = jax.random.normal(jax.random.key(3), (4, 9, 6))
  assert_outputs_and_grads_close(
      functools.partial(hoisted_last_hidden, cell),
      functools.partial(stock_last_hidden, cell), (params, inputs),
      argnums=(0, 1))


@pytest.mark.parametrize("cell", CELLS)
def test_unroll_does_not_change_results(cell):
  params = cell_params(cell)
  inputs = jax.random.normal(jax.random.key(3), (2, 9, 6))
  fast = functools.partial(hoisted_last_hidden, cell)
  np.testing.assert_allclose(fast(params, inputs, unroll=4),
                             fast(params, inputs), atol=1e-6)


def _alone_and_padded(cell, padding):
  """Each review run alone vs. the batch padded per `padding` with a mask."""
  params = cell_params(cell)
  lengths = [9, 4, 1, 6]
  rng = np.random.default_rng(0)
  reviews = [rng.normal(size=(n, 6)).astype(np.float32) for n in lengths]
  padded = np.zeros((len(reviews), 9, 6), np.float32)
  mask = np.zeros((len(reviews), 9), bool)
  for i, r in enumerate(reviews):
    where = slice(0, len(r)) if padding == "post" else slice(9 - len(r), 9)
    padded[i, where], mask[i, where] = r, True
  fast = functools.partial(hoisted_last_hidden, cell)
  alone = np.concatenate([fast(params, r[None]) for r in reviews])
  return params, lengths, padded, mask, alone, fast


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_masked_padding_equals_each_review_alone(cell, padding):
  params, _, padded, mask, alone, fast = _alone_and_padded(cell, padding)
  np.testing.assert_allclose(fast(params, padded, jnp.asarray(mask)), alone,
                             atol=1e-5, rtol=1e-5)
  # Without the mask, padding changes the result (what the notebook does).
  assert not np.allclose(fast(params, padded), alone, atol=1e-3)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_steps_that_are_padding_in_every_row_change_nothing(cell, padding):
  """The loops skip leading/trailing steps that are padding in all rows:
  forward and gradients equal those of the batch without those steps."""
  params, _, padded, mask, _, fast = _alone_and_padded(cell, padding)
  extra = [(0, 0), (6, 0), (0, 0)] if padding == "pre" else [(0, 0), (0, 6), (0, 0)]
  longer = np.pad(padded, extra)
  longer_mask = np.pad(mask, extra[:2])

  def loss(m):
    return lambda p, x: jnp.sum(jnp.sin(fast(p, x, jnp.asarray(m))))
  np.testing.assert_allclose(fast(params, longer, jnp.asarray(longer_mask)),
                             fast(params, padded, jnp.asarray(mask)),
                             atol=1e-6)
  g_long = jax.grad(loss(longer_mask), argnums=(0, 1))(params, longer)
  g_short = jax.grad(loss(mask), argnums=(0, 1))(params, padded)
  for a, b in zip(jax.tree.leaves(g_long[0]), jax.tree.leaves(g_short[0])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  kept = slice(6, None) if padding == "pre" else slice(0, 9)
  skipped = slice(0, 6) if padding == "pre" else slice(9, None)
  np.testing.assert_allclose(g_long[1][:, kept], g_short[1], atol=1e-6)
  np.testing.assert_array_equal(g_long[1][:, skipped], 0.0)


@pytest.mark.parametrize("cell", CELLS)
def test_post_padding_with_seq_lengths_equals_each_review_alone(cell):
  params, lengths, padded, _, alone, _ = _alone_and_padded(cell, "post")
  np.testing.assert_allclose(
      stock_last_hidden(cell, params, padded, jnp.array(lengths)), alone,
      atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_model_masking_hoisted_equals_stock(cell):
  model = classifier.SentimentClassifier(cell=cell, num_words=50, embed_dim=6,
                                         hidden_dim=5, mask_padding=True)
  tokens = jnp.array([[3, 4, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0],
                      [1, 2, 3, 4, 5, 6]])
  params = model.init(jax.random.key(0), tokens)["params"]
  hoisted = model.apply({"params": params}, tokens)
  stock = model.clone(implementation="stock").apply({"params": params}, tokens)
  np.testing.assert_allclose(hoisted, stock, atol=1e-5)
  alone = model.apply({"params": params}, jnp.array([[3, 4, 5]]))
  np.testing.assert_allclose(hoisted[0], alone[0], atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_words", [10, 1000])  # table vs. token projection
def test_model_hoisted_equals_stock_forward_and_gradients(cell, num_words):
  model = classifier.SentimentClassifier(cell=cell, num_words=num_words,
                                         embed_dim=6, hidden_dim=5)
  tokens = jax.random.randint(jax.random.key(1), (4, 8), 0, num_words)
  assert (tokens.size > num_words) == (num_words == 10)
  params = model.init(jax.random.key(0), tokens)["params"]
  stock = model.clone(implementation="stock")
  assert_outputs_and_grads_close(
      lambda p: model.apply({"params": p}, tokens),
      lambda p: stock.apply({"params": p}, tokens), (params,))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mask_padding", [False, True])
def test_model_with_distinct_ids_equals_stock_forward_and_gradients(
    cell, mask_padding):
  model = classifier.SentimentClassifier(cell=cell, num_words=1000, embed_dim=6,
                                         hidden_dim=5, mask_padding=mask_padding)
  tokens = jax.random.randint(jax.random.key(1), (4, 8), 1, 40)
  tokens = tokens.at[:, -3:].set(0)  # padding at the end
  ids = batching.distinct_ids(np.asarray(tokens)[None], 1000)[0]
  assert 8 <= len(ids) < 40 and set(np.unique(tokens)) <= set(ids)
  repeated = np.concatenate([ids[::-1], ids[:5]])  # any order, repeats
  params = model.init(jax.random.key(0), tokens)["params"]
  stock = model.clone(implementation="stock")
  for given in (ids, repeated):
    assert_outputs_and_grads_close(
        lambda p, g=jnp.asarray(given): model.apply({"params": p}, tokens, g),
        lambda p: stock.apply({"params": p}, tokens), (params,))


def _masked_run(cell, reverse, params, inputs, mask):
  """recurrence.run_projected with a mask [batch, seq_len] (the model's
  masked loop): (last hidden state [batch, hidden], the state after every
  step [batch, seq_len, hidden])."""
  weights = recurrence.fused_weights(cell, params)
  projected = recurrence.matmul(jnp.swapaxes(inputs, 0, 1),
                                weights.w_i) + weights.b_i
  final, states = recurrence.run_projected(
      cell, weights, projected, mask.T, with_states=True, reverse=reverse)
  return final, jnp.swapaxes(states, 0, 1)


def _stock_run(cell, reverse, params, inputs, lengths):
  """nn.RNN over the stock cell with seq_lengths (the stock path's masking
  of end padding; backward: reverse + keep_order, as classifier.py runs it)."""
  rnn = nn.RNN(classifier.CELLS[cell](HIDDEN), return_carry=True,
               reverse=reverse, keep_order=True)
  carry, states = rnn.apply({"params": {"cell": params}}, inputs,
                            seq_lengths=lengths)
  return (carry[1] if cell == "lstm" else carry), states


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward",
                                                         "backward"])
def test_masked_gradients_equal_nn_rnn_with_seq_lengths(cell, reverse):
  """Rows of 9, 4, 1 and 6 real steps, padded at the end with inputs that
  would change the state if they were read: the masked loop's final hidden
  state, its states at the real steps, and the gradients of a loss on both
  w.r.t. the cell's parameters and the inputs equal nn.RNN's with
  seq_lengths. The padding's inputs get exactly zero gradient."""
  params = cell_params(cell)
  lengths = np.array([9, 4, 1, 6])
  inputs = jax.random.normal(jax.random.key(4), (4, 9, 6))
  mask = np.arange(9)[None] < lengths[:, None]  # [batch, seq_len]
  real = jnp.asarray(mask, jnp.float32)[..., None]

  def loss(run, where):
    def f(p, x):
      final, states = run(cell, reverse, p, x, where)
      # sin/cos: every element gets its own upstream gradient; states at
      # padding are left out (nn.RNN keeps computing them).
      return (jnp.sum(jnp.sin(final)) + jnp.sum(jnp.cos(states) * real),
              (final, states))
    return f

  with jax.default_matmul_precision("highest"):
    (_, (final, states)), grads = jax.value_and_grad(
        loss(_masked_run, jnp.asarray(mask)), argnums=(0, 1),
        has_aux=True)(params, inputs)
    (_, (want_final, want_states)), want = jax.value_and_grad(
        loss(_stock_run, jnp.asarray(lengths)), argnums=(0, 1),
        has_aux=True)(params, inputs)
  np.testing.assert_allclose(final, want_final, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(states * real, want_states * real, atol=1e-5,
                             rtol=1e-5)
  assert jax.tree.structure(grads[0]) == jax.tree.structure(want[0])
  for path, g in jax.tree_util.tree_leaves_with_path(grads[0]):
    w = want[0]
    for key in path:
      w = w[key.key]
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
  np.testing.assert_allclose(grads[1], want[1], atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(grads[1])[~mask], 0.0)
  # The rows' lengths matter: the full-length loop's gradients differ.
  unmasked, _ = jax.grad(loss(_masked_run, jnp.ones((4, 9), bool)),
                         has_aux=True)(params, inputs)
  assert not np.allclose(jax.tree.leaves(unmasked)[0],
                         jax.tree.leaves(grads[0])[0], atol=1e-3)
