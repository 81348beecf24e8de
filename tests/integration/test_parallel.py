"""Data parallel over 8 CPU devices, two processes, bfloat16."""

import json
import re
import signal
import socket
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.training import train_steps
from flax_sentiment.usage import trained
from tests.conftest import run_fake, tiny_config, tiny_flags
from tests.test_train import fixed_batch, make_state

EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def finished(proc):
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  return out


def params_and_losses(workdir):
  _, _, state, _ = trained.load_trained_state(workdir)
  records = [json.loads(l) for l in
             (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [(r["train_loss"], r["test_loss"], r["train_accuracy"],
             r["test_accuracy"]) for r in records]
  return jax.tree.leaves(jax.device_get(state.params)), np.array(losses)


def assert_close(a, b):
  (params_a, losses_a), (params_b, losses_b) = a, b
  np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5)
  for x, y in zip(params_a, params_b):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
  root = tmp_path_factory.mktemp("single")
  out = finished(run_fake(tiny_flags(root / "run", root / "cache")))
  assert "1 device(s)" in out
  return params_and_losses(root / "run")


def test_eight_devices_match_one_device(single_device, tmp_path):
  out = finished(run_fake(tiny_flags(tmp_path / "run", tmp_path / "cache"),
                          env=EIGHT_DEVICES))
  assert "8 device(s)" in out
  assert_close(params_and_losses(tmp_path / "run"), single_device)


def test_eval_batch_not_divisible_by_devices_gives_the_same_metrics(
    single_device, tmp_path):
  """eval_batch_size=13 on 8 devices: rounded up to 16 with weight-0 rows;
  test metrics (and everything else) as on one device."""
  out = finished(run_fake(tiny_flags(tmp_path / "run", tmp_path / "cache",
                                     eval_batch_size=13), env=EIGHT_DEVICES))
  assert "8 device(s)" in out
  assert_close(params_and_losses(tmp_path / "run"), single_device)


def test_batch_not_divisible_by_devices_is_refused_before_compiling(tmp_path):
  proc = run_fake(tiny_flags(tmp_path / "run", tmp_path / "cache",
                             batch_size=12), env=EIGHT_DEVICES)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode != 0
  assert "error: config.batch_size=12 does not divide evenly over 8 devices" in out
  assert not (tmp_path / "run").exists()


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_agree_and_match_one_process(single_device, tmp_path):
  port = free_port()
  procs = [run_fake(tiny_flags(tmp_path / "run", tmp_path / "cache",
                               num_processes=2, process_id=i,
                               coordinator_address=f"127.0.0.1:{port}"))
           for i in range(2)]
  outs = [finished(p) for p in procs]
  assert "2 device(s) (cpu), 2 process(es)" in outs[0]
  digests = [re.search(r"\[process \d\] final state sha256 (\w+)", o).group(1)
             for o in outs]
  assert digests[0] == digests[1]
  assert "epoch 2/2" in outs[0] and "epoch 2/2" not in outs[1]  # only p0 logs
  assert_close(params_and_losses(tmp_path / "run"), single_device)


def test_bfloat16_compute_keeps_float32_params_and_learns():
  config = tiny_config(dtype="bfloat16", learning_rate=1e-2)
  state, batch = make_state(config), fixed_batch(config)
  logits = state.apply_fn({"params": state.params}, batch["tokens"])
  assert logits.shape == (8,) and logits.dtype == jnp.float32
  step = jax.jit(train_steps.train_step)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"] / metrics["count"]))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.params))
  assert losses[-1] < 0.5 * losses[0]


def start_two(tmp_path, port, num_train, **overrides):
  return [run_fake(tiny_flags(tmp_path / "run", tmp_path / "cache",
                              num_processes=2, process_id=i,
                              coordinator_address=f"127.0.0.1:{port}",
                              progress=False, **overrides),
                   num_train=num_train)
          for i in range(2)]


def wait_for_line(proc, text: str, timeout: float = 180) -> list[str]:
  """Lines of proc's output up to the first that holds `text`."""
  lines, deadline = [], time.monotonic() + timeout
  while time.monotonic() < deadline:
    line = proc.stdout.readline()
    if not line:
      break
    lines.append(line)
    if text in line:
      return lines
  raise AssertionError(f"no {text!r} in:\n{''.join(lines)}")


def communicate_both(procs, timeout: float) -> list[str]:
  """Both processes' outputs; if either is still running after `timeout`
  seconds (a hang), both are killed and the failure shows what they said."""
  deadline, outs = time.monotonic() + timeout, []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=max(1, deadline - time.monotonic()))[0])
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    said = [p.communicate()[0] for p in procs]
    raise AssertionError(f"still running after {timeout} s:\n" + "\n".join(
        f"--- process {i}:\n{o[-3000:]}" for i, o in enumerate(said)))
  return outs


@pytest.mark.parametrize("signalled", [0, 1])
def test_sigterm_to_one_process_stops_both_with_one_save_and_resumes(
    tmp_path, signalled):
  """A preemption reaches one host first: both processes agree to stop at
  the same step, save once, exit 143 in bounded time, and the same two
  commands resume and finish with one state."""
  procs = start_two(tmp_path, free_port(), 4096, num_epochs=3,
                    checkpoint_every_steps=100_000,
                    progress_every_seconds=0.0)
  # A progress line of process 0 means both processes ran a chunk (a
  # collective), so both handle SIGTERM by now; mid-epoch.
  wait_for_line(procs[0], " reviews  ")
  procs[signalled].send_signal(signal.SIGTERM)
  outs = communicate_both(procs, timeout=90)
  assert [p.returncode for p in procs] == [143, 143], outs
  assert "Stopped by SIGTERM" in outs[signalled]
  assert "Stopped with another process of this run" in outs[1 - signalled]
  steps = [int(re.search(r"at step (\d+)", o).group(1)) for o in outs]
  assert steps[0] == steps[1]
  saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert saved == [str(steps[0])]  # one save, at that step
  procs = start_two(tmp_path, free_port(), 4096, num_epochs=3,
                    checkpoint_every_steps=100_000)
  outs = [finished(p) for p in procs]
  assert f"Resuming from the checkpoint at step {steps[0]}" in outs[0]
  digests = [re.search(r"final state sha256 (\w+)", o).group(1) for o in outs]
  assert digests[0] == digests[1]


@pytest.mark.parametrize("checkpoint_every_steps", [100_000, 4])
def test_a_killed_process_ends_the_other_with_one_line_in_bounded_time(
    tmp_path, checkpoint_every_steps):
  """Killed mid-chunk, or (saving after every chunk of 4 steps) mostly while
  both are in a checkpoint's save barrier."""
  procs = start_two(tmp_path, free_port(), 4096, num_epochs=3,
                    checkpoint_every_steps=checkpoint_every_steps,
                    progress_every_seconds=0.0)
  wait_for_line(procs[0], " reviews  ")  # both are training
  procs[1].kill()
  start = time.monotonic()
  out = procs[0].communicate(timeout=60)[0]
  assert time.monotonic() - start < 30
  assert procs[0].returncode == 1
  ours = [l for l in out.splitlines() if l.startswith("error:")]
  assert len(ours) == 1 and "lost contact with process 1" in ours[0]
  assert "Traceback" not in out and "Check failure" not in out
