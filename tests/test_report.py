"""Tables and pictures from run directories: seeds grouped, the epoch a run
reports, its AUC and F1 (blank for older runs), accuracy by review length."""

import numpy as np
import pytest

from flax_sentiment.usage import report, report_pictures
from flax_sentiment.tracking.rundir import RunDir


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


def detailed_history(test_accuracies, aucs, validation=None, by_length=None):
  """A newer run's history: with test_auc, test_f1 and accuracy by length."""
  records = history(test_accuracies, validation)
  for e, (record, auc) in enumerate(zip(records, aucs)):
    record.update(test_auc=auc, test_f1=auc - 0.1, test_precision=0.8,
                  test_recall=0.7,
                  test_confusion={"tp": 7, "fp": 2, "tn": 8, "fn": 3})
    if by_length is not None:
      record["test_accuracy_by_length"] = {
          "edges": [0, 64, 128], "accuracy": by_length[e],
          "count": [5, 10, 0]}
  return records


def test_old_runs_report_without_the_new_columns_and_pictures(tmp_path):
  RunDir(tmp_path / "old-seed0").write_metrics(history([0.80, 0.84]))
  out = tmp_path / "out" / "report"
  report.main([str(tmp_path / "old-seed0"), "--out", str(out)])
  table = (tmp_path / "out" / "report.md").read_text()
  assert "AUC" not in table and "F1" not in table
  assert (tmp_path / "out" / "report.png").stat().st_size > 0
  assert not (tmp_path / "out" / "report_by_length.png").exists()


def test_new_runs_get_auc_and_f1_of_the_selected_epoch(tmp_path):
  for seed, aucs in enumerate(([0.85, 0.90, 0.70], [0.87, 0.94, 0.60])):
    RunDir(tmp_path / f"new-seed{seed}").write_metrics(detailed_history(
        [0.80, 0.84, 0.82], aucs, validation=[0.81, 0.83, 0.83]))
  RunDir(tmp_path / "old").write_metrics(history([0.80, 0.84]))
  rows = [report.summarize(n, d) for n, d in report.group_runs(
      [tmp_path / "new-seed0", tmp_path / "new-seed1", tmp_path / "old"]
  ).items()]
  table = report.markdown_table(rows).splitlines()
  assert table[0].split(" | ")[5:8] == [
      "reported test acc.", "reported test AUC", "reported test F1"]
  # Epoch 2, chosen on validation: AUC 0.90 and 0.94, F1 0.80 and 0.84.
  assert "| 0.8400 ± 0.0000 | 0.9200 ± 0.0283 | 0.8200 ± 0.0283 | " \
      "validation (2, 2) |" in table[2]
  # The old run: blank cells where it recorded nothing.
  assert table[3].startswith("| old | 1 | 0.8000 | 0.8400 |  | 0.8400 |  |"
                             "  | last epoch (2) |")


def test_a_seed_without_the_new_keys_is_named_in_the_cell(tmp_path):
  RunDir(tmp_path / "mix-seed0").write_metrics(detailed_history(
      [0.80], [0.90]))
  RunDir(tmp_path / "mix-seed1").write_metrics(history([0.82]))
  rows = [report.summarize(n, d) for n, d in report.group_runs(
      [tmp_path / "mix-seed0", tmp_path / "mix-seed1"]).items()]
  assert "| 0.9000 (1 of 2 seeds) | 0.8000 (1 of 2 seeds) |" in \
      report.markdown_table(rows)


def test_accuracy_by_length_picture_and_curve_captions(tmp_path):
  for seed in range(2):
    RunDir(tmp_path / f"lstm-seed{seed}").write_metrics(detailed_history(
        [0.80, 0.84], [0.9, 0.9],
        by_length=[[0.7, 0.8, None], [0.75, 0.85 + 0.01 * seed, None]]))
  RunDir(tmp_path / "rnn").write_metrics(history([0.80, 0.84]))
  RunDir(tmp_path / "val").write_metrics(
      history([0.80, 0.84], validation=[0.8, 0.8]))
  rows = [report.summarize(n, d) for n, d in report.group_runs(
      [tmp_path / n for n in ("lstm-seed0", "lstm-seed1", "rnn")]).items()]
  # The last epoch's buckets, mean over seeds; the empty bucket is NaN.
  mean = report_pictures._mean_by_length(  # pylint: disable=protected-access
      [b for b in rows[0]["selected_by_length"]])
  np.testing.assert_allclose(mean, [0.75, 0.855, np.nan])
  assert report_pictures.length_bucket_labels([0, 64, 128]) == [
      "0-63", "64-127", "128+"]
  assert report_pictures.plot_by_length(rows, tmp_path / "by_length.png")
  assert (tmp_path / "by_length.png").stat().st_size > 0
  assert not report_pictures.plot_by_length(rows[1:], tmp_path / "none.png")
  assert not (tmp_path / "none.png").exists()
  # Captions say what is drawn: no validation lines without validation
  # data, bands only with several seeds.
  assert report_pictures.curve_labels(rows) == (
      ["train", "test"],
      "Accuracy per epoch: lines mean over seeds, bands min-max over seeds")
  assert report_pictures.curve_labels(rows[1:]) == (["train", "test"],
                                                   "Accuracy per epoch")
  with_validation = rows + [report.summarize("val", [tmp_path / "val"])]
  assert report_pictures.curve_labels(with_validation)[0] == [
      "train", "validation", "test"]
  report_pictures.plot_curves(with_validation, tmp_path / "curves.png")
  assert (tmp_path / "curves.png").stat().st_size > 0


def test_runs_of_k_classes_report_macro_auc_and_macro_f1(tmp_path):
  """A 3-class run records test_macro_auc / test_macro_f1 (no test_auc or
  test_f1): the table shows them, at the epoch chosen on validation, under
  headers that say macro; a 3-class ensemble directory's row shows its
  own."""
  import json  # pylint: disable=g-import-not-at-top
  run = tmp_path / "three-seed0"
  RunDir(run).write_metrics([
      dict(record, test_macro_auc=auc, test_macro_f1=f1,
           validation_macro_f1=0.5)
      for record, auc, f1 in zip(
          history([0.60, 0.70, 0.65], validation=[0.5, 0.8, 0.6]),
          (0.71, 0.83, 0.77), (0.41, 0.52, 0.47))])
  (run / "vocab.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
  mixed = tmp_path / "mix"
  mixed.mkdir()
  (mixed / "ensemble.json").write_text(json.dumps({
      "workdirs": [str(run)], "weights": [1.0], "validation_accuracy": 0.8,
      "test_accuracy": 0.72, "test_macro_auc": 0.85, "test_macro_f1": 0.55}))
  rows = [report.summarize(n, d) for n, d in report.group_runs(
      [run, mixed]).items()]
  table = report.markdown_table(rows).splitlines()
  assert table[0].split(" | ")[5:8] == [
      "reported test acc.", "reported test macro-AUC", "reported test macro-F1"]
  assert "| 0.7000 | 0.8300 | 0.5200 | validation (2) |" in table[2]
  assert "| 0.7200 | 0.8500 | 0.5500 |" in table[3]
