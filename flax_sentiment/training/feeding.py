"""Feeding data to compiled calls: every epoch's plan, one compiled
executable per batch shape, and the compilation cache on disk.

`plan_run` plans the whole run up front (a plan is a function of the seed
and the epoch alone), fixes one distinct-word capacity per batch length for
the run, and builds a `ChunkRunner` per split. A runner turns a
`batching.Chunk` into sharded arrays and calls `train_steps.train_chunk` or
`train_steps.eval_chunk` on them, compiling once per shape.
"""

import dataclasses
import functools
import pathlib
import time
from typing import Callable

import jax
import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import batching, datasets
from flax_sentiment.runtime import parallel
from flax_sentiment.tracking import metrics
from flax_sentiment.training import train_steps


def use_compilation_cache(config) -> pathlib.Path | None:
  """Keeps XLA's compiled executables on disk, in `<cache_dir>/jax` (the
  token cache's directory), so a later run with the same shapes loads them
  instead of compiling (LSTM-512 with buckets: ~12 s of compiles -> ~1 s).
  A directory already set (e.g. JAX_COMPILATION_CACHE_DIR) is kept. Call
  before anything is compiled; returns the directory in use, or None for a
  run of several processes: those compile afresh (with jax 0.12.1 on CPU,
  executables loaded from the cache hung in their first cross-process
  collective; tests/integration/test_parallel.py resumes such a run)."""
  if config.num_processes is not None and config.num_processes > 1:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  if jax.config.jax_compilation_cache_dir is None:
    directory = pathlib.Path(config.cache_dir or datasets.default_cache_dir())
    jax.config.update("jax_compilation_cache_dir", str(directory / "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return pathlib.Path(jax.config.jax_compilation_cache_dir)


class ChunkRunner:
  """Feeds chunks of one split to compiled calls, one executable per shape:
  batch length and, with distinct-word projection, that length's id
  capacity, fixed for the whole run (`batching.id_capacities`)."""

  def __init__(self, fn, split: datasets.Split, batch_size: int, mesh,
               donate: bool, capacities: dict[int, int | None],
               num_words: int, on_compile=lambda key: None,
               unlabeled: datasets.Split | None = None):
    self.split, self.batch_size = split, batch_size
    self.unlabeled = unlabeled  # the reviews `Chunk.unlabeled` points to
    self.capacities, self.num_words = capacities, num_words
    self.sharding = parallel.batch_sharded(mesh)
    self.replicated = replicated = parallel.replicated(mesh)
    out = (replicated, replicated) if donate else replicated
    self._jitted = jax.jit(fn, out_shardings=out,
                           donate_argnums=(0,) if donate else ())
    self._compiled = {}
    self._on_compile = on_compile
    self.compile_seconds = 0.0

  def arrays(self, chunk: batching.Chunk) -> train_steps.Batch:
    """The chunk as global arrays: tokens [steps, batch, length] int32,
    labels and weights [steps, batch] f32, maybe distinct_ids [steps, n];
    for a paired chunk also unlabeled_tokens [steps, batch, length] and
    unlabeled_weights [steps, batch] (ones), distinct_ids covering both."""
    steps = chunk.indices.shape[0]
    rows = parallel.local_batch_rows(self.sharding, (steps, self.batch_size))
    # Every process holds all the tokens; it feeds its own rows.
    tokens = self.split.tokens[chunk.indices][..., :chunk.length]
    local = {"tokens": tokens[:, rows],
             "labels": self.split.labels[chunk.indices[:, rows]].astype(
                 np.float32),
             "weights": chunk.weights[:, rows]}
    shapes = {"tokens": tokens.shape, "labels": (steps, self.batch_size),
              "weights": (steps, self.batch_size)}
    paired = self.unlabeled is not None and chunk.unlabeled is not None
    if paired:
      unlabeled = self.unlabeled.tokens[chunk.unlabeled][..., :chunk.length]
      local["unlabeled_tokens"] = unlabeled[:, rows]
      local["unlabeled_weights"] = np.ones_like(chunk.weights[:, rows])
      shapes["unlabeled_tokens"] = unlabeled.shape
      shapes["unlabeled_weights"] = shapes["weights"]
    arrays = {k: parallel.to_global(v, self.sharding, shapes[k])
              for k, v in local.items()}
    capacity = self.capacities.get(chunk.length)
    if capacity is not None:
      # Of the whole global batch, the same on every process.
      distinct = batching.distinct_ids(
          batching.chunk_tokens(chunk, self.split.tokens,
                                self.unlabeled.tokens if paired else None),
          self.num_words, capacity)
      arrays["distinct_ids"] = parallel.to_global(distinct, self.replicated,
                                                  distinct.shape)
    return arrays

  def __call__(self, state, chunk: batching.Chunk):
    batch = self.arrays(chunk)
    key = tuple((k, v.shape) for k, v in sorted(batch.items()))
    if key not in self._compiled:
      self._on_compile(dict(key))
      start = time.perf_counter()
      self._compiled[key] = self._jitted.lower(state, batch).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._compiled[key](state, batch)


def host_sums(sums: metrics.Sums) -> dict[str, np.ndarray]:
  """Per-step metric sums of a chunk, fetched to the host (float64)."""
  return {k: parallel.fetch(v).astype(np.float64) for k, v in sums.items()}


@dataclasses.dataclass
class EvalSet:
  """A split evaluated after every epoch (validation, test).

  `runner` runs `train_steps.eval_chunk`, so one pass gives the metric sums and
  every review's logit.
  """
  name: str
  runner: ChunkRunner
  chunks: list[batching.Chunk]

  def evaluate(self, state, details: bool = False) -> dict:
    """{name}_loss and {name}_accuracy over every review of the split; with
    `details` also the metrics of `metrics.split_rates` (AUC, F1,
    precision, recall, confusion counts and, if the split has
    `true_lengths`, accuracy by review length) from every review's logit
    (filler rows left out)."""
    split = self.runner.split
    totals = metrics.empty_totals()
    logits = None  # [n], or [n, K] for K classes
    for chunk in self.chunks:
      sums, chunk_logits = self.runner(state, chunk)
      totals = metrics.add(totals, host_sums(sums))
      if details:
        real = chunk.weights > 0
        fetched = parallel.fetch(chunk_logits)
        if logits is None:
          logits = np.zeros((len(split),) + fetched.shape[2:], np.float32)
        logits[chunk.indices[real]] = fetched[real]
    evaluated = metrics.rates(totals, self.name)
    if details:
      evaluated.update(metrics.split_rates(
          logits, split.labels, self.name,
          lengths=getattr(split, "true_lengths", None)))
    return evaluated


@dataclasses.dataclass
class Feeds:
  """A run's data plan and the runners that execute it."""
  plans: list[list[batching.Chunk]]   # per epoch
  train: ChunkRunner
  eval_sets: list[EvalSet]
  learning_rate: float   # the config's, named when a loss is not finite

  def total_steps(self) -> int:
    """Train steps the planned epochs run (all-filler steps skipped)."""
    return sum(int(chunk.weights.any(axis=1).sum())
               for plan in self.plans for chunk in plan)


def compile_line(key: dict) -> str:
  return (f"Compiling for batches of {key['tokens'][1:]}"
          + (f" with {key['distinct_ids'][-1]:,} distinct-word rows"
             if "distinct_ids" in key else "") + " ...")


def plan_run(config, imdb: datasets.ImdbData,
             say: Callable[[str], None]) -> Feeds:
  """Every epoch's train plan, the evaluation plans, and their runners."""
  mesh = parallel.data_mesh()
  boundaries = batching.bucket_boundaries(
      imdb.train.lengths, config.length_buckets, config.seq_len)
  if len(boundaries) > 1:
    say(f"Length buckets: {boundaries}")
  sort_by = (lambda split: split.lengths if config.length_buckets else None)
  groups = batching.group_by_bucket(imdb.train.lengths, boundaries)
  plans = [batching.plan_epoch(
      groups, config.batch_size, config.steps_per_call,
      batching.epoch_rng(config.seed, epoch), lengths=sort_by(imdb.train))
           for epoch in range(config.num_epochs)]
  unlabeled = imdb.unlabeled if config.virtual_adversarial_epsilon else None
  if unlabeled is not None:
    plans = [batching.pair_unlabeled(
        plan, imdb.train.lengths, unlabeled.lengths, boundaries,
        batching.unlabeled_rng(config.seed, epoch))
             for epoch, plan in enumerate(plans)]
  # Only the recurrent model's hoisted/pallas paths read distinct_ids.
  project = (config.project_distinct_words and config.model == fields.RECURRENT
             and config.implementation != "stock")
  capacities = functools.partial(batching.id_capacities,
                                 num_words=config.num_words, enabled=project)
  on_compile = lambda key: say(compile_line(key))
  train_runner = ChunkRunner(
      train_steps.train_chunk, imdb.train, config.batch_size, mesh, True,
      capacities(imdb.train.tokens, plans, unlabeled_tokens=(
          None if unlabeled is None else unlabeled.tokens)),
      config.num_words, on_compile, unlabeled=unlabeled)
  # Evaluation batches round up to a multiple of the device count; the rows
  # added are weight-0 filler, so the metrics do not change.
  devices = jax.device_count()
  eval_batch = -(-config.eval_batch_size // devices) * devices
  eval_sets = []
  for name, split in (("validation", imdb.validation), ("test", imdb.test)):
    if split is None:
      continue
    chunks = batching.plan_epoch(
        batching.group_by_bucket(split.lengths, boundaries), eval_batch,
        config.steps_per_call, lengths=sort_by(split))
    runner = ChunkRunner(train_steps.eval_chunk, split, eval_batch, mesh, False,
                         capacities(split.tokens, [chunks]),
                         config.num_words, on_compile)
    eval_sets.append(EvalSet(name, runner, chunks))
  return Feeds(plans, train_runner, eval_sets, config.learning_rate)
