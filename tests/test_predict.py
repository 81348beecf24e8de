"""Prediction from a workdir whose newest checkpoint is damaged: one line
says so, nothing falls back silently, no library traceback is shown."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import predict_cli, run_fake, tiny_flags

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
