"""Your own reviews as data: CSV/TSV/JSONL/folders read right, bad files
refused in one line naming file and line, and a whole run on a CSV from
another folder (train, predict, report)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from flax_sentiment.data import datasets, delimited, sources
from flax_sentiment.data.sources import DataError
from tests.conftest import REPO, one_error_line, tiny_config
from tests.fake_imdb import fake_records


def write(path: pathlib.Path, content: bytes | str) -> pathlib.Path:
  path.write_bytes(content if isinstance(content, bytes)
                   else content.encode())
  return path


def test_csv_with_bom_crlf_quoted_newlines_and_label_words(tmp_path):
  path = write(tmp_path / "r.csv", b"\xef\xbb\xbftext,label\r\n"
               b'"Great, really ""great""\r\nfilm.",pos\r\n'
               b"Dull.,negative\r\n\r\nFine.,TRUE\r\nBad.,0\r\n")
  texts, labels = sources.read_labeled(path)
  assert texts == [b'Great, really "great"\r\nfilm.', b"Dull.", b"Fine.",
                   b"Bad."]
  assert labels.tolist() == [1, 0, 1, 0] and labels.dtype == np.int32


def test_tsv_jsonl_and_folder_with_own_field_names(tmp_path):
  tsv = write(tmp_path / "r.tsv", "review\tstars\nGood one\t1\nAwful\t0\n")
  assert sources.read_labeled(tsv, "review", "stars")[1].tolist() == [1, 0]
  jsonl = write(tmp_path / "r.jsonl", '{"text": "Loved it", "label": true}\n'
                '\n{"text": "Hated it", "label": 0}\n')
  texts, labels = sources.read_labeled(jsonl)
  assert texts == [b"Loved it", b"Hated it"] and labels.tolist() == [1, 0]
  for name, label in (("pos", 1), ("neg", 0)):
    (tmp_path / "acl" / name).mkdir(parents=True)
    for i in range(2):
      write(tmp_path / "acl" / name / f"{i}_7.txt", f"{name} review {i}")
  texts, labels = sources.read_labeled(tmp_path / "acl")
  assert texts[0] == b"neg review 0" and labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("name,content,says", [
    ("r.csv", "body,label\nGood,1\n", r"r.csv:2: no 'text' column \(found: "
     r"body, label\); .*--config.text_field"),
    ("r.csv", "text,label\nGood,1\nOkay,neutral\n",
     r"r.csv:3: label 'neutral' in 'label' is not one of 0/1, neg/pos"),
    ("r.csv", b"text,label\nGood,1\nBad \xff\xfe,0\n",
     r"r.csv:3: bytes that are not UTF-8"),
    ("r.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n',
     r"r.jsonl:2: label 2 in 'label'"),
    ("r.jsonl", '{"text": "a", "label": 1}\n{"text": "b"\n',
     r"r.jsonl:2: not a JSON object"),
    ("r.jsonl", '{"label": 1}\n', r"r.jsonl:1: no 'text' key"),
    ("r.csv", "text,label\nGood,1,extra\n", r"r.csv:2: 3 fields where"),
    ("r.xlsx", "whatever", r"unknown format '.xlsx'"),
    ("r.csv", "", r"r.csv is empty"),
])
def test_bad_file_is_one_line_with_file_and_line(tmp_path, name, content,
                                                 says):
  path = write(tmp_path / name, content)
  with pytest.raises(DataError, match=says) as error:
    sources.read_labeled(path)
  assert "\n" not in str(error.value)


def test_empty_texts_are_skipped_with_one_warning(tmp_path):
  """NSMC's files hold a few empty documents: they are skipped, said once
  with their lines; a file of empty texts only holds no reviews."""
  path = write(tmp_path / "r.csv", 'text,label\nGood,1\n"multi\nline",1\n'
               '   ,0\nBad,0\n,1\n')
  said = []
  texts, labels = sources.read_labeled(path, say=said.append)
  assert texts == [b"Good", b"multi\nline", b"Bad"]
  assert labels.tolist() == [1, 1, 0]
  assert said == [f"warning: {path}: skipped 2 reviews with an empty text "
                  f"(lines 5, 7)"]
  empty = write(tmp_path / "e.csv", "text,label\n ,1\n,0\n")
  with pytest.raises(DataError, match=r"e.csv holds no reviews \(every text "
                     r"is empty: lines 2-3\)"):
    sources.read_labeled(empty)


def test_missing_path_and_folder_without_pos_neg(tmp_path):
  with pytest.raises(DataError, match=r"dataset=.*nope.csv not found"):
    sources.read_labeled(tmp_path / "nope.csv")
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match=r"without pos/ and neg/"):
    sources.read_labeled(tmp_path / "empty")


def write_reviews_csv(path: pathlib.Path, num: int, seed: int,
                      extra_word: str | None = None) -> pathlib.Path:
  rows = ["text,label"]
  for i, record in enumerate(fake_records(num, seed)):
    text = record["text"].decode()
    if extra_word and i == 0:
      text += " " + extra_word
    rows.append(f'"{text}",{"pos" if record["label"] else "neg"}')
  return write(path, "\r\n".join(rows) + "\r\n")


def test_vocabulary_from_the_train_part_only_and_cache_keyed_by_content(
    tmp_path):
  train = write_reviews_csv(tmp_path / "train.csv", 64, 0)
  test = write_reviews_csv(tmp_path / "test.csv", 16, 1, "zyzzyva")
  config = tiny_config(dataset=str(train), test_dataset=str(test),
                       cache_dir=str(tmp_path / "cache"), num_words=1000)
  reviews = datasets.load_imdb(config)
  assert "zyzzyva" not in reviews.vocabulary and len(reviews.test) == 16
  assert len(reviews.train) == 64 and reviews.train.tokens.shape == (64, 16)
  caches = set((tmp_path / "cache").glob("tokens_*"))
  datasets.load_imdb(config)  # same content: the cache is used, not rebuilt
  assert set((tmp_path / "cache").glob("tokens_*")) == caches
  write_reviews_csv(train, 64, 0, "zyzzyva")  # same path, other content
  assert "zyzzyva" in datasets.load_imdb(config).vocabulary
  assert len(set((tmp_path / "cache").glob("tokens_*"))) == 2


def test_held_out_test_share_is_balanced_and_disjoint(tmp_path):
  train = write_reviews_csv(tmp_path / "all.csv", 100, 0)
  config = tiny_config(dataset=str(train), test_fraction=0.2,
                       cache_dir=str(tmp_path / "cache"))
  raw = datasets.read_raw(config)
  assert len(raw["test"][0]) == 20 and len(raw["train"][0]) == 80
  assert raw["test"][1].sum() == 10
  assert not set(raw["test"][0]) & set(raw["train"][0]) - {b""}


def test_fewer_reviews_than_a_batch_is_refused(tmp_path):
  train = write_reviews_csv(tmp_path / "few.csv", 10, 0)
  config = tiny_config(dataset=str(train), batch_size=32,
                       cache_dir=str(tmp_path / "cache"))
  with pytest.raises(datasets.ConfigError, match=r"few.csv gives 8 train "
                     r"reviews, fewer than one batch"):
    datasets.load_imdb(config)


def cli(*args, cwd, timeout=240):
  return subprocess.run([sys.executable, "-m", "flax_sentiment.cli", *args],
                        cwd=cwd, capture_output=True, text=True,
                        timeout=timeout,
                        env=dict(os.environ, JAX_PLATFORMS="cpu",
                                 PYTHONPATH=str(REPO)))


def test_a_run_on_a_csv_from_another_folder(tmp_path):
  """flax-sentiment train/predict/report on a CSV with relative paths, run
  from a folder that is not the repository."""
  write_reviews_csv(tmp_path / "reviews.csv", 160, 0)
  sizes = ["--config.num_words=64", "--config.embed_dim=8",
           "--config.hidden_dim=8", "--config.seq_len=16",
           "--config.batch_size=8", "--config.num_epochs=3",
           "--config.learning_rate=0.01",
           "--config.steps_per_call=4", "--config.cache_dir=cache"]
  proc = cli("train", "--config", "lstm", "--config.dataset=reviews.csv",
             "--workdir=run", *sizes, cwd=tmp_path)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["dataset"] == str(tmp_path / "reviews.csv")  # absolute
  assert saved["cache_dir"] == str(tmp_path / "cache")
  assert "Training on 128 reviews, testing on 32" in proc.stdout
  result = json.loads((tmp_path / "run" / "result.json").read_text())
  assert result["test_accuracy"] > 0.5
  proc = cli("predict", "--workdir", "run", "--json", "great wonderful",
             "awful boring", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  scores = [json.loads(l)["probability_positive"]
            for l in proc.stdout.splitlines()]
  assert len(scores) == 2 and scores[0] > scores[1]
  proc = cli("report", "run", "--out", "report", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert (tmp_path / "report.md").is_file()


def test_bad_dataset_on_the_command_line_is_one_line(tmp_path):
  write(tmp_path / "bad.csv", "text,label\nGood,1\nMeh,0,extra\n")
  proc = cli("train", "--config", "lstm", "--config.dataset=bad.csv",
             "--workdir=run", "--config.cache_dir=cache", cwd=tmp_path)
  line = one_error_line(proc)
  assert f"{tmp_path / 'bad.csv'}:3: 3 fields where" in line
  assert not (tmp_path / "run").exists()


def test_semicolon_csv_as_excel_writes_it(tmp_path):
  """Excel's CSV where the decimal mark is a comma: ';' between fields,
  commas inside the texts."""
  path = write(tmp_path / "avis.csv", 'text;label\n"Très bon, vraiment.";pos\n'
               "Médiocre, à éviter;neg\n")
  texts, labels = sources.read_labeled(path)
  assert [t.decode() for t in texts] == ["Très bon, vraiment.",
                                         "Médiocre, à éviter"]
  assert labels.tolist() == [1, 0]
  # A comma header keeps the comma, even with semicolons in the texts.
  path = write(tmp_path / "r.csv", "text,label\nGood; truly.,1\n")
  assert sources.read_labeled(path)[0] == [b"Good; truly."]


def test_nsmc_files_as_they_ship(tmp_path):
  """NSMC's ratings_train.txt: tab-separated, id/document/label header."""
  path = write(tmp_path / "ratings_train.txt",
               "id\tdocument\tlabel\n9976970\t아 더빙.. 진짜 짜증나네요 목소리\t0\n"
               "10265843\t너무재밓었다그래서보는것을추천한다\t1\n")
  texts, labels = sources.read_labeled(path, "document")
  assert texts[1].decode() == "너무재밓었다그래서보는것을추천한다"
  assert labels.tolist() == [0, 1]
  with pytest.raises(DataError, match=r"no 'text' column \(found: id, "
                     r"document, label\); name yours with "
                     r"--config.text_field"):
    sources.read_labeled(path)


