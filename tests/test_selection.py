"""Choosing a run's epoch never reads test data: where validation and test
accuracy peak at different epochs, the run reports (result.json, the
report's table) and keeps (best_checkpoint/) the validation peak, and
reports that epoch's test accuracy."""

import json

import jax
import numpy as np

from flax_sentiment.training import loop
from flax_sentiment.usage import report, trained
from flax_sentiment.tracking.progress import Progress
from flax_sentiment.tracking.rundir import RunDir
from tests.conftest import tiny_config


def record(epoch, validation, test, auc):
  return {"epoch": epoch, "train_loss": 0.4, "train_accuracy": 0.8,
          "validation_loss": 0.5, "validation_accuracy": validation,
          "test_loss": 0.5, "test_accuracy": test, "test_auc": auc,
          "test_f1": auc - 0.1, "epoch_seconds": 2.0, "steps": 10 * epoch}


def history(validation, test, aucs):
  return [record(e + 1, v, t, a)
          for e, (v, t, a) in enumerate(zip(validation, test, aucs))]


# Seed 0: validation peaks at epoch 2, test at epoch 3; seed 1: validation
# at epoch 3, test at epoch 1.
SEED0 = history([0.70, 0.88, 0.80], [0.71, 0.74, 0.93], [0.80, 0.81, 0.97])
SEED1 = history([0.72, 0.75, 0.90], [0.95, 0.73, 0.69], [0.98, 0.82, 0.79])


def test_report_gives_the_test_accuracy_of_the_validation_chosen_epoch(
    tmp_path):
  for name, h in (("run-seed0", SEED0), ("run-seed1", SEED1)):
    RunDir(tmp_path / name).write_metrics(h)
  (name, workdirs), = report.group_runs(
      [tmp_path / "run-seed0", tmp_path / "run-seed1"]).items()
  row = report.summarize(name, workdirs)
  assert row["by"] == "validation"
  assert row["selected_epochs"] == [2, 3]
  assert row["selected_test"] == [0.74, 0.69]  # not 0.93 and 0.95
  assert row["selected_auc"] == [0.81, 0.79]
  assert row["selected_f1"] == [0.81 - 0.1, 0.79 - 0.1]
  table = report.markdown_table([row])
  mean, std = np.mean([0.74, 0.69]), np.std([0.74, 0.69], ddof=1)
  assert f"| {mean:.4f} ± {std:.4f} |" in table
  assert "validation (2, 3)" in table
  assert "optimistic" not in table  # the best-on-test column is for runs
  #                                   without validation only


class Lines:
  def __init__(self):
    self.lines = []

  def say(self, line):
    self.lines.append(line)


def test_result_json_is_the_validation_chosen_epoch(tmp_path):
  rundir = RunDir(tmp_path / "run")
  rundir.path.mkdir()
  console = Lines()
  loop.report_result(Progress(epoch=3, history=tuple(SEED0)), rundir, console)
  result = json.loads(rundir.result_file.read_text())
  assert result["selected_epoch"] == 2
  assert result["selected_by"] == "best validation accuracy"
  assert result["epochs_trained"] == 3
  assert result["validation_accuracy"] == 0.88
  assert result["test_accuracy"] == 0.74
  assert result["test_auc"] == 0.81
  assert console.lines == ["Result: epoch 2 (best validation accuracy): "
                           "test accuracy 0.7400"]


def test_a_run_keeps_and_reports_the_validation_peak(fake_imdb, tmp_path,
                                                     monkeypatch):
  """A real 3-epoch run whose evaluation is scripted: validation accuracy
  peaks at epoch 2, test accuracy rises to epoch 3, and early stopping
  (patience 1) ends a 4-epoch run after epoch 3, whose test accuracy was
  the best so far. result.json selects epoch 2 and best_checkpoint/ holds
  exactly the parameters at the end of epoch 2."""
  scripted = {"validation_accuracy": [0.60, 0.90, 0.70, 0.95],
              "test_accuracy": [0.65, 0.75, 0.98, 0.99]}
  real_evaluate, real_end_epoch = loop.evaluate, loop.end_epoch
  evaluated, params_at_end = [], []

  def scripted_evaluate(state, eval_sets, details=False):
    got = real_evaluate(state, eval_sets, details)
    assert {"validation_accuracy", "test_accuracy"} <= set(got)
    epoch = len(evaluated)
    evaluated.append(got)
    return {**got, **{k: v[epoch] for k, v in scripted.items()}}

  def recording_end_epoch(state, progress, run):
    params_at_end.append(jax.tree.map(np.array, state.params))
    return real_end_epoch(state, progress, run)

  monkeypatch.setattr(loop, "evaluate", scripted_evaluate)
  monkeypatch.setattr(loop, "end_epoch", recording_end_epoch)
  config = tiny_config(validation_examples=32, num_epochs=4,
                       early_stopping_patience=1,
                       cache_dir=str(tmp_path / "cache"))
  workdir = tmp_path / "run"
  records = loop.train_and_evaluate(config, workdir)

  assert [r["validation_accuracy"] for r in records] == [0.60, 0.90, 0.70]
  assert [r["test_accuracy"] for r in records] == [0.65, 0.75, 0.98]
  assert len(evaluated) == len(params_at_end) == 3  # stopped early
  assert RunDir(workdir).read_metrics() == records
  result = json.loads((workdir / "result.json").read_text())
  assert result["selected_epoch"] == 2
  assert result["epochs_trained"] == 3
  assert result["validation_accuracy"] == 0.90
  assert result["test_accuracy"] == 0.75
  # The other test metrics are the (real) ones of epoch 2 too.
  assert result["test_loss"] == evaluated[1]["test_loss"]
  assert result["test_auc"] == evaluated[1]["test_auc"]

  assert (workdir / "best_checkpoint").is_dir()
  _, _, best, meta = trained.load_trained_state(workdir)
  assert meta["epoch"] == 2
  assert (jax.tree.structure(best.params)
          == jax.tree.structure(params_at_end[1]))
  for got, want in zip(jax.tree.leaves(best.params),
                       jax.tree.leaves(params_at_end[1])):
    np.testing.assert_array_equal(np.asarray(got), want)
  # Training moved the parameters, so epoch 2's are not those of 1 or 3.
  for other in (params_at_end[0], params_at_end[2]):
    assert any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(other), jax.tree.leaves(params_at_end[1])))
  row = report.summarize("run", [workdir])
  assert row["selected_epochs"] == [2] and row["selected_test"] == [0.75]
