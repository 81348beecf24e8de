import functools
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flax_sentiment.data import batching
from flax_sentiment.model import classifier
from flax_sentiment.tracking import checkpoints
from flax_sentiment.training import loop, train_steps
from flax_sentiment.usage import trained
from tests.conftest import tiny_config


def make_state(config):
  return train_steps.create_train_state(classifier.model_from_config(config), config,
                                        jax.random.key(0))


def fixed_batch(config, batch=8, seed=0):
  rng = np.random.default_rng(seed)
  return {"tokens": jnp.asarray(rng.integers(0, config.num_words,
                                             (batch, config.seq_len)), jnp.int32),
          "labels": jnp.asarray(rng.integers(0, 2, batch), jnp.float32),
          "weights": jnp.ones(batch, jnp.float32)}


@pytest.mark.parametrize("cell", list(classifier.CELLS))
def test_one_jitted_step_changes_every_parameter(cell):
  config = tiny_config(cell=cell)
  state = make_state(config)
  new_state, metrics = jax.jit(train_steps.train_step)(state, fixed_batch(config))
  assert int(new_state.step) == 1 and float(metrics["count"]) == 8
  for before, after in zip(jax.tree.leaves(state.params),
                           jax.tree.leaves(new_state.params)):
    assert not np.allclose(before, after)


@pytest.mark.parametrize("cell", list(classifier.CELLS))
def test_loss_decreases_on_a_fixed_batch(cell):
  config = tiny_config(cell=cell, learning_rate=1e-2)
  state, batch = make_state(config), fixed_batch(config)
  step = jax.jit(train_steps.train_step)
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
  expected, metrics = jax.jit(train_steps.train_step)(state, real)
  got, chunk_metrics = jax.jit(train_steps.train_chunk)(state, chunk)
  assert int(got.step) == 1  # the all-filler batch was skipped
  for a, b in zip(jax.tree.leaves(expected.params), jax.tree.leaves(got.params)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(chunk_metrics["loss"], [metrics["loss"], 0.0],
                             rtol=1e-6)
  np.testing.assert_array_equal(chunk_metrics["count"], [5.0, 0.0])


# --- A train step against a reference written here ---


def reference_loss(apply_fn, params, batch):
  """The weighted mean binary cross-entropy, by hand: sum(w * bce) / sum(w),
  bce(z, y) = log(1 + e^z) - y z."""
  logits = apply_fn({"params": params}, batch["tokens"])
  bce = jnp.logaddexp(0.0, logits) - batch["labels"] * logits
  return jnp.sum(batch["weights"] * bce) / jnp.sum(batch["weights"])


def global_norm(grads):
  return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))


def clip_by_global_norm(grads, max_norm):
  scale = jnp.minimum(1.0, max_norm / global_norm(grads))
  return jax.tree.map(lambda g: g * scale, grads)


def reference_steps(state, batches, learning_rate, eps=1e-7, clip=None):
  """Parameters after each batch of jax.grad(reference_loss), clipping by
  hand, then optax.adam; and each step's gradient norm (before clipping)."""
  adam = optax.adam(learning_rate, eps=eps)
  params, opt_state = state.params, adam.init(state.params)
  grad_fn = jax.jit(jax.grad(functools.partial(reference_loss,
                                               state.apply_fn)))
  after, norms = [], []
  for batch in batches:
    grads = grad_fn(params, batch)
    norms.append(float(global_norm(grads)))
    if clip:
      grads = clip_by_global_norm(grads, clip)
    updates, opt_state = adam.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    after.append(params)
  return after, norms


def step_batches():
  """4 batches of 8 with 8, 5, 3 and 8 real rows: the filler rows (weight
  0) hold tokens and labels of their own, which would move the parameters
  if they counted."""
  batches = []
  for seed, real in enumerate([8, 5, 3, 8]):
    batch = fixed_batch(tiny_config(), seed=seed)
    batch["weights"] = jnp.asarray(np.arange(8) < real, jnp.float32)
    batches.append(batch)
  return batches


