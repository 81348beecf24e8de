"""What the Pallas kernels' bf16 recurrent matmuls cost in accuracy, on a
trained model: logits of real test reviews and gradients of a train batch,
implementation="pallas" against the float32 XLA loop ("hoisted").

Without a Hopper GPU the kernels run in jax's Mosaic GPU interpreter
(jax >= 0.11, slow: keep --examples small).

  python benchmarks/pallas_precision.py --workdir runs/lstm64 --examples 64
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from flax_sentiment import api  # pylint: disable=g-import-not-at-top
from flax_sentiment.model import classifier, pallas_recurrence
from flax_sentiment.usage import trained


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--examples", type=int, default=64)
  args = parser.parse_args()
  config, _, state, _ = trained.load_trained_state(args.workdir)
  imdb = api.load_data(config, say=lambda _: None)
  n = args.examples
  test_tokens = jnp.asarray(imdb.test.tokens[:n])
  train_tokens = jnp.asarray(imdb.train.tokens[:n])
  train_labels = jnp.asarray(imdb.train.labels[:n], jnp.float32)

  def model(implementation):
    config.implementation = implementation
    return classifier.model_from_config(config)

  def loss(params, implementation):
    logits = model(implementation).apply({"params": params}, train_tokens)
    return jnp.mean(jnp.maximum(logits, 0) - logits * train_labels
                    + jnp.log1p(jnp.exp(-jnp.abs(logits))))

  def measure(implementation):
    logits = model(implementation).apply({"params": state.params},
                                         test_tokens)
    grads = jax.grad(loss)(state.params, implementation)
    return np.asarray(logits), grads

  with jax.default_matmul_precision("highest"):
    want_logits, want_grads = measure("hoisted")
    native = pallas_recurrence.unavailable_reason() is None
    if native:
      logits, grads = measure("pallas")
    else:
      from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top
      with pallas_recurrence.interpreted(plgpu.InterpretGPUParams()):
        logits, grads = measure("pallas")
  relative = jax.tree.map(
      lambda a, b: float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)),
      grads, want_grads)
  print(json.dumps({
      "workdir": args.workdir, "cell": config.cell, "seq_len": config.seq_len,
      "examples": n, "kernels": "native" if native else "interpreter",
      "logit_max_abs_diff": float(np.abs(logits - want_logits).max()),
      "logit_mean_abs_diff": float(np.abs(logits - want_logits).mean()),
      "logit_scale_mean_abs": float(np.abs(want_logits).mean()),
      "same_prediction": int(((logits > 0) == (want_logits > 0)).sum()),
      "grad_relative_error_max": max(jax.tree.leaves(relative)),
      "grad_relative_error": jax.tree.map(lambda r: round(r, 5), relative),
      "jax": jax.__version__}))


if __name__ == "__main__":
  main()
