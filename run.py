"""Trains a sentiment classifier on IMDB.

  python run.py --config configs/lstm.py --config.seq_len=512 --workdir runs/lstm512
"""

import datetime
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flax_sentiment import train
from flax_sentiment.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/lstm.py",
                                "Config file (a get_config() in Python).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where metrics, checkpoints, config and "
                    "vocabulary go (default: a new folder under runs/).")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with a one-line error for bad flags and config keys
  (e.g. a typo such as --config.seq_lenght)."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: no such field
    text = str(e).replace("\\n", " ")
    field = re.search(r"(\w+)", text).group(1)
    hint = re.search(r'Did you mean "(\w+)"', text)
    sys.exit(f"error: unknown config field {field!r}"
             + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
             + "; the fields are listed in configs/default.py")
  except (flags.Error, TypeError, ValueError) as e:
    sys.exit(f"error: bad command line: {' '.join(str(e).split())}")


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:  # tfds/orbax INFO logs are noise here
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  workdir = FLAGS.workdir or (
      f"runs/{config.cell}{config.seq_len}-"
      f"{datetime.datetime.now():%Y%m%d-%H%M%S}")
  train.use_compilation_cache(config)
  try:
    train.train_and_evaluate(config, workdir)
  except UserError as e:
    sys.exit(f"error: {e}")
  except train.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
