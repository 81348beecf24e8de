import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment import batching, models, train
from tests.conftest import tiny_config


def make_state(config):
  return train.create_train_state(models.model_from_config(config), config,
                                  jax.random.key(0))


def fixed_batch(config, batch=8, seed=0):
  rng = np.random.default_rng(seed)
  return {"tokens": jnp.asarray(rng.integers(0, config.num_words,
                                             (batch, config.seq_len)), jnp.int32),
          "labels": jnp.asarray(rng.integers(0, 2, batch), jnp.float32),
          "weights": jnp.ones(batch, jnp.float32)}


@pytest.mark.parametrize("cell", list(models.CELLS))
def test_one_jitted_step_changes_every_parameter(cell):
  config = tiny_config(cell=cell)
  state = make_state(config)
  new_state, metrics = jax.jit(train.train_step)(state, fixed_batch(config))
  assert int(new_state.step) == 1 and float(metrics["count"]) == 8
  for before, after in zip(jax.tree.leaves(state.params),
                           jax.tree.leaves(new_state.params)):
    assert not np.allclose(before, after)


@pytest.mark.parametrize("cell", list(models.CELLS))
def test_loss_decreases_on_a_fixed_batch(cell):
  config = tiny_config(cell=cell, learning_rate=1e-2)
  state, batch = make_state(config), fixed_batch(config)
  step = jax.jit(train.train_step)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"] / metrics["count"]))
  assert losses[-1] < 0.5 * losses[0]


def test_filler_rows_and_batches_change_nothing():
  config = tiny_config()
  state = make_state(config)
  real = fixed_batch(config, batch=5)
  filled = {k: jnp.concatenate([v, jnp.zeros((3,) + v.shape[1:], v.dtype)])
            for k, v in real.items()}  # 3 filler rows, weight 0
  chunk = {k: jnp.stack([v, jnp.zeros_like(v)]) for k, v in filled.items()}
  expected, metrics = jax.jit(train.train_step)(state, real)
  got, chunk_metrics = jax.jit(train.train_chunk)(state, chunk)
  assert int(got.step) == 1  # the all-filler batch was skipped
  for a, b in zip(jax.tree.leaves(expected.params), jax.tree.leaves(got.params)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(chunk_metrics["loss"], [metrics["loss"], 0.0],
                             rtol=1e-6)
  np.testing.assert_array_equal(chunk_metrics["count"], [5.0, 0.0])


@pytest.mark.parametrize("num_buckets", [1, 3])
def test_epoch_plan_uses_every_example_exactly_once(num_buckets):
  lengths = np.random.default_rng(0).integers(0, 100, 103)
  bounds = batching.bucket_boundaries(lengths, num_buckets, seq_len=100)
  groups = batching.group_by_bucket(lengths, bounds)
  chunks = batching.plan_epoch(groups, batch_size=4, steps_per_call=3,
                               rng=batching.epoch_rng(0, 0))
  used = np.concatenate([c.indices[c.weights > 0] for c in chunks])
  np.testing.assert_array_equal(np.sort(used), np.arange(103))
  for c in chunks:
    assert np.all(lengths[c.indices[c.weights > 0]] <= c.length)
  assert len(bounds) == num_buckets and bounds[-1] == 100


def test_epoch_order_is_seeded_and_changes_per_epoch():
  groups = [(10, np.arange(50))]
  def order(seed, epoch):
    return np.concatenate([c.indices.ravel() for c in batching.plan_epoch(
        groups, 5, 2, batching.epoch_rng(seed, epoch))])
  np.testing.assert_array_equal(order(0, 1), order(0, 1))
  assert not np.array_equal(order(0, 1), order(0, 2))
  assert not np.array_equal(order(0, 1), order(1, 1))
