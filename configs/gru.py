"""Beyond the notebook: a GRU(128) in the same model."""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.cell = "gru"
  return config
