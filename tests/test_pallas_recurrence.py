"""The Mosaic GPU recurrence kernels (`implementation="pallas"`), checked
without a GPU (and natively on a Hopper GPU: benchmarks/gpu_check.sh):

* run in jax's Mosaic GPU interpreter (jax >= 0.11; the Python 3.12 lane of
  .ci/run) with its race detector: outputs and gradients equal the XLA loop
  with the same mixed precision (bf16 recurrent matmuls), and stay within
  bf16 rounding of the float32 XLA loop; masked and unmasked, every cell;
* lowered for CUDA (`jax.export`) at the production shapes of the six
  notebook configs and best_cpu, forward and backward (both jax versions):
  this catches shared-memory overflow and WGMMA/swizzle shape errors.
"""

import contextlib
import os

import jax
import jax.numpy as jnp
import pytest

from flax_sentiment import api
from flax_sentiment.model import classifier, pallas_recurrence, recurrence
from tests.equivalence import assert_outputs_and_grads_close

plgpu = pytest.importorskip("jax.experimental.pallas.mosaic_gpu")
CELLS = list(classifier.CELLS)
# Batch not a multiple of 16 (padded rows). benchmarks/gpu_check.sh also
# runs these natively on a GPU at 64 and 1024 steps.
HIDDEN, IN_DIM, BATCH = 64, 8, 20
LENGTH = int(os.environ.get("FLAX_SENTIMENT_KERNEL_TEST_LENGTH", "5"))
# On a Hopper GPU the kernels run natively; elsewhere in the interpreter.
NATIVE = pallas_recurrence.unavailable_reason() is None

needs_interpreter = pytest.mark.skipif(
    not NATIVE and not hasattr(plgpu, "InterpretGPUParams"),
    reason="jax's Mosaic GPU interpreter needs jax >= 0.11 (Python 3.12 "
           "lane of .ci/run)")


def cell_params(cell, seed=0):
  module = classifier.CELLS[cell](HIDDEN)
  carry = module.initialize_carry(jax.random.key(1), (1, IN_DIM))
  params = module.init(jax.random.key(seed), carry,
                       jnp.zeros((1, IN_DIM)))["params"]
  return jax.tree.map(lambda p: p + 0.1 * jax.random.normal(
      jax.random.key(2), p.shape), params)


def last_hidden(cell, pallas, dtype=None, with_states=False, reverse=False):
  """params, inputs [seq_len, batch, in], mask -> a function of both."""
  def f(params, inputs, mask):
    weights = recurrence.fused_weights(cell, params)
    projected = recurrence.matmul(inputs, weights.w_i) + weights.b_i
    out = recurrence.run_projected(cell, weights, projected, mask,
                                   dtype=dtype, pallas=pallas,
                                   with_states=with_states, reverse=reverse)
    if not with_states:
      return out
    final, states = out  # a scalar mix of both, so both get gradients
    return final + jnp.sum(jnp.sin(states), axis=0)
  return f


def inputs_and_mask(masked, padding="pre"):
  inputs = jax.random.normal(jax.random.key(3), (LENGTH, BATCH, IN_DIM))
  if not masked:
    return inputs, None
  lengths = jnp.arange(BATCH) % (LENGTH + 1)  # 0 .. LENGTH real steps
  steps = jnp.arange(LENGTH)[:, None]
  real = (steps >= LENGTH - lengths) if padding == "pre" else steps < lengths
  return inputs, real.astype(jnp.float32)


@contextlib.contextmanager
def interpreter(capfd):
  """The interpreter with its race detector (fails on a reported race), or
  on a Hopper GPU the kernels themselves, with float32 XLA matmuls."""
  if NATIVE:
    with jax.default_matmul_precision("highest"):
      yield
    return
  with pallas_recurrence.interpreted(
      plgpu.InterpretGPUParams(detect_races=True)):
    yield
  assert "RACE DETECTED" not in capfd.readouterr().out


@pytest.mark.skipif(NATIVE, reason="on a GPU WGMMA accumulates in another "
                    "order than XLA's dot: the bf16-rounding test below holds")
@needs_interpreter
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_kernels_equal_the_xla_loop_in_the_same_precision(cell, masked,
                                                          capfd):
  """The interpreter does the XLA loop's arithmetic in the XLA loop's order,
  so the two agree far inside bf16 rounding."""
  params = cell_params(cell)
  inputs, mask = inputs_and_mask(masked)
  with interpreter(capfd):
    assert_outputs_and_grads_close(
        last_hidden(cell, pallas=True),
        last_hidden(cell, pallas=False, dtype=jnp.bfloat16),
        (params, inputs, mask), argnums=1, atol=2e-3, rtol=2e-3)


