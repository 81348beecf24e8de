"""Reviews as a run reads them: IMDB via tfds or your own files via
`sources`, tokenized and encoded by `tokenizer` (cached by content), the
vocabulary from train text only, the validation and held-out test splits,
padded to [examples, seq_len] int32."""

import dataclasses
import hashlib
import json
import os
import pathlib
import time

import numpy as np

from flax_sentiment.data import checks, chunks, imdb, splits, text_store
from flax_sentiment.data import labels, token_store, tokenizer, vocabulary
# The split rules, where they were before data/splits.py.
from flax_sentiment.data.splits import (balanced_subset, held_out,  # pylint: disable=unused-import
                                        split_train, test_subset,
                                        uses_unlabeled_text)
from flax_sentiment.data.tokenizer import Tokenizer
from flax_sentiment.runtime.errors import ConfigError

DATASET = imdb.NAME

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
  # The classes (`labels.Classes`): None for the binary words.
  classes: tuple[str, ...] | None = None


# ---------------------------------------------------------------- caching


def _fingerprint(texts: list[bytes], labels: np.ndarray) -> str:
  digest = hashlib.sha256(labels.tobytes())
  for text in texts:
    digest.update(hashlib.sha256(text).digest())
  return digest.hexdigest()


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get(
      "FLAX_SENTIMENT_CACHE", pathlib.Path.home() / ".cache" / "flax_sentiment"))


def read_raw(config, say=lambda message: None,
             classes: labels.Classes = None
             ) -> dict[str, tuple[list[bytes], np.ndarray]]:
  """{split: (texts, labels)}: "train" and "test", and "unsupervised"
  (labels -1) when the config uses unlabeled text and has some: IMDB's
  splits (`dataset="imdb_reviews"`, via tfds) or your own files
  (`sources`), a test file or a held-out share of the dataset."""
  from flax_sentiment.data import sources  # pylint: disable=g-import-not-at-top
  raw = {}
  if config.dataset == DATASET:
    builder = imdb.data_source(config)
    say(f"Reading IMDB from {builder.data_dir} ...")
    wanted = ["train"] + ([] if config.test_dataset else ["test"])
    if uses_unlabeled_text(config) and not config.unlabeled_dataset:
      wanted.append("unsupervised")
    raw = {split: imdb.read_split(builder, split) for split in wanted}
  else:
    say(f"Reading reviews from {config.dataset} ...")
    raw["train"] = sources.read_labeled(config.dataset, config.text_field,
                                        config.label_field, classes=classes)
    if not config.test_dataset:
      texts, labels = raw["train"]
      kept, held = held_out(labels, config.test_fraction,
                            config.validation_seed + 1)
      raw["train"] = ([texts[i] for i in kept], labels[kept])
      raw["test"] = ([texts[i] for i in held], labels[held])
  if config.test_dataset:
    raw["test"] = sources.read_labeled(config.test_dataset, config.text_field,
                                       config.label_field, "test_dataset",
                                       classes=classes)
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


def classes_of(config) -> labels.Classes:
  """The classes of a run's data: IMDB's two, or those of the dataset
  file's labels (`labels.classes_of`, in --config.labels' order)."""
  from flax_sentiment.data import sources  # pylint: disable=g-import-not-at-top
  if config.dataset == DATASET:
    if config.labels:
      raise ConfigError(f"config.labels={config.labels!r}: IMDB's labels "
                        f"are neg and pos; drop --config.labels")
    return None
  sources.check_exists(pathlib.Path(config.dataset), "dataset")
  return labels.classes_of(sources.label_counts(config.dataset,
                                                config.label_field),
                           config.labels)


