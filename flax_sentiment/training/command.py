"""Trains a sentiment classifier (`flax-sentiment train`, or `python run.py`
in a clone).

  flax-sentiment train --config lstm --config.seq_len=512 --workdir runs/lstm512
  flax-sentiment train --config path/to/mine.py --config.dataset=reviews.csv
  flax-sentiment train --config lstm --help     # every config field
"""

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flax_sentiment.configuration import loading
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.configuration.fields import RECURRENT, describe_fields

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where metrics, checkpoints, config and "
                    "vocabulary go (default: runs/<cell><seq_len>).")
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")
DEFAULT_CONFIG = "lstm"
PROGRAM = "flax-sentiment train"


def _split_config_arg(argv: list[str]) -> tuple[str, list[str]]:
  """(the --config value, argv without it)."""
  rest, spec = [], DEFAULT_CONFIG
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config="):
      spec = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      spec = argv[i + 1]
      i += 1
    else:
      rest.append(arg)
    i += 1
  return spec, rest


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with one-line errors for a bad config file, bad
  flags and unknown config fields (e.g. --config.seq_lenght), and a --help
  that lists every config field."""
  wants_help = any(a in HELP_FLAGS for a in argv[1:])
  argv = [a for a in argv if a not in HELP_FLAGS]
  spec, rest = _split_config_arg(argv[1:])
  try:
    config = loading.load(spec)
  except UserError as e:
    sys.exit(f"error: {e}")
  if "config" in FLAGS:  # parsed once per process; tests may call again
    delattr(FLAGS, "config")
  try:
    config_flags.DEFINE_config_dict("config", config, "The run's config.",
                                    lock_config=True,
                                    sys_argv=[argv[0]] + rest)
    rest = FLAGS([argv[0]] + rest)
  except (AttributeError, KeyError) as e:  # ml_collections: no such field
    text = str(e).replace("\\n", " ")
    field = re.search(r"(\w+)", text).group(1)
    hint = re.search(r'Did you mean "(\w+)"', text)
    sys.exit(f"error: unknown config field {field!r}"
             + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
             + f"; see {PROGRAM} --help")
  except (flags.Error, TypeError, ValueError) as e:
    sys.exit(f"error: bad command line: {' '.join(str(e).split())}")
  if len(rest) > 1:  # e.g. `run.py configs/rnn.py` without --config
    stray = rest[1]
    hint = (f"; did you mean --config {stray}?" if stray.endswith(".py")
            else "; flags start with --, e.g. --config lstm")
    sys.exit(f"error: unexpected argument {stray!r}{hint}")
  if wants_help:
    print(__doc__.strip() + "\n\nflags:\n  --config NAME|FILE  a config name "
          f"({', '.join(loading.names())}) or a .py file (now {spec})\n"
          "  --workdir DIR       where the run's files go (default "
          "runs/<cell or model><seq_len>; the same workdir resumes)\n\nconfig "
          f"fields (value in {spec}, meaning):\n"
          + describe_fields(FLAGS.config))
    sys.exit(0)
  return rest


def default_workdir(config) -> str:
  """runs/<cell><seq_len> (other models: runs/<model><seq_len>): the same
  command resumes the same run."""
  name = config.cell if config.model == RECURRENT else config.model
  return f"runs/{name}{config.seq_len}"


def train(argv) -> None:
  """The command after flag parsing (absl's `app.run` main)."""
  del argv
  from flax_sentiment.training import feeding, loop  # pylint: disable=g-import-not-at-top
  if not FLAGS["verbosity"].present:  # tfds/orbax INFO logs are noise here
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  loading.resolve_paths(config)
  workdir = FLAGS.workdir or default_workdir(config)
  try:
    feeding.use_compilation_cache(config)
    loop.train_and_evaluate(config, workdir)
  except loop.LostProcessError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access (jax's shutdown would wait)
  except UserError as e:
    sys.exit(f"error: {e}")
  except loop.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


def main(argv: list[str], program: str = PROGRAM) -> None:
  """Runs `flax-sentiment train` with `argv` (without the program name)."""
  app.run(train, argv=[program] + list(argv), flags_parser=parse_flags)
