"""A trained run, loaded for use: its config, vocabulary and checkpoint
(read, never written), and the predictors built on them — `Predictor`
(token ids through the classifier), `TextModelPredictor` (n-grams,
paragraph vectors) and `Ensemble` (several runs' weighted mean). Used by
predict, explain, ensemble, export, serve and the API:

  load_predictor(workdir)(texts) -> P(positive) [len(texts)]
  load_predictor(workdir).explain(texts, steps=64) -> explain.Explanation s
"""

import contextlib
import pathlib
import sys
import unicodedata
from typing import Callable, Iterable, Iterator, Sequence

import jax
import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import labels, tokenizer
from flax_sentiment.model import classifier, implementation, scoring
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.text_models import common
from flax_sentiment.tracking import checkpoints
from flax_sentiment.tracking.rundir import RunDir
from flax_sentiment.training import train_steps
from flax_sentiment.usage import explain

ECHO_CHARS = 60  # echoed text is cut to this many characters


def encode_texts(texts: Sequence[str], vocabulary: Sequence[str],
                 config, text_rule: tokenizer.Tokenizer | None = None
                 ) -> np.ndarray:
  """Raw texts -> token ids [len(texts), seq_len], as in training
  (`text_rule`: the run's tokenizer; needed for subwords)."""
  return tokenizer.texts_to_ids(texts, tokenizer.word_ids(vocabulary), config,
                                text_rule)


def word_counts(texts: Sequence[str], vocabulary: Iterable[str],
                text_rule: tokenizer.Tokenizer | None = None
                ) -> list[tuple[int, int]]:
  """(tokens, unknown tokens) per text, over the whole text; `vocabulary` a
  sequence of tokens or, faster, a set or dict of them; `text_rule` the
  run's tokenizer (default: english words)."""
  known = (vocabulary if isinstance(vocabulary, (set, frozenset, dict))
           else set(vocabulary))
  split = text_rule or tokenizer.Tokenizer()
  counts = []
  for text in texts:
    words = split(text)
    counts.append((len(words), sum(w not in known for w in words)))
  return counts


def checkpoint_dir(rundir: RunDir) -> pathlib.Path:
  """The validation-best checkpoint if the run kept one, else the latest."""
  best = rundir.best_checkpoint
  return best if best.is_dir() and any(best.iterdir()) else rundir.checkpoints


