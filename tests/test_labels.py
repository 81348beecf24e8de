"""Labels beyond the binary words: K classes read from a file as integers
or names, in an order fixed for the run (#40)."""

import json

import numpy as np
import pytest

from flax_sentiment.data import datasets, labels, sources
from flax_sentiment.data.sources import DataError
from flax_sentiment.runtime.errors import ConfigError
from tests import classes
from tests.conftest import tiny_config


def test_classes_are_the_binary_words_or_the_labels_in_order():
  assert labels.classes_of({"0", "1"}) is None
  assert labels.classes_of({"neg", "pos", "true"}) is None
  assert labels.classes_of({"10", "2", "1", "9"}) == ("1", "2", "9", "10")
  assert labels.classes_of({"pos", "neutral", "neg"}) == (
      "neg", "neutral", "pos")
  assert labels.classes_of({"1", "2"}, " 2, 1") == ("2", "1")
  assert labels.classes_of({"0", "1"}, "Neg,Pos") == ("neg", "pos")
  for bad in ("pos", "a,,b", "a,A"):
    with pytest.raises(ConfigError, match="config.labels="):
      labels.classes_of({"a"}, bad)


def test_a_three_class_file_is_read_in_class_order(tmp_path):
  """Label words in any case and spacing; each review's label id is the
  position of its class in the alphabetical order, also from the cache."""
  path = tmp_path / "r.csv"
  rows = classes.reviews(["Neg", " neutral", "POS "], 150, 0)
  path.write_text("text,label\n" + "".join(f"{t},{n}\n" for t, n in rows))
  config = tiny_config(dataset=str(path), cache_dir=str(tmp_path / "cache"))
  for _ in range(2):  # built, then from the cache
    tokenized, rule = datasets.tokenized_imdb(config)
    assert rule.classes == ("neg", "neutral", "pos")
  texts, ids = sources.read_labeled(path, classes=rule.classes)
  assert ids.tolist() == [classes.class_of(t) for t in texts]
  kept, held = datasets.held_out(ids, config.test_fraction,
                                 config.validation_seed + 1)
  np.testing.assert_array_equal(tokenized["train"].labels, ids[kept])
  np.testing.assert_array_equal(tokenized["test"].labels, ids[held])
  assert sorted(np.unique(ids[held]).tolist()) == [0, 1, 2]


def test_ratings_as_integers_in_the_order_given(tmp_path):
  """JSON ratings 1-5 (numbers, as raw IMDB's `rating`) with
  --config.labels=5,4,3,2,1: ids follow the order given."""
  path = classes.write_jsonl(tmp_path / "r.jsonl", [1, 2, 3, 4, 5], 100,
                             label_field="rating")
  config = tiny_config(dataset=str(path), label_field="rating",
                       labels="5,4,3,2,1", cache_dir=str(tmp_path / "c"))
  assert datasets.classes_of(config) == ("5", "4", "3", "2", "1")
  tokenized, rule = datasets.tokenized_imdb(config)
  texts, ids = sources.read_labeled(path, label_field="rating",
                                    classes=rule.classes)
  assert ids.tolist() == [4 - classes.class_of(t) for t in texts]
  config.labels = ""
  assert datasets.classes_of(config) == ("1", "2", "3", "4", "5")


def test_a_test_label_training_never_saw_is_one_line(tmp_path):
  train = classes.write_csv(tmp_path / "train.csv", ["neg", "neutral", "pos"],
                            90)
  test = classes.write_csv(tmp_path / "test.csv", ["neg", "neutral", "pos"],
                           30, seed=1)
  lines = test.read_text().splitlines()
  lines[4] = "a review of another kind,angry"
  test.write_text("\n".join(lines) + "\n")
  config = tiny_config(dataset=str(train), test_dataset=str(test),
                       cache_dir=str(tmp_path / "c"))
  with pytest.raises(DataError) as error:
    datasets.tokenized_imdb(config)
  assert str(error.value) == (f"{test}:5: label 'angry' in 'label' is not "
                              f"one of neg, neutral, pos")


