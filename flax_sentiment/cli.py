"""The `flax-sentiment` command: one console script, a subcommand per task.

  flax-sentiment train --config lstm [--config.FIELD=VALUE ...] [--workdir W]
  flax-sentiment predict --workdir W "A wonderful film." [--explain]
  flax-sentiment report W1 W2 ... --out docs/results/mine
  flax-sentiment ensemble W1 W2 ...
  flax-sentiment recipe --config best --workdir runs/best
  flax-sentiment export --workdir W --out DIR
  flax-sentiment serve --workdir W

Each subcommand's `--help` says more. A subcommand is a module with a
`main(argv)`; `COMMANDS` names them (imported only when run).
"""

import importlib
import os
import sys

COMMANDS = {
    "train": ("flax_sentiment.training.command", "train a model (resumes in its "
              "workdir)"),
    "predict": ("flax_sentiment.usage.predict", "score your own texts with a "
                "trained run (--explain: which words drove it)"),
    "report": ("flax_sentiment.usage.report", "tables and plots of runs"),
    "ensemble": ("flax_sentiment.usage.ensemble", "accuracy of several runs' mean "
                 "prediction"),
    "recipe": ("flax_sentiment.recipe", "train a recipe's members (e.g. "
               "best: BiLSTMs + an n-gram model), ensemble them, report"),
    "export": ("flax_sentiment.usage.export", "write a self-contained model "
               "(jax.export) that loads without this package's training "
               "stack"),
    "serve": ("flax_sentiment.usage.serve", "a local demo page and JSON endpoint"),
}
PROGRAM = "flax-sentiment"


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [f"usage: {PROGRAM} COMMAND [--help] ...", "", "commands:"]
  lines += [f"  {name:<{width}}  {about}"
            for name, (_, about) in COMMANDS.items()]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    if not argv or argv[0] in ("-h", "--help", "help"):
      print(usage())
      sys.exit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
      from flax_sentiment import __version__  # pylint: disable=g-import-not-at-top
      print(f"{PROGRAM} {__version__}")
      return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
      sys.exit(f"error: unknown command {command!r}; use one of "
               f"{', '.join(COMMANDS)} ({PROGRAM} --help)")
    module = importlib.import_module(COMMANDS[command][0])
    if command == "train":
      module.main(rest, program=f"{PROGRAM} train")
    else:
      module.main(rest)
  except BrokenPipeError:  # e.g. `flax-sentiment train --help | head -3`
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # no second error at exit
    sys.exit(0)


if __name__ == "__main__":
  main()
