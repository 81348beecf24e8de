"""Sentiment of your own text, from a trained workdir (read, never written).

  python -m flax_sentiment.predict --workdir runs/lstm64 "A wonderful film." "Dull."
  python -m flax_sentiment.predict --workdir runs/lstm64 --file reviews.txt --json
  cat reviews.txt | python -m flax_sentiment.predict --workdir runs/lstm64 --file -
  python -m flax_sentiment.predict --workdir runs/lstm64 --explain "Great, not dull."

Texts are read, scored and printed `--batch-size` (256) at a time, output
flushed after each batch: a `--file` of any length runs in the memory of one
batch. `--file` must be UTF-8 text, one review per line (blank lines are
skipped); a NUL byte (a binary file), bytes that are not UTF-8 or a line
over 1 MiB stop it with one `error:` line naming the file and line (batches
before it were printed). A NaN or infinite score is never printed: one
`error:` line says the weights are not finite. `--explain` adds each word's
contribution to the logit (integrated gradients, `flax_sentiment.explain`).

In Python: `load_predictor(workdir)(texts)` -> P(positive) [len(texts)];
`load_predictor(workdir).explain(texts, steps=64)` -> `explain.Explanation`s.
"""

import argparse
import contextlib
import itertools
import json
import os
import pathlib
import sys
import unicodedata
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence, TypeVar

import jax
import numpy as np

from flax_sentiment import (checkpoints, data, explain, fields,
                            implementation, models, scoring, text_models,
                            train)
from flax_sentiment.errors import UserError
from flax_sentiment.rundir import RunDir

ECHO_CHARS = 60  # echoed text is cut to this many characters
MAX_LINE_BYTES = 1 << 20  # a longer --file line is refused (no review is)
T = TypeVar("T")


def encode_texts(texts: Sequence[str], vocabulary: Sequence[str],
                 config) -> np.ndarray:
  """Raw texts -> token ids [len(texts), seq_len], as in training."""
  ids = data.encode([data.tokenize(t) for t in texts], vocabulary)
  return data.pad_sequences(ids, config.seq_len, config.padding,
                            config.truncating)


def word_counts(texts: Sequence[str], vocabulary: Iterable[str]
                ) -> list[tuple[int, int]]:
  """(words, unknown words) per text, over the whole text; `vocabulary` a
  sequence of words or, faster, a set or dict of them."""
  known = (vocabulary if isinstance(vocabulary, (set, frozenset, dict))
           else set(vocabulary))
  counts = []
  for text in texts:
    words = data.tokenize(text)
    counts.append((len(words), sum(w not in known for w in words)))
  return counts


def checkpoint_dir(rundir: RunDir) -> pathlib.Path:
  """The validation-best checkpoint if the run kept one, else the latest."""
  best = rundir.best_checkpoint
  return best if best.is_dir() and any(best.iterdir()) else rundir.checkpoints


