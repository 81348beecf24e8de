"""The text rules, one place for training and every use of a model:
text -> tokens (a `Tokenizer` of one of `KINDS`), the vocabulary (the most
frequent train tokens, or a SentencePiece model's pieces), tokens -> ids,
padding/truncating to seq_len. The exported loader (usage/exported.py) keeps
a standalone copy, held equal by tests/test_export.py.

Token ids: 0 = padding, 1 = out-of-vocabulary, 2 .. num_words - 1 = the
num_words - 2 most frequent tokens of the training text (ties broken
alphabetically), or for subwords the SentencePiece model's pieces in its
order (piece i of the model, unknown piece 0 excluded, has id i + 1).

The kinds (`--config.tokenizer`):
  english     runs of `[a-z0-9']` after lower-casing and turning `<br />`
              into a space: the Keras notebook's rule, IMDB's default (its
              token ids are those of every earlier version);
  words       runs of Unicode letters, marks and digits (apostrophes inside
              kept) after NFKC normalization and case folding: any script
              that separates words by spaces ("très", "médiocre", 재밌어요);
              your own files' default;
  characters  every character but whitespace, normalized the same way:
              Korean syllables, Chinese, Japanese;
  subwords    SentencePiece (unigram) pieces of the normalized text, the
              model trained on the run's train text (and unlabeled text),
              never validation or test text, with num_words - 2 pieces.
"""

import functools
import hashlib
import io
import json
import pathlib
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2
TOKENIZER_VERSION = 1  # bump when the english rule changes: it keys caches
PADDING_SIDES = ("pre", "post")
KINDS = ("english", "words", "characters", "subwords")
AUTO = "auto"  # english for IMDB, words for your own files
IMDB = "imdb_reviews"
# SentencePiece reads a review of up to this many bytes whole (its default,
# 4,192, would skip long reviews).
MAX_PIECE_TRAINING_BYTES = 1 << 16
MODEL_FILE = "tokenizer.model"
# SentencePiece learns from a seeded sample of at most this many reviews
# (memory stays bounded on large data).
MAX_PIECE_TRAINING_REVIEWS = 200_000  # a workdir's or export's SentencePiece model

_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str | bytes) -> list[str]:
  """The english rule: lower-cases, treats `<br />` as whitespace, returns
  the runs of [a-z0-9']."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  return _WORD.findall(text.lower().replace("<br />", " "))


def normalize(text: str | bytes) -> str:
  """NFKC-normalized, case-folded text, `<br />` a space, ’ an apostrophe
  (the words, characters and subwords kinds)."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  text = unicodedata.normalize("NFKC", text.replace("<br />", " "))
  return text.casefold().replace("\u2019", "'")


@functools.cache
def _unicode_word() -> re.Pattern:
  """A word: letters, digits and combining marks (Devanagari and Thai
  vowel signs are marks), apostrophes only inside."""
  marks, start = [], None
  for code in [*range(0x20000), *range(0xE0000, 0xE1000), 0x10FFFF]:
    is_mark = unicodedata.category(chr(code)).startswith("M")
    if is_mark and start is None:
      start = code
    elif not is_mark and start is not None:
      marks.append(f"\\U{start:08x}-\\U{code - 1:08x}")
      start = None
  letter = f"(?:[^\\W_]|[{''.join(marks)}])"
  return re.compile(f"{letter}+(?:'{letter}+)*")


def is_word_character(char: str) -> bool:
  """Whether the words rule counts `char` (normalized) as part of a word:
  a letter, digit or combining mark (an apostrophe only between them)."""
  return _unicode_word().fullmatch(char) is not None


def unicode_words(text: str | bytes) -> list[str]:
  """The words kind: Unicode words of the normalized text."""
  return _unicode_word().findall(normalize(text))


def characters(text: str | bytes) -> list[str]:
  """The characters kind: every character of the normalized text but
  whitespace."""
  return list("".join(normalize(text).split()))


def kind_of(config) -> str:
  """The tokenizer a config uses: `config.tokenizer`, with "auto" english
  for IMDB and words for your own files."""
  if config.tokenizer != AUTO:
    return config.tokenizer
  return "english" if config.dataset == IMDB else "words"


