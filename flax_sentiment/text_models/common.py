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
  fit_run(splits, config, say) -> (model, record fields): fitted on the
    train part (and unlabeled reviews where it reads them), its settings
    chosen on validation;
  model_path(rundir) -> the file (or folder) its model is saved in;
  load(rundir) -> the model, UserError naming the file if it is missing or
    damaged.
A model has `logits(texts) -> [len(texts)] float32`, `__call__(texts) ->
P(positive) [len(texts)] float32` and `save(path)`.
"""

import importlib
import time
from types import ModuleType
from typing import Callable, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import checks, datasets
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


def fit_per_c(c_values: Sequence[float], fit_one,
              validation: tuple[object, np.ndarray] | None,
              say: Callable[[str], None]) -> tuple[float, object, dict]:
  """fit_one(C) -> a fitted regression (with `decision_function`), for each
  C; the one most accurate on `validation` (features, labels) is kept,
  ties to the smaller C (the simpler model). Returns (C, its regression,
  {"C": validation accuracy})."""
  accuracy, fitted = {}, {}
  for c in sorted(c_values):
    fitted[c] = fit_one(c)
    if validation is not None:
      predicted = fitted[c].decision_function(validation[0]) > 0
      accuracy[c] = float(np.mean(predicted == (validation[1] > 0.5)))
      say(f"C={c:g}: validation accuracy {accuracy[c]:.4f}")
  best = max(sorted(fitted), key=lambda c: accuracy.get(c, 0.0))
  return best, fitted[best], {f"{c:g}": a for c, a in accuracy.items()}


def split_texts(config, say: Callable[[str], None] = lambda message: None
                ) -> Splits:
  """{"train", "validation" (if any), "test", "unsupervised" (if the config
  reads unlabeled reviews)}: (texts, labels) of the reviews the recurrent
  models of the same data config train, select and test on
  (`datasets.split_train`, `datasets.test_subset`), in the same order."""
  classes = datasets.classes_of(config)
  if classes is not None and len(classes) > 2:
    raise ConfigError(
        f"config.model={config.model!r} trains on two classes; "
        f"{config.dataset} holds {len(classes)} ({', '.join(classes)}): "
        f"train a recurrent model on it (e.g. --config lstm)")
  stored = datasets.stored_texts(config, say)
  train_texts, train_labels = stored["train"], stored["train"].labels
  keep, held = datasets.split_train(train_labels, config)
  test_texts, test_labels = stored["test"], stored["test"].labels
  test_keep = datasets.test_subset(test_labels, config)
  checks.check_both_labels(train_labels[keep], config.dataset)
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
  given the texts)."""
  split_text = tokenizer.Tokenizer(kind)
  lengths = (np.array([len(split_text(t)) for t in texts])
             if texts is not None else None)
  return metrics.host_rates(logits, labels, split, lengths)


def finished_history(config, rundir: RunDir) -> list[dict] | None:
  """The history of a finished text-model run in `rundir` whose model file
  loads, else None (then it is fitted again: it takes minutes)."""
  try:
    history = rundir.read_metrics()
    kind(config).load(rundir)
  except (OSError, UserError):
    return None
  return history or None


def train_and_evaluate(config, workdir, say: Callable[[str], None] | None
                       = None) -> list[dict]:
  """Fits the text model of `config` (`loop.train_and_evaluate` sends it
  here, after its checks), evaluates it on validation and test, and writes
  the workdir. A finished run (same config) is not fitted again."""
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
      history = _fit_and_write(config, rundir, say)
    record, how = progress.selected(history)
    rundir.write_result({
        "selected_epoch": record["epoch"], "selected_by": how,
        "epochs_trained": len(history), "model": config.model,
        **{k: v for k, v in record.items()
           if k.startswith(("validation_", "test_", "ngram_", "pv_"))}})
    say(monitor.result_line(record, how))
  return history


def _fit_and_write(config, rundir: RunDir, say) -> list[dict]:
  start = time.perf_counter()
  splits = split_texts(config, say)
  say(f"Fitting the {kind(config).NAME} model on {len(splits['train'][0]):,} "
      f"train reviews ...")
  model, fields = kind(config).fit_run(splits, config, say)
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
