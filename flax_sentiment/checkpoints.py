"""Orbax checkpoints of the whole training state, with a fall-back to the
previous checkpoint when the latest one does not restore."""

import hashlib
import pathlib
import shutil
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


def state_digest(state) -> str:
  """sha256 over every array of `state` (its local, replicated copy)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(state):
    local = leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf
    digest.update(np.ascontiguousarray(np.asarray(local)).tobytes())
  return digest.hexdigest()


class Checkpoints:
  """Saves (state, meta) per train step under `directory`; keeps `keep`.

  `meta` is JSON: epoch, position in the epoch, running metric sums, the
  metrics history and a digest of the state, so a restore is verified and
  training continues exactly where it stopped.
  """

  def __init__(self, directory: pathlib.Path, keep: int,
               read_only: bool = False):
    """`read_only`: writes nothing (no directory made, a broken checkpoint
    is skipped rather than moved aside); for prediction."""
    self.directory = pathlib.Path(directory).absolute()
    self.keep = keep
    self.read_only = read_only
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=self.keep, enable_async_checkpointing=False,
            cleanup_tmp_directories=not self.read_only,
            create=not self.read_only, read_only=self.read_only),
        item_names=("state", "meta"))

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict[str, Any]) -> None:
    meta = dict(meta, state_sha256=state_digest(state))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        force=True)
    self._manager.wait_until_finished()

  def restore_latest(self, abstract_state) -> tuple[Any, dict] | None:
    """The newest checkpoint that restores and matches its digest.

    A broken one is moved to `<directory>/../corrupt_checkpoints/` (never
    deleted) with a warning, and the previous one is tried.
    """
    for step in reversed(self.steps()):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            meta=ocp.args.JsonRestore()))
        state, meta = restored["state"], restored["meta"]
        if meta.get("state_sha256") != state_digest(state):
          raise ValueError("state digest does not match the one saved")
        return state, meta
      except Exception as e:  # orbax/tensorstore raise many kinds
        if self.read_only:
          warnings.warn(f"checkpoint at step {step} is unreadable "
                        f"({type(e).__name__}); trying the previous one")
        else:
          self._set_aside(step, e)
    return None

  def _set_aside(self, step: int, error: Exception) -> None:
    aside = self.directory.parent / "corrupt_checkpoints" / str(step)
    warnings.warn(f"checkpoint at step {step} is unreadable "
                  f"({type(error).__name__}: {str(error)[:200]}); moved it to "
                  f"{aside} and trying the previous one")
    if jax.process_index() == 0:
      aside.parent.mkdir(parents=True, exist_ok=True)
      if aside.exists():
        shutil.rmtree(aside)
      shutil.move(str(self.directory / str(step)), str(aside))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._manager.close()
    self._manager = self._open()

  def close(self) -> None:
    self._manager.close()
