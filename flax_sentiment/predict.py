"""Sentiment of your own text, from a trained workdir (read, never written).

  python -m flax_sentiment.predict --workdir runs/lstm64 "A wonderful film." "Dull."
  python -m flax_sentiment.predict --workdir runs/lstm64 --file reviews.txt --json
  cat reviews.txt | python -m flax_sentiment.predict --workdir runs/lstm64 --file -
"""

import argparse
import json
import pathlib
import sys
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flax_sentiment import checkpoints, data, models, pallas_recurrence, train
from flax_sentiment.errors import UserError
from flax_sentiment.rundir import RunDir

ECHO_CHARS = 60  # echoed text is cut to this many characters


def encode_texts(texts: Sequence[str], vocabulary: Sequence[str],
                 config) -> np.ndarray:
  """Raw texts -> token ids [len(texts), seq_len], as in training."""
  ids = data.encode([data.tokenize(t) for t in texts], vocabulary)
  return data.pad_sequences(ids, config.seq_len, config.padding,
                            config.truncating)


def word_counts(texts: Sequence[str], vocabulary: Sequence[str]
                ) -> list[tuple[int, int]]:
  """(words, unknown words) per text, over the whole text."""
  known = set(vocabulary)
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


def load_trained_state(workdir: str | pathlib.Path, fall_back: bool = False,
                       say: Callable[[str], None] = _say):
  """(config, vocabulary, state, meta) of a workdir's newest checkpoint
  (the validation-best one if the run had a validation split).

  If that checkpoint is unreadable: `checkpoints.UnreadableCheckpointError`,
  or with `fall_back` the previous readable one, said in one line to `say`.
  """
  rundir = RunDir(workdir)
  workdir = rundir.path
  if not workdir.is_dir():
    raise UserError(f"workdir {workdir} does not exist; pass the --workdir "
                    f"of a run.py run")
  if not rundir.config_file.is_file():
    raise UserError(f"{workdir} is not a training workdir (no config.json); "
                    f"pass the --workdir of a run.py run")
  config = ml_collections.ConfigDict(rundir.saved_config())
  if config.get("implementation") == "pallas":
    reason = pallas_recurrence.unavailable_reason()
    if reason:  # same parameters; the XLA loop computes the same function
      config.implementation = "hoisted"
      say(f"warning: {workdir} was trained with implementation='pallas', "
          f"whose kernels cannot run here ({reason}); predicting with the "
          f"XLA loop (the same model, float32 recurrent matmuls)")
  directory = checkpoint_dir(rundir)
  if not directory.is_dir() or not any(p.name.isdigit()
                                       for p in directory.iterdir()):
    raise UserError(f"{workdir} has no checkpoint yet (nothing in "
                    f"{directory}); train first: python run.py --config ... "
                    f"--workdir {workdir}")
  vocabulary = data.load_vocabulary(rundir.vocabulary_file)
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


def load_predictor(workdir: str | pathlib.Path, fall_back: bool = False
                   ) -> Callable[[Sequence[str]], np.ndarray]:
  """A function from texts to P(positive) [len(texts)], using the workdir's
  config, vocabulary and newest (or validation-best) checkpoint; see
  `load_trained_state` for `fall_back`."""
  config, vocabulary, state, _ = load_trained_state(workdir, fall_back)
  model = models.model_from_config(config)
  apply = jax.jit(lambda tokens: jax.nn.sigmoid(
      model.apply({"params": state.params}, tokens)))

  def predict(texts: Sequence[str]) -> np.ndarray:
    return np.asarray(apply(jnp.asarray(encode_texts(texts, vocabulary,
                                                     config))))
  predict.vocabulary, predict.config = vocabulary, config
  return predict


def load_ensemble(workdirs: Sequence[str | pathlib.Path],
                  fall_back: bool = False
                  ) -> Callable[[Sequence[str]], np.ndarray]:
  """A function from texts to P(positive) [len(texts)], the mean of the
  predictors of several workdirs (e.g. one run per seed); each reads the
  texts with its own config and vocabulary. One workdir: its predictor."""
  members = [load_predictor(w, fall_back) for w in workdirs]
  if len(members) == 1:
    return members[0]

  def predict(texts: Sequence[str]) -> np.ndarray:
    return np.mean([member(texts) for member in members], axis=0)
  # Unknown words and lengths are reported for the first member.
  predict.vocabulary = members[0].vocabulary
  predict.config = members[0].config
  predict.members = len(members)
  return predict


def _short(text: str) -> str:
  text = " ".join(text.split())
  return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 1] + "…"


def _read_texts(args) -> list[str]:
  texts = list(args.texts)
  if args.file is not None:
    try:
      stream = (sys.stdin if args.file == "-"
                else open(args.file, encoding="utf-8", errors="replace"))
    except OSError as e:
      raise UserError(f"cannot read --file {args.file} ({e.strerror}); pass "
                      f"a text file with one review per line, or - for "
                      f"stdin") from e
    with stream:
      texts += [line.rstrip("\n") for line in stream if line.strip()]
  if not texts:
    raise UserError("no texts given; pass them as arguments, or --file PATH "
                    "(one review per line; - reads stdin)")
  return texts


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      description="Sentiment of your own text, from a run.py workdir.")
  parser.add_argument("--workdir", required=True, action="append",
                      help="a run.py workdir; several: the mean of their "
                      "predictions (an ensemble, e.g. of seeds)")
  parser.add_argument("--file", help="read texts from this file, one per "
                      "line ('-': stdin)")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per text")
  parser.add_argument("--fallback", action="store_true",
                      help="if the newest checkpoint is unreadable, use the "
                      "previous readable one (said on stderr)")
  parser.add_argument("texts", nargs="*", help="reviews to classify")
  args = parser.parse_args(argv)
  try:
    texts = _read_texts(args)
    predict = load_ensemble(args.workdir, fall_back=args.fallback)
  except UserError as e:
    sys.exit(f"error: {e}")
  probabilities = predict(texts)
  seq_len = predict.config.seq_len
  for text, p, (words, unknown) in zip(texts, probabilities,
                                       word_counts(texts, predict.vocabulary)):
    label = "positive" if p > 0.5 else "negative"
    if not words:
      print(f"warning: {_short(text)!r} has no words; its score means "
            f"nothing", file=sys.stderr)
    elif words == unknown:
      print(f"warning: none of the {words} word(s) of {_short(text)!r} is in "
            f"the vocabulary; its score means nothing", file=sys.stderr)
    used = min(words, seq_len)
    if args.json:
      print(json.dumps({"text": text, "probability_positive": float(p),
                        "label": label, "words": words,
                        "unknown_words": unknown, "words_used": used}))
    else:
      notes = [f"{unknown}/{words} words unknown"] if unknown else []
      if words > seq_len:
        kept = "last" if predict.config.truncating == "pre" else "first"
        notes.append(f"read its {kept} {seq_len} of {words:,} words")
      print(f"{p:.3f}  {label:<8}  {_short(text)}"
            + (f"  ({'; '.join(notes)})" if notes else ""))

if __name__ == "__main__":
  main(sys.argv[1:])
