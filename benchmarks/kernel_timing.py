"""Microseconds per time step of the Mosaic GPU recurrence kernels alone
(`flax_sentiment/model/pallas_recurrence.py`), forward (storing residuals, and
without: inference) and backward, with and without the TMA prefetch of each
step's inputs; batch 32, hidden 128, as the notebook configs. Needs a Hopper GPU; run from the
repository root:

  python benchmarks/kernel_timing.py [--cells lstm,rnn] [--lengths 512,1024]

Prints one JSON line per (cell, length, prefetch, masked).
"""
import argparse
import dataclasses
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp

from flax_sentiment.model import pallas_recurrence as pr

BATCH, HIDDEN = 32, 128


def seconds_per_call(fn, *args, repeats: int = 20) -> float:
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(repeats):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / repeats)
  return best


def measure(cell: str, length: int, prefetch: bool, masked: bool,
            interpret=None) -> dict:
  plan = dataclasses.replace(
      pr.plan_for(cell, HIDDEN, BATCH, length, masked), prefetch=prefetch)
  gates = plan.gates
  keys = jax.random.split(jax.random.key(0), 4)
  x_t = jax.random.normal(keys[0], (length, gates, plan.batch))
  w_h_t = (0.05 * jax.random.normal(keys[1], (gates, HIDDEN))).astype(
      jnp.bfloat16)
  bias_n = (jnp.zeros((HIDDEN, plan.batch)) if cell == "gru" else None)
  mask = (jnp.ones((length, HIDDEN, plan.batch)) if masked else None)
  forward = jax.jit(lambda x, w: pr.forward(plan, x, w, bias_n, mask,
                                            save=True, interpret=interpret))
  finals, states, residuals = forward(x_t, w_h_t)
  d_final = tuple(jnp.ones_like(f) for f in finals)
  backward = jax.jit(lambda w, r: pr.backward(plan, w, r, mask, d_final,
                                              None, interpret=interpret))
  inference = jax.jit(lambda x, w: pr.forward(
      plan, x, w, bias_n, mask, save=False, interpret=interpret))
  t_forward = seconds_per_call(forward, x_t, w_h_t)
  t_inference = seconds_per_call(inference, x_t, w_h_t)
  t_backward = seconds_per_call(backward, w_h_t, residuals)
  return {"cell": cell, "length": length, "prefetch": prefetch,
          "masked": masked,
          "forward_us_per_step": round(t_forward / length * 1e6, 3),
          "forward_no_residuals_us_per_step": round(
              t_inference / length * 1e6, 3),
          "backward_us_per_step": round(t_backward / length * 1e6, 3),
          "device": jax.devices()[0].device_kind, "jax": jax.__version__}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cells", default="lstm,rnn")
  parser.add_argument("--lengths", default="512,1024")
  parser.add_argument("--interpret", action="store_true",
                      help="in jax's Mosaic GPU interpreter (a CPU smoke "
                           "test; the times mean nothing)")
  args = parser.parse_args()
  interpret = None
  if args.interpret:
    from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top
    interpret = plgpu.InterpretGPUParams()
  for cell in args.cells.split(","):
    for length in map(int, args.lengths.split(",")):
      for masked in (False, True):
        for prefetch in (False, True):
          print(json.dumps(measure(cell, length, prefetch, masked,
                                         interpret)),
                flush=True)


if __name__ == "__main__":
  main()