def test_label_counts_alike_for_every_reader(tmp_path):
  """The counts the classes are decided on: pyarrow's (CSV) and row by row
  (JSON lines, and CSV when pyarrow is unsure) agree."""
  names = ["neg", "neutral", "pos", "Pos "]
  csv_path = classes.write_csv(tmp_path / "r.csv", names, 41)
  jsonl_path = classes.write_jsonl(tmp_path / "r.jsonl", names, 41)
  want = {"neg": 11, "neutral": 10, "pos": 20}
  assert sources.label_counts(csv_path) == want
  assert sources.label_counts(jsonl_path) == want
  quoted = tmp_path / "q.csv"  # a quoted header: read row by row
  quoted.write_text('"text","label"\n' + csv_path.read_text().split("\n", 1)[1])
  assert sources.label_counts(quoted) == want


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
  """A finished run on a 3-class CSV: (workdir, history, config)."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("three")
  path = classes.write_csv(folder / "r.csv", ["neg", "neutral", "pos"], 480)
  config = tiny_config(dataset=str(path), cache_dir=str(folder / "cache"),
                       num_epochs=4, learning_rate=0.01,
                       validation_examples=48, progress=False)
  history = loop.train_and_evaluate(config, str(folder / "run"))
  return folder / "run", history, config


def test_three_classes_train_with_their_metrics(three_class_run):
  """Dense(3) and softmax cross-entropy: the classes are learned (test
  accuracy far above a third); each record holds macro-F1, per-class rates
  and a 3x3 confusion matrix whose rows are the test reviews of each class
  and whose diagonal is the accuracy the device counted."""
  workdir, history, config = three_class_run
  last = history[-1]
  assert last["test_accuracy"] > 0.8
  assert last["train_loss"] < history[0]["train_loss"]
  kept, held = datasets.held_out(
      sources.read_labeled(config.dataset, classes=("neg", "neutral", "pos"))
      [1], config.test_fraction, config.validation_seed + 1)
  matrix = np.array(last["test_confusion"])
  assert matrix.shape == (3, 3)
  assert matrix.sum(axis=1).tolist() == np.bincount(
      sources.read_labeled(config.dataset, classes=("neg", "neutral", "pos"))
      [1][held], minlength=3).tolist()
  assert np.trace(matrix) / matrix.sum() == pytest.approx(
      last["test_accuracy"])
  assert [r["support"] for r in last["test_per_class"]] == matrix.sum(
      axis=1).tolist()
  assert 0.8 < last["test_macro_f1"] <= 1.0
  assert 0.5 < last["test_macro_auc"] <= 1.0
  record = json.loads((workdir / "vocab.json").read_text())
  assert record["classes"] == ["neg", "neutral", "pos"]
  result = json.loads((workdir / "result.json").read_text())
  assert result["test_confusion"] == history[result["selected_epoch"] - 1][
      "test_confusion"]


def test_a_three_class_run_resumes_and_refuses_other_classes(
    three_class_run):
  """Run again with more epochs: it continues from its checkpoint, its
  first four epochs as they were. With the classes in another order it is
  refused: ids would mean other classes."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  workdir, history, config = three_class_run
  more = config.copy_and_resolve_references()
  more.num_epochs = 5
  longer = loop.train_and_evaluate(more, str(workdir))
  assert len(longer) == 5 and longer[:4] == history
  other = config.copy_and_resolve_references()
  other.labels = "pos,neutral,neg"
  with pytest.raises(ConfigError, match=r"other settings \(labels: ''"):
    loop.train_and_evaluate(other, str(workdir))


