"""Ensembles chosen on validation: the weighted mean P(positive) of several
trained runs (seeds, models, an n-gram run).

  flax-sentiment ensemble runs/best_cpu-seed0 runs/best_cpu-seed1 \
      runs/ngrams --out runs/best_ensemble

Each run is scored with what `predict` uses (the validation-best checkpoint
of a recurrent run, or an n-gram run's model) on the validation and test
reviews its own config defines; the runs must agree on them (same reviews,
same order). The weights are chosen on validation only (`choose_weights`:
the grid point of the simplex with the best validation accuracy of the
mixture); test accuracy is then read once, at those weights. Without a
validation split the weights are equal, said in one line. `--out DIR`
records the result in DIR/ensemble.json, which `report` shows as a row and
`predict --ensemble DIR` scores with.
"""

import argparse
import itertools
import json
import pathlib
import sys
from typing import Sequence

import numpy as np

from flax_sentiment.data import datasets
from flax_sentiment.data import labels as labels_lib
from flax_sentiment.model import classifier, scoring
from flax_sentiment.text_models import common
from flax_sentiment.tracking import metrics
from flax_sentiment.usage import trained
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.runtime.files import write_atomic
from flax_sentiment.tracking.rundir import read_json_file

ENSEMBLE_FILE = "ensemble.json"
# Most grid points of the weight simplex searched (0.1 steps: 8 members);
# more members get equal weights.
MAX_GRID_POINTS = 50_000
_TEXT_SPLITS: dict[str, dict] = {}  # one text model's data config's texts


def split_probabilities(workdir: str | pathlib.Path, split: str = "test",
                        batch_size: int = 500
                        ) -> tuple[np.ndarray, np.ndarray]:
  """(P(positive) [examples] (K classes: [examples, K]), labels
  [examples]) of one run on `split` ("test" or "validation"); UserError if
  the run has no such split."""
  config = trained.run_config(workdir)
  if common.is_text_model(config):
    key = config.to_json()
    if key not in _TEXT_SPLITS:  # validation then test: read once
      _TEXT_SPLITS.clear()
      _TEXT_SPLITS[key] = common.split_texts(config)
    splits = _TEXT_SPLITS[key]
    if split not in splits:
      raise UserError(f"{workdir} has no {split} split")
    texts, labels = splits[split]
    model = trained.load_predictor(workdir)
    return model(texts), np.asarray(labels)
  config, _, state, _ = trained.load_trained_state(workdir)
  imdb = datasets.load_imdb(config)
  reviews = getattr(imdb, split)
  if reviews is None:
    raise UserError(f"{workdir} has no {split} split")
  scorer = scoring.Scorer(classifier.model_from_config(
      config, labels_lib.count(imdb.classes)), state.params, batch_size)
  try:
    probabilities = scorer(reviews.tokens)
  except scoring.NonFiniteScoreError as e:
    raise UserError(scoring.not_finite_message(
        f"the model in {workdir}", str(e),
        "retrain it with a smaller --config.learning_rate")) from e
  return probabilities, np.asarray(reviews.labels)


def simplex_grid(members: int, step: float) -> np.ndarray:
  """Every weight vector [members] >= 0 summing to 1 in multiples of
  `step` (1/step an integer): [points, members]."""
  parts = round(1 / step)
  points = [np.diff([0, *cuts, parts]) for cuts in
            itertools.combinations_with_replacement(range(parts + 1),
                                                    members - 1)]
  return np.array(points, np.float64) / parts


def grid_step(members: int) -> float | None:
  """The finer step of 0.05 and 0.1 whose grid stays within
  MAX_GRID_POINTS (None: too many members, use equal weights)."""
  for step in (0.05, 0.1):
    parts = round(1 / step)
    count = 1
    for k in range(1, members):  # C(parts + members - 1, members - 1)
      count = count * (parts + k) // k
    if count <= MAX_GRID_POINTS:
      return step
  return None


