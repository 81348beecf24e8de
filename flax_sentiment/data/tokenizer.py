"""The text rules, one place for training and every use of a trained
model: text -> words (`tokenize`), the vocabulary (the most frequent train
words), words -> ids, padding/truncating to seq_len. The exported loader
(usage/exported.py) keeps a standalone copy, held equal by
tests/test_export.py.

Token ids: 0 = padding, 1 = out-of-vocabulary, 2 .. num_words - 1 = the
num_words - 2 most frequent words of the *train* split (ties broken
alphabetically). Words are runs of `[a-z0-9']` after lower-casing and turning
`<br />` into a space.
"""

import hashlib
import json
import pathlib
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2
TOKENIZER_VERSION = 1  # bump when tokenize() changes: it keys the cache
PADDING_SIDES = ("pre", "post")

_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str | bytes) -> list[str]:
  """Lower-cases, treats `<br />` as whitespace, returns the words."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  return _WORD.findall(text.lower().replace("<br />", " "))


def build_vocabulary(tokenized: Iterable[Sequence[str]],
                     num_words: int) -> list[str]:
  """The `num_words - 2` most frequent words; word i gets id i + 2."""
  counts = Counter()
  for words in tokenized:
    counts.update(words)
  ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
  return [word for word, _ in ranked[:num_words - NUM_RESERVED_IDS]]


def encode(tokenized: Iterable[Sequence[str]],
           vocabulary: Sequence[str]) -> list[np.ndarray]:
  """Words to ids; unknown words become OOV_ID."""
  ids = word_ids(vocabulary)
  return [np.array([ids.get(w, OOV_ID) for w in words], np.int32)
          for words in tokenized]


def pad_sequences(sequences: Sequence[np.ndarray], maxlen: int,
                  padding: str = "pre", truncating: str = "pre") -> np.ndarray:
  """Keras `pad_sequences` with value 0: [num_sequences, maxlen] int32.

  truncating="pre" keeps the last `maxlen` ids, "post" the first; padding
  "pre" puts the zeros in front, "post" behind.
  """
  if padding not in PADDING_SIDES or truncating not in PADDING_SIDES:
    raise ValueError(f"padding/truncating must be one of {PADDING_SIDES}, "
                     f"got {padding!r}/{truncating!r}")
  out = np.zeros((len(sequences), maxlen), np.int32)
  for row, seq in zip(out, sequences):
    kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
    if len(kept):
      if padding == "pre":
        row[maxlen - len(kept):] = kept
      else:
        row[:len(kept)] = kept
  return out


def vocabulary_json(vocabulary: Sequence[str]) -> str:
  """The text of a workdir's vocab.json."""
  return json.dumps({"pad_id": PAD_ID, "oov_id": OOV_ID,
                     "first_word_id": NUM_RESERVED_IDS,
                     "words": list(vocabulary)})


def vocabulary_digest(vocabulary: Sequence[str]) -> str:
  """sha256 of a vocabulary (as vocab.json holds it) and the tokenizer
  version."""
  return hashlib.sha256(json.dumps([TOKENIZER_VERSION, list(vocabulary)]
                                   ).encode()).hexdigest()


def load_vocabulary(path: pathlib.Path) -> list[str]:
  """The words of a vocab.json (ValueError/KeyError/TypeError if it is not
  one)."""
  words = json.loads(pathlib.Path(path).read_bytes().decode("utf-8"))["words"]
  if not isinstance(words, list) or not all(isinstance(w, str)
                                            for w in words):
    raise ValueError("its words are not a list of strings")
  return words


def word_ids(vocabulary: Sequence[str]) -> dict[str, int]:
  """word -> id (word i of the vocabulary has id i + NUM_RESERVED_IDS)."""
  return {w: i + NUM_RESERVED_IDS for i, w in enumerate(vocabulary)}


def words_to_ids(words: Sequence[Sequence[str]], ids: dict[str, int],
                 config) -> np.ndarray:
  """Tokenized texts -> token ids [len(words), config.seq_len] int32,
  unknown words OOV_ID, padded and truncated as `config` says."""
  encoded = [np.array([ids.get(w, OOV_ID) for w in ws], np.int32)
             for ws in words]
  return pad_sequences(encoded, config.seq_len, config.padding,
                       config.truncating)


def texts_to_ids(texts: Sequence[str | bytes], ids: dict[str, int],
                 config) -> np.ndarray:
  """Raw texts -> token ids [len(texts), config.seq_len] int32, exactly as
  training encodes them (`ids`: `word_ids(vocabulary)`)."""
  return words_to_ids([tokenize(t) for t in texts], ids, config)
