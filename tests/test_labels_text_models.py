"""The text models (n-grams, paragraph vectors) on K > 2 classes (#40):
one-vs-rest NB-weighted regressions and a multinomial regression on
paragraph vectors, C chosen on the run's select_on, the K-class record,
their files, predict and ensembles; binary runs as they were."""

import json

import numpy as np
import pytest

from flax_sentiment.data import sources
from flax_sentiment.runtime.errors import ConfigError, UserError
from flax_sentiment.text_models import common, ngrams, paragraph_vectors
from flax_sentiment.tracking.rundir import RunDir
from flax_sentiment.training import loop
from flax_sentiment.usage import ensemble, trained
from tests import classes
from tests.conftest import predict_cli, snapshot, tiny_config

pytest.importorskip("sklearn")

THREE = ("neg", "neutral", "pos")
FIVE = ("1", "2", "3", "4", "5")
NGRAMS = dict(model="ngrams", ngram_c_values="0.01,0.1,1", ngram_min_count=1)
PV = dict(model="paragraph_vectors", pv_c_values="0.1,1", pv_dim=16,
          pv_epochs=40, pv_min_count=1, pv_sample=0.0)
# A review of each class's own words (tests/classes.py), in class order.
OWN_WORDS = ["awful dreadful boring film", "okay average fine story",
             "great wonderful moving music", "superb flawless plot",
             "masterpiece sublime scene"]


def _write(path, names, num, seed, flip_every=7):
  """A review file of classes.reviews' rows, every `flip_every`-th label
  moved to the next class (noise: no model is perfect on it)."""
  rows = classes.reviews(list(names), num, seed)
  rows = [(t, names[(names.index(n) + 1) % len(names)]
           if i % flip_every == 0 else n) for i, (t, n) in enumerate(rows)]
  path.write_text("text,label\n" + "".join(f"{t},{n}\n" for t, n in rows))
  return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("text_k")
  files = {"3": (_write(root / "train3.csv", THREE, 300, 0),
                 _write(root / "test3.csv", THREE, 90, 1)),
           "5": (_write(root / "train5.csv", FIVE, 400, 2),
                 _write(root / "test5.csv", FIVE, 100, 3))}
  return root, files


def _config(data, k: str, **fields):
  root, files = data
  return tiny_config(dataset=str(files[k][0]), test_dataset=str(files[k][1]),
                     validation_examples=30, cache_dir=str(root / "cache"),
                     progress=False, **fields)


@pytest.fixture(scope="module")
def runs(data):
  """{name: (workdir, config, the one record)} of finished runs."""
  root, _ = data
  made = {}
  for name, k, fields in (("ngrams3", "3", NGRAMS), ("pv3", "3", PV),
                          ("ngrams5", "5", dict(NGRAMS, select_on="macro_f1")),
                          ("pv5", "5", dict(PV, select_on="macro_f1"))):
    config = _config(data, k, **fields)
    (record,) = loop.train_and_evaluate(config, root / name)
    made[name] = (root / name, config, record)
  return made


@pytest.mark.parametrize("name", ["ngrams3", "pv3", "ngrams5", "pv5"])
def test_k_classes_are_learned_with_their_metrics(runs, name):
  """Test accuracy far above chance (1/K) on files a seventh of whose labels
  are noise; the K x K test confusion's rows are the test file's reviews of
  each class, its diagonal the accuracy; result.json holds the record."""
  workdir, config, record = runs[name]
  names = THREE if name.endswith("3") else FIVE
  _, truth = sources.read_labeled(config.test_dataset, classes=names)
  assert record["test_accuracy"] > 0.7 > 2 / len(names)
  matrix = np.array(record["test_confusion"])
  assert matrix.shape == (len(names), len(names))
  assert matrix.sum(axis=1).tolist() == np.bincount(
      truth, minlength=len(names)).tolist()
  assert np.trace(matrix) / matrix.sum() == pytest.approx(
      record["test_accuracy"])
  assert [r["support"] for r in record["test_per_class"]] == matrix.sum(
      axis=1).tolist()
  assert 0.6 < record["test_macro_f1"] <= 1.0
  assert 0.8 < record["test_macro_auc"] <= 1.0
  assert len(record["validation_per_class"]) == len(names)
  result = json.loads((workdir / "result.json").read_text())
  assert result["test_confusion"] == record["test_confusion"]
  assert result["classes"] == list(names)  # report names the matrix's rows
  assert result["selected_by"] == ("best validation macro-F1"
                                   if name.endswith("5") else
                                   "best validation accuracy")