def mix(weights: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
  """weights [..., members] of probabilities [members, n] (K classes:
  [members, n, K]) -> their mixtures [..., n] ([..., n, K])."""
  if probabilities.ndim == 2:
    return weights @ probabilities
  return np.tensordot(weights, probabilities, axes=1)


def _scores(probabilities: np.ndarray):
  """(accuracy, log loss) of mixtures of these members' probabilities."""
  if probabilities.ndim == 2:
    return metrics.probability_accuracy, metrics.probability_log_loss
  return metrics.class_probability_accuracy, metrics.class_probability_log_loss


def choose_weights(probabilities: np.ndarray, labels: np.ndarray
                   ) -> np.ndarray:
  """probabilities [members, examples] (K classes: [members, examples, K])
  of validation reviews, labels
  [examples] -> the weights [members] on `simplex_grid` whose mixture is
  most accurate; ties go to the lower log-loss, then to the weights
  nearest equal ones. Never sees test reviews."""
  members = len(probabilities)
  equal = np.full(members, 1 / members)
  step = grid_step(members)
  if members == 1 or step is None:  # (many members: said by the caller)
    return equal
  grid = simplex_grid(members, step)
  mixtures = mix(grid, probabilities)  # [points, n] (K classes: [..., K])
  accuracy, log_loss = _scores(probabilities)
  accuracy, log_loss = accuracy(mixtures, labels), log_loss(mixtures, labels)
  distance = np.sum((grid - equal) ** 2, axis=1)
  best = np.lexsort((distance, log_loss, -accuracy))[0]
  return grid[best]


def _same_reviews(workdirs, labels: list[np.ndarray], split: str) -> None:
  for workdir, y in zip(workdirs[1:], labels[1:]):
    if not np.array_equal(labels[0], y):
      raise UserError(f"{workdir} evaluates on other {split} reviews than "
                      f"{workdirs[0]}; ensemble runs of one data config "
                      f"(same dataset, validation_examples, "
                      f"validation_seed, max_test_examples)")


def validation_weights(workdirs: Sequence[str | pathlib.Path],
                       say=lambda message: None) -> dict:
  """{"weights" [members], "chosen_by", and, if every member has a
  validation split, "probabilities" [members, examples] and "labels"}:
  weights by `choose_weights` on the shared validation reviews, or equal
  ones (said to `say`) if a member has none."""
  workdirs = [str(w) for w in workdirs]
  try:
    validation = [split_probabilities(w, "validation") for w in workdirs]
  except UserError as e:
    if "no validation split" not in str(e):
      raise
    say(f"warning: {e}, so the ensemble's weights are equal (not chosen on "
        f"validation)")
    return {"weights": np.full(len(workdirs), 1 / len(workdirs)),
            "chosen_by": "equal (a member has no validation split)"}
  _same_reviews(workdirs, [y for _, y in validation], "validation")
  probabilities = np.stack([p for p, _ in validation])
  labels = validation[0][1]
  chosen_by = ("validation accuracy of the mixture"
               if grid_step(len(workdirs)) else
               f"equal ({len(workdirs)} members: too many to search)")
  return {"weights": choose_weights(probabilities, labels),
          "chosen_by": chosen_by,
          "probabilities": probabilities, "labels": labels}


def evaluate_ensemble(workdirs: Sequence[str | pathlib.Path],
                      say=lambda message: None) -> dict:
  """Each member's validation and test accuracy, the weights chosen on
  validation, and the mixture's accuracy on both (and, for comparison, the
  equal-weight mixture's test accuracy)."""
  workdirs = [str(w) for w in workdirs]
  chosen = validation_weights(workdirs, say)  # before test is read
  weights = chosen["weights"]
  test = [split_probabilities(w, "test") for w in workdirs]
  _same_reviews(workdirs, [y for _, y in test], "test")
  test_p, test_y = np.stack([p for p, _ in test]), test[0][1]
  if len({p.shape for p in test_p}) > 1 or test_p.ndim not in (2, 3):
    raise UserError("the runs have other classes; ensemble runs of one data "
                    "config")
  accuracy = _scores(test_p)[0]
  result = {
      "workdirs": workdirs,
      "weights": [round(float(w), 6) for w in weights],
      "weights_chosen_by": chosen["chosen_by"],
      "members_test_accuracy": [accuracy(p, test_y) for p in test_p],
      "test_accuracy": accuracy(mix(weights, test_p), test_y),
      "equal_weights_test_accuracy": accuracy(test_p.mean(axis=0), test_y),
      "test_examples": int(len(test_y)),
  }
  mixture = np.clip(mix(weights, test_p), 1e-12, 1 - 1e-12)
  if test_p.ndim == 3:  # log probabilities: logits of the mixture
    rates = metrics.split_rates(np.log(mixture), test_y, "test")
    result.update({k: rates[k] for k in ("test_macro_f1", "test_macro_auc",
                                         "test_confusion")})
  else:
    rates = metrics.split_rates(np.log(mixture) - np.log1p(-mixture), test_y,
                                "test")
    result.update({k: rates[k] for k in ("test_auc", "test_f1")})
  if "probabilities" in chosen:
    val_p, val_y = chosen["probabilities"], chosen["labels"]
    result.update(
        members_validation_accuracy=[accuracy(p, val_y) for p in val_p],
        validation_accuracy=accuracy(mix(weights, val_p), val_y),
        validation_examples=int(len(val_y)))
  return result


def write_record(directory: str | pathlib.Path, record: dict) -> None:
  """Writes `evaluate_ensemble`'s record as DIR/ensemble.json."""
  out = pathlib.Path(directory)
  out.mkdir(parents=True, exist_ok=True)
  write_atomic(out / ENSEMBLE_FILE, json.dumps(record, indent=2) + "\n")


def read_ensemble(directory: str | pathlib.Path) -> dict:
  """The ensemble.json of an `ensemble --out` directory (UserError naming
  the file if it is missing or damaged)."""
  path = pathlib.Path(directory) / ENSEMBLE_FILE
  if not path.is_file():
    raise UserError(f"{path} not found; write it with flax-sentiment "
                    f"ensemble WORKDIR ... --out {directory}")
  fix = "re-run flax-sentiment ensemble ... --out to rebuild it"
  record = read_json_file(path, fix)
  if not (isinstance(record, dict) and isinstance(record.get("workdirs"),
                                                  list)
          and len(record.get("weights", [])) == len(record["workdirs"])):
    raise UserError(f"{path} is damaged (no workdirs and weights); {fix}")
  return record


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="trained workdirs")
  parser.add_argument("--out", help="write DIR/ensemble.json (for report "
                      "and predict --ensemble)")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  say = lambda message: print(message, file=sys.stderr, flush=True)
  try:
    result = evaluate_ensemble(args.workdirs, say)
    if args.out:
      write_record(args.out, result)
  except UserError as e:
    sys.exit(f"error: {e}")
  if args.json:
    print(json.dumps(result))
    return
  validation = result.get("members_validation_accuracy",
                          [None] * len(args.workdirs))
  print("weight  val acc  test acc  run")
  for workdir, weight, val, acc in zip(
      args.workdirs, result["weights"], validation,
      result["members_test_accuracy"]):
    print(f"{weight:6.2f}  {'' if val is None else f'{val:.4f}':>7}  "
          f"{acc:8.4f}  {workdir}")
  val = result.get("validation_accuracy")
  print(f"{'':6}  {'' if val is None else f'{val:.4f}':>7}  "
        f"{result['test_accuracy']:8.4f}  ensemble of {len(args.workdirs)} "
        f"(weights: {result['weights_chosen_by']}; equal weights: "
        f"{result['equal_weights_test_accuracy']:.4f}), "
        f"{result['test_examples']:,} test reviews")
  if args.out:
    print(f"Wrote {pathlib.Path(args.out) / ENSEMBLE_FILE}")


if __name__ == "__main__":
  main(sys.argv[1:])
