"""Orbax checkpoints of the whole train state, verified on restore.

Three kinds of trouble are told apart:
- a checkpoint whose *structure* (entries, shapes, dtypes) differs from the
  state the config builds is not damaged: it belongs to another config or
  version, and `CheckpointMismatchError` refuses it before anything moves;
- a checkpoint that cannot be read, or whose digest does not match, is
  damaged: training moves it aside (never deletes it) and says so in one
  line; `predict` refuses it unless allowed to fall back, and then says so;
- an interrupted save leaves a temporary directory that orbax never lists.
Library tracebacks and log lines of a failed restore are kept from the user
(`quiet.quiet_library`).
"""

import errno
import hashlib
import json
import pathlib
import shutil
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from flax_sentiment.runtime import parallel
from flax_sentiment.runtime.quiet import (drop_closed_loop_tracebacks,
                                          quiet_library)
from flax_sentiment.runtime.files import disk_error
from flax_sentiment.runtime.errors import UserError


class CheckpointMismatchError(UserError):
  """A checkpoint holds a train state of another shape (config, version)."""


class UnreadableCheckpointError(UserError):
  """The newest checkpoint is damaged and falling back was not allowed."""


def _disk_full(error: BaseException) -> OSError | None:
  """The ENOSPC OSError behind an orbax/tensorstore failure, if any (some
  report it only in their message)."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
      return seen
    if "No space left on device" in str(seen) or "ENOSPC" in str(seen):
      return OSError(errno.ENOSPC, "No space left on device")
    seen = seen.__cause__ or seen.__context__
  return None


def meta_digest(meta: dict[str, Any]) -> str:
  """sha256 of a checkpoint's meta (canonical JSON), without its own
  `meta_sha256` key."""
  body = {k: v for k, v in meta.items() if k != "meta_sha256"}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def state_digest(state) -> str:
  """sha256 over every array of `state` (its local, replicated copy)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(state):
    local = leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf
    digest.update(np.ascontiguousarray(np.asarray(local)).tobytes())
  return digest.hexdigest()


def _entry_name(path) -> str:
  """A tree path as orbax names it on disk: opt_state.1.0.mu.dense.bias."""
  return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(
      k, "name", k)))) for k in path)