def test_the_kl_of_k_classes_is_the_kl_of_their_probabilities():
  """Virtual adversarial training's divergence for K classes against
  KL(p || q) written out from the softmax probabilities."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax_sentiment.training import train_steps  # pylint: disable=g-import-not-at-top
  a = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0]],
               np.float32)
  b = np.array([[0.5, 0.5, -2.0], [1.0, -1.0, 0.0], [-3.0, 4.0, 1.0]],
               np.float32)
  p = np.exp(a) / np.exp(a).sum(1, keepdims=True)
  q = np.exp(b) / np.exp(b).sum(1, keepdims=True)
  direct = (p * np.log(p / q)).sum(1)
  got = np.asarray(train_steps.prediction_kl(jax.numpy.asarray(a),
                                             jax.numpy.asarray(b)))
  np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-7)
  assert got[2] == pytest.approx(0.0, abs=1e-6) and (got[:2] > 0).all()


def test_the_epoch_is_chosen_on_the_metric_asked_for():
  """Accuracy and macro-F1 disagree (epoch 2 predicts the big class well,
  epoch 3 every class fairly): each rule picks its own epoch, and early
  stopping counts from it."""
  from flax_sentiment.tracking import progress  # pylint: disable=g-import-not-at-top
  history = [{"epoch": e, "validation_accuracy": a, "validation_macro_f1": f}
             for e, a, f in ((1, 0.50, 0.30), (2, 0.80, 0.45),
                             (3, 0.70, 0.66), (4, 0.60, 0.50))]
  assert progress.selected(history) == (history[1],
                                        "best validation accuracy")
  assert progress.selected(history, "macro_f1") == (
      history[2], "best validation macro-F1")
  assert progress.stopped_early(history, 2)
  assert not progress.stopped_early(history, 2, "macro_f1")


def test_a_run_selects_on_macro_f1_and_two_classes_cannot(tmp_path):
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  path = classes.write_csv(tmp_path / "r.csv", ["a", "b", "c"], 240)
  config = tiny_config(dataset=str(path), cache_dir=str(tmp_path / "cache"),
                       num_epochs=3, validation_examples=48,
                       select_on="macro_f1")
  history = loop.train_and_evaluate(config, str(tmp_path / "run"))
  result = json.loads((tmp_path / "run" / "result.json").read_text())
  scores = [r["validation_macro_f1"] for r in history]
  assert result["selected_by"] == "best validation macro-F1"
  assert result["selected_epoch"] == 1 + scores.index(max(scores))
  binary = classes.write_csv(tmp_path / "b.csv", ["neg", "pos"], 100)
  config.dataset = str(binary)
  with pytest.raises(ConfigError, match="select_on=macro_f1 is for data of "
                     "more than two classes"):
    loop.train_and_evaluate(config, str(tmp_path / "run2"))
  assert not (tmp_path / "run2").exists()


def test_class_weights_weigh_the_loss_of_each_class():
  """balanced: n / (K n_k), so each class weighs as much in total;
  explicit weights as given; a wrong count is refused."""
  from flax_sentiment.training import train_steps  # pylint: disable=g-import-not-at-top
  ids = np.array([0] * 6 + [1] * 3 + [2] * 1)
  assert train_steps.class_weights("", ids, 3) == ()
  balanced = train_steps.class_weights("balanced", ids, 3)
  assert balanced == pytest.approx((10 / 18, 10 / 9, 10 / 3))
  assert balanced[0] * 6 == pytest.approx(balanced[2] * 1)
  assert train_steps.class_weights("1,2.5,4", ids, 3) == (1.0, 2.5, 4.0)
  for bad in ("1,2", "1,2,0"):
    with pytest.raises(ValueError):
      train_steps.class_weights(bad, ids, 3)


def test_a_weighted_step_follows_the_weighted_mean_loss():
  """The train step's gradient with class weights is the gradient of the
  weighted mean cross-entropy written out by hand; the metric sums stay
  unweighted."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from flax_sentiment.model import classifier  # pylint: disable=g-import-not-at-top
  from flax_sentiment.training import train_steps  # pylint: disable=g-import-not-at-top
  config = tiny_config(seq_len=5, learning_rate=0.1)
  model = classifier.SentimentClassifier(num_words=20, embed_dim=4,
                                         hidden_dim=4, num_classes=3,
                                         implementation="stock")
  state = train_steps.create_train_state(model, config, jax.random.key(0))
  weights = (0.5, 2.0, 4.0)
  batch = {"tokens": jnp.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 1],
                                [2, 4, 6, 8, 10], [3, 3, 3, 3, 3]]),
           "labels": jnp.array([0.0, 1.0, 2.0, 2.0]),
           "weights": jnp.array([1.0, 1.0, 1.0, 0.0])}

  def by_hand(params):
    logits = model.apply({"params": params}, batch["tokens"])
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["labels"].astype(jnp.int32))
    w = batch["weights"] * jnp.array(weights)[batch["labels"].astype(int)]
    return jnp.sum(losses * w) / jnp.sum(w)
  want = state.apply_gradients(grads=jax.grad(by_hand)(state.params))
  got, sums = train_steps.train_step(state.replace(class_weights=weights),
                                     batch)
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert float(sums["count"]) == 3.0
  plain, _ = train_steps.train_step(state, batch)
  assert not np.allclose(jax.tree.leaves(plain.params)[0],
                         jax.tree.leaves(got.params)[0])


