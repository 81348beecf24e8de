"""Training: a pure train step, chunks of steps under `lax.scan`, the loop.

`train_step(state, batch)` and `eval_step(state, batch)` work on one batch:
  batch = {"tokens": [batch, len] int32, "labels": [batch] f32,
           "weights": [batch] f32 (0 for filler rows),
           optional "distinct_ids": [num_ids] int32 covering the tokens' ids}.
`train_chunk` / `eval_chunk` scan them over a chunk, the same dict with a
leading [steps] axis; the loop jit-compiles those once per batch shape.
"""

import dataclasses
import functools
import json
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from flax_sentiment import batching, checkpoints, data, models, parallel
from flax_sentiment.config_checks import check_batch_divides, validate_config
from flax_sentiment.errors import ConfigError, UserError

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
METRIC_KEYS = ("loss", "correct", "count")

# A workdir's checkpoints only continue a run whose config agrees on these:
# they fix the parameter shapes, the data and the position in an epoch.
# (num_epochs and learning_rate may change, e.g. to train on with a lower one.)
RESUME_FIELDS = ("cell", "num_words", "embed_dim", "hidden_dim", "dtype",
                 "seq_len", "padding", "truncating", "mask_padding",
                 "length_buckets", "max_train_examples", "batch_size",
                 "seed", "steps_per_call")


class TrainState(train_state.TrainState):
  pass


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


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam with Keras's epsilon (1e-7), as in the notebook."""
  return optax.adam(config.learning_rate, eps=1e-7)


def create_train_state(model: models.SentimentClassifier, config,
                       rng: jax.Array) -> TrainState:
  tokens = jnp.zeros((1, config.seq_len), jnp.int32)
  params = model.init(rng, tokens)["params"]
  return TrainState.create(apply_fn=model.apply, params=params,
                           tx=make_optimizer(config))


def _metric_sums(logits: jax.Array, batch: Batch) -> tuple[jax.Array, Metrics]:
  """Weighted per-batch sums; filler rows (weight 0) count for nothing."""
  losses = optax.sigmoid_binary_cross_entropy(logits, batch["labels"])
  correct = (logits > 0) == (batch["labels"] > 0.5)
  weights = batch["weights"]
  sums = {"loss": jnp.sum(losses * weights),
          "correct": jnp.sum(correct * weights),
          "count": jnp.sum(weights)}
  return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums


def _logits(apply_fn, params, batch: Batch) -> jax.Array:
  return apply_fn({"params": params}, batch["tokens"],
                  batch.get("distinct_ids"))


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
  """One Adam step on the weighted mean binary cross-entropy."""
  def loss_fn(params):
    logits = _logits(state.apply_fn, params, batch)
    return _metric_sums(logits, batch)

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), sums


def eval_step(state: TrainState, batch: Batch) -> Metrics:
  logits = _logits(state.apply_fn, state.params, batch)
  return _metric_sums(logits, batch)[1]


def _zero_metrics() -> Metrics:
  return {k: jnp.zeros((), jnp.float32) for k in METRIC_KEYS}


def train_chunk(state: TrainState, chunk: Batch) -> tuple[TrainState, Metrics]:
  """`train_step` over [steps, ...]; all-filler batches leave `state` as is.

  Returns the new state and per-step metric sums, each [steps].
  """
  def step(state, batch):
    return jax.lax.cond(jnp.any(batch["weights"] > 0), train_step,
                        lambda s, _: (s, _zero_metrics()), state, batch)
  return jax.lax.scan(step, state, chunk)


def eval_chunk(state: TrainState, chunk: Batch) -> Metrics:
  """`eval_step` over [steps, ...]; per-step metric sums, each [steps]."""
  def step(_, batch):
    return None, jax.lax.cond(jnp.any(batch["weights"] > 0), eval_step,
                              lambda *_: _zero_metrics(), state, batch)
  return jax.lax.scan(step, None, chunk)[1]


# ------------------------------------------------------------------ the loop


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

  def to_meta(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: dict) -> "Progress":
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in meta.items() if k in fields})


class _StopSignals:
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


def _check_workdir(workdir: pathlib.Path, config) -> None:
  """Refuses to continue checkpoints written with a different config."""
  saved_path = workdir / "config.json"
  if not (workdir / "checkpoints").exists() or not saved_path.exists():
    return
  saved = json.loads(saved_path.read_text())
  diffs = [f"{f}: {saved.get(f)!r} in the workdir, {config[f]!r} now"
           for f in RESUME_FIELDS if saved.get(f) != config[f]]
  if diffs:
    raise ConfigError(
        f"{workdir} holds checkpoints of a different config ({'; '.join(diffs)})."
        f" Use another --workdir, or delete {workdir / 'checkpoints'} to start "
        f"fresh.")


