"""Trains a sentiment classifier on IMDB.

  python run.py --config configs/lstm.py --config.seq_len=512 --workdir runs/lstm512
  python run.py --config configs/lstm.py --help     # every config field
"""

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flax_sentiment import feeding, loop
from flax_sentiment.config_checks import describe_fields
from flax_sentiment.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/lstm.py",
                                "Config file (a get_config() in Python).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where metrics, checkpoints, config and "
                    "vocabulary go (default: runs/<cell><seq_len>).")
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def _config_path(argv: list[str]) -> str:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return "configs/lstm.py"


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with one-line errors for a missing config file, bad
  flags and unknown config fields (e.g. --config.seq_lenght), and a --help
  that lists every config field."""
  wants_help = any(a in HELP_FLAGS for a in argv[1:])
  argv = [a for a in argv if a not in HELP_FLAGS]
  path = _config_path(argv[1:]).split(":")[0]
  if not os.path.isfile(path):
    sys.exit(f"error: config file {path} not found; pass one of "
             f"configs/*.py, e.g. --config configs/lstm.py")
  try:
    rest = FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: no such field
    text = str(e).replace("\\n", " ")
    field = re.search(r"(\w+)", text).group(1)
    hint = re.search(r'Did you mean "(\w+)"', text)
    sys.exit(f"error: unknown config field {field!r}"
             + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
             + "; see python run.py --help")
  except (flags.Error, TypeError, ValueError) as e:
    sys.exit(f"error: bad command line: {' '.join(str(e).split())}")
  if len(rest) > 1:  # e.g. `run.py configs/rnn.py` without --config
    stray = rest[1]
    hint = (f"; did you mean --config {stray}?" if stray.endswith(".py")
            else "; flags start with --, e.g. --config configs/lstm.py")
    sys.exit(f"error: unexpected argument {stray!r}{hint}")
  if wants_help:
    print(__doc__.strip() + "\n\nflags:\n  --config FILE  config file "
          f"(now {path})\n  --workdir DIR  where the run's files go (default"
          f" runs/<cell><seq_len>; the same workdir resumes)\n\nconfig "
          f"fields (value in {path}, meaning):\n"
          + describe_fields(FLAGS.config))
    sys.exit(0)
  return rest


def default_workdir(config) -> str:
  """runs/<cell><seq_len>: the same command resumes the same run."""
  return f"runs/{config.cell}{config.seq_len}"


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:  # tfds/orbax INFO logs are noise here
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  workdir = FLAGS.workdir or default_workdir(config)
  try:
    feeding.use_compilation_cache(config)
    loop.train_and_evaluate(config, workdir)
  except UserError as e:
    sys.exit(f"error: {e}")
  except loop.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