def test_c_is_chosen_on_the_run_s_select_on(runs):
  """The per-C record is of macro-F1 on a select_on=macro_f1 run (accuracy
  otherwise), the kept C its best (ties to the smaller), and its value the
  record's own validation macro-F1, from the saved model's logits."""
  for name, metric in (("ngrams5", "macro_f1"), ("pv5", "macro_f1"),
                       ("ngrams3", "accuracy"), ("pv3", "accuracy")):
    _, _, record = runs[name]
    prefix = "ngram" if name.startswith("ngrams") else "pv"
    by_c = record[f"{prefix}_validation_{metric}_by_c"]
    best = max(by_c.values())
    assert record[f"{prefix}_c"] == min(float(c) for c, v in by_c.items()
                                        if v == best)
    assert record[f"validation_{metric}"] == pytest.approx(best)


@pytest.fixture(scope="module")
def lstm3(data):
  """An LSTM's run on the 3-class file: (workdir, its one record)."""
  config = _config(data, "3", num_epochs=1, learning_rate=0.01)
  (record,) = loop.train_and_evaluate(config, data[0] / "lstm3")
  return data[0] / "lstm3", record


def test_the_record_has_a_recurrent_k_class_run_s_keys(runs, lstm3):
  """metrics.jsonl of a text model and of an LSTM on the same data hold the
  same validation_ and test_ keys (train_: the text models score the whole
  train part, as their binary runs do)."""
  _, recurrent = lstm3
  wanted = {k for k in recurrent if k.startswith(("validation_", "test_"))}
  for name in runs:
    _, _, record = runs[name]
    assert {k for k in record if k.startswith(("validation_", "test_"))
            } == wanted


def test_the_ngram_classes_are_one_vs_rest_nb_regressions():
  """Class k's weights are the coefficients of scikit-learn's regression of
  k against the rest, fitted here on binary features x the log-count
  ratios of k against the rest; its probabilities are the regressions'
  sigmoids normalized, and its logits' softmax."""
  linear_model = pytest.importorskip("sklearn.linear_model")
  rows = classes.reviews(list(THREE), 60, 4)
  texts = [t.encode() for t, _ in rows]
  labels = np.array([THREE.index(n) for _, n in rows])
  config = tiny_config(model="ngrams", ngram_c_values="1", ngram_min_count=1,
                       ngram_max_n=1)
  model = ngrams.fit(texts, labels, None, config, classes=THREE).model
  index = {g: i for i, g in enumerate(model.ngrams)}
  x = np.zeros((len(texts), len(index)), np.float32)
  for row, text in enumerate(texts):
    x[row, [index[g] for g in ngrams.text_ngrams(text, 1)]] = 1.0
  for k in range(3):
    mine = (labels == k).astype(int)
    inside, outside = x[mine == 1].sum(0) + 1.0, x[mine == 0].sum(0) + 1.0
    ratios = (np.log(inside / inside.sum())
              - np.log(outside / outside.sum()))
    regression = linear_model.LogisticRegression(
        C=1.0, solver="liblinear", dual=True, max_iter=1000,
        random_state=config.seed).fit(x * ratios, mine)
    np.testing.assert_allclose(model.weights[:, k],
                               regression.coef_.ravel() * ratios, rtol=1e-4,
                               atol=1e-6)
  z = x.astype(np.float64) @ model.weights + model.bias
  sigmoid = 1 / (1 + np.exp(-z))
  want = sigmoid / sigmoid.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(model(texts), want, rtol=1e-5)
  logits = model.logits(texts).astype(np.float64)
  softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  np.testing.assert_allclose(softmax, want, rtol=1e-5)
  assert (model(texts).argmax(1) == labels).mean() == 1.0


