"""Reading a data file as UTF-8 text, and the error a data file gets: one
line naming the file and line (`DataError`)."""

import contextlib
import io
import pathlib
from typing import Iterator

from flax_sentiment.runtime.errors import UserError


class DataError(UserError):
  """A data file the reader cannot use; the message names file and line."""


def decode(path: pathlib.Path, raw: bytes) -> str:
  """UTF-8 text (a byte-order mark dropped), or DataError at the line of
  the first undecodable byte."""
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: bytes that are not UTF-8 text (at byte "
                    f"{e.start}); save the file as UTF-8") from None


def read_text(path: pathlib.Path) -> str:
  try:
    return decode(path, path.read_bytes())
  except OSError as e:
    raise DataError(f"cannot read {path} ({e.strerror})") from None


@contextlib.contextmanager
def open_text(path: pathlib.Path) -> Iterator[io.TextIOWrapper]:
  """The file as UTF-8 text (a byte-order mark dropped), read as it is
  iterated; bytes that are not UTF-8 become `_decode`'s DataError with the
  line they are on, read errors one line."""
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      yield f
  except UnicodeDecodeError:
    decode(path, path.read_bytes())  # raises, naming the line
    raise
  except OSError as e:
    raise DataError(f"cannot read {path} ({e.strerror})") from None
