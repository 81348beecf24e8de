"""Token ids on disk, built by streaming through the reviews in chunks:
memory stays flat in the number of reviews.

A store is a folder in the cache holding, per source ("train", "test",
"unsupervised"): `<name>_ids.bin` (every review's ids, one after another,
raw int32, read memory-mapped), `<name>_starts.npy` [n] int64,
`<name>_lengths.npy` [n] int32, `<name>_labels.npy` [n] int32; and
`vocabulary.json` (the tokenizer kind and its tokens) with `tokenizer.model`
for subwords. It is written whole or not at all (`files.atomic_directory`).

Building it (`build`), for the words, characters and english kinds, reads
each source once, a batch at a time (`sources.iter_labeled_batches`): each
batch is tokenized (in threads on large data: `chunks.tokenized`) into ids
of its own table, written to disk as they come, and the tables are merged
into one of every distinct token (`chunks.Tables`); then the vocabulary
comes from counts over the rows it may learn from (`fitting_rows`, decided
on the labels alone) and the ids are mapped to it chunk by chunk. Subwords read the
sources three times: labels, then the SentencePiece training text (a bounded
sample), then encoding (SentencePiece's own threads).
"""

import dataclasses
import hashlib
import itertools
import json
import pathlib
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flax_sentiment.data import chunks, sources, tokenizer, vocabulary
from flax_sentiment.runtime import files

ROWS_AT_A_TIME = 65_536     # rows mapped, counted or padded at a time
# A source, read afresh: batches of (texts [k] bytes, labels [k] int32)
Stream = Callable[[], Iterator[sources.Batch]]


@dataclasses.dataclass(frozen=True)
class Tokens:
  """Token ids of some reviews: flat [total] int32 (memory-mapped from the
  store), starts [n] int64 and lengths [n] int32 into it, labels [n]
  int32 (-1: unlabeled)."""
  flat: np.ndarray
  starts: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  store: str = ""  # the store's folder (its name is its key)

  def __len__(self) -> int:
    return len(self.labels)

  def subset(self, rows: np.ndarray) -> "Tokens":
    """The reviews `rows` (indices), in that order; no ids are copied."""
    return Tokens(self.flat, self.starts[rows], self.lengths[rows],
                  self.labels[rows], self.store)

  def ragged(self) -> list[np.ndarray]:
    """Each review's ids (views into the store)."""
    return [self.flat[a:a + n] for a, n in zip(self.starts.tolist(),
                                               self.lengths.tolist())]

  def positions(self, rows: slice) -> np.ndarray:
    """Indices into `flat` of every id of the reviews `rows`."""
    starts, lengths = self.starts[rows], self.lengths[rows]
    if not len(lengths) or not lengths.sum():
      return np.zeros(0, np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(int(lengths.sum()))

  def chunks(self) -> Iterator[np.ndarray]:
    """The ids of ROWS_AT_A_TIME reviews at a time, concatenated."""
    for first in range(0, len(self), ROWS_AT_A_TIME):
      rows = slice(first, first + ROWS_AT_A_TIME)
      starts, ends = self.starts[rows], self.starts[rows] + self.lengths[rows]
      if np.array_equal(starts[1:], ends[:-1]):  # one run: a view
        yield self.flat[starts[0]:ends[-1]]
      else:
        yield self.flat[self.positions(rows)]

  def padded_blocks(self, seq_len: int, padding: str = "pre",
                    truncating: str = "pre") -> Iterator[np.ndarray]:
    """[<= ROWS_AT_A_TIME, seq_len] int32 blocks of the reviews in order,
    padded as `tokenizer.pad_sequences` pads them (Keras' rule)."""
    columns = np.arange(seq_len)
    for first in range(0, len(self), ROWS_AT_A_TIME):
      rows = slice(first, first + ROWS_AT_A_TIME)
      lengths = self.lengths[rows].astype(np.int64)
      kept = np.minimum(lengths, seq_len)
      source = self.starts[rows] + (lengths - kept if truncating == "pre"
                                    else 0)
      column = (seq_len - kept) if padding == "pre" else np.zeros_like(kept)
      filled = ((columns[None] >= column[:, None])
                & (columns[None] < (column + kept)[:, None]))
      where = source[:, None] + columns[None] - column[:, None]
      block = np.zeros((len(lengths), seq_len), np.int32)
      block[filled] = self.flat[where[filled]]
      yield block

  def padded(self, seq_len: int, padding: str = "pre",
             truncating: str = "pre") -> np.ndarray:
    """[n, seq_len] int32: `padded_blocks` in memory."""
    out = np.zeros((len(self), seq_len), np.int32)
    for first, block in zip(range(0, len(self), ROWS_AT_A_TIME),
                            self.padded_blocks(seq_len, padding, truncating)):
      out[first:first + len(block)] = block
    return out

  def padded_on_disk(self, path: pathlib.Path, seq_len: int,
                     padding: str = "pre", truncating: str = "pre"
                     ) -> np.ndarray:
    """`padded`, written block by block to the .npy file `path` (once) and
    read memory-mapped: memory does not grow with the reviews."""
    if not path.exists():
      with files.atomic_file(path, flag="--config.cache_dir") as f:
        np.lib.format.write_array_header_1_0(f, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
            "fortran_order": False, "shape": (len(self), seq_len)})
        for block in self.padded_blocks(seq_len, padding, truncating):
          f.write(block.tobytes())
    return np.load(path, mmap_mode="r")


