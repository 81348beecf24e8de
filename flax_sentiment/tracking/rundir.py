"""The run directory: every file a training run writes, and whether a run
may continue in it.

  <workdir>/config.json           the config of the run (written once)
  <workdir>/vocab.json            its vocabulary (and tokenizer kind)
  <workdir>/tokenizer.model       the SentencePiece model (tokenizer=subwords)
  <workdir>/metrics.jsonl         one JSON object per finished epoch
  <workdir>/result.json           the reported epoch and its metrics
  <workdir>/checkpoints/          orbax checkpoints of the train state
  <workdir>/best_checkpoint/      the validation-best state (with validation)
  <workdir>/corrupt_checkpoints/  unreadable checkpoints, moved aside
  <workdir>/tensorboard/          TensorBoard event files
  <workdir>/.lock                 held (flock) while a training runs here

`RunDir` is the one place that names them. A workdir with checkpoints only
continues a run whose config agrees on every field except those whose
declaration in `fields` says why they may change; the check runs before
anything is written. Files are written atomically and only when their content changes, so a re-run of a
finished run writes nothing.
"""

import contextlib
import dataclasses
import errno
import fcntl
import json
import pathlib
import tempfile

from flax_sentiment.configuration import fields
from flax_sentiment.data import tokenizer
from flax_sentiment.runtime import parallel
from flax_sentiment.runtime.files import write_atomic
from flax_sentiment.runtime.errors import ConfigError, UserError

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
      reason = {errno.EROFS: "is on a read-only file system",
                errno.EACCES: "is not writable", errno.EPERM: "is not writable",
                errno.ENOSPC: "is on a full disk"}.get(
                    e.errno, f"does not take new files: {e.strerror}")
      raise UserError(f"{what} {path} cannot be written ({existing} "
                      f"{reason}); pass another {flag}") from None


class DamagedFileError(UserError):
  """A workdir file that cannot be read or parsed; the message names it."""


def read_json_file(path: pathlib.Path, fix: str):
  """The JSON value in `path`; DamagedFileError (one line: the file, what
  is wrong, `fix`) if it is not UTF-8 JSON."""
  try:
    return json.loads(pathlib.Path(path).read_bytes().decode("utf-8"))
  except UnicodeDecodeError as e:
    reason = f"not UTF-8 text at byte {e.start}"
  except json.JSONDecodeError as e:
    reason = f"not valid JSON at line {e.lineno}: {e.msg}"
  raise DamagedFileError(f"{path} is damaged ({reason}); {fix}")


def resume_differences(saved: dict, config) -> list[str]:
  """`field: saved in the workdir, value now` for each field that may not
  change on resume but does (fields a workdir predates are not compared)."""
  diffs = []
  for field in sorted(config.keys()):
    if field not in saved or saved[field] == config[field]:
      continue
    if not fields.may_change_on_resume(field, config):
      diffs.append(f"{field}: {saved[field]!r} in the workdir, "
                   f"{config[field]!r} now")
  return diffs


def _to_json(value):
  return json.loads(json.dumps(value))


