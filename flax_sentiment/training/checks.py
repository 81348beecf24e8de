"""The checks a config passes before any data is read or anything compiled:
each field's own check (declared with the field in `fields`), then the
rules that relate several fields and the machine."""

import jax
import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.model import implementation
from flax_sentiment.data.datasets import DATASET
from flax_sentiment.data.tokenizer import NUM_RESERVED_IDS
from flax_sentiment.data import tokenizer
from flax_sentiment.runtime.errors import ConfigError, UserError
from flax_sentiment.configuration.fields import describe_fields  # noqa: F401 (re-export)
from flax_sentiment.model.classifier import POOLINGS
from flax_sentiment.training import train_steps


def _check_model_options(config) -> None:
  """Pooling names; bidirectional and max/mean pooling need masking."""
  parts = config.pooling.split("+") if isinstance(config.pooling, str) else []
  if (not parts or any(p not in POOLINGS for p in parts)
      or len(set(parts)) < len(parts)):
    raise ConfigError(f"config.pooling={config.pooling!r} is not allowed; use "
                      f"one of {', '.join(POOLINGS)} or several joined by +, "
                      f"e.g. last+max+mean")
  if not config.mask_padding and (config.bidirectional
                                  or set(parts) - {"last"}):
    what = ("bidirectional=True" if config.bidirectional
            else f"pooling={config.pooling!r}")
    raise ConfigError(
        f"config.{what} needs masked padding (the backward direction must "
        f"start at each review's last real token, pooling must skip "
        f"padding); add --config.mask_padding=True")


def _check_text_models(config) -> None:
  """A text model (n-grams, paragraph vectors) reads words or characters,
  chooses its C on validation, runs in one process and weighs no class."""
  c_field = fields.TEXT_MODEL_C_FIELDS.get(config.model)
  if c_field is None:
    return
  if config.tokenizer == "subwords":
    raise ConfigError(
        f"config.model={config.model!r} reads words or characters, not "
        f"subwords: use --config.tokenizer=words (or characters, english)")
  if (len(fields.parse_number_list(config[c_field])) > 1
      and not config.validation_examples):
    raise ConfigError(
        f"config.{c_field}={config[c_field]!r} are chosen on validation: add "
        f"--config.validation_examples=2500, or give one value")
  if (config.num_processes or 1) > 1:
    raise ConfigError(f"config.model={config.model!r} runs in one process; "
                      f"drop --config.num_processes")
  if config.class_weights:
    raise ConfigError(f"config.model={config.model!r} weighs every review "
                      f"alike; drop --config.class_weights")


# Fields of the recurrent network that the region CNN has no use for, with
# their values that mean "off".
_RECURRENT_ONLY = {"bidirectional": False, "num_layers": 1, "pooling": "last",
                   "pretrain_lm_epochs": 0}


def _check_region_cnn(config) -> None:
  """Region embeddings feed the networks, not the text models, and not a
  language model (a region holds the next words it would predict); the
  region CNN has one layer, max-pooled, and runs on XLA."""
  if config.region_embedding_dim and config.model in fields.TEXT_MODEL_C_FIELDS:
    raise ConfigError(
        f"config.region_embedding_dim={config.region_embedding_dim} feeds "
        f"model=recurrent or region_cnn, not {config.model}; drop it")
  if config.region_embedding_dim and config.pretrain_lm_epochs:
    raise ConfigError(
        f"config.region_embedding_dim={config.region_embedding_dim} shows a "
        f"language model the words it is to predict; drop "
        f"--config.pretrain_lm_epochs or the region embeddings")
  ngrams = config.region_embedding_ngrams
  if ngrams > 1 and not config.region_embedding_dim:
    raise ConfigError(
        f"config.region_embedding_ngrams={ngrams} shapes region embeddings, "
        f"and this run has none: add --config.region_embedding_dim=100 or "
        f"drop it")
  if ngrams > config.region_size:
    raise ConfigError(
        f"config.region_embedding_ngrams={ngrams} is longer than a region "
        f"(config.region_size={config.region_size}): use at most "
        f"{config.region_size}")
  if config.model != fields.REGION_CNN:
    return
  for name, off in _RECURRENT_ONLY.items():
    if config[name] != off:
      raise ConfigError(
          f"config.{name}={config[name]!r} applies to model=recurrent; the "
          f"region CNN has one layer, max-pooled: drop it "
          f"(--config.{name}={off!r})")
  if config.implementation == "pallas":
    raise ConfigError("config.implementation='pallas' runs recurrences; the "
                      "region CNN runs on XLA: drop it")


def validate_config(config) -> None:
  """Raises ConfigError naming the first bad field, its value and the fix."""
  fields.check_fields(config)
  if config.early_stopping_patience and not config.validation_examples:
    raise ConfigError(
        f"config.early_stopping_patience={config.early_stopping_patience} "
        f"needs a validation split; add --config.validation_examples=2500")
  _check_model_options(config)
  _check_values(config)
  _check_text_models(config)
  _check_region_cnn(config)
  _check_virtual_adversarial(config)
  _check_data_options(config)
  _check_processes(config)


