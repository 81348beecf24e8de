"""IMDB as tfds prepares it (`imdb_reviews`, ArrayRecord files): finding or
preparing it, and reading a split whole."""

import socket

import numpy as np

from flax_sentiment.runtime.errors import DataNotFoundError

NAME = "imdb_reviews"
# Where tfds' imdb_reviews builder downloads the reviews from.
IMDB_SOURCE_HOST = "ai.stanford.edu"


def data_source(config):
  """The prepared tfds builder of imdb_reviews (prepared now if it may
  download); DataNotFoundError, one line with the fix, if it cannot be."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from flax_sentiment.runtime.quiet import quiet_library  # pylint: disable=g-import-not-at-top
  with quiet_library():  # no tfds log line before our own message
    builder = tfds.builder(NAME, data_dir=config.data_dir)
    prepared, looked_in = builder.is_prepared(), builder.data_dir
  if not prepared:
    fix = ("Point --config.data_dir (or the TFDS_DATA_DIR environment "
           "variable) at a folder that holds imdb_reviews/, e.g. "
           "../shared/tensorflow_datasets")
    if not config.download:
      raise DataNotFoundError(
          f"IMDB data not found: looked in {looked_in} and download is off "
          f"(--config.download=False). {fix}.")
    if not _source_reachable():
      # tfds would retry for minutes before failing; say it now.
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in}, and {IMDB_SOURCE_HOST} (where "
          f"tfds downloads it from) cannot be resolved: this machine looks "
          f"offline. {fix}.")
    try:
      builder.download_and_prepare(file_format="array_record")
    except ImportError as e:
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in}, and preparing it needs "
          f"TensorFlow ({e}): pip install -e '.[prepare]' (or "
          f"tensorflow-cpu), or {fix[0].lower()}{fix[1:]}.") from e
    except Exception as e:  # network, disk ...
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in} and downloading it failed "
          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
          f"{fix}, or run where the internet is reachable.") from e
  return builder


def _source_reachable() -> bool:
  try:
    socket.getaddrinfo(IMDB_SOURCE_HOST, 80)
    return True
  except OSError:
    return False


def read_split(builder, split: str) -> tuple[list[bytes], np.ndarray]:
  """All (text, label) pairs of a split, in tfds order."""
  source = builder.as_data_source(split=split)
  if hasattr(source, "__getitems__"):
    records = source.__getitems__(list(range(len(source))))
  else:
    records = [source[i] for i in range(len(source))]
  return ([r["text"] for r in records],
          np.array([r["label"] for r in records], np.int32))
