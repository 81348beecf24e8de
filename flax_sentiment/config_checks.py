"""What each config field means, and the checks every field passes before
any data is read or anything compiled."""

import math

import jax

from flax_sentiment import pallas_recurrence
from flax_sentiment.data import NUM_RESERVED_IDS, PADDING_SIDES
from flax_sentiment.errors import ConfigError
from flax_sentiment.models import CELLS, IMPLEMENTATIONS, POOLINGS

DTYPES = ("float32", "bfloat16")
POSITIVE_INTS = ("seq_len", "num_words", "embed_dim", "hidden_dim",
                 "batch_size", "num_epochs", "steps_per_call",
                 "eval_batch_size", "checkpoint_every_steps",
                 "keep_checkpoints", "num_layers")
NON_NEGATIVE_INTS = ("validation_examples", "validation_seed",
                     "early_stopping_patience",
                     "unroll", "warmup_steps")
OPTIONAL_POSITIVE_INTS = ("max_train_examples", "max_test_examples",
                          "num_processes")
CHOICES = {"cell": tuple(CELLS), "padding": PADDING_SIDES,
           "truncating": PADDING_SIDES, "dtype": DTYPES,
           "implementation": IMPLEMENTATIONS,
           "lr_schedule": ("constant", "cosine", "linear"),
           "vocabulary_splits": ("train", "train+unsupervised"),
           "pretrained_embeddings": ("none", "word2vec")}
RATES = ("embed_dropout", "dropout")
NON_NEGATIVE_FLOATS = ("weight_decay", "clip_grad_norm", "adversarial_epsilon",
                       "progress_every_seconds")


# Shown by `run.py --help`, with each field's value in the chosen config.
FIELD_HELP = {
    "cell": "rnn (SimpleRNN, tanh) | lstm | gru",
    "bidirectional": "add a backward recurrence per layer (needs "
                     "mask_padding=True)",
    "num_layers": "stacked recurrent layers",
    "pooling": "features for the dense layer: last | max | mean, or joined "
               "with + (max/mean skip padding; need mask_padding=True)",
    "embed_dropout": "training: drop whole words (embedding rows) with this "
                     "probability",
    "dropout": "training: dropout between layers and before the dense layer",
    "pretrained_embeddings": "none | word2vec: initialize the embedding with "
                             "word2vec (gensim) trained on train + unlabeled "
                             "reviews (never test or validation text)",
    "vocabulary_splits": "text the vocabulary comes from: train | "
                         "train+unsupervised (never test)",
    "lr_schedule": "constant | cosine | linear: warmup, then decay to 0 at "
                   "the last epoch",
    "warmup_steps": "linear warmup steps (with a schedule)",
    "weight_decay": ">0: AdamW decoupled weight decay",
    "clip_grad_norm": ">0: clip gradients to this global norm",
    "adversarial_epsilon": ">0: adversarial training (Miyato et al. 2017): "
                           "also fit the batch with its embedded tokens moved "
                           "this far (L2 per review) along the loss gradient",
    "num_words": "vocabulary size incl. the 2 reserved ids (0 pad, 1 unknown)",
    "embed_dim": "embedding width",
    "hidden_dim": "recurrent state width (per direction)",
    "dtype": "compute dtype: float32 | bfloat16 (parameters stay float32)",
    "seq_len": "tokens per review after padding/truncation",
    "padding": "Keras pad_sequences side for padding: pre | post",
    "truncating": "side cut from long reviews: pre | post",
    "mask_padding": "True: padding leaves the recurrent state untouched",
    "length_buckets": ">0: length-aware batching with this many buckets "
                      "(needs padding=post, mask_padding=True)",
    "max_train_examples": "seeded, label-balanced train subset (None: all)",
    "max_test_examples": "seeded, label-balanced test subset (None: all)",
    "data_dir": "folder holding imdb_reviews/ (None: TFDS_DATA_DIR or "
                "~/tensorflow_datasets)",
    "download": "let tfds download IMDB if it is not found",
    "cache_dir": "token and compilation cache (None: $FLAX_SENTIMENT_CACHE "
                 "or ~/.cache/flax_sentiment)",
    "batch_size": "global train batch (must divide over the devices)",
    "num_epochs": "epochs to train",
    "learning_rate": "Adam learning rate (peak, with a schedule)",
    "seed": "initialization, data order, subsets, validation split",
    "steps_per_call": "train steps per compiled call (lax.scan)",
    "eval_batch_size": "evaluation batch, rounded up to a multiple of the "
                       "device count",
    "validation_examples": ">0: hold out this many train reviews for "
                           "validation (model selection, early stopping)",
    "validation_seed": "seed of the validation split (kept fixed when "
                       "`seed` varies, so seeds share it)",
    "early_stopping_patience": ">0: stop when validation accuracy has not "
                               "improved for this many epochs",
    "implementation": "recurrence: auto (pallas on one Hopper GPU, else "
                      "hoisted) | hoisted (fast XLA loop) | stock (nn.RNN) "
                      "| pallas (Mosaic GPU kernels, Hopper GPUs)",
    "unroll": "time steps per loop iteration (unmasked hoisted loops); "
              "0: by backend (8 on GPU, 1 elsewhere)",
    "project_distinct_words": "project only the words each batch uses "
                              "(same math, faster)",
    "progress": "progress bar on a terminal (False: plain lines only)",
    "progress_every_seconds": "seconds between plain progress lines",
    "checkpoint_every_steps": "train steps between mid-epoch checkpoints",
    "keep_checkpoints": "checkpoints kept in <workdir>/checkpoints",
    "coordinator_address": "HOST:PORT of process 0 (multi-process runs)",
    "num_processes": "processes in a multi-process run",
    "process_id": "this process's index in a multi-process run",
}


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _check_numbers(config) -> None:
  """Rates in [0, 1); non-negative floats (0: off)."""
  for field in RATES:
    if not _is_number(config[field]) or not 0 <= config[field] < 1:
      raise ConfigError(f"config.{field}={config[field]!r} must be a "
                        f"probability in [0, 1)")
  for field in NON_NEGATIVE_FLOATS:
    if not _is_number(config[field]) or config[field] < 0:
      raise ConfigError(f"config.{field}={config[field]!r} must be a number "
                        f">= 0")


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


