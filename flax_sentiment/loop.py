"""The epoch loop and its bookkeeping: `train_and_evaluate(config, workdir)`.

Owns: the order of a run (check → load data → restore → epochs → select),
feeding chunks to compiled calls (`ChunkRunner`), where training stands
(`Progress`, saved in every checkpoint), the checkpoint cadence, SIGTERM/SIGINT
handling, evaluation on the validation and test splits, early stopping on
validation, and what the user sees (`monitor.py`). The pure steps it compiles
are in `train.py`; the workdir's files in `workdir.py`.
"""

import dataclasses
import functools
import json
import pathlib
import signal
import time

import jax
import numpy as np

from flax_sentiment import (batching, checkpoints, data, models, monitor,
                            parallel, pretrain, train)
from flax_sentiment import workdir as run_dir
from flax_sentiment.config_checks import check_batch_divides, validate_config
from flax_sentiment.errors import UserError

METRIC_KEYS = train.METRIC_KEYS


class NonFiniteLossError(UserError):
  """The loss became NaN or infinite."""


class Interrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint was written before raising."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum


def use_compilation_cache(config) -> pathlib.Path:
  """Keeps XLA's compiled executables on disk, in `<cache_dir>/jax` (the
  token cache's directory), so a later run with the same shapes loads them
  instead of compiling (LSTM-512 with buckets: ~12 s of compiles -> ~1 s).
  A directory already set (e.g. JAX_COMPILATION_CACHE_DIR) is kept. Call
  before anything is compiled; returns the directory in use."""
  if jax.config.jax_compilation_cache_dir is None:
    directory = pathlib.Path(config.cache_dir or data.default_cache_dir())
    jax.config.update("jax_compilation_cache_dir", str(directory / "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return pathlib.Path(jax.config.jax_compilation_cache_dir)


@dataclasses.dataclass
class Progress:
  """Where training stands; saved in every checkpoint's meta."""
  epoch: int = 0                 # current (0-based) epoch
  chunk: int = 0                 # next chunk of the epoch's plan to run
  step: int = 0                  # train steps done, all epochs
  sums: dict = dataclasses.field(
      default_factory=lambda: {"loss": 0.0, "correct": 0.0, "count": 0.0,
                               "seconds": 0.0, "compile_seconds": 0.0})
  history: list = dataclasses.field(default_factory=list)  # metrics.jsonl
  best_epoch: int = 0            # 1-based epoch best on validation (0: none)
  stopped_early: bool = False

  def to_meta(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: dict) -> "Progress":
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in meta.items() if k in fields})

  def next_epoch(self, record: dict) -> "Progress":
    return Progress(epoch=self.epoch + 1, step=self.step,
                    history=self.history + [record],
                    best_epoch=self.best_epoch,
                    stopped_early=self.stopped_early)