def config_record(config) -> dict:
  """The config as config.json and checkpoints record it (plain JSON)."""
  return _to_json(config.to_dict())


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The files of one workdir (see the module docstring)."""
  path: pathlib.Path

  def __post_init__(self):
    object.__setattr__(self, "path", pathlib.Path(self.path))

  config_file = property(lambda self: self.path / "config.json")
  vocabulary_file = property(lambda self: self.path / "vocab.json")
  tokenizer_file = property(lambda self: self.path / tokenizer.MODEL_FILE)
  metrics_file = property(lambda self: self.path / "metrics.jsonl")
  result_file = property(lambda self: self.path / "result.json")
  checkpoints = property(lambda self: self.path / "checkpoints")
  best_checkpoint = property(lambda self: self.path / "best_checkpoint")
  corrupt_checkpoints = property(
      lambda self: self.path / "corrupt_checkpoints")
  tensorboard = property(lambda self: self.path / "tensorboard")
  lock_file = property(lambda self: self.path / ".lock")

  # --- Checks (write nothing) ---

  def check_writable(self) -> None:
    check_writable_dir(self.path, "--workdir", "--workdir")

  def has_checkpoints(self) -> bool:
    return self.checkpoints.is_dir() and any(
        p.name.isdigit() for p in self.checkpoints.iterdir())

  def saved_config(self) -> dict | None:
    """config.json (None if missing; DamagedFileError if unreadable)."""
    if not self.config_file.is_file():
      return None
    saved = read_json_file(self.config_file, "re-run the training command "
                           "to rebuild it")
    if not isinstance(saved, dict):
      raise DamagedFileError(f"{self.config_file} is damaged (a JSON "
                             f"{type(saved).__name__}, not an object); "
                             f"re-run the training command to rebuild it")
    return saved

  def newest_checkpoint_meta(self) -> dict | None:
    """The meta (JSON) of the newest checkpoint whose meta reads, read as a
    file (no orbax, nothing written); None if there is none."""
    if not self.checkpoints.is_dir():
      return None
    steps = sorted((int(p.name) for p in self.checkpoints.iterdir()
                    if p.name.isdigit()), reverse=True)
    for step in steps:
      try:
        meta = json.loads((self.checkpoints / str(step) / "meta" /
                           "metadata").read_text())
      except (OSError, ValueError):
        continue
      if isinstance(meta, dict):
        return meta
    return None

  def trained_config(self) -> dict | None:
    """The config the workdir's checkpoints were trained with: as the
    newest checkpoint records it (so deleting config.json changes
    nothing), else (older checkpoints) config.json."""
    meta = self.newest_checkpoint_meta() or {}
    if isinstance(meta.get("config"), dict):
      return meta["config"]
    try:
      return self.saved_config()
    except (OSError, UserError):
      return None

  def check_resumable(self, config) -> None:
    """Refuses to continue checkpoints written with a config that differs
    in a field that must not change on resume (`fields.FIELDS`)."""
    if not self.has_checkpoints():
      return
    saved = self.trained_config()
    if saved is None:
      return
    diffs = resume_differences(saved, config_record(config))
    if diffs:
      raise ConfigError(
          f"{self.path} holds checkpoints of a run with other settings "
          f"({'; '.join(diffs)}); only {', '.join(fields.resume_rules())} "
          f"may change on resume. Use another --workdir, or pass the "
          f"workdir's values (its newest checkpoint records them"
          + (f"; see {self.config_file})" if self.config_file.is_file()
             else ")"))

  def check_vocabulary(self, vocabulary: list[str],
                       text_rule: tokenizer.Tokenizer | None = None,
                       classes: tuple[str, ...] | None = None) -> None:
    """ConfigError if the checkpoints were trained with another vocabulary,
    tokenizer or classes (digests of them)."""
    if not self.has_checkpoints():
      return
    recorded = (self.newest_checkpoint_meta() or {}).get("vocabulary_sha256")
    if recorded:
      changed = recorded != tokenizer.vocabulary_digest(vocabulary, text_rule,
                                                        classes)
    elif self.vocabulary_file.is_file():
      changed = tokenizer.load_vocabulary(self.vocabulary_file) != list(vocabulary)
    else:
      changed = False
    if changed:
      raise ConfigError(
          f"{self.path} holds checkpoints trained with another vocabulary "
          f"(the data, its classes or the tokenizer changed: a run started before "
          f"--config.tokenizer existed continues with "
          f"--config.tokenizer=english). Use another --workdir, or delete "
          f"{self.checkpoints} to start fresh.")

  @contextlib.contextmanager
  def locked(self):
    """Holds the workdir for one training (process 0 of a run takes it):
    another training on it gets a UserError instead of racing on saves and
    pruning. An flock: the system drops it when the process dies, so a
    killed run leaves nothing stuck."""
    if not parallel.is_primary():
      yield
      return
    self.path.mkdir(parents=True, exist_ok=True)
    with open(self.lock_file, "a", encoding="utf-8") as handle:  # no write
      try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        raise UserError(
            f"{self.path} is in use by another training (it holds "
            f"{self.lock_file.name}); wait for it to finish, or pass another "
            f"--workdir") from None
      try:
        yield
      finally:
        fcntl.flock(handle, fcntl.LOCK_UN)

  # --- Writes (process 0 only; each skipped when the content is the same) ---

  def write_run_files(self, config, vocabulary: list[str],
                      text_rule: tokenizer.Tokenizer | None = None,
                      classes: tuple[str, ...] | None = None) -> None:
    """config.json, vocab.json and, for subwords, tokenizer.model (what
    `predict` needs besides a checkpoint)."""
    if parallel.is_primary():
      write_atomic(self.config_file, config.to_json(indent=2))
      if text_rule is not None and text_rule.model:
        write_atomic(self.tokenizer_file, text_rule.model)
      write_atomic(self.vocabulary_file,
                   tokenizer.vocabulary_json(vocabulary, text_rule, classes))

  def repair_run_files(self, config, vocabulary: list[str],
                       history: list[dict],
                       text_rule: tokenizer.Tokenizer | None = None,
                       classes: tuple[str, ...] | None = None) -> list[str]:
    """For a finished run: rewrites config.json, vocab.json and
    metrics.jsonl where they are missing, unreadable or (metrics) disagree
    with the checkpoint's history, leaving intact ones as they are. Returns
    the names rewritten."""
    if not parallel.is_primary():
      return []
    repaired = []
    try:
      self.saved_config()
      config_ok = self.config_file.is_file()
    except UserError:
      config_ok = False
    if not config_ok and write_atomic(self.config_file,
                                      config.to_json(indent=2)):
      repaired.append(self.config_file.name)
    if text_rule is not None and text_rule.model and write_atomic(
        self.tokenizer_file, text_rule.model):
      repaired.append(self.tokenizer_file.name)
    try:
      vocabulary_ok = (
          tokenizer.load_vocabulary(self.vocabulary_file) == list(vocabulary)
          and tokenizer.load_classes(self.vocabulary_file) == classes)
    except (OSError, ValueError, KeyError, TypeError):
      vocabulary_ok = False
    if not vocabulary_ok and write_atomic(
        self.vocabulary_file,
        tokenizer.vocabulary_json(vocabulary, text_rule, classes)):
      repaired.append(self.vocabulary_file.name)
    try:
      metrics_ok = self.read_metrics() == _to_json(list(history))
    except (OSError, UserError):
      metrics_ok = False
    if not metrics_ok:
      self.write_metrics(history)
      repaired.append(self.metrics_file.name)
    return repaired

  def write_metrics(self, history: list[dict]) -> None:
    """metrics.jsonl from a whole history (e.g. a restored checkpoint's)."""
    if parallel.is_primary() and (history or self.metrics_file.exists()):
      write_atomic(self.metrics_file,
                   "".join(json.dumps(r) + "\n" for r in history))

  def write_result(self, result: dict) -> bool:
    """result.json; returns True if it replaced a damaged one."""
    if not parallel.is_primary():
      return False
    damaged = False
    if self.result_file.is_file():
      try:
        read_json_file(self.result_file, "")
      except UserError:
        damaged = True
    write_atomic(self.result_file, json.dumps(result, indent=2) + "\n")
    return damaged

  # --- Reads ---

  def read_metrics(self) -> list[dict]:
    return read_metrics(self.path)


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
  """The records of a workdir's metrics.jsonl; DamagedFileError naming the
  file and line if it is not UTF-8 JSON lines of objects."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  fix = ("re-run the training command: it rebuilds the file from the "
         "checkpoint")
  try:
    text = path.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    raise DamagedFileError(f"{path} is damaged (not UTF-8 text at byte "
                           f"{e.start}); {fix}") from None
  records = []
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise DamagedFileError(f"{path}:{number} is damaged (not valid JSON: "
                             f"{e.msg}); {fix}") from None
    if not isinstance(record, dict) or "epoch" not in record:
      raise DamagedFileError(f"{path}:{number} is damaged (not an epoch "
                             f"record); {fix}")
    records.append(record)
  return records