def test_long_fields_are_read_and_a_runaway_quote_is_our_line(tmp_path):
  long = "great " * 40_000  # 240,000 characters: past csv's own limit
  path = write(tmp_path / "long.csv", f'text,label\n"{long}",1\nok,0\n')
  assert len(sources.read_labeled(path)[0][0]) == len(long)
  path = write(tmp_path / "open.csv", 'text,label\n"never closed,1\n' + (
      "x" * (delimited.MAX_FIELD_CHARS + 10)))
  with pytest.raises(DataError) as error:
    sources.read_labeled(path)
  message = str(error.value)
  assert message.startswith(f"{path}:2: a field longer than ")
  assert "unclosed quote" in message and "\n" not in message


@pytest.mark.parametrize("model", ["recurrent", "ngrams"])
def test_reviews_without_readable_words_are_refused_before_training(
    tmp_path, model):
  """Chinese reviews read with the english tokenizer, which finds no word
  in them. Refused in one line before anything is written, not trained at
  chance; the line names the tokenizers that read them."""
  rows = ["text,label"] + [f"{'这部电影很好看' if i % 2 else '太无聊了！'},{i % 2}"
                           for i in range(60)]
  path = write(tmp_path / "zh.csv", "\n".join(rows) + "\n")
  config = tiny_config(model=model, dataset=str(path),
                       validation_examples=10, ngram_c_values="1",
                       cache_dir=str(tmp_path / "cache"), tokenizer="english")
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  with pytest.raises(datasets.ConfigError, match=r"no word the english "
                     r"tokenizer reads .*--config.tokenizer=words .*"
                     r"characters or subwords") as error:
    loop.train_and_evaluate(config, tmp_path / "run")
  assert "\n" not in str(error.value)
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("model", ["recurrent", "ngrams"])
def test_one_class_of_train_reviews_is_refused_before_training(tmp_path,
                                                               model):
  """Every review positive: refused in one line, nothing written (it would
  "train" to test accuracy 1.0 and call anything positive)."""
  rows = ["text,label"] + [f"review number {i} of a good film,pos"
                           for i in range(60)]
  path = write(tmp_path / "pos.csv", "\n".join(rows) + "\n")
  config = tiny_config(model=model, dataset=str(path), ngram_c_values="1",
                       validation_examples=10,
                       cache_dir=str(tmp_path / "cache"))
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  with pytest.raises(datasets.ConfigError, match=r"all 38 train reviews of "
                     r".*pos.csv are positive; a model cannot learn "
                     r"sentiment from one class") as error:
    loop.train_and_evaluate(config, tmp_path / "run")
  assert "\n" not in str(error.value)
  assert not (tmp_path / "run" / "checkpoints").exists()


