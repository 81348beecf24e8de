"""The time loop of a recurrence in one Mosaic GPU kernel (Hopper and newer).

`recurrence.py` runs one XLA while-loop iteration per time step; on a GPU
every iteration launches several kernels (~20 us per step, forward and
backward), while PyTorch's cuDNN keeps the weights on chip for the whole
sequence (~5 us). Here the whole loop of one direction is one kernel launch
per pass, forward and backward, under a custom VJP of the same form as
`recurrence._run`:

* layout: everything inside is transposed, `gates^T [G, bB] = W_h^T [G, H] .
  h^T [H, bB]`, so the G = gates * hidden rows are WGMMA's M (a multiple of
  64) and a block of bB batch rows is its N. One CTA (one warpgroup) per
  block of bB rows; rows are independent, so CTAs never synchronise;
* W_h^T lives in shared memory in bfloat16 for the whole loop (128 KiB for
  LSTM(128); float32 would not fit in 227 KiB), h^T in bfloat16 beside it.
  Matmul operands are bf16 with float32 accumulation; carries, gate math,
  stored residuals and gradients are float32 (`recurrence.matmul`'s
  mixed-precision policy with dtype=bfloat16);
* the forward kernel stores each step's gate activations (the residuals of
  `cells.py`); the backward kernel runs the loop in reverse, applies the
  cells' own elementwise backward (`cells.CELLS[cell].backward`, which is
  elementwise and so works on transposed pieces unchanged), and needs one
  matmul per step, `dh^T [H, bB] = W_h [H, G] . dgates^T [G, bB]` (the same
  shared-memory W_h^T read transposed). dW_h, the input-projection and bias
  gradients stay large matmuls outside (`_run_bwd` below);
* SimpleRNN and GRU kernels read each step's inputs (projected input,
  residuals, mask) from shared memory, copied there by TMA during the step
  before (`_StepInputs`, `PREFETCH_CELLS`); the LSTM's load them from global
  memory inside the step (with the prefetch its kernels spill registers);
* masks: a row whose mask is 0 at a step keeps its carry (as in
  `recurrence.py`); the kernel runs every step, the states of steps that are
  padding in every row are zeroed outside (as `recurrence.py` leaves them).

The kernels are checked without a GPU (tests/test_pallas_recurrence.py): run
in jax's Mosaic GPU interpreter with its race detector against the stock
cells, and lowered for CUDA (`jax.export`, platforms=["cuda"]) at the
production shapes, which catches shared-memory overflow and bad
WGMMA/swizzle shapes. Speed and ptxas register spills need a GPU
(benchmarks/gpu_check.sh).
"""

import dataclasses
import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp

from flax_sentiment.model.cells import CELLS

Array = jax.Array

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# Residual pieces per step, as cells.py's backward takes them ([H, bB] each).
NUM_RESIDUALS = {"rnn": 1, "lstm": 6, "gru": 5}
SHARED_MEMORY_BYTES = 227 * 1024  # an H100/H200 SM, per CTA
MAX_TMA_ROWS = 256  # one TMA copy moves at most 256 rows per dimension


class PallasUnavailableError(ValueError):
  """implementation='pallas' cannot run here or at these shapes."""


def _plgpu():
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top
  return plgpu


def _pl():
  from jax.experimental import pallas as pl  # pylint: disable=g-import-not-at-top
  return pl


