"""A run's text rule (`TextRule`: its tokenizer and vocabulary), the
SentencePiece model of the subwords kind, and the warning when most train
words occur once. Which text a rule is fitted on is `datasets.fitting_rows`'
(never validation or test text); the counting is `token_store`'s."""

import dataclasses
from typing import Iterable

from flax_sentiment.data import tokenizer
from flax_sentiment.runtime.errors import ConfigError

# A texts' words that mostly occur once are not words a model can learn
# from (Chinese or Japanese sentences without spaces read as one "word").
MAX_SINGLE_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class TextRule:
  """A run's tokenizer, its vocabulary (token i has id i + 2), the share of
  the fitting text's tokens whose token occurs once (a warning sign), and
  what its labels are (`labels.Classes`: None for the binary words)."""
  tokenizer: tokenizer.Tokenizer
  vocabulary: list[str]
  single_share: float = 0.0
  classes: tuple[str, ...] | None = None


def fit_subwords(texts: Iterable[bytes | str], config) -> TextRule:
  """A SentencePiece model of config.num_words - 2 pieces trained on
  `texts` and its pieces as the vocabulary; ConfigError (one line) if it
  cannot make that many pieces from them."""
  trained = train_pieces(texts, config)
  return TextRule(trained, trained.pieces(), 0.0)


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