class Tokenizer:
  """text -> tokens of one kind; `model`: the SentencePiece model (bytes of
  its proto) for subwords, else None."""

  def __init__(self, kind: str = "english", model: bytes | None = None):
    if kind not in KINDS:
      raise ValueError(f"unknown tokenizer {kind!r}; use one of {KINDS}")
    if (kind == "subwords") != (model is not None):
      raise ValueError("a SentencePiece model goes with subwords only")
    self.kind, self.model = kind, model
    self._pieces = None

  def __call__(self, text: str | bytes) -> list[str]:
    if self.kind == "english":
      return tokenize(text)
    if self.kind == "words":
      return unicode_words(text)
    if self.kind == "characters":
      return characters(text)
    return self.processor().encode(normalize(text), out_type=str)

  def processor(self):
    """The SentencePiece processor (subwords)."""
    if self._pieces is None:
      import sentencepiece  # pylint: disable=g-import-not-at-top
      self._pieces = sentencepiece.SentencePieceProcessor(
          model_proto=self.model)
    return self._pieces

  def pieces(self) -> list[str]:
    """The model's pieces but its unknown piece, in id order (subwords)."""
    processor = self.processor()
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())
            if not processor.is_unknown(i)]

  def model_digest(self) -> str | None:
    return hashlib.sha256(self.model).hexdigest() if self.model else None

  def __eq__(self, other) -> bool:
    return (isinstance(other, Tokenizer) and self.kind == other.kind
            and self.model == other.model)

  def __repr__(self) -> str:
    return f"Tokenizer({self.kind!r})"


@functools.cache
def of_kind(kind: str) -> "Tokenizer":
  """The Tokenizer of `kind` (not subwords), made once per process."""
  return Tokenizer(kind)


class PieceCountError(ValueError):
  """SentencePiece cannot make the pieces asked for from this text: at
  most `bound` (too_many) or at least `bound` (too few for its characters)
  pieces besides the unknown one."""

  def __init__(self, bound: int, too_many: bool):
    super().__init__(bound, too_many)
    self.bound, self.too_many = bound, too_many


def train_subwords(texts: Iterable[str | bytes], num_pieces: int,
                   seed: int = 0) -> Tokenizer:
  """A subwords Tokenizer whose SentencePiece unigram model, trained on
  `texts`, has `num_pieces` pieces besides its unknown piece.
  PieceCountError if the texts allow fewer, or their characters need more."""
  import sentencepiece  # pylint: disable=g-import-not-at-top
  sentencepiece.set_random_generator_seed(seed)
  model = io.BytesIO()
  try:
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=(normalize(t) for t in texts), model_writer=model,
        vocab_size=num_pieces + 1, model_type="unigram", unk_id=0,
        bos_id=-1, eos_id=-1, pad_id=-1, character_coverage=0.9995,
        max_sentence_length=MAX_PIECE_TRAINING_BYTES, num_threads=1,
        minloglevel=2, input_sentence_size=MAX_PIECE_TRAINING_REVIEWS,
        shuffle_input_sentence=True)
  except RuntimeError as e:
    most = re.search(r"value <= (\d+)", str(e))
    if most:
      raise PieceCountError(max(0, int(most.group(1)) - 1), True) from None
    least = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(e))
    if least:
      raise PieceCountError(int(least.group(1)) - 1, False) from None
    raise
  return Tokenizer("subwords", model.getvalue())


def most_frequent(counts: Iterable[tuple[str, int]], keep: int) -> list[str]:
  """The vocabulary's rule: the `keep` tokens of the highest (token,
  count) counts, ties broken alphabetically."""
  ranked = sorted(counts, key=lambda item: (-item[1], item[0]))
  return [word for word, _ in ranked[:keep]]


def build_vocabulary(tokenized: Iterable[Sequence[str]],
                     num_words: int) -> list[str]:
  """The `num_words - 2` most frequent words; word i gets id i + 2."""
  counts = Counter()
  for words in tokenized:
    counts.update(words)
  return most_frequent(counts.items(), num_words - NUM_RESERVED_IDS)


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


