"""Loads and runs an export of a trained model (`flax_sentiment.usage.export`).

Needs only the standard library, numpy, jax and flatbuffers (jax.export's
format; jax does not bring it): no flax, orbax, optax,
tensorflow or the rest of flax_sentiment. The file is self-contained, and
every export carries a copy of it, so an export directory can be shipped
alone:

  python DIR/exported.py DIR "A wonderful film." "Dull and long."
  python DIR/exported.py DIR --file reviews.txt --json   # one review a line

In Python (`import exported` beside the copy, or `flax_sentiment.usage.exported`):

  model = exported.load(DIR)
  model.predict(["A wonderful film."])   # P(positive), np.ndarray [n]

A run of K > 2 classes exports each class's probability: `model.classes`
names them in order, `model.predict(texts)` is [n, K] and each record
(--json) names the most probable class.

An export directory holds:
  model.jax_export  a serialized `jax.export.Exported`: token ids [b, seq_len]
                    int32 -> P(positive) [b] float32, for any batch size b
                    (K classes: their probabilities [b, K] float32);
  vocab.json        the run's vocabulary (word i has id i + 2);
  exported.py       this loader;
  export.json       the manifest: format and tokenizer versions, the
                    tokenization settings, the run's config, the platforms,
                    (K classes: "classes", their names in order,) the
                    sha256 of every other file and a digest of itself.

`load` refuses a damaged export, one of another format or one tokenized
by another tokenizer version with one `ExportError` (a ValueError) that
names the directory and the fix.
"""

import argparse
import functools
import hashlib
import itertools
import json
import pathlib
import re
import sys
import unicodedata
from typing import BinaryIO, Iterable, Iterator, Sequence

import jax
import numpy as np

FORMAT = "flax-sentiment-export"
FORMAT_VERSION = 1
# Exports of runs of K > 2 classes (a "classes" key, [batch, K] outputs)
# record this version, which loaders of before them refuse in one line.
CLASSES_FORMAT_VERSION = 2
# The english rule below; equal to
# flax_sentiment.data.tokenizer.TOKENIZER_VERSION (tests/test_export.py checks
# both agree on texts). Exports of the other kinds (words, characters,
# subwords) record TOKENIZER_KINDS_VERSION, which loaders of before them
# refuse instead of scoring with the english rule.
TOKENIZER_VERSION = 1
TOKENIZER_KINDS_VERSION = 2
SUBWORDS_MODEL_FILE = "tokenizer.model"  # the SentencePiece model (subwords)
MANIFEST = "export.json"
MODEL_FILE = "model.jax_export"
VOCABULARY_FILE = "vocab.json"
LOADER_FILE = "exported.py"
PAD_ID, OOV_ID, FIRST_WORD_ID = 0, 1, 2
PADDING_SIDES = ("pre", "post")
DEFAULT_BATCH_SIZE = 256  # rows per compiled call: bounds memory
ECHO_CHARS = 60  # echoed text is cut to this many characters

WORD_PATTERN = r"[a-z0-9']+"  # a word, after lower-casing

_WORD = re.compile(WORD_PATTERN)


MAX_LINE_BYTES = 1 << 20  # a longer --file line is refused (no review is)


class InputError(ValueError):
  """A --file that is not one UTF-8 review a line; the message names the
  file, the line and the fix."""


class ExportError(ValueError):
  """An export that cannot be used; the message names it and the fix."""


# The tokenizers, as flax_sentiment.data.tokenizer has them.


def tokenize(text: str | bytes) -> list[str]:
  """english: lower-cases, treats `<br />` as whitespace, returns the
  runs of [a-z0-9']."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  return _WORD.findall(text.lower().replace("<br />", " "))


def normalize(text: str | bytes) -> str:
  """NFKC-normalized, case-folded text, `<br />` a space, ’ an apostrophe."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  text = unicodedata.normalize("NFKC", text.replace("<br />", " "))
  return text.casefold().replace("\u2019", "'")


@functools.cache
def _unicode_word() -> re.Pattern:
  """A word: letters, digits and combining marks, apostrophes inside."""
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