@dataclasses.dataclass(frozen=True)
class Plan:
  """Static shapes of one kernel call."""
  cell: str
  hidden: int
  batch: int          # padded to a multiple of `block`
  block: int          # bB: batch rows per CTA (WGMMA's N)
  length: int
  masked: bool
  prefetch: bool = False  # per-step inputs copied ahead by TMA (_StepInputs)

  @property
  def gates(self) -> int:
    return GATES[self.cell] * self.hidden

  @property
  def swizzle(self) -> int:
    """Bytes: set by the right operand's rows (bB bf16 values); the left
    operand must use the same."""
    return min(128, 2 * self.block)

  def transforms(self):
    plgpu = _plgpu()
    return (plgpu.TilingTransform((8, self.swizzle // 2)),
            plgpu.SwizzleTransform(self.swizzle))

  def prefetched_pieces(self, backward: bool) -> int:
    """[H, bB] float32 pieces a step reads from global memory: the
    projected input per gate (forward) or the residuals and the state
    gradient (backward), and the mask."""
    pieces = NUM_RESIDUALS[self.cell] + 1 if backward else GATES[self.cell]
    return pieces + int(self.masked)

  def shared_memory_bytes(self, prefetch: bool | None = None) -> int:
    """W_h^T plus the right-operand buffer, both bf16, and (with
    `prefetch`) one float32 buffer per piece a step reads (the larger of
    forward and backward)."""
    prefetch = self.prefetch if prefetch is None else prefetch
    pieces = max(self.prefetched_pieces(False), self.prefetched_pieces(True))
    return (2 * self.gates * self.hidden + 2 * self.gates * self.block
            + (4 * pieces * self.hidden * self.block if prefetch else 0))


# Cells whose kernels read each step's inputs through shared memory, copied
# one step ahead by TMA (`_StepInputs`), where that fits. Measured on an H200
# (benchmarks/kernel_timing.py, T = 512, us per step forward + backward,
# without -> with, unmasked / masked): SimpleRNN 1.99 -> 1.92 / 2.73 ->
# 2.30, GRU 7.79 -> 6.56 / 8.62 -> 7.25; LSTM 7.25 -> 8.22 / 8.09 -> 9.47:
# its kernels then run out of registers (255, spilling 360 bytes), so the
# LSTM keeps plain global loads (docs/performance.md).
PREFETCH_CELLS = ("rnn", "gru")

# bB: batch rows per CTA. 16 gives more CTAs for small batches; 32 would keep
# ~13 * 32 float32 values live per thread (by estimate) and spill; 8 has no
# valid swizzle for its 16-byte operand rows (lowering rejects it).
BATCH_BLOCK = 16


def plan_for(cell: str, hidden: int, batch: int, length: int,
             masked: bool) -> Plan:
  """The kernel plan, or PallasUnavailableError naming what does not fit."""
  block = BATCH_BLOCK
  plan = Plan(cell, hidden, -(-batch // block) * block, block, length, masked,
              prefetch=cell in PREFETCH_CELLS)
  if plan.shared_memory_bytes() > SHARED_MEMORY_BYTES:  # no room to prefetch
    plan = dataclasses.replace(plan, prefetch=False)
  if hidden % 64:
    raise PallasUnavailableError(
        f"implementation='pallas' needs hidden_dim a multiple of 64 (WGMMA "
        f"rows), got {hidden}; use --config.implementation=hoisted")
  needed = plan.shared_memory_bytes(prefetch=False)
  if needed > SHARED_MEMORY_BYTES:
    raise PallasUnavailableError(
        f"implementation='pallas': a {cell.upper()} of hidden_dim {hidden} "
        f"needs {needed // 1024} KiB of shared memory for "
        f"its recurrent weights (bf16), over the "
        f"{SHARED_MEMORY_BYTES // 1024} KiB of a Hopper SM; use "
        f"--config.implementation=hoisted")
  return plan


def cannot_run(cell: str, hidden: int, batch: int, length: int,
               masked: bool, device: jax.Device | None = None) -> str | None:
  """Why implementation='pallas' cannot run this recurrence on `device`
  (default: the first), as the one line a user reads, or None."""
  reason = unavailable_reason(device)
  if reason:
    return (f"config.implementation='pallas' {reason}; use "
            f"--config.implementation=hoisted")
  try:
    plan_for(cell, hidden, batch, length, masked)
  except PallasUnavailableError as error:
    return str(error)
  return None


def _load(ref, layout):
  """A whole global-memory ref into registers in `layout` (jax 0.10 wants
  an index, 0.11 deprecates it, 0.12 has none; "optimized" transfers exist
  only from shared memory)."""
  plgpu = _plgpu()
  index = inspect.signature(plgpu.load).parameters.get("idx")
  if index is not None and index.default is inspect.Parameter.empty:
    return plgpu.load(ref, (), layout=layout, optimized=False)
  return plgpu.load(ref, layout=layout, optimized=False)


def _sigmoid(x: Array) -> Array:
  return 0.5 * jnp.tanh(0.5 * x) + 0.5


# Forward cell math on per-gate pieces [H, bB] (x: projected input with b_h
# folded in, except GRU's n-gate bias, which sits inside r * (W h + b)).
# Returns (new carry, residuals as cells.py's backward takes them).

def _rnn_step(carry, x, hh):
  h = jnp.tanh(x[0] + hh[0])
  return (h,), (h,)


def _lstm_step(carry, x, hh):
  c, _ = carry
  i, f = _sigmoid(x[0] + hh[0]), _sigmoid(x[1] + hh[1])
  g, o = jnp.tanh(x[2] + hh[2]), _sigmoid(x[3] + hh[3])
  new_c = f * c + i * g
  tanh_c = jnp.tanh(new_c)
  return (new_c, o * tanh_c), (i, f, g, o, c, tanh_c)


def _gru_step(carry, x, hh):
  (h,) = carry
  r, z = _sigmoid(x[0] + hh[0]), _sigmoid(x[1] + hh[1])
  n = jnp.tanh(x[2] + r * hh[2])
  return ((1.0 - z) * n + z * h,), (r, z, n, hh[2], h)


STEPS: dict[str, Callable] = {"rnn": _rnn_step, "lstm": _lstm_step,
                              "gru": _gru_step}


def _copy_weights(plan: Plan, w_gmem, w_smem, barriers):
  """W_h^T [G, H] bf16 from global into shared memory, in copies of at
  most 256 rows (a TMA limit)."""
  plgpu, pl = _plgpu(), _pl()
  chunks = range(0, plan.gates, MAX_TMA_ROWS)
  for n, start in enumerate(chunks):
    rows = pl.ds(start, min(MAX_TMA_ROWS, plan.gates - start))
    plgpu.copy_gmem_to_smem(w_gmem.at[rows], w_smem.at[rows], barriers.at[n])
  for n, _ in enumerate(chunks):
    plgpu.barrier_wait(barriers.at[n])


def _num_chunks(plan: Plan) -> int:
  return -(-plan.gates // MAX_TMA_ROWS)


class _StepInputs:
  """A step's [H, bB] float32 input pieces, `sources[n](t)` being slices
  of global arrays at step t.

  With `buffer` and `barriers` (shared memory, `Plan.prefetch`) they are
  read through shared memory: `start(t)` issues their TMA copies,
  `take(t)` waits for them and loads them into registers; the loops issue
  step t+1's copies right after taking step t's, so the copies' latency
  hides behind a step's work. Without, `take(t)` loads them from global
  memory (and `start` does nothing)."""

  def __init__(self, sources, buffer=None, barriers=None):
    self.sources, self.buffer, self.barriers = sources, buffer, barriers

  def start(self, t):
    if self.buffer is None:
      return
    for n, source in enumerate(self.sources):
      _plgpu().copy_gmem_to_smem(source(t), self.buffer.at[n],
                                 self.barriers.at[n])

  def take(self, t, next_t=None):
    """Step t's pieces; then starts the copies of step `next_t` (a traced
    index, or None for no next step) if it is >= 0 and < the length."""
    plgpu, pl = _plgpu(), _pl()
    layout = plgpu.Layout.WGMMA
    if self.buffer is None:
      return [_load(source(t), layout) for source in self.sources]
    for n, _ in enumerate(self.sources):
      plgpu.barrier_wait(self.barriers.at[n])
    values = [_load(self.buffer.at[n], layout)
              for n, _ in enumerate(self.sources)]
    plgpu.commit_smem()  # every thread has read before the next copies land
    if next_t is not None:
      index, length = next_t

      @pl.when(jnp.logical_and(index >= 0, index < length))
      def _():
        self.start(index)
    return values


def _matmul(acc_shape, a, b):
  """acc [M, N] f32 = a [M, K] . b [K, N] (shared-memory refs, WGMMA)."""
  plgpu, pl = _plgpu(), _pl()

  def scope(acc_ref):
    plgpu.wgmma(acc_ref, a, b)
    return acc_ref[...]  # awaits the WGMMA
  return pl.run_scoped(scope, plgpu.ACC(acc_shape, jnp.float32))


def _piece(ref, rows, start: int, size: int, t):
  """ref[t, start:start + size, rows]: a step's [H, bB] piece of a [T, F,
  Bp] global array. (Masks come broadcast over H, [T, H, Bp]: jax 0.10
  cannot load a [bB] row in the layout that broadcasts over WGMMA rows.)"""
  return ref.at[t, _pl().ds(start, size), rows]


def _forward_kernel(plan: Plan, save: bool):
  """Kernel body: refs in, outputs, scratch (see `forward`)."""
  plgpu, pl = _plgpu(), _pl()
  H, bB, k = plan.hidden, plan.block, GATES[plan.cell]
  step_math = STEPS[plan.cell]
  num_carries = CELLS[plan.cell].num_carries
  layout = plgpu.Layout.WGMMA

  def body(*refs):
    refs = list(refs)
    x_ref, w_ref = refs.pop(0), refs.pop(0)
    bias_ref = refs.pop(0) if plan.cell == "gru" else None
    mask_ref = refs.pop(0) if plan.masked else None
    finals = [refs.pop(0) for _ in range(num_carries)]
    states_ref = refs.pop(0)
    residual_refs = ([refs.pop(0) for _ in range(NUM_RESIDUALS[plan.cell])]
                     if save else [])
    w_smem, h_smem, barriers, *prefetch = refs
    rows = pl.ds(jax.lax.axis_index("block") * bB, bB)
    sources = [functools.partial(_piece, x_ref, rows, j * H, H)
               for j in range(k)]
    if mask_ref is not None:
      sources.append(functools.partial(_piece, mask_ref, rows, 0, H))
    inputs = _StepInputs(sources, *prefetch)
    inputs.start(0)  # overlaps the weights' copy

    _copy_weights(plan, w_ref, w_smem, barriers)
    zeros = plgpu.layout_cast(jnp.zeros((H, bB), jnp.float32), layout)
    h_smem[...] = zeros.astype(jnp.bfloat16)
    plgpu.commit_smem()
    bias_n = (_load(bias_ref.at[:, rows], layout) if bias_ref is not None
              else None)

    def step(t, carry):
      # The inputs that do not depend on h first (without prefetch, their
      # global loads overlap the WGMMA).
      pieces = inputs.take(t, (t + 1, plan.length))
      x = pieces[:k]
      keep = None if mask_ref is None else pieces[k] > 0
      gates = _matmul((k * H, bB), w_smem, h_smem)
      hh = [gates[j * H:(j + 1) * H] for j in range(k)]
      if bias_n is not None:
        hh[2] = hh[2] + bias_n
      new, residuals = step_math(carry, x, hh)
      if keep is not None:
        new = tuple(jnp.where(keep, n, o) for n, o in zip(new, carry))
      states_ref[t, :, rows] = new[-1]
      for ref, value in zip(residual_refs, residuals):
        ref[t, :, rows] = value
      h_smem[...] = new[-1].astype(jnp.bfloat16)
      plgpu.commit_smem()
      return new

    final = jax.lax.fori_loop(0, plan.length, step, (zeros,) * num_carries)
    for ref, value in zip(finals, final):
      ref[:, rows] = value
  return body


def _backward_kernel(plan: Plan, with_states: bool):
  plgpu, pl = _plgpu(), _pl()
  H, bB, k = plan.hidden, plan.block, GATES[plan.cell]
  cell = CELLS[plan.cell]
  layout = plgpu.Layout.WGMMA

  def body(*refs):
    refs = list(refs)
    w_ref = refs.pop(0)
    residual_refs = [refs.pop(0) for _ in range(NUM_RESIDUALS[plan.cell])]
    mask_ref = refs.pop(0) if plan.masked else None
    d_final_refs = [refs.pop(0) for _ in range(cell.num_carries)]
    d_states_ref = refs.pop(0) if with_states else None
    d_x_ref = refs.pop(0)
    d_hh_ref = refs.pop(0) if plan.cell == "gru" else None
    d_carry0_refs = [refs.pop(0) for _ in range(cell.num_carries)]
    w_smem, dg_smem, barriers, *prefetch = refs
    rows = pl.ds(jax.lax.axis_index("block") * bB, bB)
    per_step = residual_refs + [r for r in (d_states_ref, mask_ref)
                                if r is not None]
    inputs = _StepInputs([functools.partial(_piece, r, rows, 0, H)
                          for r in per_step], *prefetch)
    inputs.start(plan.length - 1)  # overlaps the weights' copy
    _copy_weights(plan, w_ref, w_smem, barriers)
    d_final = tuple(_load(r.at[:, rows], layout) for r in d_final_refs)

    def step(i, d_carry):
      t = plan.length - 1 - i
      pieces = inputs.take(t, (t - 1, plan.length))
      residuals = tuple(pieces[:len(residual_refs)])
      rest = pieces[len(residual_refs):]
      if d_states_ref is not None:
        d_carry = d_carry[:-1] + (d_carry[-1] + rest.pop(0),)
      d_new = d_carry
      if mask_ref is not None:
        keep = (rest.pop(0) > 0).astype(jnp.float32)
        d_new = tuple(d * keep for d in d_carry)
      d_prev, d_x, d_hh = cell.backward(residuals, d_new)
      d_hh = d_x if d_hh is None else d_hh
      for j in range(k):
        d_x_ref[t, pl.ds(j * H, H), rows] = d_x[j]
        if d_hh_ref is not None:
          d_hh_ref[t, pl.ds(j * H, H), rows] = d_hh[j]
        dg_smem[pl.ds(j * H, H), :] = d_hh[j].astype(jnp.bfloat16)
      plgpu.commit_smem()
      d_h = _matmul((H, bB), w_smem.T, dg_smem)
      d_prev = d_prev[:-1] + (d_prev[-1] + d_h,)
      if mask_ref is not None:
        d_prev = tuple(p + d * (1.0 - keep) for p, d in zip(d_prev, d_carry))
      return d_prev

    d_carry0 = jax.lax.fori_loop(0, plan.length, step, d_final)
    for ref, value in zip(d_carry0_refs, d_carry0):
      ref[:, rows] = value
  return body


def _scratch(plan: Plan, operand_rows: int, pieces: int):
  """W_h^T, the matmul's right operand, the weight copies' barriers, and
  with prefetch the `pieces` per-step input buffers and their barriers."""
  plgpu = _plgpu()
  scratch = [plgpu.SMEM((plan.gates, plan.hidden), jnp.bfloat16,
                        transforms=plan.transforms()),
             plgpu.SMEM((operand_rows, plan.block), jnp.bfloat16,
                        transforms=plan.transforms()),
             plgpu.Barrier(num_barriers=_num_chunks(plan))]
  if plan.prefetch:
    scratch += [plgpu.SMEM((pieces, plan.hidden, plan.block), jnp.float32),
                plgpu.Barrier(num_barriers=pieces)]
  return scratch


def _call(body, plan: Plan, out_shape, scratch, interpret):
  plgpu = _plgpu()
  kwargs = {} if interpret is None else {"interpret": interpret}
  return plgpu.kernel(body, out_type=out_shape, scratch_types=scratch,
                      grid=(plan.batch // plan.block,), grid_names=("block",),
                      **kwargs)


def forward(plan: Plan, x_t: Array, w_h_t: Array, bias_n: Array | None,
            mask: Array | None, save: bool, interpret=None):
  """x_t [T, G, Bp] f32 (projected input + b_h, transposed), w_h_t [G, H]
  bf16, bias_n [H, Bp] (GRU's n-gate recurrent bias, broadcast), mask
  [T, Bp] f32 -> (final carries [H, Bp] each, states [T, H, Bp],
  residual pieces [T, H, Bp] each if `save`)."""
  f32 = jnp.float32
  carry = jax.ShapeDtypeStruct((plan.hidden, plan.batch), f32)
  per_step = jax.ShapeDtypeStruct((plan.length, plan.hidden, plan.batch), f32)
  num_carries = CELLS[plan.cell].num_carries
  out_shape = ((carry,) * num_carries + (per_step,)
               + ((per_step,) * NUM_RESIDUALS[plan.cell] if save else ()))
  inputs = [x_t, w_h_t] + ([bias_n] if plan.cell == "gru" else []) + (
      [mask] if plan.masked else [])
  out = _call(_forward_kernel(plan, save), plan, out_shape,
              _scratch(plan, plan.hidden, plan.prefetched_pieces(False)),
              interpret)(*inputs)
  return (out[:num_carries], out[num_carries],
          out[num_carries + 1:] if save else None)


def backward(plan: Plan, w_h_t: Array, residuals, mask: Array | None,
             d_final, d_states: Array | None, interpret=None):
  """-> (d_x [T, G, Bp], d_hh [T, G, Bp] (GRU; else = d_x), d_carry0
  [H, Bp] each); all transposed, float32."""
  f32 = jnp.float32
  per_step = jax.ShapeDtypeStruct((plan.length, plan.gates, plan.batch), f32)
  carry = jax.ShapeDtypeStruct((plan.hidden, plan.batch), f32)
  num_carries = CELLS[plan.cell].num_carries
  gru = plan.cell == "gru"
  out_shape = (per_step,) * (2 if gru else 1) + (carry,) * num_carries
  inputs = ([w_h_t, *residuals] + ([mask] if plan.masked else [])
            + list(d_final) + ([d_states] if d_states is not None else []))
  out = _call(_backward_kernel(plan, d_states is not None), plan, out_shape,
              _scratch(plan, plan.gates, len(residuals) + int(plan.masked)
                       + int(d_states is not None)), interpret)(*inputs)
  d_x = out[0]
  d_hh = out[1] if gru else d_x
  return d_x, d_hh, out[2 if gru else 1:]


# --- The recurrence under a custom VJP, [seq_len, batch, ...] outside. ---

_interpret = None  # InterpretGPUParams while `interpreted()` is active


class interpreted:  # pylint: disable=invalid-name
  """Within this context the kernels run in jax's Mosaic GPU interpreter
  (on CPU; tests), e.g. `with interpreted(plgpu.InterpretGPUParams(
  detect_races=True)):`."""

  def __init__(self, params):
    self.params = params

  def __enter__(self):
    global _interpret
    self.previous, _interpret = _interpret, self.params
    return self.params

  def __exit__(self, *exc):
    global _interpret
    _interpret = self.previous


# jax (major, minor) versions the kernels were checked on, natively on a
# Hopper GPU and lowered for CUDA. jax 0.12.1's interpreter runs them, but
# its CUDA lowering refuses their whole-ref global-memory loads ("GMEM
# transfer does not access a whole number of complete 128 byte cache
# lines"); tests/test_pallas_recurrence.py expects that failure there.
CHECKED_JAX = {(0, 10), (0, 11)}


def jax_version() -> tuple[int, int]:
  major, minor = jax.__version__.split(".")[:2]
  return int(major), int(minor)


def unavailable_reason(device: jax.Device | None = None) -> str | None:
  """Why the kernels cannot run on `device` (default: the first), or None.
  They need an NVIDIA Hopper GPU (compute capability 9.x: H100, H200; WGMMA
  exists on no other) and a jax with Mosaic GPU (or the interpreter,
  `interpreted`)."""
  if _interpret is not None:
    return None
  device = device or jax.devices()[0]
  capability = getattr(device, "compute_capability", None)
  if device.platform != "gpu" or capability is None:
    return (f"needs an NVIDIA Hopper GPU (H100/H200), and this run has "
            f"{device.platform.upper()} devices ({device.device_kind})")
  if not 9.0 <= float(capability) < 10.0:
    return (f"needs an NVIDIA Hopper GPU (compute capability 9.x: its "
            f"WGMMA instructions), and {device.device_kind} is {capability}")
  if jax_version() not in CHECKED_JAX:
    return (f"is checked with jax 0.10 and 0.11 only, and this is jax "
            f"{jax.__version__} (its Mosaic GPU does not lower the kernels' "
            f"global-memory loads)")
  try:
    _plgpu()
  except ImportError as error:
    return f"needs a jax with Mosaic GPU ({error})"
  return None


def _to_kernel(a: Array, batch: int) -> Array:
  """[..., batch, F] -> [..., F, batch padded] (rows beyond are zero)."""
  a = jnp.swapaxes(a, -1, -2)
  pad = [(0, 0)] * (a.ndim - 1) + [(0, batch - a.shape[-1])]
  return jnp.pad(a, pad)


def _from_kernel(a: Array, batch: int) -> Array:
  return jnp.swapaxes(a[..., :batch], -1, -2)


def _inputs(cell, projected, w_h, b_h, mask):
  length, batch, _ = projected.shape
  hidden = w_h.shape[0]
  plan = plan_for(cell, hidden, batch, length, mask is not None)
  if cell == "gru":  # b_h = [0, 0, b_hn]: b_hn is inside r * (W h + b_hn)
    x = projected
    bias_n = jnp.broadcast_to(b_h[2 * hidden:, None], (hidden, plan.batch))
  else:
    x, bias_n = projected + b_h, None
  mask_t = (None if mask is None else jnp.broadcast_to(
      jnp.pad(mask, ((0, 0), (0, plan.batch - batch)))[:, None, :],
      (length, hidden, plan.batch)))
  return (plan, _to_kernel(x, plan.batch), w_h.T.astype(jnp.bfloat16),
          bias_n, mask_t)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def run(cell: str, projected: Array, w_h: Array, b_h: Array,
        mask: Array | None, with_states: bool):
  """(final carry ([batch, hidden] each), states [seq_len, batch, hidden]
  or None without `with_states`)
  of `cell` over projected [seq_len, batch, G] = x_t @ w_i + b_i, with
  w_h [hidden, G], b_h [G], mask [seq_len, batch] float (0 = padding: the
  carry is kept) or None. Recurrent matmuls in bf16, all else float32."""
  plan, x_t, w_h_t, bias_n, mask_t = _inputs(cell, projected, w_h, b_h, mask)
  finals, states, _ = forward(plan, x_t, w_h_t, bias_n, mask_t, save=False,
                              interpret=_interpret)
  batch = projected.shape[1]
  return (tuple(_from_kernel(f, batch) for f in finals),
          _from_kernel(states, batch) if with_states else None)


def _run_fwd(cell, projected, w_h, b_h, mask, with_states):
  plan, x_t, w_h_t, bias_n, mask_t = _inputs(cell, projected, w_h, b_h, mask)
  finals, states, residuals = forward(plan, x_t, w_h_t, bias_n, mask_t,
                                      save=True, interpret=_interpret)
  batch = projected.shape[1]
  out = (tuple(_from_kernel(f, batch) for f in finals),
         _from_kernel(states, batch) if with_states else None)
  return out, (w_h_t, residuals, states, mask_t)


def _run_bwd(cell, with_states, saved, d_out):
  w_h_t, residuals, states, mask_t = saved
  d_final, d_states = d_out
  length, batch = states.shape[0], d_final[0].shape[0]
  plan = plan_for(cell, w_h_t.shape[1], batch, length, mask_t is not None)
  d_x, d_hh, _ = backward(
      plan, w_h_t, residuals, mask_t,
      tuple(_to_kernel(d, plan.batch) for d in d_final),
      _to_kernel(d_states, plan.batch) if with_states else None,
      interpret=_interpret)
  # h_{t-1} for every step [T, H, Bp]: zeros, then the states.
  h_prev = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]])
  d_w_h = jnp.einsum("thb,tgb->hg", h_prev, d_hh,
                     preferred_element_type=jnp.float32)
  d_b_h = jnp.sum(d_hh, axis=(0, 2))
  return (_from_kernel(d_x, batch), d_w_h, d_b_h,
          None if mask_t is None else jnp.zeros((length, batch)))


run.defvjp(_run_fwd, _run_bwd)
