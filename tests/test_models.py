import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.equivalence import assert_outputs_and_grads_close
from flax_sentiment.model import classifier, implementation, pallas_recurrence
from flax_sentiment.api import load_config


def init_params(model, seq_len=64, batch=2):
  return model.init(jax.random.key(0), jnp.zeros((batch, seq_len), jnp.int32))["params"]


@pytest.mark.parametrize("cell,expected", [("rnn", 2_609_409),
                                           ("lstm", 2_757_249)])
def test_notebook_parameter_counts_match_keras(cell, expected):
  model = classifier.SentimentClassifier(cell=cell)
  params = init_params(model)
  assert classifier.count_params(params) == expected
  assert classifier.summary(model, params, 64).splitlines()[-3] == (
      f"Total params: {expected:,}")


@pytest.mark.parametrize("cell,cell_params", [
    ("rnn", 64 * 32 + 32 * 32 + 32),
    ("lstm", 4 * (64 * 32 + 32 * 32 + 32)),
    ("gru", 3 * (64 * 32 + 32 + 32 * 32) + 32),
])
def test_parameter_counts_follow_the_sizes(cell, cell_params):
  model = classifier.SentimentClassifier(cell=cell, num_words=5000, embed_dim=64,
                                         hidden_dim=32)
  params = init_params(model, seq_len=10)
  assert classifier.count_params(params["rnn"]) == cell_params
  assert classifier.count_params(params) == 5000 * 64 + cell_params + 32 + 1


@pytest.mark.parametrize("cell", list(classifier.CELLS))
# (pallas: GPU kernels, tests/test_pallas_recurrence.py)
@pytest.mark.parametrize("implementation", ["hoisted", "stock"])
def test_output_is_one_logit_per_review(cell, implementation):
  model = classifier.SentimentClassifier(cell=cell, num_words=100, embed_dim=8,
                                         hidden_dim=4,
                                         implementation=implementation)
  params = init_params(model, seq_len=7, batch=3)
  tokens = jax.random.randint(jax.random.key(1), (5, 7), 0, 100)
  logits = model.apply({"params": params}, tokens)
  assert logits.shape == (5,) and logits.dtype == jnp.float32


def test_summary_lists_layers_with_keras_shapes():
  model = classifier.SentimentClassifier(cell="rnn")
  text = classifier.summary(model, init_params(model), 512)
  assert "embedding (Embed)            (None, 512, 256)          2,560,000" in text
  assert "rnn (SimpleCell)             (None, 128)               49,280" in text
  assert "dense (Dense)                (None, 1)                 129" in text


def test_unroll_zero_picks_the_backend_default():
  assert (implementation.resolve_unroll(0, False, "gpu")
          == implementation.AUTO_UNROLL["gpu"] > 1)
  # masked: dynamic bounds
  assert implementation.resolve_unroll(0, True, "gpu") == 1
  assert implementation.resolve_unroll(0, False, "cpu") == 1
  assert implementation.resolve_unroll(3, False, "cpu") == 3


class FakeDevice:
  """What `pallas_recurrence.unavailable_reason` reads of a jax device."""

  def __init__(self, platform, capability=None, kind="NVIDIA H200"):
    self.platform, self.device_kind = platform, kind
    if capability:
      self.compute_capability = capability


@pytest.mark.parametrize("device,overrides,expected", [
    (FakeDevice("gpu", "9.0"), {}, "pallas"),
    (FakeDevice("gpu", "10.0", "NVIDIA B200"), {}, "hoisted"),  # no WGMMA
    (FakeDevice("gpu", "9.0"), {"cell": "rnn", "mask_padding": True}, "pallas"),
    (FakeDevice("gpu", "8.0", "NVIDIA A100"), {}, "hoisted"),
    (FakeDevice("cpu", kind="cpu"), {}, "hoisted"),
    (FakeDevice("gpu", "9.0"), {"hidden_dim": 96}, "hoisted"),  # not 64k
    (FakeDevice("gpu", "9.0"), {"unroll": 4}, "hoisted"),  # asks for the loop
    (FakeDevice("gpu", "9.0"), {"implementation": "stock"}, "stock"),
    (FakeDevice("cpu", kind="cpu"), {"implementation": "pallas"}, "pallas"),
])
def test_auto_implementation_picks_the_kernels_only_where_they_run(
    device, overrides, expected, monkeypatch):
  monkeypatch.setattr(pallas_recurrence, "CHECKED_JAX",
                      {pallas_recurrence.jax_version()})
  config = load_config("lstm", **overrides)
  assert implementation.resolve(config, device) == expected