def test_five_rare_classes_warn_and_train_dense_of_five(tmp_path, capsys):
  """Five rating classes from JSON numbers, one of them under 1% of the
  train reviews: one warning line, then Dense(5)."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  rows = classes.reviews([1, 2, 3, 4, 5], 600, 0)
  rows = [r for i, r in enumerate(rows) if r[1] != 5 or i < 20]  # rare 5s
  path = tmp_path / "r.jsonl"
  path.write_text("".join(json.dumps({"text": t, "rating": n}) + "\n"
                          for t, n in rows))
  config = tiny_config(dataset=str(path), label_field="rating",
                       cache_dir=str(tmp_path / "c"), num_epochs=1,
                       class_weights="balanced", progress=False)
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  out = capsys.readouterr().out
  warnings = [l for l in out.splitlines() if l.startswith("warning: under 1%")]
  assert len(warnings) == 1 and "5 (" in warnings[0]
  assert "dense (Dense)                (None, 5)" in out


def test_predict_names_the_class_and_its_probability(three_class_run):
  """predict on a 3-class run: the most probable class and its probability
  (--json: every class's, the softmax of the model's logits); reviews made
  of one class's words get that class. --explain and export are one line."""
  from tests.conftest import one_error_line, predict_cli  # pylint: disable=g-import-not-at-top
  from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
  workdir, _, _ = three_class_run
  texts = ["awful dreadful boring film", "okay average fine story",
           "great wonderful moving music"]
  plain = predict_cli("--workdir", str(workdir), *texts)
  assert plain.returncode == 0, plain.stderr
  rows = [line.split(None, 2) for line in plain.stdout.splitlines()]
  assert [r[1] for r in rows] == ["neg", "neutral", "pos"]
  proc = predict_cli("--workdir", str(workdir), "--json", *texts)
  records = [json.loads(line) for line in proc.stdout.splitlines()]
  logits = trained.load_predictor(workdir).logits(texts)
  softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  for record, row, want in zip(records, rows, softmax):
    got = [record["probabilities"][c] for c in ("neg", "neutral", "pos")]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert record["probability"] == pytest.approx(max(want), rel=1e-5)
    assert float(row[0]) == pytest.approx(max(want), abs=5e-4)


def test_explain_attributes_a_class_log_probability(three_class_run):
  """--explain on a 3-class run: each text toward its predicted class (or
  the class asked for); the score explained is that class's log-probability
  (the log-softmax of the model's logits, computed here), the contributions
  add up to it minus the baseline's, and a class's own words raise its
  probability while another class's words lower it."""
  from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
  workdir, _, _ = three_class_run
  predictor = trained.load_predictor(workdir)
  texts = ["awful dreadful the film", "great wonderful the story"]
  logits = predictor.logits(texts).astype(np.float64)
  log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  for target, want in ((None, ["neg", "pos"]), ("pos", ["pos", "pos"])):
    why = predictor.explain(texts, steps=64, rule="gauss-legendre",
                            target=target)
    assert [e.target for e in why] == want
    for e, row in zip(why, log_p):
      assert e.logit == pytest.approx(row[["neg", "neutral", "pos"].index(
          e.target)], abs=1e-4)
      assert e.total == pytest.approx(e.logit - e.baseline_logit, abs=2e-2)
    own = {w.word: w.contribution for w in why[1].words}
    assert min(own["great"], own["wonderful"]) > max(own["the"],
                                                     own["story"])
  against = {w.word: w.contribution for w in why[0].words}  # toward pos
  assert max(against["awful"], against["dreadful"]) < 0


