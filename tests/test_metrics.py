"""Metrics of a whole split (AUC, precision, recall, F1, confusion counts,
accuracy by review length) and of a batch (`batch_sums`: the logit-0
threshold, filler rows): hand-computed cases, the evaluation that collects
every review's logit, and a real run's files."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.data import datasets
from flax_sentiment.model import classifier
from flax_sentiment.tracking import metrics, monitor
from flax_sentiment.training import feeding
from flax_sentiment.usage import report
from flax_sentiment.training import train_steps
from tests.conftest import run_fake, tiny_config, tiny_flags

# --- ROC-AUC ---


def test_auc_counts_the_pairs_a_positive_wins():
  # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 0.35 beats 0.1
  # only, 0.8 beats both -> 3 of 4 pairs.
  assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
  assert metrics.roc_auc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
  assert metrics.roc_auc([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0]) == 0.0


def test_auc_counts_a_tied_pair_as_one_half():
  # Positives 0.5, 0.5, 0.9; negatives 0.2, 0.5. Each positive 0.5 beats
  # 0.2 and ties 0.5 (1.5), 0.9 beats both (2) -> (1.5 + 1.5 + 2) / 6.
  scores = [0.5, 0.2, 0.5, 0.9, 0.5]
  labels = [1, 0, 0, 1, 1]
  assert metrics.roc_auc(scores, labels) == pytest.approx(5 / 6)
  assert metrics.roc_auc([0.7] * 4, [0, 1, 0, 1]) == 0.5  # all tied
  # The order of tied rows does not matter.
  assert metrics.roc_auc(scores[::-1], labels[::-1]) == pytest.approx(5 / 6)


def test_auc_of_one_class_is_none():
  """Undefined without both classes: None (null in JSON), not NaN or 0."""
  assert metrics.roc_auc([0.1, 0.9, 0.5], [1, 1, 1]) is None
  assert metrics.roc_auc([0.1, 0.9], [0, 0]) is None
  assert metrics.roc_auc([], []) is None
  # Both classes present, but every negative has weight 0.
  assert metrics.roc_auc([0.1, 0.9, 0.5], [1, 0, 1], [1, 0, 1]) is None


def test_auc_is_the_same_on_logits_and_probabilities():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=200)
  labels = rng.integers(0, 2, 200)
  assert metrics.roc_auc(logits, labels) == pytest.approx(
      metrics.roc_auc(1 / (1 + np.exp(-logits)), labels), abs=1e-12)


def test_auc_weights_count_like_repeated_rows_and_filler_is_ignored():
  scores = np.array([0.3, 0.6, 0.6, 0.1, 0.8])
  labels = np.array([1, 0, 1, 0, 1])
  twice = metrics.roc_auc(np.r_[scores, scores[:1]], np.r_[labels, labels[:1]])
  assert metrics.roc_auc(scores, labels, [2, 1, 1, 1, 1]) == pytest.approx(
      twice)
  # Filler rows (weight 0) with scores that would change the area if counted.
  filler_scores = np.r_[scores, [0.0, 0.0, 1.0]]
  filler_labels = np.r_[labels, [1, 1, 0]]
  filler_weights = np.r_[np.ones(5), [0, 0, 0]]
  assert metrics.roc_auc(filler_scores, filler_labels, filler_weights) == \
      metrics.roc_auc(scores, labels)
  assert metrics.roc_auc(filler_scores, filler_labels) != \
      metrics.roc_auc(scores, labels)


def test_auc_matches_scikit_learn():
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(1)
  scores = np.round(rng.normal(size=500), 1)  # many ties
  labels = rng.integers(0, 2, 500)
  assert metrics.roc_auc(scores, labels) == pytest.approx(
      sklearn_metrics.roc_auc_score(labels, scores))


# --- Confusion, precision, recall, F1 ---


def test_confusion_precision_recall_f1_by_hand():
  predicted = [True, True, True, True, False]
  labels = [1, 1, 0, 0, 1]
  counts = metrics.confusion(predicted, labels)
  assert counts == {"tp": 2, "fp": 2, "tn": 0, "fn": 1}
  rates = metrics.precision_recall_f1(counts)
  assert rates["precision"] == 0.5
  assert rates["recall"] == pytest.approx(2 / 3)
  assert rates["f1"] == pytest.approx(4 / 7)  # 2PR / (P + R)


def test_undefined_rates_are_none():
  # No positive prediction: precision 0/0; recall and F1 are 0.
  assert metrics.precision_recall_f1(
      metrics.confusion([False, False], [1, 0])) == {
          "precision": None, "recall": 0.0, "f1": 0.0}
  # No positive review and no positive prediction: all three 0/0.
  assert metrics.precision_recall_f1(
      metrics.confusion([False, False], [0, 0])) == {
          "precision": None, "recall": None, "f1": None}


def test_filler_rows_count_in_no_cell():
  counts = metrics.confusion([True, False, True, True], [1, 1, 0, 1],
                             weights=[1, 1, 1, 0])
  assert counts == {"tp": 1, "fp": 1, "tn": 0, "fn": 1}


# --- Accuracy by review length ---


def test_accuracy_by_length_buckets_by_hand():
  # Buckets [0, 10), [10, 20), [20, 30), [30, inf); the last row is filler.
  lengths = [0, 9, 10, 19, 20, 500, 5]
  correct = [True, False, True, True, False, True, False]
  weights = [1, 1, 1, 1, 1, 1, 0]
  got = metrics.accuracy_by_length(correct, lengths, weights,
                                   edges=(0, 10, 20, 30))
  assert got == {"edges": [0, 10, 20, 30], "accuracy": [0.5, 1.0, 0.0, 1.0],
                 "count": [2, 2, 1, 1]}


def test_accuracy_by_length_default_buckets_and_empty_ones():
  assert metrics.LENGTH_EDGES == (0, 64, 128, 256, 512, 1024)
  got = metrics.accuracy_by_length([True, False, True], [63, 64, 5000])
  assert got["accuracy"] == [1.0, 0.0, None, None, None, 1.0]
  assert got["count"] == [1, 1, 0, 0, 0, 1]


# --- A split's record ---


def test_split_rates_keys_thresholds_and_json():
  logits = np.array([2.0, 0.0, -1.0, 3.0, -2.0])  # logit 0: negative
  labels = np.array([1, 1, 0, 0, 0])
  got = metrics.split_rates(logits, labels, "test",
                            lengths=np.array([10, 100, 200, 300, 2000]))
  assert got["test_confusion"] == {"tp": 1, "fp": 1, "tn": 2, "fn": 1}
  assert all(isinstance(v, int) for v in got["test_confusion"].values())
  assert got["test_precision"] == 0.5 and got["test_recall"] == 0.5
  assert got["test_f1"] == 0.5
  # Positives 2.0, 0.0 vs negatives -1, 3, -2: 2 + 2 of 6 pairs.
  assert got["test_auc"] == pytest.approx(4 / 6)
  assert got["test_accuracy_by_length"]["accuracy"] == [
      1.0, 0.0, 1.0, 0.0, None, 1.0]
  assert json.loads(json.dumps(got)) == got
  without = metrics.split_rates(logits, labels, "validation")
  assert set(without) == {"validation_auc", "validation_f1",
                          "validation_precision", "validation_recall",
                          "validation_confusion"}


def test_tensorboard_scalars_of_a_record():
  record = {"epoch": 1, "steps": 10, "train_loss": 0.5, "test_auc": None,
            "test_f1": 0.8, "test_confusion": {"tp": 1, "fp": 2, "tn": 3,
                                               "fn": 4},
            "test_accuracy_by_length": {"edges": [0, 64], "accuracy":
                                        [None, 0.75], "count": [0, 4]}}
  assert monitor.TensorBoard.epoch_scalars(record) == {
      "train/loss": 0.5, "test/f1": 0.8, "test/confusion/tp": 1,
      "test/confusion/fp": 2, "test/confusion/tn": 3, "test/confusion/fn": 4,
      "test/accuracy_by_length/64-inf": 0.75}


# --- Evaluation: every review's logit, filler rows left out ---


@dataclasses.dataclass(frozen=True)
class SplitWithTrueLengths(datasets.Split):
  """A Split with the field EvalSet reads if present."""
  true_lengths: np.ndarray | None = None


def _split(rng, n, seq_len, with_true_lengths=True):
  lengths = rng.integers(1, seq_len + 1, n)
  tokens = np.zeros((n, seq_len), np.int32)
  for row, length in zip(tokens, lengths):  # padded at the end
    row[:length] = rng.integers(2, 64, length)
  labels = rng.integers(0, 2, n).astype(np.int32)
  if not with_true_lengths:
    return datasets.Split(tokens, labels, lengths.astype(np.int32))
  # Words before truncation: at least the kept ones, some far more.
  true_lengths = lengths * rng.choice([1, 10, 100], n)
  return SplitWithTrueLengths(tokens, labels, lengths.astype(np.int32),
                              true_lengths)


def test_evaluation_collects_every_review_once_without_filler(tmp_path):
  """37 test reviews in batches of 16 (chunks of 4 batches: 27 filler rows,
  all pointing at review 0), sorted by length within 2 length buckets: the
  detailed metrics equal those of the model applied to each review."""
  config = tiny_config(seq_len=64, padding="post", mask_padding=True,
                       length_buckets=2, cache_dir=str(tmp_path))
  rng = np.random.default_rng(0)
  imdb = datasets.ImdbData(train=_split(rng, 64, config.seq_len, False),
                           test=_split(rng, 37, config.seq_len),
                           vocabulary=[f"w{i}" for i in range(62)])
  feeds = feeding.plan_run(config, imdb, say=lambda line: None)
  (test_set,) = feeds.eval_sets
  assert len({c.length for c in test_set.chunks}) == 2
  assert sum((c.weights == 0).sum() for c in test_set.chunks) > 0
  model = classifier.model_from_config(config)
  state = train_steps.create_train_state(model, config, jax.random.key(0))
  evaluated = test_set.evaluate(state, details=True)

  want_logits = np.asarray(model.apply({"params": state.params},
                                       imdb.test.tokens))
  want = metrics.split_rates(want_logits, imdb.test.labels, "test",
                             lengths=imdb.test.true_lengths)
  assert evaluated["test_confusion"] == want["test_confusion"]
  assert sum(evaluated["test_confusion"].values()) == 37
  assert evaluated["test_auc"] == pytest.approx(want["test_auc"], abs=1e-9)
  for key in ("test_f1", "test_precision", "test_recall",
              "test_accuracy_by_length"):
    assert evaluated[key] == want[key], key
  assert sum(evaluated["test_accuracy_by_length"]["count"]) == 37
  # The device's sums and the host's logits agree.
  counts = evaluated["test_confusion"]
  assert evaluated["test_accuracy"] == pytest.approx(
      (counts["tp"] + counts["tn"]) / 37)
  # The same loss and accuracy as train_steps.eval_chunk gives.
  totals = metrics.empty_totals()
  for chunk in test_set.chunks:
    sums, _ = test_set.runner(state, chunk)
    totals = metrics.add(totals, feeding.host_sums(sums))
  assert evaluated["test_loss"] == pytest.approx(
      totals["loss"] / totals["count"], rel=1e-6)
  assert evaluated["test_accuracy"] == totals["correct"] / totals["count"]
  # Without details (the Python API, the tutorial): loss and accuracy only.
  assert set(test_set.evaluate(state)) == {"test_loss", "test_accuracy"}


def test_evaluation_without_true_lengths_skips_accuracy_by_length(tmp_path):
  config = tiny_config(cache_dir=str(tmp_path))
  rng = np.random.default_rng(1)
  imdb = datasets.ImdbData(train=_split(rng, 16, config.seq_len, False),
                           test=_split(rng, 20, config.seq_len, False),
                           vocabulary=[f"w{i}" for i in range(62)])
  (test_set,) = feeding.plan_run(config, imdb, say=lambda line: None).eval_sets
  state = train_steps.create_train_state(classifier.model_from_config(config), config,
                                         jax.random.key(0))
  evaluated = test_set.evaluate(state, details=True)
  assert "test_auc" in evaluated
  assert "test_accuracy_by_length" not in evaluated


# --- A real run (run.py on fake IMDB) ---

NEW_KEYS = ("auc", "f1", "precision", "recall", "confusion")


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
  """run.py on fake IMDB: 2 epochs, 64 validation and 128 test reviews."""
  root = tmp_path_factory.mktemp("metrics_run")
  workdir = root / "run-seed0"
  proc = run_fake(tiny_flags(workdir, root / "cache", num_epochs=2,
                             validation_examples=64), num_train=320,
                  num_test=128)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  return workdir


def test_run_writes_the_new_metrics_and_reports_them(fake_run):
  workdir = fake_run
  records = [json.loads(line) for line in
             (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(records) == 2
  by_length = "true_lengths" in {f.name for f in dataclasses.fields(
      datasets.Split)}
  for record in records:
    for split, size in (("validation", 64), ("test", 128)):
      for key in NEW_KEYS:
        assert f"{split}_{key}" in record, (split, key)
      counts = record[f"{split}_confusion"]
      assert sum(counts.values()) == size
      assert record[f"{split}_accuracy"] == pytest.approx(
          (counts["tp"] + counts["tn"]) / size)
      assert 0.0 <= record[f"{split}_auc"] <= 1.0
      # datasets.Split gets `true_lengths` from datasets.py; until then it is left out.
      assert (f"{split}_accuracy_by_length" in record) == by_length
  result = json.loads((workdir / "result.json").read_text())
  selected = records[result["selected_epoch"] - 1]
  for key in NEW_KEYS:
    assert result[f"test_{key}"] == selected[f"test_{key}"]
  table = report.markdown_table([report.summarize("run", [workdir])])
  assert "reported test AUC" in table
  assert f"{selected['test_auc']:.4f}" in table


def test_run_writes_the_new_metrics_to_tensorboard(fake_run):
  pytest.importorskip("tensorflow", reason="reads event files with "
                      "TensorFlow (the [dev] extra)")
  from tensorflow.compat.v1.train import summary_iterator  # pylint: disable=g-import-not-at-top
  files = list((fake_run / "tensorboard").glob("events.out.tfevents.*"))
  tags = {v.tag for f in files for e in summary_iterator(str(f))
          for v in e.summary.value}
  assert {f"{split}/{name}" for split in ("validation", "test")
          for name in ("auc", "f1", "precision", "recall", "confusion/tp",
                       "confusion/fp", "confusion/tn", "confusion/fn")
          } <= tags


# --- A batch's sums (on device): the accuracy threshold, filler rows ---


def _bce(logit: float, label: float) -> float:
  """-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], by hand."""
  return math.log1p(math.exp(-abs(logit))) + max(logit, 0.0) - label * logit


def test_batch_sums_by_hand_with_zero_logits_and_filler_rows():
  # A logit of exactly 0 predicts negative (logit > 0 is positive): rows 1
  # and 2 (label 0) are right, row 3 (label 1) is wrong; with `>= 0` only
  # row 3 would be. The last two rows are filler (weight 0) that a sum
  # ignoring the weights would count (one right, one wrong, huge losses).
  logits = [2.0, 0.0, 0.0, 0.0, -1.5, 3.0, -0.5, 40.0, -30.0]
  labels = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
  weights = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
  real = [(z, y) for z, y, w in zip(logits, labels, weights) if w]
  want_loss = sum(_bce(z, y) for z, y in real)
  # rows 0 (2 > 0, positive), 1, 2 (0: negative, label 0) and 4 are right;
  # 3 (0, label 1), 5 (3, label 0) and 6 (-0.5, label 1) are wrong.
  want_correct = 4.0
  assert want_loss == pytest.approx(
      math.log1p(math.exp(-2)) + 3 * math.log(2) + math.log1p(math.exp(-1.5))
      + math.log1p(math.exp(3)) + math.log1p(math.exp(0.5)))
  for fn in (metrics.batch_sums, jax.jit(metrics.batch_sums)):
    mean, sums = fn(jnp.asarray(logits), jnp.asarray(labels),
                    jnp.asarray(weights))
    assert float(sums["count"]) == 7.0
    assert float(sums["correct"]) == want_correct
    assert float(sums["loss"]) == pytest.approx(want_loss, rel=1e-6)
    assert float(mean) == pytest.approx(want_loss / 7, rel=1e-6)
  got = metrics.rates(metrics.add(metrics.empty_totals(), sums), "test")
  assert got["test_accuracy"] == pytest.approx(4 / 7)
  assert got["test_loss"] == pytest.approx(want_loss / 7, rel=1e-6)


def test_batch_sums_of_tiny_logits_keep_their_sign():
  # Logits just either side of 0 decide by their sign, and 0 itself is
  # negative: all 5 right only with "positive iff logit > 0" (>= 0 gets 3,
  # a threshold above 1e-30 gets 3, the opposite sign 0).
  logits = jnp.array([1e-30, -1e-30, 0.0, 0.0, 1e-30])
  labels = jnp.array([1.0, 0.0, 0.0, 0.0, 1.0])
  _, sums = metrics.batch_sums(logits, labels, jnp.ones(5))
  assert float(sums["correct"]) == 5.0
  # The loss at 0 is log 2 whatever the label.
  mean, _ = metrics.batch_sums(jnp.zeros(2), jnp.array([0.0, 1.0]),
                               jnp.ones(2))
  assert float(mean) == pytest.approx(math.log(2), rel=1e-6)


def test_batch_sums_of_an_all_filler_batch_are_zero_not_nan():
  logits = jnp.array([5.0, -5.0, 0.0])
  labels = jnp.array([0.0, 1.0, 1.0])
  mean, sums = metrics.batch_sums(logits, labels, jnp.zeros(3))
  assert float(mean) == 0.0
  assert {k: float(v) for k, v in sums.items()} == {
      "loss": 0.0, "correct": 0.0, "count": 0.0}


def test_host_rates_are_batch_sums_in_float64():
  """Text models' whole-split loss and accuracy (host_rates) are the ones
  the recurrent runs sum on device (batch_sums), up to float32 rounding."""
  rng = np.random.default_rng(3)
  logits = rng.normal(0, 3, 101).astype(np.float32)
  labels = (rng.random(101) > 0.4).astype(np.float32)
  _, sums = metrics.batch_sums(jnp.asarray(logits), jnp.asarray(labels),
                               jnp.ones(101))
  want = metrics.rates(metrics.add(metrics.empty_totals(), sums), "test")
  got = metrics.host_rates(logits, labels, "test")
  assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-6)
  assert got["test_accuracy"] == pytest.approx(want["test_accuracy"])
  assert got["test_auc"] == metrics.split_rates(logits, labels,
                                                "test")["test_auc"]


def test_probability_accuracy_and_log_loss_by_hand():
  labels = np.array([1, 0, 1, 0])
  p = np.array([[0.9, 0.2, 0.4, 0.5],    # 0.5 counts as negative
                [0.1, 0.8, 0.6, 0.7]])
  np.testing.assert_allclose(metrics.probability_accuracy(p, labels),
                             [0.75, 0.25])
  assert metrics.probability_accuracy(p[0], labels) == 0.75
  want = -np.mean(np.log([0.9, 0.8, 0.4, 0.5]))
  assert metrics.probability_log_loss(p[0], labels) == pytest.approx(want)
  assert metrics.probability_log_loss(np.array([1.0]), np.array([0])) == (
      pytest.approx(-np.log(1e-7), rel=1e-6))  # clipped, not infinite


@pytest.mark.parametrize("num_classes", [3, 5])
def test_class_metrics_match_scikit_learn(num_classes):
  """K-class metrics (issue #40's foundation) against scikit-learn on
  hand-made logits: accuracy, log loss, macro-F1 (a class never predicted
  included), per-class precision/recall/F1, the confusion matrix and the
  one-vs-rest macro ROC-AUC."""
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(num_classes)
  labels = rng.integers(0, num_classes, size=300)
  logits = rng.normal(size=(300, num_classes))
  logits[np.arange(300), labels] += 1.0  # better than chance
  logits[:, num_classes - 1] -= 10.0  # the last class is never predicted
  got = metrics.class_rates(logits, labels, "test")
  predicted = logits.argmax(axis=1)
  assert got["test_accuracy"] == pytest.approx(
      sklearn_metrics.accuracy_score(labels, predicted))
  probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  assert got["test_loss"] == pytest.approx(sklearn_metrics.log_loss(
      labels, probabilities, labels=range(num_classes)), rel=1e-6)
  assert got["test_macro_f1"] == pytest.approx(sklearn_metrics.f1_score(
      labels, predicted, average="macro", labels=range(num_classes),
      zero_division=0))
  precision, recall, f1, support = (
      sklearn_metrics.precision_recall_fscore_support(
          labels, predicted, labels=range(num_classes), zero_division=0))
  for k, rates in enumerate(got["test_per_class"]):
    assert rates["recall"] == pytest.approx(recall[k])
    assert rates["f1"] == pytest.approx(f1[k])
    assert rates["support"] == support[k]
    if k == num_classes - 1:
      assert rates["precision"] is None  # never predicted: undefined
    else:
      assert rates["precision"] == pytest.approx(precision[k])
  assert got["test_confusion"] == sklearn_metrics.confusion_matrix(
      labels, predicted, labels=range(num_classes)).tolist()
  assert got["test_macro_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(
      labels, probabilities, multi_class="ovr", average="macro"))


def test_class_metrics_weights_and_an_absent_class():
  """Weight-0 rows count nowhere; a class without reviews leaves the
  macro AUC (averaged over the classes it is defined for) and has recall
  None."""
  logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [2.0, 0, 0]])
  labels = np.array([0, 1, 0, 2])
  got = metrics.class_rates(logits, labels, "v",
                            weights=np.array([1, 1, 1, 0]))
  assert got["v_confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
  assert got["v_accuracy"] == pytest.approx(2 / 3)
  assert got["v_per_class"][2]["recall"] is None
  assert got["v_per_class"][2]["support"] == 0
  # Class 0 vs rest: its two reviews score 2 and 0 against class 1's 0.
  assert got["v_macro_auc"] == pytest.approx(np.mean([0.75, 0.75]))
