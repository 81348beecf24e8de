"""A training run, top to bottom: `train_and_evaluate(config, workdir)`.

The recipe reads in order: check (nothing written), load the data, plan the
run, restore or initialize the state, train epoch by epoch (each ending with
evaluation, a metrics record, the validation-best checkpoint and early
stopping), report. Each step calls the module that owns its concern:
`checks` (fields), `rundir` (the workdir's files, what may change on resume),
`data`, `feeding` (plans and compiled calls), `checkpoints`, `progress`
(where training stands; epoch selection), `metrics`, `monitor` (what the user
sees), `signals` (SIGTERM/SIGINT)."""

import dataclasses
import pathlib
import time

import jax
import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import datasets, labels, tokenizer
from flax_sentiment.model import classifier, implementation
from flax_sentiment.runtime import parallel
from flax_sentiment.text_models import common
from flax_sentiment.tracking import checkpoints, metrics, monitor
from flax_sentiment.training import feeding, train_steps
from flax_sentiment.tracking import progress as progress_lib
from flax_sentiment.tracking import rundir as rundir_lib
from flax_sentiment.training.checks import (
    check_batch_divides, check_classes, check_implementation_runs,
    record_tokenizer, validate_config)
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.tracking.progress import Progress
from flax_sentiment.tracking.rundir import check_writable_dir, RunDir
from flax_sentiment.training.signals import Interrupted, StopSignals
from flax_sentiment.training.starting import init_state, with_pretrained

__all__ = ["train_and_evaluate", "Interrupted", "NonFiniteLossError"]


class NonFiniteLossError(UserError):
  """The loss became NaN or infinite."""


class LostProcessError(UserError):
  """Another process of a multi-process run died: a collective failed. The
  caller should exit at once (`os._exit`): jax's shutdown would wait for the
  lost process (~100 s) and then abort with a C++ stack."""


@dataclasses.dataclass
class Run:
  """What the epochs of one run share besides the state and progress."""
  config: object
  rundir: RunDir
  console: monitor.Console
  feeds: feeding.Feeds
  ckpts: checkpoints.Checkpoints
  best_ckpt: checkpoints.Checkpoints | None
  tensorboard: monitor.TensorBoard
  stop: StopSignals
  last_saved: int | None = None

  vocabulary_sha256: str = ""

  def trained_with(self) -> dict:
    """What a checkpoint records besides progress: the config and the
    vocabulary's digest (the resume check needs no file beside it)."""
    return {"config": rundir_lib.config_record(self.config),
            "vocabulary_sha256": self.vocabulary_sha256}

  def save(self, state, progress: Progress) -> None:
    if self.last_saved != progress.step:
      self.ckpts.save(progress.step, state,
                      {**progress.to_meta(), **self.trained_with()})
      self.last_saved = progress.step

  def close(self) -> None:
    for closeable in (self.ckpts, self.best_ckpt, self.tensorboard):
      if closeable is not None:
        closeable.close()


def train_and_evaluate(config, workdir: str | pathlib.Path) -> list[dict]:
  """Trains per `config`, evaluating on validation (if any) and test after
  every epoch; resumes from the newest good checkpoint in `workdir`.

  Writes the files `rundir.RunDir` lists. Returns the metrics history (one
  dict per epoch).
  """
  rundir = RunDir(workdir)
  check_before_writing(config, rundir)
  if common.is_text_model(config):
    return common.train_and_evaluate(config, rundir.path,
                                     check_classes=check_classes)
  console = monitor.Console(config.progress, config.progress_every_seconds)
  imdb = datasets.load_imdb(config, say=console.say)
  warning = check_classes(config, labels.names(imdb.classes),
                          imdb.train.labels)
  if warning:
    console.say(warning)
  rundir.check_vocabulary(imdb.vocabulary, imdb.tokenizer, imdb.classes)
  with rundir.locked():
    return _train_locked(config, rundir, console, imdb)


