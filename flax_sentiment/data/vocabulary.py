"""Fitting a run's text rule: its tokenizer (for subwords a SentencePiece
model) and vocabulary, from the text a run may learn them from — the train
reviews it trains on and, where the config says, the unlabeled ones; never
validation or test text. (The english rule keeps what every earlier
version did: the vocabulary of the whole train split, IMDB's ids.)"""

import dataclasses
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from flax_sentiment.data import tokenizer
from flax_sentiment.runtime.errors import ConfigError

# A texts' words that mostly occur once are not words a model can learn
# from (Chinese or Japanese sentences without spaces read as one "word").
MAX_SINGLE_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class TextRule:
  """A run's tokenizer, its vocabulary (token i has id i + 2) and the share
  of the fitting text's tokens whose token occurs once (a warning sign)."""
  tokenizer: tokenizer.Tokenizer
  vocabulary: list[str]
  single_share: float = 0.0


def fitting_texts(raw: dict, train_kept: np.ndarray, config,
                  kind: str) -> list[bytes | str]:
  """The text a tokenizer and vocabulary of `kind` are fitted on: the whole
  train split (english, as always), or its reviews kept for training, plus
  the unlabeled reviews with vocabulary_splits=train+unsupervised or (for
  subwords) whenever the run reads some."""
  texts, _ = raw["train"]
  chosen = list(texts) if kind == "english" else [texts[i] for i in train_kept]
  with_unlabeled = (config.vocabulary_splits == "train+unsupervised"
                    or kind == "subwords")
  if with_unlabeled and "unsupervised" in raw:
    chosen += list(raw["unsupervised"][0])
  return chosen


def fit(texts: Sequence[bytes | str], config, kind: str) -> TextRule:
  """The tokenizer of `kind` and a vocabulary of config.num_words - 2
  tokens fitted on `texts`; ConfigError (one line) if SentencePiece cannot
  make that many pieces from them."""
  if kind == "subwords":
    trained = train_pieces(texts, config)
    return TextRule(trained, trained.pieces(), 0.0)
  split = tokenizer.Tokenizer(kind)
  counts = Counter()
  for text in texts:
    counts.update(split(text))
  total = sum(counts.values())
  single = sum(1 for n in counts.values() if n == 1)
  ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
  words = [w for w, _ in ranked[:config.num_words - tokenizer.NUM_RESERVED_IDS]]
  return TextRule(split, words, single / total if total else 0.0)


def train_pieces(texts: Iterable[bytes | str], config) -> tokenizer.Tokenizer:
  pieces = config.num_words - tokenizer.NUM_RESERVED_IDS
  try:
    return tokenizer.train_subwords(texts, pieces, seed=config.seed)
  except tokenizer.PieceCountError as e:
    if e.too_many:
      raise ConfigError(
          f"config.num_words={config.num_words} asks SentencePiece for "
          f"{pieces:,} subword pieces, but the train text of "
          f"{config.dataset} allows at most {e.bound:,}: use "
          f"--config.num_words={e.bound + tokenizer.NUM_RESERVED_IDS} or "
          f"fewer, or give more text (--config.unlabeled_dataset)") from None
    raise ConfigError(
        f"config.num_words={config.num_words} leaves {pieces:,} subword "
        f"pieces, fewer than the {e.bound:,} distinct characters of the "
        f"train text of {config.dataset}: use --config.num_words="
        f"{e.bound + tokenizer.NUM_RESERVED_IDS} or more") from None


def single_use_warning(rule: TextRule, config) -> str | None:
  """A warning line if most train tokens occur once only: the tokenizer
  does not split this script into words."""
  if rule.single_share <= MAX_SINGLE_SHARE:
    return None
  return (f"warning: {rule.single_share:.0%} of the train words of "
          f"{config.dataset} occur once only, so most words of new text will "
          f"be unknown to the model (text without spaces between words, like "
          f"Chinese or Japanese?). Try --config.tokenizer=characters or "
          f"--config.tokenizer=subwords")