def unicode_words(text: str | bytes) -> list[str]:
  """words: Unicode words of the normalized text."""
  return _unicode_word().findall(normalize(text))


def characters(text: str | bytes) -> list[str]:
  """characters: every character of the normalized text but whitespace."""
  return [c for c in normalize(text) if not c.isspace()]


def subwords(path: pathlib.Path):
  """subwords: text -> the pieces of the export's SentencePiece model
  (ExportError if the sentencepiece package is missing)."""
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ExportError(f"export {path} splits text into SentencePiece "
                      f"subwords and needs the sentencepiece package: pip "
                      f"install sentencepiece") from None
  try:
    processor = sentencepiece.SentencePieceProcessor(
        model_proto=(path / SUBWORDS_MODEL_FILE).read_bytes())
  except (OSError, RuntimeError) as e:
    raise _damaged(path, f"{SUBWORDS_MODEL_FILE} does not read: "
                   f"{' '.join(str(e).split())[:80]}") from None
  return lambda text: processor.encode(normalize(text), out_type=str)


SPLITTERS = {"english": tokenize, "words": unicode_words,
             "characters": characters}


def encode(texts: Sequence[str], word_ids: dict[str, int], seq_len: int,
           padding: str, truncating: str, split=tokenize) -> np.ndarray:
  """Texts -> token ids [len(texts), seq_len] int32, as in training:
  unknown words 1, padding 0, Keras `pad_sequences` (truncating "pre"
  keeps the last `seq_len` words, "post" the first; padding "pre" puts the
  zeros in front, "post" behind); `split`: the export's tokenizer."""
  out = np.zeros((len(texts), seq_len), np.int32)
  for row, text in zip(out, texts):
    ids = [word_ids.get(w, OOV_ID) for w in split(text)]
    kept = ids[-seq_len:] if truncating == "pre" else ids[:seq_len]
    if kept:
      if padding == "pre":
        row[seq_len - len(kept):] = kept
      else:
        row[:len(kept)] = kept
  return out


# Digests, shared with the exporter.


def label_of(probability: float) -> str:
  """The label a probability of the positive class gets."""
  return "positive" if probability > 0.5 else "negative"


def meaningless(words: int, unknown: int) -> str | None:
  """Why a text's score means nothing (no words, or none known), or None."""
  if not words:
    return "the text has no words; its score means nothing"
  if words == unknown:
    return ("none of its words is in the vocabulary; its score means "
            "nothing")
  return None


def prediction_record(text: str, probability: float | np.ndarray,
                      words: int, unknown: int, words_used: int,
                      classes: Sequence[str] | None = None) -> dict:
  """One text's prediction as `predict --json`, serve's POST /predict and
  this loader's --json give it (one builder for all three). Two classes
  (`classes` None, `probability` P(positive)): text, probability_positive,
  label, words, unknown_words, words_used. K classes (`classes` their
  names in class order, `probability` each one's [K]): text, label (the
  most probable class), probability (its), probabilities {class: p},
  words, unknown_words, words_used. Both: a warning when the score means
  nothing."""
  if classes is None:
    record = {"text": text, "probability_positive": float(probability),
              "label": label_of(probability)}
  else:
    probability = np.asarray(probability)
    best = int(np.argmax(probability))
    record = {"text": text, "label": classes[best],
              "probability": float(probability[best]),
              "probabilities": {c: float(p) for c, p in zip(classes,
                                                            probability)}}
  record.update(words=words, unknown_words=unknown, words_used=words_used)
  warning = meaningless(words, unknown)
  if warning:
    record["warning"] = warning
  return record