def _streams(config, say) -> tuple[dict[str, token_store.Stream], list, int,
                                   labels.Classes]:
  """(source name -> a function that reads it afresh, what the sources'
  content digests, their size in bytes, the classes): IMDB's splits (read
  once, held: 100,000 reviews) or your files, read as they are iterated."""
  from flax_sentiment.data import sources  # pylint: disable=g-import-not-at-top
  classes = classes_of(config)
  if config.dataset == DATASET or not config.unlabeled_dataset and (
      config.vocabulary_splits != "train"):
    raw = read_raw(config, say, classes)  # (raises without unlabeled text)
    step = sources.BATCH_REVIEWS
    streams = {name: (lambda texts=texts, labels=labels: (
        (texts[i:i + step], labels[i:i + step])
        for i in range(0, len(texts), step)))
               for name, (texts, labels) in raw.items()}
    return (streams, [[_fingerprint(*raw[name]) for name in raw]] + (
        [config.labels] if config.labels else []),
            sum(len(t) for texts, _ in raw.values() for t in texts), classes)
  warned = set()
  def once(line):  # a source read twice says its warnings once
    if line not in warned:
      warned.add(line)
      say(line)
  files_ = {"train": (config.dataset, "dataset")}
  if config.test_dataset:
    files_["test"] = (config.test_dataset, "test_dataset")
  streams = {name: (lambda path=path, flag=flag: sources.iter_labeled_batches(
      path, config.text_field, config.label_field, flag, once, classes))
             for name, (path, flag) in files_.items()}
  if config.unlabeled_dataset and splits.uses_unlabeled_text(config):
    files_["unsupervised"] = (config.unlabeled_dataset, "unlabeled_dataset")
    streams["unsupervised"] = lambda: sources.batched(
        (t, -1) for t in sources.iter_unlabeled(
            config.unlabeled_dataset, config.text_field, say=once))
  digests, size = [], 0
  for name, (path, flag) in files_.items():
    path = pathlib.Path(path)
    sources.check_exists(path, flag)
    digest = hashlib.sha256()
    size += token_store.digest_file(path, digest)
    digests.append([name, path.suffix.lower(), digest.hexdigest()])
  say(f"Reading reviews from {config.dataset} ...")
  return (streams, [config.text_field, config.label_field, digests] + (
      [config.labels] if config.labels else []), size, classes)