def test_a_class_without_train_reviews_is_never_predicted():
  """Class 1 has no train review: no weights, the add-one probability
  1 / (n + 2) as the n-gram model's one-vs-rest estimate; paragraph
  vectors' regression columns put the same at the mean vector."""
  rows = [r for r in classes.reviews(list(THREE), 60, 5)
          if r[1] != "neutral"]
  texts = [t.encode() for t, _ in rows]
  labels = np.array([THREE.index(n) for _, n in rows])
  config = tiny_config(model="ngrams", ngram_c_values="1", ngram_min_count=1)
  model = ngrams.fit(texts, labels, None, config, classes=THREE).model
  assert not model.weights[:, 1].any()
  assert 1 / (1 + np.exp(-model.bias[1])) == pytest.approx(1 / (len(rows)
                                                                 + 2))
  assert 1 not in model(texts + [OWN_WORDS[1].encode()]).argmax(1)
  linear_model = pytest.importorskip("sklearn.linear_model")
  x = np.random.default_rng(0).normal(size=(len(labels), 3))
  x[:, 0] += 2 * labels  # a feature that tells 0 from 2
  fitted = linear_model.LogisticRegression().fit(x, labels)
  columns = paragraph_vectors.class_columns(fitted, 3, len(labels))
  assert columns.weights.shape == (3, 3) and not columns.weights[:, 1].any()
  p = common.probabilities(columns.decision_function(np.zeros((1, 3))))[0]
  assert p[1] == pytest.approx(1 / (len(labels) + 2), rel=1e-5)
  scores = columns.decision_function(x)
  assert (scores.argmax(1) == labels).mean() > 0.8
  np.testing.assert_allclose(scores[:, 2] - scores[:, 0],
                             fitted.decision_function(x), rtol=1e-9)


@pytest.mark.parametrize("name", ["ngrams5", "pv3"])
def test_the_saved_model_loads_and_is_not_fitted_again(runs, name,
                                                       tmp_path):
  """Loaded from its files: the classes and what the run evaluated; a rerun
  fits nothing; a model file of other classes is one line."""
  workdir, config, record = runs[name]
  model = common.kind(config).load(RunDir(workdir))
  assert model.classes == (FIVE if name.endswith("5") else THREE)
  texts, labels = common.split_texts(config)["test"]
  assert (model(texts).argmax(1) == labels).mean() == pytest.approx(
      record["test_accuracy"])
  before = snapshot(workdir)
  assert loop.train_and_evaluate(config, workdir) == [
      json.loads(json.dumps(record))]
  assert snapshot(workdir) == before
  model.classes = model.classes[:2]
  path = tmp_path / "model"
  model.save(path)
  with pytest.raises(UserError, match="is damaged"):
    type(model).load(path)


@pytest.mark.parametrize("name", ["ngrams3", "pv3", "ngrams5"])
def test_predict_names_the_class_of_a_class_s_own_words(runs, name):
  """predict: the most probable class and its probability; --json every
  class's, those of the run's predictor; a review of one class's words
  gets that class (a wrong label order would name another)."""
  workdir, _, _ = runs[name]
  names = THREE if name.endswith("3") else FIVE
  texts = OWN_WORDS[:len(names)]
  plain = predict_cli("--workdir", str(workdir), *texts)
  assert plain.returncode == 0, plain.stderr
  rows = [line.split(None, 2) for line in plain.stdout.splitlines()]
  assert [r[1] for r in rows] == list(names)
  proc = predict_cli("--workdir", str(workdir), "--json", *texts)
  want = trained.load_predictor(workdir)(texts)
  for line, row, p in zip(proc.stdout.splitlines(), rows, want):
    record = json.loads(line)
    got = [record["probabilities"][c] for c in names]
    np.testing.assert_allclose(got, p, rtol=1e-5)
    assert sum(got) == pytest.approx(1.0, abs=1e-5)
    assert float(row[0]) == pytest.approx(max(p), abs=5e-4)


