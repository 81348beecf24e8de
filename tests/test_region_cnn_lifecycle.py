"""The region CNN (`model=region_cnn`, with region embeddings) goes through
a run's whole life as the recurrent model does: it learns the classes of a
file's reviews (two or three: a Dense(3) head, three probabilities), a run
continued after its first epoch ends as an uninterrupted one, the region
embedding learned first (cached) is the one in the checkpoint, unchanged
by training, while the word table trains; predict, predict --explain
(complete contributions), export, serve and an ensemble with a recurrent
run of the same data work on it."""

import json
import math
import shutil

import jax
import numpy as np
import pytest

from flax_sentiment.model import classifier, region_cnn
from flax_sentiment.tracking import rundir
from flax_sentiment.training import region_embedding, train_steps
from flax_sentiment.usage import ensemble, export, exported, predict, service
from flax_sentiment.usage import trained
from tests import classes
from tests.conftest import predict_cli, tiny_config
from tests.test_resume import TIMING_KEYS, assert_close

NAMES = {2: ["neg", "pos"], 3: ["neg", "neutral", "pos"]}
REGION = dict(model="region_cnn", region_embedding_dim=8, embed_dim=16,
              region_size=3, region_embedding_epochs=2)
# The recurrent model with region embeddings of 1-3-grams as a side input.
BILSTM = dict(model="recurrent", embed_dim=8, bidirectional=True,
              mask_padding=True, padding="post", pooling="last+max",
              region_embedding_ngrams=3)
SHARED = " ".join(classes.SHARED[:3])
# Integration steps: the network is piecewise linear (ReLU, max-pool), its
# gradient jumps along the path; 256 keep the midpoint rule within 1%.
STEPS = 256


def texts_of(k: int) -> list[str]:
  """A text of each class's words (class i: CLASS_WORDS[i]) among shared
  words."""
  return [f"{SHARED} {' '.join(words)} {SHARED}"
          for words in classes.CLASS_WORDS[:k]]


def run_config(folder, k: int, **overrides):
  """A tiny run on the K-class review file (and unlabeled text) in
  `folder`, validated on 32 of its train reviews."""
  fields = dict(REGION, dataset=str(folder / "reviews.jsonl"),
                unlabeled_dataset=str(folder / "unlabeled.jsonl"),
                cache_dir=str(folder / "cache"), num_epochs=2,
                learning_rate=0.01, validation_examples=32, progress=False)
  fields.update(overrides)
  return tiny_config(**fields)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """name -> (workdir, history), trained on first use: "region" (2 epochs,
  2 classes), "resumed" (its config: 1 epoch, whose history is returned,
  then on to 2), "recurrent" (an LSTM on the same reviews and validation
  split), "three" (3 classes), "bilstm" (a BiLSTM with region embeddings
  of 1-3-grams as a side input)."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  done, folders = {}, {}

  def folder_of(k):
    if k not in folders:
      folders[k] = folder = tmp_path_factory.mktemp(f"classes{k}")
      classes.write_jsonl(folder / "reviews.jsonl", NAMES[k], 160 * k)
      with open(folder / "unlabeled.jsonl", "w", encoding="utf-8") as f:
        for text, _ in classes.reviews(NAMES[k], 200, seed=7):
          f.write(json.dumps({"text": text}) + "\n")
    return folders[k]

  def get(name):
    if name not in done:
      k = 3 if name == "three" else 2
      folder = folder_of(k)
      workdir = folder / name
      first = (loop.train_and_evaluate(run_config(folder, k, num_epochs=1),
                                       workdir) if name == "resumed" else None)
      overrides = {"recurrent": dict(model="recurrent", region_embedding_dim=0,
                                     embed_dim=8),
                   "bilstm": BILSTM}.get(name, {})
      history = loop.train_and_evaluate(run_config(folder, k, **overrides),
                                        workdir)
      done[name] = workdir, first or history
    return done[name]

  return get


@pytest.fixture(scope="module")
def exported_region(runs, tmp_path_factory):
  workdir, _ = runs("region")
  return export.export_model(workdir, tmp_path_factory.mktemp("export") / "e",
                             say=lambda _: None)


def newest_params(workdir, tmp_path):
  """The params of a run's newest checkpoint (not its validation-best)."""
  copy = tmp_path / f"newest_{workdir.name}"
  shutil.copytree(workdir, copy)
  shutil.rmtree(rundir.RunDir(copy).best_checkpoint)
  _, _, state, _ = trained.load_trained_state(copy, say=lambda _: None)
  return jax.device_get(state.params)


