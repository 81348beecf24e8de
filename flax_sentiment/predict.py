"""`flax_sentiment.predict` is `flax_sentiment.usage.predict`; the old name is
kept for `python -m flax_sentiment.predict` (`flax-sentiment predict`),
`from flax_sentiment import predict` and other code written before the
package moved into role folders (docs/design.md)."""

import sys

from flax_sentiment.usage import predict as _moved

if __name__ == "__main__":
  _moved.main(sys.argv[1:])
else:
  sys.modules[__name__] = _moved
