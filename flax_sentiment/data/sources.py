"""Your own reviews as data: CSV/TSV, JSON lines, or a folder of pos/ and neg/
text files (the aclImdb layout).

  iter_labeled(path, text_field, label_field) -> (text bytes, label) ...
  read_labeled(path, text_field, label_field) -> (texts [n] bytes, labels [n])
  read_unlabeled(path, text_field)            -> texts [n] bytes

- `.csv` / `.tsv` / `.txt`: a header row naming the columns (`text` and
  `label` by default); the delimiter is the suffix's (comma; tab for .tsv
  and .txt, e.g. NSMC's ratings_train.txt) unless the header row uses a
  semicolon or tab instead (Excel's CSV in much of Europe); quoted fields
  may hold newlines; a UTF-8 byte-order mark and CRLF line ends are fine.
- `.jsonl` (or `.ndjson`): one JSON object per line with those keys.
- `.parquet`: columns of those names (needs pyarrow, the `parquet` extra).
- a folder: `pos/*.txt` and `neg/*.txt`, one review a file (in name order).
- unlabeled text may also be a `.txt` file with one review per line.

Files are read as they are iterated (`iter_labeled`, `iter_unlabeled`):
memory does not grow with their size. Labels: 0/1, neg/pos,
negative/positive, false/true (any case). Rows with an empty text are
skipped with one warning line (NSMC's files hold a few). Anything else — a
missing column, a third label, bytes that are not UTF-8 — raises `DataError`
naming the file and line. A new format is one
reader function here and one entry in `_LABELED_READERS`.
"""

import contextlib
import csv
import io
import json
import pathlib
from typing import Callable, Iterator

import numpy as np

from flax_sentiment.runtime.errors import UserError

LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1,
          "false": 0, "true": 1}
LABEL_HELP = "0/1, neg/pos, negative/positive or false/true"
Labeled = tuple[list[bytes], np.ndarray]


class DataError(UserError):
  """A data file the reader cannot use; the message names file and line."""


def _decode(path: pathlib.Path, raw: bytes) -> str:
  """UTF-8 text (a byte-order mark dropped), or DataError at the line of
  the first undecodable byte."""
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: bytes that are not UTF-8 text (at byte "
                    f"{e.start}); save the file as UTF-8") from None


def _read_text(path: pathlib.Path) -> str:
  try:
    return _decode(path, path.read_bytes())
  except OSError as e:
    raise DataError(f"cannot read {path} ({e.strerror})") from None


@contextlib.contextmanager
def _open_text(path: pathlib.Path) -> Iterator[io.TextIOWrapper]:
  """The file as UTF-8 text (a byte-order mark dropped), read as it is
  iterated; bytes that are not UTF-8 become `_decode`'s DataError with the
  line they are on, read errors one line."""
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      yield f
  except UnicodeDecodeError:
    _decode(path, path.read_bytes())  # raises, naming the line
    raise
  except OSError as e:
    raise DataError(f"cannot read {path} ({e.strerror})") from None


def _label(value, path: pathlib.Path, line: int, field: str) -> int:
  key = str(value).strip().lower()
  if isinstance(value, bool):
    key = str(value).lower()
  elif isinstance(value, (int, float)) and value in (0, 1):
    key = str(int(value))
  if key not in LABELS:
    raise DataError(f"{path}:{line}: label {value!r} in {field!r} is not one "
                    f"of {LABEL_HELP}")
  return LABELS[key]


def _text(value, path: pathlib.Path, line: int, field: str) -> bytes | None:
  """The text as UTF-8 bytes; None for an empty one (skipped: NSMC's files
  hold a few)."""
  if value is None:
    return None
  if not isinstance(value, str):
    raise DataError(f"{path}:{line}: {field!r} is {type(value).__name__}, "
                    f"not text")
  return value.encode("utf-8") if value.strip() else None


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


