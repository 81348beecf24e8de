"""Tokenizing a chunk of reviews at once, as ids of the chunk's own table:
the job of the worker processes that tokenize a large dataset
(data/token_store.py). The tokens are exactly `tokenizer.Tokenizer`'s
(tests/test_token_store.py); ASCII reviews of the english and words rules
take a fast path, the whole chunk at once without Python's Unicode regex."""

import itertools
import re
from typing import Sequence

import numpy as np

from flax_sentiment.data.tokenizer import of_kind

# ASCII text, lower-cased: bytes of [a-z0-9'] kept (and the separator
# between reviews, \x01), every other byte a space.
_ASCII_WORD_BYTES = bytes(
    c if chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789'\x01" else 32
    for c in range(256))
_ASCII_WORD = re.compile(rb"[a-z0-9]+(?:'[a-z0-9]+)*|\x01")
_SEPARATOR = b"\x01"


def _ascii_tokens(kind: str, texts: list[bytes]) -> list[bytes]:
  """The english or words tokens of ASCII texts (no \x01 in them), as bytes,
  each text's followed by \x01: the whole chunk at once, without Python's
  Unicode regex (the same tokens: NFKC and case folding leave ASCII as
  `lower` does)."""
  joined = _SEPARATOR.join(texts) + _SEPARATOR
  if kind == "english":  # lower-cased, then <br /> (as `tokenize`)
    return joined.lower().replace(b"<br />", b" ").translate(
        _ASCII_WORD_BYTES).replace(_SEPARATOR, b" \x01 ").split()
  return _ASCII_WORD.findall(joined.replace(b"<br />", b" ").lower())


def _chunk_tokens(kind: str, texts: Sequence[bytes | str]
                  ) -> tuple[list[bytes], list[int]]:
  """(tokens of the texts as bytes, each text's followed by a separator:
  \x01 after the ASCII texts, which come first, all at once
  (`_ascii_tokens`), a space after the others, one by one; the texts'
  order in them)."""
  texts = [t if isinstance(t, bytes) else t.encode("utf-8", errors="replace")
           for t in texts]
  fast = [i for i, t in enumerate(texts)
          if kind != "characters" and t.isascii() and _SEPARATOR not in t]
  slow = sorted(set(range(len(texts))) - set(fast))
  tokens = _ascii_tokens(kind, [texts[i] for i in fast]) if fast else []
  split = of_kind(kind)
  for i in slow:  # a space ends each: no token of any kind is one
    tokens.extend([w.encode() for w in split(texts[i])])
    tokens.append(b" ")
  return tokens, fast + slow


def chunk_ids(kind: str, texts: Sequence[bytes | str]
              ) -> tuple[list[str], np.ndarray, np.ndarray]:
  """Texts tokenized by a tokenizer of `kind` (not subwords), as ids of
  their own little table: (its tokens, ids [total] int32 into them, tokens
  per text [len(texts)] int32). A worker process's job when a large dataset
  is tokenized (data/token_store.py)."""
  if not texts:
    return [], np.zeros(0, np.int32), np.zeros(0, np.int32)
  tokens, order = _chunk_tokens(kind, texts)
  table = dict(zip(dict.fromkeys(tokens), itertools.count()))
  ids = np.fromiter(map(table.__getitem__, tokens), np.int32, len(tokens))
  # \x01 is a characters token, never an english or words one.
  marks = (b" ",) if kind == "characters" else (_SEPARATOR, b" ")
  separators = sorted(table.pop(s) for s in marks if s in table)
  is_separator = np.isin(ids, separators)
  lengths = (np.diff(np.flatnonzero(is_separator), prepend=-1) - 1
             ).astype(np.int32)
  ids = ids[~is_separator]
  ids -= np.searchsorted(separators, ids).astype(np.int32)  # ids after them
  # Back to the texts' order: each text's run of ids, in turn.
  starts = np.zeros(len(lengths), np.int64)
  np.cumsum(lengths[:-1], out=starts[1:])
  back = np.argsort(order, kind="stable")
  lengths, starts = lengths[back], starts[back]
  positions = (np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
               + np.arange(int(lengths.sum())))
  return [t.decode() for t in table], ids[positions], lengths