def state_layout(tree) -> dict[str, tuple]:
  """{entry name: (shape, dtype)} of a state or of orbax's metadata."""
  return {_entry_name(path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def layout_differences(saved: dict, wanted: dict, limit: int = 4) -> str:
  """A short description of how two layouts differ ('' if they do not)."""
  def order(names):  # parameters first: they say most about the cause
    return sorted(names, key=lambda name: (not name.startswith("params."),
                                           name))

  def shown(name, layout):
    shape, dtype = layout[name]
    return f"{dtype}{list(shape)}"
  parts = [f"{name} only in the checkpoint"
           for name in order(saved.keys() - wanted.keys())]
  parts += [f"{name} missing from the checkpoint"
            for name in order(wanted.keys() - saved.keys())]
  parts += [f"{name}: {shown(name, saved)} in the checkpoint, "
            f"{shown(name, wanted)} now"
            for name in order(saved.keys() & wanted.keys())
            if saved[name] != wanted[name]]
  more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
  return "; ".join(parts[:limit]) + more


class Checkpoints:
  """Saves (state, meta) per train step under `directory`; keeps `keep`.

  `meta` is JSON: epoch, position in the epoch, running metric sums, the
  metrics history, the config the state was trained with and its
  vocabulary's digest, a digest of the state and one of the meta itself, so
  a restore is verified and training continues exactly where it stopped.
  """

  def __init__(self, directory: pathlib.Path, keep: int,
               read_only: bool = False):
    """`read_only`: writes nothing (no directory made, a damaged checkpoint
    is never moved); for prediction."""
    self.directory = pathlib.Path(directory).absolute()
    self.keep = keep
    self.read_only = read_only
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if self.read_only else self.keep,
        save_interval_steps=0 if self.read_only else 1,
        enable_async_checkpointing=False,
        cleanup_tmp_directories=not self.read_only,
        create=not self.read_only, read_only=self.read_only)
    with quiet_library():
      return ocp.CheckpointManager(
          self.directory, options=options,
          item_handlers={"state": ocp.StandardCheckpointHandler(),
                         "meta": ocp.JsonCheckpointHandler()})

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict[str, Any]) -> None:
    meta = dict(meta, state_sha256=state_digest(state))
    meta["meta_sha256"] = meta_digest(meta)  # history, progress, config too
    try:
      with quiet_library():
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True)
        self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      full = _disk_full(e)
      if full is None:
        raise
      needed = sum(x.nbytes for x in jax.tree.leaves(state)
                   if hasattr(x, "nbytes"))
      if parallel.is_primary():  # free what the failed save took
        for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
          shutil.rmtree(partial, ignore_errors=True)
      raise disk_error(self.directory / str(step), full, needed) from None

  def _check_layout(self, step: int, abstract_state) -> None:
    """Raises CheckpointMismatchError if the checkpoint at `step` holds
    other entries, shapes or dtypes than `abstract_state`; an unreadable
    layout is left to the restore (damage, not a mismatch)."""
    try:
      with quiet_library():
        saved = state_layout(self._manager.item_metadata(step)["state"])
    except Exception:  # pylint: disable=broad-except
      return
    if not saved:
      return
    differences = layout_differences(saved, state_layout(abstract_state))
    if differences:
      raise CheckpointMismatchError(
          f"the checkpoint at step {step} in {self.directory} holds a train "
          f"state of another config or version ({differences}); nothing was "
          f"changed. Use another --workdir, or the config that wrote it")

  def _restore(self, step: int, abstract_state) -> tuple[Any, dict]:
    with quiet_library():
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          meta=ocp.args.JsonRestore()))
    state, meta = restored["state"], restored["meta"]
    if meta.get("state_sha256") != state_digest(state):
      raise ValueError("state digest does not match the one saved")
    # (Checkpoints of versions before the meta digest have none.)
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
      raise ValueError("meta digest (progress, history, config) does not "
                       "match the one saved")
    return state, meta

  def restore_latest(self, abstract_state, say: Callable[[str], None] = print,
                     fall_back: bool = True) -> tuple[Any, dict] | None:
    """The newest checkpoint that restores and matches its digest, or None
    if there is none.

    Every checkpoint is first checked to hold `abstract_state`'s layout
    (else CheckpointMismatchError, nothing moved). A damaged one is reported
    with one line through `say`; in training it is moved to
    `corrupt_checkpoints/` beside the directory and the previous one tried.
    Read-only (predict), it stays where it is, and the previous one is
    tried only with `fall_back`, else UnreadableCheckpointError.
    """
    steps = self.steps()
    for step in reversed(steps):
      self._check_layout(step, abstract_state)
    for i, step in enumerate(reversed(steps)):
      try:
        return self._restore(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except
        drop_closed_loop_tracebacks()
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        previous = steps[-i - 2] if i + 1 < len(steps) else None
        then = (f"using the previous one (step {previous})" if previous
                is not None else "no earlier checkpoint is left")
        if self.read_only and not fall_back:
          raise UnreadableCheckpointError(
              f"the newest checkpoint (step {step}) in {self.directory} is "
              f"unreadable ({reason}); "
              + (f"pass --fallback to use the previous one (step {previous})"
                 if previous is not None else "retrain the run")) from e
        if self.read_only:
          say(f"warning: checkpoint at step {step} in {self.directory} is "
              f"unreadable ({reason}); {then}")
        else:
          aside = self._set_aside(step)
          say(f"warning: checkpoint at step {step} is unreadable ({reason});"
              f" moved it to {aside}, {then}")
    return None

  def _set_aside(self, step: int) -> pathlib.Path:
    aside = self.directory.parent / "corrupt_checkpoints" / str(step)
    if parallel.is_primary():
      aside.parent.mkdir(parents=True, exist_ok=True)
      if aside.exists():
        shutil.rmtree(aside)
      shutil.move(str(self.directory / str(step)), str(aside))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._manager.close()
    self._manager = self._open()
    return aside

  def close(self) -> None:
    self._manager.close()
