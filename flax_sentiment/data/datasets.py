"""Reviews as a run reads them: IMDB via tfds or your own files via
`sources`, tokenized and encoded by `tokenizer` (cached by content), the
vocabulary from train text only, the validation and held-out test splits,
padded to [examples, seq_len] int32."""

import dataclasses
import hashlib
import json
import os
import pathlib
import socket
import time

import numpy as np

from flax_sentiment.data import checks, tokenizer, vocabulary
from flax_sentiment.data.tokenizer import (TOKENIZER_VERSION, Tokenizer,
                                          encode, pad_sequences)
from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import ConfigError, DataNotFoundError

DATASET = "imdb_reviews"

# Where tfds' imdb_reviews builder downloads the reviews from.
IMDB_SOURCE_HOST = "ai.stanford.edu"


def balanced_subset(labels: np.ndarray, size: int | None,
                    seed: int) -> np.ndarray:
  """Sorted indices of a seeded subset with (as near as possible) equal
  numbers of each label; all indices if `size` is None or too large."""
  if size is None or size >= len(labels):
    return np.arange(len(labels))
  rng = np.random.default_rng(seed)
  classes = np.unique(labels)
  per_class = [size // len(classes) + (i < size % len(classes))
               for i in range(len(classes))]
  chosen = [rng.permutation(np.flatnonzero(labels == c))[:n]
            for c, n in zip(classes, per_class)]
  return np.sort(np.concatenate(chosen))


@dataclasses.dataclass(frozen=True)
class Split:
  """One split, padded: tokens [examples, seq_len] int32, labels [examples]
  int32, lengths [examples] (real tokens kept after truncation),
  true_lengths [examples] (words of each review before truncation)."""
  tokens: np.ndarray
  labels: np.ndarray
  lengths: np.ndarray
  true_lengths: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class ImdbData:
  train: Split
  test: Split
  vocabulary: list[str]
  validation: Split | None = None  # carved from train (validation_examples)
  # Unpadded ids of the text pretraining may use: the train reviews kept for
  # training (never validation or test) and the unlabeled reviews.
  pretraining_ids: list[np.ndarray] | None = None
  # The unlabeled reviews, padded (labels -1), for virtual adversarial
  # training (virtual_adversarial_epsilon > 0), else None.
  unlabeled: Split | None = None
  # text -> tokens as the vocabulary was made (data.tokenizer).
  tokenizer: Tokenizer = dataclasses.field(default_factory=Tokenizer)


# ---------------------------------------------------------------- reading


def _data_source(config):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from flax_sentiment.runtime.quiet import quiet_library  # pylint: disable=g-import-not-at-top
  with quiet_library():  # no tfds log line before our own message
    builder = tfds.builder(DATASET, data_dir=config.data_dir)
    prepared, looked_in = builder.is_prepared(), builder.data_dir
  if not prepared:
    fix = ("Point --config.data_dir (or the TFDS_DATA_DIR environment "
           "variable) at a folder that holds imdb_reviews/, e.g. "
           "../shared/tensorflow_datasets")
    if not config.download:
      raise DataNotFoundError(
          f"IMDB data not found: looked in {looked_in} and download is off "
          f"(--config.download=False). {fix}.")
    if not _source_reachable():
      # tfds would retry for minutes before failing; say it now.
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in}, and {IMDB_SOURCE_HOST} (where "
          f"tfds downloads it from) cannot be resolved: this machine looks "
          f"offline. {fix}.")
    try:
      builder.download_and_prepare(file_format="array_record")
    except ImportError as e:
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in}, and preparing it needs "
          f"TensorFlow ({e}): pip install -e '.[prepare]' (or "
          f"tensorflow-cpu), or {fix[0].lower()}{fix[1:]}.") from e
    except Exception as e:  # network, disk ...
      raise DataNotFoundError(
          f"IMDB data not found in {looked_in} and downloading it failed "
          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
          f"{fix}, or run where the internet is reachable.") from e
  return builder


def _source_reachable() -> bool:
  try:
    socket.getaddrinfo(IMDB_SOURCE_HOST, 80)
    return True
  except OSError:
    return False


def read_split(builder, split: str) -> tuple[list[bytes], np.ndarray]:
  """All (text, label) pairs of a split, in tfds order."""
  source = builder.as_data_source(split=split)
  if hasattr(source, "__getitems__"):
    records = source.__getitems__(list(range(len(source))))
  else:
    records = [source[i] for i in range(len(source))]
  texts = [r["text"] for r in records]
  labels = np.array([r["label"] for r in records], np.int32)
  return texts, labels


# ---------------------------------------------------------------- caching


def _fingerprint(texts: list[bytes], labels: np.ndarray) -> str:
  digest = hashlib.sha256(labels.tobytes())
  for text in texts:
    digest.update(hashlib.sha256(text).digest())
  return digest.hexdigest()


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get(
      "FLAX_SENTIMENT_CACHE", pathlib.Path.home() / ".cache" / "flax_sentiment"))