class StopSignals:
  """Turns SIGTERM/SIGINT into a flag checked between compiled calls."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, _frame):
    self.signum = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


class ChunkRunner:
  """Feeds chunks of one split to compiled calls, one executable per shape:
  batch length and, with distinct-word projection, that length's id
  capacity, fixed for the whole run (`batching.id_capacities`)."""

  def __init__(self, fn, split: data.Split, batch_size: int, mesh,
               donate: bool, capacities: dict[int, int | None],
               num_words: int, on_compile=lambda key: None):
    self.split, self.batch_size = split, batch_size
    self.capacities, self.num_words = capacities, num_words
    self.sharding = parallel.batch_sharded(mesh)
    self.replicated = replicated = parallel.replicated(mesh)
    out = (replicated, replicated) if donate else replicated
    self._jitted = jax.jit(fn, out_shardings=out,
                           donate_argnums=(0,) if donate else ())
    self._compiled = {}
    self._on_compile = on_compile
    self.compile_seconds = 0.0

  def arrays(self, chunk: batching.Chunk) -> train.Batch:
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
    arrays = {k: parallel.to_global(v, self.sharding, shapes[k])
              for k, v in local.items()}
    capacity = self.capacities.get(chunk.length)
    if capacity is not None:
      # Of the whole global batch, the same on every process.
      distinct = batching.distinct_ids(tokens, self.num_words, capacity)
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


def _host_sums(metrics: train.Metrics) -> dict[str, np.ndarray]:
  return {k: parallel.fetch(v).astype(np.float64) for k, v in metrics.items()}


@dataclasses.dataclass
class EvalSet:
  """A split evaluated after every epoch (validation, test)."""
  name: str
  runner: ChunkRunner
  chunks: list[batching.Chunk]

  def evaluate(self, state) -> dict[str, float]:
    """Loss and accuracy over every review of the split."""
    sums = {k: 0.0 for k in METRIC_KEYS}
    for chunk in self.chunks:
      for k, v in _host_sums(self.runner(state, chunk)).items():
        sums[k] += float(v.sum())
    return {f"{self.name}_loss": sums["loss"] / sums["count"],
            f"{self.name}_accuracy": sums["correct"] / sums["count"]}


def epoch_record(epoch: int, progress: Progress, evaluated: dict[str, float],
                 eval_seconds: float) -> dict:
  """One line of metrics.jsonl."""
  sums, seconds = progress.sums, progress.sums["seconds"]
  return {
      "epoch": epoch + 1,
      "train_loss": sums["loss"] / sums["count"],
      "train_accuracy": sums["correct"] / sums["count"],
      **evaluated,
      "epoch_seconds": seconds,
      "train_examples_per_second":
          sums["count"] / max(seconds - sums["compile_seconds"], 1e-9),
      "compile_seconds": sums["compile_seconds"],
      "eval_seconds": eval_seconds,
      "steps": progress.step,
  }


def epoch_line(record: dict, num_epochs: int) -> str:
  parts = [f"epoch {record['epoch']}/{num_epochs}"]
  for split in ("train", "validation", "test"):
    if f"{split}_loss" in record:
      short = {"validation": "val"}.get(split, split)
      parts.append(f"{short}_loss {record[f'{split}_loss']:.4f}  "
                   f"{short}_acc {record[f'{split}_accuracy']:.4f}")
  parts.append(f"{record['epoch_seconds']:.1f}s (compile "
               f"{record['compile_seconds']:.1f}s)  "
               f"{record['train_examples_per_second']:.0f} ex/s")
  return "  ".join(parts)


def should_stop_early(epochs_done: int, best_epoch: int,
                      patience: int) -> bool:
  """True once `patience` epochs have passed without a new best validation
  accuracy (patience 0: never)."""
  return bool(patience) and epochs_done - best_epoch >= patience


def selected_epoch(history: list[dict], best_epoch: int) -> tuple[int, str]:
  """The epoch whose test metrics a run reports, and how it was chosen:
  the best on validation if there is a validation split, else the last."""
  if best_epoch:
    return best_epoch, "best validation accuracy"
  return len(history), "last epoch (no validation split)"


class Loop:
  """One run's training loop over data, state and workdir prepared by
  `train_and_evaluate`."""

  def __init__(self, config, workdir: pathlib.Path, imdb: data.ImdbData,
               state, progress: Progress, ckpts: checkpoints.Checkpoints,
               console: monitor.Console):
    self.config, self.workdir, self.imdb = config, workdir, imdb
    self.state, self.progress, self.ckpts = state, progress, ckpts
    self.console = console
    self.primary = jax.process_index() == 0
    self.last_saved = progress.step if progress.step or progress.epoch else None
    self.best = (checkpoints.Checkpoints(workdir / "best_checkpoint", 1)
                 if imdb.validation is not None else None)
    self.tensorboard = monitor.TensorBoard(workdir / "tensorboard")
    self._plan_data()

  def _plan_data(self) -> None:
    config, imdb = self.config, self.imdb
    mesh = parallel.data_mesh()
    boundaries = batching.bucket_boundaries(
        imdb.train.lengths, config.length_buckets, config.seq_len)
    if len(boundaries) > 1:
      self.console.say(f"Length buckets: {boundaries}")
    groups = batching.group_by_bucket(imdb.train.lengths, boundaries)
    sort_by = (lambda split: split.lengths if config.length_buckets else None)
    # Every epoch's plan, a function of (seed, epoch) alone: known up front.
    self.plans = [batching.plan_epoch(
        groups, config.batch_size, config.steps_per_call,
        batching.epoch_rng(config.seed, epoch), lengths=sort_by(imdb.train))
                  for epoch in range(config.num_epochs)]
    project = config.project_distinct_words and config.implementation == "hoisted"
    capacities = functools.partial(batching.id_capacities,
                                   num_words=config.num_words, enabled=project)
    on_compile = lambda key: self.console.say(
        f"Compiling for batches of {key['tokens'][1:]}" +
        (f" with {key['distinct_ids'][-1]:,} distinct-word rows"
         if "distinct_ids" in key else "") + " ...")
    self.run_train = ChunkRunner(
        train.train_chunk, imdb.train, config.batch_size, mesh, True,
        capacities(imdb.train.tokens, self.plans), config.num_words,
        on_compile)
    # Evaluation batches round up to a multiple of the device count; the
    # rows added are weight-0 filler, so the metrics do not change.
    devices = jax.device_count()
    eval_batch = -(-config.eval_batch_size // devices) * devices
    self.eval_sets = []
    for name, split in (("validation", imdb.validation), ("test", imdb.test)):
      if split is None:
        continue
      chunks = batching.plan_epoch(
          batching.group_by_bucket(split.lengths, boundaries), eval_batch,
          config.steps_per_call, lengths=sort_by(split))
      runner = ChunkRunner(train.eval_chunk, split, eval_batch, mesh, False,
                           capacities(split.tokens, [chunks]),
                           config.num_words, on_compile)
      self.eval_sets.append(EvalSet(name, runner, chunks))

  def save(self) -> None:
    if self.last_saved != self.progress.step:
      self.ckpts.save(self.progress.step, self.state, self.progress.to_meta())
      self.last_saved = self.progress.step

  def train_epoch(self, epoch: int, stop: StopSignals) -> bool:
    """Runs the rest of `epoch`; False if stopped by a signal mid-epoch."""
    config, progress = self.config, self.progress
    chunks = self.plans[epoch]
    done = int(sum(c.weights.sum() for c in chunks[:progress.chunk]))
    bar = self.console.epoch(epoch, config.num_epochs, len(self.imdb.train),
                             done)
    start = time.perf_counter()
    try:
      while progress.chunk < len(chunks):
        chunk = chunks[progress.chunk]
        compiled_before = self.run_train.compile_seconds
        self.state, metrics = self.run_train(self.state, chunk)
        sums = _host_sums(metrics)
        real_steps = chunk.weights.any(axis=1)
        self._check_finite(sums["loss"], real_steps, epoch)
        progress.sums["compile_seconds"] += (self.run_train.compile_seconds
                                             - compiled_before)
        progress.step += int(real_steps.sum())
        progress.chunk += 1
        chunk_sums = {k: float(sums[k].sum()) for k in METRIC_KEYS}
        for k in METRIC_KEYS:
          progress.sums[k] += chunk_sums[k]
        now = time.perf_counter()
        progress.sums["seconds"] += now - start
        start = now
        bar.update(int(chunk.weights.sum()), **chunk_sums)
        self.tensorboard.scalars(progress.step, {
            "train/chunk_loss": chunk_sums["loss"] / chunk_sums["count"]})
        mid_epoch = progress.chunk < len(chunks)
        due = (progress.step - (self.last_saved or 0)
               >= config.checkpoint_every_steps)
        if mid_epoch and (due or stop.signum is not None):
          self.save()
        if mid_epoch and stop.signum is not None:
          return False
    finally:
      bar.close()
    return True

  def _check_finite(self, losses: np.ndarray, real_steps: np.ndarray,
                    epoch: int) -> None:
    if np.all(np.isfinite(losses)):
      return
    bad = int(np.argmin(np.isfinite(losses)))
    bad_step = self.progress.step + int(real_steps[:bad + 1].sum())
    raise NonFiniteLossError(
        f"the training loss became {losses[bad]} at epoch {epoch + 1}, step "
        f"{bad_step}; stopped without saving. The last good checkpoint (step "
        f"{self.last_saved}) is kept in {self.ckpts.directory}. Try a smaller "
        f"--config.learning_rate (now {self.config.learning_rate}) or "
        f"--config.clip_grad_norm=1.0.")

  def end_epoch(self, epoch: int) -> None:
    """Evaluates, records the epoch, keeps the validation-best state, and
    decides on early stopping."""
    config = self.config
    eval_start = time.perf_counter()
    evaluated = {}
    for eval_set in self.eval_sets:
      evaluated.update(eval_set.evaluate(self.state))
    record = epoch_record(epoch, self.progress, evaluated,
                          time.perf_counter() - eval_start)
    progress = self.progress.next_epoch(record)
    if "validation_accuracy" in record:
      best = progress.best_epoch
      if not best or (record["validation_accuracy"] >
                      progress.history[best - 1]["validation_accuracy"]):
        progress.best_epoch = epoch + 1
        self.best.save(progress.step, self.state, {"epoch": epoch + 1})
      progress.stopped_early = should_stop_early(
          epoch + 1, progress.best_epoch, config.early_stopping_patience)
    self.progress = progress
    self.save()
    if self.primary:
      run_dir.append_metrics(self.workdir, record)
    self.tensorboard.scalars(progress.step, {
        f"{k.replace('_', '/', 1)}": v for k, v in record.items()
        if k.startswith(("train_", "validation_", "test_"))})
    self.console.say(epoch_line(record, config.num_epochs))
    if progress.stopped_early:
      self.console.say(
          f"Early stopping: validation accuracy has not improved for "
          f"{config.early_stopping_patience} epoch(s) since epoch "
          f"{progress.best_epoch}.")

  def run(self, stop: StopSignals) -> None:
    progress = self.progress
    for epoch in range(progress.epoch, self.config.num_epochs):
      if self.progress.stopped_early:
        break
      if not self.train_epoch(epoch, stop):
        break
      self.end_epoch(epoch)
      if stop.signum is not None:
        break

  def close(self) -> None:
    self.ckpts.close()
    if self.best is not None:
      self.best.close()
    self.tensorboard.close()

  def finished(self) -> bool:
    return (self.progress.stopped_early
            or self.progress.epoch >= self.config.num_epochs)


def _with_embedding(params, table: np.ndarray):
  """params with the embedding table replaced (same sharding)."""
  old = params["embedding"]["embedding"]
  new = jax.device_put(table.astype(old.dtype), old.sharding)
  return {**params, "embedding": {**params["embedding"], "embedding": new}}


def _check(config, workdir: pathlib.Path) -> None:
  """Every check that needs no data, before anything is written."""
  validate_config(config)
  run_dir.check_writable_dir(workdir, "--workdir", "--workdir")
  run_dir.check_writable_dir(
      pathlib.Path(config.cache_dir or data.default_cache_dir()),
      "cache directory", "--config.cache_dir (or set FLAX_SENTIMENT_CACHE)")
  parallel.initialize_distributed(config)
  check_batch_divides(config, jax.device_count())


def _prepare(config, workdir: pathlib.Path, console: monitor.Console):
  """Data, run files, initial or restored state."""
  run_dir.check_resumable(workdir, config)
  imdb = data.load_imdb(config, say=console.say)
  run_dir.check_vocabulary(workdir, imdb.vocabulary)
  if jax.process_index() == 0:
    run_dir.write_run_files(workdir, config, imdb.vocabulary)

  steps_per_epoch = -(-len(imdb.train) // config.batch_size)
  model = models.model_from_config(config)
  init = jax.jit(functools.partial(train.create_train_state, model, config,
                                   steps_per_epoch=steps_per_epoch),
                 out_shardings=parallel.replicated(parallel.data_mesh()))
  state = init(jax.random.key(config.seed))
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints",
                                  config.keep_checkpoints)
  if config.pretrained_embeddings == "word2vec" and not ckpts.steps():
    table = pretrain.word2vec_table(imdb.pretraining_ids, config, console.say)
    state = state.replace(params=_with_embedding(state.params, table))
  console.say(models.summary(model, state.params, config.seq_len))
  progress = Progress()
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, meta = restored
    progress = Progress.from_meta(meta)
  return imdb, state, progress, ckpts


def _report_start(loop: Loop, console: monitor.Console) -> None:
  progress, config = loop.progress, loop.config
  if progress.step or progress.epoch:
    if progress.stopped_early:
      console.say(f"This workdir's run stopped early after {progress.epoch} "
                  f"epoch(s) (no validation gain since epoch "
                  f"{progress.best_epoch}); nothing to train. Pass a new "
                  f"--workdir to start again.")
    elif loop.finished():
      console.say(f"This workdir's run is already finished ({progress.epoch} "
                  f"epoch(s), step {progress.step}); nothing to train. Pass "
                  f"a larger --config.num_epochs to train on, or a new "
                  f"--workdir to start again.")
    else:
      console.say(f"Resuming from the checkpoint at step {progress.step} "
                  f"(epoch {progress.epoch + 1}, chunk {progress.chunk}) in "
                  f"{loop.ckpts.directory}")
  sizes = [f"{len(loop.imdb.train):,} reviews"]
  if loop.imdb.validation is not None:
    sizes.append(f"validating on {len(loop.imdb.validation):,}")
  console.say(f"Training on {', '.join(sizes)}, testing on "
              f"{len(loop.imdb.test):,}; {jax.device_count()} device(s) "
              f"({jax.devices()[0].platform}), {jax.process_count()} "
              f"process(es)")


def _report_end(loop: Loop, console: monitor.Console) -> None:
  """Says which epoch's test accuracy the run reports and writes
  result.json."""
  history = loop.progress.history
  if not history:
    return
  epoch, how = selected_epoch(history, loop.progress.best_epoch)
  record = history[epoch - 1]
  result = {"selected_epoch": epoch, "selected_by": how,
            "epochs_trained": len(history), **{
                k: v for k, v in record.items()
                if k.startswith(("validation_", "test_"))}}
  if loop.primary:
    run_dir.write_atomic(loop.workdir / "result.json",
                         json.dumps(result, indent=2) + "\n")
  console.say(f"Result: epoch {epoch} ({how}): test accuracy "
              f"{record['test_accuracy']:.4f}")


def train_and_evaluate(config, workdir: str | pathlib.Path) -> list[dict]:
  """Trains per `config`, evaluating on validation (if any) and test after
  every epoch.

  Resumes from the newest good checkpoint in `workdir`. Writes config.json,
  vocab.json, metrics.jsonl, result.json, checkpoints/ (and
  best_checkpoint/ with a validation split) and tensorboard/ there. Returns
  the metrics history (one dict per epoch).
  """
  workdir = pathlib.Path(workdir)
  _check(config, workdir)
  console = monitor.Console(config.progress, config.progress_every_seconds)
  imdb, state, progress, ckpts = _prepare(config, workdir, console)
  loop = Loop(config, workdir, imdb, state, progress, ckpts, console)
  if loop.primary:
    run_dir.write_metrics(workdir, progress.history)
  with StopSignals() as stop:
    # Announced once SIGTERM/SIGINT are handled: from here on they checkpoint.
    _report_start(loop, console)
    try:
      loop.run(stop)
    finally:
      loop.close()
  if jax.process_count() > 1:
    print(f"[process {jax.process_index()}] final state sha256 "
          f"{checkpoints.state_digest(loop.state)}", flush=True)
  if stop.signum is not None and not loop.finished():
    name = signal.Signals(stop.signum).name
    raise Interrupted(stop.signum, (
        f"Stopped by {name} at step {loop.progress.step} (epoch "
        f"{loop.progress.epoch + 1}); checkpoint saved in "
        f"{ckpts.directory}. Run the same command again to resume."))
  _report_end(loop, console)
  return loop.progress.history