def note(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def run_config(workdir: str | pathlib.Path,
               say: Callable[[str], None] = note):
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
                       say: Callable[[str], None] = note):
  """(config, vocabulary, state, meta) of a workdir's newest checkpoint
  (the validation-best one if the run had a validation split).

  If that checkpoint is unreadable: `checkpoints.UnreadableCheckpointError`,
  or with `fall_back` the previous readable one, said in one line to `say`.
  """
  rundir = RunDir(workdir)
  workdir = rundir.path
  config = run_config(workdir, say)
  if common.is_text_model(config):
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
    vocabulary = tokenizer.load_vocabulary(rundir.vocabulary_file)
  except (OSError, ValueError, KeyError, TypeError) as e:
    what = ("missing" if isinstance(e, FileNotFoundError) else
            f"damaged ({type(e).__name__}: {' '.join(str(e).split())[:80]})")
    raise UserError(
        f"{rundir.vocabulary_file} is {what}; it is rebuilt from the data by "
        f"re-running the training command (a finished run only rewrites "
        f"what is damaged)") from None
  classes = tokenizer.load_classes(rundir.vocabulary_file)
  model = classifier.model_from_config(config, labels.count(classes))
  device = jax.sharding.make_single_device_sharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(lambda: train_steps.create_train_state(
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


def echo(text: str) -> str:
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
  each word's contribution (`flax_sentiment.usage.explain`). A NaN or infinite
  score raises UserError (naming the workdir) instead of being returned."""

  def __init__(self, workdir: str | pathlib.Path, config,
               vocabulary: Sequence[str], params,
               batch_size: int = scoring.DEFAULT_BATCH_SIZE,
               text_rule: tokenizer.Tokenizer | None = None,
               classes: labels.Classes = None):
    self.workdir = pathlib.Path(workdir)
    self.config, self.vocabulary, self.params = config, vocabulary, params
    self.tokenizer = text_rule or tokenizer.Tokenizer(tokenizer.kind_of(config))
    self.batch_size = batch_size
    self.classes = classes  # more than two: each class's probability
    self.model = classifier.model_from_config(config, labels.count(classes))
    self.scorer = scoring.Scorer(self.model, params, batch_size)
    self.word_ids = tokenizer.word_ids(vocabulary)
    self._explainers = {}

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> token ids [len(texts), seq_len], as in training."""
    return tokenizer.texts_to_ids(texts, self.word_ids, self.config,
                                  self.tokenizer)

  def reads(self, words: int) -> int:
    """How many of a text's `words` the model reads (seq_len at most)."""
    return min(words, self.config.seq_len)

  def logits(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> logits [len(texts)]."""
    with self._finite(texts):
      return self.scorer.logits(self.encode(texts))

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> P(positive) [len(texts)] (K classes: [len(texts), K])."""
    with self._finite(texts):
      return self.scorer(self.encode(texts))

  def explain(self, texts: Sequence[str], steps: int = explain.DEFAULT_STEPS,
              baseline: str = "zero", rule: str = "midpoint",
              target: str | None = None) -> list[explain.Explanation]:
    """Integrated gradients of each text's logit over its words (see
    `flax_sentiment.usage.explain`); compiled once per (steps, baseline,
    rule). A run of K > 2 classes: of the log-probability of class `target`
    (a class name; None: each text's predicted class)."""
    target_id = self.class_id(target)
    key = (steps, baseline, rule)
    if key not in self._explainers:
      self._explainers[key] = explain.Explainer(
          self.model, self.params, steps, baseline, rule, self.batch_size)
    with self._finite(texts):
      return explain.explain_words(
          self._explainers[key], texts, self.word_ids, self.config,
          self.tokenizer, labels.beyond_two(self.classes), target_id)

  def class_id(self, name: str | None) -> int:
    """The id of the class named `name` (None: -1, the predicted class);
    UserError naming the run's classes if it has no such class, or has
    two (their logit is explained: + toward positive, - toward negative)."""
    if name is None:
      return -1
    if labels.count(self.classes) == 2:
      raise UserError(f"--explain-class {name}: {self.workdir} is a run of "
                      f"two classes, whose logit is explained (+ toward "
                      f"positive, - toward negative); leave it out")
    ids = labels.ids(self.classes)
    if labels.key(name) not in ids:
      raise UserError(f"--explain-class {name!r}: {self.workdir} has the "
                      f"classes {', '.join(self.classes)}; pass one of them")
    return ids[labels.key(name)]

  @contextlib.contextmanager
  def _finite(self, texts: Sequence[str]) -> Iterator[None]:
    """scoring.NonFiniteScoreError as a UserError naming the workdir, the
    first such text and the fix."""
    try:
      yield
    except scoring.NonFiniteScoreError as e:
      raise UserError(scoring.not_finite_message(
          f"the model in {self.workdir}",
          f"{len(e.rows)} of {e.total} texts; the first: "
          f"{echo(texts[e.rows[0]])!r}",
          scoring.retrain_hint(self.config.learning_rate))) from e


class TextModelPredictor:
  """P(positive) of texts with a text model's run (`text_models`: the
  n-gram model or paragraph vectors, which read whole texts): the same
  interface as `Predictor`, without `explain`."""

  def __init__(self, workdir: str | pathlib.Path, config, model):
    self.workdir, self.config, self.model = pathlib.Path(workdir), config, model
    self.classes = model.classes  # more than two: each class's probability
    self.word_ids = model.known_words()
    self.tokenizer = tokenizer.Tokenizer(tokenizer.kind_of(config))

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
    self.classes = getattr(self.members[0], "classes", None)
    for member in self.members[1:]:
      if getattr(member, "classes", None) != self.classes:
        raise UserError(f"{member.workdir} has other classes than "
                        f"{self.members[0].workdir}; ensemble runs of one "
                        f"data config")
    self.weights = (np.full(len(self.members), 1 / len(self.members))
                    if weights is None else np.asarray(weights, np.float64))
    if len(self.weights) != len(self.members):
      raise UserError(f"{len(self.weights)} weights for "
                      f"{len(self.members)} workdirs; give one per --workdir")
    self.word_ids = self.members[0].word_ids
    self.tokenizer = self.members[0].tokenizer
    self.config = self.members[0].config
    self.reads = self.members[0].reads

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    scored = np.stack([member(texts) for member in self.members])
    if scored.ndim == 3:  # K classes: [members, n, K]
      return np.tensordot(self.weights, scored, axes=1).astype(np.float32)
    return (self.weights @ scored).astype(np.float32)


def load_predictor(workdir: str | pathlib.Path, fall_back: bool = False,
                   batch_size: int = scoring.DEFAULT_BATCH_SIZE
                   ) -> Predictor:
  """The `Predictor` of a workdir (texts -> P(positive) [len(texts)]), with
  its config, vocabulary and newest (or validation-best) checkpoint; see
  `load_trained_state` for `fall_back`. UserError if its weights hold a NaN
  or inf."""
  config = run_config(workdir)
  if common.is_text_model(config):
    return TextModelPredictor(workdir, config,
                              common.kind(config).load(RunDir(workdir)))
  config, vocabulary, state, _ = load_trained_state(workdir, fall_back)
  bad = first_non_finite(state.params)
  if bad:
    raise UserError(scoring.not_finite_message(
        f"the model in {pathlib.Path(workdir)}",
        f"NaN or inf in {bad} at checkpoint step {int(state.step)}",
        scoring.retrain_hint(config.learning_rate)))
  return Predictor(workdir, config, vocabulary, state.params, batch_size,
                   load_text_rule(workdir, config),
                   tokenizer.load_classes(RunDir(workdir).vocabulary_file))


def load_text_rule(workdir: str | pathlib.Path,
                   config) -> tokenizer.Tokenizer:
  """The tokenizer a workdir's run was trained with; UserError if its
  file (subwords: tokenizer.model) is missing or damaged."""
  try:
    return tokenizer.load_tokenizer(RunDir(workdir).path, config)
  except ValueError as e:
    raise UserError(f"{e}; it is rebuilt from the data by re-running the "
                    f"training command (a finished run only rewrites what is "
                    f"damaged)") from None


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
