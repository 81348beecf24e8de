"""Sentiment of your own text, from a trained workdir (read, never written).

  python -m flax_sentiment.usage.predict --workdir runs/lstm64 "A wonderful film." "Dull."
  python -m flax_sentiment.usage.predict --workdir runs/lstm64 --file reviews.txt --json
  cat reviews.txt | python -m flax_sentiment.usage.predict --workdir runs/lstm64 --file -
  python -m flax_sentiment.usage.predict --workdir runs/lstm64 --explain "Great, not dull."

Texts are read, scored and printed `--batch-size` (256) at a time, output
flushed after each batch: a `--file` of any length runs in the memory of one
batch. `--file` must be UTF-8 text, one review per line (blank lines are
skipped); a NUL byte (a binary file), bytes that are not UTF-8 or a line
over 1 MiB stop it with one `error:` line naming the file and line (batches
before it were printed). A NaN or infinite score is never printed: one
`error:` line says the weights are not finite. `--explain` adds each word's
contribution to the logit (integrated gradients, `flax_sentiment.usage.explain`).

In Python: `load_predictor(workdir)(texts)` -> P(positive) [len(texts)];
`load_predictor(workdir).explain(texts, steps=64)` -> `explain.Explanation`s.
"""

import argparse
import itertools
import json
import os
import sys
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np


from flax_sentiment.data import labels
from flax_sentiment.model import scoring
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.usage import explain, exported
# The library side lives in usage.trained; its public names stay reachable
# here (flax_sentiment.predict.load_predictor is the documented API).
from flax_sentiment.usage.trained import (  # pylint: disable=unused-import
    Ensemble, Predictor, TextModelPredictor, echo, encode_texts,
    load_ensemble, load_predictor, load_trained_state, note, run_config,
    word_counts)

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
  """Lists of `size` consecutive items (the last may be shorter), taken
  from `items` only as each list is asked for."""
  items = iter(items)
  while batch := list(itertools.islice(items, size)):
    yield batch


def _warn_if_meaningless(text: str, words: int, unknown: int) -> None:
  why = exported.meaningless(words, unknown)
  if why:
    print(f"warning: {echo(text)!r}: {why}", file=sys.stderr)


def batch_output(predict: Predictor | Ensemble, texts: Sequence[str],
                 as_json: bool = False,
                 explain_settings: tuple | None = None,
                 color: bool = False) -> list[str]:
  """The output lines of a batch of texts (warnings go to stderr)."""
  probabilities = predict(texts)
  explanations = (predict.explain(texts, *explain_settings)
                  if explain_settings else [None] * len(texts))
  classes = labels.beyond_two(getattr(predict, "classes", None))
  if classes is not None:
    return _class_lines(texts, probabilities, classes, predict, as_json,
                        explanations, color)
  lines = []
  for text, p, (words, unknown), why in zip(
      texts, probabilities, word_counts(texts, predict.word_ids, predict.tokenizer),
      explanations):
    label = exported.label_of(p)
    _warn_if_meaningless(text, words, unknown)
    used = predict.reads(words)
    if as_json:
      record = exported.prediction_record(text, p, words, unknown, used)
      lines.append(json.dumps(dict(record, **why.as_json()) if why
                              else record))
      continue
    notes = [f"{unknown}/{words} words unknown"] if unknown else []
    if used < words:
      kept = "last" if predict.config.truncating == "pre" else "first"
      notes.append(f"read its {kept} {used} of {words:,} words")
    lines.append(f"{p:.3f}  {label:<8}  {echo(text)}"
                 + (f"  ({'; '.join(notes)})" if notes else ""))
    if why:
      lines.append(f"  {explain.render(why, color)}  ({why.score_note()})")
  return lines


def _class_lines(texts: Sequence[str], probabilities: np.ndarray,
                 classes: Sequence[str], predict: Predictor,
                 as_json: bool, explanations: Sequence, color: bool
                 ) -> list[str]:
  """`batch_output` for a run of K classes: the most probable class and
  its probability (--json: every class's), each explanation after it."""
  lines = []
  for text, p, (words, unknown), why in zip(
      texts, probabilities, word_counts(texts, predict.word_ids,
                                        predict.tokenizer), explanations):
    _warn_if_meaningless(text, words, unknown)
    record = exported.prediction_record(text, p, words, unknown,
                                        predict.reads(words), classes)
    if as_json:
      lines.append(json.dumps(dict(record, **why.as_json()) if why
                              else record))
      continue
    lines.append(f"{record['probability']:.3f}  {record['label']:<8}  "
                 f"{echo(text)}" + (f"  ({unknown}/{words} words unknown)"
                                    if unknown else ""))
    if why:
      lines.append(f"  {explain.render(why, color)}  ({why.score_note()})")
  return lines