def _train_locked(config, rundir: RunDir, console: monitor.Console,
                  imdb: datasets.ImdbData) -> list[dict]:
  """The run once the workdir is held: plan, restore or initialize, train,
  report."""
  feeds = feeding.plan_run(config, imdb, console.say)
  ckpts = checkpoints.Checkpoints(rundir.checkpoints, config.keep_checkpoints)
  state, progress = initial_state(config, imdb, feeds, ckpts, console)
  if not progress_lib.is_finished(progress, config):
    rundir.write_run_files(config, imdb.vocabulary, imdb.tokenizer,
                           imdb.classes)
    rundir.write_metrics(list(progress.history))
  else:  # a re-run writes nothing, unless a file was damaged
    repaired = rundir.repair_run_files(config, imdb.vocabulary,
                                       list(progress.history), imdb.tokenizer,
                                       imdb.classes)
    if repaired:
      console.say(f"warning: {', '.join(repaired)} in {rundir.path} "
                  f"{'was' if len(repaired) == 1 else 'were'} missing or "
                  f"damaged; rebuilt from the checkpoint and the data")
  best_ckpt = (checkpoints.Checkpoints(rundir.best_checkpoint, 1)
               if imdb.validation is not None else None)
  with StopSignals() as stop:
    run = Run(config, rundir, console, feeds, ckpts, best_ckpt,
              monitor.TensorBoard(rundir.tensorboard), stop,
              last_saved=progress.step if progress.started else None,
              vocabulary_sha256=tokenizer.vocabulary_digest(
                  imdb.vocabulary, imdb.tokenizer, imdb.classes))
    # Said once SIGTERM/SIGINT are handled: from here on they checkpoint.
    for line in (monitor.start_line(progress, config, ckpts.directory),
                 monitor.data_line(imdb)):
      if line:
        console.say(line)
    lost, stopped = None, False
    try:
      while not progress_lib.is_finished(progress, config):
        state, progress, stopped = train_epoch(state, progress, run)
        if stopped:
          break  # by a signal mid-epoch, checkpoint written
        progress = end_epoch(state, progress, run)
        stopped = stop.agreed(parallel.any_process)
        if stopped:
          break
    except Exception as e:  # pylint: disable=broad-except
      if not parallel.lost_peer(e):  # a save's barrier raises gloo's too
        raise
      lost = lost_process_error(e, run)
    finally:
      if lost is None:  # closing waits on the other processes
        run.close()
    if lost is not None:
      raise lost
  if jax.process_count() > 1:
    print(f"[process {jax.process_index()}] final state sha256 "
          f"{checkpoints.state_digest(state)}", flush=True)
  if stopped and not progress_lib.is_finished(progress, config):
    raise stop.interrupted(progress.step, progress.epoch, ckpts.directory)
  report_result(progress, rundir, console, config.select_on)
  return list(progress.history)


def lost_process_error(error: Exception, run: Run) -> LostProcessError:
  """The one line for a collective that failed because a peer is gone."""
  count, me = jax.process_count(), jax.process_index()
  peer = f"process {1 - me}" if count == 2 else "another process"
  cause = " ".join(str(error).split())[:160]
  kept = (f"The checkpoint at step {run.last_saved} is kept in "
          f"{run.ckpts.directory}" if run.last_saved is not None
          else "No checkpoint was written yet")
  return LostProcessError(
      f"process {me} of {count} lost contact with {peer} ({cause}); "
      f"stopping. {kept}; start every process again with the "
      f"same commands to resume.")


def check_before_writing(config, rundir: RunDir) -> None:
  """Every check that needs no data, before anything is written: the
  fields, the workdir (writable; its checkpoints' config), the cache
  directory, the processes and the device count; `tokenizer="auto"` made
  the kind it stands for (`record_tokenizer`)."""
  record_tokenizer(config, rundir)
  validate_config(config)
  rundir.check_writable()
  check_writable_dir(
      pathlib.Path(config.cache_dir or datasets.default_cache_dir()),
      "cache directory", "--config.cache_dir (or set FLAX_SENTIMENT_CACHE)")
  rundir.check_resumable(config)
  parallel.initialize_distributed(config)
  check_batch_divides(config, jax.device_count())
  check_implementation_runs(config, jax.devices()[0])


def initial_state(config, imdb: datasets.ImdbData, feeds: feeding.Feeds,
                  ckpts: checkpoints.Checkpoints, console: monitor.Console
                  ) -> tuple[train_steps.TrainState, Progress]:
  """The newest good checkpoint's state and progress, else a new state
  (`new_state`)."""
  model = classifier.model_from_config(config, labels.count(imdb.classes))
  state = init_state(config, model, feeds).replace(
      class_weights=train_steps.class_weights(
          config.class_weights, imdb.train.labels, model.num_classes))
  console.say(classifier.summary(model, state.params, config.seq_len))
  if config.model == fields.RECURRENT:
    console.say(implementation.line(config))
  had_checkpoints = bool(ckpts.steps())
  restored = ckpts.restore_latest(state, say=console.say)
  if restored is not None:
    return restored[0], Progress.from_meta(restored[1])
  if had_checkpoints:
    console.say("No readable checkpoint is left; training from the start.")
  return with_pretrained(state, config, imdb, console.say), Progress()