def test_kernels_are_not_picked_on_a_jax_they_were_not_checked_on(
    monkeypatch):
  monkeypatch.setattr(pallas_recurrence, "CHECKED_JAX", {(0, 11)})
  monkeypatch.setattr(pallas_recurrence.jax, "__version__", "0.12.1")
  hopper = FakeDevice("gpu", "9.0")
  assert implementation.resolve(load_config("lstm"), hopper) == "hoisted"
  reason = pallas_recurrence.unavailable_reason(hopper)
  assert "jax 0.12.1" in reason and "0.11" in reason
  monkeypatch.setattr(pallas_recurrence.jax, "__version__", "0.11.2")
  assert implementation.resolve(load_config("lstm"), hopper) == "pallas"


def test_auto_implementation_on_this_machine_builds_a_runnable_model():
  config = load_config("lstm")
  assert config.implementation == "auto"
  model = classifier.model_from_config(config)
  if jax.default_backend() == "cpu":
    assert model.implementation == "hoisted"
  assert implementation.line(config).startswith(
      f"Recurrence: {model.implementation} (")


@pytest.mark.parametrize("device,trained,expected", [
    (FakeDevice("cpu", kind="cpu"), "pallas", "hoisted"),
    (FakeDevice("gpu", "9.0"), "pallas", "pallas"),
    (FakeDevice("cpu", kind="cpu"), "stock", "stock"),
])
def test_prediction_falls_back_from_pallas_only_where_it_cannot_run(
    device, trained, expected, monkeypatch):
  monkeypatch.setattr(pallas_recurrence, "CHECKED_JAX",
                      {pallas_recurrence.jax_version()})
  config = load_config("lstm", implementation=trained)
  predicting, warning = implementation.for_prediction(config, "runs/x",
                                                      device)
  assert predicting.implementation == expected
  assert config.implementation == trained  # the trained config is kept
  if expected == trained:
    assert warning is None
  else:
    assert warning.startswith("warning: runs/x was trained with "
                              "implementation='pallas'")
    assert "Hopper" in warning and "XLA loop" in warning


@pytest.mark.parametrize("cell", list(classifier.CELLS))
def test_gpu_default_unroll_gives_the_same_logits_and_gradients(cell):
  """The GPU default unroll, on 11 steps (not a multiple of it)."""
  tokens = jax.random.randint(jax.random.key(1), (3, 11), 0, 50)
  model = classifier.SentimentClassifier(cell=cell, num_words=50, embed_dim=6,
                                         hidden_dim=5)
  unrolled = model.clone(unroll=implementation.AUTO_UNROLL["gpu"])
  params = init_params(model, seq_len=11)
  assert_outputs_and_grads_close(
      lambda p: unrolled.apply({"params": p}, tokens),
      lambda p: model.apply({"params": p}, tokens), (params,),
      atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cell", list(classifier.CELLS))
def test_bfloat16_matmuls_with_float32_state_stay_close_to_float32(cell):
  """dtype=bfloat16: matmul operands bf16, carries and gate math float32;
  logits and gradients within bf16 rounding of the float32 model's, and a
  wrong policy (e.g. state rounded to bf16 each step) would drift more."""
  tokens = jax.random.randint(jax.random.key(1), (8, 40), 0, 200)
  model = classifier.SentimentClassifier(cell=cell, num_words=200, embed_dim=16,
                                         hidden_dim=16)
  bf16 = model.clone(dtype=jnp.bfloat16)
  params = init_params(model, seq_len=40)

  def loss(m):
    return lambda p: jnp.mean(m.apply({"params": p}, tokens) ** 2)
  low, high = (m.apply({"params": params}, tokens) for m in (bf16, model))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, high, atol=3e-2, rtol=3e-2)
  g_low, g_high = (jax.grad(loss(m))(params) for m in (bf16, model))
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(g_low))
  for a, b in zip(jax.tree.leaves(g_low), jax.tree.leaves(g_high)):
    scale = float(jnp.max(jnp.abs(b))) + 1e-6
    assert float(jnp.max(jnp.abs(a - b))) <= 5e-2 * scale
