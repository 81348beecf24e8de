"""The stderr filter drops closed-event-loop reports whole and nothing else."""

import io

from flax_sentiment.runtime.quiet import ClosedLoopFilter

CLOSED = ("Traceback (most recent call last):\n"
          '  File "/x/asyncio/base_events.py", line 1, in call_soon\n'
          "    self._check_closed()\n"
          "RuntimeError: Event loop is closed\n")
IGNORED = ("Exception ignored in: <coroutine object read at 0x1>\n"
           "Traceback (most recent call last):\n"
           '  File "/x/asyncio/base_events.py", line 1, in call_soon\n'
           "RuntimeError: Event loop is closed\n")
CRASH = ("Traceback (most recent call last):\n"
         '  File "run.py", line 3, in <module>\n'
         "    main()\n"
         "ZeroDivisionError: division by zero\n")


def filtered(*writes: str) -> str:
  out = io.StringIO()
  stream = ClosedLoopFilter(out)
  for text in writes:
    stream.write(text)
  stream.flush()
  return out.getvalue()


def test_closed_loop_reports_are_dropped_whole():
  assert filtered(CLOSED, IGNORED, "error: one line\n", CLOSED) == (
      "error: one line\n")


def test_an_unrelated_traceback_keeps_its_header_and_every_line():
  assert filtered(CLOSED, CRASH) == CRASH
  # Written in pieces, as the traceback module does.
  assert filtered(*[c for c in CRASH]) == CRASH


def test_plain_lines_pass_at_once():
  out = io.StringIO()
  stream = ClosedLoopFilter(out)
  stream.write("Result: test accuracy 0.87\n")
  assert out.getvalue() == "Result: test accuracy 0.87\n"


def _interleaved(a: str, b: str) -> list[str]:
  """Two reports printed by two threads at once, line by line."""
  lines_a, lines_b = a.splitlines(True), b.splitlines(True)
  out = []
  for i in range(max(len(lines_a), len(lines_b))):
    out += lines_a[i:i + 1] + lines_b[i:i + 1]
  return out


def test_interleaved_closed_loop_reports_are_dropped_whole():
  # As printed after a failed restore (test_predict's scramble case).
  assert filtered(*_interleaved(CLOSED, CLOSED), "error: one line\n") == (
      "error: one line\n")
  assert filtered(*_interleaved(IGNORED, CLOSED)) == ""


def test_an_unrelated_traceback_interleaved_with_one_is_kept():
  out = filtered(*_interleaved(CLOSED, CRASH))
  assert "ZeroDivisionError: division by zero" in out
  assert out.count("Traceback (most recent call last):") == 2


def test_unretrieved_read_failures_are_dropped_other_asyncio_errors_kept(
    monkeypatch):
  """After a failed checkpoint read, asyncio's report of each pending read
  that failed (logged when the garbage collector gets to it) is dropped;
  any other asyncio error still shows."""
  import logging  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from flax_sentiment.runtime import quiet  # pylint: disable=g-import-not-at-top
  logger = logging.getLogger("asyncio")
  monkeypatch.setattr(logger, "filters", [])
  monkeypatch.setattr(sys, "stderr", io.StringIO())
  stream = io.StringIO()
  handler = logging.StreamHandler(stream)
  logger.addHandler(handler)
  try:
    quiet.drop_closed_loop_tracebacks()
    quiet.drop_closed_loop_tracebacks()  # once is enough
    assert sum(isinstance(f, quiet.UnretrievedReadFailures)
               for f in logger.filters) == 1
    logger.error("Future exception was never retrieved\nfuture: <Future "
                 "finished exception=ValueError('DATA_LOSS')>")
    logger.error("Task exception was never retrieved\ntask: <Task>")
    logger.error("Unclosed client session")
  finally:
    logger.removeHandler(handler)
  assert stream.getvalue() == "Unclosed client session\n"


def test_never_awaited_read_coroutines_are_silent_other_warnings_not(
    monkeypatch):
  import logging  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  from flax_sentiment.runtime import quiet  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(logging.getLogger("asyncio"), "filters", [])
  monkeypatch.setattr(sys, "stderr", io.StringIO())
  with warnings.catch_warnings(record=True) as shown:
    warnings.simplefilter("always")
    quiet.drop_closed_loop_tracebacks()
    warnings.warn("coroutine 'Store._get_array_metadatas' was never awaited",
                  RuntimeWarning)
    warnings.warn("overflow encountered in exp", RuntimeWarning)
  assert [str(w.message) for w in shown] == ["overflow encountered in exp"]