def ensemble_members(args) -> tuple[list[str], list[float] | None]:
  """The workdirs and weights of predict's command line: one --workdir,
  several (weights given by --weights or chosen on validation, said on
  stderr), or --ensemble DIR (its recorded workdirs and weights)."""
  from flax_sentiment.usage import ensemble  # pylint: disable=g-import-not-at-top
  if bool(args.workdir) == bool(args.ensemble):
    raise UserError("pass --workdir (one or several), or --ensemble DIR")
  if args.ensemble:
    record = ensemble.read_ensemble(args.ensemble)
    return record["workdirs"], record["weights"]
  if args.weights is not None:
    try:
      weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
      weights = []
    if (len(weights) != len(args.workdir) or min(weights) < 0
        or not np.isclose(sum(weights), 1.0)):
      raise UserError(f"--weights {args.weights!r}: give one weight >= 0 per "
                      f"--workdir ({len(args.workdir)}), summing to 1")
    return args.workdir, weights
  if len(args.workdir) == 1:
    return args.workdir, None
  chosen = ensemble.validation_weights(args.workdir, note)
  if "probabilities" in chosen:  # else the warning said it
    note("Ensemble weights (" + chosen["chosen_by"] + "): " + ", ".join(
        f"{w:.2f} {d}" for w, d in zip(chosen["weights"], args.workdir)))
  return args.workdir, list(chosen["weights"])


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
  return value


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description="Sentiment of your own text, from a run.py workdir.")
  parser.add_argument("--workdir", action="append",
                      help="a trained workdir; several: an ensemble, their "
                      "predictions weighted as chosen on validation")
  parser.add_argument("--ensemble", metavar="DIR",
                      help="score with the workdirs and weights of a "
                      "flax-sentiment ensemble ... --out DIR")
  parser.add_argument("--weights", help="the weights of several --workdir, "
                      "comma-separated (default: chosen on validation)")
  parser.add_argument("--file", help="read texts from this UTF-8 file, one "
                      "per line ('-': stdin), batch by batch")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per text")
  parser.add_argument("--fallback", action="store_true",
                      help="if the newest checkpoint is unreadable, use the "
                      "previous readable one (said on stderr)")
  parser.add_argument("--batch-size", type=_positive_int,
                      default=scoring.DEFAULT_BATCH_SIZE,
                      help="texts read, scored and printed at a time "
                      "(default %(default)s)")
  parser.add_argument("--explain", action="store_true",
                      help="each word's contribution to the logit "
                      "(integrated gradients; one workdir)")
  parser.add_argument("--explain-steps", type=_positive_int, default=None,
                      help=f"points on the integration path (default "
                      f"{explain.DEFAULT_STEPS}; implies --explain)")
  parser.add_argument("--explain-baseline", choices=explain.BASELINES,
                      default=None, help="what words are compared with: "
                      "zero embeddings (default) or the padding token's "
                      "(implies --explain)")
  parser.add_argument("--explain-rule", choices=explain.RULES, default=None,
                      help="quadrature rule along the path (default "
                      "midpoint; implies --explain)")
  parser.add_argument("--explain-class", default=None, metavar="NAME",
                      help="a run of more than two classes: explain this "
                      "class's probability (default: each text's "
                      "predicted class; implies --explain)")
  parser.add_argument("texts", nargs="*", help="reviews to classify")
  return parser


def explain_settings(args) -> tuple[int, str, str, str | None] | None:
  """(steps, baseline, rule, class) when any --explain flag is given, else
  None; UserError for steps the rule cannot use."""
  explaining = args.explain or any(
      v is not None for v in (args.explain_steps, args.explain_baseline,
                              args.explain_rule, args.explain_class))
  if not explaining:
    return None
  settings = (args.explain_steps or explain.DEFAULT_STEPS,
              args.explain_baseline or "zero",
              args.explain_rule or "midpoint")
  problem = explain.settings_problem(*settings)
  settings += (args.explain_class,)
  if problem:
    raise UserError(f"--explain-steps: {problem}; pass more, or another "
                    f"--explain-rule")
  if args.ensemble or len(args.workdir or ()) > 1:
    raise UserError(f"--explain explains one model, got "
                    f"{len(args.workdir or ()) or 'an ensemble of'} "
                    f"workdirs; pass one --workdir")
  return settings


def run(args) -> None:
  """Scores the texts of the command line, then of --file, batch by batch."""
  settings = explain_settings(args)
  stream, name = exported.open_input(args.file)
  texts = itertools.chain(args.texts,
                          exported.read_lines(stream, name) if stream else ())
  first = next(texts, None)  # fails early on a binary or empty --file
  if first is None:
    raise UserError("no texts given; pass them as arguments, or --file "
                    "PATH (one review per line; - reads stdin)")
  workdirs, weights = ensemble_members(args)
  predict = load_ensemble(workdirs, fall_back=args.fallback,
                          batch_size=args.batch_size, weights=weights)
  color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
  # Typed at a terminal: each line is scored as soon as it is entered.
  interactive = stream is not None and stream.isatty()
  for batch in batched(itertools.chain([first], texts),
                       1 if interactive else args.batch_size):
    print("\n".join(batch_output(predict, batch, args.json, settings,
                                 color)), flush=True)


def main(argv: list[str]) -> None:
  args = build_parser().parse_args(argv)
  try:
    run(args)
  except (UserError, exported.InputError) as e:
    sys.exit(f"error: {e}")
  except BrokenPipeError:  # e.g. | head: stop quietly
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
  except KeyboardInterrupt:
    sys.exit(130)


if __name__ == "__main__":
  main(sys.argv[1:])
