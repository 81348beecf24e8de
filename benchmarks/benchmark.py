"""Training throughput: flax-sentiment vs. Keras and PyTorch, same shapes.

  python benchmarks/benchmark.py                       # six notebook configs
  python benchmarks/benchmark.py --configs lstm512 --frameworks flax,torch

For each config: compile seconds, steady-state examples/s and the estimated
seconds per 25,000-example epoch, per framework (one after another, never in
parallel, each in a process of its own: a crash ends only its own row, which
says so), the ratios to flax-sentiment, and the FLOP lower bound from a
measured float32 matmul peak. Every JSON line names the machine, its CPU
flags that matter (AVX-512, bf16, AMX) and the versions. JSON lines go to
--out (and stdout), a table to stdout. Keras needs `tensorflow`, PyTorch
`torch` (`pip install -e ".[bench]"`); missing ones are skipped with a note.
"""

import argparse
import functools
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Sets this package's default XLA CPU flags in XLA_FLAGS (flax_sentiment/
# xla_cpu.py) before jax starts, so every row and the recorded flags see them.
import flax_sentiment  # pylint: disable=g-import-not-at-top,unused-import

EPOCH_EXAMPLES = 25_000
NUM_WORDS, EMBED, HIDDEN, BATCH = 10_000, 256, 128, 32
CONFIGS = {f"{cell}{n}": (cell, n) for cell in ("rnn", "lstm")
           for n in (64, 512, 1024)}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def random_batches(seq_len: int, num_batches: int, seed: int = 0):
  """IMDB-like batches: review lengths log-normal with the train split's
  median (174 words) and mean (234), pre-padded with 0 / pre-truncated to
  seq_len like the notebook; word ids 2..9,999 drawn from Zipf's law
  (frequency ~ 1 / rank), which gives a few more distinct words per batch
  than real IMDB batches (mean 881 vs 761 at seq_len 64, 2,174 vs 1,755 at
  512). Padding matters for peers: long runs of padding drive PyTorch's
  gradients subnormal."""
  rng = np.random.default_rng(seed)
  lengths = np.clip(rng.lognormal(np.log(174), 0.77, (num_batches, BATCH)),
                    10, seq_len).astype(int)
  ranks = np.arange(1, NUM_WORDS - 1)
  tokens = 2 + rng.choice(NUM_WORDS - 2, (num_batches, BATCH, seq_len),
                          p=1 / ranks / np.sum(1 / ranks)).astype(np.int32)
  tokens[np.arange(seq_len) < seq_len - lengths[..., None]] = 0
  labels = rng.integers(0, 2, (num_batches, BATCH)).astype(np.float32)
  return tokens, labels


def train_flops_per_example(cell: str, seq_len: int) -> float:
  """Forward matmul FLOPs x 3 (forward + backward)."""
  per_step = 2 * GATES[cell] * HIDDEN * (EMBED + HIDDEN)
  return 3 * seq_len * per_step


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
  return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


# ------------------------------------------------------------------ flax


def bench_flax(cell, seq_len, steps, **overrides):
  import jax
  import jax.numpy as jnp
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import default
  from flax_sentiment.data import batching
  from flax_sentiment.model import classifier
  from flax_sentiment.training import train_steps
  config = default.get_config()
  config.update(dict(cell=cell, seq_len=seq_len), **overrides)
  if config.implementation == "pallas":
    from flax_sentiment.model import pallas_recurrence
    if reason := pallas_recurrence.unavailable_reason():
      raise RuntimeError(f"implementation='pallas' {reason}")
  model = classifier.model_from_config(config)  # "auto": what a run would pick
  state = jax.jit(functools.partial(train_steps.create_train_state, model, config))(
      jax.random.key(0))
  chunk_steps = config.steps_per_call
  tokens, labels = random_batches(seq_len, chunk_steps)
  chunk = {"tokens": jnp.asarray(tokens), "labels": jnp.asarray(labels),
           "weights": jnp.ones(labels.shape, jnp.float32)}
  distinct = batching.distinct_ids(tokens, NUM_WORDS)
  if config.project_distinct_words and distinct is not None:
    chunk["distinct_ids"] = jnp.asarray(distinct)
  run = jax.jit(train_steps.train_chunk, donate_argnums=0)
  start = time.perf_counter()
  compiled = run.lower(state, chunk).compile()
  compile_s = time.perf_counter() - start
  state, m = compiled(state, chunk)  # warm-up
  jax.block_until_ready(m)
  calls = max(1, steps // chunk_steps)
  start = time.perf_counter()
  for _ in range(calls):
    state, m = compiled(state, chunk)
  jax.block_until_ready(m)
  seconds = time.perf_counter() - start
  return compile_s, calls * chunk_steps * BATCH / seconds, model.implementation


# ------------------------------------------------------------------ keras


def bench_keras(cell, seq_len, steps, warmup=5):
  """`model.fit` as the notebook runs it; steady state from per-batch times
  (one fit call, the first `warmup` batches excluded)."""
  os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  import keras
  layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[cell]
  model = keras.Sequential([keras.Input((seq_len,)),
                            keras.layers.Embedding(NUM_WORDS, EMBED),
                            layer(HIDDEN), keras.layers.Dense(1, "sigmoid")])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss="binary_crossentropy", metrics=["accuracy"])
  tokens, labels = random_batches(seq_len, steps + warmup)
  times = []
  timer = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda batch, logs=None: times.append(
          time.perf_counter()))
  start = time.perf_counter()
  model.fit(tokens.reshape(-1, seq_len), labels.reshape(-1), batch_size=BATCH,
            epochs=1, verbose=0, shuffle=False, callbacks=[timer])
  compile_s = times[0] - start
  return compile_s, steps * BATCH / (times[-1] - times[warmup - 1])


