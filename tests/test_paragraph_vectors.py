"""Paragraph vectors: reproducible vectors, a normal workdir, the texts it
may read, and that predict, ensemble and a rerun take the run."""

import csv
import json

import numpy as np
import pytest

from flax_sentiment.text_models import common, paragraph_vectors
from flax_sentiment.training import loop
from flax_sentiment.usage import ensemble, trained
from flax_sentiment.training.checks import validate_config
from flax_sentiment.runtime.errors import UserError
from tests.conftest import snapshot, tiny_config

GOOD, BAD = ["great", "superb", "loved", "moving"], ["awful", "dull", "hated",
                                                     "boring"]
FILLER = ["the", "film", "plot", "was", "and", "it", "a", "story"]


def _review(rng, positive: bool, extra: str | None = None) -> str:
  words = list(rng.choice(FILLER, 6)) + list(rng.choice(GOOD if positive
                                                        else BAD, 3))
  rng.shuffle(words)
  return " ".join(words + ([extra] if extra else []))


def _write(path, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    writer.writerows(rows)


def _config(root, **overrides):
  return tiny_config(model="paragraph_vectors",
                     dataset=str(root / "train.csv"),
                     test_dataset=str(root / "test.csv"),
                     unlabeled_dataset=str(root / "unlabeled.txt"),
                     vocabulary_splits="train+unsupervised",
                     validation_examples=20, pv_dim=8, pv_epochs=30,
                     pv_min_count=1, pv_sample=0.0, pv_c_values="0.1,1",
                     cache_dir=str(root / "cache"), **overrides)


@pytest.fixture(scope="module")
def pv_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("pv")
  rng = np.random.default_rng(0)
  _write(root / "train.csv", [(_review(rng, i % 2 == 1), "pos" if i % 2
                               else "neg") for i in range(120)])
  # Words only test reviews hold, and only unlabeled ones hold.
  _write(root / "test.csv", [(_review(rng, i % 2 == 1, "zyzzyva"),
                              "pos" if i % 2 else "neg") for i in range(40)])
  (root / "unlabeled.txt").write_text("\n".join(
      _review(rng, i % 2 == 1, "quux") for i in range(60)))
  config = _config(root)
  history = loop.train_and_evaluate(config, root / "run")
  return root, config, history


def test_a_run_writes_a_normal_workdir(pv_run):
  root, _, history = pv_run
  names = {p.name for p in (root / "run").iterdir()}
  assert {"config.json", "metrics.jsonl", "result.json",
          "paragraph_vectors"} <= names
  assert "checkpoints" not in names
  (record,) = history
  result = json.loads((root / "run" / "result.json").read_text())
  assert result["model"] == "paragraph_vectors"
  assert result["test_accuracy"] == record["test_accuracy"]
  by_c = record["pv_validation_accuracy_by_c"]
  assert set(by_c) == {"0.1", "1"}
  # The most accurate on validation, ties to the smaller C (where
  # validation and test disagree: tests/test_text_models.py).
  best = max(by_c.values())
  assert record["pv_c"] == min(float(c) for c, a in by_c.items()
                               if a == best)
  assert record["validation_accuracy"] == best
  assert record["test_accuracy"] > 0.8  # the vectors separate the labels


def test_vectors_are_reproducible_and_independent_of_the_batch(pv_run):
  root, config, _ = pv_run
  model = paragraph_vectors.load(paragraph_vectors.RunDir(root / "run"))
  texts = ["great superb film", "dull boring plot", "the story was moving"]
  together = model.vectors(texts)
  alone = np.stack([model.vectors([t])[0] for t in reversed(texts)])[::-1]
  np.testing.assert_array_equal(together, alone)
  assert not np.allclose(together[0], together[1])
  # The same texts and config train the same Doc2Vec.
  splits = common.split_texts(config)
  corpus = splits["train"][0][:30]
  first = paragraph_vectors.train_doc2vec(corpus, config)
  second = paragraph_vectors.train_doc2vec(corpus, config)
  np.testing.assert_array_equal(first.dv.vectors, second.dv.vectors)
  np.testing.assert_array_equal(first.syn1neg, second.syn1neg)


def test_it_reads_train_and_unlabeled_text_never_test(pv_run):
  root, _, _ = pv_run
  words = trained.load_predictor(root / "run").word_ids
  assert "quux" in words and "great" in words
  assert "zyzzyva" not in words


def test_predict_and_ensemble_score_what_the_run_evaluated(pv_run):
  root, config, history = pv_run
  predictor = trained.load_predictor(root / "run")
  texts, labels = common.split_texts(config)["test"]
  p = predictor([t.decode() for t in texts])
  assert np.mean((p > 0.5) == (labels > 0.5)) == pytest.approx(
      history[0]["test_accuracy"])
  p_ensemble, labels_ensemble = ensemble.split_probabilities(root / "run")
  np.testing.assert_array_equal(p_ensemble, p)
  np.testing.assert_array_equal(labels_ensemble, labels)
  with pytest.raises(UserError, match="paragraph vectors"):
    predictor.explain(["great"])


def test_a_finished_run_is_not_fitted_again(pv_run):
  root, config, history = pv_run
  before = snapshot(root / "run")
  again = loop.train_and_evaluate(config, root / "run")
  assert again == json.loads(json.dumps(history))
  assert snapshot(root / "run") == before
  other = config.copy_and_resolve_references()
  other.pv_dim = 4
  with pytest.raises(UserError, match="pv_dim"):
    loop.train_and_evaluate(other, root / "run")
  assert snapshot(root / "run") == before


def test_damaged_model_is_one_line(pv_run, tmp_path):
  root, _, _ = pv_run
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(root / "run", tmp_path / "run")
  model = tmp_path / "run" / "paragraph_vectors"
  (model / paragraph_vectors.DOC2VEC_FILE).write_bytes(b"not a pickle")
  with pytest.raises(UserError, match="paragraph_vectors is damaged"):
    trained.load_predictor(tmp_path / "run")
  shutil.rmtree(model)
  with pytest.raises(UserError, match="paragraph_vectors is missing"):
    trained.load_predictor(tmp_path / "run")


def test_c_values_need_validation(tmp_path):
  with pytest.raises(UserError, match="pv_c_values"):
    validate_config(tiny_config(model="paragraph_vectors",
                                pv_c_values="0.1,1"))
  validate_config(tiny_config(model="paragraph_vectors", pv_c_values="1"))


def test_vectors_are_the_same_in_another_process(pv_run):
  # gensim's own infer_vector seeds its start with Python's salted hash.
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  root, _, _ = pv_run
  texts = ["great superb film", "dull boring plot"]
  here = paragraph_vectors.load(paragraph_vectors.RunDir(root / "run"))
  script = ("import sys, numpy as np\n"
            "from flax_sentiment.text_models import paragraph_vectors as pv\n"
            f"m = pv.load(pv.RunDir({str(root / 'run')!r}))\n"
            f"np.save(sys.argv[1], m.vectors({texts!r}))\n")
  out = root / "other_process.npy"
  for hash_seed in ("1", "2"):
    subprocess.run([sys.executable, "-c", script, str(out)], check=True,
                   env={**__import__("os").environ,
                        "PYTHONHASHSEED": hash_seed})
    np.testing.assert_array_equal(np.load(out), here.vectors(texts))
