"""Fast recurrences over the parameters of Flax's stock cells.

`nn.RNN(cell)` runs a whole cell per time step. Here, per layer:

* the input projection `x_t @ W_i + b` of *all* time steps is one large matmul
  before the time loop, and the recurrent kernels are fused into one
  `[hidden, gates * hidden]` matrix, so a forward step is one small matmul
  plus elementwise gate math;
* a custom VJP makes the backward loop do one small matmul per step too
  (`dh_{t-1} = dz_t @ W_h^T`); autodiff of the scan would also accumulate
  `dW_h += h_{t-1}^T dz_t` inside the loop. Here `dW_h` is one large matmul
  over all steps after the loop; the forward stores each step's gate
  activations, so the backward step is elementwise math plus that matmul;
* with a mask, both loops run only over the steps where some row is not
  padding (a loop with dynamic bounds): leading or trailing steps that are
  padding in every row would leave the state as it is anyway.

(Where the input projection itself is computed, per token or once over the
embedding table, is the model's choice: see
`SentimentClassifier._hoisted_direction`.)

The functions read the parameter dict of `nn.SimpleCell`, `nn.LSTMCell` or
`nn.GRUCell` unchanged (same names, same shapes); tests/test_recurrence.py
checks forward and gradients against `nn.RNN` + the stock cell.

The cells' elementwise math and the fused weights are in `cells.py`.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from flax_sentiment.model.cells import CellMath, CELLS, fused_weights, Weights

__all__ = ["CELLS", "Weights", "fused_weights", "matmul", "run_projected"]

Params = Any
Array = jax.Array
Carry = tuple[Array, ...]


def matmul(a: Array, b: Array, dtype=None) -> Array:
  """a @ b with operands in `dtype` (None: as given), accumulated and
  returned in float32. With dtype=bfloat16 this is the mixed-precision
  policy of the whole recurrence: bf16 matmul operands, float32 carries,
  gate math, stored residuals and gradients (no bf16 dynamic-update-slices
  or per-step converts of the carries inside the loops)."""
  if dtype is not None:
    a, b = a.astype(dtype), b.astype(dtype)
  return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def _keep(m_t: Array, new: Carry, old: Carry) -> Carry:
  """Rows whose mask m_t [batch] is 0 keep their old carry."""
  keep = m_t[:, None] > 0
  return tuple(jnp.where(keep, n, o) for n, o in zip(new, old))


def _active_steps(mask: Array | None, length: int):
  """[start, stop): the steps where some row is not padding. Outside them a
  masked step leaves every carry as it is, so the loops skip those steps."""
  if mask is None:
    return 0, length
  active = jnp.any(mask > 0, axis=1)
  return jnp.argmax(active), length - jnp.argmax(active[::-1])


def _loop(start, stop, step, init, unroll: int, reverse: bool = False):
  """fori_loop over t in [start, stop), backwards if `reverse`; `unroll`
  applies when the bounds are static (no mask)."""
  static = isinstance(start, int) and isinstance(stop, int)
  if not static and unroll != 1:
    raise ValueError(f"unroll={unroll} needs unmasked loops: with a mask the "
                     f"loop bounds are dynamic; use unroll=1")
  at = (lambda i: start + stop - 1 - i) if reverse else (lambda i: i)
  return jax.lax.fori_loop(start, stop, lambda i, s: step(at(i), s), init,
                           unroll=unroll if static else None)


def _zeros_per_step(example, length: int):
  """Buffers [length, ...] for a pytree of per-step values."""
  return jax.tree.map(lambda x: jnp.zeros((length,) + x.shape, x.dtype),
                      example)


def _put(buffers, t, values):
  return jax.tree.map(
      lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, t, 0),
      buffers, values)


def _at(buffers, t):
  return jax.tree.map(
      lambda b: jax.lax.dynamic_index_in_dim(b, t, 0, keepdims=False), buffers)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6, 7, 8))
def _run(cell: CellMath, carry0: Carry, projected: Array, w_h: Array,
         b_h: Array, mask: Array | None, unroll: int, dtype,
         with_states: bool):
  """Final carry after running `cell` over projected [seq_len, batch, G];
  mask [seq_len, batch] or None; `dtype` of the recurrent matmul operands.
  With `with_states`: (final carry, hidden state after every step
  [seq_len, batch, hidden]); steps that are padding in every row of the
  batch are skipped, and their entries left zero."""
  final, (_, stored) = _forward(cell, carry0, projected, w_h, b_h, mask,
                                unroll, dtype, with_states)
  return (final, stored[1]) if with_states else final


def _forward(cell, carry0, projected, w_h, b_h, mask, unroll, dtype,
             with_states):
  """(final carry, (residuals, (h_prev, [h_new])) per step [seq_len, ...])."""
  length = projected.shape[0]
  w_h_compute = w_h.astype(dtype)  # cast once, outside the loop

  def cell_step(carry, x_t, m_t):
    new, residuals = cell.forward(carry, x_t,
                                  matmul(carry[-1], w_h_compute, dtype) + b_h)
    if m_t is not None:
      new = _keep(m_t, new, carry)
    hs = (carry[-1], new[-1]) if with_states else (carry[-1],)
    return new, (residuals, hs)

  def step(t, state):
    carry, stored = state
    new, saved = cell_step(carry, _at(projected, t),
                           None if mask is None else _at(mask, t))
    return new, _put(stored, t, saved)

  example = jax.eval_shape(cell_step, carry0, projected[0],
                           None if mask is None else mask[0])[1]
  start, stop = _active_steps(mask, length)
  final, (residuals, hs) = _loop(
      start, stop, step, (carry0, _zeros_per_step(example, length)), unroll)
  return final, (residuals, hs)


def _run_fwd(cell, carry0, projected, w_h, b_h, mask, unroll, dtype,
             with_states):
  final, (residuals, hs) = _forward(cell, carry0, projected, w_h, b_h, mask,
                                    unroll, dtype, with_states)
  out = (final, hs[1]) if with_states else final
  return out, (residuals, hs[0], w_h, mask)


def _run_bwd(cell, unroll, dtype, with_states, saved, d_out):
  residuals, h_prev, w_h, mask = saved
  d_final, d_states = d_out if with_states else (d_out, None)
  w_h_t = w_h.T.astype(dtype)
  length = h_prev.shape[0]

  def cell_step(d_carry, res_t, m_t):
    d_new = d_carry
    if m_t is not None:
      keep = (m_t[:, None] > 0).astype(d_carry[0].dtype)
      d_new = tuple(d * keep for d in d_carry)
    d_prev, d_x, d_hh = cell.backward(res_t, d_new)
    d_hh_joined = jnp.concatenate(d_x if d_hh is None else d_hh, axis=-1)
    d_prev = d_prev[:-1] + (d_prev[-1] + matmul(d_hh_joined, w_h_t, dtype),)
    if m_t is not None:
      d_prev = tuple(p + d * (1.0 - keep) for p, d in zip(d_prev, d_carry))
    return d_prev, (d_x, d_hh)

  def step(t, state):
    d_carry, stored = state
    if d_states is not None:  # the state output at t is the new carry's h
      d_carry = d_carry[:-1] + (d_carry[-1] + _at(d_states, t),)
    d_prev, grads = cell_step(d_carry, _at(residuals, t),
                              None if mask is None else _at(mask, t))
    return d_prev, _put(stored, t, grads)

  example = jax.eval_shape(cell_step, d_final, _at(residuals, 0),
                           None if mask is None else mask[0])[1]
  start, stop = _active_steps(mask, length)
  d_carry0, (d_projected, d_hhs) = _loop(
      start, stop, step, (d_final, _zeros_per_step(example, length)), unroll,
      reverse=True)
  d_projected = jnp.concatenate(d_projected, axis=-1)
  d_hhs = d_projected if d_hhs is None else jnp.concatenate(d_hhs, axis=-1)
  # One [hidden, seq_len*batch] @ [seq_len*batch, G] matmul; as dot_general on
  # 2-D views it ran 2.5x faster than einsum("tbh,tbg->hg") on CPU.
  d_w_h = jax.lax.dot_general(
      h_prev.reshape(-1, h_prev.shape[-1]).astype(dtype),
      d_hhs.reshape(-1, d_hhs.shape[-1]).astype(dtype),
      (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  d_b_h = jnp.sum(d_hhs, axis=(0, 1))
  return (d_carry0, d_projected, d_w_h, d_b_h,
          None if mask is None else jnp.zeros_like(mask))


_run.defvjp(_run_fwd, _run_bwd)




def _run_pallas(cell: str, weights: Weights, projected: Array,
                mask: Array | None, with_states: bool, reverse: bool):
  """run_projected's result from the Mosaic GPU kernels; states of steps
  that are padding in every row are zeroed, as the XLA loops leave them."""
  from flax_sentiment.model import pallas_recurrence  # pylint: disable=g-import-not-at-top
  final, states = pallas_recurrence.run(
      cell, projected, weights.w_h.astype(jnp.float32),
      weights.b_h.astype(jnp.float32), mask, with_states)
  if not with_states:
    return final[-1]
  if mask is not None:
    states = states * jnp.any(mask > 0, axis=1)[:, None, None]
  return final[-1], (states[::-1] if reverse else states)


def run_projected(cell: str, weights: Weights, projected: Array,
                  mask: Array | None = None, *, unroll: int = 1, dtype=None,
                  with_states: bool = False, reverse: bool = False,
                  pallas: bool = False):
  """Runs `cell` over projected inputs [seq_len, batch, G] (x_t @ w_i + b_i
  for every step) with optional mask [seq_len, batch] (0 = padding: the
  state is left untouched). Returns the last hidden state [batch, hidden],
  float32, and with `with_states` also the hidden state after every step
  [seq_len, batch, hidden] (entries of steps that are padding in every row
  stay zero). `reverse`: from the last step to the first (the backward
  direction of a bidirectional layer; with a mask it starts at each row's
  last real step); states are returned in the original order. `dtype`: of
  the recurrent matmul operands (None: the weights' own). `pallas`: the
  loops run as Mosaic GPU kernels (`pallas_recurrence`; Hopper GPUs; bf16
  recurrent matmuls whatever `dtype`; `unroll` does not apply)."""
  spec = CELLS[cell]
  projected = projected.astype(jnp.float32)
  if reverse:
    projected = projected[::-1]
    mask = None if mask is None else mask[::-1]
  if mask is not None:
    mask = mask.astype(jnp.float32)
  if pallas:
    return _run_pallas(cell, weights, projected, mask, with_states, reverse)
  zeros = jnp.zeros((projected.shape[1], weights.w_h.shape[0]), jnp.float32)
  out = _run(spec, (zeros,) * spec.num_carries, projected,
             weights.w_h.astype(jnp.float32),
             weights.b_h.astype(jnp.float32), mask, unroll,
             jnp.dtype(dtype or weights.w_h.dtype), with_states)
  if not with_states:
    return out[-1]
  final, states = out
  return final[-1], (states[::-1] if reverse else states)
