"""Which reviews go where, decided on the labels alone (never on the
text): label-balanced seeded subsets, the held-out test share of a dataset
file, the validation reviews carved from the train split, the test subset;
and whether a run reads unlabeled text."""

import numpy as np

from flax_sentiment.runtime.errors import ConfigError


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


def uses_unlabeled_text(config) -> bool:
  """Whether the run reads unlabeled reviews (vocabulary, word2vec,
  language-model pretraining, region embeddings or virtual adversarial
  training)."""
  return (config.vocabulary_splits != "train"
          or config.pretrained_embeddings != "none"
          or bool(config.pretrain_lm_epochs)
          or bool(config.region_embedding_dim)
          or bool(config.virtual_adversarial_epsilon))


def held_out(labels: np.ndarray, fraction: float, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held) sorted indices: a seeded, label-balanced `fraction` of
  the reviews held out (at least one review on each side)."""
  size = min(max(1, round(len(labels) * fraction)), len(labels) - 1)
  held = balanced_subset(labels, size, seed)
  return np.setdiff1d(np.arange(len(labels)), held), held


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
