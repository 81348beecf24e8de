"""Faults a user meets around a run: a workdir in use, a run that diverged
before its first checkpoint."""

import json
import os
import signal
import subprocess
import sys

import pytest

from flax_sentiment.training import loop
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.tracking.rundir import RunDir
from tests.conftest import (REPO, one_error_line, run_fake, snapshot,
                            tiny_config, tiny_flags)


def test_a_second_training_on_a_held_workdir_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  with RunDir(workdir).locked():
    before = snapshot(workdir)
    proc = run_fake(tiny_flags(workdir, tmp_path / "cache"))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1
    lines = [l for l in out.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "is in use by another training" in lines[0]
    assert str(workdir) in lines[0]
    assert snapshot(workdir) == before  # nothing written, moved or created


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
  workdir = tmp_path / "run"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; "
       "from flax_sentiment.tracking.rundir import RunDir; "
       f"lock = RunDir({str(workdir)!r}).locked(); lock.__enter__(); "
       "print('held', flush=True); time.sleep(60)"],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(UserError, match="in use by another training"):
    with RunDir(workdir).locked():
      pass
  holder.send_signal(signal.SIGKILL)
  holder.wait(timeout=30)
  with RunDir(workdir).locked():  # the system dropped the dead one's lock
    pass


def test_divergence_before_any_checkpoint_says_none_was_written(
    fake_imdb, tmp_path):
  config = tiny_config(cache_dir=str(tmp_path / "cache"), learning_rate=1e38,
                       checkpoint_every_steps=1000)
  with pytest.raises(loop.NonFiniteLossError) as error:
    loop.train_and_evaluate(config, tmp_path / "run")
  message = str(error.value)
  assert "No checkpoint was written before it" in message
  assert "step None" not in message
  assert not os.path.isdir(tmp_path / "run" / "checkpoints") or not any(
      p.name.isdigit() for p in (tmp_path / "run" / "checkpoints").iterdir())


@pytest.fixture
def one_epoch_run(fake_imdb, tmp_path):
  config = tiny_config(cache_dir=str(tmp_path / "cache"), num_epochs=1)
  loop.train_and_evaluate(config, tmp_path / "run")
  return config, tmp_path / "run"


def test_resume_check_holds_without_config_json(one_epoch_run):
  """The checkpoint itself records its config: deleting config.json does
  not let another learning rate continue it."""
  config, workdir = one_epoch_run
  (workdir / "config.json").unlink()
  other = tiny_config(cache_dir=config.cache_dir, num_epochs=2,
                      learning_rate=0.05)
  before = snapshot(workdir)
  with pytest.raises(UserError, match=r"learning_rate: 0.001 in the "
                     r"workdir, 0.05 now"):
    loop.train_and_evaluate(other, workdir)
  assert snapshot(workdir) == before


def test_a_changed_checkpoint_meta_is_refused_by_its_digest(one_epoch_run):
  """orbax still reads the edited JSON; the meta digest refuses it."""
  from flax_sentiment.tracking import checkpoints  # pylint: disable=g-import-not-at-top
  from flax_sentiment.usage import trained
  _, workdir = one_epoch_run
  step = max((p for p in (workdir / "checkpoints").iterdir()
              if p.name.isdigit()), key=lambda p: int(p.name))
  meta_file = step / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  meta["history"][0]["test_accuracy"] = 0.99  # a better-looking epoch
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(checkpoints.UnreadableCheckpointError,
                     match="meta digest"):
    trained.load_trained_state(workdir)


DAMAGES = {
    "truncated": lambda b: b[:len(b) // 2],
    "not_utf8": lambda b: b"\xff\xfe" + b[2:],
    "scrambled": lambda b: bytes(reversed(b)),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  from tests.fake_imdb import mock_imdb  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("finished")
  config = tiny_config(cache_dir=str(root / "cache"), num_epochs=1)
  with mock_imdb():
    loop.train_and_evaluate(config, root / "run")
  return config, root / "run"


def damaged_copy(finished_run, tmp_path, name, damage):
  import shutil  # pylint: disable=g-import-not-at-top
  config, workdir = finished_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  path = copy / name
  path.write_bytes(DAMAGES[damage](path.read_bytes()))
  return config, copy, path


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("name", ["config.json", "vocab.json",
                                  "metrics.jsonl", "result.json"])
def test_a_finished_rerun_rebuilds_a_damaged_file_and_says_so(
    finished_run, fake_imdb, tmp_path, capsys, name, damage):
  config, workdir, path = damaged_copy(finished_run, tmp_path, name, damage)
  loop.train_and_evaluate(config, workdir)
  out = capsys.readouterr().out
  assert f"warning: " in out and name in out and "rebuilt" in out
  original = (finished_run[1] / name).read_bytes()
  assert path.read_bytes() == original  # as the run wrote it
  others = {p.name: p.read_bytes() for p in workdir.glob("*.json*")
            if p.name != name}
  assert others == {n: (finished_run[1] / n).read_bytes() for n in others}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_predict_and_report_on_damaged_files(finished_run, tmp_path, damage):
  from flax_sentiment.usage import report, trained  # pylint: disable=g-import-not-at-top
  _, workdir, _ = damaged_copy(finished_run, tmp_path, "config.json", damage)
  said = []
  trained.load_trained_state(workdir, say=said.append)  # config rebuilt
  assert len(said) == 1 and "config.json is damaged" in said[0]
  (workdir / "vocab.json").write_bytes(DAMAGES[damage](
      (workdir / "vocab.json").read_bytes()))
  with pytest.raises(UserError, match=r"vocab.json is damaged"):
    trained.load_trained_state(workdir, say=said.append)
  metrics = workdir / "metrics.jsonl"
  metrics.write_bytes(DAMAGES[damage](metrics.read_bytes()) + b"\n{oops")
  with pytest.raises(SystemExit) as exit_:
    report.main([str(workdir)])
  message = str(exit_.value.code)
  assert message.startswith("error: ") and "metrics.jsonl" in message
  assert "damaged" in message and "\n" not in message


def test_a_full_disk_during_a_save_is_one_line_and_keeps_earlier_ones(
    one_epoch_run, monkeypatch):
  import errno  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  config, workdir = one_epoch_run
  before = snapshot(workdir / "checkpoints")

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ocp.CheckpointManager, "save", full)
  more = tiny_config(cache_dir=config.cache_dir, num_epochs=2)
  with pytest.raises(UserError, match=r"no space left on the disk of .*"
                     r"checkpoints/\d+ \(about [\d.]+ MB more") as error:
    loop.train_and_evaluate(more, workdir)
  assert "\n" not in str(error.value)
  assert snapshot(workdir / "checkpoints") == before
