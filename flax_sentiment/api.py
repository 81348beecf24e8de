"""The Python API: the steps of a run as functions, for notebooks and scripts.

  from flax_sentiment import api
  config = api.load_config("lstm", max_train_examples=2000, num_epochs=2)
  imdb = api.load_data(config)                  # token ids, padded
  model = api.build_model(config)               # a flax.linen Module
  feeds = api.plan(config, imdb)                # batches and compiled calls
  state = api.create_state(config, model, feeds)
  for epoch in range(config.num_epochs):
    state, train_metrics = api.train_epoch(state, feeds, epoch)
    print(train_metrics, api.evaluate(state, feeds))
  api.predict_texts(state, config, imdb.vocabulary, ["A wonderful film."])
  api.explain_texts(state, config, imdb.vocabulary, ["Not bad at all."])

These are the pieces `loop.train_and_evaluate` (what `run.py` runs) is made
of, without its checkpoints, resume, signals and files: use that for a full,
resumable run, and `trained.load_predictor(workdir)` for a trained workdir.
"""

import time
from typing import Callable, Sequence

import ml_collections
import numpy as np

from flax_sentiment.configuration import loading
from flax_sentiment.data import datasets, tokenizer
from flax_sentiment.model import classifier
from flax_sentiment.tracking import metrics, monitor
from flax_sentiment.training import feeding, loop, starting
from flax_sentiment.usage import explain, trained
from flax_sentiment.tracking import progress as progress_lib
from flax_sentiment.model import scoring
from flax_sentiment.training import train_steps
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.training.checks import validate_config

__all__ = ["load_config", "load_data", "build_model", "plan", "create_state",
           "train_epoch", "evaluate", "predict_texts", "explain_texts"]


def load_config(name: str = "lstm", **overrides) -> ml_collections.ConfigDict:
  """A config by name (`lstm`, `rnn`, `best_cpu`, ...: the configs the
  package ships) or path (`path/to/mine.py`), with `overrides` (e.g.
  seq_len=512), its relative paths made absolute, checked like `flax-sentiment
  train` checks it. Works from any folder."""
  config = loading.load(name)
  config.update(overrides)
  loading.resolve_paths(config)
  validate_config(config)
  return config


def load_data(config, say: Callable[[str], None] = print) -> datasets.ImdbData:
  """IMDB per `config`: `.train`, `.test` (and `.validation`) splits with
  `.tokens` [examples, seq_len] int32 (Keras-style padding), `.labels`
  [examples] (1 = positive) and `.lengths` [examples]; `.vocabulary` (id
  i + 2 is word `vocabulary[i]`; 0 is padding, 1 unknown)."""
  return datasets.load_imdb(config, say=say)


def build_model(config) -> classifier.SentimentClassifier:
  """The classifier: token ids [batch, seq_len] -> logits [batch]."""
  return classifier.model_from_config(config)


def plan(config, imdb: datasets.ImdbData,
         say: Callable[[str], None] = lambda line: None) -> feeding.Feeds:
  """Every epoch's batches (`.plans[epoch]`, lists of chunks of
  `steps_per_call` batches) and the compiled calls that run them: `.train`
  (state, chunk) -> (state, per-step metric sums), and `.eval_sets`."""
  return feeding.plan_run(config, imdb, say)


def create_state(config, model: classifier.SentimentClassifier,
                 feeds: feeding.Feeds, imdb: datasets.ImdbData | None = None
                 ) -> train_steps.TrainState:
  """Initial parameters (seeded by `config.seed`), Adam state (its schedule
  sized to the planned steps), replicated over the devices; with
  `pretrained_embeddings="word2vec"` the embedding starts from word2vec
  on `imdb`'s pretraining text, with `pretrain_lm_epochs` the embedding
  and recurrences from a language model trained on it — the run's own
  `starting.new_state`."""
  if imdb is None and (config.pretrained_embeddings != "none"
                       or config.pretrain_lm_epochs):
    what = (f"pretrained_embeddings={config.pretrained_embeddings!r} trains "
            f"word vectors" if config.pretrained_embeddings != "none" else
            f"pretrain_lm_epochs={config.pretrain_lm_epochs} pretrains a "
            f"language model")
    raise UserError(f"config.{what} on the data: call create_state(config, "
                    f"model, feeds, imdb)")
  return starting.new_state(config, model, feeds, imdb)


def train_epoch(state: train_steps.TrainState, feeds: feeding.Feeds, epoch: int,
                progress: bool = True
                ) -> tuple[train_steps.TrainState, dict[str, float]]:
  """One pass over the planned batches of `epoch` (0-based), with the
  run's progress display (a bar on a terminal, a line every 30 s
  otherwise); returns the new state and {train_loss, train_accuracy,
  train_seconds}. A NaN/inf loss raises `loop.NonFiniteLossError`."""
  chunks = feeds.plans[epoch]
  console = monitor.Console(progress)
  bar = console.epoch(epoch, len(feeds.plans), len(feeds.train.split), 0)
  where = progress_lib.Progress(epoch=epoch)
  totals = metrics.empty_totals()
  start = time.perf_counter()
  try:
    for chunk in chunks:
      state, sums, _ = loop.train_chunk(state, chunk, feeds.train, where,
                                        None, None, feeds.learning_rate)
      chunk_totals = metrics.add(metrics.empty_totals(), sums)
      totals = metrics.add(totals, sums)
      bar.update(int(chunk.weights.sum()), **chunk_totals)
  finally:
    bar.close()
  return state, {**metrics.rates(totals, "train"),
                 "train_seconds": time.perf_counter() - start}


def evaluate(state: train_steps.TrainState, feeds: feeding.Feeds
             ) -> dict[str, float]:
  """Loss and accuracy on every evaluated split: {test_loss,
  test_accuracy} (and validation_* with a validation split)."""
  return loop.evaluate(state, feeds.eval_sets)


def predict_texts(state: train_steps.TrainState, config,
                  vocabulary: Sequence[str], texts: Sequence[str],
                  text_rule: tokenizer.Tokenizer | None = None
                  ) -> np.ndarray:
  """P(positive) [len(texts)] for raw texts, tokenized (`text_rule`: the
  data's `.tokenizer`; needed for subwords) and padded as in training."""
  scorer = scoring.Scorer(build_model(config), state.params)
  return scorer(trained.encode_texts(texts, vocabulary, config, text_rule))


def explain_texts(state: train_steps.TrainState, config,
                  vocabulary: Sequence[str], texts: Sequence[str],
                  steps: int = explain.DEFAULT_STEPS,
                  text_rule: tokenizer.Tokenizer | None = None
                  ) -> list[explain.Explanation]:
  """Each word's contribution to each text's logit (integrated gradients on
  the embeddings, `steps` points from a zero-embedding baseline): a list of
  `explain.Explanation` (`.probability`, `.words`); `explain.render(e)`
  shows one as `good[+0.83] film[-0.02]`."""
  return explain.explain_texts(build_model(config), state.params, config,
                               vocabulary, texts, steps=steps,
                               text_rule=text_rule)
