"""What a user meets in a real run (a fake-data run.py in a subprocess):
startup and progress lines, TensorBoard, validation-based selection, a
finished run re-run, predict's warnings and inputs, and the report."""

import json

import pytest

from flax_sentiment.configs import default
from flax_sentiment.tracking import progress, rundir
from flax_sentiment.usage import report
from flax_sentiment.tracking.rundir import RunDir
from tests.conftest import (one_error_line, predict_cli, run_fake, snapshot,
                            tiny_flags)


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
  assert "absl" not in proc.stderr and len(proc.stderr.splitlines()) == 3
  assert "warning: 'zzyzx qwrtp': none of its words is in the vocabulary" in proc.stderr
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
