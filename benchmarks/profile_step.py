"""Time per part of one LSTM-64 / RNN-64 train step (batch 32): forward,
forward + backward, the Adam update alone, the whole step, the embedding
gather. Best of 5 after a warm-up; run from the repository root:

  python benchmarks/profile_step.py
"""
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import lstm, rnn
from flax_sentiment.data import batching
from flax_sentiment.model import classifier
from flax_sentiment.training import train_steps

def timeit(fn, *args, reps=5):
    out = fn(*args); jax.block_until_ready(out)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); out = fn(*args); jax.block_until_ready(out); ts.append(time.perf_counter() - t)
    return min(ts)

for name, mod in (("lstm64", lstm), ("rnn64", rnn)):
    config = mod.get_config()
    model = classifier.model_from_config(config)
    state = train_steps.create_train_state(model, config, jax.random.key(0))
    rng = np.random.default_rng(0)
    B, T = 32, 64
    tokens = rng.integers(2, 10000, (B, T)).astype(np.int32)
    ids = batching.distinct_ids(tokens[None], 10000)
    ids = None if ids is None else jnp.asarray(ids[0])
    batch = {"tokens": jnp.asarray(tokens), "labels": jnp.asarray(rng.integers(0, 2, B).astype(np.float32)),
             "weights": jnp.ones(B, jnp.float32)}
    if ids is not None: batch["distinct_ids"] = ids
    params = state.params
    fwd = jax.jit(lambda p, b: model.apply({"params": p}, b["tokens"], b.get("distinct_ids")))
    def loss(p, b):
        return train_steps._metric_sums(model.apply({"params": p}, b["tokens"], b.get("distinct_ids")), b)[0]
    grad = jax.jit(jax.grad(loss))
    step = jax.jit(train_steps.train_step)
    grads = grad(params, batch)
    tx = optax.adam(1e-3, eps=1e-7)
    opt = tx.init(params)
    def adam(g, o, p):
        u, o = tx.update(g, o, p); return optax.apply_updates(p, u), o
    adam_j = jax.jit(adam)
    table = params["embedding"]["embedding"]
    gather = jax.jit(lambda t, x: jnp.take(t, x.T, axis=0))
    t_fwd = timeit(fwd, params, batch)
    t_grad = timeit(grad, params, batch)
    t_step = timeit(step, state, batch)
    t_adam = timeit(adam_j, grads, opt, params)
    t_gather = timeit(gather, table, batch["tokens"])
    print(f"{name}: forward {t_fwd*1e3:.2f} ms, forward+backward {t_grad*1e3:.2f} ms, "
          f"Adam update alone {t_adam*1e3:.2f} ms, whole train_step {t_step*1e3:.2f} ms, "
          f"embedding gather [64,32,256] {t_gather*1e3:.3f} ms (ids projected: {None if ids is None else ids.shape[0]})", flush=True)
