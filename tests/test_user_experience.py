"""What a user meets: --help, one-line errors with nothing written, progress
lines, TensorBoard, validation-based selection, a finished run re-run,
predict's warnings and inputs, and the report."""

import errno
import json
import os
import subprocess
import sys
import tempfile

import pytest

from configs import default
from flax_sentiment import progress, report, rundir
from flax_sentiment.rundir import RunDir
from flax_sentiment.config_checks import FIELD_HELP
from flax_sentiment.errors import UserError
from tests.conftest import REPO, run_fake, tiny_flags


def run_py(*args, timeout=120):
  return subprocess.run([sys.executable, "run.py", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


def predict_cli(*args, stdin=None):
  return subprocess.run([sys.executable, "-m", "flax_sentiment.predict",
                         *args], cwd=REPO, capture_output=True, text=True,
                        timeout=120, input=stdin)


def one_error_line(proc) -> str:
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: ")
  return lines[0]


def snapshot(path):
  return sorted((str(p.relative_to(path)), p.stat().st_size,
                 p.stat().st_mtime_ns) for p in path.rglob("*"))


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_field_with_its_default_and_meaning(flag):
  proc = run_py("--config", "configs/rnn.py", flag)
  assert proc.returncode == 0, proc.stderr
  config = default.get_config()
  for field in config.keys():
    line = next(l for l in proc.stdout.splitlines()
                if l.strip().startswith(f"--config.{field} "))
    assert FIELD_HELP[field] in line
  assert "--config.cell" in proc.stdout and "'rnn'" in proc.stdout


def test_every_field_has_help():
  assert set(default.get_config().keys()) == set(FIELD_HELP)


def test_stray_positional_argument_is_one_line():
  line = one_error_line(run_py("configs/rnn.py"))  # --config forgotten
  assert "'configs/rnn.py'" in line and "--config configs/rnn.py" in line


def test_missing_config_file_is_one_line():
  line = one_error_line(run_py("--config", "configs/nope.py"))
  assert "configs/nope.py not found" in line and "configs/lstm.py" in line


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_workdir_that_is_or_lies_below_a_file(where, tmp_path):
  blocker = tmp_path / "taken"
  blocker.write_text("keep me")
  workdir = blocker if where == "file" else blocker / "run"
  line = one_error_line(run_py("--config", "configs/lstm.py",
                               f"--workdir={workdir}",
                               f"--config.cache_dir={tmp_path / 'cache'}"))
  assert str(workdir) in line and "--workdir" in line
  assert blocker.read_text() == "keep me"
  assert not (tmp_path / "cache").exists()


def test_missing_data_is_one_line_without_library_logs(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "nodata"),
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "run.py", "--config", "configs/lstm.py",
       f"--workdir={tmp_path / 'run'}", "--config.download=False",
       f"--config.cache_dir={tmp_path / 'cache'}"], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=120)
  line = one_error_line(proc)  # no tfds "dataset_info.json" line before it
  assert "IMDB data not found" in line and str(tmp_path / "nodata") in line
  assert not (tmp_path / "run").exists()


def test_read_only_directory_is_refused_naming_it(tmp_path, monkeypatch):
  """(As root, permissions do not stop writes; a read-only file system is
  simulated where the check probes it.)"""
  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")
  monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
  with pytest.raises(UserError, match=r"cache directory .* read-only .* "
                     r"--config.cache_dir"):
    rundir.check_writable_dir(tmp_path / "cache", "cache directory",
                               "--config.cache_dir")
  assert not (tmp_path / "cache").exists()


# ------------------------------------------------- one trained workdir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A fake-data run with a validation split, plain progress lines."""
  root = tmp_path_factory.mktemp("ux")
  proc = run_fake(tiny_flags(root / "run-seed0", root / "cache", num_epochs=3,
                             validation_examples=64,
                             progress_every_seconds=0.0), num_train=320)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  return root, root / "run-seed0", out


def test_startup_steps_progress_and_result_lines(trained):
  _, _, out = trained
  assert "Tokenizing" in out and "Compiling for batches of" in out
  assert "  epoch 1/3: " in out and " ex/s  ETA " in out  # plain progress
  assert "validating on 64" in out and "val_acc" in out
  assert "Result: epoch " in out and "(best validation accuracy)" in out
  assert "final state sha256" not in out  # single process: no digest line


def test_validation_selects_the_epoch_and_keeps_its_state(trained):
  _, workdir, _ = trained
  records = rundir.read_metrics(workdir)
  assert all("validation_accuracy" in r for r in records)
  result = json.loads((workdir / "result.json").read_text())
  best, how = progress.selected(records)
  assert how == "best validation accuracy"
  assert result["selected_epoch"] == best["epoch"]
  assert result["test_accuracy"] == best["test_accuracy"]
  assert (workdir / "best_checkpoint").is_dir()
  history = [{"epoch": e + 1, "validation_accuracy": a}
             for e, a in enumerate((0.7, 0.8, 0.8))]
  assert progress.best_epoch(history) == 2  # the first of equals
  assert not progress.stopped_early(history, 2)
  assert progress.stopped_early(history, 1)
  assert not progress.stopped_early(history, 0)


