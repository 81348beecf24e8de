"""The run directory: what a training run writes, and whether it may continue.

A workdir holds `config.json`, `vocab.json`, `metrics.jsonl` (one JSON object
per epoch), `checkpoints/` (see `checkpoints.py`) and `tensorboard/`. This
module owns those files and the checks that an existing workdir matches the
config of the run about to use it. Checks run before anything is written.
"""

import errno
import json
import os
import pathlib
import tempfile

from flax_sentiment import data
from flax_sentiment.errors import ConfigError, UserError

# A workdir's checkpoints only continue a run whose config agrees on these:
# they fix the parameter shapes, the data and the position in an epoch.
# (num_epochs and learning_rate may change, e.g. to train on with a lower one.)
RESUME_FIELDS = ("cell", "num_words", "embed_dim", "hidden_dim", "dtype",
                 "seq_len", "padding", "truncating", "mask_padding",
                 "length_buckets", "max_train_examples", "batch_size",
                 "seed", "steps_per_call", "validation_examples",
                 "validation_seed", "bidirectional", "num_layers", "pooling",
                 "vocabulary_splits", "pretrained_embeddings")


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


def _saved_config(workdir: pathlib.Path) -> dict | None:
  path = workdir / "config.json"
  if not (workdir / "checkpoints").exists() or not path.exists():
    return None
  return json.loads(path.read_text())


def check_resumable(workdir: pathlib.Path, config) -> None:
  """Refuses to continue checkpoints written with a different config."""
  saved = _saved_config(workdir)
  if saved is None:
    return
  # (Fields a workdir predates are not compared.)
  diffs = [f"{f}: {saved[f]!r} in the workdir, {config[f]!r} now"
           for f in RESUME_FIELDS
           if f in config and f in saved and saved[f] != config[f]]
  if diffs:
    raise ConfigError(
        f"{workdir} holds checkpoints of a different config ({'; '.join(diffs)})."
        f" Use another --workdir, or delete {workdir / 'checkpoints'} to start "
        f"fresh.")


def check_vocabulary(workdir: pathlib.Path, vocabulary: list[str]) -> None:
  path = workdir / "vocab.json"
  if (workdir / "checkpoints").exists() and path.exists():
    if data.load_vocabulary(path) != vocabulary:
      raise ConfigError(
          f"{workdir} holds checkpoints trained with another vocabulary (the "
          f"data or tokenizer changed). Use another --workdir, or delete "
          f"{workdir / 'checkpoints'} to start fresh.")


def write_atomic(path: pathlib.Path, text: str) -> None:
  partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
  partial.write_text(text)
  partial.replace(path)


def write_run_files(workdir: pathlib.Path, config,
                    vocabulary: list[str]) -> None:
  """config.json and vocab.json (what `predict` needs besides a checkpoint)."""
  workdir.mkdir(parents=True, exist_ok=True)
  write_atomic(workdir / "config.json", config.to_json(indent=2))
  data.save_vocabulary(vocabulary, workdir / "vocab.json")


def write_metrics(workdir: pathlib.Path, history: list[dict]) -> None:
  """metrics.jsonl from a whole history (e.g. a restored checkpoint's)."""
  write_atomic(workdir / "metrics.jsonl",
               "".join(json.dumps(r) + "\n" for r in history))


def append_metrics(workdir: pathlib.Path, record: dict) -> None:
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write(json.dumps(record) + "\n")


def read_metrics(workdir: pathlib.Path) -> list[dict]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line]
