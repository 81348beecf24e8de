"""What may change when a run continues in its workdir: every config field,
changed one at a time between two tiny runs."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from flax_sentiment.configuration import fields
from flax_sentiment.tracking import rundir
from flax_sentiment.training import loop, train_steps
from flax_sentiment.usage import trained
from flax_sentiment.configs import default
from flax_sentiment.tracking.checkpoints import CheckpointMismatchError
from flax_sentiment.runtime.errors import UserError
from tests.conftest import snapshot, tiny_config

TIMING_KEYS = {"epoch_seconds", "train_examples_per_second", "compile_seconds",
               "eval_seconds"}
BASE = dict(num_epochs=1, validation_examples=32)

# A valid other value for every field of configs/default.py (the test fails
# if a field is added without one here).
CHANGED = {
    "model": "ngrams", "ngram_max_n": 2, "ngram_min_count": 3,
    "ngram_c_values": "1", "pv_dim": 4, "pv_epochs": 2, "pv_window": 3,
    "pv_min_count": 1, "pv_sample": 0.0, "pv_c_values": "1",
    "cell": "rnn", "num_words": 80, "embed_dim": 12, "hidden_dim": 12,
    "dtype": "bfloat16", "bidirectional": True, "num_layers": 2,
    "pooling": "max", "embed_dropout": 0.1, "dropout": 0.1,
    "pretrained_embeddings": "word2vec", "pretrain_lm_epochs": 1,
    "lm_sampled_words": 8, "lm_batch_size": 4, "lm_learning_rate": 0.01, "seq_len": 20, "padding": "post",
    "truncating": "post", "mask_padding": True, "length_buckets": 2,
    "vocabulary_splits": "train+unsupervised", "tokenizer": "words",
    "max_train_examples": 192,
    "max_test_examples": 64, "data_dir": "OTHER_DIR", "download": False,
    "cache_dir": "OTHER_DIR", "batch_size": 16, "num_epochs": 2,
    "learning_rate": 0.01, "lr_schedule": "cosine", "warmup_steps": 3,
    "weight_decay": 0.1, "clip_grad_norm": 1.0, "adversarial_epsilon": 1.0,
    "virtual_adversarial_epsilon": 1.0, "virtual_adversarial_xi": 0.1,
    "seed": 1,
    "steps_per_call": 2, "eval_batch_size": 24, "validation_examples": 48,
    "validation_seed": 1, "early_stopping_patience": 1,
    "implementation": "stock", "unroll": 2, "project_distinct_words": False,
    "progress": False, "progress_every_seconds": 5.0,
    "checkpoint_every_steps": 4, "keep_checkpoints": 3,
    "coordinator_address": "localhost:12345", "num_processes": 1,
    "process_id": 0, "dataset": "OTHER_DIR", "test_dataset": "OTHER_DIR",
    "test_fraction": 0.3, "unlabeled_dataset": "OTHER_DIR",
    "text_field": "review", "label_field": "sentiment",
    "labels": "neg,neutral,pos", "select_on": "macro_f1",
    "class_weights": "balanced", "region_size": 3,
    "region_embedding_dim": 8, "region_embedding_epochs": 3,
    "region_embedding_ngrams": 3,
}


def outcome(workdir: pathlib.Path):
  """(params, metrics without timings) of a finished workdir."""
  _, _, state, _ = trained.load_trained_state(workdir, say=lambda _: None)
  records = [{k: v for k, v in r.items() if k not in TIMING_KEYS}
             for r in rundir.read_metrics(workdir)]
  return jax.tree.leaves(jax.device_get(state.params)), records


def config_with(tmp_path, **changes):
  config = tiny_config(cache_dir=str(tmp_path / "cache"), **BASE)
  config.update({k: (str(tmp_path / "other") if v == "OTHER_DIR" else v)
                 for k, v in changes.items()})
  return config


# Allowed changes that leave the computation as it is (where and how often
# things are shown or saved, where caches and data live, process settings):
# one uninterrupted reference run serves them all.
SAME_COMPUTATION = {"progress", "progress_every_seconds",
                    "checkpoint_every_steps", "keep_checkpoints", "cache_dir",
                    "data_dir", "download", "coordinator_address",
                    "num_processes", "process_id"}
_REFERENCES = {}


def reference_outcome(one_epoch, field, changes, tmp_path):
  """The outcome of an uninterrupted run with `changes`."""
  key = "same computation" if field in SAME_COMPUTATION else field
  if key not in _REFERENCES:
    if key != field:
      changes = {"num_epochs": 2}
    loop.train_and_evaluate(config_with(one_epoch, **changes),
                            tmp_path / "uninterrupted")
    _REFERENCES[key] = outcome(tmp_path / "uninterrupted")
  return _REFERENCES[key]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
  """A finished 1-epoch run, copied by each case."""
  from tests.fake_imdb import mock_imdb  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("one_epoch")
  with mock_imdb():
    loop.train_and_evaluate(config_with(root), root / "run")
  return root


def assert_close(got, want, where: str) -> None:
  """`got` equals `want` up to float regrouping, through nested dicts and
  lists (a record's `*_accuracy_by_length` is a dict; `pytest.approx`
  compares only flat ones)."""
  if isinstance(want, dict):
    assert isinstance(got, dict) and got.keys() == want.keys(), where
    for key, value in want.items():
      assert_close(got[key], value, f"{where}.{key}")
  elif isinstance(want, (list, tuple)):
    assert isinstance(got, (list, tuple)) and len(got) == len(want), where
    for i, (a, b) in enumerate(zip(got, want)):
      assert_close(a, b, f"{where}[{i}]")
  elif isinstance(want, float):
    assert got == pytest.approx(want, rel=1e-6, abs=1e-7), where
  else:  # int, str, bool, None
    assert got == want, where


def test_assert_close_looks_inside_nested_records():
  record = {"test_accuracy_by_length": {"64": 0.5, "128": [0.25, None]}}
  assert_close(record, {"test_accuracy_by_length":
                        {"64": 0.5 + 1e-9, "128": [0.25, None]}}, "r")
  with pytest.raises(AssertionError, match=r"r\.test_accuracy_by_length\.64"):
    assert_close(record, {"test_accuracy_by_length":
                          {"64": 0.75, "128": [0.25, None]}}, "r")
  with pytest.raises(AssertionError, match=r"128\]?\[0\]"):
    assert_close(record, {"test_accuracy_by_length":
                          {"64": 0.5, "128": [0.5, None]}}, "r")


def test_every_field_has_a_changed_value():
  assert set(CHANGED) == set(default.get_config().keys())
  assert set(fields.resume_rules()) <= set(CHANGED)


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_changing_a_field_resumes_exactly_or_refuses_untouched(
    field, one_epoch, fake_imdb, tmp_path, monkeypatch):
  if field == "download":  # the fake data counts as prepared
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared",
                        lambda self: True)
  workdir = tmp_path / "run"
  shutil.copytree(one_epoch / "run", workdir)
  changes = {field: CHANGED[field]}
  if field != "num_epochs":
    changes["num_epochs"] = 2  # and train on
  config = config_with(one_epoch, **changes)
  if fields.may_change_on_resume(field, config):
    loop.train_and_evaluate(config, workdir)
    params, records = outcome(workdir)
    want_params, want_records = reference_outcome(one_epoch, field, changes,
                                                  tmp_path)
    for a, b in zip(params, want_params):
      np.testing.assert_array_equal(a, b)  # bitwise
    assert len(records) == len(want_records) >= 1
    for got, want in zip(records, want_records):
      assert got.keys() == want.keys()
      for key, value in want.items():  # evaluation sums may regroup
        assert_close(got[key], value, key)
  else:
    before = snapshot(workdir)
    with pytest.raises(UserError) as error:
      loop.train_and_evaluate(config, workdir)
    assert field in str(error.value) and "\n" not in str(error.value)
    assert snapshot(workdir) == before


def test_num_epochs_may_not_change_under_a_schedule(fake_imdb, tmp_path):
  cosine = dict(lr_schedule="cosine", warmup_steps=2)
  loop.train_and_evaluate(config_with(tmp_path, **cosine), tmp_path / "run")
  before = snapshot(tmp_path / "run")
  with pytest.raises(UserError, match=r"num_epochs: 1 in the workdir, 2 now"):
    loop.train_and_evaluate(config_with(tmp_path, num_epochs=2, **cosine),
                            tmp_path / "run")
  assert snapshot(tmp_path / "run") == before


def test_checkpoint_of_another_shape_is_refused_not_moved(one_epoch,
                                                          fake_imdb, tmp_path):
  # config.json agrees with the new config, the checkpoints do not (e.g.
  # written by a version that recorded no config in them): an error,
  # nothing moved aside.
  workdir = tmp_path / "run"
  shutil.copytree(one_epoch / "run", workdir)
  for meta_file in (workdir / "checkpoints").glob("*/meta/metadata"):
    meta = json.loads(meta_file.read_text())
    for key in ("config", "vocabulary_sha256", "meta_sha256"):
      del meta[key]
    meta_file.write_text(json.dumps(meta))
  saved = json.loads((workdir / "config.json").read_text())
  (workdir / "config.json").write_text(json.dumps(dict(saved, hidden_dim=12)))
  before = snapshot(workdir)
  with pytest.raises(CheckpointMismatchError,
                     match=r"another config or version \(params\.dense\.kernel: "
                     r"float32\[8, 1\] in the checkpoint, float32\[12, 1\] now"):
    loop.train_and_evaluate(config_with(one_epoch, hidden_dim=12), workdir)
  assert snapshot(workdir) == before
  assert not (workdir / "corrupt_checkpoints").exists()


def test_schedule_length_is_the_planned_steps(fake_imdb, tmp_path,
                                              monkeypatch):
  # Length buckets run more steps than ceil(N / batch): the schedule must be
  # sized by the steps the run executes, so a linear one ends at zero there.
  sized = []
  schedule = train_steps.learning_rate_schedule
  monkeypatch.setattr(train_steps, "learning_rate_schedule", lambda config, total: (
      sized.append(total), schedule(config, total))[1])
  config = config_with(tmp_path, lr_schedule="linear", padding="post",
                       mask_padding=True, length_buckets=3, num_epochs=2, seq_len=48,
                       batch_size=16)
  history = loop.train_and_evaluate(config, tmp_path / "run")
  steps = history[-1]["steps"]
  assert steps > 2 * -(-(256 - 32) // config.batch_size)
  assert set(sized) == {steps}


def test_a_resume_onto_checkpoints_of_another_vocabulary_is_refused(
    one_epoch, fake_imdb, tmp_path, monkeypatch):
  """The same config, but the data gives another vocabulary (here: its
  words in another order, from a fresh token cache): the checkpoints'
  recorded vocabulary digest refuses it in one line, nothing written."""
  from flax_sentiment.data import token_store  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  shutil.copytree(one_epoch / "run", workdir)
  ranked = token_store._ranked  # pylint: disable=protected-access
  monkeypatch.setattr(token_store, "_ranked",
                      lambda *args: ranked(*args)[::-1])
  config = config_with(one_epoch, num_epochs=2,
                       cache_dir=str(tmp_path / "fresh_cache"))
  before = snapshot(workdir)
  with pytest.raises(UserError, match="another vocabulary") as error:
    loop.train_and_evaluate(config, workdir)
  assert "\n" not in str(error.value)
  assert snapshot(workdir) == before
