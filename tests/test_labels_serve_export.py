"""Serve and export on runs of K > 2 classes (#40): the exported function
gives each class's probability [b, K] equal to predict's, the manifest and
the loader name the classes in the run's order, and serve answers with the
class whose words a text holds and every class's probability, as predict
--json does. Binary exports and serve: tests/test_export.py,
tests/test_serve.py."""

import json
import shutil
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

from flax_sentiment.data import tokenizer
from flax_sentiment.usage import export, exported, predict, serve, service
from flax_sentiment.usage import trained as trained_run
from tests import classes
from tests.conftest import tiny_config

# K -> (the label names the file writes, by class words; --config.labels).
# Five classes are ratings whose order is given in reverse: a loader or
# server that lost the run's order would name the wrong class.
RUNS = {3: (["neg", "neutral", "pos"], ""),
        5: (["1", "2", "3", "4", "5"], "5,4,3,2,1")}
SHARED = " ".join(classes.SHARED[:3])


def texts_of(k: int) -> list[str]:
  """A text of each class's words (class i holds CLASS_WORDS[i]), shared
  words, one of none known and an empty one."""
  return ([f"{SHARED} {' '.join(words)}" for words in classes.CLASS_WORDS[:k]]
          + ["zzz qqq", ""])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """K -> (workdir, export dir, the run's classes), trained and exported on
  first use."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  done = {}

  def get(k):
    if k not in done:
      folder = tmp_path_factory.mktemp(f"classes{k}")
      names, order = RUNS[k]
      path = classes.write_jsonl(folder / "r.jsonl", names, 120 * k)
      config = tiny_config(dataset=str(path), cache_dir=str(folder / "cache"),
                           labels=order, num_epochs=4, learning_rate=0.01,
                           validation_examples=48, progress=False)
      loop.train_and_evaluate(config, str(folder / "run"))
      out = export.export_model(folder / "run", folder / "export",
                                say=lambda _: None)
      run_classes = tokenizer.load_classes(folder / "run" / "vocab.json")
      done[k] = folder / "run", out, run_classes
    return done[k]

  return get


@pytest.mark.parametrize("k", sorted(RUNS))
def test_export_gives_each_class_probability_as_predict(runs, k):
  """[b, K] probabilities equal to predict's (atol 1e-5), summing to 1; the
  manifest and the loader name the classes in the run's order."""
  workdir, out, run_classes = runs(k)
  names, order = RUNS[k]
  assert run_classes == tuple(order.split(",") if order else names)
  manifest = json.loads((out / exported.MANIFEST).read_text())
  assert manifest["classes"] == list(run_classes)
  assert manifest["function"]["output"].startswith(
      f"class probabilities [b, {k}] float32")
  model = exported.load(out)
  assert model.classes == run_classes
  texts = texts_of(k) + [t for t, _ in classes.reviews(names, 9, seed=5)]
  got = model.predict(texts)
  want = trained_run.load_predictor(workdir)(texts)
  assert got.shape == want.shape == (len(texts), k)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
  in_threes = exported.load(out, batch_size=3).predict(iter(texts))
  np.testing.assert_allclose(in_threes, want, rtol=0, atol=1e-5)
  assert model.predict([]).shape == (0, k)


