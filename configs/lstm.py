"""The notebook's LSTM(128) experiment; seq_len 64 (also 512, 1024)."""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.cell = "lstm"
  return config
