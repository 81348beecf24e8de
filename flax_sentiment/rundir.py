"""The run directory: every file a training run writes, and whether a run
may continue in it.

  <workdir>/config.json           the config of the run (written once)
  <workdir>/vocab.json            its vocabulary
  <workdir>/metrics.jsonl         one JSON object per finished epoch
  <workdir>/result.json           the reported epoch and its metrics
  <workdir>/checkpoints/          orbax checkpoints of the train state
  <workdir>/best_checkpoint/      the validation-best state (with validation)
  <workdir>/corrupt_checkpoints/  unreadable checkpoints, moved aside
  <workdir>/tensorboard/          TensorBoard event files

`RunDir` is the one place that names them. A workdir with checkpoints only
continues a run whose config agrees on every field except those in
`MAY_CHANGE_ON_RESUME`; the check runs before anything is written. Files are
written atomically and only when their content changes, so a re-run of a
finished run writes nothing.
"""

import dataclasses
import errno
import json
import os
import pathlib
import tempfile

from flax_sentiment import data, parallel
from flax_sentiment.errors import ConfigError, UserError

# Fields that may differ between a workdir's checkpoints and the config that
# continues them, and why that is safe. Every other field must match: it
# fixes the parameters, the optimizer, the data or its order.
MAY_CHANGE_ON_RESUME = {
    "num_epochs": "train on, or stop sooner (constant learning rate only: a "
                  "schedule's length depends on it)",
    "early_stopping_patience": "applied to the epochs recorded so far",
    "progress": "display only",
    "progress_every_seconds": "display only",
    "checkpoint_every_steps": "when checkpoints are written",
    "keep_checkpoints": "how many are kept",
    "eval_batch_size": "evaluation metrics are sums over every review",
    "cache_dir": "token and compilation caches",
    "data_dir": "where IMDB is read from (its vocabulary is checked)",
    "download": "whether tfds may download",
    "coordinator_address": "where the processes meet",
    "num_processes": "how many processes share the devices",
    "process_id": "differs per process by definition",
}


def check_writable_dir(path: pathlib.Path, what: str, flag: str) -> None:
  """Raises UserError if `path` cannot be (or become) a writable directory:
  it is a file, lies below a file, or is read-only. Creates nothing."""
  path = pathlib.Path(path)
  existing = path
  while not existing.exists():
    if existing.parent == existing:
      break
    existing = existing.parent
  if existing.exists() and not existing.is_dir():
    where = ("is a file" if existing == path
             else f"lies below {existing}, which is a file")
    raise UserError(f"{what} {path} {where}; pass another {flag}")
  if existing.exists():
    try:
      with tempfile.TemporaryFile(dir=existing):
        pass
    except OSError as e:
      if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = ("is on a read-only file system" if e.errno == errno.EROFS
                  else "is not writable")
        raise UserError(f"{what} {path} cannot be written ({existing} "
                        f"{reason}); pass another {flag}") from e
      raise


def write_atomic(path: pathlib.Path, text: str) -> bool:
  """Writes `text` to `path` via a temporary file (a kill leaves either the
  old or the new file), unless it already holds exactly that. Returns
  whether it wrote."""
  path = pathlib.Path(path)
  if path.is_file() and path.read_text() == text:
    return False
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
  partial.write_text(text)
  os.replace(partial, path)
  return True


def resume_differences(saved: dict, config) -> list[str]:
  """`field: saved in the workdir, value now` for each field that may not
  change on resume but does (fields a workdir predates are not compared)."""
  diffs = []
  for field in sorted(config.keys()):
    if field not in saved or saved[field] == config[field]:
      continue
    may_change = field in MAY_CHANGE_ON_RESUME and not (
        field == "num_epochs" and config.get("lr_schedule") != "constant")
    if not may_change:
      diffs.append(f"{field}: {saved[field]!r} in the workdir, "
                   f"{config[field]!r} now")
  return diffs


def _to_json(value):
  return json.loads(json.dumps(value))


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The files of one workdir (see the module docstring)."""
  path: pathlib.Path

  def __post_init__(self):
    object.__setattr__(self, "path", pathlib.Path(self.path))

  config_file = property(lambda self: self.path / "config.json")
  vocabulary_file = property(lambda self: self.path / "vocab.json")
  metrics_file = property(lambda self: self.path / "metrics.jsonl")
  result_file = property(lambda self: self.path / "result.json")
  checkpoints = property(lambda self: self.path / "checkpoints")
  best_checkpoint = property(lambda self: self.path / "best_checkpoint")
  corrupt_checkpoints = property(
      lambda self: self.path / "corrupt_checkpoints")
  tensorboard = property(lambda self: self.path / "tensorboard")

  # --- Checks (write nothing) ---

  def check_writable(self) -> None:
    check_writable_dir(self.path, "--workdir", "--workdir")

  def has_checkpoints(self) -> bool:
    return self.checkpoints.is_dir() and any(
        p.name.isdigit() for p in self.checkpoints.iterdir())

  def saved_config(self) -> dict | None:
    if not self.config_file.is_file():
      return None
    return json.loads(self.config_file.read_text())

  def check_resumable(self, config) -> None:
    """Refuses to continue checkpoints written with a config that differs
    in a field outside `MAY_CHANGE_ON_RESUME`."""
    saved = self.saved_config()
    if saved is None or not self.has_checkpoints():
      return
    diffs = resume_differences(saved, _to_json(config.to_dict()))
    if diffs:
      raise ConfigError(
          f"{self.path} holds checkpoints of a run with other settings "
          f"({'; '.join(diffs)}); only {', '.join(MAY_CHANGE_ON_RESUME)} may "
          f"change on resume. Use another --workdir, or pass the workdir's "
          f"values (see {self.config_file})")

  def check_vocabulary(self, vocabulary: list[str]) -> None:
    if self.has_checkpoints() and self.vocabulary_file.is_file():
      if data.load_vocabulary(self.vocabulary_file) != list(vocabulary):
        raise ConfigError(
            f"{self.path} holds checkpoints trained with another vocabulary "
            f"(the data or tokenizer changed). Use another --workdir, or "
            f"delete {self.checkpoints} to start fresh.")

  # --- Writes (process 0 only; each skipped when the content is the same) ---

  def write_run_files(self, config, vocabulary: list[str]) -> None:
    """config.json and vocab.json (what `predict` needs besides a
    checkpoint)."""
    if parallel.is_primary():
      write_atomic(self.config_file, config.to_json(indent=2))
      write_atomic(self.vocabulary_file, data.vocabulary_json(vocabulary))

  def write_metrics(self, history: list[dict]) -> None:
    """metrics.jsonl from a whole history (e.g. a restored checkpoint's)."""
    if parallel.is_primary() and (history or self.metrics_file.exists()):
      write_atomic(self.metrics_file,
                   "".join(json.dumps(r) + "\n" for r in history))

  def write_result(self, result: dict) -> None:
    if parallel.is_primary():
      write_atomic(self.result_file, json.dumps(result, indent=2) + "\n")

  # --- Reads ---

  def read_metrics(self) -> list[dict]:
    return read_metrics(self.path)


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line]
