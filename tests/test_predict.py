"""Prediction from a workdir: streamed batch by batch, one `error:` line for
a damaged checkpoint (nothing falls back silently, no library traceback),
for weights that are not finite and for a --file that is not UTF-8 text;
echoed text never carries control characters; --explain."""

import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from flax_sentiment.tracking import checkpoints
from flax_sentiment.usage import predict, trained
from tests.conftest import (REPO, one_error_line, predict_cli, run_fake,
                            tiny_flags)

TEXTS = ("great wonderful superb film", "awful boring dull movie")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A 2-epoch fake-data run without validation: checkpoints at the last
  two checkpoint steps."""
  root = tmp_path_factory.mktemp("finished")
  proc = run_fake(tiny_flags(root / "run", root / "cache", num_epochs=2))
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  return root / "run"


def damage(checkpoint, how: str) -> None:
  """Truncates every file of the checkpoint's state, or overwrites 2,000
  bytes of each of its data files with random bytes."""
  rng = np.random.default_rng(0)
  for path in sorted((checkpoint / "state").rglob("*")):
    if not path.is_file():
      continue
    content = bytearray(path.read_bytes())
    if how == "truncate":
      path.write_bytes(bytes(content[: len(content) // 2]))
    elif "/d/" in str(path):
      start = max(0, len(content) // 2 - 1000)
      content[start:start + 2000] = rng.bytes(len(content[start:start + 2000]))
      path.write_bytes(bytes(content))


def scores(proc) -> list[str]:
  return [line.split()[0] for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("how", ["truncate", "scramble"])
def test_damaged_newest_checkpoint_is_refused_or_named(finished, how,
                                                       tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  newest, previous = steps[-1], steps[-2]
  # What the previous checkpoint scores, from a copy that has only it.
  only_previous = tmp_path / "previous"
  shutil.copytree(finished, only_previous)
  shutil.rmtree(only_previous / "checkpoints" / str(newest))
  want = predict_cli(f"--workdir={only_previous}", *TEXTS)
  assert want.returncode == 0, want.stderr
  newest_scores = predict_cli(f"--workdir={workdir}", *TEXTS)
  assert scores(newest_scores) != scores(want)  # the two really differ
  damage(workdir / "checkpoints" / str(newest), how)

  refused = predict_cli(f"--workdir={workdir}", *TEXTS)
  assert refused.returncode == 1 and not refused.stdout
  lines = refused.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
  assert f"newest checkpoint (step {newest})" in lines[0]
  assert f"--fallback to use the previous one (step {previous})" in lines[0]

  fallen_back = predict_cli(f"--workdir={workdir}", "--fallback", *TEXTS)
  assert fallen_back.returncode == 0, fallen_back.stderr
  lines = fallen_back.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: "), lines
  assert f"step {newest}" in lines[0] and f"(step {previous})" in lines[0]
  assert scores(fallen_back) == scores(want)
  for proc in (refused, fallen_back):
    assert "Traceback" not in proc.stdout + proc.stderr
  # Nothing was moved: predict reads only.
  assert (workdir / "checkpoints" / str(newest)).is_dir()
  assert not (workdir / "corrupt_checkpoints").exists()


def test_missing_workdir_is_named(tmp_path):
  proc = predict_cli(f"--workdir={tmp_path / 'nope'}", "Nice.")
  assert proc.returncode == 1
  assert proc.stderr.strip() == (f"error: workdir {tmp_path / 'nope'} does "
                                 f"not exist; pass the --workdir of a run.py "
                                 f"run")


def test_pallas_workdir_predicts_with_the_xla_loop_and_says_so(finished,
                                                               tmp_path):
  """A run trained with implementation='pallas' (on a Hopper GPU) predicts
  on a CPU with the XLA loop: the same parameters, one warning line."""
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  config_file = workdir / "config.json"
  config = json.loads(config_file.read_text())
  config["implementation"] = "pallas"
  config_file.write_text(json.dumps(config))
  want = predict_cli(f"--workdir={finished}", *TEXTS)
  got = predict_cli(f"--workdir={workdir}", *TEXTS)
  assert got.returncode == 0, got.stderr
  lines = got.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: "), lines
  assert "implementation='pallas'" in lines[0] and "XLA loop" in lines[0]
  assert got.stdout == want.stdout


def outputs(proc) -> list[str]:
  """The echoed texts of predict's plain output lines."""
  return [line.split(None, 2)[2] for line in proc.stdout.splitlines()]


