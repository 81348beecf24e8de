"""--config.tokenizer: words of any script, characters and SentencePiece
subwords, on Korean, Chinese and French review files the tests write —
training, resuming, predicting, explaining, serving and exporting with each;
what the tokenizers may learn from; IMDB's ids as before; bad input in one
line."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from flax_sentiment.configuration import fields
from flax_sentiment.data import datasets, tokenizer, vocabulary
from flax_sentiment.runtime.errors import ConfigError, UserError
from flax_sentiment.training import loop
from flax_sentiment.usage import export, exported, serve, trained
from tests import multilingual
from tests.conftest import REPO, one_error_line, tiny_config


def test_words_of_any_script():
  words = tokenizer.unicode_words(
      "Très MÉDIOCRE, l’œuvre!<br />नमस्ते दुनिया 재밌어요 ＡＢＣ１２ Straße "
      "snake_case don't")
  assert words == ["très", "médiocre", "l'œuvre", "नमस्ते", "दुनिया", "재밌어요",
                   "abc12", "strasse", "snake", "case", "don't"]
  # The english rule cuts the same text into fragments.
  assert "tr" in tokenizer.tokenize("Très médiocre")


def test_characters_drop_whitespace_and_normalize():
  assert tokenizer.characters("这部电影 很好看！ＡＢ") == [
      "这", "部", "电", "影", "很", "好", "看", "!", "a", "b"]


def test_the_loader_tokenizes_every_kind_as_training():
  """The export loader's standalone copies of the words and characters
  rules equal data/tokenizer on every language here and real reviews."""
  texts = [t for language in multilingual.PHRASES
           for t, _ in multilingual.reviews(language, 40, 0)]
  texts += ["Ünïcode café <br/>it's", "a\tb\nc", "", "don’t 'quote'",
            "ﬁne ｆｕｌｌ width", "नमस्ते दुनिया สวัสดีครับ", "😀👍 ok"]
  path = REPO.parent / "shared" / "data" / "imdb" / "imdb_train.jsonl.gz"
  if path.exists():
    import gzip  # pylint: disable=g-import-not-at-top
    import itertools  # pylint: disable=g-import-not-at-top
    with gzip.open(path, "rt", encoding="utf-8") as f:
      texts += [json.loads(line)["text"] for line in itertools.islice(f, 200)]
  for text in texts:
    for data in (text, text.encode()):
      assert exported.unicode_words(data) == tokenizer.unicode_words(data)
      assert exported.characters(data) == tokenizer.characters(data)


def test_auto_is_english_for_imdb_words_for_own_files_and_old_configs_english():
  config = tiny_config()
  assert tokenizer.kind_of(config) == "english"
  config.dataset = "/data/avis.csv"
  assert tokenizer.kind_of(config) == "words"
  # A run saved before the field existed read its own files as English.
  old = fields.complete({"dataset": "/data/avis.csv", "num_words": 64})
  assert old.tokenizer == "english" and tokenizer.kind_of(old) == "english"


def test_imdb_ids_are_those_of_earlier_versions(real_data_dir, tmp_path):
  """Token ids recorded with flax-sentiment at b40bea7 (before tokenizers
  had kinds), num_words 10,000, seq_len 64: the last 16 of a few reviews."""
  config = tiny_config(data_dir=real_data_dir, download=False,
                       num_words=10_000, seq_len=64, cache_dir=str(tmp_path))
  imdb = datasets.load_imdb(config)
  assert imdb.tokenizer.kind == "english"
  assert imdb.train.tokens[[0, 1, 2, 12345], -16:].tolist() == [
      [99, 37, 11, 7242, 5516, 37, 1369, 1, 49, 401, 10, 97, 1194, 869, 140,
       9],
      [202, 1, 206, 98, 144, 4387, 15, 229, 332, 10, 2483, 383, 11, 19, 30,
       29],
      [3000, 549, 5, 733, 1, 16, 11, 2760, 111, 39, 6, 4476, 126, 417, 8,
       6133],
      [6, 5040, 15, 18, 44, 22, 23, 264, 15, 4, 49, 17, 789, 242, 238, 454]]
  assert imdb.test.tokens[[0, 24999], -16:].tolist() == [
      [36, 4, 19, 37, 11, 1, 4, 1, 326, 7, 4, 19, 623, 55, 45, 213],
      [2, 4094, 1148, 7605, 1070, 284, 3, 28, 5, 2, 88, 1, 1575, 448, 8665,
       2123]]
  assert imdb.vocabulary[-3:] == ["misfits", "mismatched", "misogynistic"]


def _config(path: pathlib.Path, tmp_path: pathlib.Path, **overrides):
  return tiny_config(**{"dataset": str(path), "cache_dir": str(
      tmp_path / "cache"), "num_words": 120, "seq_len": 24,
                        "learning_rate": 0.01, **overrides})


def test_a_french_file_keeps_its_words_by_default(tmp_path):
  path = multilingual.write_csv(tmp_path / "avis.csv", "fr", 120, 0)
  imdb = datasets.load_imdb(_config(path, tmp_path))
  assert imdb.tokenizer.kind == "words"
  assert {"très", "médiocre", "œuvre", "éviter"} <= set(imdb.vocabulary)


@pytest.mark.parametrize("kind", ["words", "subwords"])
def test_the_tokenizer_never_learns_from_validation_or_test_text(
    tmp_path, kind):
  """A made-up word repeated in the validation reviews (carved from the
  train file) and the test file is no token of the tokenizer; the same
  word in the reviews kept for training is (so this test can fail)."""
  rows = multilingual.reviews("fr", 160, 0)
  config = _config(tmp_path / "train.csv", tmp_path, validation_examples=40,
                   tokenizer=kind, num_words=200 if kind == "words" else 60)
  _, held = datasets.split_train(np.array([l for _, l in rows]), config)

  def write(marked_rows):
    with open(tmp_path / "train.csv", "w", encoding="utf-8") as f:
      f.write("text,label\n" + "".join(
          f"{t}{' zorblax' * 3 if i in marked_rows else ''},{l}\n"
          for i, (t, l) in enumerate(rows)))
  test = [(t + " zorblax zorblax", l)
          for t, l in multilingual.reviews("fr", 40, 1)]
  (tmp_path / "test.csv").write_text("text,label\n" + "".join(
      f"{t},{l}\n" for t, l in test), encoding="utf-8")
  config.test_dataset = str(tmp_path / "test.csv")
  write(set(held.tolist()))
  learned = datasets.load_imdb(config).vocabulary
  assert not any("zorb" in token for token in learned)
  kept = sorted(set(range(len(rows))) - set(held.tolist()))
  write(set(kept[:40]))
  assert any("zorb" in token for token in datasets.load_imdb(config).vocabulary)


def test_too_many_or_too_few_pieces_say_how_many_work(tmp_path):
  path = multilingual.write_csv(tmp_path / "ko.csv", "ko", 200, 0)
  config = _config(path, tmp_path, tokenizer="subwords", num_words=5000)
  with pytest.raises(ConfigError, match=r"asks SentencePiece for 4,998 "
                     r"subword pieces, but the train text of .*ko.csv allows "
                     r"at most [\d,]+: use --config.num_words=\d+ or fewer"
                     ) as error:
    datasets.load_imdb(config)
  most = int(str(error.value).split("--config.num_words=")[1].split()[0])
  config.num_words = most
  imdb = datasets.load_imdb(config)  # the number it names works
  assert len(imdb.vocabulary) == most - tokenizer.NUM_RESERVED_IDS
  config.num_words = 12
  with pytest.raises(ConfigError, match=r"fewer than the \d+ distinct "
                     r"characters .* use --config.num_words=\d+ or more"):
    datasets.load_imdb(config)


def test_chinese_read_as_words_warns_and_characters_do_not(tmp_path):
  path = multilingual.write_csv(tmp_path / "zh.csv", "zh", 200, 0)
  said = []
  datasets.load_imdb(_config(path, tmp_path, tokenizer="words"), said.append)
  warnings = [s for s in said if s.startswith("warning:")]
  assert len(warnings) == 1 and "occur once only" in warnings[0]
  assert "--config.tokenizer=characters" in warnings[0]
  said.clear()
  datasets.load_imdb(_config(path, tmp_path, tokenizer="characters"),
                     said.append)
  assert not [s for s in said if s.startswith("warning:")]


def test_an_emoji_only_text_column_is_refused(tmp_path):
  path = tmp_path / "emoji.csv"
  path.write_text("text,label\n" + "".join(
      f"{'😀👍' if i % 2 else '😡👎'},{i % 2}\n" for i in range(60)),
                  encoding="utf-8")
  with pytest.raises(ConfigError, match=r"no word the words tokenizer reads "
                     r"\(is the text column right\? emoji"):
    loop.train_and_evaluate(_config(path, tmp_path), tmp_path / "run")
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_unknown_tokenizer_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "flax_sentiment.cli", "train", "--config",
       "lstm", "--config.tokenizer=bpe", f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, timeout=120, cwd=tmp_path,
      env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO)))
  line = one_error_line(proc)
  assert "config.tokenizer='bpe' is not allowed; use" in line
  assert "subwords" in line and not (tmp_path / "run").exists()


LANGUAGES = {"words": "fr", "characters": "zh", "subwords": "ko"}


@pytest.fixture(scope="module", params=sorted(LANGUAGES))
def run(request, tmp_path_factory):
  """(kind, workdir, reviews file): 2 epochs on 240 reviews."""
  kind = request.param
  root = tmp_path_factory.mktemp(kind)
  path = multilingual.write_csv(root / "reviews.csv", LANGUAGES[kind], 240, 0)
  config = _config(path, root, tokenizer=kind, num_words=100, num_epochs=2)
  loop.train_and_evaluate(config, root / "run")
  return kind, root / "run", config


def test_each_tokenizer_learns_and_resumes(run):
  kind, workdir, config = run
  result = json.loads((workdir / "result.json").read_text())
  assert result["test_accuracy"] > 0.8  # the phrases carry the label
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["tokenizer"] == kind
  assert (workdir / "tokenizer.model").is_file() == (kind == "subwords")
  resumed = tiny_config(**{**config.to_dict(), "num_epochs": 3})
  history = loop.train_and_evaluate(resumed, workdir)
  assert [h["epoch"] for h in history] == [1, 2, 3]
  other = "characters" if kind != "characters" else "words"
  with pytest.raises(ConfigError, match=r"tokenizer"):
    loop.train_and_evaluate(
        tiny_config(**{**resumed.to_dict(), "tokenizer": other,
                       "num_epochs": 4}), workdir)


def test_predict_explain_serve_and_export_read_as_training(run, tmp_path):
  kind, workdir, _ = run
  texts = [t for t, _ in multilingual.reviews(LANGUAGES[kind], 8, 7)]
  predictor = trained.load_predictor(workdir)
  assert predictor.tokenizer.kind == kind
  probabilities = predictor(texts)
  # The export scores alike, with the loader's own tokenizer.
  out = export.export_model(workdir, tmp_path / "export", say=lambda _: None)
  manifest = json.loads((out / "export.json").read_text())
  assert manifest["tokenization"]["tokenizer"] == kind
  assert ("sentencepiece" in manifest["requires"]) == (kind == "subwords")
  loaded = exported.load(out)
  np.testing.assert_allclose(loaded.predict(texts), probabilities, atol=1e-5)
  assert [loaded.word_counts(t) for t in texts] == trained.word_counts(
      texts, predictor.word_ids, predictor.tokenizer)
  # serve's answers are predict's.
  service = serve.Service(serve.WorkdirModel(predictor))
  answer = service.predict(texts, explain=True, steps=16)
  np.testing.assert_allclose(
      [r["probability_positive"] for r in answer["results"]], probabilities,
      atol=1e-6)
  # Explanations: subword pieces joined back into the text's words.
  explanation = predictor.explain(texts[:2], steps=16)
  for text, e in zip(texts[:2], explanation):
    shown = [w.word for w in e.words]
    if kind == "subwords":  # one entry per word of the text
      assert shown == tokenizer.normalize(text).split()
    else:
      assert shown == predictor.tokenizer(text)


def test_a_missing_or_damaged_tokenizer_file_is_one_line(run, tmp_path):
  kind, workdir, config = run
  if kind != "subwords":
    pytest.skip("only subwords keep a tokenizer file")
  model = workdir / "tokenizer.model"
  saved = model.read_bytes()
  try:
    model.write_bytes(saved[:100])
    with pytest.raises(UserError, match=r"tokenizer.model is damaged .*"
                       r"re-running the training command"):
      trained.load_predictor(workdir)
    model.unlink()
    with pytest.raises(UserError, match=r"tokenizer.model is missing"):
      trained.load_predictor(workdir)
    # Re-running the finished training puts it back.
    loop.train_and_evaluate(tiny_config(**{**config.to_dict(),
                                           "num_epochs": 3}), workdir)
    assert model.read_bytes() == saved
  finally:
    model.write_bytes(saved)


def test_text_models_read_characters_and_refuse_subwords(tmp_path):
  path = multilingual.write_csv(tmp_path / "zh.csv", "zh", 200, 0)
  config = _config(path, tmp_path, model="ngrams", tokenizer="characters",
                   validation_examples=40, ngram_c_values="1")
  loop.train_and_evaluate(config, tmp_path / "run")
  result = json.loads((tmp_path / "run" / "result.json").read_text())
  assert result["test_accuracy"] > 0.8
  predictor = trained.load_predictor(tmp_path / "run")
  assert predictor.model.tokenizer == "characters"
  assert predictor(["这部电影很好看", "太无聊了"]).tolist()[0] > 0.5
  from flax_sentiment.training.checks import validate_config  # pylint: disable=g-import-not-at-top
  config.tokenizer = "subwords"
  with pytest.raises(ConfigError, match=r"reads words or characters, not "
                     r"subwords"):
    validate_config(config)


def test_fitting_rows_are_the_kept_train_reviews_and_unlabeled():
  labels = {"train": np.array([0, 1, 0, 1]), "unsupervised": np.array([-1])}
  config = tiny_config(vocabulary_splits="train", validation_examples=2)
  kept, _ = datasets.split_train(labels["train"], config)
  rows = lambda kind: {name: r.tolist() for name, r in
                       datasets.fitting_rows(labels, config, kind).items()}
  assert rows("words") == {"train": kept.tolist()} and len(kept) == 2
  assert rows("subwords") == {"train": kept.tolist(), "unsupervised": [0]}
  assert rows("english") == {"train": [0, 1, 2, 3]}


def test_an_ensemble_mixes_runs_of_different_tokenizers(tmp_path):
  """A words run and a characters run of the same French reviews: the
  ensemble reads the texts with each member's own tokenizer and averages
  their probabilities with the weights given."""
  path = multilingual.write_csv(tmp_path / "avis.csv", "fr", 160, 0)
  workdirs = []
  for kind in ("words", "characters"):
    config = _config(path, tmp_path, tokenizer=kind, num_words=100,
                     num_epochs=1)
    loop.train_and_evaluate(config, tmp_path / kind)
    workdirs.append(tmp_path / kind)
  texts = [t for t, _ in multilingual.reviews("fr", 6, 3)]
  members = [trained.load_predictor(w) for w in workdirs]
  assert [m.tokenizer.kind for m in members] == ["words", "characters"]
  ensemble = trained.load_ensemble(workdirs, weights=[0.25, 0.75])
  np.testing.assert_allclose(
      ensemble(texts), 0.25 * members[0](texts) + 0.75 * members[1](texts),
      atol=1e-6)
  assert not np.allclose(members[0](texts), members[1](texts))
