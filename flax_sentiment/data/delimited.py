"""CSV and TSV files parsed by pyarrow a block at a time: the fast way
`sources` reads a large file (the csv module takes 15 µs a row in Python).

Only what it is sure of: a batch it cannot judge exactly as the csv module
would (a row of another length, a label that is not a label word, a field
over the size limit, bytes that are not UTF-8 ...) raises `Unsure` before
the batch is given, and `sources` reads on from there with the csv module,
whose errors name the line. tests/test_sources.py holds the two equal.
"""

import csv
import pathlib
import re
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from flax_sentiment.data.reading import DataError, open_text

BLOCK_BYTES = 8 << 20  # bytes parsed at a time
# What Python's str.strip() strips (`str.isspace`), for the labels and the
# test of an empty text.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001"
               "\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028"
               "\u2029\u202f\u205f\u3000")  # tests/test_sources.py
_BLANK = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]*$"


class Unsure(Exception):
  """A batch for the csv module to read."""


def batches(path, delimiter: str, header: list[str], text_field: str,
            label_field: str | None, label_ids: dict[str, int],
            max_bytes: int) -> Iterator[tuple[list[bytes], np.ndarray,
                                              np.ndarray]]:
  """(texts [k] UTF-8 bytes, labels [k] int32 (-1 without `label_field`),
  the rows skipped for an empty text [m], counted from the batch's first)
  per block of the file after its one-line `header` (names stripped), in
  file order. `label_ids`: label word (lower case) -> label."""
  columns = [text_field] + ([label_field] if label_field else [])
  if len(set(header)) != len(header) or not set(columns) <= set(header):
    raise Unsure("a header the csv module reads")
  try:
    reader = pa_csv.open_csv(
        path, read_options=pa_csv.ReadOptions(
            skip_rows=1, column_names=header, block_size=BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns}))
    words = pa.array(list(label_ids))
    ids = np.array(list(label_ids.values()), np.int32)
    for batch in reader:
      yield _texts_and_labels(batch, text_field, label_field, words, ids,
                              max_bytes)
  except (pa.ArrowException, OSError) as e:
    raise Unsure(str(e)) from None


def value_counts(path, delimiter: str, header: list[str], field: str
                 ) -> list[tuple[str, int]]:
  """(value, rows holding it) of one column (or Unsure)."""
  if len(set(header)) != len(header) or field not in header:
    raise Unsure("a header the csv module reads")
  try:
    column = pa_csv.read_csv(
        path, read_options=pa_csv.ReadOptions(
            skip_rows=1, column_names=header, block_size=BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            include_columns=[field], column_types={field: pa.string()})
    ).column(field)
  except (pa.ArrowException, OSError) as e:
    raise Unsure(str(e)) from None
  counts = pc.value_counts(column)
  return list(zip(counts.field("values").to_pylist(),
                  counts.field("counts").to_pylist()))


def _texts_and_labels(batch: pa.RecordBatch, text_field: str,
                      label_field: str | None, words: pa.Array,
                      ids: np.ndarray, max_bytes: int) -> tuple:
  """`batches`' item of one parsed block (or Unsure)."""
  texts = batch.column(text_field)
  if len(texts) and pc.max(pc.binary_length(texts)).as_py() > max_bytes:
    raise Unsure("a field the csv module refuses")
  if label_field is None:
    labels = np.full(len(texts), -1, np.int32)
  else:
    found = pc.index_in(pc.ascii_lower(pc.utf8_trim(
        batch.column(label_field), WHITESPACE)), value_set=words)
    if found.null_count:
      raise Unsure("a label the csv module names")
    labels = ids[found.to_numpy()]
  empty = pc.match_substring_regex(texts, _BLANK).to_numpy(
      zero_copy_only=False)
  if empty.any():
    kept = np.flatnonzero(~empty)
    texts, labels = texts.take(pa.array(kept)), labels[kept]
  return texts.cast(pa.binary()).to_pylist(), labels, np.flatnonzero(empty)


_SAFE_NAME = re.compile(r"^[^\r\n\"]*$")


def simple_header(line: str) -> bool:
  """Whether a header line is one the parser reads as the csv module does
  (no quotes, no line break inside)."""
  return bool(_SAFE_NAME.match(line.rstrip("\r\n")))


# The longest field read (the csv module's own limit, 131,072 characters, is
# below some real reviews' length); a longer one is refused in one line.
MAX_FIELD_CHARS = 16 << 20


def sniff_delimiter(header: str, default: str) -> str:
  """The delimiter of a header row: `default` if it holds it, else a
  semicolon (Excel's CSV where the decimal mark is a comma) or a tab found
  there instead."""
  if default in header:
    return default
  for other in (";", "\t", ","):
    if other in header:
      return other
  return default


def rows(path: pathlib.Path, default_delimiter: str):
  """(line number, {column: value}, columns) per record, read as iterated;
  the line where it starts. The delimiter is `default_delimiter`, or what
  the header row uses (`sniff_delimiter`)."""
  csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
  with open_text(path) as f:
    delimiter = sniff_delimiter(f.readline(), default_delimiter)
    f.seek(0)
    reader = csv.reader(f, delimiter=delimiter)
    try:
      header = next(reader)
    except StopIteration:
      raise DataError(f"{path} is empty; it needs a header row and reviews"
                      ) from None
    except csv.Error as e:
      raise DataError(f"{path}:1: {e}") from None
    header = [h.strip() for h in header]
    line = reader.line_num + 1
    try:
      for row in reader:
        if row:  # blank lines between records
          if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields where the "
                            f"header has {len(header)} ({', '.join(header)}); "
                            f"quote texts that hold the delimiter")
          yield line, dict(zip(header, row)), header
        line = reader.line_num + 1
    except csv.Error as e:
      if "field larger than field limit" in str(e):
        raise DataError(f"{path}:{line}: a field longer than "
                        f"{MAX_FIELD_CHARS:,} characters (an unclosed quote "
                        f"runs to the end of the file?); close the quote, or "
                        f"split the text") from None
      raise DataError(f"{path}:{line}: {e}") from None