def test_an_ensemble_mixes_a_text_model_and_a_recurrent_run(runs, lstm3):
  """An LSTM and the n-gram model on 3 classes: the ensemble's test
  accuracy is that of the weighted mean of the members' class
  probabilities, each scored by its own predictor; predict with both names
  a class."""
  lstm, _ = lstm3
  text_run, config, _ = runs["ngrams3"]
  record = ensemble.evaluate_ensemble([lstm, text_run])
  weights = np.array(record["weights"])
  texts, truth = sources.read_labeled(config.test_dataset, classes=THREE)
  texts = [t.decode() for t in texts]
  members = [trained.load_predictor(w)(texts) for w in (lstm, text_run)]
  mixture = weights[0] * members[0] + weights[1] * members[1]
  assert record["test_accuracy"] == pytest.approx(
      np.mean(mixture.argmax(1) == truth))
  assert record["members_test_accuracy"][1] == pytest.approx(
      runs["ngrams3"][2]["test_accuracy"])
  proc = predict_cli("--workdir", str(lstm), "--workdir", str(text_run),
                     "--weights", "0.5,0.5", OWN_WORDS[2])
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split()[1] == "pos"


def test_one_class_macro_f1_on_two_and_class_weights_are_one_line(
    data, tmp_path):
  only = tmp_path / "one.csv"
  only.write_text("text,label\n" + "".join(
      f"{t},neutral\n" for t, _ in classes.reviews(["neutral"], 40, 0)))
  config = _config(data, "3", **NGRAMS)
  config.dataset, config.test_dataset = str(only), ""
  config.labels = "neg,neutral,pos"
  with pytest.raises(ConfigError, match=r"train reviews of .* are neutral; "
                     r".*two classes or more"):
    common.split_texts(config)
  binary = classes.write_csv(tmp_path / "b.csv", ["neg", "pos"], 100)
  config = tiny_config(dataset=str(binary), validation_examples=20,
                       cache_dir=str(tmp_path / "cache"), select_on="macro_f1",
                       **NGRAMS)
  with pytest.raises(ConfigError, match="select_on=macro_f1 is for data of "
                     "more than two classes"):
    loop.train_and_evaluate(config, tmp_path / "run")
  config.select_on, config.class_weights = "accuracy", "balanced"
  with pytest.raises(ConfigError, match="drop --config.class_weights"):
    loop.train_and_evaluate(config, tmp_path / "run2")


# Recorded with the code before K-class text models (commit cb45d2e): the
# binary runs of `test_binary_runs_are_as_they_were`.
BINARY_NGRAMS = {"test_loss": 0.6423572767006286,
                 "test_accuracy": 0.7291666666666666,
                 "validation_loss": 0.4345215975329796,
                 "ngram_features": 847, "ngram_c": 0.1,
                 "ngram_validation_accuracy_by_c": {"0.1": 0.875, "1": 0.875},
                 "test_confusion": {"tp": 17, "fp": 6, "tn": 18, "fn": 7}}
BINARY_NGRAM_HEADER = {"bias": 0.10542579172631349, "max_n": 3,
                       "tokenizer": "words", "format": 1}
BINARY_NGRAM_WEIGHTS = {"awful": -0.6348464488983154,
                        "okay": 0.4974965453147888,
                        "the": 0.0001911613071570173,
                        "fine": 0.743388831615448}
BINARY_PV = {"test_loss": 0.6796185667044451, "test_accuracy": 0.625,
             "validation_accuracy": 0.375, "pv_c": 0.1, "pv_words": 13,
             "pv_validation_accuracy_by_c": {"0.1": 0.375, "1": 0.375}}
BINARY_PV_BIAS = -0.977453690883282