def validate_config(config) -> None:
  """Raises ConfigError naming the first bad field, its value and the fix."""
  _check_kinds(config)
  _check_numbers(config)
  _check_model_options(config)
  _check_values(config)
  _check_data_options(config)
  _check_processes(config)


def _check_kinds(config) -> None:
  """Choices and integer fields."""
  for field, allowed in CHOICES.items():
    if config[field] not in allowed:
      raise ConfigError(f"config.{field}={config[field]!r} is not allowed; "
                        f"use one of: {', '.join(allowed)}")
  for field in POSITIVE_INTS:
    if not _is_int(config[field]) or config[field] <= 0:
      raise ConfigError(f"config.{field}={config[field]!r} must be a "
                        f"positive integer")
  for field in OPTIONAL_POSITIVE_INTS:
    value = config[field]
    if value is not None and (not _is_int(value) or value <= 0):
      raise ConfigError(f"config.{field}={value!r} must be a positive "
                        f"integer, or None for no limit")
  for field in NON_NEGATIVE_INTS:
    if not _is_int(config[field]) or config[field] < 0:
      raise ConfigError(f"config.{field}={config[field]!r} must be 0 (off) "
                        f"or a positive integer")
  if config.early_stopping_patience and not config.validation_examples:
    raise ConfigError(
        f"config.early_stopping_patience={config.early_stopping_patience} "
        f"needs a validation split; add --config.validation_examples=2500")


def _check_values(config) -> None:
  """num_words, learning_rate and seed."""
  if config.num_words <= NUM_RESERVED_IDS:
    raise ConfigError(
        f"config.num_words={config.num_words} leaves no room for words: ids "
        f"0 (padding) and 1 (unknown) are reserved; use at least "
        f"{NUM_RESERVED_IDS + 1}")
  rate = config.learning_rate
  if not _is_number(rate) or rate <= 0:
    raise ConfigError(f"config.learning_rate={rate!r} must be a finite "
                      f"number > 0, e.g. 1e-3")
  if config.seed is None or not _is_int(config.seed) or config.seed < 0:
    raise ConfigError(f"config.seed={config.seed!r} must be an integer >= 0")


def _check_data_options(config) -> None:
  """Length buckets and masking, and what each implementation supports."""
  if not _is_int(config.length_buckets) or config.length_buckets < 0:
    raise ConfigError(f"config.length_buckets={config.length_buckets!r} must "
                      f"be 0 (off) or a positive number of buckets")
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
  reason = pallas_recurrence.cannot_run(
      config.cell, config.hidden_dim, config.batch_size, config.seq_len,
      config.mask_padding, device)
  if reason:
    raise ConfigError(reason)


def check_batch_divides(config, num_devices: int) -> None:
  """The global train batch is split evenly over the devices. (Evaluation
  batches are rounded up to a multiple of the device count instead.)"""
  if config.batch_size % num_devices:
    raise ConfigError(
        f"config.batch_size={config.batch_size} does not divide evenly over "
        f"{num_devices} devices; use a multiple of {num_devices}")


def describe_fields(config) -> str:
  """Every field of `config` with its value and meaning (for --help)."""
  width = max(len(f) for f in config.keys())
  lines = []
  for field in config.keys():
    value = config[field]
    lines.append(f"  --config.{field:<{width}} = {value!r:<12} "
                 f"{FIELD_HELP.get(field, '')}")
  return "\n".join(lines)
