"""Devices and processes: JAX's distributed runtime and a data-parallel mesh."""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def is_primary() -> bool:
  """True in the process that writes files and prints (process 0)."""
  return jax.process_index() == 0


def initialize_distributed(config) -> None:
  """Joins the other processes, if there are any.

  Explicit: `num_processes` > 1 with `coordinator_address` and `process_id`
  (config). Automatic: a Cloud TPU VM of several hosts (jax detects the rest).
  Otherwise a single process, nothing to do.
  """
  if jax.distributed.is_initialized():
    return
  if config.num_processes is not None and config.num_processes > 1:
    # CPU devices need a collectives library across processes; GPU and TPU
    # ignore this setting. (Must be set before any backend starts.)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=config.coordinator_address,
                               num_processes=config.num_processes,
                               process_id=config.process_id)
  elif len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
    jax.distributed.initialize()


def any_process(flag: bool) -> bool:
  """True if `flag` is True in any process (every process must call it at
  the same point: a collective). One process: `flag` itself."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.any(multihost_utils.process_allgather(
      np.array([flag], np.bool_))))


# How a collective fails when a peer is gone: jax's runtime error from a
# compiled step, or (inside orbax's save barrier) a ValueError carrying gloo's.
_LOST_PEER_SIGNS = ("gloo", "connection closed by peer", "connection reset",
                    "broken pipe", "heartbeat timeout")


def lost_peer(error: BaseException) -> bool:
  """Whether `error`, raised in a multi-process run, is a collective that
  failed because another process is gone."""
  if jax.process_count() == 1:
    return False
  if isinstance(error, jax.errors.JaxRuntimeError):
    return True
  if not isinstance(error, (ValueError, RuntimeError)):
    return False
  text = str(error).lower()
  return any(sign in text for sign in _LOST_PEER_SIGNS)


def data_mesh() -> Mesh:
  """All devices (of all processes) on one `data` axis."""
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """For chunk arrays [steps, batch, ...]: the batch axis split over `data`."""
  return NamedSharding(mesh, P(None, "data"))


def local_batch_rows(sharding: NamedSharding, global_shape) -> slice:
  """The rows of the batch axis (axis 1) this process feeds."""
  index_map = sharding.addressable_devices_indices_map(tuple(global_shape))
  starts = [idx[1].start or 0 for idx in index_map.values()]
  stops = [global_shape[1] if idx[1].stop is None else idx[1].stop
           for idx in index_map.values()]
  return slice(min(starts), max(stops))


def to_global(local: np.ndarray, sharding: NamedSharding,
              global_shape) -> jax.Array:
  """This process's rows of a chunk array -> the global, sharded array."""
  return jax.make_array_from_process_local_data(sharding, local,
                                                tuple(global_shape))


def fetch(x: jax.Array) -> np.ndarray:
  """A replicated array's value on the host (works across processes)."""
  return np.asarray(x.addressable_data(0))
