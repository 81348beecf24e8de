"""Whether a run's data can teach a model anything, checked before it
trains: enough reviews, words the tokenizer reads, a vocabulary that
covers the train words. Each refusal is one line naming the data and the
fix."""

from typing import Sequence

import numpy as np

from flax_sentiment.data.tokenizer import NUM_RESERVED_IDS, OOV_ID
from flax_sentiment.runtime.errors import ConfigError


def check_enough_reviews(sizes: dict[str, int], config) -> None:
  """At least one batch of train reviews, and some test reviews (`sizes`:
  reviews per split)."""
  where = {"train": config.dataset,
           "test": config.test_dataset or config.dataset}
  if sizes["train"] < config.batch_size:
    raise ConfigError(
        f"{where['train']} gives {sizes['train']} train reviews, fewer "
        f"than one batch (config.batch_size={config.batch_size}); give more "
        f"reviews or a smaller --config.batch_size")
  if not sizes["test"]:
    raise ConfigError(f"{where['test']} gives no test reviews")


def check_both_labels(labels: np.ndarray, dataset: str,
                      names: tuple[str, ...] = ("negative", "positive")
                      ) -> None:
  """ConfigError if the train reviews hold one label only: such a run
  would "learn" to say that label for every text. `names`: each class
  id's name."""
  present = np.unique(labels)
  if len(present) < 2:
    name = names[int(present[0])] if len(present) else names[0]
    raise ConfigError(
        f"all {len(labels):,} train reviews of {dataset} are {name}; a model "
        f"cannot learn sentiment from one class: give reviews of "
        f"{'both labels' if len(names) == 2 else 'two classes or more'}")


# Below this share of known train words a model learns little (the
# notebook's 10,000 words cover ~95% of IMDB's train words).
MIN_KNOWN_SHARE = 0.5


# Below this share of train reviews with at least one word the tokenizer
# reads, a run is refused: it could only learn the label frequencies.
MIN_READABLE_SHARE = 0.5


def check_readable(word_counts: Sequence[int], dataset: str,
                   kind: str = "english") -> None:
  """ConfigError before anything trains if most train reviews have no word
  the tokenizer (of `kind`) reads (`word_counts`: words per train review) —
  e.g. Korean reviews read as English, or a text column of emoji only; such
  a run would train at chance without a word said."""
  readable = sum(1 for n in word_counts if n)
  if word_counts and readable >= MIN_READABLE_SHARE * len(word_counts):
    return
  fix = ("it keeps English words: runs of a-z, 0-9 and '. For other "
         "languages use --config.tokenizer=words (scripts with spaces), "
         "characters or subwords" if kind == "english" else
         "is the text column right? emoji and symbols alone are no words; "
         "pass another --config.text_field, or --config.tokenizer=characters "
         "to read every character")
  raise ConfigError(
      f"{len(word_counts) - readable:,} of {len(word_counts):,} train reviews "
      f"of {dataset} have no word the {kind} tokenizer reads ({fix}); the "
      f"model could not learn from them")


def vocabulary_warning(train_ids: list[np.ndarray], config) -> str | None:
  """A warning line if the vocabulary leaves most train words unknown."""
  total = sum(len(ids) for ids in train_ids)
  unknown = sum(int(np.sum(ids == OOV_ID)) for ids in train_ids)
  if not total or (total - unknown) / total >= MIN_KNOWN_SHARE:
    return None
  return (f"warning: config.num_words={config.num_words} keeps "
          f"{config.num_words - NUM_RESERVED_IDS:,} words, which cover only "
          f"{(total - unknown) / total:.0%} of the train words; the model "
          f"sees mostly unknown words and will learn little. Use more, e.g. "
          f"--config.num_words=10000, or --config.tokenizer=subwords (or "
          f"characters), whose tokens are fewer")
