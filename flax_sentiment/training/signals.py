"""SIGTERM/SIGINT during training: finish the compiled call, checkpoint, exit.

`StopSignals` turns the signals into a flag the loop checks between compiled
calls — agreed over the processes of a multi-process run, so a preemption
that reaches one host stops every host at the same step, with one save; `Interrupted` is raised once the checkpoint is written, and `run.py`
exits with 128 + the signal number (143 for SIGTERM, 130 for Ctrl-C).
"""

import signal


class Interrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint was written before raising."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum


class StopSignals:
  """Within the block, SIGTERM/SIGINT set `signum` instead of stopping."""

  def __init__(self):
    self.signum = None
    self.from_peer = False  # another process of the run was signalled
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, _frame):
    self.signum = signum

  @property
  def arrived(self) -> bool:
    return self.signum is not None

  def agreed(self, any_process) -> bool:
    """Whether the run stops here, agreed over its processes (`any_process`
    ORs a flag over them, a collective): a process that was not signalled
    stops with its peers, as if it had received their SIGTERM."""
    # Every process decides on the gathered flags alone: a signal that
    # arrives while the flags are being gathered counts at the next call in
    # every process (deciding on `arrived` after the collective would stop
    # one process while the others train on, waiting on it forever).
    if not any_process(self.arrived):
      return False
    if not self.arrived:
      self.signum, self.from_peer = signal.SIGTERM, True
    return True

  def interrupted(self, step: int, epoch: int, directory) -> Interrupted:
    name = signal.Signals(self.signum).name
    cause = ("with another process of this run, which got a stop signal"
             if self.from_peer else f"by {name}")
    return Interrupted(self.signum, (
        f"Stopped {cause} at step {step} (epoch {epoch + 1}); checkpoint "
        f"saved in {directory}. Run the same command again to resume."))

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
