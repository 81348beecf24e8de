"""Trains a sentiment classifier: `flax-sentiment train` from a clone.

  python run.py --config configs/lstm.py --config.seq_len=512 --workdir runs/lstm512
  python run.py --config lstm --help     # every config field
"""

import sys

from flax_sentiment import cli

if __name__ == "__main__":
  cli.main(["train", *sys.argv[1:]])
