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
- `.parquet`: columns of those names.
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

import collections
import itertools
import json
import pathlib
from typing import Callable, Iterator

import numpy as np
import pyarrow.parquet as parquet

from flax_sentiment.data import delimited, labels
from flax_sentiment.data.reading import DataError, open_text, read_text

Labeled = tuple[list[bytes], np.ndarray]
Batch = tuple[list[bytes], np.ndarray]  # texts [k], labels [k] int32
BATCH_REVIEWS = 4096  # reviews a batch, where a file is read row by row


def _label(value, path: pathlib.Path, line: int, field: str,
           classes: labels.Classes) -> int:
  """The class id of a label value (DataError naming the line if it is not
  one of `classes`' labels)."""
  key = labels.key(value)
  if not key:
    raise DataError(f"{path}:{line}: no label in {field!r}; give every "
                    f"review one, or leave the review out")
  found = labels.ids(classes).get(key)
  if found is None:
    raise DataError(f"{path}:{line}: label {value!r} in {field!r} is not one "
                    f"of {labels.help_text(classes)}")
  return found


def _text(value, path: pathlib.Path, line: int, field: str) -> bytes | None:
  """The text as UTF-8 bytes; None for an empty one (skipped: NSMC's files
  hold a few)."""
  if value is None:
    return None
  if not isinstance(value, str):
    raise DataError(f"{path}:{line}: {field!r} is {type(value).__name__}, "
                    f"not text")
  return value.encode("utf-8") if value.strip() else None


