"""What the text models share (text_models/common.py) and what their fits
may read: C is validation's choice (ties to the smaller), the n-gram
ratios and weights come from the train rows only, and a text-model run
takes the workdir's lock like a recurrent one."""

import fcntl

import numpy as np
import pytest

from flax_sentiment.runtime.errors import UserError
from flax_sentiment.text_models import common, ngrams
from flax_sentiment.training import loop
from tests.conftest import tiny_config


class Scripted:
  """A 'regression' whose decision_function gives preset scores."""

  def __init__(self, scores):
    self.scores = np.asarray(scores, np.float64)

  def decision_function(self, unused_features):
    return self.scores


LABELS = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])


def scores_with_accuracy(correct: int) -> np.ndarray:
  """Scores for LABELS that get the first `correct` rows right."""
  right = np.where(LABELS == 1, 1.0, -1.0)
  return np.where(np.arange(len(LABELS)) < correct, right, -right)


@pytest.mark.parametrize("accuracy_by_c, want", [
    ({0.1: 6, 1.0: 9, 10.0: 7}, 1.0),   # neither the smallest nor the last
    ({0.1: 9, 1.0: 6, 10.0: 7}, 0.1),
    ({0.1: 5, 1.0: 6, 10.0: 9}, 10.0),
    ({10.0: 8, 1.0: 8, 0.1: 7}, 1.0),   # a tie goes to the smaller C
])
def test_c_is_validation_s_choice(accuracy_by_c, want):
  fitted = []

  def fit_one(c):
    fitted.append(c)
    return Scripted(scores_with_accuracy(accuracy_by_c[c]))
  best, regression, accuracy = common.fit_per_c(
      list(accuracy_by_c), fit_one, ("validation features", LABELS),
      lambda message: None)
  assert best == want and sorted(fitted) == sorted(accuracy_by_c)
  assert regression.scores.tolist() == scores_with_accuracy(
      accuracy_by_c[want]).tolist()
  assert accuracy == {f"{c:g}": n / 10 for c, n in accuracy_by_c.items()}


def _texts(rng, count, words_good=("great", "superb"),
           words_bad=("awful", "dull")):
  filler = ["the", "film", "plot", "was", "and", "it"]
  texts, labels = [], []
  for i in range(count):
    words = list(rng.choice(filler, 6)) + list(
        rng.choice(words_good if i % 2 else words_bad, 2))
    texts.append(" ".join(words).encode())
    labels.append(i % 2)
  return texts, np.array(labels)


def test_ngram_ratios_and_weights_come_from_the_train_rows_only():
  """The validation rows change (other words, flipped labels): with one C
  (no choice to make) the fitted model is the same."""
  pytest.importorskip("sklearn")
  rng = np.random.default_rng(0)
  train = _texts(rng, 60)
  validation = _texts(rng, 20)
  other = _texts(rng, 20, words_good=("dull", "boring"),
                 words_bad=("great", "superb"))
  config = tiny_config(model="ngrams", ngram_c_values="1", ngram_min_count=1)
  a = ngrams.fit(*train, validation, config)
  b = ngrams.fit(*train, (other[0], 1 - other[1]), config)
  assert a.model.ngrams == b.model.ngrams
  np.testing.assert_array_equal(a.model.weights, b.model.weights)
  assert a.model.bias == b.model.bias
  # ... and a train row does change it.
  c = ngrams.fit(train[0][1:], train[1][1:], validation, config)
  assert not np.array_equal(c.model.weights, a.model.weights[:len(
      c.model.weights)]) or c.model.ngrams != a.model.ngrams


def test_the_ngram_weights_are_the_ratio_scaled_regression():
  """weights = regression coefficients x the log-count ratios of the train
  rows, checked against scikit-learn fitted here by hand."""
  linear_model = pytest.importorskip("sklearn.linear_model")
  rng = np.random.default_rng(1)
  texts, labels = _texts(rng, 40)
  config = tiny_config(model="ngrams", ngram_c_values="1", ngram_min_count=1,
                       ngram_max_n=1)
  fit = ngrams.fit(texts, labels, None, config)
  index = {g: i for i, g in enumerate(fit.model.ngrams)}
  x = np.zeros((len(texts), len(index)), np.float32)
  for row, text in enumerate(texts):
    for gram in ngrams.text_ngrams(text, 1):
      x[row, index[gram]] = 1.0
  positive = x[labels == 1].sum(axis=0) + 1.0
  negative = x[labels == 0].sum(axis=0) + 1.0
  ratios = np.log(positive / positive.sum()) - np.log(negative /
                                                      negative.sum())
  regression = linear_model.LogisticRegression(
      C=1.0, solver="liblinear", dual=True, max_iter=1000,
      random_state=config.seed).fit(
          x * ratios, labels)
  np.testing.assert_allclose(fit.model.weights,
                             regression.coef_.ravel() * ratios, rtol=1e-4,
                             atol=1e-6)


