"""`flax_sentiment.exported` is `flax_sentiment.usage.exported`; the old name
is kept for `from flax_sentiment import exported` (the export loader) and
other code written before the package moved into role folders
(docs/design.md)."""

import sys

from flax_sentiment.usage import exported as _moved

sys.modules[__name__] = _moved
