"""Where training stands, and the one rule that picks a run's epoch.

`Progress` is saved in every checkpoint's meta: the epoch, the position in
its data plan, the running sums of this epoch and the metrics history. What
follows from the history (the validation-best epoch, early stopping) is
derived from it, never stored, so it cannot disagree with it.
"""

import dataclasses

from flax_sentiment.tracking import metrics


def _new_sums() -> dict[str, float]:
  return {**metrics.empty_totals(), "seconds": 0.0, "compile_seconds": 0.0}


@dataclasses.dataclass(frozen=True)
class Progress:
  """Where training stands; saved in every checkpoint's meta."""
  epoch: int = 0                 # current (0-based) epoch
  chunk: int = 0                 # next chunk of the epoch's plan to run
  step: int = 0                  # train steps done, all epochs
  sums: dict = dataclasses.field(default_factory=_new_sums)
  history: tuple = ()            # metrics.jsonl, one record per epoch

  @property
  def started(self) -> bool:
    return bool(self.step or self.epoch)

  def to_meta(self) -> dict:
    return {**dataclasses.asdict(self), "history": list(self.history)}

  @classmethod
  def from_meta(cls, meta: dict) -> "Progress":
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in meta.items() if k in fields}
    values["history"] = tuple(values.get("history", ()))
    return cls(**values)

  def after_chunk(self, sums: dict, steps: int, seconds: float,
                  compile_seconds: float) -> "Progress":
    totals = metrics.add(self.sums, sums)
    totals["seconds"] = self.sums["seconds"] + seconds
    totals["compile_seconds"] = (self.sums["compile_seconds"]
                                 + compile_seconds)
    return dataclasses.replace(self, chunk=self.chunk + 1,
                               step=self.step + steps, sums=totals)

  def after_epoch(self, record: dict) -> "Progress":
    return Progress(epoch=self.epoch + 1, step=self.step,
                    history=self.history + (record,))


METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def best_epoch(history, metric: str = "accuracy") -> int:
  """The 1-based epoch with the best validation `metric` (accuracy, or
  macro_f1 for K classes; the first on ties); 0 without a validation
  split."""
  key = f"validation_{metric}"
  if not history or key not in history[0]:
    return 0
  return max(history, key=lambda r: (r[key] if r[key] is not None
                                     else -1.0, -r["epoch"]))["epoch"]


def stopped_early(history, patience: int, metric: str = "accuracy") -> bool:
  """True once `patience` epochs have passed without a new best validation
  `metric` (patience 0 or no validation split: never)."""
  best = best_epoch(history, metric)
  return bool(patience) and bool(best) and len(history) - best >= patience


def selected(history, metric: str = "accuracy") -> tuple[dict, str]:
  """The record a run reports and how it was chosen: the best on validation
  `metric` if there is a validation split, else the last epoch. Never on
  test."""
  best = best_epoch(history, metric)
  if best:
    return history[best - 1], f"best validation {METRIC_NAMES[metric]}"
  return history[-1], "last epoch (no validation split)"


def is_finished(progress: Progress, config) -> bool:
  return (progress.epoch >= config.num_epochs
          or stopped_early(progress.history, config.early_stopping_patience,
                           config.select_on))
