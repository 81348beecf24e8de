"""`flax_sentiment.pretrain` is `flax_sentiment.data.word_vectors`; the old
name is kept for models saved before the move (a paragraph-vector run's
gensim model names `flax_sentiment.pretrain.stable_hash`) and other code
written before the package moved into role folders (docs/design.md)."""

import sys

from flax_sentiment.data import word_vectors as _moved

sys.modules[__name__] = _moved