# ------------------------------------------------------------------ torch


def bench_torch(cell, seq_len, steps, flush_denormal):
  """Eager PyTorch on the GPU if there is one (cuDNN RNNs), else the CPU."""
  import torch
  torch.set_flush_denormal(flush_denormal)
  torch.manual_seed(0)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]

  class Model(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = torch.nn.Embedding(NUM_WORDS, EMBED)
      self.rnn = rnn(EMBED, HIDDEN, batch_first=True)
      self.dense = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x):
      out, _ = self.rnn(self.embed(x))
      return self.dense(out[:, -1])[:, 0]

  model = Model().to(device)
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  loss_fn = torch.nn.BCEWithLogitsLoss()
  tokens, labels = random_batches(seq_len, steps + 2)
  tokens = torch.from_numpy(tokens).long().to(device)
  labels = torch.from_numpy(labels).to(device)

  def step(i):
    opt.zero_grad()
    loss_fn(model(tokens[i]), labels[i]).backward()
    opt.step()

  def sync():
    if device == "cuda":
      torch.cuda.synchronize()

  threads = torch.get_num_threads()
  start = time.perf_counter()
  step(0); step(1); sync()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(2, steps + 2):
    step(i)
  sync()
  print(f"# torch on {device}, threads: {threads}, "
        f"flush_denormal={flush_denormal}")
  return compile_s, steps * BATCH / (time.perf_counter() - start)