@needs_interpreter
@pytest.mark.parametrize("cell", CELLS)
def test_states_and_reverse_direction_equal_the_xla_loop(cell, capfd):
  """(Gradients with respect to the inputs: the weight gradient dW_h is a
  float32 matmul outside the kernels, the XLA loop's a bf16 one.)
  Bidirectional / pooled models: every step's state, end padding, the
  reverse direction."""
  params = cell_params(cell, seed=1)
  inputs, mask = inputs_and_mask(True, padding="post")
  with interpreter(capfd):
    assert_outputs_and_grads_close(
        last_hidden(cell, pallas=True, with_states=True, reverse=True),
        last_hidden(cell, pallas=False, dtype=jnp.bfloat16, with_states=True,
                    reverse=True),
        (params, inputs, mask), argnums=1, atol=2e-3, rtol=2e-3)


@needs_interpreter
@pytest.mark.parametrize("cell", CELLS)
def test_prefetched_inputs_give_the_same_numbers(cell, capfd, monkeypatch):
  """Each step's inputs read through shared memory, copied one step ahead
  (`PREFETCH_CELLS`), or loaded from global memory: the same arithmetic on
  the same values, so the same outputs and gradients (both directions,
  states, mask); in the interpreter the race detector also checks the
  copies against the reads."""
  params = cell_params(cell, seed=3)
  inputs, mask = inputs_and_mask(True, padding="post")
  results = []
  for prefetch_cells in [(), (cell,)]:
    monkeypatch.setattr(pallas_recurrence, "PREFETCH_CELLS", prefetch_cells)
    plan = pallas_recurrence.plan_for(cell, HIDDEN, BATCH, LENGTH, True)
    assert plan.prefetch == bool(prefetch_cells)
    with interpreter(capfd):
      results.append(outputs_and_grads(
          last_hidden(cell, pallas=True, with_states=True, reverse=True),
          (params, inputs, mask)))
  for without, with_prefetch in zip(*results):
    assert jnp.array_equal(without, with_prefetch)


def outputs_and_grads(f, args):
  """f(*args) and the gradients of sum(sin(f)) with respect to params and
  inputs, as a flat list of arrays."""
  grads = jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1))(*args)
  return [f(*args)] + jax.tree.leaves(grads)


@needs_interpreter
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_kernels_are_within_bf16_rounding_of_float32(cell, masked, capfd):
  """Outputs and every gradient (parameters and inputs) are as close to the
  float32 XLA loop as bf16 recurrent matmuls bring the XLA loop itself:
  max |pallas - float32| <= 2 * max |xla bf16 - float32| (+1e-3), per array.
  bf16 rounding, not a fixed tolerance, is the yardstick: an unmasked
  SimpleRNN amplifies a rounding difference over time (natively, WGMMA's
  accumulation order differs from XLA's), while a wrong gate, step or mask
  moves results far past it."""
  params = cell_params(cell, seed=2)
  args = (params, *inputs_and_mask(masked))
  float32 = outputs_and_grads(last_hidden(cell, pallas=False,
                                          dtype=jnp.float32), args)
  bf16 = outputs_and_grads(last_hidden(cell, pallas=False,
                                       dtype=jnp.bfloat16), args)
  with interpreter(capfd):
    kernels = outputs_and_grads(last_hidden(cell, pallas=True), args)
  for got, reference, rounded in zip(kernels, float32, bf16):
    bf16_rounding = float(jnp.max(jnp.abs(rounded - reference)))
    assert float(jnp.max(jnp.abs(got - reference))) <= (
        2 * bf16_rounding + 1e-3)