def _rows_jsonl(path: pathlib.Path):
  with open_text(path) as f:
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
  at a time."""
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
               label_field: str | None, skipped: list[int],
               classes: labels.Classes = None
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
             _label(row[label_field], path, line, label_field, classes))
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
      text = read_text(file)
      if not text.strip():
        raise DataError(f"{file}:1: empty review; remove the file or give "
                        f"it a review")
      yield text.encode("utf-8"), label


def batched(reviews: Iterator[tuple[bytes, int]]) -> Iterator[Batch]:
  """(text, label) pairs, BATCH_REVIEWS at a time (those before a bad row
  too, then its error)."""
  texts, ids = [], []
  try:
    for text, label in reviews:
      texts.append(text)
      ids.append(label)
      if len(texts) == BATCH_REVIEWS:
        yield texts, np.array(ids, np.int32)
        texts, ids = [], []
  except DataError:
    if texts:
      yield texts, np.array(ids, np.int32)
    raise
  if texts:
    yield texts, np.array(ids, np.int32)


def _delimited_batches(path: pathlib.Path, default_delimiter: str,
                       text_field: str, label_field: str | None,
                       skipped: list[int], classes: labels.Classes
                       ) -> Iterator[Batch]:
  """A CSV/TSV file's reviews a block at a time, parsed by pyarrow
  (`delimited`) for as long as it is sure, then by the csv module
  (`_rows_delimited`) from the row where it was not."""
  with open_text(path) as f:
    first = f.readline()
  delimiter = delimited.sniff_delimiter(first, default_delimiter)
  done, empty = 0, []
  if delimited.simple_header(first):
    header = [h.strip() for h in first.rstrip("\r\n").split(delimiter)]
    try:
      for texts, ids, blank in delimited.batches(
          path, delimiter, header, text_field, label_field,
          labels.ids(classes), delimited.MAX_FIELD_CHARS):
        empty.extend((done + blank).tolist())
        done += len(texts) + len(blank)
        yield texts, ids
      done = None
    except delimited.Unsure:
      pass
  if empty:  # their lines, for the warning
    rows = enumerate(delimited.rows(path, default_delimiter))
    wanted = set(empty)
    skipped.extend(line for row, (line, _, _) in itertools.islice(
        rows, empty[-1] + 1) if row in wanted)
  if done is not None:
    rows = itertools.islice(delimited.rows(path, default_delimiter), done,
                            None)
    yield from batched(_from_rows(path, rows, text_field, label_field,
                                   skipped, classes))


# e.g. NSMC's ratings_train.txt: tab-separated with a header row.
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_ROWS: dict[str, Callable] = {
    **{suffix: lambda p, d=d: delimited.rows(p, d)
       for suffix, d in _DELIMITERS.items()},
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


def iter_labeled_batches(path: str | pathlib.Path, text_field: str = "text",
                         label_field: str | None = "label",
                         flag: str = "dataset",
                         say: Callable[[str], None] | None = None,
                         classes: labels.Classes = None) -> Iterator[Batch]:
  """`iter_labeled`'s reviews a batch at a time: (texts [k] UTF-8 bytes,
  labels [k] int32). CSV and TSV files are parsed by pyarrow while it is
  sure (`delimited`): many times faster than row by row."""
  path = pathlib.Path(path)
  check_exists(path, flag)
  skipped = []
  suffix = path.suffix.lower()
  if path.is_dir():
    if classes is not None:
      raise DataError(f"{path}: a folder of pos/ and neg/ holds two classes; "
                      f"drop --config.labels")
    batches = batched(_read_folder(path, text_field, label_field, skipped))
  elif suffix in _DELIMITERS:
    batches = _delimited_batches(path, _DELIMITERS[suffix], text_field,
                                 label_field, skipped, classes)
  elif suffix in _ROWS:
    batches = batched(_from_rows(path, _ROWS[suffix](path), text_field,
                                  label_field, skipped, classes))
  else:
    raise DataError(f"--config.{flag}={path}: unknown format "
                    f"{path.suffix or '(no suffix)'!r}; give a {FORMATS}")
  count = 0
  for texts, ids in batches:
    count += len(texts)
    if len(texts):
      yield texts, ids
  if not count:
    raise DataError(f"{path} holds no reviews" + (
        f" (every text is empty: lines {skipped[0]}-{skipped[-1]})"
        if skipped else ""))
  if skipped and say is not None:
    say(f"warning: {path}: skipped {len(skipped):,} review"
        f"{'s' if len(skipped) > 1 else ''} with an empty text (line"
        f"{'s' if len(skipped) > 1 else ''} "
        f"{', '.join(map(str, skipped[:5]))}{' ...' if len(skipped) > 5 else ''})")


def iter_labeled(path: str | pathlib.Path, text_field: str = "text",
                 label_field: str | None = "label", flag: str = "dataset",
                 say: Callable[[str], None] | None = None,
                 classes: labels.Classes = None
                 ) -> Iterator[tuple[bytes, int]]:
  """(text as UTF-8 bytes, label: the binary words' 1 positive, 0
  negative, or the id of one of `classes`; -1 without `label_field`) per
  review of a file or folder, in file order, read as it is iterated (memory
  does not grow with the file). Reviews with an empty text are skipped,
  said in one warning line to `say`; DataError for anything unusable, or no
  review at all."""
  for texts, ids in iter_labeled_batches(path, text_field, label_field,
                                         flag, say, classes):
    yield from zip(texts, ids.tolist())


def read_labeled(path: str | pathlib.Path, text_field: str = "text",
                 label_field: str = "label", flag: str = "dataset",
                 say: Callable[[str], None] | None = None,
                 classes: labels.Classes = None) -> Labeled:
  """Texts (UTF-8 bytes) and labels [n] int32 (1 = positive, or class
  ids) of a file or folder, in file order (`iter_labeled`, held in
  memory)."""
  texts, ids = [], []
  for text, label in iter_labeled(path, text_field, label_field, flag, say,
                                  classes):
    texts.append(text)
    ids.append(label)
  return texts, np.array(ids, np.int32)


def label_counts(path: str | pathlib.Path, label_field: str = "label"
                 ) -> collections.Counter:
  """How many rows of a labeled file hold each label key (`labels.key`):
  what its classes are decided on (`labels.classes_of`). Rows the reader
  would refuse are left to it; a folder holds neg and pos."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if path.is_dir():
    return collections.Counter({"neg": 1, "pos": 1})
  if suffix in _DELIMITERS:
    with open_text(path) as f:
      first = f.readline()
    delimiter = delimited.sniff_delimiter(first, _DELIMITERS[suffix])
    if delimited.simple_header(first):
      header = [h.strip() for h in first.rstrip("\r\n").split(delimiter)]
      try:
        counts = collections.Counter()
        for value, n in delimited.value_counts(path, delimiter, header,
                                               label_field):
          counts[labels.key(value)] += n
        return counts
      except delimited.Unsure:
        pass
  rows = _ROWS[suffix](path) if suffix in _ROWS else ()
  return collections.Counter(labels.key(row[label_field])
                             for _, row, _ in rows if label_field in row)


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
    with open_text(path) as f:
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
