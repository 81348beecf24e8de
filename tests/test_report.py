"""Tables from run directories: seeds grouped, the epoch a run reports."""

import pytest

from flax_sentiment import report
from flax_sentiment.rundir import RunDir


def history(test_accuracies, validation=None):
  return [dict({"epoch": e + 1, "test_accuracy": a, "test_loss": 0.5,
                "train_accuracy": 0.9, "train_loss": 0.3,
                "epoch_seconds": 10.0},
               **({"validation_accuracy": validation[e],
                   "validation_loss": 0.4} if validation else {}))
          for e, a in enumerate(test_accuracies)]


def test_without_validation_reports_the_last_epoch_and_marks_best_on_test(
    tmp_path):
  runs = {"lstm64-seed0": [0.80, 0.84, 0.82], "lstm64-seed1": [0.78, 0.83,
                                                               0.86]}
  for name, accuracies in runs.items():
    RunDir(tmp_path / name).write_metrics(history(accuracies))
  rows = [report.summarize(n, d) for n, d in report.group_runs(
      [tmp_path / name for name in runs]).items()]
  assert rows[0]["selected_test"] == [0.82, 0.86]  # the last epochs
  assert rows[0]["best_on_test"] == [0.84, 0.86]
  table = report.markdown_table(rows)
  assert "notebook's optimistic reading" in table
  assert "| lstm64 | 2 | 0.7900 ± 0.0141 | 0.8350 ± 0.0071 | 0.8400 ± 0.0283" \
      " | 0.8400 ± 0.0283 | last epoch (3, 3) | 0.8500 ± 0.0141 | 10.0 |" in table


def test_with_validation_reports_the_validation_best_epoch(tmp_path):
  RunDir(tmp_path / "best-seed0").write_metrics(
      history([0.80, 0.84, 0.82], validation=[0.81, 0.83, 0.83]))
  row = report.summarize("best", [tmp_path / "best-seed0"])
  assert row["selected_epochs"] == [2] and row["selected_test"] == [0.84]
  table = report.markdown_table([row])
  assert "optimistic" not in table and "validation (2)" in table
  with pytest.raises(SystemExit, match="no metrics.jsonl"):
    report.main([str(tmp_path / "nothing")])
