"""run.py end to end, on fake data and (when present) on the real IMDB."""

import json
import subprocess
import sys


from flax_sentiment.tracking import checkpoints
from flax_sentiment.training import loop
from flax_sentiment.usage import trained
from tests.conftest import REPO, run_fake, tiny_config, tiny_flags

METRIC_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss",
               "test_accuracy", "epoch_seconds", "train_examples_per_second"}


def test_run_py_trains_and_writes_its_workdir(tmp_path):
  workdir = tmp_path / "run"
  proc = run_fake(tiny_flags(workdir, tmp_path / "cache", num_epochs=3))
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  assert "Total params: 1,065" in out  # 64*8 + 4*(8*8 + 8*8 + 8) + 9
  assert "epoch 3/3" in out
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in records] == [1, 2, 3]
  assert all(METRIC_KEYS <= r.keys() for r in records)
  assert records[-1]["train_loss"] < records[0]["train_loss"]
  assert (workdir / "vocab.json").exists()
  assert json.loads((workdir / "config.json").read_text())["seq_len"] == 16
  assert list((workdir / "checkpoints").iterdir())


def test_lstm_learns_real_reviews(real_data_dir, tmp_path):
  """The issue's bar: 2,000 real reviews, seq_len 128, 2 epochs -> >= 0.70."""
  config = tiny_config(cell="lstm", num_words=10_000, embed_dim=256,
                       hidden_dim=128, seq_len=128, batch_size=32,
                       eval_batch_size=500, steps_per_call=32, num_epochs=2,
                       max_train_examples=2000, max_test_examples=1000,
                       data_dir=real_data_dir, download=False,
                       cache_dir=str(tmp_path / "cache"))
  history = loop.train_and_evaluate(config, tmp_path / "run")
  assert len(history) == 2
  assert history[-1]["test_accuracy"] >= 0.70, history


def test_predict_on_own_text_after_training(tmp_path):
  from flax_sentiment.usage import trained
  workdir = tmp_path / "run"
  proc = run_fake(tiny_flags(workdir, tmp_path / "cache", num_epochs=4))
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  texts = ["great wonderful superb loved it, a great film",
           "awful boring terrible, the worst dull movie"]
  probabilities = trained.load_predictor(workdir)(texts)
  assert probabilities.shape == (2,)
  assert probabilities[0] > 0.5 > probabilities[1]
  cli = subprocess.run([sys.executable, "-m", "flax_sentiment.usage.predict",
                        f"--workdir={workdir}", *texts], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert cli.returncode == 0, cli.stderr
  lines = cli.stdout.strip().splitlines()
  assert "positive" in lines[0] and "negative" in lines[1]


def test_second_run_loads_compiled_steps_from_the_cache(tmp_path):
  """run.py keeps compiled executables in <cache_dir>/jax: a second run of
  the same shapes compiles nothing new and ends with the same parameters."""
  outputs, entries = [], []
  for name in ("first", "second"):
    proc = run_fake(tiny_flags(tmp_path / name, tmp_path / "cache"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    outputs.append(checkpoints.state_digest(
        trained.load_trained_state(tmp_path / name)[2].params))
    entries.append(sorted(p.name for p in (tmp_path / "cache" / "jax").iterdir()))
  assert len(entries[0]) > 0
  assert entries[1] == entries[0]
  assert outputs[1] == outputs[0]
