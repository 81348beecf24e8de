"""The Python API runs the loop's own steps: the same starting state
(word2vec included) and the same epoch as `flax-sentiment train`."""

import jax
import numpy as np
import pytest

from flax_sentiment import api
from flax_sentiment.runtime import errors
from flax_sentiment.training import loop, starting
from flax_sentiment.usage import trained
from tests.conftest import tiny_config


def _setup(**fields):
  config = tiny_config(progress=False, **fields)
  imdb = api.load_data(config)
  model = api.build_model(config)
  return config, imdb, model, api.plan(config, imdb)


def test_an_api_epoch_is_the_run_s_first_epoch(fake_imdb, tmp_path, capsys):
  config, imdb, model, feeds = _setup(cache_dir=str(tmp_path / "cache"),
                                      num_epochs=1)
  state = api.create_state(config, model, feeds, imdb)
  state, record = api.train_epoch(state, feeds, 0, progress=True)
  history = loop.train_and_evaluate(config, tmp_path / "run")
  np.testing.assert_allclose(record["train_loss"], history[0]["train_loss"],
                             rtol=1e-6)
  assert record["train_accuracy"] == history[0]["train_accuracy"]
  saved = trained.load_trained_state(tmp_path / "run")[2].params
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(saved)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  captured = capsys.readouterr()
  assert "\r" not in captured.out + captured.err  # no bar frames in files


def test_api_state_starts_from_word2vec_like_a_run(fake_imdb, tmp_path):
  pytest.importorskip("gensim")
  config, imdb, model, feeds = _setup(
      cache_dir=str(tmp_path / "cache"), pretrained_embeddings="word2vec",
      vocabulary_splits="train+unsupervised")
  with pytest.raises(errors.UserError, match="create_state"):
    api.create_state(config, model, feeds)
  state = api.create_state(config, model, feeds, imdb)
  random_init = starting.init_state(config, model, feeds)
  table = np.asarray(state.params["embedding"]["embedding"])
  assert not np.allclose(table,
                         np.asarray(random_init.params["embedding"]["embedding"]))
  np.testing.assert_array_equal(
      table, np.asarray(starting.new_state(config, model, feeds, imdb)
                        .params["embedding"]["embedding"]))


def test_a_diverged_api_epoch_names_the_run_s_learning_rate(
    fake_imdb, tmp_path, monkeypatch):
  config, imdb, model, feeds = _setup(cache_dir=str(tmp_path / "cache"),
                                      num_epochs=1, learning_rate=0.25)
  state = api.create_state(config, model, feeds, imdb)
  real_host_sums = loop.feeding.host_sums

  def diverged(sums):
    host = real_host_sums(sums)
    host["loss"][0] = np.nan
    return host
  monkeypatch.setattr(loop.feeding, "host_sums", diverged)
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"learning_rate \(now 0\.25\)"):
    api.train_epoch(state, feeds, 0, progress=False)
