"""Tokenizing a chunk of reviews at once, as ids of the chunk's own table
(`chunk_ids`; `tokenized`: chunks in threads), and merging the chunks'
tables (`Tables`): how data/token_store.py tokenizes a large dataset. The
tokens are exactly `tokenizer.Tokenizer`'s (tests/test_token_store.py).

The english rule, and the words rule on ASCII text, take a fast path: the
chunk's bytes are cleaned and split by C loops (bytes methods, numpy and
pyarrow's kernels), never one Python object per token. Other texts (the
characters rule; words outside ASCII) are split by the tokenizer one by one.
Either way the tokens are dictionary-encoded by pyarrow."""

import collections
import concurrent.futures
import functools
import os
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flax_sentiment.data import tokenizer

# The bytes a token of the english and words rules may hold (after
# lower-casing); every other byte becomes a space.
_WORD_BYTES = bytes(
    c if chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789'" else 32
    for c in range(256))
_IS_ALNUM = np.array([c < 128 and chr(c).isalnum() for c in range(256)])
_APOSTROPHE = ord("'")
# The only characters outside ASCII whose lower case holds ASCII (İ -> i̇,
# the Kelvin sign -> k; tests/test_token_store.py checks every code point):
# the english rule's fast path leaves texts with them to `tokenize`.
_LOWER_TO_ASCII = ("\u0130".encode(), "\u212a".encode())


def _fast_tokens(kind: str, texts: list[bytes]
                 ) -> tuple[pa.Array, np.ndarray]:
  """(tokens [total] strings, tokens per text [len(texts)]) of texts the
  fast path gives the rule's tokens (ASCII; for english, any text without
  `_LOWER_TO_ASCII`): the texts joined by line breaks (no `<br />` spans two)
  and cleaned as the rule cleans them (`<br />` spaces, lower-cased, in the
  rule's order), bytes outside tokens made spaces; for words, apostrophes
  not between two letters or digits too; then split at spaces."""
  joined = b"\n".join(texts) + b"\n"
  if kind == "english":
    joined = joined.lower().replace(b"<br />", b"      ")
  else:
    joined = joined.replace(b"<br />", b"      ").lower()
  # Text i is bytes [offsets[i], offsets[i + 1]), its last a space.
  offsets = np.zeros(len(texts) + 1, np.int64)
  np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1,
            out=offsets[1:])
  data = joined.translate(_WORD_BYTES)
  if kind == "words" and _APOSTROPHE in data:
    data = np.frombuffer(data, np.uint8).copy()
    at = np.flatnonzero(data == _APOSTROPHE)  # never the last byte
    inside = _IS_ALNUM[data[at - 1]] & (at > 0) & _IS_ALNUM[data[at + 1]]
    data[at[~inside]] = ord(" ")
  strings = pa.LargeStringArray.from_buffers(
      len(texts), pa.py_buffer(offsets), pa.py_buffer(data))
  return _split(strings, len(texts), pc.ascii_split_whitespace)


def _split(strings: pa.Array, n: int, split: Callable
           ) -> tuple[pa.Array, np.ndarray]:
  """(the tokens of `strings`, split at spaces; tokens per string [n])."""
  lists = split(strings)  # "" at each end
  tokens = lists.flatten()
  real = pc.greater(pc.binary_length(tokens), 0).to_numpy(zero_copy_only=False)
  parent = pc.list_parent_indices(lists).to_numpy()
  return tokens.filter(real), np.bincount(parent[real], minlength=n)


_is_word_character = functools.cache(
    lambda code: tokenizer.is_word_character(chr(code)))
# Per code point of the Basic Multilingual Plane: 1 a word character, -1
# not, 0 not yet looked at.
_BMP_WORD = np.zeros(0x10000, np.int8)


def _word_characters(codes: np.ndarray) -> np.ndarray:
  """[n] bool: whether each code point is a word character (each distinct
  one classified once by the rule's regex)."""
  plane = codes < 0x10000
  seen = np.zeros(len(codes), np.int8)
  seen[plane] = _BMP_WORD[codes[plane]]
  new = np.unique(codes[plane & (seen == 0)])
  _BMP_WORD[new] = [1 if _is_word_character(c) else -1 for c in new.tolist()]
  seen[plane] = _BMP_WORD[codes[plane]]
  astral = np.unique(codes[~plane])
  if len(astral):  # emoji and rarer scripts: few
    words = astral[[_is_word_character(c) for c in astral.tolist()]]
    seen[~plane] = np.where(np.isin(codes[~plane], words), 1, -1)
  return seen > 0


def _words_tokens(texts: list[bytes]) -> tuple[pa.Array, np.ndarray]:
  """`_fast_tokens` for the words rule on any text: the normalized texts'
  code points classified at once (letter, apostrophe, or a space), then
  split at spaces."""
  normalized = [tokenizer.normalize(t) for t in texts]
  codes = np.frombuffer((" ".join(normalized) + " ").encode("utf-32-le"),
                        np.uint32).copy()
  is_letter = _word_characters(codes)
  at = np.flatnonzero(codes == _APOSTROPHE)  # never the last code point
  inside = is_letter[at - 1] & (at > 0) & is_letter[at + 1]
  is_letter[at[inside]] = True
  codes[~is_letter] = ord(" ")
  cleaned = codes.tobytes().decode("utf-32-le")
  bounds = np.cumsum([0] + [len(t) + 1 for t in normalized]).tolist()
  return _split(pa.array([cleaned[a:b] for a, b in zip(bounds, bounds[1:])],
                         pa.large_string()), len(texts),
                pc.utf8_split_whitespace)