def test_binary_runs_are_as_they_were(tmp_path):
  """A binary file (every 7th label flipped): both models give the
  metrics, weights and files the code before K classes gave."""
  rows = classes.reviews(["neg", "pos"], 240, 3)
  rows = [(t, ("pos" if n == "neg" else "neg") if i % 7 == 0 else n)
          for i, (t, n) in enumerate(rows)]
  path = tmp_path / "b.csv"
  path.write_text("text,label\n" + "".join(f"{t},{n}\n" for t, n in rows))
  got = {}
  for model, fields, want in (
      ("ngrams", dict(ngram_c_values="0.1,1", ngram_min_count=1),
       BINARY_NGRAMS),
      ("paragraph_vectors", dict(pv_c_values="0.1,1", pv_dim=8, pv_epochs=10,
                                 pv_min_count=1, pv_sample=0.0), BINARY_PV)):
    config = tiny_config(model=model, dataset=str(path),
                         validation_examples=40,
                         cache_dir=str(tmp_path / "cache"), **fields)
    (record,) = loop.train_and_evaluate(config, tmp_path / model)
    for key, value in want.items():
      assert record[key] == pytest.approx(value, rel=1e-6), key
    assert "test_macro_f1" not in record and "test_auc" in record
    got[model] = sorted(str(p.relative_to(tmp_path / model))
                        for p in (tmp_path / model).rglob("*") if p.is_file())
  assert got == {"ngrams": [".lock", "config.json", "metrics.jsonl",
                            "ngram_model.npz", "result.json"],
                 "paragraph_vectors": [
                     ".lock", "config.json", "metrics.jsonl",
                     "paragraph_vectors/classifier.npz",
                     "paragraph_vectors/doc2vec.model", "result.json"]}
  with np.load(tmp_path / "ngrams" / "ngram_model.npz") as saved:
    assert json.loads(saved["header"].tobytes()) == BINARY_NGRAM_HEADER
    grams = saved["ngrams"].tobytes().decode().split("\n")
    weights = saved["weights"]
  assert weights.shape == (847,)
  for gram, weight in BINARY_NGRAM_WEIGHTS.items():
    assert weights[grams.index(gram)] == pytest.approx(weight, rel=1e-5)
  with np.load(tmp_path / "paragraph_vectors" / "paragraph_vectors" /
               "classifier.npz") as saved:
    assert json.loads(saved["header"].tobytes()) == {"format": 1,
                                                     "tokenizer": "words"}
    assert saved["weights"].shape == (8,)
    assert float(saved["bias"]) == pytest.approx(BINARY_PV_BIAS, rel=1e-4)
  assert trained.load_predictor(tmp_path / "ngrams").classes is None


def test_a_fit_that_stops_unconverged_is_said_in_its_line():
  """scikit-learn's ConvergenceWarning (two lines each, once per class and
  C) becomes a note in the line of its C; other warnings pass on."""
  import warnings  # pylint: disable=g-import-not-at-top
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from flax_sentiment.text_models import common  # pylint: disable=g-import-not-at-top

  class Fitted:
    def __init__(self, c):
      self.c = c

    def decision_function(self, x):
      return np.asarray(x, np.float64) * self.c

  def fit_one(c):
    for _ in range(3 if c > 1 else 0):
      warnings.warn("Liblinear failed to converge", ConvergenceWarning)
    if c > 1:
      warnings.warn("something else", UserWarning)
    return Fitted(c)
  said = []
  features, truth = np.array([-1.0, 2.0, 3.0, -0.5]), np.array([0, 1, 1, 0])
  with warnings.catch_warnings(record=True) as passed:
    warnings.simplefilter("always")
    best, _, scores = common.fit_per_c([1.0, 10.0], fit_one,
                                       (features, truth), said.append)
  assert said == ["C=1: validation accuracy 1.0000",
                  "C=10: validation accuracy 1.0000 (the solver stopped at "
                  "its iteration limit in 3 fits; a smaller C converges "
                  "sooner)"]
  assert [str(w.message) for w in passed] == ["something else"]
  assert best == 1.0 and scores == {"1": 1.0, "10": 1.0}
