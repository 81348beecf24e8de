"""Training that survives: kills, signals, corrupt checkpoints, NaNs."""

import dataclasses
import json
import os
import pathlib
import signal
import time

import jax
import numpy as np
import pytest

from flax_sentiment.configuration import fields
from flax_sentiment.tracking import rundir
from flax_sentiment.training import loop
from flax_sentiment.usage import trained as trained_run
from flax_sentiment.runtime.errors import ConfigError
from tests.conftest import run_fake, tiny_config, tiny_flags

TIMING_KEYS = {"epoch_seconds", "train_examples_per_second", "compile_seconds",
               "eval_seconds"}
EPOCHS = 3  # 256 fake reviews, batch 8: 32 steps an epoch, 8 chunks of 4


def flags(workdir, cache):
  # A 40,000 x 32 embedding (mostly unused rows) makes each checkpoint ~15 MB,
  # so a write lasts long enough to be caught and killed.
  return tiny_flags(workdir, cache, num_epochs=EPOCHS, num_words=40_000,
                    embed_dim=32)


def finish(proc, timeout=300):
  out, _ = proc.communicate(timeout=timeout)
  return proc.returncode, out


def trained(workdir):
  """(params leaves, metrics without timings) of a finished workdir."""
  _, _, state, _ = trained_run.load_trained_state(workdir)
  records = [json.loads(l) for l in
             (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  return (jax.tree.leaves(jax.device_get(state.params)),
          [{k: v for k, v in r.items() if k not in TIMING_KEYS}
           for r in records])


def assert_identical(a, b):
  (params_a, metrics_a), (params_b, metrics_b) = a, b
  assert metrics_a == metrics_b
  assert len(metrics_a) == EPOCHS
  for x, y in zip(params_a, params_b):
    np.testing.assert_array_equal(x, y)  # bitwise


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run; everything else must end exactly like it."""
  root = tmp_path_factory.mktemp("reference")
  code, out = finish(run_fake(flags(root / "run", root / "cache")))
  assert code == 0, out
  return trained(root / "run")


def wait_for_line(proc, text, timeout=120):
  deadline = time.time() + timeout
  lines = []
  while time.time() < deadline:
    line = proc.stdout.readline()
    lines.append(line)
    if text in line:
      return lines
    if not line and proc.poll() is not None:
      break
  raise AssertionError(f"never printed {text!r}:\n{''.join(lines)}")


def writing_checkpoint(ckpt_dir: pathlib.Path) -> bool:
  try:
    return any("tmp" in name for name in os.listdir(ckpt_dir))
  except FileNotFoundError:
    return False


def test_sigkill_anywhere_then_resume_is_bitwise_identical(reference,
                                                            tmp_path):
  workdir, cache = tmp_path / "run", tmp_path / "cache"
  ckpt_dir = workdir / "checkpoints"
  # First kill while a checkpoint is being written (all writes still lie
  # ahead), then at several moments after training starts (mid-epoch, near
  # epoch ends).
  killed_mid_write = False
  for _ in range(5):
    proc = run_fake(flags(workdir, cache))
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
      if writing_checkpoint(ckpt_dir):
        proc.send_signal(signal.SIGKILL)
        killed_mid_write = True
        break
    proc.wait()
    if killed_mid_write:
      break
  for delay in (0.3, 1.1, 0.7, 2.0):
    proc = run_fake(flags(workdir, cache))
    wait_for_line(proc, "Training on")
    time.sleep(delay)
    proc.kill()
    proc.wait()
  assert killed_mid_write, "never caught a checkpoint being written"
  code, out = finish(run_fake(flags(workdir, cache)))
  assert code == 0, out
  assert_identical(trained(workdir), reference)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_exits_cleanly_and_resumes_exactly(signum, reference,
                                                        tmp_path):
  workdir, cache = tmp_path / "run", tmp_path / "cache"
  proc = run_fake(flags(workdir, cache))
  wait_for_line(proc, "Training on")  # printed once the handlers are in place
  proc.send_signal(signum)
  code, out = finish(proc)
  assert code == 128 + signum, out
  assert f"Stopped by {signal.Signals(signum).name}" in out
  assert "Run the same command again to resume" in out
  assert "Traceback" not in out
  _, _, _, meta = trained_run.load_trained_state(workdir)
  assert meta["epoch"] < EPOCHS
  code, out = finish(run_fake(flags(workdir, cache)))
  assert code == 0 and "Resuming from the checkpoint" in out, out
  assert_identical(trained(workdir), reference)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(reference,
                                                              tmp_path):
  workdir, cache = tmp_path / "run", tmp_path / "cache"
  code, out = finish(run_fake(flags(workdir, cache)))
  assert code == 0, out
  ckpt_dir = workdir / "checkpoints"
  steps = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  latest, previous = ckpt_dir / str(steps[-1]), ckpt_dir / str(steps[-2])
  for path in (latest / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] or b"x")
  previous_files = {p: p.read_bytes() for p in previous.rglob("*") if p.is_file()}

  code, out = finish(run_fake(flags(workdir, cache)))
  assert code == 0, out
  warnings = [l for l in out.splitlines() if "unreadable" in l]
  assert len(warnings) == 1 and warnings[0].startswith(
      f"warning: checkpoint at step {steps[-1]} is unreadable"), out
  assert "Traceback" not in out
  assert f"Resuming from the checkpoint at step {steps[-2]}" in out
  assert (workdir / "corrupt_checkpoints" / str(steps[-1])).exists()
  assert_identical(trained(workdir), reference)
  for path, content in previous_files.items():  # the good one: untouched or
    assert not path.exists() or path.read_bytes() == content  # rotated out


def test_workdir_of_another_config_is_refused(fake_imdb, tmp_path):
  config = tiny_config(cache_dir=str(tmp_path / "cache"), num_epochs=1)
  loop.train_and_evaluate(config, tmp_path / "run")
  before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*")
            if p.is_file()}
  other = tiny_config(cache_dir=str(tmp_path / "cache"), num_epochs=1,
                      cell="rnn", hidden_dim=16)
  with pytest.raises(ConfigError, match=r"cell: 'lstm' in the workdir, 'rnn' "
                     r"now; hidden_dim: 8 in the workdir, 16 now"):
    loop.train_and_evaluate(other, tmp_path / "run")
  after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*")
           if p.is_file()}
  assert before == after


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(
    fake_imdb, tmp_path, monkeypatch):
  # Continue the run with an absurd learning rate (not a resume a user may
  # make: allowed here only to reach a NaN after a good checkpoint).
  monkeypatch.setitem(fields.FIELDS, "learning_rate", dataclasses.replace(
      fields.FIELDS["learning_rate"], on_resume="test"))
  config = tiny_config(cache_dir=str(tmp_path / "cache"), num_epochs=1)
  loop.train_and_evaluate(config, tmp_path / "run")
  _, _, good_state, _ = trained_run.load_trained_state(tmp_path / "run")
  absurd = tiny_config(cache_dir=str(tmp_path / "cache"), num_epochs=2,
                       learning_rate=1e38)
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"became (nan|inf) at epoch 2, step 3\d; stopped "
                     r"without saving\. The last good checkpoint \(step 32\)"):
    loop.train_and_evaluate(absurd, tmp_path / "run")
  _, _, state, meta = trained_run.load_trained_state(tmp_path / "run")
  assert meta["epoch"] == 1 and meta["step"] == 32
  for a, b in zip(jax.tree.leaves(state.params),
                  jax.tree.leaves(good_state.params)):
    np.testing.assert_array_equal(a, b)


def test_arrays_orbax_reads_but_another_digest_records_are_refused(tmp_path):
  """Step 2's arrays are a valid orbax checkpoint of another state; its
  meta is step 1's (a whole, self-consistent meta). Only the project's own
  state digest can tell: read-only it is refused in one line, in training
  it is set aside for step 1, which restores."""
  import shutil  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax_sentiment.tracking import checkpoints  # pylint: disable=g-import-not-at-top
  first = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}
  second = {"w": first["w"] + 1.0, "b": jnp.ones(3)}
  ckpts = checkpoints.Checkpoints(tmp_path / "ckpt", keep=5)
  ckpts.save(1, first, {"epoch": 1})
  ckpts.save(2, second, {"epoch": 2})
  ckpts.close()
  meta = tmp_path / "ckpt" / "2" / "meta"
  shutil.rmtree(meta)
  shutil.copytree(tmp_path / "ckpt" / "1" / "meta", meta)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          first)
  reader = checkpoints.Checkpoints(tmp_path / "ckpt", keep=5, read_only=True)
  with pytest.raises(checkpoints.UnreadableCheckpointError,
                     match=r"step 2.*state digest does not match") as error:
    reader.restore_latest(abstract, fall_back=False)
  assert "\n" not in str(error.value)
  reader.close()
  said = []
  writer = checkpoints.Checkpoints(tmp_path / "ckpt", keep=5)
  state, restored_meta = writer.restore_latest(abstract, say=said.append)
  np.testing.assert_array_equal(state["w"], first["w"])
  assert restored_meta["epoch"] == 1
  assert len(said) == 1 and "step 2" in said[0] and "digest" in said[0]
  assert (tmp_path / "corrupt_checkpoints" / "2").is_dir()
  writer.close()
