"""Fast recurrences over the parameters of Flax's stock cells.

`nn.RNN(cell)` runs a whole cell per time step: for an LSTM that is eight small
matmuls per step, four of them on the input. Here the input projection
`x_t @ W_i` of *all* time steps is one large matmul before the scan, and the
recurrent kernels are fused into one `[hidden, gates * hidden]` matrix, so each
step is one `[batch, hidden] @ [hidden, gates * hidden]` matmul plus
elementwise gate math.

The functions read the parameter dict of `nn.SimpleCell`, `nn.LSTMCell` or
`nn.GRUCell` unchanged (same names, same shapes), so checkpoints and
`nn.RNN` give the same numbers (tests/test_recurrence.py checks forward and
gradients against `nn.RNN` + the stock cell).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

Params = Any
Array = jax.Array

# Gate order inside the fused matrices, per cell. Input kernels named "i*",
# recurrent kernels "h*", as in flax.linen.recurrent.
LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")


def _concat(params: Params, names: list[str], leaf: str, dtype) -> Array:
  return jnp.concatenate([params[n][leaf] for n in names], axis=-1).astype(dtype)


def _scan_last(step: Callable, carry, projected: Array, mask: Array | None,
               unroll: int):
  """Runs `step` over time-major `projected` [seq_len, batch, features].

  Where `mask` [batch, seq_len] is False the carry is left unchanged, so
  padding (at either end) does not touch the state. Returns the final carry.
  """
  if mask is None:
    def body(carry, x_t):
      return step(carry, x_t), None
    carry, _ = jax.lax.scan(body, carry, projected, unroll=unroll)
    return carry

  def masked_body(carry, inputs):
    x_t, m_t = inputs
    new_carry = step(carry, x_t)
    m_t = m_t[:, None]
    return jax.tree.map(lambda new, old: jnp.where(m_t, new, old),
                        new_carry, carry), None

  carry, _ = jax.lax.scan(masked_body, carry, (projected, mask.T),
                          unroll=unroll)
  return carry


def simple_rnn(params: Params, inputs: Array, mask: Array | None = None, *,
               unroll: int = 1, dtype=jnp.float32) -> Array:
  """`nn.SimpleCell` (tanh) over `inputs` [batch, seq_len, in]; returns the
  last hidden state [batch, hidden]."""
  w_i = params["i"]["kernel"].astype(dtype)
  b_i = params["i"]["bias"].astype(dtype)
  w_h = params["h"]["kernel"].astype(dtype)
  projected = jnp.einsum("btd,dh->tbh", inputs.astype(dtype), w_i) + b_i

  def step(h, x_t):
    return jnp.tanh(x_t + h @ w_h)

  h0 = jnp.zeros((inputs.shape[0], w_h.shape[0]), dtype)
  return _scan_last(step, h0, projected, mask, unroll)


def lstm(params: Params, inputs: Array, mask: Array | None = None, *,
         unroll: int = 1, dtype=jnp.float32) -> Array:
  """`nn.LSTMCell` over `inputs` [batch, seq_len, in]; returns the last hidden
  state h [batch, hidden]."""
  w_i = _concat(params, [f"i{g}" for g in LSTM_GATES], "kernel", dtype)
  w_h = _concat(params, [f"h{g}" for g in LSTM_GATES], "kernel", dtype)
  b_h = _concat(params, [f"h{g}" for g in LSTM_GATES], "bias", dtype)
  projected = jnp.einsum("btd,dg->tbg", inputs.astype(dtype), w_i) + b_h

  def step(carry, x_t):
    c, h = carry
    i, f, g, o = jnp.split(x_t + h @ w_h, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return c, h

  zeros = jnp.zeros((inputs.shape[0], w_h.shape[0]), dtype)
  _, h = _scan_last(step, (zeros, zeros), projected, mask, unroll)
  return h


def gru(params: Params, inputs: Array, mask: Array | None = None, *,
        unroll: int = 1, dtype=jnp.float32) -> Array:
  """`nn.GRUCell` over `inputs` [batch, seq_len, in]; returns the last hidden
  state [batch, hidden]."""
  w_i = _concat(params, [f"i{g}" for g in GRU_GATES], "kernel", dtype)
  b_i = _concat(params, [f"i{g}" for g in GRU_GATES], "bias", dtype)
  w_h = _concat(params, [f"h{g}" for g in GRU_GATES], "kernel", dtype)
  b_hn = params["hn"]["bias"].astype(dtype)
  projected = jnp.einsum("btd,dg->tbg", inputs.astype(dtype), w_i) + b_i

  def step(h, x_t):
    x_r, x_z, x_n = jnp.split(x_t, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ w_h, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + b_hn))
    return (1.0 - z) * n + z * h

  h0 = jnp.zeros((inputs.shape[0], w_h.shape[0]), dtype)
  return _scan_last(step, h0, projected, mask, unroll)


RECURRENCES = {"rnn": simple_rnn, "lstm": lstm, "gru": gru}
