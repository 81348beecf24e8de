"""`flax_sentiment.serve` is `flax_sentiment.usage.serve`; the old name is kept
for `python -m flax_sentiment.serve` (`flax-sentiment serve`), `from
flax_sentiment import serve` and other code written before the package moved
into role folders (docs/design.md)."""

import sys

from flax_sentiment.usage import serve as _moved

if __name__ == "__main__":
  _moved.main(sys.argv[1:])
else:
  sys.modules[__name__] = _moved