def _check_vocabulary(workdir: pathlib.Path, vocabulary: list[str]) -> None:
  path = workdir / "vocab.json"
  if (workdir / "checkpoints").exists() and path.exists():
    if data.load_vocabulary(path) != vocabulary:
      raise ConfigError(
          f"{workdir} holds checkpoints trained with another vocabulary (the "
          f"data or tokenizer changed). Use another --workdir, or delete "
          f"{workdir / 'checkpoints'} to start fresh.")


def _write_atomic(path: pathlib.Path, text: str) -> None:
  partial = path.with_suffix(path.suffix + ".tmp")
  partial.write_text(text)
  partial.replace(path)


class _ChunkRunner:
  """Feeds chunks of one split to compiled calls, one executable per shape
  (batch length, and number of distinct ids if `num_words` is given)."""

  def __init__(self, fn, split: data.Split, batch_size: int, mesh,
               donate: bool, num_words: int | None):
    self.split = split
    self.batch_size = batch_size
    self.num_words = num_words
    self.sharding = parallel.batch_sharded(mesh)
    self.replicated = replicated = parallel.replicated(mesh)
    out = (replicated, replicated) if donate else replicated
    self._jitted = jax.jit(fn, out_shardings=out,
                           donate_argnums=(0,) if donate else ())
    self._compiled = {}
    self.compile_seconds = 0.0

  def arrays(self, chunk: batching.Chunk) -> Batch:
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
    if self.num_words is not None:
      # Of the whole global batch, the same on every process.
      distinct = batching.distinct_ids(tokens, self.num_words)
      if distinct is not None:
        arrays["distinct_ids"] = parallel.to_global(distinct, self.replicated,
                                                    distinct.shape)
    return arrays

  def __call__(self, state, chunk: batching.Chunk):
    batch = self.arrays(chunk)
    key = tuple((k, v.shape) for k, v in sorted(batch.items()))
    if key not in self._compiled:
      start = time.perf_counter()
      self._compiled[key] = self._jitted.lower(state, batch).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._compiled[key](state, batch)


def _host_sums(metrics: Metrics) -> dict[str, np.ndarray]:
  return {k: parallel.fetch(v).astype(np.float64) for k, v in metrics.items()}


def _say(*args) -> None:
  if jax.process_index() == 0:
    print(*args, flush=True)


def _evaluate(run_eval: "_ChunkRunner", state: TrainState,
              chunks: list[batching.Chunk]) -> dict[str, float]:
  """Metric sums over every test review."""
  test = {k: 0.0 for k in METRIC_KEYS}
  for chunk in chunks:
    for k, v in _host_sums(run_eval(state, chunk)).items():
      test[k] += float(v.sum())
  return test


def _epoch_record(epoch: int, progress: "Progress", test: dict[str, float],
                  eval_seconds: float) -> dict:
  """One line of metrics.jsonl."""
  train, seconds = progress.sums, progress.sums["seconds"]
  return {
      "epoch": epoch + 1,
      "train_loss": train["loss"] / train["count"],
      "train_accuracy": train["correct"] / train["count"],
      "test_loss": test["loss"] / test["count"],
      "test_accuracy": test["correct"] / test["count"],
      "epoch_seconds": seconds,
      "train_examples_per_second":
          train["count"] / max(seconds - train["compile_seconds"], 1e-9),
      "compile_seconds": train["compile_seconds"],
      "eval_seconds": eval_seconds,
      "steps": progress.step,
  }


def _epoch_line(record: dict, num_epochs: int) -> str:
  return (f"epoch {record['epoch']}/{num_epochs}  "
          f"train_loss {record['train_loss']:.4f}  "
          f"train_acc {record['train_accuracy']:.4f}  "
          f"test_loss {record['test_loss']:.4f}  "
          f"test_acc {record['test_accuracy']:.4f}  "
          f"{record['epoch_seconds']:.1f}s (compile "
          f"{record['compile_seconds']:.1f}s)  "
          f"{record['train_examples_per_second']:.0f} ex/s")


