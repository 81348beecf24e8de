"""Accuracy of an ensemble: the mean P(positive) of several trained runs.

  python -m flax_sentiment.ensemble runs/best_cpu-seed0 runs/best_cpu-seed1 \
      runs/best_cpu-seed2                      # test accuracy, each and mean

Each run is scored with the checkpoint `predict` uses (the validation-best
one if it had a validation split, else the latest), on the split its own
config defines; the runs must agree on that split (same reviews, same
order). Reads only; writes nothing.
"""

import argparse
import json
import pathlib
import sys
from typing import Sequence

import numpy as np

from flax_sentiment import data, models, predict, scoring
from flax_sentiment.errors import UserError


def split_probabilities(workdir: str | pathlib.Path, split: str = "test",
                        batch_size: int = 500
                        ) -> tuple[np.ndarray, np.ndarray]:
  """(P(positive) [examples], labels [examples]) of one run on `split`
  ("test" or "validation")."""
  config, _, state, _ = predict.load_trained_state(workdir)
  imdb = data.load_imdb(config)
  reviews = getattr(imdb, split)
  if reviews is None:
    raise UserError(f"{workdir} has no {split} split; use --split test")
  scorer = scoring.Scorer(models.model_from_config(config), state.params,
                          batch_size)
  try:
    probabilities = scorer(reviews.tokens)
  except scoring.NonFiniteScoreError as e:
    raise UserError(f"{workdir} scores NaN or infinite logits ({e}); the "
                    f"run diverged: retrain it with a smaller "
                    f"--config.learning_rate") from e
  return probabilities, np.asarray(reviews.labels)


def evaluate_ensemble(workdirs: Sequence[str | pathlib.Path],
                      split: str = "test") -> dict:
  """{"members": accuracy of each run, "ensemble": accuracy of the mean
  probability, "examples": n} on `split`."""
  members, probabilities, labels = [], [], None
  for workdir in workdirs:
    p, y = split_probabilities(workdir, split)
    if labels is not None and not np.array_equal(labels, y):
      raise UserError(f"{workdir} evaluates on other {split} reviews than "
                      f"{workdirs[0]}; ensemble runs of one data config")
    labels = y
    probabilities.append(p)
    members.append(float(np.mean((p > 0.5) == (y > 0.5))))
  mean = np.mean(probabilities, axis=0)
  return {"members": members,
          "ensemble": float(np.mean((mean > 0.5) == (labels > 0.5))),
          "examples": int(len(labels))}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="run.py workdirs")
  parser.add_argument("--split", default="test",
                      choices=("test", "validation"))
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  try:
    result = evaluate_ensemble(args.workdirs, args.split)
  except UserError as e:
    sys.exit(f"error: {e}")
  if args.json:
    print(json.dumps(dict(result, workdirs=args.workdirs)))
    return
  for workdir, accuracy in zip(args.workdirs, result["members"]):
    print(f"{accuracy:.4f}  {workdir}")
  print(f"{result['ensemble']:.4f}  ensemble of {len(args.workdirs)} (mean "
        f"probability), {result['examples']:,} {args.split} reviews")


if __name__ == "__main__":
  main(sys.argv[1:])