def test_explain_on_the_command_line_names_the_class(three_class_run):
  from tests.conftest import one_error_line, predict_cli  # pylint: disable=g-import-not-at-top
  workdir, _, _ = three_class_run
  proc = predict_cli("--workdir", str(workdir), "--json", "--explain",
                     "okay average fine story")
  record = json.loads(proc.stdout)
  assert record["label"] == record["explained_class"] == "neutral"
  assert {"log_probability", "baseline_log_probability"} <= set(record)
  assert [c["word"] for c in record["contributions"]] == [
      "okay", "average", "fine", "story"]
  plain = predict_cli("--workdir", str(workdir), "--explain-class", "NEG",
                      "okay average fine story")
  assert plain.returncode == 0, plain.stderr
  assert "toward neg: log P" in plain.stdout.splitlines()[1]
  line = one_error_line(predict_cli("--workdir", str(workdir),
                                    "--explain-class", "great", "fine"))
  assert "--explain-class 'great'" in line and "neg, neutral, pos" in line


def test_report_draws_the_confusion_at_the_epoch_the_run_selects(
    three_class_run, tmp_path):
  """report: a K-class run's test confusion matrix at its reported epoch
  (chosen on the run's select_on, here macro-F1, where accuracy would pick
  another epoch) in <out>_confusion.png; a binary run has none."""
  # pylint: disable-next=g-import-not-at-top
  from flax_sentiment.usage import report, report_pictures
  run = tmp_path / "made"
  run.mkdir()
  records = [{"epoch": e, "epoch_seconds": 1.0, "test_accuracy": 0.5,
              "validation_accuracy": a, "validation_macro_f1": f,
              "test_confusion": [[e, 1], [2, 3]]}
             for e, a, f in ((1, 0.9, 0.2), (2, 0.6, 0.7), (3, 0.5, 0.1))]
  (run / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records))
  (run / "config.json").write_text(json.dumps({"select_on": "macro_f1"}))
  (run / "vocab.json").write_text(json.dumps({"classes": ["x", "y"]}))
  row = report.summarize("made", [run])
  assert row["selected_epochs"] == [2] and row["classes"] == ["x", "y"]
  np.testing.assert_array_equal(report_pictures.confusion_of(row),
                                [[2, 1], [2, 3]])
  workdir, history, _ = three_class_run
  trained_row = report.summarize("three", [workdir])
  chosen = history[trained_row["selected_epochs"][0] - 1]
  np.testing.assert_array_equal(report_pictures.confusion_of(trained_row),
                                chosen["test_confusion"])
  binary = dict(row, selected_confusion=[{"tp": 1, "fp": 0, "tn": 1,
                                          "fn": 0}])
  assert report_pictures.confusion_of(binary) is None
  report.main([str(workdir), str(run), "--out", str(tmp_path / "r")])
  picture = tmp_path / "r_confusion.png"
  assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not report_pictures.plot_confusion([binary], tmp_path / "none.png")
  assert not (tmp_path / "none.png").exists()


