"""Exports (`flax_sentiment.usage.export`) and their loader (`exported`): scores
equal to predict's, with flax & co. unimportable; damage, another tokenizer
or format version, another platform refused in one line; out dirs."""

import functools
import gzip
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from flax_sentiment.data import tokenizer
from flax_sentiment.usage import export, exported, trained as trained_run
from flax_sentiment.runtime.errors import UserError
from tests.conftest import (REPO, one_error_line, predict_cli, run_fake,
                            snapshot, tiny_flags)

# Run kinds: the notebook's LSTM, a best_cpu-shaped bidirectional masked
# model (validation split: the validation-best checkpoint is exported) and a
# length-bucketed run.
KINDS = {
    "lstm": dict(),
    "bidirectional_masked": dict(bidirectional=True, mask_padding=True,
                                 padding="post", pooling="last+max+mean",
                                 validation_examples=32),
    "bucketed": dict(length_buckets=4, padding="post", mask_padding=True),
}
# Exported for these platforms (default: cpu).
PLATFORMS = {"bidirectional_masked": ("cpu", "cuda")}
# A dozen texts: punctuation, case, <br />, unknown words, none known, no
# words, longer than seq_len (16) at either end.
TEXTS = (
    "A wonderful, moving film. The acting was superb.",
    "Dull and boring. The worst movie.",
    "GREAT fun!<br /><br />Loved it",
    "it wasn't bad, it was awful",
    "zebra quantum xylophone",
    "!!!",
    " ".join(["great"] * 10 + ["boring"] * 30),
    "the plot " * 20 + "superb brilliant",
    "The end.",
    "good bad good bad good bad",
    "Terrible.<BR />Hated the story, the actor and the scene.",
    "loved loved loved it 10/10",
)
BLOCKED = ("flax", "orbax", "optax", "tensorflow_datasets", "tensorflow",
           "ml_collections")
# What the loader may import: the standard library, jax with the packages a
# plain `pip install jax` brings, and flatbuffers (jax.export's
# serialization format; jax does not require it). docs/usage.md states
# these as the export's requirements.
LOADER_REQUIREMENTS = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum",
                       "scipy", "flatbuffers")
# Installed first in the loader's subprocesses: importing any of `blocked`
# (top-level names, from argv[1]) fails, and so does any top-level module
# that is neither in the standard library nor in LOADER_REQUIREMENTS: a
# loader that needs more than the manifest says fails here as in a venv
# with only those packages.
BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv.pop(1)))
ALLOWED = set(sys.stdlib_module_names) | set(%r) | {"flax_sentiment"}
def allowed(name):
  top = name.split(".")[0]
  return top not in BLOCKED and (top in ALLOWED or top.startswith("_"))
class Gate(importlib.abc.MetaPathFinder):
  # The only finder: what is not allowed is simply not found (as in a venv
  # without it; importlib.util.find_spec answers None).
  def __init__(self, finders):
    self.finders = finders
  def find_spec(self, name, path=None, target=None):
    if not allowed(name):
      return None
    for finder in self.finders:
      spec = finder.find_spec(name, path, target)
      if spec is not None:
        return spec
    return None
sys.meta_path[:] = [Gate(list(sys.meta_path))]
def leaked():
  return sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
""" % (LOADER_REQUIREMENTS,)
# Loads flax_sentiment.exported: argv = blocked, export dir, texts (JSON).
PACKAGE_LOADER = BLOCKER + """
from flax_sentiment.usage import exported
texts = json.loads(sys.argv[2])
full = exported.load(sys.argv[1]).predict(texts)
in_fives = exported.load(sys.argv[1], batch_size=5).predict(iter(texts))
print(json.dumps({"p": full.tolist(), "p5": in_fives.tolist(),
                  "leaked": leaked()}))
"""
# Runs a copied exported.py as a script: argv = blocked, script, its args.
SCRIPT_LOADER = BLOCKER + """
import runpy
sys.argv = sys.argv[1:]
try:
  runpy.run_path(sys.argv[0], run_name="__main__")