def _csv_module_reviews(path: pathlib.Path) -> tuple[list, list[int]]:
  """(reviews, skipped lines) as the csv module reads them, row by row."""
  skipped = []
  reviews = list(sources._from_rows(path, delimited.rows(path, ","), "text",
                                    "label", skipped))
  return reviews, skipped


@pytest.mark.parametrize("block", [256, 1 << 20])
def test_pyarrow_reads_csv_as_the_csv_module_does(tmp_path, monkeypatch,
                                                  block):
  """The fast path (pyarrow's parser, a block at a time) reads what the csv
  module reads, quoting cases, blank lines, empty texts and label words
  included, and it is the path taken."""
  monkeypatch.setattr(delimited, "BLOCK_BYTES", block)
  texts = ['"Great, really ""great""\r\nfilm."', 'ab"c', '"ab"c', "tab\there",
           '"a\n\nb"', ' "spaced', "naïve 한국어 😀", '"   "', "", "\u3000",
           "x\\", '"x\\"y"', "<br />ok", "\x1c"]
  labels = [" POS ", "Negative", "1", "false", "TRUE", "0", "neg\t"]
  rows = [f"{t},{labels[i % len(labels)]}\r\n" + ("\r\n" if i % 5 else "")
          for i, t in enumerate(texts * 8)]
  path = write(tmp_path / "r.csv", "\ufefftext,label\r\n" + "".join(rows))
  blocks = []
  parsed = delimited.batches
  def counted(*args):
    for batch in parsed(*args):
      blocks.append(len(batch[0]))
      yield batch
  monkeypatch.setattr(delimited, "batches", counted)
  said = []
  fast = list(sources.iter_labeled(path, say=said.append))
  want, skipped = _csv_module_reviews(path)
  assert fast == want and len(want) == 8 * 10  # 4 texts of 14 are empty
  assert sum(blocks) == len(want) and len(blocks) >= (2 if block < 1000 else 1)
  assert said == [f"warning: {path}: skipped {len(skipped)} reviews with an "
                  f"empty text (lines {', '.join(map(str, skipped[:5]))} ...)"]


