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

Data of K > 2 classes: one such model per class against the rest (its own
ratios r_k, its own regression; `fit_classes`), all with one C, chosen on
validation's `select_on`. Each class's one-vs-rest logit z_k; the class
probabilities are the regressions' P(k | text) = sigmoid(z_k) normalized to
sum to 1. Why not a softmax of the z_k: they are log-odds of k against the
rest, not log-probabilities, so a softmax of them sharpens a confident
regression's odds into near-certainty (sigmoids 0.9, 0.5, 0.1 give 0.6,
0.33, 0.07 normalized but 0.89, 0.10, 0.01 by softmax); both pick the same
class. The model's logits are log sigmoid(z_k), so their softmax is those
probabilities, as a recurrent run's logits give its own (metrics, ensembles
and predict read them alike). A multinomial regression has no log-count
ratio to weigh its features with: the ratio is a two-class quantity.

A run writes a normal workdir (`common.py`: `config.json`,
`metrics.jsonl` with one record, `result.json`) and `ngram_model.npz`: the n-grams and one weight
each (coefficient × ratio; K classes: one per class, and the class names),
so scoring is a sum of weights and needs
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
from flax_sentiment.data import labels as labels_lib, tokenizer
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
  text holds. ngrams [n], weights [n] float32, bias a float; K > 2
  classes: weights [n, K], bias [K] (each class's one-vs-rest
  regression), `classes` their names."""
  ngrams: list[str]
  weights: np.ndarray
  bias: float | np.ndarray
  max_n: int
  tokenizer: str = "english"  # the kind of tokenizer its n-grams are of
  classes: tuple[str, ...] | None = None

  def __post_init__(self):
    self.index = {g: i for i, g in enumerate(self.ngrams)}

  explain_hint = "an n-gram model: its weight per n-gram is in ngram_model.npz"

  def known_words(self) -> frozenset[str]:
    """The single words among its features (`predict` counts unknown words
    with them)."""
    return frozenset(g for g in self.ngrams if " " not in g)

  def scores(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> bias + the weights of their n-grams, float64: [len(texts)]
    (K classes: [len(texts), K], each class's one-vs-rest logit)."""
    bias = np.asarray(self.bias, np.float64)
    out = np.zeros((len(texts),) + bias.shape) + bias
    for row, text in enumerate(texts):
      ids = [self.index[g] for g in text_ngrams(text, self.max_n,
                                                 self.tokenizer)
             if g in self.index]
      out[row] += self.weights[ids].sum(axis=0, dtype=np.float64)
    return out

  def logits(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> logits [len(texts)] float32; K classes: [len(texts), K],
    log sigmoid of each class's one-vs-rest logit (their softmax: the
    normalized one-vs-rest probabilities)."""
    z = self.scores(texts)
    return (z if z.ndim == 1 else -np.logaddexp(0.0, -z)).astype(np.float32)

  def __call__(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> P(positive) [len(texts)] float32 (K classes: the class
    probabilities [len(texts), K])."""
    return common.probabilities(self.logits(texts))

  def save(self, path: pathlib.Path) -> None:
    """One .npz (written atomically): the n-grams as UTF-8 lines, the
    weights, bias and max_n (K classes: the bias per class and the class
    names too)."""
    path = pathlib.Path(path)
    joined = "\n".join(self.ngrams).encode("utf-8")
    header = {"bias": (float(self.bias) if self.classes is None
                       else [float(b) for b in self.bias]),
              "max_n": self.max_n, "tokenizer": self.tokenizer,
              "format": FORMAT_VERSION}
    if self.classes is not None:
      header["classes"] = list(self.classes)
    with files.atomic_file(path) as f:
      np.savez(f, ngrams=np.frombuffer(joined, np.uint8),
               weights=self.weights.astype(np.float32),
               header=np.frombuffer(json.dumps(header).encode(), np.uint8))

  @classmethod
  def load(cls, path: pathlib.Path) -> "NgramModel":
    """The model saved at `path`; UserError naming it if it is missing or
    damaged."""
    try:
      with np.load(path, allow_pickle=False) as saved:
        header = json.loads(saved["header"].tobytes())
        ngrams = saved["ngrams"].tobytes().decode("utf-8").split("\n")
        weights = np.asarray(saved["weights"], np.float32)
      classes = header.get("classes")
      if classes is None:
        bias, shape = float(header["bias"]), (len(ngrams),)
      else:
        classes = tuple(str(c) for c in classes)
        bias = np.asarray(header["bias"], np.float64)
        shape = (len(ngrams), len(classes))
        if bias.shape != shape[1:] or not np.all(np.isfinite(bias)):
          raise ValueError("the bias is not one finite number per class")
      if weights.shape != shape or not np.all(np.isfinite(weights)):
        raise ValueError("n-grams and weights disagree, or weights are "
                         "not finite")
      return cls(ngrams, weights, bias, int(header["max_n"]),
                 str(header.get("tokenizer", "english")), classes)
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
  validation_by_c: dict[str, float]       # validation select_on per C
  features: int