def test_loader_records_are_predicts(runs, tmp_path):
  """The copied loader's --json lines (run as a script) and plain lines
  name the most probable class as predict's do."""
  workdir, out, run_classes = runs(3)
  texts = texts_of(3)
  predictor = trained_run.load_predictor(workdir)
  want = [json.loads(line) for line in predict.batch_output(
      predictor, texts, as_json=True)]
  shipped = tmp_path / "shipped"
  shutil.copytree(out, shipped)
  proc = subprocess.run(
      [sys.executable, str(shipped / exported.LOADER_FILE), str(shipped),
       "--json", *texts], capture_output=True, text=True, timeout=120,
      cwd=tmp_path, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
  assert proc.returncode == 0, proc.stderr
  got = [json.loads(line) for line in proc.stdout.splitlines()]
  assert len(got) == len(want) == len(texts)
  for g, w in zip(got, want):
    assert list(g) == list(w)  # the same fields, in the same order
    assert list(g["probabilities"]) == list(run_classes)
    assert g["label"] == w["label"] and g["probability"] == pytest.approx(
        w["probability"], abs=1e-5)
    assert g.get("warning") == w.get("warning")
  plain = exported.load(out)
  lines = [f"{r['probability']:.3f}  {r['label']:<8}  {r['text']}"
           for r in (plain.record(t, p) for t, p in
                     zip(texts[:3], plain.predict(texts[:3])))]
  proc = subprocess.run(
      [sys.executable, str(shipped / exported.LOADER_FILE), str(shipped),
       *texts[:3]], capture_output=True, text=True, timeout=120,
      cwd=tmp_path, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
  assert proc.stdout.splitlines() == lines, proc.stderr


def test_records_of_two_and_of_k_classes():
  """One builder: a binary record as always, a K-class one naming the most
  probable class."""
  assert list(exported.prediction_record("a film", np.float32(0.75), 2, 0,
                                         2)) == [
      "text", "probability_positive", "label", "words", "unknown_words",
      "words_used"]
  record = exported.prediction_record(
      "a film", np.array([0.2, 0.5, 0.3], np.float32), 2, 2, 2,
      ("b", "a", "c"))
  assert record == {"text": "a film", "label": "a", "probability": 0.5,
                    "probabilities": {"b": pytest.approx(0.2), "a": 0.5,
                                      "c": pytest.approx(0.3)},
                    "words": 2, "unknown_words": 2, "words_used": 2,
                    "warning": exported.meaningless(2, 2)}
  assert list(record["probabilities"]) == ["b", "a", "c"]


@pytest.mark.parametrize("classes_field, words", [
    (["neg", "neutral", "pos", "more"], "does not give scores [b, 4]"),
    (["neg", "neg", "pos"], "not three or more distinct names"),
    ("neg,neutral,pos", "not three or more distinct names"),
    (None, "does not give scores [b]"),
])
def test_an_export_whose_classes_disagree_with_its_function_is_refused(
    runs, tmp_path, classes_field, words):
  _, out, _ = runs(3)
  other = tmp_path / "other"
  shutil.copytree(out, other)
  path = other / exported.MANIFEST
  manifest = json.loads(path.read_text())
  if classes_field is None:
    del manifest["classes"]
  else:
    manifest["classes"] = classes_field
  manifest["digest"] = exported.manifest_digest(manifest)
  path.write_text(json.dumps(manifest))
  with pytest.raises(exported.ExportError, match=r"is damaged \(") as caught:
    exported.load(other)
  assert words in str(caught.value)


@pytest.mark.parametrize("k", sorted(RUNS))
@pytest.mark.parametrize("source", ["workdir", "export"])
def test_served_label_is_the_class_of_the_words(runs, k, source):
  """Each text of one class's words is served with that class's name (the
  file's label), its probability the largest of every class's, which sum
  to 1 and equal predict's; a workdir explains each text's words toward
  that class, an export says it cannot."""
  workdir, out, run_classes = runs(k)
  names, _ = RUNS[k]
  model = (service.load_model(workdir=str(workdir)) if source == "workdir"
           else service.load_model(export=str(out)))
  served = service.Service(model)
  assert served.info()["classes"] == list(run_classes)
  texts = texts_of(k)
  response = served.predict(texts, explain=True, steps=8)
  results = response["results"]
  want = trained_run.load_predictor(workdir)(texts)
  for i, (r, p) in enumerate(zip(results, want)):
    assert list(r["probabilities"]) == list(run_classes)
    np.testing.assert_allclose(list(r["probabilities"].values()), p,
                               rtol=0, atol=1e-5)
    assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert r["probability"] == max(r["probabilities"].values())
    assert r["label"] == run_classes[int(np.argmax(p))]
    if i < k:
      assert r["label"] == names[classes.class_of(texts[i])] == names[i]
    assert "probability_positive" not in r
  assert "warning" in results[k] and "warning" in results[k + 1]
  if source == "workdir":  # each text's words toward its served class
    assert all(r["explained_class"] == r["label"] for r in results)
    assert all(len(r["contributions"]) == len(t.split())
               for r, t in zip(results, texts))
  else:
    assert all("contributions" not in r for r in results)
    assert "need the trained workdir" in response["explanations_unavailable"]


def test_served_over_http_with_a_bar_per_class(runs):
  """The page gets the classes (one bar each); POST /predict answers the
  same records as the service."""
  workdir, _, run_classes = runs(3)
  server = serve.make_server(
      service.Service(service.load_model(workdir=str(workdir))), port=0,
      quiet=True)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    with urllib.request.urlopen(server.url, timeout=60) as response:
      page = response.read().decode()
    assert '"classes": ["neg", "neutral", "pos"]' in page
    assert "classBars" in page
    request = urllib.request.Request(
        server.url + "predict", json.dumps({"texts": texts_of(3)}).encode(),
        method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
      results = json.loads(response.read())["results"]
  finally:
    server.shutdown()
    server.server_close()
    thread.join(10)
  assert [r["label"] for r in results[:3]] == list(run_classes)
  assert all(list(r["probabilities"]) == list(run_classes) for r in results)