@pytest.mark.parametrize("bad,says", [
    ("Okay,neutral\n", "label 'neutral' in 'label' is not one of"),
    ("a,1,extra\n", "3 fields where the header has 2"),
    (b"caf\xe9,1\n", "bytes that are not UTF-8"),
])
def test_a_bad_row_after_parsed_blocks_is_named_at_its_line(
    tmp_path, monkeypatch, bad, says):
  """pyarrow leaves a block it is unsure of to the csv module, which reads
  on from that block's first row: every review before the bad row comes
  once, in order, and the error names the bad row's line."""
  monkeypatch.setattr(delimited, "BLOCK_BYTES", 256)
  good = b"".join(b'"review %d\nsecond line",%d\n' % (i, i % 2)
                  for i in range(100))
  path = write(tmp_path / "r.csv", b"text,label\n" + good + (
      bad if isinstance(bad, bytes) else bad.encode()) + b"fine,1\n")
  got = []
  with pytest.raises(DataError, match=f"r.csv:202: {says}"):
    for review in sources.iter_labeled(path):
      got.append(review)
  before = [(b"review %d\nsecond line" % i, i % 2) for i in range(100)]
  # (undecodable bytes are found as the csv module reads ahead)
  assert got == (before if isinstance(bad, str) else before[:len(got)])


def test_the_whitespace_stripped_by_pyarrow_is_pythons():
  assert set(delimited.WHITESPACE) == {
      chr(c) for c in range(0x110000) if chr(c).isspace()}