def test_an_ensemble_of_three_class_runs_mixes_their_probabilities(
    three_class_run, tmp_path):
  """Two runs (seeds 0 and 1): weights chosen on validation; the test
  accuracy is that of the weighted mean of the members' class
  probabilities, each member scored by its own predictor on the test
  reviews' texts; predict with both workdirs names a class."""
  from tests.conftest import predict_cli  # pylint: disable=g-import-not-at-top
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  from flax_sentiment.usage import ensemble, trained  # pylint: disable=g-import-not-at-top
  first, _, config = three_class_run
  other = config.copy_and_resolve_references()
  other.seed = 1
  second = tmp_path / "seed1"
  loop.train_and_evaluate(other, str(second))
  record = ensemble.evaluate_ensemble([first, second])
  weights = np.array(record["weights"])
  assert weights.sum() == pytest.approx(1.0)
  names = ("neg", "neutral", "pos")
  texts, ids = sources.read_labeled(config.dataset, classes=names)
  _, held = datasets.held_out(ids, config.test_fraction,
                              config.validation_seed + 1)
  test_texts = [texts[i].decode() for i in held]
  members = [trained.load_predictor(w)(test_texts) for w in (first, second)]
  mixture = weights[0] * members[0] + weights[1] * members[1]
  assert record["test_accuracy"] == pytest.approx(
      np.mean(mixture.argmax(axis=1) == ids[held]))
  assert record["members_test_accuracy"] == pytest.approx(
      [np.mean(m.argmax(axis=1) == ids[held]) for m in members])
  assert np.array(record["test_confusion"]).sum() == len(held)
  both = trained.Ensemble([trained.load_predictor(first),
                           trained.load_predictor(second)], weights)
  np.testing.assert_allclose(both(test_texts[:5]), mixture[:5], rtol=1e-5)
  proc = predict_cli("--workdir", str(first), "--workdir", str(second),
                     "--weights", "0.5,0.5", "great wonderful moving film")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split()[1] == "pos"


def test_a_missing_label_is_one_line_not_a_class(tmp_path):
  """A JSON null or an empty CSV field is not a class named "none" or "":
  the reader names its line."""
  path = classes.write_jsonl(tmp_path / "r.jsonl", ["neg", "pos"], 20)
  lines = path.read_text().splitlines()
  lines[6] = json.dumps({"text": "a review", "label": None})
  path.write_text("\n".join(lines) + "\n")
  assert labels.classes_of(sources.label_counts(path)) is None
  with pytest.raises(DataError, match=r"r.jsonl:7: no label in 'label'"):
    sources.read_labeled(path)
  csv_path = tmp_path / "r.csv"
  csv_path.write_text("text,label\ngood,pos\nbad,neg\nmeh,\n")
  assert labels.classes_of(sources.label_counts(csv_path)) is None
  with pytest.raises(DataError, match=r"r.csv:4: no label in 'label'"):
    sources.read_labeled(csv_path)


OPTIONS = {
    "gru_bidirectional_buckets": dict(cell="gru", bidirectional=True,
                                      padding="post", mask_padding=True,
                                      length_buckets=2, pooling="last+max"),
    "rnn_stock": dict(cell="rnn", implementation="stock"),
    "word2vec_adversarial": dict(pretrained_embeddings="word2vec",
                                 adversarial_epsilon=1.0),
    "virtual_adversarial": dict(virtual_adversarial_epsilon=1.0),
    "language_model_start": dict(pretrain_lm_epochs=1, padding="post",
                                 mask_padding=True, lm_sampled_words=16,
                                 lm_batch_size=8),
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_three_classes_learn_through_every_option(tmp_path, name):
  """A 3-class file through the recurrent options (cells, directions,
  buckets, pooling, the stock nn.RNN, word2vec and language-model starts,
  adversarial and virtual adversarial training on unlabeled reviews): a
  Dense(3) head, and test accuracy far above chance (1/3) at the epoch
  chosen."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
  names = ["neg", "neutral", "pos"]
  unlabeled = tmp_path / "unlabeled.txt"
  unlabeled.write_text("\n".join(t for t, _ in classes.reviews(names, 240, 9))
                       + "\n")
  config = tiny_config(
      dataset=str(classes.write_csv(tmp_path / "r.csv", names, 480)),
      unlabeled_dataset=str(unlabeled), cache_dir=str(tmp_path / "cache"),
      num_epochs=3, learning_rate=0.01, validation_examples=48,
      progress=False, **OPTIONS[name])
  history = loop.train_and_evaluate(config, str(tmp_path / "run"))
  result = json.loads((tmp_path / "run" / "result.json").read_text())
  assert result["test_accuracy"] > 0.8, history
  _, _, state, _ = trained.load_trained_state(tmp_path / "run")
  assert state.params["dense"]["kernel"].shape[-1] == 3