def _ragged_to_flat(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  offsets = np.zeros(len(seqs) + 1, np.int64)
  np.cumsum([len(s) for s in seqs], out=offsets[1:])
  flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
  return flat.astype(np.int32), offsets


def _flat_to_ragged(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
  return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def uses_unlabeled_text(config) -> bool:
  """Whether the run reads unlabeled reviews (vocabulary, word2vec,
  language-model pretraining or virtual adversarial training)."""
  return (config.vocabulary_splits != "train"
          or config.pretrained_embeddings != "none"
          or bool(config.pretrain_lm_epochs)
          or bool(config.virtual_adversarial_epsilon))


def held_out(labels: np.ndarray, fraction: float, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held) sorted indices: a seeded, label-balanced `fraction` of
  the reviews held out (at least one review on each side)."""
  size = min(max(1, round(len(labels) * fraction)), len(labels) - 1)
  held = balanced_subset(labels, size, seed)
  return np.setdiff1d(np.arange(len(labels)), held), held


def read_raw(config, say=lambda message: None
             ) -> dict[str, tuple[list[bytes], np.ndarray]]:
  """{split: (texts, labels)}: "train" and "test", and "unsupervised"
  (labels -1) when the config uses unlabeled text and has some: IMDB's
  splits (`dataset="imdb_reviews"`, via tfds) or your own files
  (`sources`), a test file or a held-out share of the dataset."""
  from flax_sentiment.data import sources  # pylint: disable=g-import-not-at-top
  raw = {}
  if config.dataset == DATASET:
    builder = _data_source(config)
    say(f"Reading IMDB from {builder.data_dir} ...")
    wanted = ["train"] + ([] if config.test_dataset else ["test"])
    if uses_unlabeled_text(config) and not config.unlabeled_dataset:
      wanted.append("unsupervised")
    raw = {split: read_split(builder, split) for split in wanted}
  else:
    say(f"Reading reviews from {config.dataset} ...")
    raw["train"] = sources.read_labeled(config.dataset, config.text_field,
                                        config.label_field)
    if not config.test_dataset:
      texts, labels = raw["train"]
      kept, held = held_out(labels, config.test_fraction,
                            config.validation_seed + 1)
      raw["train"] = ([texts[i] for i in kept], labels[kept])
      raw["test"] = ([texts[i] for i in held], labels[held])
  if config.test_dataset:
    raw["test"] = sources.read_labeled(config.test_dataset, config.text_field,
                                       config.label_field, "test_dataset")
  if config.unlabeled_dataset and uses_unlabeled_text(config):
    texts = sources.read_unlabeled(config.unlabeled_dataset,
                                   config.text_field)
    raw["unsupervised"] = (texts, np.full(len(texts), -1, np.int32))
  if "unsupervised" not in raw and config.vocabulary_splits != "train":
    raise ConfigError(
        f"config.vocabulary_splits={config.vocabulary_splits!r} needs "
        f"unlabeled reviews: pass --config.unlabeled_dataset=FILE, or use "
        f"--config.vocabulary_splits=train")
  return raw


def _cache_key(raw: dict, config, kind: str) -> str:
  """What the token ids depend on: the tokenizer (version and kind),
  num_words, the vocabulary's splits, for the kinds fitted on the train
  reviews kept for training the choice of those, and every text and label."""
  vocabulary_splits = config.vocabulary_splits.split("+")
  parts = [TOKENIZER_VERSION, config.num_words] + (
      [] if vocabulary_splits == ["train"] else [vocabulary_splits])
  if kind != "english":  # english keys stay those of earlier versions
    parts += [kind, config.seed if config.max_train_examples else None,
              config.max_train_examples, config.validation_examples,
              config.validation_seed]
  parts.append([_fingerprint(*raw[s]) for s in raw])
  return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def tokenized_imdb(config, say=lambda message: None
                   ) -> tuple[dict, vocabulary.TextRule]:
  """Token ids per review of every split `read_raw` gives, cached on disk.

  Returns ({"train": (ids, labels), "test": (ids, labels)}, text rule), ids
  being a list of int32 arrays; also "unsupervised" (labels -1) when the
  config uses unlabeled reviews. The text rule (tokenizer and vocabulary)
  is fitted by `vocabulary.fit` on train text, never test or validation
  text. The cache key (`_cache_key`) covers what the ids depend on — the
  data's content, wherever it was read from — so any change to those
  re-tokenizes, and nothing else does.
  """
  start = time.perf_counter()
  kind = tokenizer.kind_of(config)
  raw = read_raw(config, say)
  if config.dataset != DATASET:
    checks.check_enough_reviews(raw, config)
  cache_dir = pathlib.Path(config.cache_dir or default_cache_dir())
  path = cache_dir / f"imdb_tokens_{_cache_key(raw, config, kind)[:24]}.npz"
  if path.exists():
    cached = np.load(path, allow_pickle=False)
    model = (cached["tokenizer_model"].tobytes()
             if "tokenizer_model" in cached else None)
    rule = vocabulary.TextRule(
        tokenizer.Tokenizer(kind, model),
        [str(w) for w in cached["vocabulary"]],
        float(cached["single_share"]) if "single_share" in cached else 0.0)
    say(f"Loaded token ids from the cache {path} "
        f"({time.perf_counter() - start:.1f}s)")
    return {s: (_flat_to_ragged(cached[f"{s}_ids"], cached[f"{s}_offsets"]),
                raw[s][1]) for s in raw}, rule

  say(f"Tokenizing {sum(len(t) for t, _ in raw.values()):,} reviews (once; "
      f"cached in {cache_dir}) ...")
  train_kept, _ = split_train(raw["train"][1], config)
  rule = vocabulary.fit(
      vocabulary.fitting_texts(raw, train_kept, config, kind), config, kind)
  ids = {s: encode((rule.tokenizer(t) for t in texts), rule.vocabulary)
         for s, (texts, _) in raw.items()}
  arrays = {"vocabulary": np.array(rule.vocabulary, dtype=str),
            "single_share": np.float64(rule.single_share)}
  if rule.tokenizer.model:
    arrays["tokenizer_model"] = np.frombuffer(rule.tokenizer.model, np.uint8)
  for s in ids:
    arrays[f"{s}_ids"], arrays[f"{s}_offsets"] = _ragged_to_flat(ids[s])
  with files.atomic_file(path, flag="--config.cache_dir") as f:
    np.savez(f, **arrays)  # a killed run leaves no half cache
  return {s: (ids[s], raw[s][1]) for s in ids}, rule


def _padded(ids: list[np.ndarray], labels: np.ndarray, keep: np.ndarray,
            config) -> Split:
  seqs = [ids[i] for i in keep]
  return Split(tokens=pad_sequences(seqs, config.seq_len, config.padding,
                                    config.truncating),
               labels=labels[keep],
               lengths=np.array([min(len(s), config.seq_len) for s in seqs],
                                np.int32),
               true_lengths=np.array([len(s) for s in seqs], np.int32))


def split_train(labels: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
  """(train ids, validation ids) of the train split: `max_train_examples`
  (seeded, label-balanced) if set, then `validation_examples` of those
  (seeded by `validation_seed`, label-balanced) held out. The validation
  ids depend on those seeds and sizes only, never on the test split; with a
  fixed `validation_seed`, runs of several seeds share one validation split
  (and so one set of pretrained word vectors)."""
  train = balanced_subset(labels, config.max_train_examples, config.seed)
  size = config.validation_examples
  if not size:
    return train, np.zeros(0, np.int64)
  if size >= len(train):
    raise ConfigError(
        f"config.validation_examples={size} leaves no reviews to train on "
        f"({len(train):,} train reviews); use fewer, e.g. "
        f"--config.validation_examples={max(1, len(train) // 10)}")
  held = train[balanced_subset(labels[train], size,
                              config.validation_seed + 2)]
  return np.setdiff1d(train, held), held


def test_subset(labels: np.ndarray, config) -> np.ndarray:
  """Sorted ids of the test reviews a run evaluates on: all, or
  `max_test_examples` of them (seeded, label-balanced)."""
  return balanced_subset(labels, config.max_test_examples, config.seed + 1)


def load_imdb(config, say=lambda message: None) -> ImdbData:
  """Reads, tokenizes (cached), subsets and pads the splits per `config`;
  `say` gets a line for each slow step."""
  tokenized, rule = tokenized_imdb(config, say)
  train_ids, train_labels = tokenized["train"]
  test_ids, test_labels = tokenized["test"]
  train_keep, held = split_train(train_labels, config)
  test_keep = test_subset(test_labels, config)
  checks.check_readable([len(train_ids[i]) for i in train_keep],
                        config.dataset, rule.tokenizer.kind)
  for warning in (vocabulary.single_use_warning(rule, config),
                  checks.vocabulary_warning(
                      [train_ids[i] for i in train_keep], config)):
    if warning:
      say(warning)
  pretraining = None
  if uses_unlabeled_text(config):
    pretraining = ([train_ids[i] for i in train_keep]
                   + list(tokenized.get("unsupervised", ([],))[0]))
  return ImdbData(
      train=_padded(train_ids, train_labels, train_keep, config),
      test=_padded(test_ids, test_labels, test_keep, config),
      vocabulary=rule.vocabulary,
      tokenizer=rule.tokenizer,
      validation=(_padded(train_ids, train_labels, held, config)
                  if len(held) else None),
      pretraining_ids=pretraining,
      unlabeled=unlabeled_split(tokenized, config))


def unlabeled_split(tokenized: dict, config) -> Split | None:
  """The unlabeled reviews padded like the train split, for virtual
  adversarial training (None when it is off)."""
  if not config.virtual_adversarial_epsilon:
    return None
  ids, labels = tokenized.get("unsupervised", ([], None))
  if not len(ids):
    raise ConfigError(
        f"config.virtual_adversarial_epsilon="
        f"{config.virtual_adversarial_epsilon} found no unlabeled reviews; "
        f"pass --config.unlabeled_dataset=FILE with some")
  return _padded(ids, labels, np.arange(len(ids)), config)
