"""Trains a sentiment classifier on IMDB.

  python run.py --config configs/lstm.py --config.seq_len=512 --workdir runs/lstm512
"""

import datetime
import sys

from absl import app, flags
from ml_collections import config_flags

from flax_sentiment import train
from flax_sentiment.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/lstm.py",
                                "Config file (a get_config() in Python).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where metrics, checkpoints, config and "
                    "vocabulary go (default: a new folder under runs/).")


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or (
      f"runs/{config.cell}{config.seq_len}-"
      f"{datetime.datetime.now():%Y%m%d-%H%M%S}")
  try:
    train.train_and_evaluate(config, workdir)
  except UserError as e:
    sys.exit(f"error: {e}")
  except train.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  app.run(main)
