"""IMDB's star ratings as they come: 8 classes (1-4 and 7-10), trained on
the train split's ratings, tested on the test split's (#40). Make the files
first (from ../shared/data/imdb):

  python examples/imdb_ratings.py
  flax-sentiment recipe --config configs/ratings.py --workdir runs/ratings

or one member: python run.py --config configs/ratings.py:lstm (lstm,
bilstm, ngrams).

Members, each epoch chosen on validation macro-F1 (the classes are
imbalanced: 1 and 10 are twice as common as 2, 3 or 9): the notebook's
LSTM (10,000 words, embeddings of 256, 128 units) reading the last 400
words; the BiLSTM of configs/best_cpu.py (word2vec from the train and
unlabeled reviews, adversarial training); the n-gram model of
configs/ngrams.py; and their ensemble, weights chosen on validation. The
4 bins (1-2, 3-4, 7-8, 9-10): configs/ratings4.py. Results:
docs/results/ratings.md.
"""

from flax_sentiment.configs import best_cpu, lstm_buckets, ngrams
from flax_sentiment.configuration.recipes import Recipe

DATA = "data/imdb_ratings"


def rating_data(config, label_field: str = "rating"):
  """`config` reading the rating files of examples/imdb_ratings.py."""
  config.dataset = f"{DATA}/train.jsonl"
  config.test_dataset = f"{DATA}/test.jsonl"
  config.unlabeled_dataset = f"{DATA}/unlabeled.txt"
  config.label_field = label_field
  config.select_on = "macro_f1"
  config.validation_examples = 2_500
  return config


def lstm(label_field: str = "rating"):
  """The notebook's LSTM with length buckets (configs/lstm_buckets.py) at
  400 words, as the BiLSTM reads."""
  config = lstm_buckets.get_config()
  config.seq_len = 400
  return rating_data(config, label_field)


def bilstm(label_field: str = "rating"):
  """The BiLSTM of configs/best_cpu.py."""
  return rating_data(best_cpu.get_config(), label_field)


def member(name: str, label_field: str = "rating"):
  """The config of member `name` (lstm, bilstm or ngrams)."""
  makers = {"lstm": lstm, "bilstm": bilstm,
            "ngrams": lambda field: rating_data(ngrams.get_config(), field)}
  if name not in makers:
    raise ValueError(f"no member {name!r}; pass one of {', '.join(makers)}")
  return makers[name](label_field)


def get_config(name: str = "bilstm"):
  """One member: python run.py --config configs/ratings.py:lstm (default
  bilstm)."""
  return member(name, "rating")


def recipe(label_field: str = "rating") -> Recipe:
  return Recipe(members={name: member(name, label_field)
                         for name in ("lstm", "bilstm", "ngrams")},
                seeded=("lstm", "bilstm"), seeds=(0,))


def get_recipe() -> Recipe:
  return recipe("rating")