def train_and_evaluate(config, workdir: str | pathlib.Path) -> list[dict]:
  """Trains per `config`, evaluating on the test split after every epoch.

  Resumes from the newest good checkpoint in `workdir`. Writes config.json,
  vocab.json, metrics.jsonl and checkpoints/ there. Returns the metrics
  history (one dict per epoch).
  """
  validate_config(config)
  parallel.initialize_distributed(config)
  mesh = parallel.data_mesh()
  check_batch_divides(config, jax.device_count())
  workdir = pathlib.Path(workdir)
  primary = jax.process_index() == 0
  _check_workdir(workdir, config)

  imdb = data.load_imdb(config)
  _check_vocabulary(workdir, imdb.vocabulary)
  if primary:
    workdir.mkdir(parents=True, exist_ok=True)
    _write_atomic(workdir / "config.json", config.to_json(indent=2))
    data.save_vocabulary(imdb.vocabulary, workdir / "vocab.json")

  model = models.model_from_config(config)
  init = jax.jit(functools.partial(create_train_state, model, config),
                 out_shardings=parallel.replicated(mesh))
  state = init(jax.random.key(config.seed))
  _say(models.summary(model, state.params, config.seq_len))

  ckpts = checkpoints.Checkpoints(workdir / "checkpoints",
                                  config.keep_checkpoints)
  progress = Progress()
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, meta = restored
    progress = Progress.from_meta(meta)
    _say(f"Resuming from the checkpoint at step {progress.step} (epoch "
         f"{progress.epoch + 1}, chunk {progress.chunk}) in {ckpts.directory}")
  if primary:
    _write_atomic(workdir / "metrics.jsonl",
                  "".join(json.dumps(r) + "\n" for r in progress.history))

  boundaries = batching.bucket_boundaries(imdb.train.lengths,
                                          config.length_buckets, config.seq_len)
  train_groups = batching.group_by_bucket(imdb.train.lengths, boundaries)
  # With buckets, batches are also cut from length-sorted chunks.
  bucketed = config.length_buckets > 0
  test_chunks = batching.plan_epoch(
      batching.group_by_bucket(imdb.test.lengths, boundaries),
      config.eval_batch_size, config.steps_per_call,
      lengths=imdb.test.lengths if bucketed else None)
  distinct = (config.num_words if config.project_distinct_words
              and config.implementation == "hoisted" else None)
  run_train = _ChunkRunner(train_chunk, imdb.train, config.batch_size, mesh,
                           donate=True, num_words=distinct)
  run_eval = _ChunkRunner(eval_chunk, imdb.test, config.eval_batch_size, mesh,
                          donate=False, num_words=distinct)
  if len(boundaries) > 1:
    _say(f"Length buckets: {boundaries}")

  last_saved = progress.step if restored is not None else None

  def save():
    nonlocal last_saved
    if last_saved != progress.step:
      ckpts.save(progress.step, state, progress.to_meta())
      last_saved = progress.step

  with _StopSignals() as stop:
    # Printed once SIGTERM/SIGINT are handled: from here on they checkpoint.
    _say(f"Training on {len(imdb.train):,} reviews, testing on "
         f"{len(imdb.test):,}; {jax.device_count()} device(s) "
         f"({jax.devices()[0].platform}), {jax.process_count()} process(es)")
    for epoch in range(progress.epoch, config.num_epochs):
      chunks = batching.plan_epoch(
          train_groups, config.batch_size, config.steps_per_call,
          batching.epoch_rng(config.seed, epoch),
          lengths=imdb.train.lengths if bucketed else None)
      start = time.perf_counter()
      while progress.chunk < len(chunks):
        chunk = chunks[progress.chunk]
        compiled_before = run_train.compile_seconds
        state, metrics = run_train(state, chunk)
        progress.sums["compile_seconds"] += (run_train.compile_seconds
                                             - compiled_before)
        sums = _host_sums(metrics)
        real_steps = chunk.weights.any(axis=1)
        if not np.all(np.isfinite(sums["loss"])):
          bad = int(np.argmin(np.isfinite(sums["loss"])))
          bad_step = progress.step + int(real_steps[:bad + 1].sum())
          raise NonFiniteLossError(
              f"the training loss became {sums['loss'][bad]} at epoch "
              f"{epoch + 1}, step {bad_step}; stopped without saving. The last "
              f"good checkpoint (step {last_saved}) is kept in "
              f"{ckpts.directory}. Try a smaller --config.learning_rate "
              f"(now {config.learning_rate}).")
        progress.step += int(real_steps.sum())
        progress.chunk += 1
        for k in METRIC_KEYS:
          progress.sums[k] += float(sums[k].sum())
        now = time.perf_counter()
        progress.sums["seconds"] += now - start
        start = now
        mid_epoch = progress.chunk < len(chunks)
        due = progress.step - (last_saved or 0) >= config.checkpoint_every_steps
        if mid_epoch and (due or stop.signum is not None):
          save()
        if mid_epoch and stop.signum is not None:
          break
      if progress.chunk < len(chunks):
        break

      eval_start = time.perf_counter()
      test = _evaluate(run_eval, state, test_chunks)
      record = _epoch_record(epoch, progress, test,
                             time.perf_counter() - eval_start)
      progress = Progress(epoch=epoch + 1, step=progress.step,
                          history=progress.history + [record])
      save()
      if primary:
        with open(workdir / "metrics.jsonl", "a") as f:
          f.write(json.dumps(record) + "\n")
      _say(_epoch_line(record, config.num_epochs))
      if stop.signum is not None:
        break
  ckpts.close()
  print(f"[process {jax.process_index()}] final state sha256 "
        f"{checkpoints.state_digest(state)}", flush=True)
  if stop.signum is not None and progress.epoch < config.num_epochs:
    name = signal.Signals(stop.signum).name
    raise Interrupted(stop.signum, (
        f"Stopped by {name} at step {progress.step} (epoch "
        f"{progress.epoch + 1}); checkpoint saved in {ckpts.directory}. Run "
        f"the same command again to resume."))
  return progress.history