def _regression(linear_model, c: float, config):
  """The logistic regression every fit uses (liblinear's dual: the
  reproducible solver with random_state)."""
  return linear_model.LogisticRegression(
      C=c, solver="liblinear", dual=True, max_iter=1000,
      random_state=config.seed)


def fit(train_texts: Sequence[bytes], train_labels: np.ndarray,
        validation: tuple[Sequence[bytes], np.ndarray] | None, config,
        say: Callable[[str], None] = lambda message: None,
        classes: tuple[str, ...] | None = None) -> Fit:
  """Counts n-grams and their ratios on the train part, fits one logistic
  regression per `ngram_c_values` and keeps the best on `validation`
  (texts, labels) — the only C without validation (more is a ConfigError).
  Ties go to the smaller C (the simpler model). `classes` (K > 2 names;
  labels their ids): one regression per class (`fit_classes`), C chosen
  on `config.select_on`."""
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
  say(f"{train_x.shape[1]:,} n-grams (1..{config.ngram_max_n} words, in "
      f">= {config.ngram_min_count} train reviews)")
  names = list(vectorizer.get_feature_names_out())
  if labels_lib.beyond_two(classes) is not None:
    validation_x = (None if validation is None else common.Validation(
        vectorizer.transform(validation[0]).tocsr(), validation[1],
        config.select_on))
    best, linear, score = common.fit_per_c(
        c_values, lambda c: fit_classes(train_x, labels, len(classes),
                                        _regression(linear_model, c, config)),
        validation_x, say)
    model = NgramModel(names, linear.weights, linear.bias,
                       config.ngram_max_n, kind, tuple(classes))
    return Fit(model, best, score, train_x.shape[1])
  ratios = log_count_ratios(train_x, labels)
  scaled = train_x.multiply(ratios).tocsr()
  validation_x = (vectorizer.transform(validation[0]).multiply(ratios).tocsr()
                  if validation is not None else None)
  best, regression, accuracy = common.fit_per_c(
      c_values, lambda c: _regression(linear_model, c, config).fit(
          scaled, labels),  # reproducible
      None if validation is None else (validation_x, validation[1]), say)
  model = NgramModel(
      names, (regression.coef_.ravel() * ratios).astype(np.float32),
      float(regression.intercept_[0]), config.ngram_max_n, kind)
  return Fit(model, best, accuracy, train_x.shape[1])


def fit_classes(train_x, labels: np.ndarray, num_classes: int,
                regression) -> common.Linear:
  """One-vs-rest NB-weighted logistic regressions: for each class k, its
  log-count ratios r_k (k against the rest) and `regression` (an unfitted
  scikit-learn estimator, cloned per class) fitted on train_x [reviews,
  ngrams] (binary) x r_k. Returns weights [ngrams, K] (coefficients x
  r_k) and bias [K]: the one-vs-rest logits of binary features. A class
  with no train review gets no weights and the add-one estimate
  sigmoid(bias) = 1 / (reviews + 2)."""
  from sklearn.base import clone  # pylint: disable=g-import-not-at-top
  weights = np.zeros((train_x.shape[1], num_classes), np.float32)
  bias = np.zeros(num_classes, np.float64)
  for k in range(num_classes):
    is_k = (labels == k).astype(np.int64)
    if not is_k.any():
      bias[k] = -np.log(len(labels) + 1.0)
      continue
    ratios = log_count_ratios(train_x, is_k)
    fitted = clone(regression).fit(train_x.multiply(ratios).tocsr(), is_k)
    weights[:, k] = fitted.coef_.ravel() * ratios
    bias[k] = fitted.intercept_[0]
  return common.Linear(weights, bias)


NAME = "n-gram"


def fit_run(splits, config, say: Callable[[str], None],
            classes: tuple[str, ...] | None = None
            ) -> tuple[NgramModel, dict]:
  """`text_models` fits a run here: the model and its record's fields."""
  fitted = fit(*splits["train"], splits.get("validation"), config, say,
               classes)
  return fitted.model, {
      "ngram_features": fitted.features, "ngram_c": fitted.c,
      common.by_c_field("ngram", config): fitted.validation_by_c}


def model_path(rundir: RunDir) -> pathlib.Path:
  return rundir.path / "ngram_model.npz"


def load(rundir: RunDir) -> NgramModel:
  return NgramModel.load(model_path(rundir))
