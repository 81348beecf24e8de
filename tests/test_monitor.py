"""What a run shows: console lines and the progress bar."""

import io

from flax_sentiment.tracking import monitor


def test_plain_progress_when_not_a_terminal_and_bar_on_one():
  class Terminal(io.StringIO):
    def isatty(self):
      return True
  for stream, bar in ((io.StringIO(), False), (Terminal(), True)):
    console = monitor.Console(progress=True, every_seconds=0.0, stream=stream)
    epoch = console.epoch(0, 2, total=100)
    assert (epoch.bar is not None) == bar
    epoch.update(40, loss=20.0, correct=30.0, count=40.0)
    console.say("a line")
    epoch.close()
    text = stream.getvalue()
    assert "a line" in text
    assert ("40/100" in text) and ("loss 0.5000" in text or "loss=0.5000" in text)
  off = monitor.Console(progress=False, every_seconds=0.0, stream=Terminal())
  assert off.epoch(0, 1, total=10).bar is None
