"""The recurrent cells' math, without matmuls, and their fused weights.

A cell here is a pair of elementwise functions (no matmuls):
`forward(carry, x_t, hh_t) -> (new carry, residuals)` and
`backward(residuals, d_new_carry) -> (d_carry, d_x_t, d_hh_t)`, where `x_t`
[batch, gates*hidden] is the projected input and `hh_t = h @ W_h + b_h` the
recurrent pre-activation. Carries are tuples whose last entry is `h`. The
backward passes are written out because autodiff of the per-gate slices
builds pads and concatenations that made the backward loop ~5x slower than
the forward one on CPU (measured).

`fused_weights` reads the parameter dict of `nn.SimpleCell`, `nn.LSTMCell` or
`nn.GRUCell` unchanged (same names, same shapes) into the fused matrices the
loops of `recurrence.py` use.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from flax_sentiment.configuration import fields

Params = Any
Array = jax.Array

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")


@dataclasses.dataclass(frozen=True)
class CellMath:
  """A cell's elementwise forward and backward step."""
  num_carries: int
  forward: Callable
  backward: Callable


# Residuals and per-step gradients are kept as tuples of [batch, hidden]
# pieces, one per gate, and joined once after the loop: stacking one
# [32, 512] array per scan step cost ~19 us on CPU, four [32, 128] ones ~5 us
# (XLA's dynamic-update-slice; measured). `backward` returns
# (d_carry, d_x pieces, d_hh pieces or None when equal to d_x).


def _simple_forward(carry, x_t, hh_t):
  h = jnp.tanh(x_t + hh_t)
  return (h,), (h,)


def _simple_backward(residuals, d_new):
  (h,), (d_h,) = residuals, d_new
  return (jnp.zeros_like(d_h),), (d_h * (1.0 - h * h),), None


def _lstm_scale(hidden: int, dtype) -> Array:
  """Gate pre-activation scale: sigmoid(x) = (tanh(x / 2) + 1) / 2 for the
  i, f, o gates, tanh(x) for g. One tanh over the whole contiguous
  [batch, 4 * hidden] block is ~2x faster on CPU than four slices each
  through its own activation (measured)."""
  return jnp.concatenate([jnp.full(2 * hidden, 0.5, dtype),
                          jnp.ones(hidden, dtype), jnp.full(hidden, 0.5, dtype)])


def _lstm_forward(carry, x_t, hh_t):
  c, _ = carry
  t = jnp.tanh((x_t + hh_t) * _lstm_scale(c.shape[-1], x_t.dtype))
  t_i, t_f, g, t_o = jnp.split(t, 4, axis=-1)
  i, f, o = 0.5 * t_i + 0.5, 0.5 * t_f + 0.5, 0.5 * t_o + 0.5
  new_c = f * c + i * g
  tanh_c = jnp.tanh(new_c)
  return (new_c, o * tanh_c), (i, f, g, o, c, tanh_c)


def _lstm_backward(residuals, d_new):
  i, f, g, o, c, tanh_c = residuals
  d_c, d_h = d_new
  d_c = d_c + d_h * o * (1.0 - tanh_c * tanh_c)
  # Through gate = sigmoid(pre) (i, f, o) or tanh(pre) (g).
  d_pre = (d_c * g * i * (1.0 - i), d_c * c * f * (1.0 - f),
           d_c * i * (1.0 - g * g), d_h * tanh_c * o * (1.0 - o))
  return (d_c * f, jnp.zeros_like(d_h)), d_pre, None


def _gru_forward(carry, x_t, hh_t):
  (h,) = carry
  hidden = h.shape[-1]
  rz = 0.5 * jnp.tanh(0.5 * (x_t[:, :2 * hidden] + hh_t[:, :2 * hidden])) + 0.5
  r, z = jnp.split(rz, 2, axis=-1)
  hh_n = hh_t[:, 2 * hidden:]
  n = jnp.tanh(x_t[:, 2 * hidden:] + r * hh_n)
  return ((1.0 - z) * n + z * h,), (r, z, n, hh_n, h)


def _gru_backward(residuals, d_new):
  r, z, n, hh_n, h = residuals
  (d_h,) = d_new
  d_n = d_h * (1.0 - z) * (1.0 - n * n)
  d_r = d_n * hh_n * r * (1.0 - r)
  d_z = d_h * (h - n) * z * (1.0 - z)
  return (d_h * z,), (d_r, d_z, d_n), (d_r, d_z, d_n * r)


SIMPLE = CellMath(1, _simple_forward, _simple_backward)
LSTM = CellMath(2, _lstm_forward, _lstm_backward)
GRU = CellMath(1, _gru_forward, _gru_backward)


@dataclasses.dataclass(frozen=True)
class Weights:
  """A cell's parameters fused: input kernel w_i [in, G] and bias b_i [G],
  recurrent kernel w_h [hidden, G] and bias b_h [G], G = gates * hidden."""
  w_i: Array
  b_i: Array
  w_h: Array
  b_h: Array


def _concat(params: Params, names: list[str], leaf: str, dtype) -> Array:
  return jnp.concatenate([params[n][leaf] for n in names], axis=-1).astype(dtype)


def fused_weights(cell: str, params: Params, dtype=jnp.float32) -> Weights:
  """The fused matrices of a `nn.SimpleCell`/`LSTMCell`/`GRUCell` param dict,
  in `dtype` (keep float32 and pass a matmul dtype for mixed precision)."""
  if cell == "rnn":
    w_h = params["h"]["kernel"].astype(dtype)
    return Weights(params["i"]["kernel"].astype(dtype),
                   params["i"]["bias"].astype(dtype), w_h,
                   jnp.zeros(w_h.shape[1], dtype))
  if cell == "lstm":
    b_h = _concat(params, [f"h{g}" for g in LSTM_GATES], "bias", dtype)
    return Weights(_concat(params, [f"i{g}" for g in LSTM_GATES], "kernel", dtype),
                   jnp.zeros_like(b_h),
                   _concat(params, [f"h{g}" for g in LSTM_GATES], "kernel", dtype),
                   b_h)
  if cell == "gru":
    w_h = _concat(params, [f"h{g}" for g in GRU_GATES], "kernel", dtype)
    return Weights(_concat(params, [f"i{g}" for g in GRU_GATES], "kernel", dtype),
                   _concat(params, [f"i{g}" for g in GRU_GATES], "bias", dtype),
                   w_h,
                   jnp.concatenate([jnp.zeros(2 * w_h.shape[0], dtype),
                                    params["hn"]["bias"].astype(dtype)]))
  raise ValueError(f"unknown cell {cell!r}")


CELLS = dict(zip(fields.CELL_NAMES, (SIMPLE, LSTM, GRU)))
