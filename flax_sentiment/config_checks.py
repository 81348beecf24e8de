"""Checks every config field before any data is read or anything compiled."""

import math

from flax_sentiment.data import NUM_RESERVED_IDS, PADDING_SIDES
from flax_sentiment.errors import ConfigError
from flax_sentiment.models import CELLS, IMPLEMENTATIONS

DTYPES = ("float32", "bfloat16")
POSITIVE_INTS = ("seq_len", "num_words", "embed_dim", "hidden_dim",
                 "batch_size", "num_epochs", "steps_per_call",
                 "eval_batch_size", "unroll", "checkpoint_every_steps",
                 "keep_checkpoints")
OPTIONAL_POSITIVE_INTS = ("max_train_examples", "max_test_examples",
                          "num_processes")
CHOICES = {"cell": tuple(CELLS), "padding": PADDING_SIDES,
           "truncating": PADDING_SIDES, "dtype": DTYPES,
           "implementation": IMPLEMENTATIONS}


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def validate_config(config) -> None:
  """Raises ConfigError naming the first bad field, its value and the fix."""
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
  if config.num_words <= NUM_RESERVED_IDS:
    raise ConfigError(
        f"config.num_words={config.num_words} leaves no room for words: ids "
        f"0 (padding) and 1 (unknown) are reserved; use at least "
        f"{NUM_RESERVED_IDS + 1}")
  rate = config.learning_rate
  if (not isinstance(rate, (int, float)) or isinstance(rate, bool)
      or not math.isfinite(rate) or rate <= 0):
    raise ConfigError(f"config.learning_rate={rate!r} must be a finite "
                      f"number > 0, e.g. 1e-3")
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
  if (config.mask_padding and config.implementation == "hoisted"
      and config.unroll != 1):
    raise ConfigError(
        f"config.unroll={config.unroll} applies only without masking: with "
        f"mask_padding=True the loops skip the steps that are padding in "
        f"every row, so their length is not known when compiling; use "
        f"--config.unroll=1")
  if config.seed is None or not _is_int(config.seed) or config.seed < 0:
    raise ConfigError(f"config.seed={config.seed!r} must be an integer >= 0")
  if config.num_processes is not None and config.num_processes > 1:
    if config.coordinator_address is None or config.process_id is None:
      raise ConfigError(
          f"config.num_processes={config.num_processes} needs "
          f"--config.coordinator_address=HOST:PORT and --config.process_id")
    if not 0 <= config.process_id < config.num_processes:
      raise ConfigError(f"config.process_id={config.process_id} must be in "
                        f"[0, {config.num_processes})")


def check_batch_divides(config, num_devices: int) -> None:
  """The global batch is split evenly over the devices."""
  for field in ("batch_size", "eval_batch_size"):
    if config[field] % num_devices:
      raise ConfigError(
          f"config.{field}={config[field]} does not divide evenly over "
          f"{num_devices} devices; use a multiple of {num_devices}")