def _say(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def run_config(workdir: str | pathlib.Path,
               say: Callable[[str], None] = _say):
  """The completed config a workdir's run was trained with (config.json,
  or what its newest checkpoint records if that file is damaged or gone);
  UserError if it is not a training workdir."""
  rundir = RunDir(workdir)
  workdir = rundir.path
  if not workdir.is_dir():
    raise UserError(f"workdir {workdir} does not exist; pass the --workdir "
                    f"of a run.py run")
  if not rundir.config_file.is_file() and not rundir.has_checkpoints():
    raise UserError(f"{workdir} is not a training workdir (no config.json); "
                    f"pass the --workdir of a flax-sentiment train run")
  try:
    saved = rundir.saved_config()
  except UserError as e:  # damaged: the checkpoints record the config too
    saved = rundir.trained_config()
    if saved is None:
      raise
    say(f"warning: {e}; using the config its newest checkpoint records")
  if saved is None:  # config.json deleted
    saved = rundir.trained_config()
  if saved is None:
    raise UserError(f"{workdir} has no config.json and its checkpoints "
                    f"record none; re-run the training command to rebuild it")
  return fields.complete(saved)


def load_trained_state(workdir: str | pathlib.Path, fall_back: bool = False,
                       say: Callable[[str], None] = _say):
  """(config, vocabulary, state, meta) of a workdir's newest checkpoint
  (the validation-best one if the run had a validation split).

  If that checkpoint is unreadable: `checkpoints.UnreadableCheckpointError`,
  or with `fall_back` the previous readable one, said in one line to `say`.
  """
  rundir = RunDir(workdir)
  workdir = rundir.path
  config = run_config(workdir, say)
  if text_models.is_text_model(config):
    raise UserError(f"{workdir} holds a {config.model} model (no "
                    f"checkpoint); this command needs a recurrent run's "
                    f"workdir")
  config, warning = implementation.for_prediction(config, workdir)
  if warning:
    say(warning)
  directory = checkpoint_dir(rundir)
  if not directory.is_dir() or not any(p.name.isdigit()
                                       for p in directory.iterdir()):
    raise UserError(f"{workdir} has no checkpoint yet (nothing in "
                    f"{directory}); train first: python run.py --config ... "
                    f"--workdir {workdir}")
  try:
    vocabulary = data.load_vocabulary(rundir.vocabulary_file)
  except (OSError, ValueError, KeyError, TypeError) as e:
    what = ("missing" if isinstance(e, FileNotFoundError) else
            f"damaged ({type(e).__name__}: {' '.join(str(e).split())[:80]})")
    raise UserError(
        f"{rundir.vocabulary_file} is {what}; it is rebuilt from the data by "
        f"re-running the training command (a finished run only rewrites "
        f"what is damaged)") from None
  model = models.model_from_config(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(lambda: train.create_train_state(
          model, config, jax.random.key(0))))
  ckpts = checkpoints.Checkpoints(directory, keep=1 << 30, read_only=True)
  try:
    restored = ckpts.restore_latest(abstract, say=say, fall_back=fall_back)
  finally:
    ckpts.close()
  if restored is None:
    raise UserError(f"no usable checkpoint in {directory}")
  return config, vocabulary, restored[0], restored[1]


def first_non_finite(params) -> str | None:
  """The name of the first parameter holding a NaN or inf (e.g.
  'rnn/cell/ii/kernel'), or None."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if not np.all(np.isfinite(np.asarray(leaf))):
      return "/".join(str(getattr(k, "key", k)) for k in path)
  return None


def _retrain_hint(config) -> str:
  rate = config.learning_rate
  return (f"retrain it with a smaller --config.learning_rate (it was {rate}"
          f", e.g. --config.learning_rate={rate / 10:g}) or with "
          f"--config.clip_grad_norm=1.0" if isinstance(rate, (int, float))
          else "retrain it with a smaller --config.learning_rate")


def _short(text: str) -> str:
  """`text` on one line, cut to ECHO_CHARS, with no character a terminal
  would act on (`printable`)."""
  text = " ".join(text.split())
  return printable(text if len(text) <= ECHO_CHARS
                   else text[:ECHO_CHARS - 1] + "…")


def printable(text: str) -> str:
  """`text` with control characters (escape sequences, bells, carriage
  returns, ...) and invisible format characters (bidirectional overrides)
  replaced by U+FFFD; joiners (U+200C, U+200D) kept."""
  return "".join(
      "\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Cs")
      and c not in "\u200c\u200d" else c for c in text)


class Predictor:
  """P(positive) of texts with one trained workdir's config, vocabulary and
  parameters: `predictor(texts)` -> [len(texts)], scored by
  `scoring.Scorer` in batches of `batch_size`; `.explain(texts)` gives
  each word's contribution (`flax_sentiment.explain`). A NaN or infinite
  score raises UserError (naming the workdir) instead of being returned."""

  def __init__(self, workdir: str | pathlib.Path, config,
               vocabulary: Sequence[str], params,
               batch_size: int = scoring.DEFAULT_BATCH_SIZE):
    self.workdir = pathlib.Path(workdir)
    self.config, self.vocabulary, self.params = config, vocabulary, params
    self.batch_size = batch_size
    self.model = models.model_from_config(config)
    self.scorer = scoring.Scorer(self.model, params, batch_size)
    self.word_ids = explain.word_ids(vocabulary)
    self._explainers = {}

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> token ids [len(texts), seq_len], as in training."""
    ids = [np.array([self.word_ids.get(w, data.OOV_ID)
                     for w in data.tokenize(t)], np.int32) for t in texts]
    return data.pad_sequences(ids, self.config.seq_len, self.config.padding,
                              self.config.truncating)

  def reads(self, words: int) -> int:
    """How many of a text's `words` the model reads (seq_len at most)."""
    return min(words, self.config.seq_len)

  def logits(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> logits [len(texts)]."""
    with self._finite(texts):
      return self.scorer.logits(self.encode(texts))

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> P(positive) [len(texts)]."""
    with self._finite(texts):
      return self.scorer(self.encode(texts))

  def explain(self, texts: Sequence[str], steps: int = explain.DEFAULT_STEPS,
              baseline: str = "zero", rule: str = "midpoint"
              ) -> list[explain.Explanation]:
    """Integrated gradients of each text's logit over its words (see
    `flax_sentiment.explain`); compiled once per (steps, baseline, rule)."""
    key = (steps, baseline, rule)
    if key not in self._explainers:
      self._explainers[key] = explain.Explainer(
          self.model, self.params, steps, baseline, rule, self.batch_size)
    with self._finite(texts):
      return explain.explain_words(self._explainers[key], texts,
                                   self.word_ids, self.config)

  @contextlib.contextmanager
  def _finite(self, texts: Sequence[str]) -> Iterator[None]:
    """scoring.NonFiniteScoreError as a UserError naming the workdir, the
    first such text and the fix."""
    try:
      yield
    except scoring.NonFiniteScoreError as e:
      raise UserError(
          f"the model in {self.workdir} scores a NaN or infinite logit for "
          f"{len(e.rows)} of {e.total} texts (the first: "
          f"{_short(texts[e.rows[0]])!r}): its weights are not finite or "
          f"far too large, e.g. the run diverged; "
          f"{_retrain_hint(self.config)}") from e


class TextModelPredictor:
  """P(positive) of texts with a text model's run (`text_models`: the
  n-gram model or paragraph vectors, which read whole texts): the same
  interface as `Predictor`, without `explain`."""

  def __init__(self, workdir: str | pathlib.Path, config, model):
    self.workdir, self.config, self.model = pathlib.Path(workdir), config, model
    self.word_ids = model.known_words()

  def reads(self, words: int) -> int:
    return words

  def logits(self, texts: Sequence[str]) -> np.ndarray:
    return self.model.logits(texts)

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    return self.model(texts)

  def explain(self, texts, *settings):
    raise UserError(f"--explain explains recurrent models; {self.workdir} "
                    f"holds {self.model.explain_hint}")


class Ensemble:
  """P(positive) of texts, the weighted mean of several workdirs'
  predictors (e.g. one run per seed, and an n-gram run); each reads the
  texts with its own config and vocabulary. `weights` [members] sum to 1
  (default: equal; `ensemble.choose_weights` picks them on validation).
  Unknown words and lengths are reported for the first member."""

  def __init__(self, members: Sequence[Predictor | TextModelPredictor],
               weights: Sequence[float] | None = None):
    self.members = list(members)
    self.weights = (np.full(len(self.members), 1 / len(self.members))
                    if weights is None else np.asarray(weights, np.float64))
    if len(self.weights) != len(self.members):
      raise UserError(f"{len(self.weights)} weights for "
                      f"{len(self.members)} workdirs; give one per --workdir")
    self.word_ids = self.members[0].word_ids
    self.config = self.members[0].config
    self.reads = self.members[0].reads

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    scored = np.stack([member(texts) for member in self.members])
    return (self.weights @ scored).astype(np.float32)


def load_predictor(workdir: str | pathlib.Path, fall_back: bool = False,
                   batch_size: int = scoring.DEFAULT_BATCH_SIZE
                   ) -> Predictor:
  """The `Predictor` of a workdir (texts -> P(positive) [len(texts)]), with
  its config, vocabulary and newest (or validation-best) checkpoint; see
  `load_trained_state` for `fall_back`. UserError if its weights hold a NaN
  or inf."""
  config = run_config(workdir)
  if text_models.is_text_model(config):
    return TextModelPredictor(workdir, config,
                              text_models.kind(config).load(RunDir(workdir)))
  config, vocabulary, state, _ = load_trained_state(workdir, fall_back)
  bad = first_non_finite(state.params)
  if bad:
    raise UserError(
        f"the weights in {pathlib.Path(workdir)} (checkpoint step "
        f"{int(state.step)}) are not finite (NaN or inf in {bad}): the run "
        f"diverged; {_retrain_hint(config)}")
  return Predictor(workdir, config, vocabulary, state.params, batch_size)


def load_ensemble(workdirs: Sequence[str | pathlib.Path],
                  fall_back: bool = False,
                  batch_size: int = scoring.DEFAULT_BATCH_SIZE,
                  weights: Sequence[float] | None = None
                  ) -> Predictor | TextModelPredictor | Ensemble:
  """texts -> P(positive) [len(texts)], the weighted mean of the predictors
  of several workdirs (an `Ensemble`; equal weights unless given). One
  workdir: its predictor."""
  members = [load_predictor(w, fall_back, batch_size) for w in workdirs]
  return members[0] if len(members) == 1 else Ensemble(members, weights)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
  """Lists of `size` consecutive items (the last may be shorter), taken
  from `items` only as each list is asked for."""
  items = iter(items)
  while batch := list(itertools.islice(items, size)):
    yield batch


def read_lines(stream: BinaryIO, name: str) -> Iterator[str]:
  """The non-blank lines of a binary stream, decoded as UTF-8 (a leading
  byte-order mark dropped), one at a time. UserError naming `name` and the
  line number for a NUL byte (a binary or UTF-16 file), bytes that are not
  UTF-8, or a line over MAX_LINE_BYTES."""
  fix = "pass a UTF-8 text file with one review per line"
  for number in itertools.count(1):
    raw = stream.readline(MAX_LINE_BYTES + 1)
    if not raw:
      return
    if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
      raise UserError(f"{name} has a line longer than {MAX_LINE_BYTES:,} "
                      f"bytes at line {number} (a binary file?); {fix}")
    if b"\0" in raw:
      raise UserError(f"{name} is not text: line {number} holds a NUL byte "
                      f"(a binary or UTF-16 file?); {fix}")
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise UserError(
          f"{name} is not UTF-8 text at line {number} (byte "
          f"0x{raw[e.start]:02x} at column {e.start + 1}); {fix} (e.g. "
          f"iconv -f latin1 -t utf-8 converts Latin-1)") from None
    if number == 1:
      line = line.removeprefix("\ufeff")
    line = line.rstrip("\r\n")
    if line.strip():
      yield line


def _open_input(path: str | None) -> tuple[BinaryIO | None, str]:
  """The --file stream (binary) and its name in messages."""
  if path is None:
    return None, ""
  if path == "-":
    return sys.stdin.buffer, "stdin (--file -)"
  try:
    return open(path, "rb"), f"--file {path}"
  except OSError as e:
    raise UserError(f"cannot read --file {path} ({e.strerror}); pass a text "
                    f"file with one review per line, or - for stdin") from e


def _warn_if_meaningless(text: str, words: int, unknown: int) -> None:
  if not words:
    print(f"warning: {_short(text)!r} has no words; its score means "
          f"nothing", file=sys.stderr)
  elif words == unknown:
    print(f"warning: none of the {words} word(s) of {_short(text)!r} is in "
          f"the vocabulary; its score means nothing", file=sys.stderr)


def batch_output(predict: Predictor | Ensemble, texts: Sequence[str],
                 as_json: bool = False,
                 explain_settings: tuple[int, str, str] | None = None,
                 color: bool = False) -> list[str]:
  """The output lines of a batch of texts (warnings go to stderr)."""
  probabilities = predict(texts)
  explanations = (predict.explain(texts, *explain_settings)
                  if explain_settings else [None] * len(texts))
  lines = []
  for text, p, (words, unknown), why in zip(
      texts, probabilities, word_counts(texts, predict.word_ids),
      explanations):
    label = "positive" if p > 0.5 else "negative"
    _warn_if_meaningless(text, words, unknown)
    used = predict.reads(words)
    if as_json:
      record = {"text": text, "probability_positive": float(p),
                "label": label, "words": words, "unknown_words": unknown,
                "words_used": used}
      lines.append(json.dumps(dict(record, **why.as_json()) if why
                              else record))
      continue
    notes = [f"{unknown}/{words} words unknown"] if unknown else []
    if used < words:
      kept = "last" if predict.config.truncating == "pre" else "first"
      notes.append(f"read its {kept} {used} of {words:,} words")
    lines.append(f"{p:.3f}  {label:<8}  {_short(text)}"
                 + (f"  ({'; '.join(notes)})" if notes else ""))
    if why:
      lines.append(f"  {explain.render(why, color)}  (logit "
                   f"{why.logit:+.2f}, baseline {why.baseline_logit:+.2f})")
  return lines


def ensemble_members(args) -> tuple[list[str], list[float] | None]:
  """The workdirs and weights of predict's command line: one --workdir,
  several (weights given by --weights or chosen on validation, said on
  stderr), or --ensemble DIR (its recorded workdirs and weights)."""
  from flax_sentiment import ensemble  # pylint: disable=g-import-not-at-top
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
  chosen = ensemble.validation_weights(args.workdir, _say)
  if "probabilities" in chosen:  # else the warning said it
    _say("Ensemble weights (" + chosen["chosen_by"] + "): " + ", ".join(
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


def main(argv: list[str]) -> None:
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
  parser.add_argument("texts", nargs="*", help="reviews to classify")
  args = parser.parse_args(argv)
  explaining = args.explain or any(
      v is not None for v in (args.explain_steps, args.explain_baseline,
                              args.explain_rule))
  settings = ((args.explain_steps or explain.DEFAULT_STEPS,
               args.explain_baseline or "zero",
               args.explain_rule or "midpoint") if explaining else None)
  try:
    problem = settings and explain.settings_problem(*settings)
    if problem:
      raise UserError(f"--explain-steps: {problem}; pass more, or "
                      f"another --explain-rule")
    stream, name = _open_input(args.file)
    texts = itertools.chain(args.texts,
                            read_lines(stream, name) if stream else ())
    first = next(texts, None)  # fails early on a binary or empty --file
    if first is None:
      raise UserError("no texts given; pass them as arguments, or --file "
                      "PATH (one review per line; - reads stdin)")
    if settings and (args.ensemble or len(args.workdir or ()) > 1):
      raise UserError(f"--explain explains one model, got "
                      f"{len(args.workdir or ()) or 'an ensemble of'} "
                      f"workdirs; pass one --workdir")
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
  except UserError as e:
    sys.exit(f"error: {e}")
  except BrokenPipeError:  # e.g. | head: stop quietly
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
  except KeyboardInterrupt:
    sys.exit(130)


if __name__ == "__main__":
  main(sys.argv[1:])
