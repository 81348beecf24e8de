"""LSTM at seq_len 512 with length-aware batching.

Reviews are padded at the end and grouped into buckets of similar length; each
batch is cut to its bucket's length and the padding is masked, so the model
reads each review's last real state.
"""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.cell = "lstm"
  config.seq_len = 512
  config.padding = "post"
  config.mask_padding = True
  config.length_buckets = 8
  return config