def train_epoch(state, progress: Progress, run: Run
                ) -> tuple[train_steps.TrainState, Progress, bool]:
  """Runs the rest of the current epoch's plan, chunk by chunk. Returns
  (state, progress, stopped): stopped is True if a signal (in any process)
  ended the epoch early, its checkpoint written."""
  config, runner = run.config, run.feeds.train
  chunks = run.feeds.plans[progress.epoch]
  done = int(sum(c.weights.sum() for c in chunks[:progress.chunk]))
  bar = run.console.epoch(progress.epoch, config.num_epochs,
                          len(runner.split.labels), done)
  start = time.perf_counter()
  try:
    while progress.chunk < len(chunks):
      chunk = chunks[progress.chunk]
      compiled_before = runner.compile_seconds
      state, sums, real_steps = train_chunk(
          state, chunk, runner, progress, run.last_saved, run.ckpts.directory,
          config.learning_rate)
      now = time.perf_counter()
      progress = progress.after_chunk(
          sums, int(real_steps.sum()), now - start,
          runner.compile_seconds - compiled_before)
      start = now
      chunk_totals = metrics.add(metrics.empty_totals(), sums)
      bar.update(int(chunk.weights.sum()), **chunk_totals)
      run.tensorboard.scalars(progress.step, {
          "train/chunk_loss": chunk_totals["loss"] / chunk_totals["count"]})
      if progress.chunk == len(chunks):
        break  # the epoch is done; end_epoch checks for a stop
      stopping = run.stop.agreed(parallel.any_process)
      if stopping or (progress.step - (run.last_saved or 0)
                      >= config.checkpoint_every_steps):
        run.save(state, progress)
      if stopping:
        return state, progress, True
  finally:
    bar.close()
  return state, progress, False


def train_chunk(state, chunk, runner: feeding.ChunkRunner,
                progress: Progress, last_saved: int | None,
                checkpoint_dir, learning_rate: float):
  """One compiled call over `chunk`: (state, host metric sums [steps],
  real_steps [steps] bool); NonFiniteLossError if a loss is NaN/inf."""
  state, sums = runner(state, chunk)
  sums = feeding.host_sums(sums)
  real_steps = chunk.weights.any(axis=1)
  check_finite(sums["loss"], real_steps, progress, last_saved,
               checkpoint_dir, learning_rate)
  return state, sums, real_steps


def check_finite(losses: np.ndarray, real_steps: np.ndarray,
                 progress: Progress, last_saved: int | None,
                 checkpoint_dir, learning_rate: float) -> None:
  """Raises NonFiniteLossError (nothing saved) if a step's loss is NaN/inf."""
  if np.all(np.isfinite(losses)):
    return
  bad = int(np.argmin(np.isfinite(losses)))
  bad_step = progress.step + int(real_steps[:bad + 1].sum())
  raise NonFiniteLossError(
      f"the training loss became {losses[bad]} at epoch {progress.epoch + 1}"
      f", step {bad_step}; stopped without saving. "
      + (f"The last good checkpoint (step {last_saved}) is kept in "
         f"{checkpoint_dir}. " if last_saved is not None else
         "No checkpoint was written before it. ")
      + f"Try a "
      f"smaller --config.learning_rate (now {learning_rate}) or "
      f"--config.clip_grad_norm=1.0.")


def evaluate(state, eval_sets: list[feeding.EvalSet],
             details: bool = False) -> dict:
  """Loss and accuracy on every evaluated split (validation, test); with
  `details` also AUC, F1, precision, recall, confusion counts and accuracy
  by review length (`feeding.EvalSet.evaluate`)."""
  evaluated = {}
  for eval_set in eval_sets:
    evaluated.update(eval_set.evaluate(state, details))
  return evaluated


def end_epoch(state, progress: Progress, run: Run) -> Progress:
  """Evaluates, records the epoch, keeps the validation-best state, saves,
  and says whether early stopping ends the run."""
  config = run.config
  eval_start = time.perf_counter()
  evaluated = evaluate(state, run.feeds.eval_sets, details=True)
  record = metrics.epoch_record(
      progress.epoch, progress.sums, evaluated, progress.step,
      progress.sums["seconds"], progress.sums["compile_seconds"],
      time.perf_counter() - eval_start)
  progress = progress.after_epoch(record)
  if (run.best_ckpt is not None
      and progress_lib.best_epoch(progress.history, config.select_on)
      == record["epoch"]):
    run.best_ckpt.save(progress.step, state,
                       {"epoch": record["epoch"], **run.trained_with()})
  run.save(state, progress)
  run.rundir.write_metrics(list(progress.history))
  run.tensorboard.epoch(record)
  run.console.say(monitor.epoch_line(record, config.num_epochs))
  if progress_lib.stopped_early(progress.history,
                                config.early_stopping_patience,
                                config.select_on):
    run.console.say(monitor.early_stopping_line(
        progress.history, config.early_stopping_patience, config.select_on))
  return progress


def report_result(progress: Progress, rundir: RunDir,
                  console: monitor.Console, metric: str = "accuracy") -> None:
  """Says which epoch's test accuracy the run reports (chosen on
  validation `metric`); writes result.json."""
  if not progress.history:
    return
  record, how = progress_lib.selected(progress.history, metric)
  damaged = rundir.write_result({
      "selected_epoch": record["epoch"], "selected_by": how,
      "epochs_trained": len(progress.history),
      **{k: v for k, v in record.items()
         if k.startswith(("validation_", "test_"))}})
  if damaged:
    console.say(f"warning: {rundir.result_file} was damaged; rebuilt from "
                f"the checkpoint's history")
  console.say(monitor.result_line(record, how))
