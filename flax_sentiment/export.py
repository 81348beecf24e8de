"""`flax_sentiment.export` is `flax_sentiment.usage.export`; the old name is
kept for `python -m flax_sentiment.export` (`flax-sentiment export`), `from
flax_sentiment import export` and other code written before the package
moved into role folders (docs/design.md)."""

import sys

from flax_sentiment.usage import export as _moved

if __name__ == "__main__":
  _moved.main(sys.argv[1:])
else:
  sys.modules[__name__] = _moved