def max_difference(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y)))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def assert_params_equal(got, want, atol=1e-6):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for path, g in jax.tree_util.tree_leaves_with_path(got):
    w = functools.reduce(lambda t, k: t[k.key], path, want)
    np.testing.assert_allclose(g, w, rtol=0, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def with_dense_scaled(state, factor):
  """The state with the dense kernel times `factor`: every gradient below
  the dense layer scales with it (Adam's initial state is zeros whatever
  the parameters)."""
  params = {**state.params, "dense": {
      **state.params["dense"],
      "kernel": state.params["dense"]["kernel"] * factor}}
  return state.replace(params=params)


def assert_steps_match_reference(state, batches, learning_rate, clip=None):
  """One jitted train_step, several in a row, and one train_chunk of all
  the batches equal the reference's parameters (and metric sums)."""
  want, norms = reference_steps(state, batches, learning_rate, clip=clip)
  step = jax.jit(train_steps.train_step)
  got = state
  for i, batch in enumerate(batches):
    before = got
    got, sums = step(got, batch)
    assert int(got.step) == i + 1
    assert_params_equal(got.params, want[i])
    w = batch["weights"]
    assert float(sums["count"]) == float(jnp.sum(w))
    loss = reference_loss(state.apply_fn, before.params, batch)
    np.testing.assert_allclose(sums["loss"], loss * jnp.sum(w), rtol=1e-5)
  chunk = {k: jnp.stack([b[k] for b in batches]) for k in batches[0]}
  chunked, _ = jax.jit(train_steps.train_chunk)(state, chunk)
  assert int(chunked.step) == len(batches)
  assert_params_equal(chunked.params, want[-1])
  return want, norms


@pytest.mark.parametrize("cell", list(classifier.CELLS))
def test_train_steps_equal_hand_written_loss_and_adam(cell):
  config = tiny_config(cell=cell, learning_rate=1e-2)
  assert_steps_match_reference(make_state(config), step_batches(), 1e-2)


def test_train_step_uses_adam_epsilon_1e7_where_gradients_are_that_small():
  """With the dense kernel scaled by 1e-4 the recurrent and embedding
  gradients are ~1e-9 to 1e-6, around Adam's epsilon: the update
  g / (|g| + eps) then depends on eps and on the gradient's scale (the
  mean, not the sum, over real rows), which a step of ordinary gradients
  (|g| >> eps: about lr * sign(g)) hardly shows."""
  config = tiny_config(learning_rate=1e-3)
  state = with_dense_scaled(make_state(config), 1e-4)
  batches = step_batches()
  grads = jax.jit(jax.grad(functools.partial(reference_loss,
                                             state.apply_fn)))(
      state.params, batches[0])
  recurrent = np.abs(np.concatenate([np.ravel(g) for g in jax.tree.leaves(
      grads["rnn"])]))
  assert np.mean((recurrent > 1e-8) & (recurrent < 1e-6)) > 0.5
  want, _ = assert_steps_match_reference(state, batches, 1e-3)
  # Keras' epsilon matters here: PyTorch's / optax's default would differ.
  other_eps, _ = reference_steps(state, batches, 1e-3, eps=1e-8)
  assert max_difference(other_eps[0], want[0]) > 1e-4
  assert max_difference(other_eps[-1], want[-1]) > 1e-4


def test_train_steps_with_gradient_clipping_equal_the_reference():
  """clip_grad_norm=1.0: gradients are scaled to global norm 1 before Adam
  (the dense kernel scaled by 10 makes the first batch's norm > 1, the
  others' < 1, so the clipped run differs from an unclipped one)."""
  config = tiny_config(clip_grad_norm=1.0, learning_rate=1e-3)
  state = with_dense_scaled(make_state(config), 10.0)
  batches = step_batches()
  want, norms = assert_steps_match_reference(state, batches, 1e-3, clip=1.0)
  assert norms[0] > 1.2 and min(norms[1:]) < 1.0
  unclipped, _ = reference_steps(state, batches, 1e-3)
  assert max_difference(unclipped[-1], want[-1]) > 1e-4


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
    params.append(trained.load_trained_state(tmp_path / str(on))[2].params)
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
  params = [trained.load_trained_state(tmp_path / name)[2].params
            for name in ("whole", "split")]
  for a, b in zip(*map(jax.tree.leaves, params)):
    np.testing.assert_array_equal(a, b)
