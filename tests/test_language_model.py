"""Language-model pretraining (`flax_sentiment.training.language_model`): the loss,
what each direction may see, the cache, resuming, and the hand-off to the
classifier."""

import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment import api
from flax_sentiment.data import batching
from flax_sentiment.model import classifier
from flax_sentiment.training import language_model, signals, starting
from flax_sentiment.runtime.errors import UserError
from tests.conftest import tiny_config

LM_FIELDS = dict(bidirectional=True, mask_padding=True, padding="post",
                 length_buckets=2, vocabulary_splits="train+unsupervised",
                 lm_sampled_words=16, lm_batch_size=8, progress=False)


def _same(a, b) -> bool:
  return jax.tree.all(jax.tree.map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), a, b))


def test_pieces_cover_whole_reviews_padded_at_the_end():
  reviews = [np.arange(2, 12), np.array([5]), np.arange(2, 7)]
  out = language_model.pieces(reviews, 4)
  # 10 tokens -> 4 + 4 + 2; 5 -> 4 + 1; pieces of one token predict
  # nothing and are dropped.
  assert out.tolist() == [[2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 0, 0],
                          [2, 3, 4, 5]]


def test_sampled_softmax_over_every_word_is_the_full_softmax():
  rng = np.random.default_rng(0)
  states = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(9, 5)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=9), jnp.float32)
  targets = jnp.asarray([0, 3, 8, 3, 1, 5])
  # Every word once, no correction: the target's own candidate is an
  # accidental hit and left out, which leaves the full softmax.
  loss = language_model.sampled_softmax_loss(
      states, targets, kernel, bias, jnp.arange(9), jnp.zeros(9))
  full = -jax.nn.log_softmax(states @ kernel.T + bias)[jnp.arange(6), targets]
  np.testing.assert_allclose(loss, full, rtol=1e-5, atol=1e-6)


def test_expected_counts_follow_the_unigram_power():
  ids = [np.array([2, 2, 2, 2, 3]), np.array([2, 3, 3, 3, 3, 3, 3, 3, 3])]
  log_expected = language_model.log_expected_counts(ids, 5, candidates=10)
  expected = np.exp(log_expected)
  assert expected.sum() == pytest.approx(10, rel=1e-5)
  assert expected[3] / expected[2] == pytest.approx((9 / 5) ** 0.75, rel=1e-5)
  assert np.all(np.isfinite(log_expected))  # unseen ids count as once


def test_each_direction_sees_only_its_own_side():
  model = classifier.SentimentClassifier(num_words=20, embed_dim=4, hidden_dim=3,
                                         mask_padding=True, bidirectional=True,
                                         pooling="last+max")
  tokens = jnp.asarray([[3, 4, 5, 6, 7, 0], [8, 9, 10, 0, 0, 0]])
  params = model.init(jax.random.key(0), tokens)
  forward, backward = model.apply(params, tokens, return_states=True)
  assert forward.shape == backward.shape == (6, 2, 3)  # [time, batch, hidden]
  changed = tokens.at[0, 3].set(11)  # a word after t = 2, before t = 4
  forward2, backward2 = model.apply(params, changed, return_states=True)
  np.testing.assert_array_equal(forward[:3, 0], forward2[:3, 0])
  np.testing.assert_array_equal(backward[4:5, 0], backward2[4:5, 0])
  assert not np.allclose(forward[3:5, 0], forward2[3:5, 0])
  assert not np.allclose(backward[:4, 0], backward2[:4, 0])


def _lm_setup(**fields):
  config = tiny_config(**{**LM_FIELDS, **fields})
  model = classifier.model_from_config(config).clone(implementation="hoisted")
  return config, model, language_model.init_params(model, config, None)


