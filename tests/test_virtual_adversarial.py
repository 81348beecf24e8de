"""Virtual adversarial training (Miyato et al. 2017) on unlabeled reviews:
the KL, the direction of one power iteration, the step, the pairing of
batches with unlabeled reviews, and a run."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.data import batching
from flax_sentiment.model import classifier
from flax_sentiment.runtime import errors
from flax_sentiment.tracking import checkpoints
from flax_sentiment.training import checks, loop, train_steps
from flax_sentiment.usage import trained
from tests.conftest import tiny_config

# [batch, seq_len], end-padded; the last row is all padding (a filler row).
TOKENS = jnp.array([[5, 9, 4, 7, 3, 2, 0, 0], [8, 8, 6, 0, 0, 0, 0, 0],
                    [2, 3, 4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0, 0, 0]])
UNLABELED = jnp.array([[7, 6, 5, 4, 0, 0, 0, 0], [3, 3, 9, 9, 2, 0, 0, 0],
                       [4, 5, 6, 7, 8, 9, 10, 11], [0, 0, 0, 0, 0, 0, 0, 0]])


def _state(epsilon: float = 0.0, **options):
  config = tiny_config(num_words=12, embed_dim=6, hidden_dim=5, seq_len=8,
                       virtual_adversarial_epsilon=epsilon,
                       padding="post", mask_padding=True, **options)
  model = classifier.model_from_config(config)
  return train_steps.create_train_state(model, config, jax.random.key(0))


def _batch(unlabeled_weights=(1.0, 1.0, 1.0, 0.0), unlabeled=UNLABELED):
  return {"tokens": TOKENS, "labels": jnp.array([1.0, 0.0, 1.0, 0.0]),
          "weights": jnp.array([1.0, 1.0, 1.0, 0.0]),
          "unlabeled_tokens": unlabeled,
          "unlabeled_weights": jnp.array(unlabeled_weights)}


def test_bernoulli_kl_is_the_kl_of_the_two_probabilities():
  a = jnp.array([-3.0, 0.0, 0.5, 2.0, 8.0])
  b = jnp.array([1.0, 0.0, -0.5, 2.5, -4.0])
  p, q = jax.nn.sigmoid(a), jax.nn.sigmoid(b)
  direct = p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q))
  np.testing.assert_allclose(train_steps.bernoulli_kl(a, b), direct, rtol=1e-5)
  np.testing.assert_allclose(train_steps.bernoulli_kl(a, a), 0.0, atol=1e-7)
  assert bool(jnp.all(train_steps.bernoulli_kl(a, b)[jnp.array([0, 2, 3, 4])] > 0))


def _logits_of(state, tokens=UNLABELED):
  return lambda r: state.apply_fn({"params": state.params}, tokens,
                                  perturbation=r)


def test_the_direction_raises_the_kl_more_than_random_ones_of_its_norm():
  state = _state()
  logits_of = _logits_of(state)
  clean = logits_of(None)
  epsilon = 0.5
  direction = train_steps.virtual_adversarial_perturbation(
      logits_of, clean, UNLABELED, 6, xi=0.05, epsilon=epsilon,
      rng=jax.random.key(1))
  norms = jnp.sqrt(jnp.sum(direction ** 2, axis=(0, 2)))
  np.testing.assert_allclose(norms, [epsilon] * 3 + [0.0], rtol=1e-5)
  # No direction on padding (the model masks it; the noise starts at 0).
  assert float(jnp.abs(direction[5:, 1]).max()) == 0.0
  kl = train_steps.bernoulli_kl(clean, logits_of(direction))[:3]
  real = (UNLABELED.T != 0)[..., None]
  for seed in range(8):
    noise = jax.random.normal(jax.random.key(10 + seed), direction.shape)
    random = train_steps.per_review_l2(noise * real, epsilon)
    random_kl = train_steps.bernoulli_kl(clean, logits_of(random))[:3]
    assert bool(jnp.all(kl > random_kl)), (seed, kl, random_kl)


def test_filler_unlabeled_rows_contribute_nothing():
  state = _state(1.0)
  rng = jax.random.key(3)
  grads = jax.jit(train_steps._virtual_adversarial_grads)  # pylint: disable=protected-access
  other = UNLABELED.at[3].set(jnp.array([9, 8, 7, 6, 5, 4, 3, 2]))
  first = grads(state, _batch(), rng)
  second = grads(state, _batch(unlabeled=other), rng)
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
    np.testing.assert_array_equal(a, b)
  # ... while a real row's tokens do count: both batches have the same
  # four real rows (the same denominator), only row 3's tokens differ.
  real = (1.0, 1.0, 1.0, 1.0)
  third = grads(state, _batch(unlabeled_weights=real, unlabeled=other), rng)
  fourth = grads(state, _batch(unlabeled_weights=real,
                               unlabeled=UNLABELED.at[3].set(
                                   jnp.array([2, 3, 4, 5, 6, 7, 8, 9]))), rng)
  assert not np.allclose(third["dense"]["kernel"], fourth["dense"]["kernel"])


def test_the_labeled_batch_does_not_move_the_virtual_adversarial_gradient():
  state = _state(1.0)
  rng = jax.random.key(3)
  grads = jax.jit(train_steps._virtual_adversarial_grads)  # pylint: disable=protected-access
  other = dict(_batch(), tokens=TOKENS[::-1],
               labels=jnp.array([0.0, 1.0, 0.0, 1.0]))
  for a, b in zip(jax.tree.leaves(grads(state, _batch(), rng)),
                  jax.tree.leaves(grads(state, other, rng))):
    np.testing.assert_array_equal(a, b)


def test_the_virtual_adversarial_gradient_equals_a_hand_written_reference():
  """grad of sum_i w_i KL(clean_i || perturbed_i) / sum_i w_i, the clean
  logits and the direction computed first and held constant."""
  state = _state(1.0)
  rng = jax.random.key(3)
  batch = _batch(unlabeled_weights=(1.0, 0.5, 1.0, 0.0))
  weights = np.array([1.0, 0.5, 1.0, 0.0])

  def logits(params, perturbation=None):
    extra = {} if perturbation is None else {"perturbation": perturbation}
    return state.apply_fn({"params": params}, UNLABELED, None, **extra)
  clean = np.asarray(logits(state.params))   # a constant from here on
  direction = train_steps.virtual_adversarial_perturbation(
      lambda r: logits(state.params, r), jnp.asarray(clean), UNLABELED,
      6, state.virtual_adversarial_xi, state.virtual_adversarial_epsilon,
      jax.random.fold_in(rng, 1))

  def reference(params):
    q = jax.nn.sigmoid(logits(params, direction))
    p = jax.nn.sigmoid(jnp.asarray(clean))
    kl = p * (jnp.log(p) - jnp.log(q)) + (1 - p) * (jnp.log1p(-p)
                                                    - jnp.log1p(-q))
    return jnp.sum(kl * weights) / weights.sum()
  want = jax.grad(reference)(state.params)
  got = train_steps._virtual_adversarial_grads(state, batch, rng)  # pylint: disable=protected-access
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7)
  assert float(jnp.abs(want["dense"]["kernel"]).max()) > 1e-6  # not zero


def test_off_is_bitwise_the_old_step_and_on_keeps_clean_metrics():
  state = _state(0.0)
  assert state.virtual_adversarial_epsilon == 0.0
  batch = _batch()
  labeled_only = {k: v for k, v in batch.items()
                  if not k.startswith("unlabeled")}
  step = jax.jit(train_steps.train_step)
  with_unlabeled, sums = step(state, batch)
  without, plain_sums = step(state, labeled_only)
  for a, b in zip(jax.tree.leaves(with_unlabeled), jax.tree.leaves(without)):
    np.testing.assert_array_equal(a, b)
  vat_state = _state(1.0)
  new_vat, vat_sums = step(vat_state, batch)
  for k in plain_sums:  # metrics are those of the labeled batch
    np.testing.assert_allclose(plain_sums[k], vat_sums[k], rtol=1e-6)
  assert not np.allclose(without.params["dense"]["kernel"],
                         new_vat.params["dense"]["kernel"])


def test_distinct_ids_cover_the_unlabeled_tokens_too():
  """The hoisted path looks the unlabeled tokens up in the batch's
  distinct-id rows: the step equals the one over the whole vocabulary."""
  state = _state(1.0)
  batch = _batch()
  ids = batching.distinct_ids(
      np.concatenate([np.asarray(TOKENS), np.asarray(UNLABELED)])[None], 12,
      capacity=11)[0]
  assert set(np.asarray(UNLABELED).ravel()) <= set(ids.tolist())
  with_ids, _ = jax.jit(train_steps.train_step)(state,
                                                dict(batch, distinct_ids=ids))
  without, _ = jax.jit(train_steps.train_step)(state, batch)
  for a, b in zip(jax.tree.leaves(with_ids.params),
                  jax.tree.leaves(without.params)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def _plan(seed=0, epoch=0):
  lengths = np.random.default_rng(0).integers(1, 48, 200)
  boundaries = batching.bucket_boundaries(lengths, 3, 48)
  groups = batching.group_by_bucket(lengths, boundaries)
  chunks = batching.plan_epoch(groups, 8, 4, batching.epoch_rng(seed, epoch),
                               lengths=lengths)
  return chunks, lengths, boundaries


def test_pairing_is_deterministic_by_bucket_and_leaves_the_plan_as_is():
  chunks, lengths, boundaries = _plan()
  unlabeled_lengths = np.random.default_rng(1).integers(1, 48, 300)
  pair = lambda epoch: batching.pair_unlabeled(
      chunks, lengths, unlabeled_lengths, boundaries,
      batching.unlabeled_rng(0, epoch))
  paired, again, other_epoch = pair(0), pair(0), pair(1)
  bucket_of = lambda n: boundaries[np.searchsorted(boundaries, n)]
  for chunk, p, q, r in zip(chunks, paired, again, other_epoch):
    np.testing.assert_array_equal(p.indices, chunk.indices)
    np.testing.assert_array_equal(p.weights, chunk.weights)
    np.testing.assert_array_equal(p.unlabeled, q.unlabeled)
    assert p.unlabeled.shape == chunk.indices.shape
    assert {bucket_of(n) for n in unlabeled_lengths[p.unlabeled.ravel()]} == {
        chunk.length}
  assert any(not np.array_equal(p.unlabeled, r.unlabeled)
             for p, r in zip(paired, other_epoch))
  # The plan itself does not depend on pairing: the same chunks as before.
  for chunk, fresh in zip(chunks, _plan()[0]):
    np.testing.assert_array_equal(chunk.indices, fresh.indices)


def test_virtual_adversarial_needs_unlabeled_reviews_of_your_own(tmp_path):
  reviews = tmp_path / "reviews.csv"
  reviews.write_text("text,label\nfine,1\n")
  config = tiny_config(dataset=str(reviews), virtual_adversarial_epsilon=1.0)
  with pytest.raises(errors.ConfigError, match="unlabeled_dataset"):
    checks.validate_config(config)


def test_a_run_trains_on_unlabeled_reviews_and_resumes_exactly(
    fake_imdb, tmp_path, monkeypatch):
  traced = []
  original = train_steps._virtual_adversarial_grads  # pylint: disable=protected-access
  monkeypatch.setattr(train_steps, "_virtual_adversarial_grads",
                      lambda *a: traced.append(a[1]) or original(*a))
  config = tiny_config(seq_len=48, length_buckets=3, padding="post",
                       mask_padding=True, num_epochs=3,
                       virtual_adversarial_epsilon=1.0,
                       cache_dir=str(tmp_path / "cache"))
  whole = loop.train_and_evaluate(config, tmp_path / "whole")
  assert traced and all(b["unlabeled_tokens"].shape == b["tokens"].shape
                        for b in traced)
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
  loop.train_and_evaluate(config, tmp_path / "split")
  params = [trained.load_trained_state(tmp_path / name)[2].params
            for name in ("whole", "split")]
  for a, b in zip(*map(jax.tree.leaves, params)):
    np.testing.assert_array_equal(a, b)
