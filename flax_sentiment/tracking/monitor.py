"""What a run shows while it trains: console lines, a progress bar per epoch
and TensorBoard scalars. Only process 0 shows or writes anything.

On a terminal the epoch gets a tqdm bar (examples, ex/s, ETA, running loss
and accuracy), refreshed once per compiled chunk from metrics the loop has
already fetched (no extra host syncs). Elsewhere (a log file, a notebook
cell, `--config.progress=False`) it prints a plain line every
`progress_every_seconds`.
"""

import pathlib
import sys
import time

import jax
from tqdm import tqdm

from flax_sentiment.tracking import progress as progress_lib
from flax_sentiment.runtime.parallel import is_primary as _is_primary


class Console:
  """Lines for the user; they do not break a progress bar that is showing."""

  def __init__(self, progress: bool = True, every_seconds: float = 30.0,
               stream=None):
    self.stream = stream or sys.stdout
    self.enabled = _is_primary()
    self.bar_wanted = progress and self.stream.isatty()
    self.every_seconds = every_seconds
    self._bar = None

  def say(self, message: str) -> None:
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.write(message, file=self.stream)
    else:
      print(message, file=self.stream, flush=True)

  def epoch(self, epoch: int, num_epochs: int, total: int,
            done: int = 0) -> "EpochProgress":
    return EpochProgress(self, f"epoch {epoch + 1}/{num_epochs}", total, done)


class EpochProgress:
  """Progress of one epoch: `update` once per chunk with the chunk's sums."""

  def __init__(self, console: Console, label: str, total: int, done: int):
    self.console, self.label, self.total = console, label, total
    self.done = self.start_done = done
    self.sums = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    self.start = self.last_line = time.perf_counter()
    self.bar = None
    if console.enabled and console.bar_wanted:
      self.bar = tqdm(total=total, initial=done, desc=label, unit="ex",
                      file=console.stream, leave=False, dynamic_ncols=True,
                      smoothing=0.1)
      console._bar = self.bar

  def update(self, examples: int, loss: float, correct: float,
             count: float) -> None:
    self.done += examples
    for key, value in (("loss", loss), ("correct", correct), ("count", count)):
      self.sums[key] += value
    count = max(self.sums["count"], 1.0)
    running = {"loss": f"{self.sums['loss'] / count:.4f}",
               "acc": f"{self.sums['correct'] / count:.4f}"}
    if self.bar is not None:
      self.bar.update(examples)
      self.bar.set_postfix(running, refresh=False)
      return
    now = time.perf_counter()
    if (self.console.enabled and self.done < self.total
        and now - self.last_line >= self.console.every_seconds):
      self.last_line = now
      rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
      eta = (self.total - self.done) / max(rate, 1e-9)
      self.console.say(f"  {self.label}: {self.done:,}/{self.total:,} reviews"
                       f"  {rate:.0f} ex/s  ETA {eta:.0f}s  "
                       f"loss {running['loss']}  acc {running['acc']}")

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.console._bar = None
      self.bar = None


def _flat(name: str, value) -> dict[str, float]:
  """Nested dicts and lists (K classes' `per_class` and `confusion`) as
  scalars named by their keys and class ids: `test/confusion/0/2`."""
  if isinstance(value, (dict, list)):
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out = {}
    for key, inner in items:
      out.update(_flat(f"{name}/{key}", inner))
    return out
  return {} if value is None else {name: value}


class TensorBoard:
  """Scalars in `<workdir>/tensorboard/` (tensorboardX event files). The
  event file is made at the first scalar, so a run that trains nothing
  writes none."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory
    self.writer = None

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if not _is_primary():
      return
    if self.writer is None:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self.writer = SummaryWriter(str(self.directory), flush_secs=10)
    for name, value in values.items():
      self.writer.add_scalar(name, value, step)

  def epoch(self, record: dict) -> None:
    """An epoch's train/validation/test metrics (`epoch_scalars`)."""
    self.scalars(record["steps"], self.epoch_scalars(record))

  @staticmethod
  def epoch_scalars(record: dict) -> dict[str, float]:
    """A metrics.jsonl record's scalars by TensorBoard name, e.g.
    `test/accuracy`, `test/auc`, `test/confusion/tp`,
    `test/accuracy_by_length/64-128` (words; the last bucket `1024-inf`).
    Undefined values (None) and empty buckets are left out."""
    scalars = {}
    for key, value in record.items():
      if not key.startswith(("train_", "validation_", "test_")):
        continue
      name = key.replace("_", "/", 1)
      if isinstance(value, dict) and "edges" in value:
        highs = value["edges"][1:] + ["inf"]
        for low, high, accuracy in zip(value["edges"], highs,
                                       value["accuracy"]):
          if accuracy is not None:
            scalars[f"{name}/{low}-{high}"] = accuracy
      elif isinstance(value, (dict, list)):
        scalars.update(_flat(name, value))
      elif value is not None:
        scalars[name] = value
    return scalars


  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


# --- The lines a run prints ---

def epoch_line(record: dict, num_epochs: int) -> str:
  parts = [f"epoch {record['epoch']}/{num_epochs}"]
  for split in ("train", "validation", "test"):
    if f"{split}_loss" in record:
      short = {"validation": "val"}.get(split, split)
      parts.append(f"{short}_loss {record[f'{split}_loss']:.4f}  "
                   f"{short}_acc {record[f'{split}_accuracy']:.4f}")
  parts.append(f"{record['epoch_seconds']:.1f}s (compile "
               f"{record['compile_seconds']:.1f}s)  "
               f"{record['train_examples_per_second']:.0f} ex/s")
  return "  ".join(parts)


def early_stopping_line(history, patience: int, metric: str = "accuracy"
                        ) -> str:
  return (f"Early stopping: validation {progress_lib.METRIC_NAMES[metric]} "
          f"has not improved for {patience} epoch(s) since epoch "
          f"{progress_lib.best_epoch(history, metric)}.")


def start_line(progress: progress_lib.Progress, config,
               checkpoint_dir: pathlib.Path) -> str | None:
  """What a run in an existing workdir does: resume, or nothing."""
  if not progress.started:
    return None
  if progress_lib.stopped_early(progress.history,
                                config.early_stopping_patience,
                                config.select_on):
    return (f"This workdir's run stopped early after {progress.epoch} "
            f"epoch(s) (no validation gain since epoch "
            f"{progress_lib.best_epoch(progress.history, config.select_on)}"
            f"); nothing to "
            f"train. Pass a new --workdir to start again.")
  if progress_lib.is_finished(progress, config):
    return (f"This workdir's run is already finished ({progress.epoch} "
            f"epoch(s), step {progress.step}); nothing to train. Pass a "
            f"larger --config.num_epochs to train on, or a new --workdir to "
            f"start again.")
  return (f"Resuming from the checkpoint at step {progress.step} (epoch "
          f"{progress.epoch + 1}, chunk {progress.chunk}) in "
          f"{checkpoint_dir}")


def data_line(imdb) -> str:
  sizes = [f"{len(imdb.train):,} reviews"]
  if imdb.validation is not None:
    sizes.append(f"validating on {len(imdb.validation):,}")
  return (f"Training on {', '.join(sizes)}, testing on {len(imdb.test):,}; "
          f"{jax.device_count()} device(s) ({jax.devices()[0].platform}), "
          f"{jax.process_count()} process(es)")


def result_line(record: dict, how: str) -> str:
  return (f"Result: epoch {record['epoch']} ({how}): test accuracy "
          f"{record['test_accuracy']:.4f}")
