"""Config files load and build; every bad field is refused before any work."""

import importlib.util
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from flax_sentiment.model import classifier
from flax_sentiment.training.checks import check_batch_divides, validate_config
from flax_sentiment.runtime.errors import ConfigError
from tests.conftest import REPO, tiny_config

CONFIG_FILES = sorted((REPO / "configs").glob("[!_]*.py"))


def load(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_file_loads_validates_and_builds(path):
  config = load(path)
  validate_config(config)
  # IMDB's star ratings: 8 classes (1-4, 7-10), or 4 bins of them.
  classes = {"ratings": 8, "ratings4": 4}.get(path.stem, 2)
  model = classifier.model_from_config(config, classes)
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, config.seq_len), jnp.int32))["params"]
  if path.stem in ("best_cpu", "best", "ratings", "ratings4"):
    # 30,000 x 256, BiLSTM(128), pooled; Dense(1), or Dense(K) for K classes
    cell = 4 * (256 * 128 + 128 * 128 + 128)
    outputs = 1 if classes == 2 else classes
    expected = 30_000 * 256 + 2 * cell + (3 * 2 * 128 + 1) * outputs
  elif path.stem == "region_cnn":
    # 30,000 x 1,000 region layer and its bias; the fixed region embedding
    # (30,000 x 100 and 100); its projection 100 x 1,000; Dense(1)
    expected = (30_000 * 1000 + 1000 + 30_000 * 100 + 100 + 100 * 1000
                + 1000 + 1)
  else:  # the notebook's sizes
    expected = {"rnn": 2_609_409, "lstm": 2_757_249,
                "gru": 2_708_097}[config.cell]
  assert classifier.count_params(params) == expected


def test_notebook_settings():
  for name, cell in (("rnn", "rnn"), ("lstm", "lstm")):
    c = load(REPO / "configs" / f"{name}.py")
    assert (c.cell, c.num_words, c.embed_dim, c.hidden_dim, c.batch_size,
            c.num_epochs, c.learning_rate, c.padding, c.truncating,
            c.seq_len) == (cell, 10_000, 256, 128, 32, 5, 1e-3, "pre", "pre", 64)


BAD_FIELDS = [
    ("cell", "cnn", "rnn, lstm, gru"),
    ("padding", "middle", "pre, post"),
    ("truncating", "both", "pre, post"),
    ("dtype", "float16", "float32, bfloat16"),
    ("implementation", "cuda", "hoisted, stock, pallas"),
    ("seq_len", 0, "positive integer"),
    ("embed_dim", -4, "positive integer"),
    ("hidden_dim", 0, "positive integer"),
    ("batch_size", 0, "positive integer"),
    ("batch_size", -32, "positive integer"),
    ("num_epochs", 0, "positive integer"),
    ("steps_per_call", 0, "positive integer"),
    ("num_words", 2, "at least 3"),
    ("num_words", 0, "positive integer"),
    ("learning_rate", 0.0, "finite number > 0"),
    ("learning_rate", -1e-3, "finite number > 0"),
    ("learning_rate", math.inf, "finite number > 0"),
    ("learning_rate", math.nan, "finite number > 0"),
    ("max_train_examples", -1, "positive integer, or None"),
    ("max_test_examples", -5, "positive integer, or None"),
    ("length_buckets", -1, "0 (off)"),
    ("keep_checkpoints", 0, "positive integer"),
    ("checkpoint_every_steps", 0, "positive integer"),
    ("pooling", "max+median", "last, max, mean"),
    ("pooling", "max", "needs masked padding"),
    ("bidirectional", True, "needs masked padding"),
    ("dropout", 1.0, "probability in [0, 1)"),
    ("embed_dropout", -0.1, "probability in [0, 1)"),
    ("weight_decay", -1e-4, "number >= 0"),
    ("clip_grad_norm", math.nan, "number >= 0"),
    ("lr_schedule", "step", "constant, cosine, linear"),
    ("pretrained_embeddings", "glove", "none, word2vec"),
    ("num_layers", 0, "positive integer"),
    ("validation_examples", -1, "0 (off)"),
    ("early_stopping_patience", 2, "needs a validation split"),
    ("progress_every_seconds", -1.0, "number >= 0"),
]


@pytest.mark.parametrize("field,value,allowed", BAD_FIELDS)
def test_bad_field_is_named_with_value_and_what_is_allowed(field, value,
                                                           allowed):
  config = tiny_config()
  config[field] = value
  with pytest.raises(ConfigError) as error:
    validate_config(config)
  message = str(error.value)
  assert f"config.{field}=" in message and allowed in message
  assert str(value) in message or repr(value) in message


def test_length_buckets_need_post_padding_and_masking():
  with pytest.raises(ConfigError, match="padding=post"):
    validate_config(tiny_config(length_buckets=4))
  validate_config(tiny_config(length_buckets=4, padding="post",
                              mask_padding=True))


def test_unroll_needs_unmasked_loops():
  with pytest.raises(ConfigError, match="config.unroll=4 .*--config.unroll=1"):
    validate_config(tiny_config(unroll=4, mask_padding=True))
  validate_config(tiny_config(unroll=4))
  validate_config(tiny_config(unroll=1, mask_padding=True))


def test_batch_must_divide_over_devices():
  with pytest.raises(ConfigError, match="batch_size=12 .* 8 devices"):
    check_batch_divides(tiny_config(batch_size=12), 8)
  check_batch_divides(tiny_config(batch_size=16), 8)


@pytest.mark.parametrize("flag,message", [
    ("--config.seq_lenght=64",
     "error: unknown config field 'seq_lenght' (did you mean 'seq_len'?)"),
    ("--config.cell=cnn", "error: config.cell='cnn' is not allowed"),
    ("--config.batch_size=0", "error: config.batch_size=0 must be a positive"),
    ("--config.seq_len=abc", "error: bad command line: flag --config.seq_len=abc"),
])
def test_run_py_prints_one_error_line_and_exits_nonzero(flag, message,
                                                        tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.run([sys.executable, "run.py", "--config",
                         "configs/lstm.py", flag, f"--workdir={workdir}"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
  assert proc.stderr.startswith(message), proc.stderr
  assert not workdir.exists()  # refused before anything was written
