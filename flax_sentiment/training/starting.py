"""Where a run's parameters start: initialized from the seed, then word2vec
embeddings and language-model pretraining if the config asks for them."""

import functools

import jax
import numpy as np

from flax_sentiment.data import datasets, word_vectors
from flax_sentiment.model import classifier
from flax_sentiment.runtime import parallel
from flax_sentiment.model import region_cnn
from flax_sentiment.training import (feeding, language_model, region_embedding,
                                     train_steps)


def init_state(config, model: classifier.SentimentClassifier,
               feeds: feeding.Feeds) -> train_steps.TrainState:
  """Initial parameters (seeded by `config.seed`) and optimizer state (its
  schedule sized to the planned steps), replicated over the devices."""
  init = jax.jit(functools.partial(train_steps.create_train_state, model, config,
                                   total_steps=feeds.total_steps()),
                 out_shardings=parallel.replicated(parallel.data_mesh()))
  return init(jax.random.key(config.seed))


def with_pretrained(state: train_steps.TrainState, config, imdb: datasets.ImdbData,
                    say=lambda message: None) -> train_steps.TrainState:
  """`state` with word2vec embeddings, the language-model-pretrained
  embedding and recurrences (`language_model`) and the region embeddings
  (`region_embedding`) if the config asks."""
  if config.region_embedding_dim:
    fixed = region_embedding.region_embedding_params(
        imdb.pretraining_ids, config, say)
    state = state.replace(params=_with_params(state.params,
                                              {region_cnn.FIXED: fixed}))
  table = None
  if config.pretrained_embeddings == "word2vec":
    table = word_vectors.word2vec_table(imdb.pretraining_ids, config, say)
  if config.pretrain_lm_epochs:
    pretrained = language_model.pretrained_params(
        config, imdb.pretraining_ids, table, say)
    return state.replace(params=_with_params(state.params, pretrained))
  if table is None:
    return state
  return state.replace(params=_with_params(
      state.params, {"embedding": {"embedding": table}}))


def new_state(config, model: classifier.SentimentClassifier,
              feeds: feeding.Feeds, imdb: datasets.ImdbData,
              say=lambda message: None) -> train_steps.TrainState:
  """A run's starting state: `init_state`, then `with_pretrained`."""
  return with_pretrained(init_state(config, model, feeds), config, imdb, say)


def _with_params(params, replacements: dict):
  """params with the top-level subtrees in `replacements` replaced (each
  array keeping its dtype and sharding)."""
  def place(new, old):
    return jax.device_put(np.asarray(new).astype(old.dtype), old.sharding)
  replaced = {name: jax.tree.map(place, subtree, params[name])
              for name, subtree in replacements.items()}
  return {**params, **replaced}