def _file_parts(config, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(train rows, test rows) of the dataset source: all and none with a
  test file or IMDB, else `held_out`'s."""
  if config.dataset == DATASET or config.test_dataset:
    return np.arange(len(labels)), np.zeros(0, np.int64)
  return splits.held_out(labels, config.test_fraction,
                         config.validation_seed + 1)


def fitting_rows(labels: dict[str, np.ndarray], config,
                 kind: str) -> dict[str, np.ndarray]:
  """The rows of each source the tokenizer and vocabulary are fitted on,
  decided on the labels alone: the whole train split (english, as every
  earlier version: IMDB's ids), or its reviews kept for training (never
  validation or test text); plus the unlabeled reviews with
  vocabulary_splits=train+unsupervised or (subwords) whenever the run reads
  some."""
  train, _ = _file_parts(config, labels["train"])
  if kind != "english":
    kept, _ = splits.split_train(labels["train"][train], config)
    train = train[kept]
  rows = {"train": train}
  if "unsupervised" in labels and (
      config.vocabulary_splits == "train+unsupervised" or kind == "subwords"):
    rows["unsupervised"] = np.arange(len(labels["unsupervised"]))
  return rows


def tokenized_imdb(config, say=lambda message: None
                   ) -> tuple[dict[str, token_store.Tokens],
                              vocabulary.TextRule]:
  """Token ids of every review a run reads, from the token store in the
  cache (built on the first run: `token_store`).

  Returns ({"train": Tokens, "test": Tokens, maybe "unsupervised"}, text
  rule). The text rule (tokenizer and vocabulary) is fitted on train text,
  never test or validation text (`fitting_rows`). The store's key
  (`_store_key`) covers what the ids depend on — the data's content,
  wherever it was read from — so any change to those re-tokenizes, and
  nothing else does.
  """
  start = time.perf_counter()
  kind = tokenizer.kind_of(config)
  streams, content, size, classes = _streams(config, say)
  cache_dir = pathlib.Path(config.cache_dir or default_cache_dir())
  path = cache_dir / f"tokens_{token_store.key(config, kind, content)[:24]}"
  if path.is_dir():
    say(f"Loaded token ids from the cache {path} "
        f"({time.perf_counter() - start:.1f}s)")
  else:
    say(f"Tokenizing the reviews (once; cached in {cache_dir}) ...")
    token_store.build(path, streams, config,
                      lambda labels: fitting_rows(labels, config, kind),
                      workers=chunks.workers_for(size), classes=classes)
  stored, rule = token_store.load(path)
  return _parts(stored, config), rule


def stored_texts(config, say=lambda message: None
                 ) -> dict[str, text_store.Texts]:
  """`tokenized_imdb`'s parts as texts (`.labels` their labels), read
  memory-mapped from the text store in the cache (built on first use):
  what the text models read, in bounded memory."""
  streams, content, _, _ = _streams(config, say)
  key = hashlib.sha256(json.dumps([text_store.STORE_FORMAT] + content
                                  ).encode()).hexdigest()
  path = pathlib.Path(config.cache_dir or default_cache_dir()
                      ) / f"texts_{key[:24]}"
  if not path.is_dir():
    text_store.build(path, streams)
  return _parts(text_store.load(path), config)


def _parts(stored: dict, config) -> dict:
  """{"train", "test", maybe "unsupervised"} of a store's sources (Tokens
  or Texts): the dataset's train part, and its held-out test share or the
  test source; checked for enough reviews."""
  train, test = _file_parts(config, stored["train"].labels)
  parts = {"train": stored["train"].subset(train),
           "test": (stored["test"] if "test" in stored
                    else stored["train"].subset(test))}
  if "unsupervised" in stored:
    parts["unsupervised"] = stored["unsupervised"]
  if config.dataset != DATASET:  # IMDB has 25,000 of each
    checks.check_enough_reviews({s: len(t) for s, t in parts.items()},
                                config)
  return parts


# A padded split larger than this is written to the cache and read
# memory-mapped.
PADDED_IN_MEMORY_BYTES = 64 << 20


def _padded(tokens: token_store.Tokens, keep: np.ndarray, config) -> Split:
  kept = tokens.subset(keep)
  sides = (config.seq_len, config.padding, config.truncating)
  if len(kept) * config.seq_len * 4 <= PADDED_IN_MEMORY_BYTES:
    padded = kept.padded(*sides)
  else:
    name = hashlib.sha256(repr((kept.store, sides)).encode()
                          + kept.starts.tobytes()).hexdigest()[:24]
    padded = kept.padded_on_disk(
        pathlib.Path(config.cache_dir or default_cache_dir()) / "padded"
        / f"{name}.npy", *sides)
  return Split(tokens=padded, labels=kept.labels,
               lengths=np.minimum(kept.lengths, config.seq_len).astype(
                   np.int32),
               true_lengths=kept.lengths.astype(np.int32))


def load_imdb(config, say=lambda message: None) -> ImdbData:
  """Reads, tokenizes (cached), subsets and pads the splits per `config`;
  `say` gets a line for each slow step."""
  tokenized, rule = tokenized_imdb(config, say)
  train, test = tokenized["train"], tokenized["test"]
  train_keep, held = splits.split_train(train.labels, config)
  test_keep = splits.test_subset(test.labels, config)
  checks.check_both_labels(train.labels[train_keep], config.dataset,
                           labels.names(rule.classes))
  checks.check_readable(train.lengths[train_keep].tolist(), config.dataset,
                        rule.tokenizer.kind)
  for warning in (vocabulary.single_use_warning(rule, config),
                  checks.vocabulary_warning(
                      train.subset(train_keep).chunks(), config)):
    if warning:
      say(warning)
  pretraining = None
  if splits.uses_unlabeled_text(config):
    pretraining = (train.subset(train_keep).ragged() + (
        tokenized["unsupervised"].ragged() if "unsupervised" in tokenized
        else []))
  return ImdbData(
      train=_padded(train, train_keep, config),
      test=_padded(test, test_keep, config),
      vocabulary=rule.vocabulary, classes=rule.classes,
      tokenizer=rule.tokenizer,
      validation=(_padded(train, held, config) if len(held) else None),
      pretraining_ids=pretraining,
      unlabeled=unlabeled_split(tokenized, config))


def unlabeled_split(tokenized: dict, config) -> Split | None:
  """The unlabeled reviews padded like the train split, for virtual
  adversarial training (None when it is off)."""
  if not config.virtual_adversarial_epsilon:
    return None
  unlabeled = tokenized.get("unsupervised")
  if unlabeled is None or not len(unlabeled):
    raise ConfigError(
        f"config.virtual_adversarial_epsilon="
        f"{config.virtual_adversarial_epsilon} found no unlabeled reviews; "
        f"pass --config.unlabeled_dataset=FILE with some")
  return _padded(unlabeled, np.arange(len(unlabeled)), config)