def test_loss_counts_real_neighbours_and_ignores_filler_rows():
  config, model, params = _lm_setup()
  tokens = jnp.asarray([[5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
  filler = jnp.zeros_like(tokens)
  candidates = jnp.arange(2, 30)
  log_expected = jnp.zeros(config.num_words)
  loss, count = language_model.lm_loss(params, model, tokens, None,
                                       candidates, log_expected)
  assert int(count) == 2 * 3  # 4 real tokens: 3 next + 3 previous words
  loss2, count2 = language_model.lm_loss(
      params, model, jnp.concatenate([tokens, filler]), None, candidates,
      log_expected)
  assert int(count2) == int(count)
  assert float(loss2) == pytest.approx(float(loss), rel=1e-6)


def _full_softmax_loss(params, model, config, tokens):
  return float(language_model.lm_loss(
      params, model, jnp.asarray(tokens), None, jnp.arange(config.num_words),
      jnp.zeros(config.num_words))[0])


def _pretraining_text(config):
  return api.load_data(config).pretraining_ids


def test_pretraining_lowers_the_full_softmax_loss(fake_imdb, tmp_path):
  config, model, initial = _lm_setup(cache_dir=str(tmp_path / "cache"),
                                     pretrain_lm_epochs=3,
                                     lm_learning_rate=1e-2)
  ids = _pretraining_text(config)
  trained = language_model.train(config, ids, None)
  tokens = language_model.pieces(ids, config.seq_len)[:256]
  before = _full_softmax_loss(initial, model, config, tokens)
  after = _full_softmax_loss(trained, model, config, tokens)
  assert after < before - 0.3, (before, after)


def test_pretraining_is_cached_and_resumes_exactly_after_a_kill(
    fake_imdb, tmp_path, monkeypatch):
  config, _, initial = _lm_setup(cache_dir=str(tmp_path / "cache"),
                                 pretrain_lm_epochs=3)
  ids = _pretraining_text(config)
  said = []
  trained = language_model.pretrained_params(config, ids, None, said.append)
  assert set(trained) == {"embedding", "rnn", "rnn_backward"}
  assert not _same(trained["rnn"], initial["classifier"]["rnn"])
  assert len([s for s in said if s.startswith("language model epoch")]) >= 3
  again = []  # the cache: a second call trains nothing
  assert _same(language_model.pretrained_params(config, ids, None,
                                                again.append), trained)
  assert [s for s in again if "Loaded the pretrained language model" in s]
  assert not [s for s in again if s.startswith("language model epoch")]
  # Killed right after epoch 1's snapshot: the rerun resumes there and
  # ends where the uninterrupted pretraining did.
  killed = tiny_config(**{**LM_FIELDS, "cache_dir": str(tmp_path / "kill"),
                          "pretrain_lm_epochs": 3})
  real_write = language_model._write_atomic_bytes  # pylint: disable=protected-access

  def write_then_die(path, content):
    real_write(path, content)
    raise KeyboardInterrupt
  monkeypatch.setattr(language_model, "_write_atomic_bytes", write_then_die)
  with pytest.raises(KeyboardInterrupt):
    language_model.pretrained_params(killed, ids, None)
  monkeypatch.setattr(language_model, "_write_atomic_bytes", real_write)
  resumed_said = []
  resumed = language_model.pretrained_params(killed, ids, None,
                                             resumed_said.append)
  assert [s for s in resumed_said if "after step" in s]
  assert _same(resumed, trained)
  assert not list((tmp_path / "kill").glob("*.epochs.msgpack"))


def test_a_damaged_cache_file_is_one_line_naming_it(fake_imdb, tmp_path):
  config, _, _ = _lm_setup(cache_dir=str(tmp_path / "cache"),
                           pretrain_lm_epochs=1)
  ids = _pretraining_text(config)
  language_model.pretrained_params(config, ids, None)
  [cached] = (tmp_path / "cache").glob("language_model_*.msgpack")
  cached.write_bytes(b"\x00not msgpack")
  with pytest.raises(UserError, match="damaged") as error:
    language_model.pretrained_params(config, ids, None)
  assert str(cached) in str(error.value) and "\n" not in str(error.value)


def test_runs_of_every_seed_start_from_the_same_pretrained_weights(
    fake_imdb, tmp_path):
  states = {}
  for seed in (0, 1):
    config = tiny_config(**{**LM_FIELDS, "cache_dir": str(tmp_path / "cache"),
                            "pretrain_lm_epochs": 1, "seed": seed})
    imdb = api.load_data(config)
    model = api.build_model(config)
    feeds = api.plan(config, imdb)
    with pytest.raises(UserError, match="create_state"):
      api.create_state(config, model, feeds)
    states[seed] = api.create_state(config, model, feeds, imdb)
    pretrained = language_model.pretrained_params(config,
                                                  imdb.pretraining_ids, None)
    for name in pretrained:
      assert _same(states[seed].params[name], pretrained[name])
    fresh = starting.init_state(config, model, feeds)
    assert _same(states[seed].params["dense"], fresh.params["dense"])
  assert _same(states[0].params["rnn"], states[1].params["rnn"])
  assert not _same(states[0].params["dense"], states[1].params["dense"])


def test_a_stop_signal_saves_the_step_and_the_rerun_ends_the_same(
    fake_imdb, tmp_path, monkeypatch):
  config, _, _ = _lm_setup(cache_dir=str(tmp_path / "cache"),
                           pretrain_lm_epochs=2)
  ids = _pretraining_text(config)
  uninterrupted = language_model.pretrained_params(config, ids, None)
  stopped = tiny_config(**{**LM_FIELDS, "cache_dir": str(tmp_path / "stop"),
                           "pretrain_lm_epochs": 2})
  real_distinct_ids = batching.distinct_ids
  calls = []

  def signal_at_step_5(*args, **kwargs):
    calls.append(1)
    if len(calls) == 5:  # SIGTERM arrives during step 5
      signal.raise_signal(signal.SIGTERM)
    return real_distinct_ids(*args, **kwargs)
  monkeypatch.setattr(batching, "distinct_ids", signal_at_step_5)
  handler = signal.getsignal(signal.SIGTERM)
  with pytest.raises(signals.Interrupted) as stop:
    language_model.pretrained_params(stopped, ids, None)
  monkeypatch.setattr(batching, "distinct_ids", real_distinct_ids)
  message = str(stop.value)
  assert stop.value.signum == signal.SIGTERM and "\n" not in message
  assert "SIGTERM" in message and "step 5 of" in message
  assert signal.getsignal(signal.SIGTERM) == handler  # restored
  said = []
  resumed = language_model.pretrained_params(stopped, ids, None, said.append)
  assert [s for s in said if "after step 5 of" in s]
  assert _same(resumed, uninterrupted)
