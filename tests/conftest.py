"""Shared fixtures: tiny configs, fake and real data."""

import gc
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import jax
import pytest

import flax_sentiment  # noqa: F401  (makes a relative TFDS_DATA_DIR absolute)

from flax_sentiment.configs import default

# Equivalence tests compare float32 results at ~1e-5. On GPUs JAX's default
# float32 matmul precision is TF32 (~1e-3 relative), so pin full precision
# for every in-process test; runs in subprocesses use JAX_PLATFORMS=cpu.
jax.config.update("jax_default_matmul_precision", "highest")

# The tests' token, word2vec and compilation caches go to a folder of their
# own (shared by this session's tests, subprocesses included), never into
# the user's FLAX_SENTIMENT_CACHE.
TEST_CACHE = tempfile.mkdtemp(prefix="flax_sentiment_test_cache_")
os.environ["FLAX_SENTIMENT_CACHE"] = TEST_CACHE
# In-process tests load executables they compiled before (as run.py does).
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(TEST_CACHE, "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

# Tests press Ctrl-C (SIGINT) on the commands they start, as a terminal
# would. A suite started in the background by a non-interactive shell
# (`pytest &`, CI scripts) inherits SIGINT ignored, and so would those
# commands (Python keeps an inherited SIG_IGN): Ctrl-C restored here.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
  signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _young_garbage_only():
  """Each test starts with the objects of the tests before it frozen out of
  the garbage collector: the project's full `gc.collect()` after library
  calls (`quiet.quiet_library`) then scans only what this test made,
  instead of ~0.25 s over the whole suite's heap each time."""
  gc.collect()
  gc.freeze()
  yield


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(TEST_CACHE, ignore_errors=True)

REPO = pathlib.Path(__file__).parents[1]
REAL_DATA_DIR = os.environ.get("TFDS_DATA_DIR", str(REPO.parent / "shared" /
                                                    "tensorflow_datasets"))


def tiny_config(**overrides):
  """A config small enough to train in seconds on fake data."""
  config = default.get_config()
  config.update(dict(num_words=64, embed_dim=8, hidden_dim=8, seq_len=16,
                     batch_size=8, eval_batch_size=16, num_epochs=2,
                     steps_per_call=4, checkpoint_every_steps=8))
  config.update(overrides)
  return config


def tiny_flags(workdir, cache_dir, **overrides) -> list[str]:
  """Command-line flags for run.py with tiny_config's sizes."""
  fields = dict(num_words=64, embed_dim=8, hidden_dim=8, seq_len=16,
                batch_size=8, eval_batch_size=16, num_epochs=2,
                steps_per_call=4, checkpoint_every_steps=8,
                cache_dir=str(cache_dir))
  fields.update(overrides)
  return ["--config", str(REPO / "configs" / "default.py"),
          f"--workdir={workdir}"] + [f"--config.{k}={v}"
                                     for k, v in fields.items()]


def run_fake(flags, num_train=256, num_test=128, env=None, **popen):
  """Starts run.py on fake IMDB in a subprocess (a Popen)."""
  full_env = dict(os.environ, FAKE_IMDB_TRAIN=str(num_train),
                  FAKE_IMDB_TEST=str(num_test), JAX_PLATFORMS="cpu",
                  PYTHONUNBUFFERED="1", **(env or {}))
  return subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_imdb.py"),
                           *flags], cwd=REPO, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **popen)


@pytest.fixture
def fake_imdb():
  from tests.fake_imdb import mock_imdb
  with mock_imdb():
    yield


@pytest.fixture(scope="session")
def real_data_dir():
  path = pathlib.Path(REAL_DATA_DIR) / "imdb_reviews" / "plain_text" / "1.0.0"
  if not path.exists():
    pytest.skip(f"real IMDB data not found at {path}; set TFDS_DATA_DIR to a "
                f"folder holding imdb_reviews/ (e.g. ../shared/tensorflow_datasets)")
  return REAL_DATA_DIR


def run_py(*args, timeout=120, env=None):
  """run.py in a subprocess (a CompletedProcess)."""
  return subprocess.run([sys.executable, "run.py", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env=env)


def predict_cli(*args, stdin=None):
  """python -m flax_sentiment.usage.predict in a subprocess, on the CPU."""
  return subprocess.run([sys.executable, "-m", "flax_sentiment.usage.predict",
                         *args], cwd=REPO, capture_output=True, text=True,
                        timeout=120, input=stdin,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def one_error_line(proc) -> str:
  """The single `error:` line a failed command printed (asserted)."""
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: ")
  return lines[0]


def snapshot(path) -> dict:
  """{name: (sha256, mtime)} of every file below `path` (directories by
  name): equal snapshots mean nothing was written, moved or created."""
  return {str(p.relative_to(path)): (
      (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
      if p.is_file() else "dir") for p in sorted(path.rglob("*"))}