def test_stdin_is_scored_batch_by_batch_while_it_is_still_open(finished):
  """A stream is read, scored and printed a batch at a time: the first
  batch's results come out while stdin is still open (all-at-once reading
  would wait for its end), and the results are those of the same texts
  given at once."""
  texts = [f"{w} film number {i}" for i, w in
           enumerate(["great", "awful", "superb", "boring"] * 3)]
  proc = subprocess.Popen(
      [sys.executable, "-m", "flax_sentiment.usage.predict",
       f"--workdir={finished}", "--file", "-", "--batch-size", "4"],
      cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    proc.stdin.write("".join(t + "\n" for t in texts[:6]))
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 90)
    assert ready, "no output while stdin stayed open"
    first = [proc.stdout.readline() for _ in range(4)]
    assert proc.poll() is None  # still waiting for the rest
    rest, errors = proc.communicate("".join(t + "\n" for t in texts[6:]),
                                    timeout=90)
  finally:
    proc.kill()
  assert proc.returncode == 0, errors
  streamed = "".join(first) + rest
  at_once = predict_cli(f"--workdir={finished}", *texts)
  assert streamed == at_once.stdout
  assert len(streamed.splitlines()) == len(texts)


def test_batched_takes_items_only_as_each_batch_is_asked_for():
  taken = []

  def lines():
    for i in range(10):
      taken.append(i)
      yield str(i)

  batches = predict.batched(lines(), 4)
  assert next(batches) == ["0", "1", "2", "3"] and len(taken) == 4
  assert list(batches) == [["4", "5", "6", "7"], ["8", "9"]]


def with_params(finished, tmp_path, change) -> pathlib.Path:
  """A copy of `finished` whose newest checkpoint holds `change(params)`
  (saved as training saves, digest included)."""
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  _, _, state, meta = trained.load_trained_state(workdir)
  state = state.replace(params=change(state.params))
  step = max(int(p.name) for p in (workdir / "checkpoints").iterdir()
             if p.name.isdigit())
  shutil.rmtree(workdir / "checkpoints" / str(step))
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints", keep=10)
  try:
    ckpts.save(step, state, meta)
  finally:
    ckpts.close()
  return workdir


def nan_params(params):
  """Every weight NaN, as a diverged run leaves them."""
  return jax.tree.map(lambda x: np.full_like(x, np.nan), params)


def huge_params(params):
  """Finite weights whose logit overflows to +inf: the LSTM's gates open
  (kernels 0, biases 10: every hidden unit ~ +1), the dense layer's weights
  3e38."""
  def change(path, x):
    names = [getattr(k, "key", "") for k in path]
    if names[0].startswith("rnn"):
      return np.zeros_like(x) if names[-1] == "kernel" else np.full_like(
          x, 10.0)
    return np.full_like(x, 3e38) if names[0] == "dense" else x
  return jax.tree_util.tree_map_with_path(change, params)


@pytest.mark.parametrize("change", [nan_params, huge_params])
def test_weights_that_are_not_finite_give_one_error_no_scores(
    finished, tmp_path, change):
  workdir = with_params(finished, tmp_path, change)
  assert (trained.first_non_finite(trained.load_trained_state(workdir)[2]
                                   .params) is None) == (change is huge_params)
  for flags in ([], ["--json"], ["--explain"]):
    proc = predict_cli(f"--workdir={workdir}", *flags, *TEXTS)
    line = one_error_line(proc)
    assert proc.returncode == 1 and not proc.stdout
    assert str(workdir) in line and "not finite" in line
    assert "diverged" in line and "smaller --config.learning_rate" in line
    assert "Traceback" not in proc.stderr


def test_a_binary_file_is_refused_naming_it_and_its_line(finished):
  binary = sys.executable  # an executable: NUL bytes in its first line
  proc = predict_cli(f"--workdir={finished}", "--file", binary)
  line = one_error_line(proc)
  assert not proc.stdout
  assert f"--file {binary} is not text: line 1 holds a NUL byte" in line


