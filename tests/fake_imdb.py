"""Synthetic IMDB served through `tfds.testing.mock_data` (no download).

Positive reviews lean on positive words, negative ones on negative words, so a
model can learn them. As a script it runs `flax-sentiment train` on that data:

  FAKE_IMDB_TRAIN=256 FAKE_IMDB_TEST=128 python tests/fake_imdb.py --config ...
"""

import contextlib
import os
import pathlib
import sys
from unittest import mock

import numpy as np

NEUTRAL = "the a movie film plot actor scene story it was and of to is".split()
POSITIVE = "great good wonderful superb loved brilliant fun".split()
NEGATIVE = "bad awful boring terrible hated worst dull".split()


def fake_records(num_examples: int, seed: int,
                 unlabeled: bool = False) -> list[dict]:
  rng = np.random.default_rng(seed)
  records = []
  for i in range(num_examples):
    label = i % 2
    length = int(rng.integers(3, 40))
    mood = POSITIVE if label else NEGATIVE
    words = [mood[rng.integers(len(mood))] if rng.random() < 0.25
             else NEUTRAL[rng.integers(len(NEUTRAL))] for _ in range(length)]
    text = " ".join(words).capitalize() + ".<br /><br />The end."
    records.append({"text": text.encode(), "label": -1 if unlabeled else label})
  return records


@contextlib.contextmanager
def mock_imdb(num_train: int = 256, num_test: int = 128):
  """Within the block, tfds serves fake imdb_reviews train/test splits (and
  an unlabeled one as large as train)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  sizes = {"train": (num_train, 0), "test": (num_test, 1),
           "unsupervised": (num_train, 2, True)}

  def data_source(unused_builder, split, **unused_kwargs):
    return fake_records(*sizes[split])

  # tfds' download is mocked too; the reachability check must not look
  # at the network either.
  with tfds.testing.mock_data(as_data_source_fn=data_source), \
      mock.patch("flax_sentiment.data.imdb._source_reachable", lambda: True):
    yield


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
  from flax_sentiment import cli  # pylint: disable=g-import-not-at-top
  with mock_imdb(int(os.environ.get("FAKE_IMDB_TRAIN", 256)),
                 int(os.environ.get("FAKE_IMDB_TEST", 128))):
    cli.main(["train", *sys.argv[1:]])
