"""Runs and exports made before the package moved into role folders
(tests/fixtures/legacy, made by tests/fixtures/make_legacy_runs.py at
commit 43982ca) still predict as they did then, resume and load."""

import fcntl
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "legacy"
# Where the fixture was written: its configs record these absolute paths.
PLACE = pathlib.Path("/tmp/flax_sentiment_legacy_runs")
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def legacy():
  """The fixture, copied back to where it was made (one test at a time)."""
  with open(f"{PLACE}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    shutil.rmtree(PLACE, ignore_errors=True)
    shutil.copytree(FIXTURE, PLACE)
    yield PLACE
    shutil.rmtree(PLACE, ignore_errors=True)


def command(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300,
                        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin",
                             "PYTHONPATH": str(REPO),
                             "FLAX_SENTIMENT_CACHE": str(cwd / "cache")})


def assert_same_records(got: list[dict], want: list[dict]) -> None:
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.keys() == w.keys()
    for key, value in w.items():
      if isinstance(value, float):
        assert g[key] == pytest.approx(value, abs=1e-5), key
      else:
        assert g[key] == value, key


@pytest.mark.parametrize("workdir", ["lstm", "ngrams", "paragraph_vectors"])
def test_old_run_predicts_as_it_did(legacy, workdir):
  proc = command("flax_sentiment.usage.predict", f"--workdir={workdir}", "--json",
                 *EXPECTED["texts"], cwd=legacy)
  assert proc.returncode == 0, proc.stderr
  got = [json.loads(line) for line in proc.stdout.splitlines()]
  assert_same_records(got, EXPECTED["predict"][workdir])


def test_old_run_loads_through_the_documented_api(legacy):
  from flax_sentiment.usage.predict import load_predictor  # pylint: disable=g-import-not-at-top
  probabilities = load_predictor(legacy / "paragraph_vectors")(
      EXPECTED["texts"])
  want = [r["probability_positive"]
          for r in EXPECTED["predict"]["paragraph_vectors"]]
  np.testing.assert_allclose(probabilities, want, atol=1e-5)


def test_old_export_loads_and_scores_as_predict_did(legacy):
  from flax_sentiment.usage import exported  # pylint: disable=g-import-not-at-top
  model = exported.load(legacy / "lstm_export")
  want = [r["probability_positive"] for r in EXPECTED["predict"]["lstm"]]
  np.testing.assert_allclose(model.predict(EXPECTED["texts"]), want,
                             atol=1e-5)


def test_old_run_resumes_and_trains_on(legacy):
  before = (legacy / "lstm" / "metrics.jsonl").read_text().splitlines()
  proc = command("flax_sentiment.cli", "train", "--config", "lstm",
                 *_flags_of(legacy / "lstm" / "config.json"),
                 "--config.num_epochs=2", "--workdir=lstm", cwd=legacy)
  assert proc.returncode == 0, proc.stderr
  after = (legacy / "lstm" / "metrics.jsonl").read_text().splitlines()
  assert after[:len(before)] == before
  assert [json.loads(line)["epoch"] for line in after] == [1, 2]


def _flags_of(config_json: pathlib.Path) -> list[str]:
  """--config.FIELD=VALUE for every field of a saved config.json that
  is set (the unset ones are None in every named config too)."""
  config = json.loads(config_json.read_text())
  return [f"--config.{key}={value}" for key, value in config.items()
          if value is not None and key != "num_epochs"]


def test_old_text_model_run_is_not_refit(legacy):
  model = legacy / "ngrams" / "ngram_model.npz"
  before = model.read_bytes()
  proc = command("flax_sentiment.cli", "train", "--config", "ngrams",
                 *_flags_of(legacy / "ngrams" / "config.json"),
                 "--config.num_epochs=1", "--workdir=ngrams", cwd=legacy)
  assert proc.returncode == 0, proc.stderr
  assert model.read_bytes() == before
