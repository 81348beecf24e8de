"""Keeping library noise from the user, scoped to the calls it comes from.

The project reports a failure itself, in one line; absl/orbax/tfds log lines
and asyncio's reports of a failed read would only bury it:

- `quiet_library()` (a context manager around orbax and tfds calls) mutes
  their loggers and the unraisable-exception hook, and restores both after.
- `drop_closed_loop_tracebacks()`, after a failed checkpoint read, mutes
  asyncio's "Future exception was never retrieved" reports (the reads
  orbax/tensorstore left pending, collected whenever the garbage collector
  runs) and handles this: the
  reads orbax/tensorstore leave pending print, shortly after and from their
  own threads, one "RuntimeError: Event loop is closed" traceback (or an
  "Exception ignored in: <coroutine ...>" report) each. stderr then passes
  through a filter that drops exactly those whole reports; every other line
  — an unrelated traceback included, header and all — goes through as is.

This module sits below everything (standard library only).
"""

import contextlib
import gc
import logging
import sys
import warnings

_CLOSED_LOOP = "RuntimeError: Event loop is closed"
# The warning a failed read's pending coroutine gives when it is collected.
UNAWAITED = r"coroutine '.*' was never awaited"
_REPORT_STARTS = ("Traceback (most recent call last):",
                  "Exception ignored in: <coroutine")


@contextlib.contextmanager
def quiet_library():
  """Within the block: absl/orbax/asyncio log lines and unraisable-exception
  reports (failed coroutines) are muted; restored on exit."""
  loggers = [logging.getLogger(), logging.getLogger("absl"),
             logging.getLogger("asyncio")]
  levels = [logger.level for logger in loggers]
  hook = sys.unraisablehook
  for logger in loggers:
    logger.setLevel(logging.CRITICAL)
  sys.unraisablehook = lambda unraisable: None
  try:
    yield
  finally:
    with warnings.catch_warnings():  # "coroutine ... was never awaited"
      warnings.filterwarnings("ignore", UNAWAITED, RuntimeWarning)
      gc.collect()  # finalize failed coroutines while the hook is muted
    sys.unraisablehook = hook
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


class ClosedLoopFilter:
  """A text stream that holds back each traceback or "Exception ignored"
  report until its last line, then drops it if it is a closed-event-loop
  report of a failed read and passes it on whole otherwise. Reports that
  several threads print at once interleave: lines are held until every
  report begun has ended, then dropped only if all of them are
  closed-loop reports."""

  def __init__(self, stream):
    self.stream = stream
    self._pending = ""  # a partial line
    self._report: list[str] = []  # lines of the reports being held
    self._open = 0  # reports begun and not yet ended
    self._keep = False  # one of the held reports is not a closed-loop one

  def write(self, text: str) -> int:
    self._pending += text
    *lines, self._pending = self._pending.split("\n")
    for line in lines:
      self._line(line)
    return len(text)

  def _line(self, line: str) -> None:
    if not self._report:
      if line.startswith(_REPORT_STARTS):
        self._report, self._open, self._keep = [line], 1, False
      else:
        self.stream.write(line + "\n")
      return
    previous = self._report[-1]
    self._report.append(line)
    if line.startswith(_REPORT_STARTS[0]):
      if not previous.startswith(_REPORT_STARTS[1]):
        self._open += 1  # else: "Exception ignored in:" then its traceback
      return
    if line.startswith(_REPORT_STARTS[1]):
      self._open += 1
      return
    if line and not line.startswith((" ", "\t")):  # an exception line
      self._open -= 1
      self._keep |= not line.startswith(_CLOSED_LOOP)
      if self._open <= 0:
        report, self._report = self._report, []
        if self._keep:
          self.stream.write("\n".join(report) + "\n")

  def flush(self) -> None:
    if self._report and len(self._report) > 200:  # not a report after all
      self.stream.write("\n".join(self._report) + "\n")
      self._report = []
    self.stream.flush()

  def __getattr__(self, name):
    return getattr(self.stream, name)


class UnretrievedReadFailures(logging.Filter):
  """Drops asyncio's "Future/Task exception was never retrieved" reports:
  after a failed checkpoint read, the reads orbax/tensorstore left pending
  are collected later (when, is the garbage collector's choice) and each
  reports the failure the project has already said in its one line."""

  PREFIXES = ("Future exception was never retrieved",
              "Task exception was never retrieved")

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(self.PREFIXES)


def drop_closed_loop_tracebacks() -> None:
  """Routes stderr through `ClosedLoopFilter` and mutes asyncio's reports
  of unretrieved read failures (`UnretrievedReadFailures`), once per
  process."""
  if not isinstance(sys.stderr, ClosedLoopFilter):
    sys.stderr = ClosedLoopFilter(sys.stderr)
  asyncio_logger = logging.getLogger("asyncio")
  if not any(isinstance(f, UnretrievedReadFailures)
             for f in asyncio_logger.filters):
    asyncio_logger.addFilter(UnretrievedReadFailures())
    # Their coroutines, collected later, would warn "never awaited" too.
    warnings.filterwarnings("ignore", UNAWAITED, RuntimeWarning)
