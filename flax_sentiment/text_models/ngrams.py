"""An n-gram model beside the recurrent ones: a logistic regression on
binary word 1..n-grams weighted by naive-Bayes log-count ratios (the NBSVM
family of Wang & Manning 2012, fitted as a logistic regression).

  flax-sentiment train --config ngrams --workdir runs/ngrams

Features: the distinct n-grams of a review's words (`tokenizer.tokenize`, the
whole review, never truncated) found in at least `ngram_min_count` reviews
of the train part. Each feature is scaled by its log-count ratio
r = log((α + positive count) / ‖·‖₁) - log((α + negative count) / ‖·‖₁)
over the train part (α = 1), and scikit-learn's `LogisticRegression` is fitted
on them for each of `ngram_c_values`; the one best on validation is kept.
Counts, ratios and fits read the train part only: never validation or test
reviews.

A run writes a normal workdir (`common.py`: `config.json`,
`metrics.jsonl` with one record, `result.json`) and `ngram_model.npz`: the n-grams and one weight
each (coefficient × ratio), so scoring is a sum of weights and needs
neither scikit-learn nor jax. `predict`, `ensemble`, `report` and `serve`
take the workdir like any run's.
"""

import dataclasses
import functools
import json
import pathlib
from typing import Callable, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import tokenizer
from flax_sentiment.text_models import common
from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import ConfigError, UserError
from flax_sentiment.tracking.rundir import RunDir

SMOOTHING = 1.0  # α of the log-count ratios
FORMAT_VERSION = 1


def text_ngrams(text: str | bytes, max_n: int,
                kind: str = "english") -> set[str]:
  """The distinct 1..max_n-grams of a text's tokens (`kind`: the
  tokenizer's; words or characters), joined by one space: "not bad"
  (max_n 2) -> {"not", "bad", "not bad"}."""
  words = _tokenizer(kind)(text)
  return {" ".join(words[i:i + n]) for n in range(1, max_n + 1)
          for i in range(len(words) - n + 1)}


@functools.cache
def _tokenizer(kind: str) -> tokenizer.Tokenizer:
  return tokenizer.Tokenizer(kind)


def log_count_ratios(features, labels: np.ndarray,
                     alpha: float = SMOOTHING) -> np.ndarray:
  """features [reviews, ngrams] binary (scipy sparse), labels [reviews] 0/1
  -> r [ngrams]: log of the smoothed share of positive reviews that hold
  each n-gram over that of negative ones."""
  labels = np.asarray(labels)
  positive = alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
  negative = alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
  return (np.log(positive / positive.sum())
          - np.log(negative / negative.sum())).astype(np.float32)