STORE_FORMAT = 1  # bump when the store's files change


def digest_file(path: pathlib.Path, digest) -> int:
  """Feeds a file's bytes (a folder's files' names and bytes) to `digest`;
  returns how many bytes it read."""
  files_ = (sorted(p for p in path.rglob("*") if p.is_file())
            if path.is_dir() else [path])
  size = 0
  for file in files_:
    digest.update(str(file.relative_to(path)).encode() if path.is_dir()
                  else b"")
    with open(file, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
  return size


def key(config, kind: str, content: list) -> str:
  """What the token ids depend on: the store's format, the tokenizer
  (version and kind), num_words, the vocabulary's splits, the choice of the
  rows it is fitted on, and the data's content."""
  vocabulary_splits = config.vocabulary_splits.split("+")
  parts = [STORE_FORMAT, tokenizer.TOKENIZER_VERSION, kind, config.num_words,
           vocabulary_splits]
  if config.dataset != tokenizer.IMDB and not config.test_dataset:
    parts += [config.test_fraction, config.validation_seed]
  if kind != "english":
    parts += [config.seed if config.max_train_examples else None,
              config.max_train_examples, config.validation_examples,
              config.validation_seed]
  return hashlib.sha256(json.dumps(parts + content).encode()).hexdigest()


def _save(directory: pathlib.Path, name: str, tokens: Tokens) -> None:
  for part in ("starts", "lengths", "labels"):
    np.save(directory / f"{name}_{part}.npy", getattr(tokens, part))


def load(directory: pathlib.Path) -> tuple[dict[str, Tokens],
                                           vocabulary.TextRule]:
  """The sources and text rule of a store `build` wrote."""
  meta = json.loads((directory / "vocabulary.json").read_text("utf-8"))
  model = directory / tokenizer.MODEL_FILE
  classes = meta.get("classes")
  rule = vocabulary.TextRule(
      tokenizer.Tokenizer(meta["tokenizer"], model.read_bytes()
                          if model.exists() else None),
      meta["words"], meta["single_share"],
      None if classes is None else tuple(classes))
  sources = {}
  for name in meta["sources"]:
    part = lambda p, name=name: np.load(directory / f"{name}_{p}.npy")
    sources[name] = Tokens(_ids(directory / f"{name}_ids.bin"),
                           part("starts"), part("lengths"), part("labels"),
                           str(directory))
  return sources, rule


def _ids(path: pathlib.Path) -> np.ndarray:
  """A raw int32 file, memory-mapped (np.memmap refuses empty files)."""
  if not path.stat().st_size:
    return np.zeros(0, np.int32)
  return np.memmap(path, np.int32, "r")


def _chunked(stream: Iterator[sources.Batch], labels: list[np.ndarray]
             ) -> Iterator[Sequence[bytes]]:
  """Each batch's texts (a few thousand reviews: `sources.BATCH_REVIEWS`
  or a block of `delimited.BLOCK_BYTES`); their labels appended to
  `labels`."""
  for texts, batch_labels in stream:
    labels.append(batch_labels)
    yield texts


def _labels(parts: list[np.ndarray]) -> np.ndarray:
  return np.concatenate(parts).astype(np.int32) if parts else np.zeros(
      0, np.int32)


def _first_pass(name: str, stream: Stream, kind: str,
                tables: chunks.Tables, directory: pathlib.Path,
                workers: int) -> Tokens:
  """Tokenizes a source chunk by chunk, each chunk's tokens a little table
  appended to `tables`; its ids, made positions in all the tables one after
  another, written to `<name>_draft.bin` as they come."""
  labels, lengths = [], []
  path = directory / f"{name}_draft.bin"
  with open(path, "wb") as out:
    for words, ids, counts in chunks.tokenized(
        _chunked(stream(), labels), kind, workers):
      offset = tables.add(words)
      out.write((ids.astype(np.int32) + offset).tobytes())
      lengths.append(counts)
  lengths = (np.concatenate(lengths) if lengths else np.zeros(0, np.int32))
  starts = np.zeros(len(lengths), np.int64)
  np.cumsum(lengths[:-1], out=starts[1:])
  return Tokens(_ids(path), starts, lengths, _labels(labels))


def _counts(draft: Tokens, rows: np.ndarray, to_table: np.ndarray,
            size: int) -> np.ndarray:
  """[size] how often each token of the table occurs in the reviews `rows`
  of `draft` (whose reviews' ids lie one after another in file order)."""
  chosen = np.zeros(len(draft), bool)
  chosen[rows] = True
  counts = np.zeros(size, np.int64)
  for first in range(0, len(draft), ROWS_AT_A_TIME):
    part = slice(first, first + ROWS_AT_A_TIME)
    lengths = draft.lengths[part]
    start = int(draft.starts[first])
    ids = draft.flat[start:start + int(lengths.sum())]
    counts += np.bincount(to_table[ids[np.repeat(chosen[part], lengths)]],
                          minlength=size)
  return counts


def _ranked(table: pa.Array, counts: np.ndarray, keep: int) -> list[str]:
  """The `keep` most frequent tokens (ties alphabetical) of `table` with
  `counts` [len(table)]."""
  if not len(counts):
    return []
  order = np.argsort(-counts, kind="stable")
  threshold = counts[order[min(keep, len(order)) - 1]]
  candidates = np.flatnonzero(counts >= max(threshold, 1))
  words = table.take(pa.array(candidates)).to_pylist()
  return tokenizer.most_frequent(
      zip(words, counts[candidates].tolist()), keep)


def _final_ids(name: str, draft: Tokens, mapping: np.ndarray,
               directory: pathlib.Path) -> None:
  """`<name>_ids.bin`: the draft's ids through `mapping`, chunk by chunk."""
  with open(directory / f"{name}_ids.bin", "wb") as out:
    for ids in draft.chunks():
      out.write(mapping[ids].tobytes())


def build_words(streams: dict[str, Stream], kind: str, config,
                fitting_rows: Callable[[dict[str, np.ndarray]],
                                       dict[str, np.ndarray]],
                directory: pathlib.Path, workers: int
                ) -> vocabulary.TextRule:
  """A store for the english, words or characters kinds (see the module
  docstring). `fitting_rows(labels per source)` names the rows the
  vocabulary is counted over."""
  tables = chunks.Tables()
  drafts = {name: _first_pass(name, stream, kind, tables, directory, workers)
            for name, stream in streams.items()}
  table, to_table = tables.finish()
  counts = np.zeros(len(table), np.int64)
  for name, rows in fitting_rows({n: d.labels for n, d in drafts.items()}
                                 ).items():
    counts += _counts(drafts[name], rows, to_table, len(table))
  words = _ranked(table, counts, config.num_words - tokenizer.NUM_RESERVED_IDS)
  mapping = np.full(len(table), tokenizer.OOV_ID, np.int32)
  mapping[_positions(table, words)] = np.arange(
      tokenizer.NUM_RESERVED_IDS, len(words) + tokenizer.NUM_RESERVED_IDS)
  for name, draft in drafts.items():
    _final_ids(name, draft, mapping[to_table], directory)
    _save(directory, name, draft)
    (directory / f"{name}_draft.bin").unlink()
  total = int(counts.sum())
  single = int(np.sum(counts == 1))
  return vocabulary.TextRule(tokenizer.Tokenizer(kind), words,
                             single / total if total else 0.0)


def _positions(table: pa.Array, words: list[str]) -> np.ndarray:
  """[len(words)] each word's index in `table` (where every word is)."""
  return pc.index_in(pa.array(words, table.type), value_set=table
                     ).to_numpy(zero_copy_only=False).astype(np.int64)


def build_subwords(streams: dict[str, Stream], config,
                   fitting_rows: Callable[[dict[str, np.ndarray]],
                                          dict[str, np.ndarray]],
                   directory: pathlib.Path, workers: int
                   ) -> vocabulary.TextRule:
  """A store for subwords: labels first, then a SentencePiece model from
  the fitting rows' text, then every review encoded with it."""
  labels = {name: _labels([batch for _, batch in stream()])
            for name, stream in streams.items()}
  chosen = {name: set(rows.tolist())
            for name, rows in fitting_rows(labels).items()}

  def fitting_texts() -> Iterator[bytes]:
    for name, rows in chosen.items():
      texts = itertools.chain.from_iterable(t for t, _ in streams[name]())
      yield from (text for row, text in enumerate(texts) if row in rows)
  rule = vocabulary.fit_subwords(fitting_texts(), config)
  processor = rule.tokenizer.processor()
  for name, stream in streams.items():
    lengths = []
    with open(directory / f"{name}_ids.bin", "wb") as out:
      for texts in _chunked(stream(), []):
        encoded = processor.encode([tokenizer.normalize(t) for t in texts],
                                   num_threads=workers)
        lengths.extend(len(ids) for ids in encoded)
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int32)
        out.write((flat + 1).tobytes())  # piece i -> id i + 1; unknown -> 1
    lengths = np.array(lengths, np.int32)
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    _save(directory, name, Tokens(None, starts, lengths, labels[name]))
  return rule


def build(path: pathlib.Path, streams: dict[str, Stream], config,
          fitting_rows: Callable[[dict[str, np.ndarray]],
                                 dict[str, np.ndarray]],
          workers: int = 1, classes: tuple[str, ...] | None = None) -> None:
  """Writes the store at `path` (whole or not at all); `classes`: what the
  streams' labels are (`labels.Classes`), recorded with it."""
  kind = tokenizer.kind_of(config)
  with files.atomic_directory(path, flag="--config.cache_dir") as directory:
    if kind == "subwords":
      rule = build_subwords(streams, config, fitting_rows, directory, workers)
      (directory / tokenizer.MODEL_FILE).write_bytes(rule.tokenizer.model)
    else:
      rule = build_words(streams, kind, config, fitting_rows, directory,
                         workers)
    (directory / "vocabulary.json").write_text(json.dumps({
        "tokenizer": kind, "words": rule.vocabulary,
        "single_share": rule.single_share, "sources": list(streams),
        "classes": classes},
        ensure_ascii=False), "utf-8")