finally:
  print(json.dumps({"leaked": leaked()}), file=sys.stderr)
"""
CPU = dict(os.environ, JAX_PLATFORMS="cpu")


def python(*args, cwd=REPO):
  return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                        capture_output=True, text=True, timeout=120, env=CPU)


def run_script(tmp_path, *args):
  """A copied exported.py run as a script, flax_sentiment unimportable
  too; (process, stderr without the leak report)."""
  proc = python("-c", SCRIPT_LOADER, json.dumps(BLOCKED + ("flax_sentiment",)),
                *args, cwd=tmp_path)
  lines = proc.stderr.strip().splitlines()
  reports = [line for line in lines if line.startswith('{"leaked": ')]
  assert [json.loads(line) for line in reports] == [{"leaked": []}], lines
  proc.stderr = "\n".join(line for line in lines if line not in reports)
  return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """kind -> (workdir, export dir), trained on fake IMDB and exported with
  the command line on first use."""
  root = tmp_path_factory.mktemp("export_runs")
  done = {}

  def get(kind):
    if kind not in done:
      workdir, out = root / kind, root / f"{kind}_export"
      proc = run_fake(tiny_flags(workdir, root / "cache", **KINDS[kind]))
      log, _ = proc.communicate(timeout=300)
      assert proc.returncode == 0, log
      flags = [f"--platform={p}" for p in PLATFORMS.get(kind, ())]
      proc = python("-m", "flax_sentiment.usage.export", f"--workdir={workdir}",
                    f"--out={out}", *flags)
      assert proc.returncode == 0, proc.stderr
      assert proc.stdout.startswith(f"Exported {workdir} to {out}")
      done[kind] = workdir, out
    return done[kind]
  return get


@functools.lru_cache
def predicted(workdir) -> np.ndarray:
  """predict's P(positive) of TEXTS (its --json command line)."""
  proc = predict_cli(f"--workdir={workdir}", "--json", *TEXTS)
  assert proc.returncode == 0, proc.stderr
  return np.array([json.loads(line)["probability_positive"]
                   for line in proc.stdout.splitlines()])


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_scores_as_predict_with_flax_unimportable(trained, kind):
  workdir, out = trained(kind)
  want = predicted(workdir)
  assert len(want) == len(TEXTS) and np.ptp(want) > 1e-4  # not constant
  proc = python("-c", PACKAGE_LOADER, json.dumps(BLOCKED), out,
                json.dumps(TEXTS))
  assert proc.returncode == 0, proc.stderr
  got = json.loads(proc.stdout)
  assert got["leaked"] == []
  np.testing.assert_allclose(got["p"], want, rtol=0, atol=1e-5)
  np.testing.assert_allclose(got["p5"], want, rtol=0, atol=1e-5)


def test_shipped_export_runs_alone(trained, tmp_path):
  """The directory moved elsewhere, its own exported.py run as a script
  with flax_sentiment unimportable too."""
  workdir, out = trained("bidirectional_masked")
  shipped = tmp_path / "shipped"
  shutil.copytree(out, shipped)
  proc = run_script(tmp_path, shipped / "exported.py", shipped, "--json",
                    *TEXTS)
  assert proc.returncode == 0, proc.stderr
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [line["text"] for line in lines] == list(TEXTS)
  np.testing.assert_allclose([line["probability_positive"] for line in lines],
                             predicted(workdir), rtol=0, atol=1e-5)
  # Streamed from a file, 5 at a time, after the arguments; plain lines.
  (tmp_path / "reviews.txt").write_text("\n\n".join(TEXTS[2:]) + "\n")
  proc = run_script(tmp_path, shipped / "exported.py", shipped, *TEXTS[:2],
                    "--file=reviews.txt", "--batch-size=5")
  assert proc.returncode == 0, proc.stderr
  assert [line.split()[:2] for line in proc.stdout.splitlines()] == [
      [f"{line['probability_positive']:.3f}", line["label"]]
      for line in lines]