def vocabulary_json(vocabulary: Sequence[str],
                    tokenizer: Tokenizer | None = None,
                    classes: Sequence[str] | None = None) -> str:
  """The text of a workdir's vocab.json (an english run's as before
  tokenizers had kinds; others name theirs, and subwords the sha256 of
  the SentencePiece model file beside it; a run of K classes their names
  in class order, `data/labels.py`)."""
  record = {"pad_id": PAD_ID, "oov_id": OOV_ID,
            "first_word_id": NUM_RESERVED_IDS, "words": list(vocabulary)}
  if tokenizer is not None and tokenizer.kind != "english":
    record["tokenizer"] = tokenizer.kind
    if tokenizer.model:
      record["tokenizer_model_sha256"] = tokenizer.model_digest()
  if classes is not None:
    record["classes"] = list(classes)
  return json.dumps(record, ensure_ascii=False)


def vocabulary_digest(vocabulary: Sequence[str],
                      tokenizer: Tokenizer | None = None,
                      classes: Sequence[str] | None = None) -> str:
  """sha256 of a vocabulary (as vocab.json holds it), the tokenizer version
  and, beyond english, its kind and SentencePiece model; and the classes
  of a run that has them."""
  record = [TOKENIZER_VERSION, list(vocabulary)]
  if tokenizer is not None and tokenizer.kind != "english":
    record += [tokenizer.kind, tokenizer.model_digest()]
  if classes is not None:
    record += [list(classes)]
  return hashlib.sha256(json.dumps(record).encode()).hexdigest()


def load_classes(path: pathlib.Path) -> tuple[str, ...] | None:
  """The classes a vocab.json records (None: the binary words)."""
  classes = json.loads(pathlib.Path(path).read_bytes().decode("utf-8")).get(
      "classes")
  return None if classes is None else tuple(classes)


def load_vocabulary(path: pathlib.Path) -> list[str]:
  """The words of a vocab.json (ValueError/KeyError/TypeError if it is not
  one)."""
  words = json.loads(pathlib.Path(path).read_bytes().decode("utf-8"))["words"]
  if not isinstance(words, list) or not all(isinstance(w, str)
                                            for w in words):
    raise ValueError("its words are not a list of strings")
  return words


def load_tokenizer(folder: pathlib.Path, config) -> Tokenizer:
  """The tokenizer of a workdir (or export) `folder` trained with `config`:
  for subwords its tokenizer.model, checked against the sha256 vocab.json
  records. ValueError, saying what is wrong with which file, if it is
  missing or damaged."""
  kind = kind_of(config)
  if kind != "subwords":
    return Tokenizer(kind)
  path = pathlib.Path(folder) / MODEL_FILE
  try:
    model = path.read_bytes()
  except FileNotFoundError:
    raise ValueError(f"{path} is missing") from None
  try:
    recorded = json.loads((pathlib.Path(folder) / "vocab.json").read_text(
        encoding="utf-8")).get("tokenizer_model_sha256")
  except (OSError, ValueError, AttributeError):
    recorded = None
  tokenizer = Tokenizer("subwords", model)
  if recorded is not None and recorded != tokenizer.model_digest():
    raise ValueError(f"{path} is damaged (its sha256 is not the one "
                     f"vocab.json records)")
  try:
    tokenizer.processor()
  except (RuntimeError, OSError) as e:
    raise ValueError(f"{path} is damaged (SentencePiece cannot read it: "
                     f"{' '.join(str(e).split())[:80]})") from None
  return tokenizer


def word_ids(vocabulary: Sequence[str]) -> dict[str, int]:
  """token -> id (token i of the vocabulary has id i + NUM_RESERVED_IDS)."""
  return {w: i + NUM_RESERVED_IDS for i, w in enumerate(vocabulary)}


def words_to_ids(words: Sequence[Sequence[str]], ids: dict[str, int],
                 config) -> np.ndarray:
  """Tokenized texts -> token ids [len(words), config.seq_len] int32,
  unknown tokens OOV_ID, padded and truncated as `config` says."""
  encoded = [np.array([ids.get(w, OOV_ID) for w in ws], np.int32)
             for ws in words]
  return pad_sequences(encoded, config.seq_len, config.padding,
                       config.truncating)


def texts_to_ids(texts: Sequence[str | bytes], ids: dict[str, int],
                 config, tokenizer: Tokenizer | None = None) -> np.ndarray:
  """Raw texts -> token ids [len(texts), config.seq_len] int32, exactly as
  training encodes them (`ids`: `word_ids(vocabulary)`; `tokenizer`: the
  run's, by default its kind's — subwords need the trained one)."""
  tokenizer = tokenizer or Tokenizer(kind_of(config))
  return words_to_ids([tokenizer(t) for t in texts], ids, config)