@pytest.mark.parametrize("k", [2, 3])
def test_region_cnn_learns_the_classes_words(runs, k):
  """Accuracy far above chance on its test split and on reviews it never
  saw; a text of each class's words gets that class; K = 3: a Dense(3)
  head, and predict --json gives the three classes' probabilities."""
  workdir, history = runs("region" if k == 2 else "three")
  assert history[-1]["test_accuracy"] >= 0.9
  predictor = trained.load_predictor(workdir)
  assert isinstance(predictor.model, region_cnn.RegionCNN)
  assert predictor.params["dense"]["kernel"].shape == (16, 1 if k == 2 else k)
  assert "region_embedding" in predictor.params
  unseen = classes.reviews(NAMES[k], 60, seed=11)
  p = predictor([t for t, _ in unseen])
  guessed = p > 0.5 if k == 2 else np.argmax(p, axis=1)
  want = np.array([NAMES[k].index(name) for _, name in unseen])
  assert np.mean(guessed == want) >= 0.9
  lines = predict.batch_output(predictor, texts_of(k), as_json=True)
  records = [json.loads(line) for line in lines]
  for i, record in enumerate(records):
    if k == 2:
      assert record["label"] == ["negative", "positive"][i]
    else:
      assert record["label"] == NAMES[k][i]
      assert list(record["probabilities"]) == NAMES[k]
      assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_a_run_continued_after_epoch_one_ends_as_an_uninterrupted_one(
    runs, tmp_path):
  """1 epoch, then the same workdir on to 2 (continued: epoch 1's record,
  timings and all, as the first command wrote it): the same records
  (timings aside) and, bitwise, the same newest and validation-best
  parameters."""
  uninterrupted, _ = runs("region")
  resumed, first = runs("resumed")
  assert len(first) == 1 and rundir.read_metrics(resumed)[0] == first[0]
  records = [[{k: v for k, v in r.items() if k not in TIMING_KEYS}
              for r in rundir.read_metrics(w)] for w in (resumed,
                                                         uninterrupted)]
  assert len(records[0]) == len(records[1]) == 2
  for got, want in zip(*records):
    assert_close(got, want, "record")
  for load in (lambda w: newest_params(w, tmp_path),
               lambda w: trained.load_predictor(w).params):
    got, want = load(resumed), load(uninterrupted)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["region", "bilstm"])
def test_region_embedding_is_learned_first_and_held_fixed(runs, tmp_path,
                                                          name):
  """The checkpoint's region embedding is, exactly, the one learned before
  training (the cache's file: of words for the CNN, of 1-3-grams for the
  BiLSTM), which is not its initialization; the word table, trained,
  moved from its initialization. Both learn (test accuracy >= 0.9)."""
  workdir, history = runs(name)
  assert history[-1]["test_accuracy"] >= 0.9
  config = trained.run_config(workdir)
  ngrams = config.region_embedding_ngrams
  assert ngrams == {"region": 1, "bilstm": 3}[name]
  learned = {}
  for cached in (workdir.parent / "cache").glob("region_embedding_*.npz"):
    with np.load(cached) as saved:
      if ("ngram_table" in saved) == (ngrams > 1):
        learned = dict(saved)
  assert learned["table"].shape == (config.num_words, 8)
  start = region_embedding.init_params(config.num_words, 8, 3,
                                       ngrams)["region"]
  assert set(learned) == set(start)
  for part in learned:
    assert not np.allclose(learned[part], start[part], atol=1e-4), part
  initial = train_steps.create_train_state(
      classifier.model_from_config(config), config,
      jax.random.key(config.seed)).params
  for params in (newest_params(workdir, tmp_path),
                 trained.load_predictor(workdir).params):
    assert set(params[region_cnn.FIXED]) == set(learned)
    for part, value in learned.items():
      np.testing.assert_array_equal(params[region_cnn.FIXED][part], value)
    moved = np.abs(params["embedding"]["embedding"]
                   - initial["embedding"]["embedding"])
    assert moved.max() > 1e-2


def assert_complete(record: dict) -> None:
  """The read words' contributions add up to logit - baseline logit."""
  total = sum(w["contribution"] for w in record["contributions"] if w["read"])
  change = record["logit"] - record["baseline_logit"]
  assert total == pytest.approx(change, rel=0.01, abs=1e-3), record


