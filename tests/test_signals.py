"""Stopping on a signal, agreed over the processes of a run."""

import signal

from flax_sentiment.training.signals import StopSignals


def test_a_signal_during_the_collective_counts_at_the_next_call():
  """Every process decides on the gathered flags: a SIGTERM that arrives
  while they are gathered (the others contributed False) must not stop this
  process alone, and stops every process at the next call."""
  with StopSignals() as stop:
    gathered = []

    def any_process(flag):  # the peers say False; the signal lands meanwhile
      gathered.append(flag)
      stop._handle(signal.SIGTERM, None)
      return flag

    assert stop.agreed(any_process) is False
    assert stop.agreed(any_process) is True
    assert gathered == [False, True]
    assert not stop.from_peer


def test_a_peer_signal_stops_an_unsignalled_process_as_sigterm():
  with StopSignals() as stop:
    assert stop.agreed(lambda flag: False) is False
    assert stop.agreed(lambda flag: True) is True
    assert stop.from_peer and stop.signum == signal.SIGTERM
    assert "with another process" in str(stop.interrupted(8, 0, "ckpts"))