def _rows_delimited(path: pathlib.Path, default_delimiter: str):
  """(line number, {column: value}, columns) per record, read as iterated;
  the line where it starts. The delimiter is `default_delimiter`, or what
  the header row uses (`sniff_delimiter`)."""
  csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
  with _open_text(path) as f:
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


def _rows_jsonl(path: pathlib.Path):
  with _open_text(path) as f:
    for line, text in enumerate(f, start=1):
      if not text.strip():
        continue
      try:
        row = json.loads(text)
      except json.JSONDecodeError as e:
        raise DataError(f"{path}:{line}: not a JSON object ({e.msg})"
                        ) from None
      if not isinstance(row, dict):
        raise DataError(f"{path}:{line}: a JSON {type(row).__name__}, not an "
                        f"object with the text and label")
      yield line, row, sorted(row)


PARQUET_BATCH_ROWS = 4096


def _rows_parquet(path: pathlib.Path):
  """(row number, {column: value}, columns) of a Parquet file, read a batch
  at a time (pyarrow: pip install 'flax-sentiment[parquet]')."""
  try:
    import pyarrow.parquet as parquet  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(f"{path}: reading .parquet needs pyarrow: pip install "
                    f"'flax-sentiment[parquet]' (or pyarrow)") from None
  try:
    table = parquet.ParquetFile(path)
    columns = table.schema_arrow.names
    line = 1
    for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
      for row in batch.to_pylist():
        yield line, row, columns
        line += 1
  except (OSError, ValueError) as e:  # pyarrow's errors derive from these
    raise DataError(f"{path}: not a readable Parquet file "
                    f"({' '.join(str(e).split())[:100]})") from None


def _from_rows(path: pathlib.Path, rows, text_field: str,
               label_field: str | None, skipped: list[int]
               ) -> Iterator[tuple[bytes, int]]:
  """(text, label) per row with a text (label -1 without `label_field`);
  the lines of rows with an empty text go to `skipped`."""
  what = ("key" if path.suffix.lower() in (".jsonl", ".ndjson") else
          "column")
  for line, row, columns in rows:
    for field, flag in ((text_field, "text_field"),
                        (label_field, "label_field")):
      if field is not None and field not in row:
        raise DataError(
            f"{path}:{line}: no {field!r} {what} (found: "
            f"{', '.join(map(str, columns)) or 'none'}); name yours with "
            f"--config.{flag}")
    text = _text(row[text_field], path, line, text_field)
    label = (-1 if label_field is None else
             _label(row[label_field], path, line, label_field))
    if text is None:
      skipped.append(line)
    else:
      yield text, label


def _read_folder(path: pathlib.Path, text_field: str,
                 label_field: str | None, skipped: list[int]
                 ) -> Iterator[tuple[bytes, int]]:
  del text_field, label_field  # the layout names the labels
  folders = [(path / name, label) for name, label in (("neg", 0), ("pos", 1))]
  if not all(folder.is_dir() for folder, _ in folders):
    raise DataError(f"{path} is a folder without pos/ and neg/ subfolders; "
                    f"give a folder in the aclImdb layout (pos/*.txt, "
                    f"neg/*.txt), or a .csv/.tsv/.jsonl file")
  for folder, label in folders:
    for file in sorted(folder.glob("*.txt")):
      text = _read_text(file)
      if not text.strip():
        raise DataError(f"{file}:1: empty review; remove the file or give "
                        f"it a review")
      yield text.encode("utf-8"), label


_ROWS: dict[str, Callable] = {
    ".csv": lambda p: _rows_delimited(p, ","),
    ".tsv": lambda p: _rows_delimited(p, "\t"),
    # e.g. NSMC's ratings_train.txt: tab-separated with a header row.
    ".txt": lambda p: _rows_delimited(p, "\t"),
    ".jsonl": _rows_jsonl,
    ".ndjson": _rows_jsonl,
    ".parquet": _rows_parquet,
}
_LABELED_READERS = _ROWS  # the suffixes a labeled file may have
FORMATS = ", ".join(_LABELED_READERS) + " or a folder with pos/ and neg/"


