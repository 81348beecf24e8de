"""IMDB's star ratings in 4 bins: 1-2, 3-4, 7-8, 9-10 (strongly and mildly
negative and positive); otherwise as configs/ratings.py.

  python examples/imdb_ratings.py
  flax-sentiment recipe --config configs/ratings4.py --workdir runs/ratings4
"""

from flax_sentiment.configs import ratings


def get_config(name: str = "bilstm"):
  return ratings.member(name, "stars")


def get_recipe():
  return ratings.recipe("stars")
