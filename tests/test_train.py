import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment import batching, checkpoints, loop, models, predict, train
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


def test_length_sorted_chunks_cut_batches_of_similar_length():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 100, 203)
  groups = [(100, np.arange(203))]
  def plan(epoch, **kwargs):
    return batching.plan_epoch(groups, batch_size=4, steps_per_call=5,
                               rng=batching.epoch_rng(0, epoch), **kwargs)
  for chunk in plan(0, lengths=lengths):
    real = chunk.weights > 0
    ids = chunk.indices[real]
    # The chunk's batches are consecutive runs of its examples sorted by
    # length: sorted by their shortest review, they do not overlap.
    runs = sorted((lengths[i[w > 0]].min(), lengths[i[w > 0]].max())
                  for i, w in zip(chunk.indices, chunk.weights) if w.any())
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:]))
    # Same examples per chunk as without sorting.
    unsorted = {tuple(sorted(c.indices[c.weights > 0])) for c in plan(0)}
    assert tuple(sorted(ids)) in unsorted
  used = np.concatenate([c.indices[c.weights > 0] for c in plan(0, lengths=lengths)])
  np.testing.assert_array_equal(np.sort(used), np.arange(203))
  order = [np.concatenate([c.indices.ravel() for c in plan(e, lengths=lengths)])
           for e in (0, 0, 1)]
  np.testing.assert_array_equal(order[0], order[1])
  assert not np.array_equal(order[0], order[2])
  # The batches of a chunk run in shuffled order, not shortest first.
  full = [c for c in plan(0, lengths=lengths) if c.weights.all()]
  assert len(full) >= 8
  assert any(lengths[c.indices[0]].min() > lengths[c.indices].min()
             for c in full)


def test_epoch_order_is_seeded_and_changes_per_epoch():
  groups = [(10, np.arange(50))]
  def order(seed, epoch):
    return np.concatenate([c.indices.ravel() for c in batching.plan_epoch(
        groups, 5, 2, batching.epoch_rng(seed, epoch))])
  np.testing.assert_array_equal(order(0, 1), order(0, 1))
  assert not np.array_equal(order(0, 1), order(0, 2))
  assert not np.array_equal(order(0, 1), order(1, 1))


def test_distinct_ids_cover_each_batch_in_few_shapes():
  rng = np.random.default_rng(0)
  tokens = rng.zipf(1.3, (5, 8, 50)) % 1000  # [steps, batch, length]
  ids = batching.distinct_ids(tokens, num_words=1000)
  counts = [len(np.unique(t)) for t in tokens]
  assert ids.shape == (5, batching.id_capacity(max(counts)))
  assert ids.dtype == np.int32
  for t, row, count in zip(tokens, ids, counts):
    np.testing.assert_array_equal(row[:count], np.unique(t))
    assert len(np.unique(row)) == len(row)  # filled with unused ids
  assert max(counts) <= ids.shape[1] <= 1.125 * max(counts)


def test_distinct_ids_only_when_they_save_work():
  every_id = np.arange(64).reshape(1, 4, 16)
  assert batching.distinct_ids(every_id, num_words=64) is None
  assert batching.distinct_ids(every_id[:, :1], num_words=64) is None  # 16 tokens
  assert batching.distinct_ids(every_id % 8, num_words=64).shape == (1, 8)


def test_id_capacity_rounds_up_by_at_most_an_eighth():
  for count in range(1, 20_000, 7):
    capacity = batching.id_capacity(count)
    assert count <= capacity <= max(8, 1.125 * count)
  sizes = {batching.id_capacity(c) for c in range(1024, 2048)}
  assert sorted(sizes) == list(range(1024, 2049, 128))


def test_training_with_distinct_ids_equals_training_without(
    fake_imdb, tmp_path, monkeypatch):
  used = []
  original = batching.distinct_ids
  monkeypatch.setattr(batching, "distinct_ids", lambda *args: used.append(
      original(*args)) or used[-1])
  params, histories, calls = [], [], []
  for on in (True, False):
    config = tiny_config(project_distinct_words=on,
                         cache_dir=str(tmp_path / "cache"))
    histories.append(loop.train_and_evaluate(config, tmp_path / str(on)))
    params.append(predict.load_trained_state(tmp_path / str(on))[2].params)
    calls.append(len(used))
  # Fake reviews use ~30 words of the 64: every chunk (train and test) took
  # the distinct path when on; none asked for it when off.
  assert calls[0] > 0 and calls[1] == calls[0]
  assert all(ids is not None and ids.shape[1] < 64 for ids in used)
  for a, b in zip(jax.tree.leaves(params[0]), jax.tree.leaves(params[1])):
    np.testing.assert_allclose(a, b, atol=1e-5)
  for a, b in zip(*histories):
    assert a["test_accuracy"] == b["test_accuracy"]
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)


def test_length_buckets_train_and_resume_exactly(fake_imdb, tmp_path,
                                                 monkeypatch):
  """A bucketed run (3 bucket lengths, sorted chunks, masked loops that skip
  all-padding steps) learns, and one stopped after a mid-epoch checkpoint
  and resumed ends with the same parameters and metrics."""
  config = tiny_config(seq_len=48, length_buckets=3, padding="post",
                       mask_padding=True, num_epochs=3,
                       cache_dir=str(tmp_path / "cache"))
  whole = loop.train_and_evaluate(config, tmp_path / "whole")
  assert whole[-1]["train_loss"] < whole[0]["train_loss"]

  save = checkpoints.Checkpoints.save
  def save_then_stop(self, step, state, meta):
    save(self, step, state, meta)
    if meta["epoch"] == 1 and meta["chunk"] > 0:
      os.kill(os.getpid(), signal.SIGTERM)  # mid-epoch 2
  monkeypatch.setattr(checkpoints.Checkpoints, "save", save_then_stop)
  with pytest.raises(loop.Interrupted):
    loop.train_and_evaluate(config, tmp_path / "split")
  monkeypatch.setattr(checkpoints.Checkpoints, "save", save)
  resumed = loop.train_and_evaluate(config, tmp_path / "split")

  timings = {"epoch_seconds", "train_examples_per_second", "compile_seconds",
             "eval_seconds"}
  assert ([{k: v for k, v in r.items() if k not in timings} for r in whole] ==
          [{k: v for k, v in r.items() if k not in timings} for r in resumed])
  params = [predict.load_trained_state(tmp_path / name)[2].params
            for name in ("whole", "split")]
  for a, b in zip(*map(jax.tree.leaves, params)):
    np.testing.assert_array_equal(a, b)