@pytest.mark.parametrize("content, line_number, what", [
    (b"great film\n\nawful \xff\xfe film\n", 3,
     "is not UTF-8 text at line 3 (byte 0xff at column 7)"),
    ("great film\nawful film\n".encode("utf-16"), 1, "holds a NUL byte"),
], ids=["latin-1", "utf-16"])
def test_undecodable_bytes_are_refused_with_file_and_line(
    finished, tmp_path, content, line_number, what):
  path = tmp_path / "reviews.txt"
  path.write_bytes(content)
  proc = predict_cli(f"--workdir={finished}", "--file", str(path))
  line = one_error_line(proc)
  assert not proc.stdout  # nothing scored from a file that is not text
  assert f"--file {path} " in line and f"line {line_number}" in line
  assert what in line
  from_stdin = subprocess.run(
      [sys.executable, "-m", "flax_sentiment.usage.predict",
       f"--workdir={finished}", "--file", "-"], cwd=REPO, input=content,
      capture_output=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert from_stdin.returncode == 1 and not from_stdin.stdout
  lines = from_stdin.stderr.decode().strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: stdin (--file -) ")
  assert f"line {line_number}" in lines[0] and what in lines[0]


def test_echoed_text_holds_no_control_characters(finished, tmp_path):
  nasty = ("great \x1b[2J\x1b]0;pwned\x07film\rwith a\x08 \u202etwist",
           "\x1b[31m\x1b[0m")  # the second: no words, a warning echoes it
  path = tmp_path / "reviews.txt"
  path.write_text("\n".join(nasty) + "\n", encoding="utf-8")
  for proc in (predict_cli(f"--workdir={finished}", *nasty),
               predict_cli(f"--workdir={finished}", "--file", str(path))):
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert "warning: " in proc.stderr
    for stream in (proc.stdout, proc.stderr):
      assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", stream), stream
    assert "great" in proc.stdout and "twist" in proc.stdout


def test_explain_prints_contributions_that_add_up(finished):
  long_text = " ".join(["film"] * 20 + ["great"])  # seq_len 16: 5 not read
  texts = ("great wonderful superb film", "awful boring zzzunknown", long_text)
  proc = predict_cli(f"--workdir={finished}", "--explain", "--json", *texts)
  assert proc.returncode == 0, proc.stderr
  records = [json.loads(line) for line in proc.stdout.splitlines()]
  plain = predict_cli(f"--workdir={finished}", *texts)
  for record, line, text in zip(records, plain.stdout.splitlines(), texts):
    assert record["text"] == text
    assert f"{record['probability_positive']:.3f}" == line.split()[0]
    words = [c["word"] for c in record["contributions"]]
    assert words == text.split()
    read = [c for c in record["contributions"] if c["read"]]
    total = sum(c["contribution"] for c in read)
    change = record["logit"] - record["baseline_logit"]
    assert total == pytest.approx(change, rel=0.01, abs=1e-4)
    assert record["steps"] == 64 and record["baseline"] == "zero"
  unread = [c for c in records[2]["contributions"] if not c["read"]]
  assert len(unread) == 5 and all(c["contribution"] is None for c in unread)
  assert records[2]["contributions"][:5] == unread  # the last 16 are read
  assert [c["known"] for c in records[1]["contributions"]] == [True, True,
                                                               False]

  text = predict_cli(f"--workdir={finished}", "--explain-steps", "16",
                     *texts)
  assert text.returncode == 0, text.stderr
  lines = text.stdout.splitlines()
  assert len(lines) == 2 * len(texts) and "\x1b" not in text.stdout
  assert lines[0::2] == plain.stdout.splitlines()  # the same scores
  assert re.match(r"  great\[[+-]\d\.\d\d\] wonderful\[[+-]\d\.\d\d\] "
                  r"superb\[[+-]\d\.\d\d\] film\[[+-]\d\.\d\d\]  \(logit ",
                  lines[1]), lines[1]
  assert lines[5].startswith("  [5 words not read] film[")


def test_explain_needs_one_workdir(finished):
  proc = predict_cli(f"--workdir={finished}", f"--workdir={finished}",
                     "--explain", "great")
  assert "--explain explains one model" in one_error_line(proc)


def test_predictor_api_scores_and_explains(finished):
  predictor = trained.load_predictor(finished, batch_size=2)
  texts = ["great wonderful superb film", "awful boring dull movie", "film"]
  probabilities = predictor(texts)
  assert probabilities.shape == (3,)
  np.testing.assert_allclose(trained.load_predictor(finished)(texts),
                             probabilities, rtol=1e-6)  # batching changes nothing
  explanations = predictor.explain(texts, steps=32)
  np.testing.assert_allclose([e.probability for e in explanations],
                             probabilities, rtol=1e-5)
  np.testing.assert_allclose(predictor.logits(texts),
                             [e.logit for e in explanations], rtol=1e-5)
