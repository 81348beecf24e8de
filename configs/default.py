"""Defaults: the Keras notebook's LSTM experiment at seq_len 64.

Every field is declared once, with its default, meaning, check and resume
rule, in `flax_sentiment/fields.py`; `flax-sentiment train --help` lists
them with their values. Override any on the command line, e.g.
`python run.py --config configs/lstm.py --config.seq_len=512`.

A config of your own starts from this one:

  from flax_sentiment.configs import default

  def get_config():
    config = default.get_config()
    config.cell = "gru"
    return config
"""

import ml_collections

from flax_sentiment.configuration import fields


def get_config() -> ml_collections.ConfigDict:
  return fields.default_config()
