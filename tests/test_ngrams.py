"""The n-gram model: features, ratios, a run's workdir, and that it reads
the train part only."""

import csv
import json

import numpy as np
import pytest
import scipy.sparse

from flax_sentiment.text_models import common, ngrams
from flax_sentiment.training import loop
from flax_sentiment.usage import ensemble, predict, report, trained
from flax_sentiment.runtime.errors import UserError
from tests.conftest import snapshot, tiny_config


def test_text_ngrams_are_the_distinct_word_ngrams():
  assert ngrams.text_ngrams("Not bad, not BAD.<br />Fine", 2) == {
      "not", "bad", "fine", "not bad", "bad not", "bad fine"}
  assert ngrams.text_ngrams("a b c", 3) >= {"a b c"}
  assert ngrams.text_ngrams("a b c", 1) == {"a", "b", "c"}
  assert ngrams.text_ngrams("", 3) == set()


def test_log_count_ratios_by_hand():
  # n-gram 0 in both positive reviews, n-gram 1 in the negative one only.
  features = scipy.sparse.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]],
                                              np.float32))
  labels = np.array([1, 1, 0])
  r = ngrams.log_count_ratios(features, labels, alpha=1.0)
  positive = np.array([3.0, 1.0]) / 4
  negative = np.array([1.0, 2.0]) / 3
  np.testing.assert_allclose(r, np.log(positive) - np.log(negative),
                             rtol=1e-6)


def _write_reviews(path, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    writer.writerows(rows)


def _reviews(rng, count, extra_word=None):
  good, bad = ["great", "superb", "loved"], ["awful", "dull", "hated"]
  filler = ["the", "film", "plot", "was", "and", "it"]
  rows = []
  for i in range(count):
    words = list(rng.choice(filler, 8)) + list(rng.choice(good if i % 2
                                                         else bad, 2))
    if extra_word:
      words.append(extra_word)
    rows.append((" ".join(words), "pos" if i % 2 else "neg"))
  return rows


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("ngrams")
  rng = np.random.default_rng(0)
  _write_reviews(root / "train.csv", _reviews(rng, 120))
  # A word only test reviews hold: it must never become a feature.
  _write_reviews(root / "test.csv", _reviews(rng, 40, extra_word="zyzzyva"))
  config = tiny_config(model="ngrams", dataset=str(root / "train.csv"),
                       test_dataset=str(root / "test.csv"),
                       validation_examples=20, ngram_c_values="0.1,1",
                       cache_dir=str(root / "cache"))
  history = loop.train_and_evaluate(config, root / "run")
  return root, config, history


def test_a_run_writes_a_normal_workdir(csv_run):
  root, _, history = csv_run
  workdir = root / "run"
  names = {p.name for p in workdir.iterdir()}
  assert {"config.json", "metrics.jsonl", "result.json",
          "ngram_model.npz"} <= names
  assert "checkpoints" not in names
  (record,) = history
  result = json.loads((workdir / "result.json").read_text())
  assert result["test_accuracy"] == record["test_accuracy"]
  assert result["model"] == "ngrams"
  by_c = record["ngram_validation_accuracy_by_c"]
  assert set(by_c) == {"0.1", "1"}
  # The kept C is the most accurate on validation, ties to the smaller
  # (which C wins on data where validation and test disagree:
  # tests/test_text_models.py).
  best = max(by_c.values())
  assert record["ngram_c"] == min(float(c) for c, a in by_c.items()
                                  if a == best)
  assert record["validation_accuracy"] == best
  assert record["test_accuracy"] > 0.9  # the words separate the labels


def test_features_come_from_train_reviews_only(csv_run):
  root, _, _ = csv_run
  model = ngrams.NgramModel.load(root / "run" / "ngram_model.npz")
  assert not any("zyzzyva" in g for g in model.ngrams)
  assert "great" in model.index and "the film" in model.index
  assert model.weights[model.index["great"]] > 0 > model.weights[
      model.index["awful"]]


def test_predict_scores_what_the_run_evaluated(csv_run):
  root, config, history = csv_run
  predictor = trained.load_predictor(root / "run")
  texts, labels = common.split_texts(config)["test"]
  p = predictor([t.decode() for t in texts])
  assert np.mean((p > 0.5) == (labels > 0.5)) == pytest.approx(
      history[0]["test_accuracy"])
  lines = predict.batch_output(predictor, ["great superb film", "dull"])
  assert "positive" in lines[0] and "negative" in lines[1]
  with pytest.raises(UserError, match="n-gram model"):
    predictor.explain(["great"])


def test_a_finished_run_is_not_fitted_again(csv_run):
  root, config, history = csv_run
  before = snapshot(root / "run")
  again = loop.train_and_evaluate(config, root / "run")
  assert again == json.loads(json.dumps(history))
  assert snapshot(root / "run") == before


def test_other_settings_on_a_finished_run_are_refused(csv_run):
  root, config, _ = csv_run
  before = snapshot(root / "run")
  other = config.copy_and_resolve_references()
  other.ngram_max_n = 2
  with pytest.raises(UserError, match="ngram_max_n"):
    loop.train_and_evaluate(other, root / "run")
  assert snapshot(root / "run") == before


def test_damaged_model_file_is_one_line(csv_run, tmp_path):
  root, _, _ = csv_run
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(root / "run", tmp_path / "run")
  (tmp_path / "run" / "ngram_model.npz").write_bytes(b"not a zip")
  with pytest.raises(UserError, match="ngram_model.npz is damaged"):
    trained.load_predictor(tmp_path / "run")


def test_c_values_need_validation():
  from flax_sentiment.training.checks import validate_config  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match="validation_examples"):
    validate_config(tiny_config(model="ngrams", ngram_c_values="0.1,1"))
  with pytest.raises(UserError, match="ngram_c_values"):
    validate_config(tiny_config(model="ngrams", ngram_c_values="0.1,-1"))
  validate_config(tiny_config(model="ngrams", ngram_c_values="1"))


def test_ensemble_and_report_take_an_ngram_run(csv_run, tmp_path):
  root, config, _ = csv_run
  recurrent = tiny_config(dataset=config.dataset,
                          test_dataset=config.test_dataset,
                          validation_examples=20, num_epochs=1,
                          cache_dir=config.cache_dir)
  loop.train_and_evaluate(recurrent, root / "lstm")
  workdirs = [root / "lstm", root / "run"]
  result = ensemble.evaluate_ensemble(workdirs)
  assert sum(result["weights"]) == pytest.approx(1.0)
  assert len(result["members_validation_accuracy"]) == 2
  assert result["validation_accuracy"] >= max(
      result["members_validation_accuracy"])  # the grid holds each member
  out = tmp_path / "ens"
  ensemble.main([str(w) for w in workdirs] + ["--out", str(out)])
  recorded = ensemble.read_ensemble(out)
  assert recorded["weights"] == result["weights"]
  rows = [report.summarize(name, dirs) for name, dirs in
          report.group_runs(workdirs + [out]).items()]
  assert [r["name"] for r in rows] == ["lstm", "run", "ens"]
  assert rows[2]["selected_test"] == [result["test_accuracy"]]
  assert "—" in report.markdown_table(rows).splitlines()[-1]
