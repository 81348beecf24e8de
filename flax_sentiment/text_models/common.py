"""Models that read whole texts rather than token ids, beside the recurrent
ones: the n-gram model (`ngrams.py`, config.model="ngrams") and paragraph
vectors (`paragraph_vectors.py`, config.model="paragraph_vectors").

What they share lives here: the texts of a run's splits (the same reviews,
in the same order, as the recurrent runs of that data config), the metrics
of a split, and the workdir a run writes (`config.json`, `metrics.jsonl`
with one record, `result.json`, and the model's own file), so `predict`,
`ensemble`, `report`, `recipe` and `serve` take it like any run's.

A kind's module provides:
  NAME: how messages call it ("n-gram": "a finished n-gram run");
  fit_run(splits, config, say, classes=None) -> (model, record fields):
    fitted on the train part (and unlabeled reviews where it reads them),
    its settings chosen on validation (on `config.select_on`); `classes`
    as `datasets.classes_of` gives them (None: binary);
  model_path(rundir) -> the file (or folder) its model is saved in;
  load(rundir) -> the model, UserError naming the file if it is missing or
    damaged.
A model has `classes` (None: the binary words; else the K > 2 class
names, in order), `logits(texts) -> [len(texts)] float32` (K classes:
[len(texts), K], whose softmax is the class probabilities, as a recurrent
run's), `__call__(texts) -> P(positive) [len(texts)] float32` (K classes:
the class probabilities [len(texts), K]) and `save(path)`.
"""

import importlib
import time
import warnings
from types import ModuleType
from typing import Callable, NamedTuple, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import checks, datasets, labels as labels_lib
from flax_sentiment.data import tokenizer
from flax_sentiment.tracking import metrics, monitor, progress
from flax_sentiment.runtime.errors import ConfigError, UserError
from flax_sentiment.runtime.files import write_atomic
from flax_sentiment.tracking.rundir import RunDir

# config.model -> the module that fits and loads it.
KINDS = {name: f"flax_sentiment.text_models.{name}"
         for name in fields.TEXT_MODEL_C_FIELDS}

Splits = dict[str, tuple[list[bytes], np.ndarray]]


def is_text_model(config) -> bool:
  return config.model in KINDS


def kind(config) -> ModuleType:
  """The module of the config's text model."""
  return importlib.import_module(KINDS[config.model])


def sklearn_modules(config, *names: str) -> list[ModuleType]:
  """The scikit-learn submodules `names` (e.g. "linear_model"); ConfigError
  naming the extra to install if scikit-learn is missing."""
  try:
    return [importlib.import_module(f"sklearn.{name}") for name in names]
  except ImportError:
    raise ConfigError(f"config.model={config.model!r} needs scikit-learn: "
                      f"pip install 'flax-sentiment[ngrams]' (or "
                      f"scikit-learn)") from None


class Validation(NamedTuple):
  """What C is chosen on: features (what a fitted regression's
  `decision_function` reads), labels [n] (class ids), and the run's
  `select_on` ("accuracy"; K > 2 classes also "macro_f1")."""
  features: object
  labels: np.ndarray
  select_on: str = "accuracy"


class Linear(NamedTuple):
  """A fitted linear scorer: decision_function(x [n, features]) = x @
  weights + bias -> [n] (weights [features], bias a float) or [n, K]
  (weights [features, K], bias [K]: one column per class id)."""
  weights: np.ndarray
  bias: float | np.ndarray

  def decision_function(self, features) -> np.ndarray:
    return np.asarray(features @ self.weights) + self.bias


def validation_score(decision: np.ndarray, labels: np.ndarray,
                     select_on: str = "accuracy") -> float:
  """The validation `select_on` of decisions: [n] (binary: positive above
  0) or [n, K] (the argmax's class; accuracy or macro-F1, an undefined one
  counting 0)."""
  if np.ndim(decision) == 1:
    return float(np.mean((decision > 0) == (labels > 0.5)))
  predicted, truth = np.argmax(decision, axis=1), np.asarray(labels)
  if select_on == "macro_f1":
    matrix = metrics.class_confusion(predicted, truth, decision.shape[1])
    return metrics.macro_f1(matrix) or 0.0
  return float(np.mean(predicted == truth))


