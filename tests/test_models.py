import jax
import jax.numpy as jnp
import pytest

from flax_sentiment import models


def init_params(model, seq_len=64, batch=2):
  return model.init(jax.random.key(0), jnp.zeros((batch, seq_len), jnp.int32))["params"]


@pytest.mark.parametrize("cell,expected", [("rnn", 2_609_409),
                                           ("lstm", 2_757_249)])
def test_notebook_parameter_counts_match_keras(cell, expected):
  model = models.SentimentClassifier(cell=cell)
  params = init_params(model)
  assert models.count_params(params) == expected
  assert models.summary(model, params, 64).splitlines()[-3] == (
      f"Total params: {expected:,}")


@pytest.mark.parametrize("cell,cell_params", [
    ("rnn", 64 * 32 + 32 * 32 + 32),
    ("lstm", 4 * (64 * 32 + 32 * 32 + 32)),
    ("gru", 3 * (64 * 32 + 32 + 32 * 32) + 32),
])
def test_parameter_counts_follow_the_sizes(cell, cell_params):
  model = models.SentimentClassifier(cell=cell, num_words=5000, embed_dim=64,
                                     hidden_dim=32)
  params = init_params(model, seq_len=10)
  assert models.count_params(params["rnn"]) == cell_params
  assert models.count_params(params) == 5000 * 64 + cell_params + 32 + 1


@pytest.mark.parametrize("cell", list(models.CELLS))
@pytest.mark.parametrize("implementation", models.IMPLEMENTATIONS)
def test_output_is_one_logit_per_review(cell, implementation):
  model = models.SentimentClassifier(cell=cell, num_words=100, embed_dim=8,
                                     hidden_dim=4,
                                     implementation=implementation)
  params = init_params(model, seq_len=7, batch=3)
  tokens = jax.random.randint(jax.random.key(1), (5, 7), 0, 100)
  logits = model.apply({"params": params}, tokens)
  assert logits.shape == (5,) and logits.dtype == jnp.float32


def test_summary_lists_layers_with_keras_shapes():
  model = models.SentimentClassifier(cell="rnn")
  text = models.summary(model, init_params(model), 512)
  assert "embedding (Embed)            (None, 512, 256)          2,560,000" in text
  assert "rnn (SimpleCell)             (None, 128)               49,280" in text
  assert "dense (Dense)                (None, 1)                 129" in text