def test_predict_and_explain_on_the_command_line(runs):
  """predict --json --explain: the predictor's probabilities, the logit's
  sigmoid; each text's contributions add up to its logit's change from
  the baseline, and its class words push toward its class."""
  workdir, _ = runs("region")
  texts = texts_of(2) + [t for t, _ in classes.reviews(NAMES[2], 4, seed=3)]
  proc = predict_cli("--workdir", str(workdir), "--json", "--explain-steps",
                     str(STEPS), *texts)
  assert proc.returncode == 0, proc.stderr
  records = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r["text"] for r in records] == texts
  want = trained.load_predictor(workdir)(texts)
  np.testing.assert_allclose([r["probability_positive"] for r in records],
                             want, rtol=0, atol=1e-5)
  changes = []
  for r in records:
    assert r["probability_positive"] == pytest.approx(
        1 / (1 + math.exp(-r["logit"])), abs=1e-5)
    assert_complete(r)
    changes.append(r["logit"] - r["baseline_logit"])
  assert np.median(np.abs(changes)) > 0.5
  for i, record in enumerate(records[:2]):  # neg words down, pos words up
    own = sum(w["contribution"] for w in record["contributions"]
              if w["word"] in classes.CLASS_WORDS[i])
    assert (own > 0) == (i == 1), record


@pytest.mark.parametrize("name", ["region", "bilstm"])
def test_export_predicts_as_the_workdir(runs, exported_region, name,
                                        tmp_path):
  workdir, _ = runs(name)
  out = (exported_region if name == "region" else export.export_model(
      workdir, tmp_path / "e", say=lambda _: None))
  texts = texts_of(2) + [t for t, _ in classes.reviews(NAMES[2], 9, seed=5)]
  texts += ["zzz qqq", ""]
  model = exported.load(out)
  got = model.predict(texts)
  want = trained.load_predictor(workdir)(texts)
  assert got.shape == want.shape == (len(texts),)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  manifest = json.loads((out / exported.MANIFEST).read_text())
  assert manifest["config"]["model"] == {"region": "region_cnn",
                                         "bilstm": "recurrent"}[name]
  assert manifest["config"]["region_embedding_dim"] == 8


@pytest.mark.parametrize("source", ["workdir", "export"])
def test_served_probability_is_predicts(runs, exported_region, source):
  """The service (no HTTP) names the network and answers the predictor's
  probability; from the workdir it explains each text, contributions
  complete."""
  workdir, _ = runs("region")
  model = (service.load_model(workdir=str(workdir)) if source == "workdir"
           else service.load_model(export=str(exported_region)))
  assert "region CNN" in service.Service(model).info()["model"]
  texts = texts_of(2) + ["zzz qqq"]
  results = service.Service(model).predict(texts, explain=True,
                                           steps=STEPS)["results"]
  want = trained.load_predictor(workdir)(texts)
  np.testing.assert_allclose([r["probability_positive"] for r in results],
                             want, rtol=0, atol=1e-5)
  assert [r["label"] for r in results[:2]] == ["negative", "positive"]
  for r in results:
    if source == "workdir":
      assert_complete(r)
    else:
      assert "contributions" not in r


def test_served_three_classes_are_predicts(runs):
  workdir, _ = runs("three")
  results = service.Service(service.load_model(workdir=str(workdir))).predict(
      texts_of(3))["results"]
  want = trained.load_predictor(workdir)(texts_of(3))
  for r, p, name in zip(results, want, NAMES[3]):
    np.testing.assert_allclose(list(r["probabilities"].values()), p,
                               rtol=0, atol=1e-5)
    assert r["label"] == name


def test_ensemble_with_a_recurrent_run(runs):
  """Weights chosen on the shared validation split sum to 1, the mixture
  is at least as accurate there as either member (both corners are on the
  grid), its test accuracy is that of the weighted mixture, and predict's
  ensemble is the weighted mean of the members."""
  workdirs = [runs("region")[0], runs("recurrent")[0]]
  result = ensemble.evaluate_ensemble(workdirs)
  weights = result["weights"]
  assert sum(weights) == pytest.approx(1.0) and min(weights) >= 0
  assert result["weights_chosen_by"].startswith("validation")
  assert result["validation_accuracy"] >= max(
      result["members_validation_accuracy"])
  (p0, labels), (p1, labels1) = [ensemble.split_probabilities(w)
                                 for w in workdirs]
  np.testing.assert_array_equal(labels, labels1)
  assert not np.allclose(p0, p1)  # two models
  mixture = weights[0] * p0 + weights[1] * p1
  assert result["test_accuracy"] == pytest.approx(
      np.mean((mixture > 0.5) == (labels > 0.5)))
  texts = texts_of(2) + ["zzz qqq"]
  members = [trained.load_predictor(w)(texts) for w in workdirs]
  np.testing.assert_allclose(
      trained.load_ensemble(workdirs, weights=weights)(texts),
      weights[0] * members[0] + weights[1] * members[1], rtol=1e-5)
