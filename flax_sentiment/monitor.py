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


def _is_primary() -> bool:
  return jax.process_index() == 0


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


class TensorBoard:
  """Scalars in `<workdir>/tensorboard/` (tensorboardX event files)."""

  def __init__(self, directory: pathlib.Path):
    self.writer = None
    if _is_primary():
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self.writer = SummaryWriter(str(directory), flush_secs=10)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if self.writer is not None:
      for name, value in values.items():
        self.writer.add_scalar(name, value, step)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