def _check_values(config) -> None:
  """num_words."""
  if config.num_words <= NUM_RESERVED_IDS:
    raise ConfigError(
        f"config.num_words={config.num_words} leaves no room for words: ids "
        f"0 (padding) and 1 (unknown) are reserved; use at least "
        f"{NUM_RESERVED_IDS + 1}")


def _check_virtual_adversarial(config) -> None:
  """Virtual adversarial training needs unlabeled reviews: IMDB's
  unsupervised split, or unlabeled_dataset with reviews of your own."""
  if (config.virtual_adversarial_epsilon and config.dataset != DATASET
      and not config.unlabeled_dataset):
    raise ConfigError(
        f"config.virtual_adversarial_epsilon="
        f"{config.virtual_adversarial_epsilon} needs unlabeled reviews: pass "
        f"--config.unlabeled_dataset=FILE, or use "
        f"--config.virtual_adversarial_epsilon=0")


def _check_data_options(config) -> None:
  """Length buckets and masking, and what each implementation supports."""
  if config.length_buckets and (config.padding != "post"
                                or not config.mask_padding):
    raise ConfigError(
        f"config.length_buckets={config.length_buckets} needs padding at the "
        f"end and masking (got padding={config.padding!r}, mask_padding="
        f"{config.mask_padding}); add --config.padding=post "
        f"--config.mask_padding=True, or use configs/lstm_buckets.py")
  if (config.mask_padding and config.implementation == "stock"
      and config.padding == "pre"):
    raise ConfigError(
        "config.implementation='stock' (nn.RNN seq_lengths) masks padding only "
        "at the end; with mask_padding=True use --config.padding=post or "
        "--config.implementation=hoisted")
  if config.implementation == "pallas" and config.unroll > 1:
    raise ConfigError(
        f"config.unroll={config.unroll} applies to the XLA loop; "
        f"implementation='pallas' runs the whole loop in one kernel; use "
        f"--config.unroll=0")
  if (config.mask_padding and config.implementation in ("auto", "hoisted")
      and config.unroll > 1):
    raise ConfigError(
        f"config.unroll={config.unroll} applies only without masking: with "
        f"mask_padding=True the loops skip the steps that are padding in "
        f"every row, so their length is not known when compiling; use "
        f"--config.unroll=1")


def _check_processes(config) -> None:
  if config.num_processes is not None and config.num_processes > 1:
    if config.coordinator_address is None or config.process_id is None:
      raise ConfigError(
          f"config.num_processes={config.num_processes} needs "
          f"--config.coordinator_address=HOST:PORT and --config.process_id")
    if not 0 <= config.process_id < config.num_processes:
      raise ConfigError(f"config.process_id={config.process_id} must be in "
                        f"[0, {config.num_processes})")


def check_implementation_runs(config, device: jax.Device) -> None:
  """implementation='pallas' only where its kernels can run: an NVIDIA
  Hopper GPU, hidden sizes whose weights fit in shared memory."""
  if config.implementation != "pallas":
    return
  reason = implementation.pallas_cannot_run(config, device)
  if reason:
    raise ConfigError(reason)


def check_batch_divides(config, num_devices: int) -> None:
  """The global train batch is split evenly over the devices. (Evaluation
  batches are rounded up to a multiple of the device count instead.)"""
  if config.batch_size % num_devices:
    raise ConfigError(
        f"config.batch_size={config.batch_size} does not divide evenly over "
        f"{num_devices} devices; use a multiple of {num_devices}")


def record_tokenizer(config, rundir) -> None:
  """Makes `tokenizer="auto"` the kind it stands for, so config.json
  records it: the kind of the run the workdir holds (english for a run
  older than the field), else `tokenizer.kind_of` (english for IMDB, words
  for your own files)."""
  if config.tokenizer != tokenizer.AUTO:
    return
  try:
    saved = rundir.saved_config()
  except UserError:  # damaged: the resume check says so
    saved = None
  kind = fields.complete(saved).tokenizer if saved else tokenizer.AUTO
  config.tokenizer = (kind if kind != tokenizer.AUTO
                      else tokenizer.kind_of(config))


# A class with a smaller share of the train reviews gets a warning line.
RARE_CLASS_SHARE = 0.01


def check_classes(config, names: tuple[str, ...], train_labels) -> str | None:
  """ConfigError if the run selects on a metric its records lack (macro-F1
  is a metric of more than two classes) or gives class weights that do not
  fit; a warning line if a class has under 1% of the train reviews."""
  if config.select_on == "macro_f1" and len(names) <= 2:
    raise ConfigError(
        f"config.select_on=macro_f1 is for data of more than two classes; "
        f"{config.dataset} has two: drop --config.select_on (accuracy)")
  try:
    train_steps.class_weights(config.class_weights, train_labels, len(names))
  except ValueError as e:
    raise ConfigError(
        f"config.class_weights={config.class_weights!r}: give balanced, or "
        f"{e} in class order ({', '.join(names)})") from None
  counts = np.bincount(np.asarray(train_labels, np.int64),
                       minlength=len(names))
  rare = [f"{name} ({count:,})" for name, count in zip(names, counts)
          if count < RARE_CLASS_SHARE * len(train_labels)]
  if rare:
    return (f"warning: under 1% of the {len(train_labels):,} train reviews "
            f"are {', '.join(rare)}; consider --config.class_weights=balanced "
            f"and --config.select_on=macro_f1")
  return None
