"""`flax_sentiment.report` is `flax_sentiment.usage.report`; the old name is
kept for `python -m flax_sentiment.report` (`flax-sentiment report`), `from
flax_sentiment import report` and other code written before the package
moved into role folders (docs/design.md)."""

import sys

from flax_sentiment.usage import report as _moved

if __name__ == "__main__":
  _moved.main(sys.argv[1:])
else:
  sys.modules[__name__] = _moved
