"""The metrics, defined once: per-batch sums on device, their totals on the
host, and the per-epoch record that `metrics.jsonl` holds.

A batch's metrics are weighted sums (`loss`, `correct`, `count`; filler rows
have weight 0), so sums over batches, chunks, devices and epochs add up
exactly and the rates come last: loss = loss / count, accuracy = correct /
count. A new metric is a new key here.

Metrics that do not add up over batches (ROC-AUC, precision, recall, F1,
accuracy by review length) come from every review's logit, collected on the
host (`feeding.EvalSet`), by the numpy functions at the end of this file.
A rate whose denominator is zero (AUC with one class only, precision
without a positive prediction, ...) is None (`null` in JSON): undefined,
not 0 and not NaN.
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
  the batch's sums); logits [batch, K] (K classes): softmax cross-entropy
  against the class ids in labels. jit-able."""
  if logits.ndim == 2:
    classes = labels.astype(jnp.int32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, classes)
    correct = jnp.argmax(logits, axis=-1) == classes
  else:
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


def host_rates(logits: np.ndarray, labels: np.ndarray, split: str,
               lengths: np.ndarray | None = None) -> dict:
  """For a whole split scored on the host (text models): {split}_loss and
  _accuracy as `batch_sums` defines them, in float64, and the metrics of
  `split_rates`. logits [n], labels [n], lengths [n] (words) or None."""
  z = np.asarray(logits, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1) > 0.5
  loss = np.mean(np.logaddexp(0.0, np.where(y, -z, z)))  # stable BCE
  return {f"{split}_loss": float(loss),
          f"{split}_accuracy": float(np.mean((z > 0) == y)),
          **split_rates(z, labels, split, lengths=lengths)}


def probability_accuracy(probabilities: np.ndarray, labels: np.ndarray
                         ) -> np.ndarray | float:
  """Accuracy of P(positive) [..., n] against labels [n] (positive above
  0.5, i.e. logit > 0 as in `batch_sums`); one per leading index."""
  correct = (np.asarray(probabilities) > 0.5) == (np.asarray(labels) > 0.5)
  accuracy = np.mean(correct, axis=-1)
  return float(accuracy) if np.ndim(accuracy) == 0 else accuracy


def class_probability_accuracy(probabilities: np.ndarray, labels: np.ndarray
                               ) -> np.ndarray | float:
  """Accuracy of class probabilities [..., n, K] (the most probable class)
  against class ids [n]; one per leading index."""
  predicted = np.argmax(np.asarray(probabilities), axis=-1)
  accuracy = np.mean(predicted == np.asarray(labels).astype(np.int64),
                     axis=-1)
  return float(accuracy) if np.ndim(accuracy) == 0 else accuracy


def class_probability_log_loss(probabilities: np.ndarray, labels: np.ndarray,
                               clip: float = 1e-7) -> np.ndarray | float:
  """Mean cross-entropy of class probabilities [..., n, K] (clipped below
  at `clip`) against class ids [n]; one per leading index."""
  p = np.asarray(probabilities, np.float64)
  ids = np.asarray(labels).astype(np.int64)
  picked = np.take_along_axis(
      p, np.broadcast_to(ids[:, None], p.shape[:-1] + (1,)), axis=-1)[..., 0]
  loss = -np.mean(np.log(np.clip(picked, clip, 1.0)), axis=-1)
  return float(loss) if np.ndim(loss) == 0 else loss


def probability_log_loss(probabilities: np.ndarray, labels: np.ndarray,
                         clip: float = 1e-7) -> np.ndarray | float:
  """Mean binary cross-entropy of P(positive) [..., n] (clipped to [clip,
  1 - clip]) against labels [n]; one per leading index."""
  p = np.clip(np.asarray(probabilities, np.float64), clip, 1 - clip)
  y = np.asarray(labels) > 0.5
  loss = -np.mean(np.where(y, np.log(p), np.log1p(-p)), axis=-1)
  return float(loss) if np.ndim(loss) == 0 else loss


