"""Your own reviews as data: CSV/TSV, JSON lines, or a folder of pos/ and neg/
text files (the aclImdb layout).

  read_labeled(path, text_field, label_field) -> (texts [n] bytes, labels [n])
  read_unlabeled(path, text_field)            -> texts [n] bytes

- `.csv` / `.tsv` / `.txt`: a header row naming the columns (`text` and
  `label` by default); the delimiter is the suffix's (comma; tab for .tsv
  and .txt, e.g. NSMC's ratings_train.txt) unless the header row uses a
  semicolon or tab instead (Excel's CSV in much of Europe); quoted fields
  may hold newlines; a UTF-8 byte-order mark and CRLF line ends are fine.
- `.jsonl` (or `.ndjson`): one JSON object per line with those keys.
- a folder: `pos/*.txt` and `neg/*.txt`, one review a file (in name order).
- unlabeled text may also be a `.txt` file with one review per line.

Labels: 0/1, neg/pos, negative/positive, false/true (any case). Anything
else — a missing column, a third label, an empty text, bytes that are not
UTF-8 — raises `DataError` naming the file and line. A new format is one
reader function here and one entry in `_LABELED_READERS`.
"""

import csv
import io
import json
import pathlib
from typing import Callable

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


def _text(value, path: pathlib.Path, line: int, field: str) -> bytes:
  if not isinstance(value, str):
    raise DataError(f"{path}:{line}: {field!r} is {type(value).__name__}, "
                    f"not text")
  if not value.strip():
    raise DataError(f"{path}:{line}: empty text in {field!r}; remove the "
                    f"row or give it a review")
  return value.encode("utf-8")


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
  """(line number, {column: value}) per record; the line where it starts.
  The delimiter is `default_delimiter`, or what the header row uses
  (`sniff_delimiter`)."""
  text = _read_text(path)
  delimiter = sniff_delimiter(text.split("\n", 1)[0], default_delimiter)
  csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
          raise DataError(f"{path}:{line}: {len(row)} fields where the header "
                          f"has {len(header)} ({', '.join(header)}); quote "
                          f"texts that hold the delimiter")
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
  for line, text in enumerate(_read_text(path).splitlines(), start=1):
    if not text.strip():
      continue
    try:
      row = json.loads(text)
    except json.JSONDecodeError as e:
      raise DataError(f"{path}:{line}: not a JSON object ({e.msg})") from None
    if not isinstance(row, dict):
      raise DataError(f"{path}:{line}: a JSON {type(row).__name__}, not an "
                      f"object with the text and label")
    yield line, row, sorted(row)


def _from_rows(path: pathlib.Path, rows, text_field: str,
               label_field: str | None) -> Labeled:
  texts, labels = [], []
  what = "key" if path.suffix.lower() in (".jsonl", ".ndjson") else "column"
  for line, row, columns in rows:
    for field, flag in ((text_field, "text_field"),
                        (label_field, "label_field")):
      if field is not None and field not in row:
        raise DataError(
            f"{path}:{line}: no {field!r} {what} (found: "
            f"{', '.join(map(str, columns)) or 'none'}); name yours with "
            f"--config.{flag}")
    texts.append(_text(row[text_field], path, line, text_field))
    if label_field is not None:
      labels.append(_label(row[label_field], path, line, label_field))
  return texts, np.array(labels, np.int32)


def _read_folder(path: pathlib.Path, text_field: str,
                 label_field: str | None) -> Labeled:
  del text_field, label_field  # the layout names the labels
  texts, labels = [], []
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
      texts.append(text.encode("utf-8"))
      labels.append(label)
  return texts, np.array(labels, np.int32)


_LABELED_READERS: dict[str, Callable] = {
    ".csv": lambda p, t, l: _from_rows(p, _rows_delimited(p, ","), t, l),
    ".tsv": lambda p, t, l: _from_rows(p, _rows_delimited(p, "\t"), t, l),
    # e.g. NSMC's ratings_train.txt: tab-separated with a header row.
    ".txt": lambda p, t, l: _from_rows(p, _rows_delimited(p, "\t"), t, l),
    ".jsonl": lambda p, t, l: _from_rows(p, _rows_jsonl(p), t, l),
    ".ndjson": lambda p, t, l: _from_rows(p, _rows_jsonl(p), t, l),
}
FORMATS = ", ".join(_LABELED_READERS) + " or a folder with pos/ and neg/"


def _check_exists(path: pathlib.Path, flag: str) -> None:
  if not path.exists():
    raise DataError(f"--config.{flag}={path} not found; give "
                    f"{'imdb_reviews or ' if flag == 'dataset' else ''}a "
                    f"{FORMATS}")


def read_labeled(path: str | pathlib.Path, text_field: str = "text",
                 label_field: str = "label",
                 flag: str = "dataset") -> Labeled:
  """Texts (UTF-8 bytes) and labels [n] int32 (1 = positive) of a file or
  folder, in file order; DataError for anything unusable."""
  path = pathlib.Path(path)
  _check_exists(path, flag)
  if path.is_dir():
    texts, labels = _read_folder(path, text_field, label_field)
  elif path.suffix.lower() in _LABELED_READERS:
    texts, labels = _LABELED_READERS[path.suffix.lower()](
        path, text_field, label_field)
  else:
    raise DataError(f"--config.{flag}={path}: unknown format "
                    f"{path.suffix or '(no suffix)'!r}; give a {FORMATS}")
  if not texts:
    raise DataError(f"{path} holds no reviews")
  return texts, labels


def read_unlabeled(path: str | pathlib.Path, text_field: str = "text",
                   flag: str = "unlabeled_dataset") -> list[bytes]:
  """Texts of unlabeled reviews: a .txt file (one review a line; blank lines
  skipped), or a labeled file/folder whose labels are ignored."""
  path = pathlib.Path(path)
  _check_exists(path, flag)
  if path.is_file() and path.suffix.lower() == ".txt":
    texts = [line.encode("utf-8") for line in _read_text(path).splitlines()
             if line.strip()]
  elif path.is_dir():
    texts = read_labeled(path, flag=flag)[0]
  elif path.suffix.lower() in _LABELED_READERS:
    texts = _LABELED_READERS[path.suffix.lower()](path, text_field, None)[0]
  else:
    raise DataError(f"--config.{flag}={path}: unknown format "
                    f"{path.suffix or '(no suffix)'!r}; give a .txt (one "
                    f"review a line) or a {FORMATS}")
  if not texts:
    raise DataError(f"{path} holds no reviews")
  return texts