def test_a_text_model_run_takes_the_workdir_lock(tmp_path, monkeypatch):
  """Two runs in one workdir at once would interleave their files: a
  text-model run refuses a workdir another run holds, as a recurrent one
  does."""
  pytest.importorskip("sklearn")
  rng = np.random.default_rng(2)
  texts, labels = _texts(rng, 60)
  (tmp_path / "train.csv").write_text("text,label\n" + "".join(
      f"{t.decode()},{y}\n" for t, y in zip(texts, labels)))
  config = tiny_config(model="ngrams", dataset=str(tmp_path / "train.csv"),
                       validation_examples=10, ngram_c_values="1",
                       ngram_min_count=1, cache_dir=str(tmp_path / "cache"))
  workdir = tmp_path / "run"
  workdir.mkdir()
  with open(workdir / ".lock", "w") as held:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(UserError, match="another"):
      loop.train_and_evaluate(config, workdir)
  assert sorted(p.name for p in workdir.iterdir()) == [".lock"]
  loop.train_and_evaluate(config, workdir)  # free now
  assert (workdir / "ngram_model.npz").exists()


class Untouchable(list):
  """Test texts a fit must never read: any access fails the test."""

  def _refuse(self, *unused):
    raise AssertionError("a fit read the test texts")
  __iter__ = __getitem__ = __len__ = _refuse


@pytest.mark.parametrize("kind, fields", [
    ("ngrams", dict(ngram_c_values="0.1,1", ngram_min_count=1)),
    ("paragraph_vectors", dict(pv_c_values="0.1,1", pv_dim=4, pv_epochs=2,
                               pv_min_count=1, pv_sample=0.0)),
])
def test_a_fit_reads_no_test_text_and_chooses_c_on_validation(
    kind, fields, monkeypatch):
  pytest.importorskip("sklearn")
  rng = np.random.default_rng(3)
  train, validation = _texts(rng, 60), _texts(rng, 20)
  seen = []
  real_fit_per_c = common.fit_per_c

  def recording(c_values, fit_one, chosen_on, say):
    seen.append(chosen_on[1])
    return real_fit_per_c(c_values, fit_one, chosen_on, say)
  monkeypatch.setattr(common, "fit_per_c", recording)
  splits = {"train": train, "validation": validation,
            "test": (Untouchable(), np.zeros(5))}
  config = tiny_config(model=kind, **fields)
  common.kind(config).fit_run(splits, config, lambda message: None)
  assert len(seen) == 1
  np.testing.assert_array_equal(seen[0], validation[1])


def test_the_train_part_is_disjoint_from_validation_and_test(tmp_path):
  """Every review of the file is in exactly one of train / validation /
  test (unique texts), the validation ones as many as asked for, and the
  same split as the recurrent models use."""
  from flax_sentiment.data import datasets  # pylint: disable=g-import-not-at-top
  rows = [(f"review number {i} was {'great' if i % 2 else 'awful'}", i % 2)
          for i in range(100)]
  (tmp_path / "all.csv").write_text("text,label\n" + "".join(
      f"{t},{y}\n" for t, y in rows))
  config = tiny_config(model="ngrams", dataset=str(tmp_path / "all.csv"),
                       validation_examples=16, test_fraction=0.2,
                       cache_dir=str(tmp_path / "cache"))
  splits = common.split_texts(config)
  parts = {name: {bytes(t) for t in splits[name][0]}
           for name in ("train", "validation", "test")}
  assert len(parts["validation"]) == 16
  assert sum(map(len, parts.values())) == 100
  assert not parts["train"] & parts["validation"]
  assert not (parts["train"] | parts["validation"]) & parts["test"]
  imdb = datasets.load_imdb(tiny_config(
      dataset=str(tmp_path / "all.csv"), validation_examples=16,
      test_fraction=0.2, cache_dir=str(tmp_path / "cache")))
  assert len(imdb.validation.labels) == 16
  np.testing.assert_array_equal(imdb.validation.labels,
                                splits["validation"][1])
  np.testing.assert_array_equal(imdb.train.labels, splits["train"][1])