def epoch_record(epoch: int, train_totals: dict[str, float],
                 evaluated: dict, steps: int, seconds: float,
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


# --- Metrics of a whole split, on the host, from every review's logit ---

# Lower edges (in words, before truncation) of the review-length buckets:
# [0, 64), [64, 128), ... [512, 1024), [1024, inf). The notebook's question
# is 64 vs 512 vs 1024 tokens.
LENGTH_EDGES = (0, 64, 128, 256, 512, 1024)


def _as_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
  return (np.ones(n) if weights is None
          else np.asarray(weights, np.float64).reshape(n))


def _ratio(numerator: float, denominator: float) -> float | None:
  return float(numerator / denominator) if denominator > 0 else None


def _count(total: float) -> int | float:
  """A weighted count: an int when the weights were 0/1 (evaluation)."""
  return int(total) if float(total).is_integer() else float(total)


def roc_auc(scores: np.ndarray, labels: np.ndarray,
            weights: np.ndarray | None = None) -> float | None:
  """Area under the ROC curve: the chance that a positive review scores
  above a negative one, a tie counting one half (the Mann-Whitney U over
  n_pos * n_neg; weighted: each pair counts w_pos * w_neg).

  scores [n] (logits or probabilities: any strictly increasing function of
  one gives the same area), labels [n] (1 positive, 0 negative), weights
  [n] (default 1; 0 leaves a row out). None when the weighted rows hold
  only one class: the area is undefined then.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  n = len(scores)
  weights = _as_weights(weights, n)
  positive = np.asarray(labels).reshape(n) > 0.5
  order = np.argsort(scores, kind="stable")
  ordered = scores[order]
  pos = np.where(positive, weights, 0.0)[order]
  neg = np.where(positive, 0.0, weights)[order]
  if n == 0 or pos.sum() <= 0 or neg.sum() <= 0:
    return None
  # Tied scores form one group; its positives beat the negatives of lower
  # groups and tie with its own.
  starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
  pos_group = np.add.reduceat(pos, starts)
  neg_group = np.add.reduceat(neg, starts)
  neg_below = np.cumsum(neg_group) - neg_group
  wins = np.sum(pos_group * (neg_below + 0.5 * neg_group))
  return float(wins / (pos.sum() * neg.sum()))


def confusion(predicted: np.ndarray, labels: np.ndarray,
              weights: np.ndarray | None = None) -> dict[str, float]:
  """predicted [n] bool (positive), labels [n] (1 positive), weights [n]
  (default 1) -> {tp, fp, tn, fn}: weighted counts of true/false
  positives and negatives (weight-0 rows count in none)."""
  predicted = np.asarray(predicted, bool).reshape(-1)
  n = len(predicted)
  weights = _as_weights(weights, n)
  positive = np.asarray(labels).reshape(n) > 0.5
  return {"tp": float(np.sum(weights[predicted & positive])),
          "fp": float(np.sum(weights[predicted & ~positive])),
          "tn": float(np.sum(weights[~predicted & ~positive])),
          "fn": float(np.sum(weights[~predicted & positive]))}


def precision_recall_f1(counts: dict[str, float]
                        ) -> dict[str, float | None]:
  """{precision, recall, f1} of the positive class from `confusion`'s
  counts: tp / (tp + fp), tp / (tp + fn), 2 tp / (2 tp + fp + fn). Each is
  None where its denominator is 0 (precision without a positive
  prediction; recall without a positive review; F1 with neither)."""
  tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
  return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
          "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def accuracy_by_length(correct: np.ndarray, lengths: np.ndarray,
                       weights: np.ndarray | None = None,
                       edges=LENGTH_EDGES) -> dict[str, list]:
  """Accuracy per review-length bucket.

  correct [n] bool, lengths [n] (words before truncation), weights [n]
  (default 1). `edges` are the buckets' lower bounds, increasing, the first
  0: bucket i holds edges[i] <= length < edges[i + 1], the last one every
  longer review. Returns {"edges": [...], "accuracy": [...] (None for an
  empty bucket), "count": [...]}, one value per bucket.
  """
  correct = np.asarray(correct, bool).reshape(-1)
  n = len(correct)
  weights = _as_weights(weights, n)
  which = np.searchsorted(np.asarray(edges), np.asarray(lengths).reshape(n),
                          side="right") - 1
  counts = np.bincount(which, weights, minlength=len(edges))
  hits = np.bincount(which, weights * correct, minlength=len(edges))
  return {"edges": [int(e) for e in edges],
          "accuracy": [_ratio(h, c) for h, c in zip(hits, counts)],
          "count": [_count(c) for c in counts]}


def split_rates(logits: np.ndarray, labels: np.ndarray, split: str,
                lengths: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> dict:
  """The whole-split metrics of a `metrics.jsonl` record: {split}_auc,
  _f1, _precision, _recall (float or None), _confusion {tp, fp, tn, fn}
  and, given the reviews' true `lengths` (words before truncation),
  _accuracy_by_length (`accuracy_by_length`).

  logits [n] (P(positive) = sigmoid(logit); predicted positive: logit > 0,
  as in `batch_sums`), labels [n], weights [n] (default 1, 0 for filler).
  Logits [n, K] (K classes) get `class_rates`' (their loss and accuracy
  are `batch_sums`') and the accuracy by length.
  """
  if np.ndim(logits) == 2:
    values = class_rates(logits, labels, split, weights)
    del values[f"{split}_loss"], values[f"{split}_accuracy"]
    if lengths is not None:
      correct = (np.argmax(logits, axis=1)
                 == np.asarray(labels).reshape(-1).astype(np.int64))
      values[f"{split}_accuracy_by_length"] = accuracy_by_length(
          correct, lengths, weights)
    return values
  logits = np.asarray(logits).reshape(-1)
  predicted = logits > 0
  counts = confusion(predicted, labels, weights)
  values = {"auc": roc_auc(logits, labels, weights),
            **precision_recall_f1(counts),
            "confusion": {k: _count(v) for k, v in counts.items()}}
  if lengths is not None:
    correct = predicted == (np.asarray(labels).reshape(-1) > 0.5)
    values["accuracy_by_length"] = accuracy_by_length(correct, lengths,
                                                      weights)
  return {f"{split}_{k}": v for k, v in values.items()}


# Metrics of K >= 2 classes (issue #40): logits [n, K], labels [n] in 0..K-1.


def class_confusion(predicted: np.ndarray, labels: np.ndarray,
                    num_classes: int,
                    weights: np.ndarray | None = None) -> np.ndarray:
  """[K, K] float64: weighted counts of reviews of class i (row) predicted
  as class j (column). predicted, labels [n] ints in 0..K-1."""
  predicted = np.asarray(predicted, np.int64).reshape(-1)
  weights = _as_weights(weights, len(predicted))
  pairs = np.asarray(labels, np.int64).reshape(-1) * num_classes + predicted
  return np.bincount(pairs, weights, minlength=num_classes ** 2).reshape(
      num_classes, num_classes)


def per_class_rates(matrix: np.ndarray) -> list[dict]:
  """For each class of a `class_confusion` matrix: {precision, recall, f1,
  support}, each rate None where its denominator is 0 (as
  `precision_recall_f1`)."""
  matrix = np.asarray(matrix, np.float64)
  out = []
  for k in range(len(matrix)):
    tp = matrix[k, k]
    counts = {"tp": tp, "fp": matrix[:, k].sum() - tp,
              "fn": matrix[k].sum() - tp}
    out.append({**precision_recall_f1(counts),
                "support": _count(matrix[k].sum())})
  return out


def macro_f1(matrix: np.ndarray) -> float | None:
  """The mean F1 over all K classes, an undefined F1 (a class neither
  present nor predicted) counting 0 (scikit-learn's `f1_score(...,
  average="macro", labels=range(K), zero_division=0)`); None with no
  review."""
  if not np.asarray(matrix).sum():
    return None
  return float(np.mean([r["f1"] or 0.0 for r in per_class_rates(matrix)]))


def macro_roc_auc(probabilities: np.ndarray, labels: np.ndarray,
                  weights: np.ndarray | None = None) -> float | None:
  """One-vs-rest ROC-AUC (`roc_auc` of each class's probability against
  the rest), averaged over the classes with reviews on both sides; None if
  no class has. probabilities [n, K] (not logits: a class's logit alone
  ranks reviews otherwise than its probability), labels [n]."""
  probabilities = np.asarray(probabilities, np.float64)
  labels = np.asarray(labels).reshape(-1)
  areas = [roc_auc(probabilities[:, k], labels == k, weights)
           for k in range(probabilities.shape[1])]
  areas = [a for a in areas if a is not None]
  return float(np.mean(areas)) if areas else None


def class_rates(logits: np.ndarray, labels: np.ndarray, split: str,
                weights: np.ndarray | None = None) -> dict:
  """The whole-split metrics of K classes: {split}_loss (mean softmax
  cross-entropy), _accuracy, _macro_f1, _macro_auc (one-vs-rest), _per_class
  ([{precision, recall, f1, support}] per class) and _confusion ([K][K]
  counts, rows the true class). logits [n, K]; prediction: the argmax."""
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels, np.int64).reshape(-1)
  weights = _as_weights(weights, len(labels))
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1,
                                                           keepdims=True))
  losses = -log_probabilities[np.arange(len(labels)), labels]
  predicted = logits.argmax(axis=1)
  matrix = class_confusion(predicted, labels, logits.shape[1], weights)
  values = {"loss": _ratio(float(weights @ losses), weights.sum()),
            "accuracy": _ratio(float(np.trace(matrix)), matrix.sum()),
            "macro_f1": macro_f1(matrix),
            "macro_auc": macro_roc_auc(np.exp(log_probabilities), labels,
                                       weights),
            "per_class": per_class_rates(matrix),
            "confusion": [[_count(v) for v in row] for row in matrix]}
  return {f"{split}_{k}": v for k, v in values.items()}
