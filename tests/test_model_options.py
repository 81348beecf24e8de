"""Beyond the notebook: bidirectional, stacked, pooled, dropout; optimizer
options. The fast path equals nn.RNN + the stock cells here too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.equivalence import assert_outputs_and_grads_close
from flax_sentiment.model import classifier
from flax_sentiment.training import train_steps
from tests.conftest import tiny_config

# Post-padded reviews of lengths 6, 3, 1, 8 (id 0 = padding).
TOKENS = jnp.array([[5, 9, 4, 7, 3, 2, 0, 0], [8, 8, 6, 0, 0, 0, 0, 0],
                    [4, 0, 0, 0, 0, 0, 0, 0], [3, 5, 7, 9, 2, 4, 6, 8]])
OPTIONS = [dict(bidirectional=True), dict(num_layers=2),
           dict(pooling="max"), dict(pooling="mean"),
           dict(pooling="last+max+mean", bidirectional=True, num_layers=2)]


def small_model(cell="lstm", **options):
  return classifier.SentimentClassifier(cell=cell, num_words=12, embed_dim=6,
                                        hidden_dim=5, mask_padding=True,
                                        **options)


def params_of(model, tokens=TOKENS):
  params = model.init(jax.random.key(0), tokens)["params"]
  # Non-zero biases so that a mix-up of bias terms cannot hide.
  return jax.tree.map(lambda p: p + 0.1 * jax.random.normal(
      jax.random.key(2), p.shape), params)


@pytest.mark.parametrize(
    "cell,options", [(c, OPTIONS[-1]) for c in classifier.CELLS], ids=str)
def test_hoisted_equals_stock_forward_and_gradients(cell, options):
  """Bidirectional, 2 layers, last+max+mean pooling: all options at once."""
  model = small_model(cell, **options)
  stock = model.clone(implementation="stock")
  assert_outputs_and_grads_close(
      lambda p: model.apply({"params": p}, TOKENS),
      lambda p: stock.apply({"params": p}, TOKENS), (params_of(model),))


@pytest.mark.parametrize("options", OPTIONS[::2], ids=str)
def test_each_review_alone_and_padding_on_either_side_agree(options):
  """Padding never reaches the result: each review alone, the post-padded
  batch and the pre-padded batch give the same logits. (A backward
  direction that started on padding, or pooling over padding, would not.)"""
  model = small_model(**options)
  params = params_of(model)
  logits = model.apply({"params": params}, TOKENS)
  lengths = np.asarray((TOKENS != 0).sum(axis=1))
  pre = np.zeros_like(np.asarray(TOKENS))
  for i, n in enumerate(lengths):
    pre[i, 8 - n:] = TOKENS[i, :n]
    alone = model.apply({"params": params}, TOKENS[i:i + 1, :n])
    np.testing.assert_allclose(alone, logits[i:i + 1], atol=1e-5)
  np.testing.assert_allclose(model.apply({"params": params}, jnp.asarray(pre)),
                             logits, atol=1e-5)


def test_notebook_model_is_unchanged_by_the_new_defaults():
  model = classifier.SentimentClassifier(cell="lstm")
  params = model.init(jax.random.key(0), jnp.zeros((1, 64), jnp.int32))
  assert set(params["params"]) == {"embedding", "rnn", "dense"}
  assert classifier.count_params(params) == 2_757_249


def test_bidirectional_two_layers_have_their_parameters():
  model = small_model(bidirectional=True, num_layers=2, pooling="last+max")
  params = params_of(model)
  assert set(params) == {"embedding", "rnn", "rnn_backward", "rnn2",
                         "rnn2_backward", "dense"}
  assert params["rnn2"]["cell"]["ii"]["kernel"].shape == (10, 5)  # 2 x 5 in
  assert params["dense"]["kernel"].shape == (20, 1)  # 2 dirs x (last, max)
  assert "rnn2_backward (LSTMCell)" in classifier.summary(model, params, 8)


def test_dropout_only_in_training_and_whole_words_drop_together():
  model = small_model(embed_dropout=0.5, dropout=0.5, pooling="max")
  params = params_of(model)
  plain = small_model(pooling="max")
  eval_logits = model.apply({"params": params}, TOKENS)
  np.testing.assert_array_equal(eval_logits,
                                plain.apply({"params": params}, TOKENS))
  trained = [model.apply({"params": params}, TOKENS, deterministic=False,
                         rngs={"dropout": jax.random.key(k)})
             for k in (1, 2)]
  assert not np.allclose(trained[0], eval_logits)
  assert not np.allclose(trained[0], trained[1])
  # Embedding dropout is per word: a review of one repeated word keeps it
  # everywhere or nowhere.
  keep = model.bind({"params": params}, rngs={"dropout": jax.random.key(3)}
                    )._word_keep(False)
  assert keep.shape == (12,) and set(np.unique(keep)) <= {0.0, 2.0}


def test_dropout_masks_follow_the_step_so_a_resume_draws_the_same():
  config = tiny_config(dropout=0.3, embed_dropout=0.2, mask_padding=True,
                       pooling="mean")
  model = classifier.model_from_config(config)
  state = train_steps.create_train_state(model, config, jax.random.key(0))
  batch = {"tokens": TOKENS % 12, "labels": jnp.array([1., 0., 1., 0.]),
           "weights": jnp.ones(4)}
  step = jax.jit(train_steps.train_step)
  a, _ = step(state, batch)
  b, _ = step(state, batch)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)
  c, _ = step(a, batch)  # the next step draws other masks
  d, _ = step(a.replace(step=a.step + 1), batch)
  assert not all(np.array_equal(x, y) for x, y in
                 zip(jax.tree.leaves(c.params), jax.tree.leaves(d.params)))


def test_schedule_warms_up_then_decays_to_zero():
  config = tiny_config(lr_schedule="cosine", warmup_steps=10,
                       learning_rate=0.01, num_epochs=2)
  schedule = train_steps.learning_rate_schedule(config, total_steps=100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(0.01)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
  assert 0 < float(schedule(55)) < 0.01
  linear = train_steps.learning_rate_schedule(
      tiny_config(lr_schedule="linear", learning_rate=0.01, num_epochs=1), 10)
  assert float(linear(5)) == pytest.approx(0.005)


def test_clipping_and_weight_decay():
  params = {"w": jnp.ones(4)}
  # Adam's first moment after one step is 0.1 x the gradient it saw.
  huge = {"w": jnp.full(4, 1e4)}  # global norm 2e4
  for clip, norm in ((0.0, 2e4), (1.0, 1.0)):
    tx = train_steps.make_optimizer(tiny_config(clip_grad_norm=clip))
    _, state = tx.update(huge, tx.init(params), params)
    mu = [leaf for leaf in jax.tree.leaves(state) if leaf.shape == (4,)][0]
    assert float(jnp.linalg.norm(mu)) == pytest.approx(0.1 * norm, rel=1e-5)
  plain = train_steps.make_optimizer(tiny_config(learning_rate=1.0))
  decayed = train_steps.make_optimizer(tiny_config(weight_decay=0.1,
                                                   learning_rate=1.0))
  zero = {"w": jnp.zeros(4)}
  update, _ = decayed.update(zero, decayed.init(params), params)
  np.testing.assert_allclose(update["w"], -0.1 * params["w"])  # decay only
  update, _ = plain.update(zero, plain.init(params), params)
  np.testing.assert_allclose(update["w"], 0.0)


# ------------------------------------------------- adversarial training


def test_adversarial_perturbation_has_the_claimed_norm_per_review():
  gradient = jax.random.normal(jax.random.key(0), (7, 4, 6))
  gradient = gradient.at[:, 2].set(0.0)  # a filler row: no gradient
  perturbation = train_steps.adversarial_perturbation(gradient, 2.5)
  norms = jnp.sqrt(jnp.sum(perturbation ** 2, axis=(0, 2)))
  np.testing.assert_allclose(norms, [2.5, 2.5, 0.0, 2.5], rtol=1e-6)
  # Along the gradient: the same direction per review.
  cosine = jnp.sum(perturbation * gradient, axis=(0, 2)) / (
      norms * jnp.sqrt(jnp.sum(gradient ** 2, axis=(0, 2))) + 1e-30)
  np.testing.assert_allclose(np.asarray(cosine)[[0, 1, 3]], 1.0, rtol=1e-6)


@pytest.mark.parametrize("options", [OPTIONS[-1], dict()], ids=str)
def test_perturbed_inputs_hoisted_equal_stock(options):
  model = small_model("lstm", **options)
  stock = model.clone(implementation="stock")
  perturbation = 0.3 * jax.random.normal(jax.random.key(5), (8, 4, 6))
  assert_outputs_and_grads_close(
      lambda p, r: model.apply({"params": p}, TOKENS, perturbation=r),
      lambda p, r: stock.apply({"params": p}, TOKENS, perturbation=r),
      (params_of(model), perturbation), argnums=(0, 1))
  zero = jnp.zeros_like(perturbation)
  np.testing.assert_array_equal(  # a zero perturbation changes nothing
      model.apply({"params": params_of(model)}, TOKENS, perturbation=zero),
      model.apply({"params": params_of(model)}, TOKENS))


def _state_and_batch(epsilon):
  config = tiny_config(adversarial_epsilon=epsilon, num_words=12,
                       embed_dim=6, hidden_dim=5, seq_len=8)
  model = classifier.model_from_config(config)
  state = train_steps.create_train_state(model, config, jax.random.key(0))
  batch = {"tokens": TOKENS, "labels": jnp.array([1.0, 0.0, 1.0, 0.0]),
           "weights": jnp.ones(4)}
  return state, batch


def test_adversarial_step_raises_the_loss_it_trains_on():
  state, batch = _state_and_batch(0.0)

  def loss(r):
    logits = state.apply_fn({"params": state.params}, batch["tokens"],
                            perturbation=r)
    return train_steps._metric_sums(logits, batch)[0]  # pylint: disable=protected-access
  zeros = jnp.zeros((8, 4, 6))
  r = train_steps.adversarial_perturbation(jax.grad(loss)(zeros), 0.5)
  assert float(loss(r)) > float(loss(zeros))
  assert float(loss(r)) > float(loss(-r))  # the gradient's side, not any


def test_adversarial_training_changes_the_step_and_keeps_clean_metrics():
  plain, batch = _state_and_batch(0.0)
  adversarial, _ = _state_and_batch(1.0)
  assert adversarial.adversarial_epsilon == 1.0
  new_plain, plain_sums = jax.jit(train_steps.train_step)(plain, batch)
  new_adv, adv_sums = jax.jit(train_steps.train_step)(adversarial, batch)
  for k in plain_sums:  # metrics are those of the clean batch
    np.testing.assert_allclose(plain_sums[k], adv_sums[k], rtol=1e-6)
  assert not np.allclose(new_plain.params["dense"]["kernel"],
                         new_adv.params["dense"]["kernel"])
