"""The metrics, defined once: per-batch sums on device, their totals on the
host, and the per-epoch record that `metrics.jsonl` holds.

A batch's metrics are weighted sums (`loss`, `correct`, `count`; filler rows
have weight 0), so sums over batches, chunks, devices and epochs add up
exactly and the rates come last: loss = loss / count, accuracy = correct /
count. A new metric is a new key here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

METRIC_KEYS = ("loss", "correct", "count")
Sums = dict[str, jax.Array]


def batch_sums(logits: jax.Array, labels: jax.Array,
               weights: jax.Array) -> tuple[jax.Array, Sums]:
  """logits, labels, weights [batch] -> (weighted mean binary cross-entropy,
  the batch's sums). jit-able."""
  losses = optax.sigmoid_binary_cross_entropy(logits, labels)
  correct = (logits > 0) == (labels > 0.5)
  sums = {"loss": jnp.sum(losses * weights),
          "correct": jnp.sum(correct * weights),
          "count": jnp.sum(weights)}
  return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums


def zero_sums() -> Sums:
  return {k: jnp.zeros((), jnp.float32) for k in METRIC_KEYS}


def empty_totals() -> dict[str, float]:
  return {k: 0.0 for k in METRIC_KEYS}


def add(totals: dict[str, float], sums: dict) -> dict[str, float]:
  """totals + sums (host floats; sums may be per-step arrays)."""
  return {k: totals[k] + float(np.sum(sums[k])) for k in METRIC_KEYS}


def rates(totals: dict[str, float], split: str) -> dict[str, float]:
  """{split}_loss and {split}_accuracy from summed metrics."""
  count = max(totals["count"], 1e-30)
  return {f"{split}_loss": totals["loss"] / count,
          f"{split}_accuracy": totals["correct"] / count}


def epoch_record(epoch: int, train_totals: dict[str, float],
                 evaluated: dict[str, float], steps: int, seconds: float,
                 compile_seconds: float, eval_seconds: float) -> dict:
  """One line of metrics.jsonl for the (0-based) `epoch`."""
  return {
      "epoch": epoch + 1,
      **rates(train_totals, "train"),
      **evaluated,
      "epoch_seconds": seconds,
      "train_examples_per_second":
          train_totals["count"] / max(seconds - compile_seconds, 1e-9),
      "compile_seconds": compile_seconds,
      "eval_seconds": eval_seconds,
      "steps": steps,
  }
