"""What every network here shares around its body: word dropout, pooling
over real positions, the dense head (one logit for two classes, K for
more) and the Keras-style summary table."""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def word_keep(rng: jax.Array, rate: float, num_words: int) -> jax.Array:
  """[num_words] scale per word: 0 dropped (probability `rate`), else
  1 / (1 - rate); the same in every position of a batch."""
  kept = jax.random.bernoulli(rng, 1.0 - rate, (num_words,))
  return kept.astype(jnp.float32) / (1.0 - rate)


def max_pool(states: jax.Array, mask: jax.Array) -> jax.Array:
  """states [seq_len, batch, features], mask [seq_len, batch] (nonzero:
  real) -> [batch, features]: the maximum over the real steps (0 for a
  review without any)."""
  real = mask[..., None] > 0
  top = jnp.max(jnp.where(real, states, -jnp.inf), axis=0)
  return jnp.where(jnp.sum(real, axis=0) > 0, top, 0.0)


def dense(features: jax.Array, num_classes: int,
          dtype=jnp.float32) -> jax.Array:
  """The head, called inside a compact module: features [batch, n] ->
  one logit [batch] (two classes, the notebook's Dense(1)) or K logits
  [batch, K] (softmax), float32."""
  if num_classes > 2:
    return nn.Dense(num_classes, dtype=dtype, name="dense")(
        features).astype(jnp.float32)
  logits = nn.Dense(1, dtype=dtype, name="dense")(features)
  return logits[:, 0].astype(jnp.float32)


def count_params(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def summary_table(name: str, rows: Sequence[tuple[str, str, int]],
                  total: int, fixed: int = 0,
                  notes: Sequence[str] = ()) -> str:
  """Keras's summary layout: rows of (layer, output shape, parameters);
  `fixed` of the `total` parameters are not trained."""
  rule = "=" * 65
  lines = [f'Model: "{name}"', rule,
           f"{'Layer (type)':<29}{'Output Shape':<26}Param #", rule]
  lines += [f"{layer:<29}{shape:<26}{count:,}" for layer, shape, count in rows]
  lines += list(notes)
  lines += [rule, f"Total params: {total:,}",
            f"Trainable params: {total - fixed:,}",
            f"Non-trainable params: {fixed:,}"]
  return "\n".join(lines)