@dataclasses.dataclass
class NgramModel:
  """Scores texts: logit = bias + the sum of the weights of the n-grams a
  text holds. ngrams [n], weights [n] float32."""
  ngrams: list[str]
  weights: np.ndarray
  bias: float
  max_n: int
  tokenizer: str = "english"  # the kind of tokenizer its n-grams are of

  def __post_init__(self):
    self.index = {g: i for i, g in enumerate(self.ngrams)}

  explain_hint = "an n-gram model: its weight per n-gram is in ngram_model.npz"

  def known_words(self) -> frozenset[str]:
    """The single words among its features (`predict` counts unknown words
    with them)."""
    return frozenset(g for g in self.ngrams if " " not in g)

  def logits(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> logits [len(texts)] float32."""
    out = np.full(len(texts), self.bias, np.float64)
    for row, text in enumerate(texts):
      ids = [self.index[g] for g in text_ngrams(text, self.max_n,
                                                 self.tokenizer)
             if g in self.index]
      out[row] += self.weights[ids].sum(dtype=np.float64)
    return out.astype(np.float32)

  def __call__(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> P(positive) [len(texts)] float32."""
    return (1 / (1 + np.exp(-self.logits(texts).astype(np.float64)))
            ).astype(np.float32)

  def save(self, path: pathlib.Path) -> None:
    """One .npz (written atomically): the n-grams as UTF-8 lines, the
    weights, bias and max_n."""
    path = pathlib.Path(path)
    joined = "\n".join(self.ngrams).encode("utf-8")
    with files.atomic_file(path) as f:
      np.savez(f, ngrams=np.frombuffer(joined, np.uint8),
               weights=self.weights.astype(np.float32),
               header=np.frombuffer(json.dumps(
                   {"bias": float(self.bias), "max_n": self.max_n,
                    "tokenizer": self.tokenizer,
                    "format": FORMAT_VERSION}).encode(), np.uint8))

  @classmethod
  def load(cls, path: pathlib.Path) -> "NgramModel":
    """The model saved at `path`; UserError naming it if it is missing or
    damaged."""
    try:
      with np.load(path, allow_pickle=False) as saved:
        header = json.loads(saved["header"].tobytes())
        ngrams = saved["ngrams"].tobytes().decode("utf-8").split("\n")
        weights = np.asarray(saved["weights"], np.float32)
      if len(ngrams) != len(weights) or not np.all(np.isfinite(weights)):
        raise ValueError("n-grams and weights disagree, or weights are "
                         "not finite")
      return cls(ngrams, weights, float(header["bias"]), int(header["max_n"]),
                 str(header.get("tokenizer", "english")))
    except FileNotFoundError:
      raise UserError(f"{path} is missing; re-run the training command to "
                      f"rebuild it") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise UserError(f"{path} is damaged ({type(e).__name__}); re-run the "
                      f"training command to rebuild it") from None


@dataclasses.dataclass
class Fit:
  model: NgramModel
  c: float                                # the inverse regularization kept
  validation_accuracy_by_c: dict[str, float]
  features: int


def fit(train_texts: Sequence[bytes], train_labels: np.ndarray,
        validation: tuple[Sequence[bytes], np.ndarray] | None, config,
        say: Callable[[str], None] = lambda message: None) -> Fit:
  """Counts n-grams and their ratios on the train part, fits one logistic
  regression per `ngram_c_values` and keeps the best on `validation`
  (texts, labels) — the only C without validation (more is a ConfigError).
  Ties go to the smaller C (the simpler model)."""
  text_features, linear_model = common.sklearn_modules(
      config, "feature_extraction.text", "linear_model")
  c_values = fields.parse_number_list(config.ngram_c_values)
  if validation is None and len(c_values) > 1:
    raise ConfigError(
        f"config.ngram_c_values={config.ngram_c_values!r} are chosen on "
        f"validation: set --config.validation_examples (e.g. 2500), or give "
        f"one value")
  kind = tokenizer.kind_of(config)
  vectorizer = text_features.CountVectorizer(
      analyzer=lambda text: text_ngrams(text, config.ngram_max_n, kind),
      binary=True, min_df=config.ngram_min_count, dtype=np.float32)
  train_x = vectorizer.fit_transform(train_texts).tocsr()
  if not train_x.shape[1]:
    raise ConfigError(
        f"no n-gram occurs in {config.ngram_min_count} train reviews; lower "
        f"--config.ngram_min_count")
  labels = np.asarray(train_labels)
  ratios = log_count_ratios(train_x, labels)
  say(f"{train_x.shape[1]:,} n-grams (1..{config.ngram_max_n} words, in "
      f">= {config.ngram_min_count} train reviews)")
  scaled = train_x.multiply(ratios).tocsr()
  validation_x = (vectorizer.transform(validation[0]).multiply(ratios).tocsr()
                  if validation is not None else None)
  best, regression, accuracy = common.fit_per_c(
      c_values, lambda c: linear_model.LogisticRegression(
          C=c, solver="liblinear", dual=True, max_iter=1000,
          random_state=config.seed).fit(scaled, labels),  # reproducible
      None if validation is None else (validation_x, validation[1]), say)
  model = NgramModel(
      list(vectorizer.get_feature_names_out()),
      (regression.coef_.ravel() * ratios).astype(np.float32),
      float(regression.intercept_[0]), config.ngram_max_n, kind)
  return Fit(model, best, accuracy, train_x.shape[1])


NAME = "n-gram"


def fit_run(splits, config, say: Callable[[str], None]
            ) -> tuple[NgramModel, dict]:
  """`text_models` fits a run here: the model and its record's fields."""
  fitted = fit(*splits["train"], splits.get("validation"), config, say)
  return fitted.model, {
      "ngram_features": fitted.features, "ngram_c": fitted.c,
      "ngram_validation_accuracy_by_c": fitted.validation_accuracy_by_c}


def model_path(rundir: RunDir) -> pathlib.Path:
  return rundir.path / "ngram_model.npz"


def load(rundir: RunDir) -> NgramModel:
  return NgramModel.load(model_path(rundir))
