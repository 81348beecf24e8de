"""The one check that a fast path computes what Flax's stock cells compute:
outputs and gradients equal, within float32 rounding."""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flax_sentiment.model import classifier, recurrence


def assert_outputs_and_grads_close(fast: Callable, reference: Callable,
                                   args: Sequence, argnums=0,
                                   atol: float = 1e-5, rtol: float = 1e-5):
  """fast(*args) ≈ reference(*args), and so are the gradients of
  sum(sin(output)) with respect to args[argnums] (sin: every output element
  gets its own upstream gradient)."""
  np.testing.assert_allclose(fast(*args), reference(*args), atol=atol,
                             rtol=rtol)

  def loss(f):
    return lambda *a: jnp.sum(jnp.sin(f(*a)))
  grads = jax.grad(loss(fast), argnums=argnums)(*args)
  want = jax.grad(loss(reference), argnums=argnums)(*args)
  assert jax.tree.structure(grads) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def stock_last_hidden(cell: str, hidden: int, params, inputs,
                      seq_lengths=None):
  """nn.RNN over the stock Flax cell, inputs [batch, seq_len, in]: the last
  (real) hidden state [batch, hidden]."""
  rnn = nn.RNN(classifier.CELLS[cell](hidden))
  carry, _ = rnn.apply({"params": {"cell": params}}, inputs,
                       seq_lengths=seq_lengths, return_carry=True)
  return carry[1] if cell == "lstm" else carry


def hoisted_last_hidden(cell: str, params, inputs, mask=None, *,
                        unroll: int = 1, dtype=jnp.float32):
  """`recurrence.run_projected` over inputs [batch, seq_len, in] with an
  optional mask [batch, seq_len] (False = padding), from the stock cell's
  parameters: the last hidden state [batch, hidden]."""
  weights = recurrence.fused_weights(cell, params)
  projected = recurrence.matmul(jnp.swapaxes(inputs, 0, 1), weights.w_i,
                                dtype) + weights.b_i
  return recurrence.run_projected(
      cell, weights, projected, None if mask is None else mask.T,
      unroll=unroll, dtype=dtype)