FRAMEWORKS = {
    "flax": bench_flax,
    # The implementations and precisions, for GPU rows (and ablations).
    "flax_unroll1": functools.partial(bench_flax, implementation="hoisted",
                                     unroll=1),
    "flax_unroll4": functools.partial(bench_flax, implementation="hoisted",
                                     unroll=4),
    "flax_unroll16": functools.partial(bench_flax, implementation="hoisted",
                                     unroll=16),
    "flax_stock": functools.partial(bench_flax, implementation="stock"),
    "flax_bf16": functools.partial(bench_flax, dtype="bfloat16"),
    # The Mosaic GPU kernels (Hopper GPUs; flax_sentiment/model/pallas_recurrence.py).
    "flax_pallas": functools.partial(bench_flax, implementation="pallas"),
    "flax_hoisted": functools.partial(bench_flax, implementation="hoisted"),
    # Ablation, not run by default: every token (or the whole vocabulary)
    # projected, as before `project_distinct_words`.
    "flax_all_rows": functools.partial(bench_flax,
                                       project_distinct_words=False),
    "keras": bench_keras,
    "torch_flush": functools.partial(bench_torch, flush_denormal=True),
    "torch": functools.partial(bench_torch, flush_denormal=False),
}
IMPORTS = {"keras": "tensorflow", "torch_flush": "torch", "torch": "torch"}


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
               "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
  """The CPU flags that decide matmul speed (from /proc/cpuinfo)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          present = set(line.split(":", 1)[1].split())
          return [flag for flag in SPEED_FLAGS if flag in present]
  except OSError:
    pass
  return []


def machine_facts() -> dict:
  """What tells numbers from different machines apart, in every JSON line."""
  import importlib.metadata as metadata
  import jax

  def version(package):
    try:
      return metadata.version(package)
    except metadata.PackageNotFoundError:
      return None
  cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
          else os.cpu_count())  # those this process may use (taskset)
  return {"machine": platform.node(), "cpus": cpus,
          "cpu_model": cpu_model(), "cpu_flags": cpu_flags(),
          "platform": jax.default_backend(),
          "device": jax.devices()[0].device_kind,
          "device_count": jax.device_count(),
          "jax": version("jax"), "jaxlib": version("jaxlib"),
          "flax": version("flax"), "optax": version("optax"),
          "torch": version("torch"), "tensorflow": version("tensorflow") or
          version("tensorflow-cpu"), "python": platform.python_version(),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "date": time.strftime("%Y-%m-%d")}


def measure_in_subprocess(name: str, fw: str, steps: int) -> dict:
  """Runs one (config, framework) measurement in a fresh process: a library
  that crashes (seen: PyTorch after TensorFlow in one process) ends only its
  own row. Returns {compile_seconds, examples_per_second} or {failed}."""
  import subprocess  # pylint: disable=g-import-not-at-top
  proc = subprocess.run([sys.executable, __file__, "--one", name, fw,
                         "--steps", str(steps)], capture_output=True,
                        text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode == 0 and lines:
    return json.loads(lines[-1])
  reason = (f"signal {-proc.returncode}" if proc.returncode < 0
            else f"exit code {proc.returncode}")
  tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
  return {"failed": f"{reason}: {tail}".rstrip(": ")}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--frameworks", default="flax,keras,torch_flush,torch",
                      help=f"any of {','.join(FRAMEWORKS)}")
  parser.add_argument("--steps", type=int, default=64,
                      help="timed train steps per config and framework")
  parser.add_argument("--out", default="bench_results/benchmark.jsonl")
  parser.add_argument("--one", nargs=2, metavar=("CONFIG", "FRAMEWORK"),
                      help=argparse.SUPPRESS)  # the child of one row
  args = parser.parse_args()
  unknown = [fw for fw in args.frameworks.split(",") if fw not in FRAMEWORKS]
  unknown += [c for c in args.configs.split(",") if c not in CONFIGS]
  if unknown:
    parser.error(f"unknown config or framework: {', '.join(unknown)} (configs:"
                 f" {', '.join(CONFIGS)}; frameworks: {', '.join(FRAMEWORKS)})")
  if args.one:
    name, fw = args.one
    compile_s, ex_per_s, *implementation = FRAMEWORKS[fw](*CONFIGS[name],
                                                          args.steps)
    row = {"compile_seconds": compile_s, "examples_per_second": ex_per_s}
    if implementation:  # flax rows: what `auto` (or the override) ran
      row["implementation"] = implementation[0]
    print(json.dumps(row), flush=True)
    return

  import importlib.util
  machine = machine_facts()
  peak = matmul_peak_gflops()
  print(f"# {machine}; float32 matmul peak {peak:.0f} GFLOP/s (2048^3, jax)")
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  rows = []
  with open(args.out, "a") as out:
    for name in args.configs.split(","):
      cell, seq_len = CONFIGS[name]
      bound = EPOCH_EXAMPLES * train_flops_per_example(cell, seq_len) / (peak * 1e9)
      for fw in args.frameworks.split(","):
        needed = IMPORTS.get(fw)
        if needed and importlib.util.find_spec(needed) is None:
          print(f"# {fw}: skipped, {needed} is not installed")
          continue
        measured = measure_in_subprocess(name, fw, args.steps)
        row = dict(config=name, framework=fw, **measured,
                   flop_bound_epoch_seconds=bound, steps=args.steps,
                   matmul_peak_gflops=peak, **machine)
        if "examples_per_second" in measured:
          row["epoch_seconds"] = EPOCH_EXAMPLES / measured["examples_per_second"]
        rows.append(row)
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(json.dumps(row), flush=True)
  print(f"\n{'config':<9}{'framework':<13}{'compile s':>10}{'ex/s':>9}"
        f"{'s/epoch':>9}{'bound s':>9}{'flax is x':>10}")
  flax = {r["config"]: r.get("examples_per_second", float("nan"))
          for r in rows if r["framework"] == "flax"}
  for r in rows:
    if "failed" in r:
      print(f"{r['config']:<9}{r['framework']:<13}  failed: {r['failed']}")
      continue
    ratio = flax.get(r["config"], float("nan")) / r["examples_per_second"]
    print(f"{r['config']:<9}{r['framework']:<13}{r['compile_seconds']:>10.1f}"
          f"{r['examples_per_second']:>9.0f}{r['epoch_seconds']:>9.1f}"
          f"{r['flop_bound_epoch_seconds']:>9.1f}{ratio:>10.2f}")


if __name__ == "__main__":
  main()
