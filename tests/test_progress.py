"""The one rule that picks a run's epoch and stops it early: best validation
accuracy (first on ties), never test accuracy or a loss; the last epoch
without a validation split."""

import pytest

from flax_sentiment.tracking import progress
from flax_sentiment.tracking.progress import Progress


def record(epoch, validation=None, test=0.5, validation_loss=0.5,
           test_loss=0.5):
  """A metrics.jsonl record (the keys `metrics.epoch_record` writes)."""
  out = {"epoch": epoch, "train_loss": 0.4, "train_accuracy": 0.8,
         "test_loss": test_loss, "test_accuracy": test, "epoch_seconds": 1.0,
         "steps": 10 * epoch}
  if validation is not None:
    out.update(validation_loss=validation_loss,
               validation_accuracy=validation)
  return out


def history(validation, test, validation_loss=None, test_loss=None):
  n = len(test)
  validation_loss = validation_loss or [0.5] * n
  test_loss = test_loss or [0.5] * n
  return tuple(record(e + 1, None if validation is None else validation[e],
                      test[e], validation_loss[e], test_loss[e])
               for e in range(n))


# Validation accuracy peaks at epoch 2; test accuracy at epoch 4, and the
# losses (validation and test) are lowest at epoch 3: only a rule that reads
# validation accuracy picks epoch 2.
PEAKS_APART = history(validation=[0.70, 0.86, 0.84, 0.80, 0.79],
                      test=[0.60, 0.72, 0.75, 0.91, 0.66],
                      validation_loss=[0.6, 0.5, 0.3, 0.4, 0.45],
                      test_loss=[0.6, 0.5, 0.2, 0.3, 0.4])


def test_best_epoch_is_the_validation_peak_not_the_test_peak():
  assert progress.best_epoch(PEAKS_APART) == 2
  chosen, how = progress.selected(PEAKS_APART)
  assert chosen is PEAKS_APART[1]
  assert chosen["test_accuracy"] == 0.72  # not the best test accuracy, 0.91
  assert how == "best validation accuracy"


@pytest.mark.parametrize("peak", [1, 3, 5])
def test_best_epoch_follows_validation_wherever_it_peaks(peak):
  validation = [0.5 + 0.01 * e for e in range(5)]
  validation[peak - 1] = 0.9
  test = [0.9 - 0.1 * e for e in range(5)]  # peaks at epoch 1
  test[peak - 1] = 0.1  # and is worst at the validation peak
  h = history(validation, test)
  assert progress.best_epoch(h) == peak
  assert progress.selected(h)[0]["epoch"] == peak
  assert progress.selected(h)[0]["test_accuracy"] == 0.1


def test_best_epoch_takes_the_first_of_tied_epochs():
  h = history(validation=[0.80, 0.85, 0.85, 0.85], test=[0.7, 0.7, 0.8, 0.9])
  assert progress.best_epoch(h) == 2
  assert progress.selected(h)[0]["epoch"] == 2


def test_selected_without_validation_is_the_last_epoch():
  h = history(validation=None, test=[0.7, 0.9, 0.8])
  assert progress.best_epoch(h) == 0
  chosen, how = progress.selected(h)
  assert chosen is h[-1] and chosen["test_accuracy"] == 0.8
  assert how == "last epoch (no validation split)"


def test_best_epoch_of_no_history_is_zero():
  assert progress.best_epoch(()) == 0
  assert not progress.stopped_early((), patience=1)


def test_early_stopping_counts_epochs_since_the_validation_peak():
  # Best validation at epoch 2 of 5: 3 epochs without a new best.
  for patience in (1, 2, 3):
    assert progress.stopped_early(PEAKS_APART, patience)
  assert not progress.stopped_early(PEAKS_APART, 4)
  assert not progress.stopped_early(PEAKS_APART, 0)  # 0: never
  # After epoch 3 (one epoch past the peak) patience 1 stops, 2 does not,
  # although test accuracy still improves.
  assert progress.stopped_early(PEAKS_APART[:3], 1)
  assert not progress.stopped_early(PEAKS_APART[:3], 2)
  # While validation improves, no patience stops it, though test falls and
  # both losses rise.
  rising = history(validation=[0.6, 0.7, 0.8], test=[0.9, 0.8, 0.7],
                   validation_loss=[0.1, 0.2, 0.3], test_loss=[0.1, 0.2, 0.3])
  for patience in (1, 2):
    assert not progress.stopped_early(rising, patience)


def test_no_validation_split_never_stops_early():
  falling = history(validation=None, test=[0.9, 0.8, 0.7, 0.6])
  assert not progress.stopped_early(falling, patience=1)


def test_is_finished_by_epochs_or_by_early_stopping():
  class Config:
    num_epochs = 10
    early_stopping_patience = 3
    select_on = "accuracy"
  done = Progress(epoch=5, history=PEAKS_APART)
  assert progress.is_finished(done, Config)  # 3 epochs past the peak
  assert not progress.is_finished(Progress(epoch=4, history=PEAKS_APART[:4]),
                                  Config)
  Config.early_stopping_patience = 0
  assert not progress.is_finished(done, Config)
  Config.num_epochs = 5
  assert progress.is_finished(done, Config)


def test_after_epoch_appends_the_record_and_starts_new_sums():
  p = Progress(epoch=1, chunk=7, step=30, history=PEAKS_APART[:1])
  p = p.after_chunk({"loss": [1.0, 2.0], "correct": [3.0, 4.0],
                     "count": [8.0, 8.0]}, steps=2, seconds=1.5,
                    compile_seconds=0.5)
  assert p.chunk == 8 and p.step == 32
  assert p.sums == {"loss": 3.0, "correct": 7.0, "count": 16.0,
                    "seconds": 1.5, "compile_seconds": 0.5}
  after = p.after_epoch(PEAKS_APART[1])
  assert (after.epoch, after.chunk, after.step) == (2, 0, 32)
  assert after.history == PEAKS_APART[:2]
  assert after.sums == Progress().sums
  assert Progress.from_meta(after.to_meta()) == after