def test_loader_and_predict_give_the_same_records(trained, tmp_path):
  """One record builder: the loader's --json and predict --json agree on
  every key and value (texts with no words or none known included)."""
  workdir, out = trained("lstm")
  proc = predict_cli(f"--workdir={workdir}", "--json", *TEXTS)
  assert proc.returncode == 0, proc.stderr
  want = [json.loads(line) for line in proc.stdout.splitlines()]
  proc = run_script(tmp_path, out / "exported.py", out, "--json", *TEXTS)
  assert proc.returncode == 0, proc.stderr
  got = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [g.keys() for g in got] == [w.keys() for w in want]
  assert any("warning" in w for w in want)  # "!!!" has no words
  for g, w in zip(got, want):
    assert g.pop("probability_positive") == pytest.approx(
        w.pop("probability_positive"), abs=1e-5)
    assert g == w


@pytest.mark.parametrize("content", [
    b"fine\n" + b"long " * 300_000 + b"\n",   # a 1.5 MB line
    b"fine\nnul \0 byte\n",                   # a binary file
    b"fine\ncaf\xe9\n",                       # Latin-1, not UTF-8
], ids=["long_line", "nul_byte", "latin1"])  # (the id goes into the env)
def test_loader_refuses_the_files_predict_refuses_with_its_line(
    trained, tmp_path, content):
  workdir, out = trained("lstm")
  (tmp_path / "reviews.txt").write_bytes(content)
  by_predict = predict_cli(f"--workdir={workdir}", "--file",
                           str(tmp_path / "reviews.txt"))
  by_loader = run_script(tmp_path, out / "exported.py", out, "--file",
                         str(tmp_path / "reviews.txt"))
  assert by_predict.returncode == by_loader.returncode == 1
  want = one_error_line(by_predict)
  assert "line 2" in want
  assert one_error_line(by_loader) == want


def test_manifest_describes_the_run_and_the_batch_is_symbolic(trained):
  workdir, out = trained("bidirectional_masked")
  manifest = json.loads((out / "export.json").read_text())
  config = json.loads((workdir / "config.json").read_text())
  assert manifest["format"] == "flax-sentiment-export"
  assert manifest["format_version"] == exported.FORMAT_VERSION
  assert manifest["tokenizer_version"] == tokenizer.TOKENIZER_VERSION
  assert manifest["config"] == config
  assert manifest["platforms"] == ["cpu", "cuda"]
  assert {k: manifest["tokenization"][k] for k in
          ("seq_len", "padding", "truncating")} == {
              "seq_len": 16, "padding": "post", "truncating": "pre"}
  assert manifest["checkpoint"]["which"] == "best_checkpoint"
  assert sorted(manifest["files"]) == ["exported.py", "model.jax_export",
                                       "vocab.json"]
  for name, digest in manifest["files"].items():
    assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
  assert (out / "exported.py").read_bytes() == (
      REPO / "flax_sentiment" / "usage" / "exported.py").read_bytes()
  assert json.loads((out / "vocab.json").read_text())["words"] == (
      tokenizer.load_vocabulary(workdir / "vocab.json"))
  function = jax.export.deserialize(
      bytearray((out / "model.jax_export").read_bytes()))
  (aval,) = function.in_avals
  assert not isinstance(aval.shape[0], int) and aval.shape[1] == 16
  assert function.platforms == ("cpu", "cuda")
  model = exported.load(out)
  for rows in (1, 3, 7):  # any batch size
    assert model.predict(TEXTS[:rows]).shape == (rows,)
  assert model.predict([]).shape == (0,)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_loader_tokenizes_as_training(padding, truncating):
  assert exported.TOKENIZER_VERSION == tokenizer.TOKENIZER_VERSION
  texts = TEXTS + ("Ünïcode café <br/>it's", "a\tb\nc", "", "don't 'quote'")
  for text in texts:
    assert exported.tokenize(text) == tokenizer.tokenize(text)
    assert exported.tokenize(text.encode()) == tokenizer.tokenize(text.encode())
  vocabulary = ["the", "great", "it's", "don't", "boring", "10", "a"]
  config = types.SimpleNamespace(tokenizer="english", seq_len=6,
                                 padding=padding, truncating=truncating)
  ids = {w: i + 2 for i, w in enumerate(vocabulary)}
  np.testing.assert_array_equal(
      exported.encode(texts, ids, 6, padding, truncating),
      trained_run.encode_texts(texts, vocabulary, config))