def _slow_tokens(kind: str, texts: list[bytes]
                 ) -> tuple[pa.Array, np.ndarray]:
  """`_fast_tokens` for any text: the tokenizer applied to each."""
  lists = pa.array(list(map(tokenizer.of_kind(kind), texts)),
                   pa.list_(pa.large_string()))
  return lists.flatten(), pc.list_value_length(lists).to_numpy()


def chunk_ids(kind: str, texts: Sequence[bytes | str]
              ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
  """Texts tokenized by a tokenizer of `kind` (not subwords), as ids of
  their own little table: (its tokens (strings), ids [total] into them
  (uint16 for a table of up to 65,536 tokens, else int32), tokens per text
  [len(texts)] int32)."""
  texts = [t if isinstance(t, bytes) else t.encode("utf-8", errors="replace")
           for t in texts]
  fast = np.fromiter(map(bytes.isascii, texts), bool, len(texts))
  if kind == "characters":
    fast[:] = False
  elif kind == "english":  # the fast path takes most text outside ASCII
    for i in np.flatnonzero(~fast).tolist():
      fast[i] = not any(s in texts[i] for s in _LOWER_TO_ASCII)
  fast, slow = np.flatnonzero(fast).tolist(), np.flatnonzero(~fast).tolist()
  slow_tokens = _words_tokens if kind == "words" else functools.partial(
      _slow_tokens, kind)
  parts = ([_fast_tokens(kind, [texts[i] for i in fast])] if fast else []) + (
      [slow_tokens([texts[i] for i in slow])] if slow else [])
  if not parts:
    return (pa.array([], pa.large_string()), np.zeros(0, np.int32),
            np.zeros(0, np.int32))
  encoded = pc.dictionary_encode(pa.concat_arrays([t for t, _ in parts]))
  ids = encoded.indices.to_numpy(zero_copy_only=False)  # int32
  if len(encoded.dictionary) <= 1 << 16:  # half the bytes to send back
    ids = ids.astype(np.uint16)
  lengths = np.concatenate([n for _, n in parts]).astype(np.int32)
  # Back to the texts' order: each text's run of ids, in turn.
  order = fast + slow
  starts = np.zeros(len(lengths), np.int64)
  np.cumsum(lengths[:-1], out=starts[1:])
  back = np.argsort(order, kind="stable")
  lengths, starts = lengths[back], starts[back]
  positions = (np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
               + np.arange(int(lengths.sum())))
  return encoded.dictionary, ids[positions], lengths


# Text from this many bytes on is tokenized by several threads.
THREADS_MIN_BYTES = 16 << 20


def workers_for(size: int) -> int:
  """Threads that tokenize `size` bytes of text: this one, or on large
  data one per core (at most 4)."""
  if size < THREADS_MIN_BYTES:
    return 1
  return max(1, min(4, len(os.sched_getaffinity(0))))


def tokenized(chunks: Iterable[Sequence[bytes]], kind: str,
              workers: int) -> Iterator[tuple]:
  """`chunk_ids` of each chunk, in order; in `workers` threads when > 1
  (pyarrow's kernels, where most of the time goes, release the GIL), at
  most two chunks ahead per thread."""
  if workers <= 1:
    for texts in chunks:
      yield chunk_ids(kind, texts)
    return
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    pending = collections.deque()
    for texts in chunks:
      pending.append(pool.submit(chunk_ids, kind, texts))
      if len(pending) > 2 * workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


# Chunk tables are merged into the whole table once they hold this many
# tokens: memory stays bounded by the distinct tokens, not the chunks.
MERGE_TOKENS = 1 << 22


class Tables:
  """Every distinct token of the chunks, in the order first seen, merged
  from the chunks' own tables (`chunk_ids`) a batch of them at a time by
  pyarrow. A chunk's id i is position `add(...) + i`; `finish` maps every
  position to its token's id in the whole table."""

  def __init__(self):
    self.table = pa.array([], pa.large_string())
    self.pending: list[pa.Array] = []
    self.maps: list[np.ndarray] = []
    self.positions = self.pending_tokens = 0

  def add(self, words: pa.Array) -> int:
    """Takes a chunk's table; returns the position of its first token."""
    first = self.positions
    self.positions += len(words)
    self.pending.append(words)
    self.pending_tokens += len(words)
    if self.pending_tokens >= MERGE_TOKENS:
      self._merge()
    return first

  def _merge(self) -> None:
    merged = pc.dictionary_encode(pa.concat_arrays(
        [self.table] + [w.cast(pa.large_string()) for w in self.pending]))
    # The table's tokens are distinct and first: they keep their ids.
    self.maps.append(merged.indices.to_numpy(zero_copy_only=False)[
        len(self.table):])
    self.table = merged.dictionary
    self.pending, self.pending_tokens = [], 0

  def finish(self) -> tuple[pa.Array, np.ndarray]:
    """(the whole table [n] strings, each position's id [positions])."""
    self._merge()
    return self.table, np.concatenate(self.maps)