def fit_per_c(c_values: Sequence[float], fit_one,
              validation: Validation | tuple[object, np.ndarray] | None,
              say: Callable[[str], None]) -> tuple[float, object, dict]:
  """fit_one(C) -> a fitted regression (with `decision_function`), for each
  C; the one best on `validation` (features, labels[, select_on]: accuracy
  unless it says macro_f1) is kept, ties to the smaller C (the simpler
  model). Returns (C, its regression, {"C": validation score})."""
  select_on = getattr(validation, "select_on", "accuracy")
  name = progress.METRIC_NAMES[select_on]
  score, fitted = {}, {}
  for c in sorted(c_values):
    fitted[c], unconverged = _counting_unconverged(fit_one, c)
    note = (f" (the solver stopped at its iteration limit in {unconverged} "
            f"fit{'s' if unconverged > 1 else ''}; a smaller C converges "
            f"sooner)" if unconverged else "")
    if validation is not None:
      score[c] = validation_score(
          fitted[c].decision_function(validation[0]), validation[1],
          select_on)
      say(f"C={c:g}: validation {name} {score[c]:.4f}{note}")
    elif note:
      say(f"C={c:g}:{note}")
  best = max(sorted(fitted), key=lambda c: score.get(c, 0.0))
  return best, fitted[best], {f"{c:g}": a for c, a in score.items()}


def _counting_unconverged(fit_one, c: float) -> tuple[object, int]:
  """fit_one(c), and how many of its fits warned that they did not converge
  (scikit-learn's ConvergenceWarning, two lines each, once per class):
  said in the line of this C instead; other warnings pass on."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fitted = fit_one(c)
  unconverged = 0
  for w in caught:
    if w.category.__name__ == "ConvergenceWarning":
      unconverged += 1
    else:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  return fitted, unconverged


def by_c_field(prefix: str, config) -> str:
  """The record's field of the validation score per C: e.g.
  ngram_validation_accuracy_by_c (or _macro_f1_by_c)."""
  return f"{prefix}_validation_{config.select_on}_by_c"


def split_texts(config, say: Callable[[str], None] = lambda message: None
                ) -> Splits:
  """{"train", "validation" (if any), "test", "unsupervised" (if the config
  reads unlabeled reviews)}: (texts, labels) of the reviews the recurrent
  models of the same data config train, select and test on
  (`datasets.split_train`, `datasets.test_subset`), in the same order."""
  classes = datasets.classes_of(config)
  stored = datasets.stored_texts(config, say)
  train_texts, train_labels = stored["train"], stored["train"].labels
  keep, held = datasets.split_train(train_labels, config)
  test_texts, test_labels = stored["test"], stored["test"].labels
  test_keep = datasets.test_subset(test_labels, config)
  checks.check_both_labels(train_labels[keep], config.dataset,
                           labels_lib.names(classes))
  split = tokenizer.Tokenizer(tokenizer.kind_of(config))
  checks.check_readable([len(split(train_texts[i])) for i in keep],
                        config.dataset, split.kind)
  pick = lambda texts, labels, ids: (texts.subset(ids), labels[ids])
  splits = {"train": pick(train_texts, train_labels, keep),
            "test": pick(test_texts, test_labels, test_keep)}
  if len(held):
    splits["validation"] = pick(train_texts, train_labels, held)
  if "unsupervised" in stored:
    splits["unsupervised"] = (stored["unsupervised"],
                              stored["unsupervised"].labels)
  return splits


def split_metrics(logits: np.ndarray, labels: np.ndarray, split: str,
                  texts: Sequence[bytes] | None = None,
                  kind: str = "english") -> dict:
  """{split}_loss (mean binary cross-entropy), _accuracy and the whole-split
  metrics of `metrics.split_rates` (by review length in tokens of `kind`,
  given the texts). Logits [n, K] (K classes): `metrics.class_rates`
  (softmax cross-entropy, accuracy, macro-F1 and -AUC, per class, the
  confusion matrix) and the accuracy by length: a recurrent run's keys."""
  split_text = tokenizer.Tokenizer(kind)
  lengths = (np.array([len(split_text(t)) for t in texts])
             if texts is not None else None)
  if np.ndim(logits) == 2:
    return {**metrics.class_rates(logits, labels, split),
            **metrics.split_rates(logits, labels, split, lengths)}
  return metrics.host_rates(logits, labels, split, lengths)