@needs_interpreter
@pytest.mark.parametrize("num_classes", [2, 3])
def test_model_with_pallas_equals_hoisted_within_bf16_rounding(capfd,
                                                              num_classes):
  """The whole classifier as best_cpu builds it (bidirectional, masked end
  padding, pooled states), implementation="pallas" vs "hoisted" (float32):
  logits ([batch], or [batch, 3] for three classes) and gradients of the
  embedding."""
  def model(implementation):
    return classifier.SentimentClassifier(
        cell="lstm", num_words=50, embed_dim=8, hidden_dim=HIDDEN,
        mask_padding=True, implementation=implementation,
        bidirectional=True, pooling="last+max+mean",
        num_classes=num_classes)
  tokens = jax.random.randint(jax.random.key(4), (BATCH, LENGTH), 2, 50)
  tokens = jnp.where(jnp.arange(LENGTH) < (jnp.arange(BATCH) % LENGTH + 1)[:, None],
                     tokens, 0)  # end padding, 1 .. LENGTH real tokens
  params = model("hoisted").init(jax.random.key(0), tokens)

  def logits(implementation):
    def f(embedding):
      p = {"params": {**params["params"],
                      "embedding": {"embedding": embedding}}}
      return model(implementation).apply(p, tokens)
    return f
  with interpreter(capfd):
    assert_outputs_and_grads_close(
        logits("pallas"), logits("hoisted"),
        (params["params"]["embedding"]["embedding"],), atol=2e-2, rtol=2e-2)


def test_unavailable_on_cpu_says_why():
  reason = pallas_recurrence.unavailable_reason(jax.devices("cpu")[0])
  assert "Hopper" in reason and "CPU" in reason


@pytest.mark.parametrize("cell,hidden", [("lstm", 96), ("lstm", 256)])
def test_shapes_that_cannot_run_are_refused_with_the_reason(cell, hidden):
  with pytest.raises(pallas_recurrence.PallasUnavailableError,
                     match="implementation=hoisted"):
    pallas_recurrence.plan_for(cell, hidden, 32, 64, masked=False)


@pytest.mark.parametrize("cell,hidden,prefetch", [
    ("rnn", 128, True), ("gru", 128, True), ("lstm", 128, False),
    ("rnn", 320, False)])  # 320: the weights fit, the prefetch buffers not
def test_prefetch_only_for_its_cells_and_where_it_fits(cell, hidden,
                                                       prefetch):
  plan = pallas_recurrence.plan_for(cell, hidden, 32, 64, masked=True)
  assert plan.prefetch == prefetch
  assert (plan.shared_memory_bytes()
          <= pallas_recurrence.SHARED_MEMORY_BYTES)


# The notebook's six configs and best_cpu at the shapes they train and
# evaluate at (best_cpu's longest length bucket).
PRODUCTION = {f"{cell}{length}": (cell, {"seq_len": length})
              for cell in ("rnn", "lstm") for length in (64, 512, 1024)}
PRODUCTION["best_cpu"] = ("best_cpu", {})


@contextlib.contextmanager
def abstract_hopper():
  """jax >= 0.11 lowers Mosaic GPU kernels for an abstract GPU device."""
  try:
    from jax.sharding import AbstractDevice, AbstractMesh  # pylint: disable=g-import-not-at-top
    mesh = AbstractMesh((1,), ("x",), abstract_device=AbstractDevice(
        "NVIDIA H100 80GB HBM3", 132, "gpu"))
  except (ImportError, TypeError):  # jax 0.10: not needed
    yield
    return
  with jax.sharding.use_abstract_mesh(mesh):
    yield


@pytest.mark.xfail(
    pallas_recurrence.jax_version() not in pallas_recurrence.CHECKED_JAX,
    strict=True, reason="this jax's Mosaic GPU does not lower the kernels "
    "(pallas_recurrence.CHECKED_JAX); a pass here means it now does")
@pytest.mark.parametrize("name", PRODUCTION)
def test_lowers_for_cuda_at_production_shapes(name):
  """A train step's forward + backward (kernels that save residuals, and
  the reverse kernel) and an evaluation forward, exported for CUDA."""
  config_name, overrides = PRODUCTION[name]
  config = api.load_config(config_name, implementation="pallas", **overrides)
  model = classifier.model_from_config(config)
  params = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, config.seq_len), jnp.int32)))
  def tokens(batch):
    return jax.ShapeDtypeStruct((batch, config.seq_len), jnp.int32)

  def loss(params, tokens):
    return jnp.mean(jax.nn.log_sigmoid(model.apply(params, tokens)))
  with abstract_hopper():
    for f, batch in ((jax.value_and_grad(loss), config.batch_size),
                     (model.apply, config.eval_batch_size)):
      exported = jax.export.export(jax.jit(f), platforms=["cuda"])(
          params, tokens(batch))
      assert "mosaic_gpu" in exported.mlir_module()