def check_exists(path: pathlib.Path, flag: str) -> None:
  if not path.exists():
    raise DataError(f"--config.{flag}={path} not found; give "
                    f"{'imdb_reviews or ' if flag == 'dataset' else ''}a "
                    f"{FORMATS}")


def iter_labeled(path: str | pathlib.Path, text_field: str = "text",
                 label_field: str | None = "label", flag: str = "dataset",
                 say: Callable[[str], None] | None = None
                 ) -> Iterator[tuple[bytes, int]]:
  """(text as UTF-8 bytes, label: 1 positive, 0 negative; -1 without
  `label_field`) per review of a file or folder, in file order, read as it
  is iterated (memory does not grow with the file). Reviews with an empty
  text are skipped, said in one warning line to `say`; DataError for
  anything unusable, or no review at all."""
  path = pathlib.Path(path)
  check_exists(path, flag)
  skipped = []
  if path.is_dir():
    reviews = _read_folder(path, text_field, label_field, skipped)
  elif path.suffix.lower() in _ROWS:
    reviews = _from_rows(path, _ROWS[path.suffix.lower()](path), text_field,
                         label_field, skipped)
  else:
    raise DataError(f"--config.{flag}={path}: unknown format "
                    f"{path.suffix or '(no suffix)'!r}; give a {FORMATS}")
  count = 0
  for review in reviews:
    count += 1
    yield review
  if not count:
    raise DataError(f"{path} holds no reviews" + (
        f" (every text is empty: lines {skipped[0]}-{skipped[-1]})"
        if skipped else ""))
  if skipped and say is not None:
    say(f"warning: {path}: skipped {len(skipped):,} review"
        f"{'s' if len(skipped) > 1 else ''} with an empty text (line"
        f"{'s' if len(skipped) > 1 else ''} "
        f"{', '.join(map(str, skipped[:5]))}{' ...' if len(skipped) > 5 else ''})")


def read_labeled(path: str | pathlib.Path, text_field: str = "text",
                 label_field: str = "label", flag: str = "dataset",
                 say: Callable[[str], None] | None = None) -> Labeled:
  """Texts (UTF-8 bytes) and labels [n] int32 (1 = positive) of a file or
  folder, in file order (`iter_labeled`, held in memory)."""
  texts, labels = [], []
  for text, label in iter_labeled(path, text_field, label_field, flag, say):
    texts.append(text)
    labels.append(label)
  return texts, np.array(labels, np.int32)


def iter_unlabeled(path: str | pathlib.Path, text_field: str = "text",
                   flag: str = "unlabeled_dataset",
                   say: Callable[[str], None] | None = None
                   ) -> Iterator[bytes]:
  """Texts of unlabeled reviews, read as iterated: a .txt file (one review
  a line; blank lines skipped), or a labeled file/folder whose labels are
  ignored."""
  path = pathlib.Path(path)
  check_exists(path, flag)
  if path.is_file() and path.suffix.lower() == ".txt":
    count = 0
    with _open_text(path) as f:
      for line in f:
        if line.strip():
          count += 1
          yield line.rstrip("\r\n").encode("utf-8")
    if not count:
      raise DataError(f"{path} holds no reviews")
  elif path.is_dir() or path.suffix.lower() in _ROWS:
    for text, _ in iter_labeled(path, text_field, None if path.is_file()
                                else "label", flag, say):
      yield text
  else:
    raise DataError(f"--config.{flag}={path}: unknown format "
                    f"{path.suffix or '(no suffix)'!r}; give a .txt (one "
                    f"review a line) or a {FORMATS}")


def read_unlabeled(path: str | pathlib.Path, text_field: str = "text",
                   flag: str = "unlabeled_dataset",
                   say: Callable[[str], None] | None = None) -> list[bytes]:
  """`iter_unlabeled`'s texts, held in memory."""
  return list(iter_unlabeled(path, text_field, flag, say))