def test_loader_encodes_real_reviews_as_training():
  """The loader's standalone copy of the text rule equals data/tokenizer on
  400 real IMDB reviews (HTML breaks, U+0085, accents, long ones), with a
  vocabulary from 300 of them and every padding and truncating side."""
  path = REPO.parent / "shared" / "data" / "imdb" / "imdb_train.jsonl.gz"
  if not path.exists():
    pytest.skip(f"{path} is not here")
  with gzip.open(path, "rt", encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in itertools.islice(f, 400)]
  vocabulary = tokenizer.build_vocabulary(
      (tokenizer.tokenize(t) for t in texts[:300]), 2_000)
  ids = tokenizer.word_ids(vocabulary)
  assert len(vocabulary) == 1_998
  for text in texts:
    assert exported.tokenize(text) == tokenizer.tokenize(text)
  for padding in ("pre", "post"):
    for truncating in ("pre", "post"):
      config = types.SimpleNamespace(tokenizer="english", seq_len=200,
                                     padding=padding, truncating=truncating)
      want = tokenizer.texts_to_ids(texts, ids, config)
      assert (want == tokenizer.OOV_ID).any() and (want == 0).any()
      np.testing.assert_array_equal(
          exported.encode(texts, ids, 200, padding, truncating), want)


def flip_model_byte(out):
  path = out / "model.jax_export"
  content = bytearray(path.read_bytes())
  content[len(content) // 2] ^= 0x01
  path.write_bytes(bytes(content))


def change_vocabulary(out):
  path = out / "vocab.json"
  vocab = json.loads(path.read_text())
  vocab["words"][0], vocab["words"][1] = vocab["words"][1], vocab["words"][0]
  path.write_text(json.dumps(vocab))


def change_seq_len(out):
  path = out / "export.json"
  manifest = json.loads(path.read_text())
  manifest["tokenization"]["seq_len"] = 32
  path.write_text(json.dumps(manifest))


def remove_model(out):
  (out / "model.jax_export").unlink()


@pytest.mark.parametrize("damage", [flip_model_byte, change_vocabulary,
                                    change_seq_len, remove_model])
def test_damaged_export_is_refused_in_one_line(trained, damage, tmp_path):
  _, out = trained("lstm")
  damaged = tmp_path / "damaged"
  shutil.copytree(out, damaged)
  damage(damaged)
  with pytest.raises(exported.ExportError) as caught:
    exported.load(damaged)
  message = str(caught.value)
  assert isinstance(caught.value, ValueError) and "\n" not in message
  assert message.startswith(f"export {damaged} is damaged (")
  assert "export the run again" in message
  proc = run_script(tmp_path, out / "exported.py", damaged, "Great film.")
  assert one_error_line(proc) == f"error: {message}" and not proc.stdout


def rewrite_manifest(out, **fields):
  """Sets manifest fields, with a matching digest: an export as another
  version of flax-sentiment would write it."""
  path = out / "export.json"
  manifest = dict(json.loads(path.read_text()), **fields)
  manifest["digest"] = exported.manifest_digest(manifest)
  path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("field,value,words", [
    ("tokenizer_version", 3, "was tokenized with tokenizer version 3, this "
     "loader implements versions 1 and 2"),
    ("format_version", 3, "has format version 3; this loader reads versions "
     "1 and 2")])
def test_another_version_is_refused_in_one_line(trained, field, value, words,
                                                tmp_path):
  _, out = trained("lstm")
  other = tmp_path / "other"
  shutil.copytree(out, other)
  rewrite_manifest(other, **{field: value})
  with pytest.raises(exported.ExportError,
                     match=f"^export {other} {words}") as caught:
    exported.load(other)
  assert "exported.py saved in" in str(caught.value)
  proc = run_script(tmp_path, out / "exported.py", other, "Great film.")
  assert one_error_line(proc) == f"error: {caught.value}"


def test_missing_export_and_no_texts_are_one_line(trained, tmp_path):
  _, out = trained("lstm")
  proc = run_script(tmp_path, out / "exported.py", tmp_path / "nope", "Hi.")
  assert "does not exist" in one_error_line(proc)
  proc = run_script(tmp_path, out / "exported.py", tmp_path, "Hi.")
  assert "is not a flax-sentiment export" in one_error_line(proc)
  proc = run_script(tmp_path, out / "exported.py", out)
  assert "no texts given" in one_error_line(proc)


def test_export_refuses_a_directory_that_is_no_export(trained, tmp_path):
  workdir, _ = trained("lstm")
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  proc = python("-m", "flax_sentiment.usage.export", f"--workdir={workdir}",
                f"--out={out}")
  line = one_error_line(proc)
  assert line.startswith(f"error: --out {out} is not empty and holds no "
                         f"export")
  assert [p.name for p in out.iterdir()] == ["notes.txt"]
  assert [p.name for p in tmp_path.iterdir()] == ["out"]
  proc = python("-m", "flax_sentiment.usage.export",
                f"--workdir={tmp_path / 'nope'}", f"--out={tmp_path / 'x'}")
  assert "does not exist" in one_error_line(proc)
  assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_export_leaves_the_earlier_one_and_a_new_one_replaces_it(
    trained, tmp_path, monkeypatch):
  workdir, out = trained("lstm")
  target = tmp_path / "export"
  shutil.copytree(out, target)
  before = snapshot(target)

  def crash(*args, **kwargs):
    raise RuntimeError("crashed while writing")
  with monkeypatch.context() as patch:
    patch.setattr(export, "manifest", crash)
    with pytest.raises(RuntimeError, match="crashed while writing"):
      export.export_model(workdir, target)
  assert snapshot(target) == before
  assert [p.name for p in tmp_path.iterdir()] == ["export"]
  assert export.export_model(workdir, target) == target
  assert [p.name for p in tmp_path.iterdir()] == ["export"]
  assert snapshot(target) != before
  np.testing.assert_allclose(exported.load(target).predict(TEXTS),
                             exported.load(out).predict(TEXTS), atol=1e-6)
  # An empty directory is filled too.
  empty = tmp_path / "empty"
  empty.mkdir()
  export.export_model(workdir, empty)
  assert exported.load(empty).seq_len == 16
  with pytest.raises(UserError, match="--platform tpuu: pass one or more"):
    export.export_model(workdir, tmp_path / "bad", platforms=("tpuu",))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU only")
def test_export_for_another_platform_is_refused_here(trained, tmp_path):
  workdir, _ = trained("lstm")
  out = export.export_model(workdir, tmp_path / "cuda", platforms=("cuda",))
  with pytest.raises(exported.ExportError) as caught:
    exported.load(out)
  assert str(caught.value) == (
      f"export {out} was made for cuda, this machine runs cpu; export the "
      f"run again with --platform cpu")


def test_pallas_run_exports_the_xla_loop(trained, tmp_path):
  """A run trained with implementation='pallas' (Hopper GPUs) exports the
  XLA loop: the same parameters, the same scores, on any platform."""
  workdir, out = trained("lstm")
  pallas_run = tmp_path / "run"
  shutil.copytree(workdir, pallas_run)
  config_file = pallas_run / "config.json"
  config = json.loads(config_file.read_text())
  config["implementation"] = "pallas"
  config_file.write_text(json.dumps(config))
  said = []
  target = export.export_model(pallas_run, tmp_path / "export",
                               platforms=("cpu", "cuda"), say=said.append)
  assert len(said) <= 1 and all("XLA loop" in line for line in said)
  manifest = json.loads((target / "export.json").read_text())
  assert manifest["config"]["implementation"] == "pallas"
  assert manifest["function"]["implementation"] == "hoisted (XLA loop)"
  np.testing.assert_allclose(exported.load(target).predict(TEXTS),
                             exported.load(out).predict(TEXTS), atol=1e-6)