def probabilities(logits: np.ndarray) -> np.ndarray:
  """A text model's logits -> its probabilities, float32: P(positive) =
  sigmoid [n], or (K classes, logits [n, K]) the softmax [n, K]."""
  z = np.asarray(logits, np.float64)
  if z.ndim == 1:
    return (1 / (1 + np.exp(-z))).astype(np.float32)
  z = np.exp(z - z.max(axis=1, keepdims=True))
  return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def finished_history(config, rundir: RunDir) -> list[dict] | None:
  """The history of a finished text-model run in `rundir` whose model file
  loads, else None (then it is fitted again: it takes minutes)."""
  try:
    history = rundir.read_metrics()
    kind(config).load(rundir)
  except (OSError, UserError):
    return None
  return history or None


ClassCheck = Callable[[object, tuple[str, ...], np.ndarray], str | None]


def train_and_evaluate(config, workdir, say: Callable[[str], None] | None
                       = None, check_classes: ClassCheck | None = None
                       ) -> list[dict]:
  """Fits the text model of `config` (`loop.train_and_evaluate` sends it
  here, after its checks), evaluates it on validation and test, and writes
  the workdir. A finished run (same config) is not fitted again.
  `check_classes(config, class names, train labels)` (the training layer's
  `checks.check_classes`) sees the data before the fit: a ConfigError, or
  a warning line said."""
  rundir = RunDir(workdir)
  console = monitor.Console(False, config.progress_every_seconds)
  say = say or console.say
  name = kind(config).NAME
  saved = rundir.saved_config() if rundir.config_file.is_file() else None
  if saved is not None:
    from flax_sentiment.tracking.rundir import (config_record,
                                                resume_differences)  # pylint: disable=g-import-not-at-top
    diffs = resume_differences(saved, config_record(config))
    if diffs:
      raise ConfigError(
          f"{rundir.path} holds a {config.model} run with other settings "
          f"({'; '.join(diffs)}); use another --workdir")
  with rundir.locked():
    history = finished_history(config, rundir) if saved is not None else None
    if history is not None:
      say(f"{rundir.path} holds a finished {name} run; nothing to do")
    else:
      history = _fit_and_write(config, rundir, say, check_classes)
    record, how = progress.selected(history, config.select_on)
    classes = kind(config).load(rundir).classes  # K > 2: names, for report
    rundir.write_result({
        "selected_epoch": record["epoch"], "selected_by": how,
        "epochs_trained": len(history), "model": config.model,
        **({"classes": list(classes)} if classes else {}),
        **{k: v for k, v in record.items()
           if k.startswith(("validation_", "test_", "ngram_", "pv_"))}})
    say(monitor.result_line(record, how))
  return history


def _fit_and_write(config, rundir: RunDir, say,
                   check_classes: ClassCheck | None) -> list[dict]:
  start = time.perf_counter()
  splits = split_texts(config, say)
  classes = datasets.classes_of(config)
  warning = check_classes and check_classes(
      config, labels_lib.names(classes), splits["train"][1])
  if warning:
    say(warning)
  say(f"Fitting the {kind(config).NAME} model on {len(splits['train'][0]):,} "
      f"train reviews ...")
  model, fields = kind(config).fit_run(splits, config, say, classes)
  fit_seconds = time.perf_counter() - start
  # Evaluated as saved and loaded: the record is what `predict` and
  # `ensemble` compute from the files the workdir keeps.
  rundir.path.mkdir(parents=True, exist_ok=True)
  model.save(kind(config).model_path(rundir))
  model = kind(config).load(rundir)
  eval_start = time.perf_counter()
  evaluated = {}
  for name in ("train", "validation", "test"):
    if name in splits:
      texts, labels = splits[name]
      evaluated.update(split_metrics(model.logits(texts), labels, name,
                                     None if name == "train" else texts,
                                     tokenizer.kind_of(config)))
  record = {"epoch": 1, **evaluated,
            "epoch_seconds": time.perf_counter() - start,
            "train_examples_per_second": len(splits["train"][0]) / fit_seconds,
            "compile_seconds": 0.0,
            "eval_seconds": time.perf_counter() - eval_start, "steps": 0,
            **fields}
  write_atomic(rundir.config_file, config.to_json(indent=2))
  rundir.write_metrics([record])
  say(monitor.epoch_line(record, 1))
  return [record]
