"""Scoring, written once: token ids -> logits and P(positive).

`logits`, `probabilities` and `scores` are the pure functions (jit applied by
the caller); `Scorer` runs them over any number of reviews in fixed-size
batches (one compiled shape per power of two up to `batch_size`, bounded
memory) and refuses non-finite scores (`NonFiniteScoreError`): a NaN logit
gives a NaN probability, an infinite one a probability of exactly 0 or 1,
neither of which means anything. `in_batches` is that batching for any
per-review function (`explain.Explainer` uses it). predict, ensemble, export,
explain, serve and the API all score through here.
"""

from typing import Any, Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_BATCH_SIZE = 256


def retrain_hint(learning_rate: float | None) -> str:
  """The fix for a run whose weights diverged."""
  if isinstance(learning_rate, (int, float)):
    return (f"retrain it with a smaller --config.learning_rate (it was "
            f"{learning_rate}, e.g. --config.learning_rate="
            f"{learning_rate / 10:g}) or with --config.clip_grad_norm=1.0")
  return "retrain it with a smaller --config.learning_rate"


def not_finite_message(what: str, detail: str, fix: str) -> str:
  """The one line for a model whose weights or scores are NaN or infinite
  (predict, explain, ensemble, serve say it alike): `what` names the model
  (its workdir or export), `detail` where it showed, `fix` what to do."""
  return (f"{what} gives NaN or infinite scores ({detail}): its weights are "
          f"not finite or far too large, e.g. the run diverged; {fix}")


class NonFiniteScoreError(ValueError):
  """Some reviews scored a NaN or infinite logit (diverged or damaged
  weights). `rows`: their indices among the scored reviews; `total`: how
  many were scored."""

  def __init__(self, rows: np.ndarray, total: int):
    self.rows, self.total = [int(r) for r in rows], total
    super().__init__(
        f"{len(self.rows)} of {total} reviews scored a NaN or infinite logit "
        f"(the first: row {self.rows[0]}); the model's weights are not "
        f"finite, or far too large")


def logits(model, params: Any, tokens: jax.Array) -> jax.Array:
  """tokens [batch, seq_len] int32 -> logits [batch] (inference: no
  dropout)."""
  return model.apply({"params": params}, tokens)


def probabilities(model, params: Any, tokens: jax.Array) -> jax.Array:
  """tokens [batch, seq_len] int32 -> P(positive) [batch] float32 (a model
  of K classes: each class's probability [batch, K])."""
  return _probabilities(logits(model, params, tokens))


def _probabilities(z: jax.Array) -> jax.Array:
  """Logits [batch] -> sigmoid; [batch, K] -> softmax over the classes."""
  return jax.nn.sigmoid(z) if z.ndim == 1 else jax.nn.softmax(z, axis=-1)


def scores(model, params: Any, tokens: jax.Array
           ) -> tuple[jax.Array, jax.Array]:
  """tokens [batch, seq_len] int32 -> (logits [batch], P(positive)
  [batch])."""
  z = logits(model, params, tokens)
  return z, _probabilities(z)


def require_finite(z: np.ndarray) -> None:
  """Raises NonFiniteScoreError if any of logits [n] (or [n, K]) is NaN or
  infinite."""
  bad = np.flatnonzero(~np.isfinite(z).reshape(len(z), -1).all(axis=1))
  if len(bad):
    raise NonFiniteScoreError(bad, len(z))


def padded_rows(rows: int, batch_size: int) -> int:
  """The rows a batch of `rows` reviews is padded to: the next power of two,
  at most `batch_size`."""
  return min(batch_size, 1 << max(rows - 1, 0).bit_length())


def in_batches(fn: Callable[[jax.Array], Any], tokens: np.ndarray,
               batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
  """`fn` (tokens [batch, seq_len] -> a pytree of arrays [batch, ...], e.g. a
  jitted function) over tokens [n, seq_len] in batches of at most
  `batch_size` rows, each padded with all-padding rows to a power of two (a
  few compiled shapes); the pytree of numpy arrays [n, ...]."""
  tokens = np.asarray(tokens, np.int32)
  if not len(tokens):
    shapes = jax.eval_shape(fn, jax.ShapeDtypeStruct((1,) + tokens.shape[1:],
                                                     jnp.int32))
    return jax.tree.map(lambda s: np.zeros((0,) + s.shape[1:], s.dtype),
                        shapes)
  outs = []
  for start in range(0, len(tokens), batch_size):
    batch = tokens[start:start + batch_size]
    rows = len(batch)
    pad = padded_rows(rows, batch_size) - rows
    if pad:
      batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:],
                                              np.int32)])
    outs.append(jax.tree.map(lambda x: np.asarray(x)[:rows],
                             fn(jnp.asarray(batch))))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


class Scorer:
  """Logits and P(positive) of padded token ids, in batches of at most
  `batch_size` rows (`in_batches`); raises NonFiniteScoreError rather than
  return a non-finite score, unless told `check_finite=False`."""

  def __init__(self, model, params: Any,
               batch_size: int = DEFAULT_BATCH_SIZE):
    self.model, self.params, self.batch_size = model, params, batch_size
    self._apply = jax.jit(lambda p, t: scores(model, p, t))

  def scores(self, tokens: np.ndarray, check_finite: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """tokens [n, seq_len] int32 -> (logits [n], P(positive) [n]), numpy
    float32."""
    z, p = in_batches(lambda t: self._apply(self.params, t), tokens,
                      self.batch_size)
    if check_finite:
      require_finite(z)
    return z, p

  def logits(self, tokens: np.ndarray, check_finite: bool = True
             ) -> np.ndarray:
    """tokens [n, seq_len] int32 -> logits [n] float32 (numpy)."""
    return self.scores(tokens, check_finite)[0]

  def __call__(self, tokens: np.ndarray, check_finite: bool = True
               ) -> np.ndarray:
    """tokens [n, seq_len] int32 -> P(positive) [n] float32 (numpy)."""
    return self.scores(tokens, check_finite)[1]

  def batches(self, token_batches: Iterable[np.ndarray]
              ) -> Iterator[np.ndarray]:
    """P(positive) per batch of a stream of token batches (each at most
    `batch_size` rows): memory stays that of one batch."""
    for tokens in token_batches:
      yield self(tokens)