def file_digest(path: pathlib.Path) -> str:
  """sha256 (hex) of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def manifest_digest(manifest: dict) -> str:
  """sha256 (hex) of the manifest without its "digest" field, as canonical
  JSON: any edit to export.json is detected."""
  rest = {k: v for k, v in manifest.items() if k != "digest"}
  text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


# Reading an export.


def _damaged(path: pathlib.Path, what: str) -> ExportError:
  return ExportError(f"export {path} is damaged ({what}); export the run "
                     f"again: python -m flax_sentiment.usage.export --workdir "
                     f"RUN --out {path}")


def read_manifest(path: pathlib.Path) -> dict:
  """export.json of the export directory `path`, its format, digest and
  tokenizer version checked (ExportError otherwise)."""
  if not path.is_dir():
    raise ExportError(f"export {path} does not exist or is not a "
                      f"directory; pass the --out directory of "
                      f"python -m flax_sentiment.usage.export")
  file = path / MANIFEST
  if not file.is_file():
    raise ExportError(f"{path} is not a flax-sentiment export (no "
                      f"{MANIFEST}); pass the --out directory of "
                      f"python -m flax_sentiment.usage.export")
  try:
    manifest = json.loads(file.read_text(encoding="utf-8"))
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise _damaged(path, f"{MANIFEST} does not read as JSON: {e}") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise _damaged(path, f"{MANIFEST} is not a {FORMAT} manifest")
  version = manifest.get("format_version")
  if version not in (FORMAT_VERSION, CLASSES_FORMAT_VERSION):
    raise ExportError(f"export {path} has format version {version!r}; this "
                      f"loader reads versions {FORMAT_VERSION} and "
                      f"{CLASSES_FORMAT_VERSION}: use the "
                      f"{LOADER_FILE} saved in {path}, or export the run "
                      f"again with this flax-sentiment")
  if manifest.get("digest") != manifest_digest(manifest):
    raise _damaged(path, f"{MANIFEST} was changed: its digest does not "
                   f"match")
  tokenizer = manifest.get("tokenizer_version")
  if tokenizer not in (TOKENIZER_VERSION, TOKENIZER_KINDS_VERSION):
    raise ExportError(f"export {path} was tokenized with tokenizer version "
                      f"{tokenizer!r}, this loader implements versions "
                      f"{TOKENIZER_VERSION} and {TOKENIZER_KINDS_VERSION} "
                      f"(its scores would be wrong): "
                      f"use the {LOADER_FILE} saved in {path}, or export "
                      f"the run again with this flax-sentiment")
  return manifest


def verify_files(path: pathlib.Path, manifest: dict) -> None:
  """Every file the manifest lists exists with its sha256 (ExportError
  otherwise)."""
  files = manifest.get("files")
  if not isinstance(files, dict) or not {MODEL_FILE,
                                         VOCABULARY_FILE} <= set(files):
    raise _damaged(path, f"{MANIFEST} lists no {MODEL_FILE} and "
                   f"{VOCABULARY_FILE}")
  for name, want in sorted(files.items()):
    file = path / name
    if pathlib.PurePath(name).name != name or not file.is_file():
      raise _damaged(path, f"{name} is missing")
    if file_digest(file) != want:
      raise _damaged(path, f"{name} does not match its sha256 in "
                     f"{MANIFEST}")


def check_output(path: pathlib.Path, manifest: dict, outputs) -> None:
  """The function's outputs (`out_avals`) are what the manifest says:
  P(positive) [b], or with "classes" (names of K > 2 classes, in order)
  their probabilities [b, K] (ExportError otherwise)."""
  classes = manifest.get("classes")
  if classes is not None and (
      not isinstance(classes, list) or len(classes) < 3
      or not all(isinstance(c, str) and c for c in classes)
      or len(set(classes)) < len(classes)):
    raise _damaged(path, f"{MANIFEST} has classes {classes!r}, not three "
                   f"or more distinct names")
  rank = 1 if classes is None else 2
  if (len(outputs) != 1 or len(outputs[0].shape) != rank
      or (classes is not None and outputs[0].shape[1] != len(classes))):
    want = "[b]" if classes is None else f"[b, {len(classes)}]"
    raise _damaged(path, f"{MODEL_FILE} does not give scores {want} (it "
                   f"gives {outputs})")


def read_vocabulary(path: pathlib.Path) -> list[str]:
  """The words of vocab.json; word i has id i + 2."""
  try:
    vocab = json.loads((path / VOCABULARY_FILE).read_text(encoding="utf-8"))
    words = vocab["words"]
    ids = (vocab.get("pad_id", PAD_ID), vocab.get("oov_id", OOV_ID),
           vocab.get("first_word_id", FIRST_WORD_ID))
  except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError,
          AttributeError) as e:
    raise _damaged(path, f"{VOCABULARY_FILE} does not read: {e!r}") from None
  if ids != (PAD_ID, OOV_ID, FIRST_WORD_ID) or not all(
      isinstance(w, str) for w in words):
    raise _damaged(path, f"{VOCABULARY_FILE} is not a vocabulary with pad "
                   f"id 0, unknown id 1 and words from id 2")
  return words


def _platform(device: jax.Device) -> str:
  """The jax.export platform name of a device: cpu, cuda, rocm or tpu."""
  if device.platform != "gpu":
    return device.platform
  version = str(getattr(device.client, "platform_version", "")).lower()
  return "rocm" if "rocm" in version else "cuda"


def pick_device(path: pathlib.Path, platforms: Sequence[str]) -> jax.Device:
  """The first device of a platform the export was made for (the CPU if it
  was made for the CPU and the default devices are accelerators)."""
  for device in jax.devices():
    if _platform(device) in platforms:
      return device
  if "cpu" in platforms:
    try:
      return jax.devices("cpu")[0]
    except RuntimeError:
      pass
  here = sorted({_platform(d) for d in jax.devices()})
  raise ExportError(f"export {path} was made for {', '.join(platforms)}, "
                    f"this machine runs {', '.join(here)}; export the run "
                    f"again with --platform {here[0]}")


class ExportedModel:
  """A loaded export: texts -> P(positive) [n] (K classes: [n, K]).

  Attributes: path, manifest (export.json), vocabulary, seq_len, padding,
  truncating, config (the run's), platforms, device (where it runs),
  batch_size (rows per call), classes (K > 2 classes: their names in the
  order of the probabilities; None for two).
  """

  def __init__(self, path: pathlib.Path, manifest: dict,
               vocabulary: list[str], exported: jax.export.Exported,
               device: jax.Device, batch_size: int = DEFAULT_BATCH_SIZE,
               split=tokenize):
    tokens = manifest["tokenization"]
    self.tokenizer = tokens.get("tokenizer", "english")
    self._split = split
    self.path, self.manifest, self.vocabulary = path, manifest, vocabulary
    self.seq_len = int(tokens["seq_len"])
    self.padding, self.truncating = tokens["padding"], tokens["truncating"]
    self.config = manifest.get("config", {})
    self.platforms = tuple(manifest["platforms"])
    self.device, self.batch_size = device, batch_size
    classes = manifest.get("classes")
    self.classes = None if classes is None else tuple(classes)
    # One text's scores: P(positive) [], or [K] for K classes.
    self._row = () if self.classes is None else (len(self.classes),)
    self._word_ids = {w: i + FIRST_WORD_ID for i, w in enumerate(vocabulary)}
    self._call = jax.jit(exported.call)

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Texts -> token ids [len(texts), seq_len] int32."""
    return encode(texts, self._word_ids, self.seq_len, self.padding,
                  self.truncating, self._split)

  def word_counts(self, text: str) -> tuple[int, int]:
    """(words, unknown words) of a text, over the whole text."""
    words = self._split(text)
    return len(words), sum(w not in self._word_ids for w in words)

  def predict_tokens(self, tokens: np.ndarray) -> np.ndarray:
    """Token ids [n, seq_len] -> P(positive) [n] float32 (K classes:
    [n, K]), in batches of at most `batch_size` rows (a smaller batch is
    padded to the next power of two: few compiled shapes)."""
    tokens = np.asarray(tokens, np.int32)
    if tokens.ndim != 2 or tokens.shape[1] != self.seq_len:
      raise ValueError(f"tokens must be [n, {self.seq_len}], got "
                       f"{list(tokens.shape)}")
    out = [self._batch(tokens[i:i + self.batch_size])
           for i in range(0, len(tokens), self.batch_size)]
    return np.concatenate(out) if out else self._none()

  def predict(self, texts: Iterable[str]) -> np.ndarray:
    """Texts (any iterable: read `batch_size` at a time) -> P(positive)
    [n] float32 (K classes: each class's probability [n, K])."""
    if isinstance(texts, (str, bytes)):
      raise TypeError("predict takes a list of texts, not one text")
    out, chunk = [], []
    for text in texts:
      chunk.append(text)
      if len(chunk) == self.batch_size:
        out.append(self._batch(self.encode(chunk)))
        chunk = []
    if chunk:
      out.append(self._batch(self.encode(chunk)))
    return np.concatenate(out) if out else self._none()

  __call__ = predict

  def record(self, text: str, probability: float | np.ndarray) -> dict:
    """`prediction_record` of a text and its score from `predict`."""
    words, unknown = self.word_counts(text)
    return prediction_record(text, probability, words, unknown,
                             min(words, self.seq_len), self.classes)

  def _none(self) -> np.ndarray:
    return np.zeros((0,) + self._row, np.float32)

  def _batch(self, tokens: np.ndarray) -> np.ndarray:
    rows = len(tokens)
    padded_rows = min(self.batch_size, 1 << max(rows - 1, 0).bit_length())
    if rows < padded_rows:
      tokens = np.concatenate([tokens, np.zeros(
          (padded_rows - rows, self.seq_len), np.int32)])
    scores = self._call(jax.device_put(tokens, self.device))
    return np.asarray(scores, np.float32)[:rows]


def load(path: str | pathlib.Path,
         batch_size: int = DEFAULT_BATCH_SIZE) -> ExportedModel:
  """The export in directory `path`, checked (ExportError if it is damaged,
  of another format or tokenizer version, or made for other platforms)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  path = pathlib.Path(path)
  manifest = read_manifest(path)
  verify_files(path, manifest)
  try:
    tokens = manifest["tokenization"]
    seq_len, platforms = int(tokens["seq_len"]), list(manifest["platforms"])
    sides = (tokens["padding"], tokens["truncating"])
  except (KeyError, TypeError, ValueError) as e:
    raise _damaged(path, f"{MANIFEST} lacks {e}") from None
  if seq_len < 1 or not set(sides) <= set(PADDING_SIDES):
    raise _damaged(path, f"{MANIFEST} has seq_len {seq_len}, padding/"
                   f"truncating {sides[0]!r}/{sides[1]!r}")
  vocabulary = read_vocabulary(path)
  kind = tokens.get("tokenizer", "english")
  if kind == "subwords":
    split = subwords(path)
  elif kind in SPLITTERS:
    split = SPLITTERS[kind]
  else:
    raise ExportError(f"export {path} splits text with a {kind!r} "
                      f"tokenizer, which this loader does not know: use "
                      f"the {LOADER_FILE} saved in {path}")
  try:
    exported = jax.export.deserialize(
        bytearray((path / MODEL_FILE).read_bytes()))
  except Exception as e:  # pylint: disable=broad-except
    raise ExportError(f"export {path}: jax {jax.__version__} cannot read "
                      f"{MODEL_FILE} ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); use "
                      f"the jax version that exported it "
                      f"({manifest.get('jax_version', 'unknown')}) or export "
                      f"the run again") from None
  avals = exported.in_avals
  if (len(avals) != 1 or len(avals[0].shape) != 2
      or avals[0].shape[1] != seq_len or avals[0].dtype != np.int32):
    raise _damaged(path, f"{MODEL_FILE} does not take token ids [b, "
                   f"{seq_len}] int32 (it takes {avals})")
  check_output(path, manifest, exported.out_avals)
  device = pick_device(path, platforms)
  return ExportedModel(path, manifest, vocabulary, exported, device,
                       batch_size, split)


# The command line.


def _short(text: str) -> str:
  """`text` on one line, cut to ECHO_CHARS, control and invisible format
  characters (escape sequences, bidirectional overrides) shown as U+FFFD."""
  text = " ".join(text.split())
  text = text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 1] + "…"
  return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Cs")
                 and c not in "\u200c\u200d" else c for c in text)


def open_input(path: str | None) -> tuple[BinaryIO | None, str]:
  """The --file stream (binary; stdin for -) and its name in messages;
  InputError if it cannot be opened (predict and this loader alike)."""
  if path is None:
    return None, ""
  if path == "-":
    return sys.stdin.buffer, "stdin (--file -)"
  try:
    return open(path, "rb"), f"--file {path}"
  except OSError as e:
    raise InputError(f"cannot read --file {path} ({e.strerror}); pass a "
                     f"text file with one review per line, or - for "
                     f"stdin") from None


def read_lines(stream: BinaryIO, name: str) -> Iterator[str]:
  """The non-blank lines of a binary stream, decoded as UTF-8 (a leading
  byte-order mark dropped), one at a time. InputError naming `name` and the
  line number for a NUL byte (a binary or UTF-16 file), bytes that are not
  UTF-8, or a line over MAX_LINE_BYTES (InputError: predict and this
  loader read --file alike)."""
  fix = "pass a UTF-8 text file with one review per line"
  for number in itertools.count(1):
    raw = stream.readline(MAX_LINE_BYTES + 1)
    if not raw:
      return
    if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
      raise InputError(f"{name} has a line longer than {MAX_LINE_BYTES:,} "
                      f"bytes at line {number} (a binary file?); {fix}")
    if b"\0" in raw:
      raise InputError(f"{name} is not text: line {number} holds a NUL byte "
                      f"(a binary or UTF-16 file?); {fix}")
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise InputError(
          f"{name} is not UTF-8 text at line {number} (byte "
          f"0x{raw[e.start]:02x} at column {e.start + 1}); {fix} (e.g. "
          f"iconv -f latin1 -t utf-8 converts Latin-1)") from None
    if number == 1:
      line = line.removeprefix("\ufeff")
    line = line.rstrip("\r\n")
    if line.strip():
      yield line


def _texts(arguments: Sequence[str], lines: Iterable[str]) -> Iterator[str]:
  """The texts given as arguments, then the lines of --file."""
  yield from arguments
  yield from lines


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
  texts = iter(texts)
  while batch := list(itertools.islice(texts, size)):
    yield batch


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      description="Sentiment of your own text, from a flax-sentiment "
      "export directory (needs only numpy and jax).")
  parser.add_argument("export", help="the export directory")
  parser.add_argument("texts", nargs="*", help="reviews to classify")
  parser.add_argument("--file", help="read texts from this file, one per "
                      "line ('-': stdin)")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per text")
  parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                      help="reviews read, scored and printed at a time "
                      "(bounds memory)")
  args = parser.parse_intermixed_args(argv)  # DIR --json TEXT ... too
  if args.batch_size < 1:
    parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
  try:
    if not args.texts and args.file is None:
      raise ExportError("no texts given; pass them as arguments, or --file "
                        "PATH (one review per line; - reads stdin)")
    stream, name = open_input(args.file)
    model = load(args.export, args.batch_size)
  except (ExportError, InputError) as e:
    sys.exit(f"error: {e}")
  lines = read_lines(stream, name) if stream else ()
  try:
    for batch in _batches(_texts(args.texts, lines), args.batch_size):
      for text, p in zip(batch, model.predict(batch)):
        if args.json:
          print(json.dumps(model.record(text, p)))
        elif model.classes is None:
          print(f"{p:.3f}  {label_of(p):<8}  {_short(text)}")
        else:
          record = model.record(text, p)
          print(f"{record['probability']:.3f}  {record['label']:<8}  "
                f"{_short(text)}")
      sys.stdout.flush()
  except InputError as e:
    sys.exit(f"error: {e}")
  finally:
    if stream not in (None, sys.stdin.buffer):
      stream.close()


if __name__ == "__main__":
  main(sys.argv[1:])