def test_tensorboard_has_epoch_and_chunk_scalars(trained):
  pytest.importorskip("tensorflow", reason="reads event files with "
                      "TensorFlow (the [dev] extra)")
  from tensorflow.compat.v1.train import summary_iterator  # pylint: disable=g-import-not-at-top
  _, workdir, _ = trained
  files = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert files
  tags = {v.tag for f in files for e in summary_iterator(str(f))
          for v in e.summary.value}
  assert {"train/loss", "train/accuracy", "validation/accuracy",
          "test/accuracy", "train/examples_per_second",
          "train/chunk_loss"} <= tags


def test_finished_run_rerun_says_so_and_trains_nothing(trained):
  root, workdir, _ = trained
  before = snapshot(workdir)
  proc = run_fake(tiny_flags(workdir, root / "cache", num_epochs=3,
                             validation_examples=64), num_train=320)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  assert "already finished (3 epoch(s)" in out and "--config.num_epochs" in out
  assert snapshot(workdir) == before  # nothing written, not even TensorBoard


def test_predict_warns_reads_files_and_stdin_and_writes_nothing(trained,
                                                                tmp_path):
  _, workdir, _ = trained
  before = snapshot(workdir)
  long_text = "great " * 20_000
  proc = predict_cli(f"--workdir={workdir}", "", "영화 😀", "zzyzx qwrtp",
                     long_text)
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr.count("has no words; its score means nothing") == 2
  assert "warning: none of the 2 word(s) of 'zzyzx qwrtp'" in proc.stderr
  lines = proc.stdout.splitlines()
  assert len(lines) == 4 and max(len(l) for l in lines) < 200
  assert "read its last 16 of 20,000 words" in lines[3]
  reviews = tmp_path / "reviews.txt"
  reviews.write_text("wonderful superb film\n\nawful boring dull movie\n")
  from_file = predict_cli(f"--workdir={workdir}", "--file", str(reviews),
                          "--json")
  records = [json.loads(l) for l in from_file.stdout.splitlines()]
  assert [r["text"] for r in records] == ["wonderful superb film",
                                          "awful boring dull movie"]
  assert all(r["label"] == ("positive" if r["probability_positive"] > 0.5
                            else "negative") for r in records)
  assert records[0]["unknown_words"] == 0 and records[0]["words"] == 3
  from_stdin = predict_cli(f"--workdir={workdir}", "--file", "-",
                           stdin="great fun\n")
  assert from_stdin.returncode == 0 and len(from_stdin.stdout.splitlines()) == 1
  assert snapshot(workdir) == before


def test_predict_without_checkpoint_is_one_line_and_creates_nothing(tmp_path):
  (tmp_path / "config.json").write_text(default.get_config().to_json())
  proc = predict_cli(f"--workdir={tmp_path}", "Nice.")
  line = one_error_line(proc)
  assert "no checkpoint yet" in line and str(tmp_path) in line
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_report_table_and_plot_group_seeds(trained, tmp_path):
  root, workdir, _ = trained
  twin = root / "run-seed1"
  twin.mkdir(exist_ok=True)
  records = rundir.read_metrics(workdir)
  shifted = [dict(r, test_accuracy=r["test_accuracy"] - 0.02) for r in records]
  RunDir(twin).write_metrics(shifted)
  out = tmp_path / "report"
  report.main([str(workdir), str(twin), "--out", str(out)])
  table = (tmp_path / "report.md").read_text()
  assert "| run | 2 |" in table and " ± " in table
  assert "validation" in table
  assert (tmp_path / "report.png").stat().st_size > 10_000
  with pytest.raises(SystemExit, match="no metrics.jsonl"):
    report.main([str(tmp_path / "nothing")])


def test_plain_progress_when_not_a_terminal_and_bar_on_one():
  from flax_sentiment import monitor  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top

  class Terminal(io.StringIO):
    def isatty(self):
      return True
  for stream, bar in ((io.StringIO(), False), (Terminal(), True)):
    console = monitor.Console(progress=True, every_seconds=0.0, stream=stream)
    epoch = console.epoch(0, 2, total=100)
    assert (epoch.bar is not None) == bar
    epoch.update(40, loss=20.0, correct=30.0, count=40.0)
    console.say("a line")
    epoch.close()
    text = stream.getvalue()
    assert "a line" in text
    assert ("40/100" in text) and ("loss 0.5000" in text or "loss=0.5000" in text)
  off = monitor.Console(progress=False, every_seconds=0.0, stream=Terminal())
  assert off.epoch(0, 1, total=10).bar is None
